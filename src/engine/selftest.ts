// A kernel check that runs wherever the engine runs (Node tests, the trainer worker in a tab):
// random inputs, the GPU matmul, the float64 reference, the error against a stated tolerance.
import type { Gpu } from './gpu.ts';
import { Kernels } from './kernels.ts';
import { matmul } from './matmul.ts';
import { randomF32 } from '../util/random.ts';
import { matmulRef, maxRelError } from './reference/matmul.ts';
import { readTensor, uploadTensor, type DType } from './tensor.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../io/dtype.ts';

export interface MatmulCheck {
  m: number;
  n: number;
  k: number;
  dtype: DType;
  maxRelError: number;
  tolerance: number;
  ok: boolean;
  ms: number;
}

/** Tolerances on maxRelError: f32 accumulation; f16 storage adds one rounding of the output (2^-11). */
export const MATMUL_TOLERANCE: Record<DType, number> = { f32: 1e-5, f16: 1e-3 };

export async function matmulSelfTest(
  gpu: Gpu,
  opts: { m: number; n: number; k: number; dtype?: DType; seed?: number; transB?: boolean; kernels?: Kernels },
): Promise<MatmulCheck> {
  const { m, n, k } = opts;
  const dtype = opts.dtype ?? 'f32';
  const seed = opts.seed ?? 1;
  const kernels = opts.kernels ?? new Kernels(gpu);
  const shape = { m, n, k, transB: opts.transB };
  // The reference sees exactly the values the GPU sees: f16 inputs are rounded first.
  const round = (x: Float32Array) => (dtype === 'f16' ? f16ArrayToF32(f32ArrayToF16(x)) : x);
  const a = round(randomF32(m * k, seed));
  const b = round(randomF32(k * n, seed + 1));
  const ta = uploadTensor(gpu.device, a, [m, k], dtype);
  const tb = uploadTensor(gpu.device, b, opts.transB ? [n, k] : [k, n], dtype);
  const t0 = performance.now();
  const tc = matmul(kernels, ta, tb, shape);
  const got = await readTensor(gpu.device, tc);
  const ms = performance.now() - t0;
  for (const t of [ta, tb, tc]) t.buffer.destroy();
  const { c, scale } = matmulRef(a, b, shape);
  const err = maxRelError(got, c, scale);
  const tolerance = MATMUL_TOLERANCE[dtype];
  return { m, n, k, dtype, maxRelError: err, tolerance, ok: err <= tolerance, ms };
}

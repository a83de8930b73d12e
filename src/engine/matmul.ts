// C = A · op(B) on the GPU (shaders/matmul.wgsl). The first kernel, and the pattern for the rest:
// WGSL in shaders/, this wrapper, a float64 reference in reference/, a test comparing the two.
import type { Kernels } from './kernels.ts';
import { encodeMmaMatmul, mmaApplies } from './matmul-mma.ts';
import { createTensor, type Tensor } from './tensor.ts';
import tile128 from '../../shaders/tile128.wgsl?raw';
import matmulSource from '../../shaders/matmul.wgsl?raw';

/** The shared 128x128 tile code goes first (WGSL has no imports). */
export const MATMUL_SOURCE = tile128 + matmulSource;

export interface MatmulShape {
  m: number;
  n: number;
  k: number;
  /** B is stored [N,K] (nn.Linear weight layout) and used transposed. */
  transB?: boolean;
}

const TILE = 128;

/** Records C[M,N] = A[M,K] · op(B) into `pass`: f16 storage on the tensor cores where the device has
 * f16 subgroup matrices (matmul-mma.ts; f32 stays here: its operands would be rounded to f16). */
export function encodeMatmul(kernels: Kernels, pass: GPUComputePassEncoder, a: Tensor, b: Tensor, c: Tensor, s: MatmulShape & { tensorCores?: boolean }): void {
  checkShapes(a, b, c, s);
  const operand = { kind: 'dense', b } as const;
  if (a.dtype === 'f16' && s.tensorCores !== false && mmaApplies(kernels.gpu.info, operand)) {
    encodeMmaMatmul(kernels, pass, a, operand, c, { m: s.m, nc: s.n, ki: s.k, transB: !!s.transB });
    return;
  }
  const kernel = kernels.get({ name: 'matmul', source: MATMUL_SOURCE, dtype: a.dtype, constants: { TRANS_B: !!s.transB } });
  kernels.dispatch(pass, kernel, [a.buffer, b.buffer, c.buffer], { m: s.m, n: s.n, k: s.k }, [
    Math.ceil(s.n / TILE),
    Math.ceil(s.m / TILE),
  ]);
}

/** Allocates C and computes A · op(B), submitted at once. */
export function matmul(kernels: Kernels, a: Tensor, b: Tensor, s: MatmulShape): Tensor {
  const c = createTensor(kernels.device, [s.m, s.n], a.dtype, 'matmul.c');
  const encoder = kernels.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  encodeMatmul(kernels, pass, a, b, c, s);
  pass.end();
  kernels.device.queue.submit([encoder.finish()]);
  return c;
}

function checkShapes(a: Tensor, b: Tensor, c: Tensor, s: MatmulShape): void {
  const want = (t: Tensor, shape: number[], name: string) => {
    if (t.shape.join() !== shape.join()) throw new Error(`matmul: ${name} has shape [${t.shape}], expected [${shape}]`);
  };
  want(a, [s.m, s.k], 'A');
  want(b, s.transB ? [s.n, s.k] : [s.k, s.n], 'B');
  want(c, [s.m, s.n], 'C');
  if (a.dtype !== b.dtype || a.dtype !== c.dtype) throw new Error(`matmul: mixed storage types ${a.dtype}/${b.dtype}/${c.dtype}`);
}

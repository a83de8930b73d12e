import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { destroyNf4, uploadNf4 } from '../src/engine/nf4.ts';
import {
  encodeNf4Matmul,
  encodeNf4MatmulBackward,
  nf4TakesLora,
  NF4_GEMV_MAX_ROWS,
  nf4Matmul,
  type Nf4MatmulOptions,
} from '../src/engine/nf4-matmul.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { nf4MatmulRef } from '../src/engine/reference/nf4-matmul.ts';
import { createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../src/engine/tensor.ts';
import { quantizeNf4 } from '../src/io/nf4.ts';
import { randomF32 } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';
import { asStored } from './gpu/values.ts';
import { gaussian } from './fixtures/gguf/helpers.ts';

// Component-wise relative error (|got - want| / Σ|x·w|, reference/matmul.ts maxRelError) against
// the CPU dequantization + float64 matmul. f32: accumulation only (up to K = 4104 terms, about
// sqrt(K) · 2^-24 in practice). f16 storage: x is f16 (the reference uses the same f16 values),
// the output rounding to f16 adds 2^-11 relative; an f32 output keeps f32 accuracy.
const TOL = { f32: 1e-5, f16: 1e-3 };

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

interface Case {
  m: number;
  k: number;
  n: number;
  blocksize?: number;
  dtype?: DType;
  out?: DType;
  bias?: boolean;
  accumulate?: boolean;
  backward?: boolean;
  kernel?: Nf4MatmulOptions['kernel'];
}

/** Runs one product on the GPU and returns its error against the reference. */
async function runCase(c: Case, seed: number): Promise<number> {
  const dtype = c.dtype ?? 'f32';
  const outType = c.out ?? dtype;
  const cpu = quantizeNf4(gaussian(c.n * c.k, seed, 0.02), { shape: [c.n, c.k], blocksize: c.blocksize ?? 64 });
  const w = uploadNf4(gpu.device, cpu);
  const inner = c.backward ? c.n : c.k;
  const width = c.backward ? c.k : c.n;
  const a = asStored(randomF32(c.m * inner, seed + 1), dtype);
  const ta = uploadTensor(gpu.device, a, [c.m, inner], dtype);
  const bias = c.bias ? randomF32(c.n, seed + 2) : undefined;
  const tb = bias ? uploadTensor(gpu.device, bias, [c.n], 'f32') : undefined;
  const start = c.accumulate ? asStored(randomF32(c.m * width, seed + 3), outType) : undefined;
  const tout = start ? uploadTensor(gpu.device, start, [c.m, width], outType) : createTensor(gpu.device, [c.m, width], outType);
  submitPass(kernels, (pass) => {
    if (c.backward) encodeNf4MatmulBackward(kernels, pass, ta, w, tout, { accumulate: c.accumulate });
    else encodeNf4Matmul(kernels, pass, ta, w, tout, { bias: tb, accumulate: c.accumulate, kernel: c.kernel });
  });
  const got = await readTensor(gpu.device, tout);
  const ref = nf4MatmulRef(a, cpu, c.m, { backward: c.backward, bias });
  if (start) {
    for (let i = 0; i < start.length; i++) {
      ref.c[i] += start[i];
      ref.scale[i] += Math.abs(start[i]);
    }
  }
  for (const t of [ta, tout, tb] as (Tensor | undefined)[]) t?.buffer.destroy();
  destroyNf4(w);
  return maxRelError(got, ref.c, ref.scale);
}

const label = (c: Case) =>
  `${c.m}x${c.k}->${c.n}${c.blocksize ? ` bs${c.blocksize}` : ''}${c.bias ? ' +bias' : ''}${c.accumulate ? ' +=' : ''}` +
  `${c.kernel ? ` (${c.kernel})` : ''}`;

describe(`NF4 matmul f32, y = x · dequant(W)ᵀ, against float64 (component-wise, < ${TOL.f32})`, () => {
  // m <= 8 runs the gemv kernel; K % 8 != 0 the element-wise (unaligned) decode; K % 64 != 0
  // blocks that span rows of W; odd N·K a padded last byte.
  const cases: Case[] = [
    { m: 1, k: 192, n: 70 },
    { m: 3, k: 75, n: 33 },
    { m: 7, k: 200, n: 130 },
    { m: 2, k: 4104, n: 9 },
    { m: 9, k: 64, n: 70 },
    { m: 33, k: 200, n: 70 },
    { m: 100, k: 75, n: 130 },
    { m: 33, k: 1000, n: 5, blocksize: 128 },
    { m: 100, k: 4104, n: 9 },
    { m: 7, k: 192, n: 70, kernel: 'tiled' },
    { m: 7, k: 192, n: 70, bias: true, accumulate: true },
    { m: 33, k: 75, n: 70, bias: true, accumulate: true, blocksize: 32 },
  ];
  for (const [i, c] of cases.entries()) {
    it(label(c), async () => {
      const err = await runCase(c, 100 + i);
      console.log(`nf4 matmul f32 ${label(c)}: ${err.toExponential(2)}`);
      expect(err).toBeLessThan(TOL.f32);
    });
  }
});

describe(`NF4 matmul backward f32, dx = dy · dequant(W), against float64 (< ${TOL.f32})`, () => {
  const cases: Case[] = [
    { m: 33, k: 200, n: 70, backward: true },
    { m: 100, k: 75, n: 130, backward: true },
    { m: 1, k: 192, n: 70, backward: true },
    { m: 7, k: 4104, n: 9, backward: true, accumulate: true },
  ];
  for (const [i, c] of cases.entries()) {
    it(label(c), async () => {
      const err = await runCase(c, 200 + i);
      console.log(`nf4 matmul backward f32 ${label(c)}: ${err.toExponential(2)}`);
      expect(err).toBeLessThan(TOL.f32);
    });
  }
});

describe('NF4 matmul, f16 storage with f32 accumulation', () => {
  const cases: (Case & { tol: number })[] = [
    { m: 1, k: 192, n: 70, dtype: 'f16', tol: TOL.f16 },
    { m: 33, k: 200, n: 70, dtype: 'f16', bias: true, tol: TOL.f16 },
    { m: 100, k: 75, n: 130, dtype: 'f16', backward: true, tol: TOL.f16 },
    { m: 33, k: 200, n: 70, dtype: 'f16', out: 'f32', accumulate: true, tol: TOL.f32 },
  ];
  for (const [i, c] of cases.entries()) {
    it(`${c.backward ? 'backward ' : ''}${label(c)}, out ${c.out ?? 'f16'} (< ${c.tol})`, async (ctx) => {
      if (!gpu.info.f16) ctx.skip();
      const err = await runCase(c, 300 + i);
      console.log(`nf4 matmul f16 ${c.backward ? 'backward ' : ''}${label(c)} out ${c.out ?? 'f16'}: ${err.toExponential(2)}`);
      expect(err).toBeLessThan(c.tol);
      if (c.out !== 'f32') expect(err, 'f16 rounding is visible').toBeGreaterThan(1e-6);
    });
  }
});

describe('NF4 matmul plumbing', () => {
  it('a product checked by hand: codes 15 (=1.0) and 0 (=-1.0) times absmax', async () => {
    // W [2, 8]: row 0 all code 15, row 1 all code 0; one block (blocksize 32 > 16 elements), absmax 0.5.
    const w = uploadNf4(gpu.device, {
      shape: [2, 8],
      numel: 16,
      blocksize: 32,
      packed: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
      absmax: new Float32Array([0.5]),
      dtype: 'float32',
    });
    const x = uploadTensor(gpu.device, Float32Array.from({ length: 8 }, (_, i) => i + 1), [1, 8], 'f32');
    const y = await readTensor(gpu.device, nf4Matmul(kernels, x, w));
    expect([...y]).toEqual([18, -18]);
    const yt = await readTensor(gpu.device, nf4Matmul(kernels, x, w, { kernel: 'tiled' }));
    expect([...yt]).toEqual([18, -18]);
  });

  it('rejects bad shapes and options with clear messages', () => {
    const w = uploadNf4(gpu.device, quantizeNf4(new Float32Array(70 * 64), { shape: [70, 64] }));
    const x = createTensor(gpu.device, [3, 64], 'f32');
    const y = createTensor(gpu.device, [3, 70], 'f32');
    const bad = createTensor(gpu.device, [3, 65], 'f32');
    const run = (f: (pass: GPUComputePassEncoder) => void) => () => submitPass(kernels, f);
    expect(run((p) => encodeNf4Matmul(kernels, p, bad, w, y))).toThrow(/x has shape \[3,65\], expected \[\.\.\., 64\]/);
    expect(run((p) => encodeNf4Matmul(kernels, p, x, w, bad))).toThrow(/y has shape \[3,65\], expected \[3,70\]/);
    expect(run((p) => encodeNf4Matmul(kernels, p, x, w, y, { bias: createTensor(gpu.device, [70], 'f16') }))).toThrow(/bias must be f32/);
    const big = createTensor(gpu.device, [NF4_GEMV_MAX_ROWS + 1, 64], 'f32');
    const bigY = createTensor(gpu.device, [NF4_GEMV_MAX_ROWS + 1, 70], 'f32');
    expect(run((p) => encodeNf4Matmul(kernels, p, big, w, bigY, { kernel: 'gemv' }))).toThrow(/gemv kernel takes at most/);
    expect(run((p) => encodeNf4MatmulBackward(kernels, p, y, w, y))).toThrow(/dx has shape \[3,70\], expected \[3,64\]/);
    // LoRA's term rides only on the tensor-core kernel (nf4TakesLora): never the GEMV, nor the SIMT tiles.
    const lora = { u: createTensor(gpu.device, [NF4_GEMV_MAX_ROWS + 1, 16], 'f32'), w: createTensor(gpu.device, [70, 16], 'f32'), scale: 2 };
    expect(nf4TakesLora(kernels, 3, w)).toBe(false);
    expect(nf4TakesLora(kernels, NF4_GEMV_MAX_ROWS + 1, w)).toBe(!!gpu.info.mmaF16);
    expect(run((p) => encodeNf4Matmul(kernels, p, x, w, y, { lora }))).toThrow(/only the tensor-core kernel adds a LoRA term/);
    if (!gpu.info.mmaF16) expect(run((p) => encodeNf4Matmul(kernels, p, big, w, bigY, { lora }))).toThrow(/only the tensor-core kernel adds a LoRA term/);
    destroyNf4(w);
  });
});

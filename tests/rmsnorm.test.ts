import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { randomF32 } from '../src/util/random.ts';
import { magnitudes } from '../src/engine/reference/elementwise.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { rmsnormCasts, rmsnormRef } from '../src/engine/reference/rmsnorm.ts';
import { encodeRmsnorm } from '../src/engine/rmsnorm.ts';
import { createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../src/engine/tensor.ts';
import { f16ArrayToF32, f16BitsToF32, f32ArrayToF16, f32ToF16Bits } from '../src/io/dtype.ts';
import { testGpu } from './gpu/device.ts';

// [rows, hidden]: widths below, at and above the workgroup (64), odd, and Llama 3 8B's 4096.
const SHAPES = [
  [1, 64],
  [7, 100],
  [33, 130],
  [3, 1],
  [5, 4096],
  [2, 4097],
];
const EPS = 1e-5;
const F16_MIN_NORMAL = 2 ** -14;

// Relative error of y per element (|y| below 2^-14 counts absolutely in f16) and of rstd.
// Measured on lavapipe (Mesa 25) and on an H200 alike: y f32 2.3e-7, rstd 2.1e-7; f16 y from f32 x
// 4.9e-4 (one rounding, 2^-11); f16 x and y up to 1.05e-3 at 2048 x 4096 (two roundings, x·rstd
// cast to f16 first as transformers does: 2 · 2^-11, a little more where x·rstd is f16-subnormal).
const TOL = { f32: 1e-6, f16: 1e-3, f16x: 1.5e-3, rstd: 1e-6 };

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

const round16 = (x: Float32Array) => f16ArrayToF32(f32ArrayToF16(x));
const asStored = (x: Float32Array, dtype: DType) => (dtype === 'f16' ? round16(x) : x);

/** Errors of y and rstd for x of type `residual`, w and y of type `dtype`. */
async function rmsnormCase(k: Kernels, [rows, hidden]: number[], dtype: DType, residual: DType, seed: number) {
  // Rows of different magnitude (0.01 .. 30), as the residual stream has.
  const x = randomF32(rows * hidden, seed).map((v, i) => v * 30 ** ((Math.floor(i / hidden) % 3) - 1));
  const xs = asStored(x, residual);
  const w = asStored(randomF32(hidden, seed + 1).map((v) => 1 + 0.5 * v), dtype);
  const tx = uploadTensor(gpu.device, xs, [rows, hidden], residual);
  const tw = uploadTensor(gpu.device, w, [hidden], dtype);
  const ty = createTensor(gpu.device, [rows, hidden], dtype);
  const tr = createTensor(gpu.device, [rows], 'f32');
  submitPass(k, (pass) => encodeRmsnorm(k, pass, tx, tw, ty, tr, EPS));
  const y = await readTensor(gpu.device, ty);
  const rstd = await readTensor(gpu.device, tr);
  for (const t of [tx, tw, ty, tr] as Tensor[]) t.buffer.destroy();
  const ref = rmsnormRef(xs, w, hidden, EPS);
  return {
    y: maxRelError(y, ref.y, magnitudes(ref.y, dtype === 'f16' ? F16_MIN_NORMAL : 0)),
    rstd: maxRelError(rstd, ref.rstd, magnitudes(ref.rstd)),
  };
}

describe('rmsnorm against float64 (relative error per element)', () => {
  const modes = [
    { dtype: 'f32', residual: 'f32' },
    { dtype: 'f16', residual: 'f32' }, // the f16 mode: f32 residual stream in, f16 activations out
    { dtype: 'f16', residual: 'f16' }, // everything f16, as a PyTorch model in f16
  ] as const;
  for (const { dtype, residual } of modes) {
    const tol = residual === 'f16' ? TOL.f16x : TOL[dtype];
    it(`x ${residual}, w/y ${dtype}: shapes ${SHAPES.map((s) => s.join('x')).join(', ')} within ${tol}`, async (ctx) => {
      if (dtype === 'f16' && !gpu.info.f16) ctx.skip();
      for (const [i, shape] of SHAPES.entries()) {
        const err = await rmsnormCase(kernels, shape, dtype, residual, 60 + i);
        expect(err.y, `y [${shape}]`).toBeLessThan(tol);
        if (dtype === 'f16' && shape[0] * shape[1] > 100) expect(err.y, 'f16 rounding is visible').toBeGreaterThan(1e-5);
        expect(err.rstd, `rstd [${shape}]`).toBeLessThan(TOL.rstd);
      }
    });
  }
});

describe('rmsnorm plumbing', () => {
  it('casts as LlamaRMSNorm does: x·rstd to x\'s type, then w · that, to y\'s type (bit for bit)', async (ctx) => {
    const [rows, hidden] = [7, 100];
    const same = (v: number) => v;
    const half = (v: number) => f16BitsToF32(f32ToF16Bits(v));
    const modes = [
      { dtype: 'f32', residual: 'f32', toX: same, toY: same },
      { dtype: 'f16', residual: 'f32', toX: same, toY: half },
      { dtype: 'f16', residual: 'f16', toX: half, toY: half },
    ] as const;
    for (const { dtype, residual, toX, toY } of modes) {
      if (dtype === 'f16' && !gpu.info.f16) ctx.skip();
      const x = asStored(randomF32(rows * hidden, 3).map((v) => v * 5), residual);
      const w = asStored(randomF32(hidden, 4).map((v) => 1 + v), dtype);
      const tx = uploadTensor(gpu.device, x, [rows, hidden], residual);
      const tw = uploadTensor(gpu.device, w, [hidden], dtype);
      const ty = createTensor(gpu.device, [rows, hidden], dtype);
      const tr = createTensor(gpu.device, [rows], 'f32');
      submitPass(kernels, (pass) => encodeRmsnorm(kernels, pass, tx, tw, ty, tr, EPS));
      const rstd = await readTensor(gpu.device, tr);
      const y = await readTensor(gpu.device, ty);
      for (const t of [tx, tw, ty, tr]) t.buffer.destroy();
      expect([...y], `x ${residual}, y ${dtype}`).toEqual([...rmsnormCasts(x, w, rstd, hidden, toX, toY)]);
    }
  });

  it('normalises rows checked by hand', async () => {
    // Row 0: mean(x²) = 9, rstd = 1/3. Row 1: zeros; with eps = 1e-5 rstd = 1/sqrt(1e-5).
    const x = uploadTensor(gpu.device, new Float32Array([3, -3, 3, -3, 0, 0, 0, 0]), [2, 4], 'f32');
    const w = uploadTensor(gpu.device, new Float32Array([1, 2, 3, 4]), [4], 'f32');
    const y = createTensor(gpu.device, [2, 4], 'f32');
    const rstd = createTensor(gpu.device, [2], 'f32');
    submitPass(kernels, (pass) => encodeRmsnorm(kernels, pass, x, w, y, rstd, 1e-5));
    const got = await readTensor(gpu.device, y);
    for (let j = 0; j < 4; j++) expect(got[j]).toBeCloseTo([1, -2, 3, -4][j], 5);
    expect([...got.slice(4)]).toEqual([0, 0, 0, 0]);
    const r = await readTensor(gpu.device, rstd);
    expect(r[0]).toBeCloseTo(1 / Math.sqrt(9 + 1e-5), 6);
    expect(r[1] / (1 / Math.sqrt(1e-5))).toBeCloseTo(1, 6);
  });

  it('uses a 2-D grid past the per-dimension workgroup limit', async () => {
    // A device limit of 6 workgroups per dimension: 33 rows -> grid 6 x 6.
    const small = new Kernels({ ...gpu, info: { ...gpu.info, limits: { ...gpu.info.limits, maxComputeWorkgroupsPerDimension: 6 } } });
    const err = await rmsnormCase(small, [33, 130], 'f32', 'f32', 9);
    expect(err.y).toBeLessThan(TOL.f32);
    expect(err.rstd).toBeLessThan(TOL.rstd);
  });

  it('rejects mismatched shapes and types with a clear message', () => {
    const t = (shape: number[], dtype: DType = 'f32') => createTensor(gpu.device, shape, dtype);
    const x = t([3, 8]);
    const run = (w: Tensor, y: Tensor, r: Tensor) => submitPass(kernels, (p) => encodeRmsnorm(kernels, p, x, w, y, r, 1e-5));
    expect(() => run(t([7]), t([3, 8]), t([3]))).toThrow(/rmsnorm: w has shape \[7\], expected \[8\]/);
    expect(() => run(t([8]), t([24]), t([3]))).toThrow(/rmsnorm: y has shape \[24\], expected \[3,8\]/);
    expect(() => run(t([8]), t([3, 8]), t([3, 1]))).toThrow(/rmsnorm: rstd has shape \[3,1\], expected \[3\]/);
    if (gpu.info.f16) expect(() => run(t([8]), t([3, 8]), t([3], 'f16'))).toThrow(/rmsnorm: rstd must be f32, not f16/);
  });
});

import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import {
  createGradNormScratch,
  destroyGradNormScratch,
  encodeClipGradNorm,
  encodeGradNorm,
  GRADNORM_CHUNK,
  gradNormSlots,
  readGradNorm,
  setGradNormCount,
} from '../src/engine/gradnorm.ts';
import { gradNormRef } from '../src/engine/reference/gradnorm.ts';
import { createTensor, readTensor, uploadTensor, type Tensor } from '../src/engine/tensor.ts';
import { randomF32 } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';

// Norm relative to float64 (an f32 sum of squares in a tree: ~log2(n) roundings); clipped
// gradients per element relative. Measured on lavapipe (Mesa 25): norm 7.1e-8, Σ g² 9.4e-8,
// clipped gradients 9.4e-8.
const TOL = { norm: 1e-6, grads: 1e-6 };

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

/** LoRA-like gradients: A [r, K] and B [N, r] pairs of odd sizes, some far above one chunk; 19 of
 * them, so that the partial sums take three dispatches (GRADNORM_BATCH 8), the last one short. */
const SIZES = [8 * 75, 70 * 8, 16 * 4101, 9 * 16, 1, 4096, 4097, 3 * GRADNORM_CHUNK + 5, 12, 2 * GRADNORM_CHUNK, 333, 16 * 4101, 5, 4095, 70 * 8, 1, 8 * 75, 9000, 17];

async function clipCase(maxNorm: number, scale: number, seed: number) {
  const dev = gpu.device;
  const values = SIZES.map((n, i) => randomF32(n, seed + i).map((x) => x * scale * (i + 1)));
  const grads = values.map((v) => uploadTensor(dev, v, [v.length], 'f32'));
  const scratch = createGradNormScratch(kernels, grads);
  submitPass(kernels, (pass) => encodeClipGradNorm(kernels, pass, grads, scratch, maxNorm));
  const got = await readGradNorm(dev, scratch);
  const clipped = await Promise.all(grads.map((t) => readTensor(dev, t)));
  const ref = gradNormRef(values, maxNorm);
  let gradErr = 0;
  clipped.forEach((c, t) => c.forEach((x, i) => (gradErr = Math.max(gradErr, Math.abs(x - ref.clipped[t][i]) / Math.max(Math.abs(ref.clipped[t][i]), 1e-30)))));
  for (const t of grads) t.buffer.destroy();
  destroyGradNormScratch(scratch);
  return {
    norm: Math.abs(got.norm - ref.norm) / ref.norm,
    sumSquares: Math.abs(got.sumSquares - ref.norm ** 2) / ref.norm ** 2,
    coef: { got: got.coef, want: ref.coef },
    grads: gradErr,
  };
}

describe('global grad norm and clipping against float64 (torch clip_grad_norm_)', () => {
  it('clips when the norm exceeds max_norm (coef = max_norm / (norm + 1e-6))', async () => {
    const err = await clipCase(1.0, 0.01, 1);
    console.log(`gradnorm: norm ${err.norm.toExponential(2)}, Σ g² ${err.sumSquares.toExponential(2)}, coef ${err.coef.got} (float64 ${err.coef.want}), grads ${err.grads.toExponential(2)}`);
    expect(err.coef.want).toBeLessThan(1);
    expect(err.norm).toBeLessThan(TOL.norm);
    expect(err.sumSquares).toBeLessThan(TOL.norm);
    expect(Math.abs(err.coef.got - err.coef.want) / err.coef.want).toBeLessThan(TOL.norm);
    expect(err.grads).toBeLessThan(TOL.grads);
  });

  it('leaves the gradients as they are when the norm is below max_norm (coef 1)', async () => {
    const err = await clipCase(1e4, 0.01, 2);
    expect(err.coef.got).toBe(1);
    expect(err.grads).toBe(0);
    expect(err.norm).toBeLessThan(TOL.norm);
  });

  it('a norm checked by hand, and reading it without clipping (max_norm Infinity)', async () => {
    const dev = gpu.device;
    const a = uploadTensor(dev, new Float32Array([3, 0]), [2], 'f32');
    const b = uploadTensor(dev, new Float32Array([4]), [1], 'f32');
    const scratch = createGradNormScratch(kernels, [a, b]);
    submitPass(kernels, (pass) => encodeGradNorm(kernels, pass, [a, b], scratch));
    expect(await readGradNorm(dev, scratch)).toEqual({ norm: 5, coef: 1, sumSquares: 25, count: 1 });
    // clip to 1: coef = 1 / (5 + 1e-6).
    submitPass(kernels, (pass) => encodeClipGradNorm(kernels, pass, [a, b], scratch, 1));
    const coef = Math.fround(1 / Math.fround(5 + 1e-6));
    expect((await readGradNorm(dev, scratch)).coef).toBeCloseTo(coef, 7);
    expect((await readTensor(dev, b))[0]).toBeCloseTo(4 * coef, 6);
  });

  it('counts the finite norms from call to call (from where setGradNormCount put it)', async () => {
    const dev = gpu.device;
    const g = uploadTensor(dev, new Float32Array([3, 4]), [2], 'f32');
    const scratch = createGradNormScratch(kernels, [g]);
    const norm = () => submitPass(kernels, (pass) => encodeGradNorm(kernels, pass, [g], scratch, 1));
    norm();
    norm();
    expect((await readGradNorm(dev, scratch)).count).toBe(2);
    dev.queue.writeBuffer(g.buffer, 0, new Float32Array([Number.NaN, 1]));
    norm();
    dev.queue.writeBuffer(g.buffer, 4, new Float32Array([Number.POSITIVE_INFINITY]));
    norm();
    expect(await readGradNorm(dev, scratch)).toMatchObject({ count: 2 });
    setGradNormCount(dev, scratch, 41);
    dev.queue.writeBuffer(g.buffer, 0, new Float32Array([3, 4]));
    norm();
    expect(await readGradNorm(dev, scratch)).toMatchObject({ norm: 5, count: 42 });
    expect(() => setGradNormCount(dev, scratch, -1)).toThrow(/integer in \[0, 2\^24\)/);
  });

  it('rejects bad input with clear messages', () => {
    const t = (n: number) => createTensor(gpu.device, [n], 'f32');
    const g = [t(5000), t(10)];
    const small = createGradNormScratch(kernels, 1);
    const run = (grads: Tensor[], scratch = small, max = 1) => () => submitPass(kernels, (pass) => encodeGradNorm(kernels, pass, grads, scratch, max));
    expect(gradNormSlots(g)).toBe(3);
    expect(run(g)).toThrow(/3 partial sums, the scratch holds 1/);
    expect(run([g[0], g[0]], createGradNormScratch(kernels, 10))).toThrow(/listed twice/);
    expect(run([], small)).toThrow(/no gradients/);
    expect(run([g[1]], small, 0)).toThrow(/max norm must be > 0/);
  });
});

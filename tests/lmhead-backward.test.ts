import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import { uploadU32, createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../src/engine/tensor.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { LMHEAD_CHUNK_ALIGN } from '../src/engine/lmhead.ts';
import {
  createLmHeadBackwardScratch,
  encodeLmHeadBackward,
  lmHeadBackward,
  lmHeadBackwardChunkRows,
} from '../src/engine/lmhead-backward.ts';
import { lmHeadRef } from '../src/engine/reference/lmhead.ts';
import { lmHeadBackwardRef } from '../src/engine/reference/lmhead-backward.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { randomF32, rng } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';
import { asStored } from './gpu/values.ts';

// dh component-wise against float64: |got - want| / (Σ_v (p_v + [v = t]) |E_vk| / N) (the
// reference's dhScale). h and E as stored; lse is the float64 forward's rounded to f32 (what
// encodeLmHeadLoss hands over, within its tested 1e-5). The logits are f32 dot products whatever
// the storage type. Measured on lavapipe (Mesa 25): f32 dh 8.4e-7; f16 h/E with dh f32 9.0e-7;
// dh f16 6.6e-4 (its rounding, 2^-11, once per chunk as dh accumulates over the chunks). h and E
// have storage types of their own: training's f32 h against an f16 E keeps the f32 tolerance.
const TOL = { f32: 1e-5, f16: 2e-3 };
const UNTRAINED = 0xffffffff;

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

interface Case {
  rows: number;
  hidden: number;
  vocab: number;
  chunk: number;
  /** Storage type of h. */
  dtype: DType;
  /** Storage type of E (default: dtype). */
  embed?: DType;
  dh?: DType;
}

const embedType = (c: Case): DType => c.embed ?? c.dtype;

/** h in [-1, 1), E in [-0.5, 0.5); every 5th row untrained (two sentinels), row 0 targets V - 1. */
function data(c: Case, seed: number) {
  const h = asStored(randomF32(c.rows * c.hidden, seed), c.dtype);
  const embed = asStored(
    randomF32(c.vocab * c.hidden, seed + 1).map((v) => v * 0.5),
    embedType(c),
  );
  const next = rng(seed + 2);
  const targets = Uint32Array.from({ length: c.rows }, (_, r) =>
    r === 0 ? c.vocab - 1 : r % 5 === 4 ? (r % 10 === 4 ? UNTRAINED : c.vocab) : Math.floor(next() * c.vocab),
  );
  const normalizer = targets.filter((t) => t < c.vocab).length + 3; // as if other micro-batches had 3 more
  return { h, embed, targets, normalizer };
}

async function runCase(c: Case, seed: number, dh0?: Float32Array) {
  const x = data(c, seed);
  const lse = Float32Array.from(lmHeadRef(x.h, x.embed, x.targets, c).lse);
  const dev = gpu.device;
  const dhType = c.dh ?? 'f32';
  const t = {
    h: uploadTensor(dev, x.h, [c.rows, c.hidden], c.dtype),
    embed: uploadTensor(dev, x.embed, [c.vocab, c.hidden], embedType(c)),
    targets: uploadU32(dev, x.targets),
    lse: uploadTensor(dev, lse, [c.rows], 'f32'),
    // Without accumulation dh holds garbage beforehand, to be overwritten.
    dh: uploadTensor(dev, dh0 ?? randomF32(c.rows * c.hidden, seed + 9), [c.rows, c.hidden], dhType),
  };
  const scratch = createLmHeadBackwardScratch(kernels, c.rows, c.chunk);
  submitPass(kernels, (pass) => encodeLmHeadBackward(kernels, pass, t, scratch, { normalizer: x.normalizer, accumulate: !!dh0 }));
  const dh = await readTensor(dev, t.dh);
  for (const b of [t.h, t.embed, t.targets, t.lse, t.dh]) b.buffer.destroy();
  scratch.g.destroy();
  const ref = lmHeadBackwardRef(x.h, x.embed, x.targets, { ...c, normalizer: x.normalizer });
  const want = dh0 ? ref.dh.map((v, i) => v + dh0[i]) : ref.dh;
  const scale = dh0 ? ref.dhScale.map((v, i) => v + Math.abs(dh0[i])) : ref.dhScale;
  return { err: maxRelError(dh, want, scale), dh, x };
}

const label = (c: Case) =>
  `M ${c.rows}, H ${c.hidden}, V ${c.vocab}, chunk ${c.chunk}, ${c.dtype}${c.embed && c.embed !== c.dtype ? `, E ${c.embed}` : ''}${c.dh ? `, dh ${c.dh}` : ''}`;

describe('lm_head backward reference against finite differences of the float64 forward', () => {
  it('dh of L = Σ_trained (lse - logit[target]) / N (central differences)', () => {
    const c = { rows: 6, hidden: 5, vocab: 11 };
    const h = Float64Array.from(randomF32(c.rows * c.hidden, 1), (v) => 2 * v);
    const embed = Float64Array.from(randomF32(c.vocab * c.hidden, 2));
    const targets = [3, 10, UNTRAINED, 0, 11, 7]; // rows 2 and 4 untrained
    const normalizer = 9;
    const loss = (hh: ArrayLike<number>) => lmHeadRef(hh, embed, targets, c).loss.reduce((s, v) => s + v, 0) / normalizer;
    const ref = lmHeadBackwardRef(h, embed, targets, { ...c, normalizer });
    expect(Math.abs(ref.loss - loss(h))).toBeLessThan(1e-12);
    const fd = centralDifference(loss, h);
    let worst = 0;
    for (let i = 0; i < fd.length; i++) worst = Math.max(worst, Math.abs(fd[i] - ref.dh[i]));
    expect(worst).toBeLessThan(1e-9);
    expect([...ref.dh.subarray(2 * c.hidden, 3 * c.hidden)].every((v) => v === 0)).toBe(true);
  });
});

describe('lm_head backward against float64 (component-wise)', () => {
  // Several chunks with a partial last one; rows across the 64-row tile; a 1-row last chunk.
  const cases: Case[] = [
    { rows: 37, hidden: 40, vocab: 700, chunk: 256, dtype: 'f32' },
    { rows: 70, hidden: 64, vocab: 300, chunk: 256, dtype: 'f32' },
    { rows: 3, hidden: 17, vocab: 257, chunk: 256, dtype: 'f32' },
    { rows: 37, hidden: 40, vocab: 700, chunk: 512, dtype: 'f16' },
    { rows: 37, hidden: 40, vocab: 700, chunk: 256, dtype: 'f16', dh: 'f16' },
    // Training's mix: f32 h and dh, f16 E; odd H (E's rows are 90 bytes) and V, several chunks.
    { rows: 37, hidden: 45, vocab: 701, chunk: 256, dtype: 'f32', embed: 'f16' },
    { rows: 70, hidden: 33, vocab: 517, chunk: 512, dtype: 'f32', embed: 'f16' },
  ];
  for (const [i, c] of cases.entries()) {
    const tol = c.dh === 'f16' ? TOL.f16 : TOL.f32;
    it(`${label(c)} within ${tol}`, async (ctx) => {
      if ((c.dtype === 'f16' || embedType(c) === 'f16') && !gpu.info.f16) ctx.skip();
      const { err } = await runCase(c, 10 + 10 * i);
      console.log(`lm_head backward ${label(c)}: ${err.toExponential(2)}`);
      expect(err).toBeLessThan(tol);
      if (c.dh === 'f16') expect(err, 'f16 rounding is visible').toBeGreaterThan(1e-6);
    });
  }

  it('accumulates into dh when asked', async () => {
    const c: Case = { rows: 9, hidden: 33, vocab: 300, chunk: 256, dtype: 'f32' };
    const { err } = await runCase(c, 60, randomF32(9 * 33, 61).map((v) => v * 0.01));
    expect(err).toBeLessThan(TOL.f32);
  });

  it('micro-batches sharing the normaliser give the rows of the whole batch, and untrained rows get 0', async () => {
    const c: Case = { rows: 20, hidden: 24, vocab: 300, chunk: 256, dtype: 'f32' };
    const x = data(c, 70);
    const lse = Float32Array.from(lmHeadRef(x.h, x.embed, x.targets, c).lse);
    const dev = gpu.device;
    const embed = uploadTensor(dev, x.embed, [c.vocab, c.hidden], 'f32');
    const run = async (r0: number, r1: number) => {
      const h = uploadTensor(dev, x.h.slice(r0 * c.hidden, r1 * c.hidden), [r1 - r0, c.hidden], 'f32');
      const l = uploadTensor(dev, lse.slice(r0, r1), [r1 - r0], 'f32');
      const tg = uploadU32(dev, x.targets.slice(r0, r1));
      const dh = lmHeadBackward(kernels, h, embed, tg, l, { normalizer: x.normalizer, chunk: c.chunk });
      return readTensor(dev, dh);
    };
    const whole = await run(0, 20);
    const halves = [...(await run(0, 10)), ...(await run(10, 20))];
    expect(halves).toEqual([...whole]);
    for (let r = 0; r < c.rows; r++) {
      if (x.targets[r] < c.vocab) continue;
      expect([...whole.subarray(r * c.hidden, (r + 1) * c.hidden)].every((v) => v === 0)).toBe(true);
    }
  });
});

describe('lm_head backward plumbing', () => {
  it('chooses chunks within the scratch budget, aligned to 256 rows', () => {
    expect(lmHeadBackwardChunkRows(kernels, 2048, 4096, 'f32')).toBe(8192);
    expect(lmHeadBackwardChunkRows(kernels, 16384, 4096, 'f32')).toBe(1024);
    expect(lmHeadBackwardChunkRows(kernels, 1000, 64, 'f32', { scratchBytes: 3 * 2 ** 20 })).toBe(768);
    expect(lmHeadBackwardChunkRows(kernels, 100, 64, 'f32', { requested: 1000 }) % LMHEAD_CHUNK_ALIGN).toBe(0);
    expect(() => lmHeadBackwardChunkRows(kernels, 10000, 64, 'f32', { scratchBytes: 2 ** 20 })).toThrow(/exceed the scratch budget/);
    expect(() => createLmHeadBackwardScratch(kernels, 4, 100)).toThrow(/not a multiple of 256/);
    // E's storage type sets the binding limit on a chunk's rows (a 32 KiB binding: 512 f16 rows of 32, 256 f32).
    const small = new Kernels({ ...gpu, info: { ...gpu.info, limits: { ...gpu.info.limits, maxStorageBufferBindingSize: 32768 } } });
    expect(lmHeadBackwardChunkRows(small, 8, 32, 'f16')).toBe(512);
    expect(lmHeadBackwardChunkRows(small, 8, 32, 'f32')).toBe(256);
  });

  it('rejects bad shapes and parameters with clear messages', () => {
    const dev = gpu.device;
    const z = (shape: number[], dtype: DType = 'f32') => createTensor(dev, shape, dtype);
    const t = { h: z([4, 8]), embed: z([300, 8]), targets: uploadU32(dev, [1, 2, 3, 4]), lse: z([4]), dh: z([4, 8]) };
    const scratch = createLmHeadBackwardScratch(kernels, 4, 256);
    const run = (tt: typeof t, normalizer = 4) => () => submitPass(kernels, (p) => encodeLmHeadBackward(kernels, p, tt, scratch, { normalizer }));
    expect(run({ ...t, embed: z([300, 9]) })).toThrow(/h has shape \[4,8\], expected \[rows, 9\]/);
    expect(run({ ...t, targets: uploadU32(dev, [1, 2]) })).toThrow(/2 targets for 4 rows/);
    expect(run({ ...t, dh: z([4, 9]) })).toThrow(/dh has shape/);
    expect(run({ ...t, dh: t.h })).toThrow(/dh must be a buffer of its own/);
    expect(run({ ...t, dh: z([4, 8], 'f16') })).toThrow(/dh must be f32 or h's f32, not f16/);
    expect(run(t, 0)).toThrow(/normalizer must be > 0/);
    expect(run({ ...t, h: z([5, 8]), targets: uploadU32(dev, [1, 2, 3, 4, 5]), lse: z([5]), dh: z([5, 8]) })).toThrow(/holds 4 rows, not 5/);
    for (const x of Object.values(t) as (Tensor | { buffer: GPUBuffer })[]) x.buffer.destroy();
  });
});

function centralDifference(f: (x: Float64Array) => number, x: ArrayLike<number>, h = 1e-6): Float64Array {
  const out = new Float64Array(x.length);
  const xx = Float64Array.from(x);
  for (let i = 0; i < x.length; i++) {
    xx[i] = x[i] + h;
    const up = f(xx);
    xx[i] = x[i] - h;
    const down = f(xx);
    xx[i] = x[i];
    out[i] = (up - down) / (2 * h);
  }
  return out;
}

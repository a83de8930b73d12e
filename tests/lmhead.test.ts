import { beforeAll, describe, expect, it } from 'vitest';
import { uploadU32, createTensor, readTensor, uploadTensor, type DType } from '../src/engine/tensor.ts';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import {
  createLmHeadScratch,
  encodeLmHeadLoss,
  LMHEAD_CHUNK_ALIGN,
  lmHeadChunkRows,
  lmHeadLogits,
  lmHeadLoss,
} from '../src/engine/lmhead.ts';
import { lmHeadRef } from '../src/engine/reference/lmhead.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { randomF32, rng } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';
import { asStored } from './gpu/values.ts';

// Loss and lse: relative error per row against float64 (losses here are O(1..10)). The logits are
// f32 dot products over H, whatever the storage type (f16 values are exact in f32, and the
// reference takes the same f16 values), so f16 storage keeps the f32 tolerance. h and E have
// storage types of their own: training runs f32 h against an f16 E (`embed` in a case).
// Logits: component-wise relative error (reference/matmul.ts maxRelError).
const TOL = { loss: 1e-5, logits: 1e-5 };
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
}

const embedType = (c: Case): DType => c.embed ?? c.dtype;
const needsF16 = (c: Case) => c.dtype === 'f16' || embedType(c) === 'f16';
const name = (c: Case) => (c.embed && c.embed !== c.dtype ? `h ${c.dtype}, E ${c.embed}` : c.dtype);

/** h in [-1, 1), E in [-0.5, 0.5): logits of a few units, as a trained model's are. */
function data(c: Case, seed: number) {
  const h = asStored(randomF32(c.rows * c.hidden, seed), c.dtype);
  const embed = asStored(
    randomF32(c.vocab * c.hidden, seed + 1).map((v) => v * 0.5),
    embedType(c),
  );
  const next = rng(seed + 2);
  // Every 5th row untrained (two sentinels: 0xffffffff and V itself), the rest random ids,
  // row 0 the last id of the vocabulary (in the last, partial chunk).
  const targets = Uint32Array.from({ length: c.rows }, (_, r) =>
    r === 0 ? c.vocab - 1 : r % 5 === 4 ? (r % 10 === 4 ? UNTRAINED : c.vocab) : Math.floor(next() * c.vocab),
  );
  return { h, embed, targets };
}

function relErrors(got: Float32Array, want: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]) / Math.abs(want[i]);
    if (Number.isNaN(err)) return NaN;
    worst = Math.max(worst, err);
  }
  return worst;
}

describe(`lm_head loss in vocabulary chunks against float64 log-softmax (relative, < ${TOL.loss})`, () => {
  const cases: Case[] = [
    { rows: 33, hidden: 64, vocab: 1000, chunk: 256, dtype: 'f32' }, // 4 chunks, the last of 232
    { rows: 100, hidden: 100, vocab: 300, chunk: 256, dtype: 'f32' }, // rows > 64, odd row bytes
    { rows: 1, hidden: 64, vocab: 777, chunk: 8192, dtype: 'f32' }, // one chunk
    { rows: 33, hidden: 72, vocab: 1000, chunk: 512, dtype: 'f16' },
    // Training's mix: f32 h, f16 E; odd H (E's rows are 90 bytes) and V, several chunks.
    { rows: 37, hidden: 45, vocab: 701, chunk: 256, dtype: 'f32', embed: 'f16' },
    { rows: 70, hidden: 33, vocab: 517, chunk: 512, dtype: 'f32', embed: 'f16' },
  ];
  for (const [i, c] of cases.entries()) {
    it(`${name(c)} rows ${c.rows}, H ${c.hidden}, V ${c.vocab}, chunk ${c.chunk}`, async (ctx) => {
      if (needsF16(c) && !gpu.info.f16) ctx.skip();
      const { h, embed, targets } = data(c, 40 + i);
      const th = uploadTensor(gpu.device, h, [c.rows, c.hidden], c.dtype);
      const te = uploadTensor(gpu.device, embed, [c.vocab, c.hidden], embedType(c));
      const tt = uploadU32(gpu.device, targets);
      const out = lmHeadLoss(kernels, th, te, tt, { chunk: c.chunk });
      const lse = await readTensor(gpu.device, out.lse);
      const loss = await readTensor(gpu.device, out.loss);
      const ref = lmHeadRef(h, embed, targets, c);
      const trained = [...targets.keys()].filter((r) => targets[r] < c.vocab);
      const lossErr = relErrors(
        Float32Array.from(trained, (r) => loss[r]),
        Float64Array.from(trained, (r) => ref.loss[r]),
      );
      const lseErr = relErrors(lse, ref.lse);
      console.log(`lm_head ${name(c)} ${c.rows}x${c.hidden} V ${c.vocab}/${c.chunk}: loss ${lossErr.toExponential(2)}, lse ${lseErr.toExponential(2)}`);
      expect(lossErr).toBeLessThan(TOL.loss);
      expect(lseErr).toBeLessThan(TOL.loss);
      for (let r = 0; r < c.rows; r++) if (targets[r] >= c.vocab) expect(loss[r], `row ${r} is not trained`).toBe(0);
      for (const t of [th, te, out.lse, out.loss]) t.buffer.destroy();
    });
  }

  it('a loss checked by hand: logits [1, 0, 2], target 2', async () => {
    const h = uploadTensor(gpu.device, new Float32Array([1, 0]), [1, 2], 'f32');
    const e = uploadTensor(gpu.device, new Float32Array([1, 0, 0, 1, 2, 0]), [3, 2], 'f32');
    const { lse, loss } = lmHeadLoss(kernels, h, e, uploadU32(gpu.device, [2]));
    const want = Math.log(Math.E + 1 + Math.E ** 2);
    expect((await readTensor(gpu.device, lse))[0]).toBeCloseTo(want, 6);
    expect((await readTensor(gpu.device, loss))[0]).toBeCloseTo(want - 2, 6);
  });
});

describe(`lm_head logits of a few rows (generation), component-wise < ${TOL.logits}`, () => {
  const cases: (Case & { take: number })[] = [
    { rows: 20, take: 1, hidden: 64, vocab: 1000, chunk: 256, dtype: 'f32' }, // the last row
    { rows: 20, take: 7, hidden: 100, vocab: 300, chunk: 256, dtype: 'f32' },
    { rows: 5, take: 1, hidden: 72, vocab: 1000, chunk: 512, dtype: 'f16' },
    { rows: 19, take: 5, hidden: 45, vocab: 701, chunk: 256, dtype: 'f32', embed: 'f16' },
    // One row takes the matrix-vector kernel: a hidden size off its 32 lanes, chunks off its 8 rows.
    { rows: 3, take: 1, hidden: 45, vocab: 701, chunk: 256, dtype: 'f32', embed: 'f16' },
    { rows: 1, take: 1, hidden: 2048, vocab: 333, chunk: 256, dtype: 'f16' },
  ];
  for (const [i, c] of cases.entries()) {
    it(`${name(c)}: the last ${c.take} of ${c.rows} rows, H ${c.hidden}, V ${c.vocab}, chunk ${c.chunk}`, async (ctx) => {
      if (needsF16(c) && !gpu.info.f16) ctx.skip();
      const { h, embed } = data(c, 60 + i);
      const th = uploadTensor(gpu.device, h, [c.rows, c.hidden], c.dtype);
      const te = uploadTensor(gpu.device, embed, [c.vocab, c.hidden], embedType(c));
      const got = await readTensor(gpu.device, lmHeadLogits(kernels, th, te, { rows: c.take, chunk: c.chunk }));
      const first = c.rows - c.take;
      const ref = lmHeadRef(h.subarray(first * c.hidden), embed, new Uint32Array(c.take), { ...c, rows: c.take });
      const err = maxRelError(got, ref.logits, ref.logitScale);
      console.log(`lm_head logits ${name(c)} last ${c.take}/${c.rows} V ${c.vocab}: ${err.toExponential(2)}`);
      expect(err).toBeLessThan(TOL.logits);
    });
  }
});

describe('lm_head plumbing', () => {
  it('chunks: multiples of 256 rows that fit one binding', () => {
    expect(lmHeadChunkRows(kernels, 4096, 'f16', 1000)).toBe(768);
    const limit = gpu.info.limits.maxStorageBufferBindingSize;
    const big = lmHeadChunkRows(kernels, 4096, 'f32', 1 << 30);
    expect(big % LMHEAD_CHUNK_ALIGN).toBe(0);
    expect(big * 4096 * 4).toBeLessThanOrEqual(limit);
    expect(() => createLmHeadScratch(kernels, 4, 100)).toThrow(/not a multiple of 256/);
  });

  it("chunks are sized by E's storage type, and a chunk too wide for E's type is refused", () => {
    // A binding limit of 32 KiB: 512 rows of 32 f16, 256 rows of 32 f32.
    const small = new Kernels({ ...gpu, info: { ...gpu.info, limits: { ...gpu.info.limits, maxStorageBufferBindingSize: 32768 } } });
    expect(lmHeadChunkRows(small, 32, 'f16')).toBe(512);
    expect(lmHeadChunkRows(small, 32, 'f32')).toBe(256);
    const h = createTensor(gpu.device, [3, 32], 'f32');
    const e = createTensor(gpu.device, [1000, 32], 'f32');
    const lse = createTensor(gpu.device, [3], 'f32');
    const loss = createTensor(gpu.device, [3], 'f32');
    const scratch = createLmHeadScratch(small, 3, 512); // sized for an f16 E
    expect(() => submitPass(small, (p) => encodeLmHeadLoss(small, p, { h, embed: e, targets: uploadU32(gpu.device, [1, 2, 3]), lse, loss }, scratch))).toThrow(
      /a chunk of 512 rows of f32 E \(65536 B\) exceeds maxStorageBufferBindingSize 32768/,
    );
    for (const b of [h.buffer, e.buffer, lse.buffer, loss.buffer, scratch.partial, scratch.tlogit, scratch.run]) b.destroy();
  });

  it('rejects mismatched shapes with clear messages', () => {
    const h = createTensor(gpu.device, [3, 64], 'f32');
    const e = createTensor(gpu.device, [300, 64], 'f32');
    const lse = createTensor(gpu.device, [3], 'f32');
    const loss = createTensor(gpu.device, [3], 'f32');
    const scratch = createLmHeadScratch(kernels, 3, 256);
    const run = (f: (pass: GPUComputePassEncoder) => void) => () => submitPass(kernels, f);
    expect(run((p) => encodeLmHeadLoss(kernels, p, { h, embed: e, targets: uploadU32(gpu.device, [1, 2]), lse, loss }, scratch))).toThrow(
      /2 targets for 3 rows/,
    );
    const e2 = createTensor(gpu.device, [300, 65], 'f32');
    expect(run((p) => encodeLmHeadLoss(kernels, p, { h, embed: e2, targets: uploadU32(gpu.device, [1, 2, 3]), lse, loss }, scratch))).toThrow(
      /h has shape \[3,64\], expected \[rows, 65\]/,
    );
    expect(() => lmHeadLogits(kernels, h, e, { rows: 4 })).toThrow(/outside h's 3/);
  });
});

import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import { encodeEmbedding } from '../src/engine/embedding.ts';
import { uploadU32, createTensor, readTensor, uploadTensor, type DType } from '../src/engine/tensor.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { randomF32, rng } from '../src/util/random.ts';
import { embeddingRef } from '../src/engine/reference/embedding.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../src/io/dtype.ts';
import { testGpu } from './gpu/device.ts';

// [vocab, hidden, tokens]
const SHAPES = [
  [50, 64, 1],
  [37, 100, 7],
  [1000, 130, 33],
];

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

/** Random ids, about one in eight out of range (vocab, vocab + 5, or 0xffffffff). */
function randomIds(tokens: number, vocab: number, seed: number): Uint32Array {
  const next = rng(seed);
  const bad = [vocab, vocab + 5, 0xffffffff];
  return Uint32Array.from({ length: tokens }, () => (next() < 0.125 ? bad[Math.floor(next() * 3)] : Math.floor(next() * vocab)));
}

/** Max |got - want|: a lookup is a copy, so the error must be exactly 0 (f16 -> f32 is exact). */
async function embeddingCase(k: Kernels, [vocab, hidden, tokens]: number[], dtype: DType, out: DType, seed: number): Promise<number> {
  let table: Float32Array = randomF32(vocab * hidden, seed).map((x) => x * 3);
  if (dtype === 'f16') table = f16ArrayToF32(f32ArrayToF16(table));
  const ids = randomIds(tokens, vocab, seed + 1);
  const tt = uploadTensor(gpu.device, table, [vocab, hidden], dtype);
  const tids = uploadU32(gpu.device, ids);
  const tout = createTensor(gpu.device, [tokens, hidden], out);
  submitPass(k, (pass) => encodeEmbedding(k, pass, tt, tids, tout));
  const got = await readTensor(gpu.device, tout);
  for (const b of [tt.buffer, tids.buffer, tout.buffer]) b.destroy();
  const want = embeddingRef(table, ids, vocab, hidden);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  return Number.isNaN(got.reduce((a, b) => a + b, 0)) ? NaN : worst;
}

describe('embedding lookup against float64 (exact)', () => {
  const modes = [
    { dtype: 'f32', out: 'f32' },
    { dtype: 'f16', out: 'f32' }, // f16 table into the f32 residual stream
    { dtype: 'f16', out: 'f16' },
  ] as const;
  for (const { dtype, out } of modes) {
    it(`table ${dtype}, out ${out}: shapes ${SHAPES.map((s) => s.join('x')).join(', ')}`, async (ctx) => {
      if (dtype === 'f16' && !gpu.info.f16) ctx.skip();
      for (const [i, shape] of SHAPES.entries()) {
        expect(await embeddingCase(kernels, shape, dtype, out, 40 + i), `[${shape}]`).toBe(0);
      }
    });
  }
});

describe('embedding plumbing', () => {
  it('looks up rows checked by hand, zeros for out-of-range ids', async () => {
    const table = uploadTensor(gpu.device, new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2], 'f32');
    const ids = uploadU32(gpu.device, [2, 0, 3, 0xffffffff, 1]);
    const out = createTensor(gpu.device, [5, 2], 'f32');
    submitPass(kernels, (pass) => encodeEmbedding(kernels, pass, table, ids, out));
    expect([...(await readTensor(gpu.device, out))]).toEqual([5, 6, 1, 2, 0, 0, 0, 0, 3, 4]);
  });

  it('uses a 2-D grid past the per-dimension workgroup limit', async () => {
    // A device limit of 5 workgroups per dimension: 33 x 130 values = 17 workgroups -> grid 5 x 4.
    const small = new Kernels({ ...gpu, info: { ...gpu.info, limits: { ...gpu.info.limits, maxComputeWorkgroupsPerDimension: 5 } } });
    expect(await embeddingCase(small, [1000, 130, 33], 'f32', 'f32', 7)).toBe(0);
  });

  it('rejects mismatched shapes with a clear message', () => {
    const table = createTensor(gpu.device, [10, 4], 'f32');
    const ids = uploadU32(gpu.device, [1, 2, 3]);
    const run = (t: typeof table, out: typeof table) => submitPass(kernels, (p) => encodeEmbedding(kernels, p, t, ids, out));
    expect(() => run(table, createTensor(gpu.device, [3, 5], 'f32'))).toThrow(/embedding: out has shape \[3,5\], expected \[3,4\]/);
    expect(() => run(createTensor(gpu.device, [40], 'f32'), createTensor(gpu.device, [3, 4], 'f32'))).toThrow(
      /embedding: table has shape \[40\], expected \[vocab, hidden\]/,
    );
  });
});

import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import { uploadU32, createTensor, readTensor, uploadTensor, type DType } from '../src/engine/tensor.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { randomF32, rng } from '../src/util/random.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { ropeRef } from '../src/engine/reference/rope.ts';
import { encodeRope, encodeRopeAppend } from '../src/engine/rope.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../src/io/dtype.ts';
import { testGpu } from './gpu/device.ts';

// [tokens, heads, headDim]: q and k shapes of GQA (4 q heads, 1 kv head), odd token counts,
// head_dim 2, 64 (Llama 3.2 1B), 100 (odd half) and 128 (Llama 3.1 8B).
const SHAPES = [
  [1, 1, 2],
  [7, 4, 64],
  [7, 1, 64],
  [33, 3, 100],
  [33, 2, 128],
];

// Component-wise error: |got - want| / (|x1 cos| + |x2 sin|), want = the exact rotation by the
// f32-rounded angle (reference/rope.ts). The shader reduces angles exactly, so the error does not
// grow with the position: measured f32 1.7e-7 with positions up to 131071 on lavapipe (Mesa 25),
// 2.1e-7 on an H200 (whose built-in cos/sin were off by 1.2 there); f16 storage 4.9e-4.
const TOL = { f32: 1e-6, f16: 1e-3 };
const F16_MIN_NORMAL = 2 ** -14;

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

const round16 = (x: Float32Array) => f16ArrayToF32(f32ArrayToF16(x));

/**
 * Arbitrary frequencies, not theta's: log-uniform in [1e-6, 1] with inv[0] = 1, some divided by
 * 8 as llama3 scaling does to low frequencies, so any scaling is covered by construction.
 */
function arbitraryInvFreq(half: number, seed: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: half }, (_, i) => (i === 0 ? 1 : 10 ** (-6 * next()) / (next() < 0.3 ? 8 : 1)));
}

/** Packed rows: documents of random length, positions restarting at 0 in each. */
function packedPositions(tokens: number, seed: number): Uint32Array {
  const next = rng(seed);
  const out = new Uint32Array(tokens);
  for (let t = 0, p = 0; t < tokens; t++, p++) {
    if (next() < 0.15) p = 0;
    out[t] = p;
  }
  return out;
}

/** Far positions, up to Llama 3's 131072, where angles reach 1.3e5 radians. */
function farPositions(tokens: number, seed: number): Uint32Array {
  const next = rng(seed);
  return Uint32Array.from({ length: tokens }, (_, t) => (t === 0 ? 131071 : Math.floor(next() * 131072)));
}

async function ropeCase(k: Kernels, [tokens, heads, headDim]: number[], dtype: DType, positions: Uint32Array, seed: number, inverse = false) {
  let x: Float32Array = randomF32(tokens * heads * headDim, seed).map((v) => v * 3);
  if (dtype === 'f16') x = round16(x);
  const inv = arbitraryInvFreq(headDim / 2, seed + 1);
  const tx = uploadTensor(gpu.device, x, [tokens, heads, headDim], dtype);
  const tp = uploadU32(gpu.device, positions);
  const ti = uploadTensor(gpu.device, inv, [headDim / 2], 'f32');
  submitPass(k, (pass) => encodeRope(k, pass, tx, tp, ti, { inverse }));
  const got = await readTensor(gpu.device, tx);
  for (const b of [tx.buffer, tp.buffer, ti.buffer]) b.destroy();
  const ref = ropeRef(x, positions, inv, heads, headDim, inverse);
  const scale = dtype === 'f16' ? ref.scale.map((s) => Math.max(s, F16_MIN_NORMAL)) : ref.scale;
  return maxRelError(got, ref.y, scale);
}

describe('rope (in place, rotate_half pairs) against float64', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const inverse of [false, true]) {
      it(`${dtype}${inverse ? ' inverse (backward)' : ''}: shapes ${SHAPES.map((s) => s.join('x')).join(', ')} within ${TOL[dtype]}`, async (ctx) => {
        if (dtype === 'f16' && !gpu.info.f16) ctx.skip();
        for (const [i, shape] of SHAPES.entries()) {
          const seed = 80 + 3 * i;
          const packed = await ropeCase(kernels, shape, dtype, packedPositions(shape[0], seed), seed, inverse);
          const far = await ropeCase(kernels, shape, dtype, farPositions(shape[0], seed), seed, inverse);
          expect(packed, `[${shape}] packed positions`).toBeLessThan(TOL[dtype]);
          expect(far, `[${shape}] far positions`).toBeLessThan(TOL[dtype]);
          if (dtype === 'f16' && shape[0] > 1) expect(far, 'f16 rounding is visible').toBeGreaterThan(1e-5);
        }
      });
    }
  }
});

describe('rope plumbing', () => {
  it('rotates pairs (d, d + headDim/2) by position · inv_freq, checked by hand', async () => {
    // headDim 4: pairs (0, 2) at angle pos · 1 and (1, 3) at pos · 0.5; x = [1, 1, 0, 0] per token.
    const x = uploadTensor(gpu.device, new Float32Array([1, 1, 0, 0, 1, 1, 0, 0]), [2, 1, 4], 'f32');
    const pos = uploadU32(gpu.device, [0, 1]);
    const inv = uploadTensor(gpu.device, new Float32Array([1, 0.5]), [2], 'f32');
    submitPass(kernels, (pass) => encodeRope(kernels, pass, x, pos, inv));
    const got = await readTensor(gpu.device, x);
    const want = [1, 1, 0, 0, Math.cos(1), Math.cos(0.5), Math.sin(1), Math.sin(0.5)];
    for (let i = 0; i < 8; i++) expect(got[i]).toBeCloseTo(want[i], 6);
    // The inverse rotation undoes it.
    submitPass(kernels, (pass) => encodeRope(kernels, pass, x, pos, inv, { inverse: true }));
    const back = await readTensor(gpu.device, x);
    for (let i = 0; i < 8; i++) expect(back[i]).toBeCloseTo([1, 1, 0, 0][i % 4], 6);
  });

  it('append: q roped in place, k roped into the K cache and v copied into the V cache at rows = positions, the rest of the caches untouched', async () => {
    for (const dtype of ['f32', 'f16'] as const) {
      if (dtype === 'f16' && !gpu.info.f16) continue;
      const [tokens, heads, kvHeads, D, capacity, at] = [3, 4, 2, 64, 11, 5];
      const seed = 90;
      const stored = (x: Float32Array) => (dtype === 'f16' ? round16(x) : x);
      const q = stored(randomF32(tokens * heads * D, seed));
      const k = stored(randomF32(tokens * kvHeads * D, seed + 1));
      const v = stored(randomF32(tokens * kvHeads * D, seed + 2));
      const kc = stored(randomF32(capacity * kvHeads * D, seed + 3));
      const vc = stored(randomF32(capacity * kvHeads * D, seed + 4));
      const positions = Uint32Array.from({ length: tokens }, (_, i) => at + i);
      const inv = arbitraryInvFreq(D / 2, seed + 5);
      const [tq, tk, tv] = [uploadTensor(gpu.device, q, [tokens, heads, D], dtype), uploadTensor(gpu.device, k, [tokens, kvHeads, D], dtype), uploadTensor(gpu.device, v, [tokens, kvHeads, D], dtype)];
      const [tkc, tvc] = [uploadTensor(gpu.device, kc, [capacity, kvHeads, D], dtype), uploadTensor(gpu.device, vc, [capacity, kvHeads, D], dtype)];
      const [tp, ti] = [uploadU32(gpu.device, positions), uploadTensor(gpu.device, inv, [D / 2], 'f32')];
      submitPass(kernels, (pass) => encodeRopeAppend(kernels, pass, tq, { k: tk, v: tv, kCache: tkc, vCache: tvc }, tp, ti));
      const [gq, gk, gkc, gvc] = await Promise.all([tq, tk, tkc, tvc].map((t) => readTensor(gpu.device, t)));
      const scale = (s: Float64Array) => (dtype === 'f16' ? s.map((x) => Math.max(x, F16_MIN_NORMAL)) : s);
      const rq = ropeRef(q, positions, inv, heads, D);
      const rk = ropeRef(k, positions, inv, kvHeads, D);
      expect(maxRelError(gq, rq.y, scale(rq.scale)), `${dtype} q`).toBeLessThan(TOL[dtype]);
      const row = kvHeads * D;
      expect(maxRelError(gkc.subarray(at * row, (at + tokens) * row), rk.y, scale(rk.scale)), `${dtype} k in the cache`).toBeLessThan(TOL[dtype]);
      expect(Array.from(gk), `${dtype} k itself`).toEqual(Array.from(k));
      expect(Array.from(gvc.subarray(at * row, (at + tokens) * row)), `${dtype} v in the cache`).toEqual(Array.from(v));
      for (const [got, was] of [[gkc, kc], [gvc, vc]]) {
        expect(Array.from(got.subarray(0, at * row))).toEqual(Array.from(was.subarray(0, at * row)));
        expect(Array.from(got.subarray((at + tokens) * row))).toEqual(Array.from(was.subarray((at + tokens) * row)));
      }
      for (const t of [tq, tk, tv, tkc, tvc, ti]) t.buffer.destroy();
      tp.buffer.destroy();
    }
    // A position past the capacity writes nothing (and nothing out of bounds).
    const q1 = uploadTensor(gpu.device, new Float32Array(8).fill(1), [1, 1, 8], 'f32');
    const k1 = uploadTensor(gpu.device, new Float32Array(8).fill(2), [1, 1, 8], 'f32');
    const cache = uploadTensor(gpu.device, new Float32Array(16).fill(7), [2, 1, 8], 'f32');
    const inv = uploadTensor(gpu.device, new Float32Array(4).fill(0), [4], 'f32');
    submitPass(kernels, (pass) => encodeRopeAppend(kernels, pass, q1, { k: k1, v: k1, kCache: cache, vCache: cache }, uploadU32(gpu.device, [2]), inv));
    expect(Array.from(await readTensor(gpu.device, cache))).toEqual(new Array(16).fill(7));
    const wrong = createTensor(gpu.device, [2, 2, 8], 'f32');
    expect(() => submitPass(kernels, (pass) => encodeRopeAppend(kernels, pass, q1, { k: k1, v: k1, kCache: wrong, vCache: wrong }, uploadU32(gpu.device, [0]), inv))).toThrow(/rope: K cache has shape \[2,2,8\], expected \[2,1,8\]/);
  });

  it('uses a 2-D grid past the per-dimension workgroup limit', async () => {
    // A device limit of 5 workgroups per dimension: 33 x 3 x 50 pairs = 20 workgroups -> grid 5 x 4.
    const small = new Kernels({ ...gpu, info: { ...gpu.info, limits: { ...gpu.info.limits, maxComputeWorkgroupsPerDimension: 5 } } });
    expect(await ropeCase(small, [33, 3, 100], 'f32', packedPositions(33, 1), 2)).toBeLessThan(TOL.f32);
  });

  it('rejects malformed shapes with a clear message', () => {
    const pos = uploadU32(gpu.device, [0, 1, 2]);
    const inv = createTensor(gpu.device, [4], 'f32');
    const run = (x: number[], p = pos, i = inv) => submitPass(kernels, (pass) => encodeRope(kernels, pass, createTensor(gpu.device, x, 'f32'), p, i));
    expect(() => run([3, 2, 9])).toThrow(/rope: x has shape \[3,2,9\], expected \[tokens, heads, headDim\] with headDim even/);
    expect(() => run([3, 16])).toThrow(/expected \[tokens, heads, headDim\]/);
    expect(() => run([4, 2, 8])).toThrow(/rope: 3 positions for 4 tokens/);
    expect(() => run([3, 2, 10])).toThrow(/rope: invFreq has shape \[4\], expected \[5\]/);
    if (gpu.info.f16) expect(() => run([3, 2, 8], pos, createTensor(gpu.device, [4], 'f16'))).toThrow(/invFreq must be f32/);
  });
});

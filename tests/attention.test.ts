import { beforeAll, describe, expect, it } from 'vitest';
import {
  ATTENTION_ROWS,
  ATTENTION_KEYS_PER_TILE,
  attentionVariant,
  attentionWorkgroupBytes,
  ATTENTION_DECODE_MAX_TQ,
  attentionDecodeBytes,
  encodeAttention,
  type AttentionShape,
  type AttentionTensors,
} from '../src/engine/attention.ts';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import { uploadU32, createTensor, readTensor, uploadTensor, type DType } from '../src/engine/tensor.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { attentionRef, segmentIdsOf } from '../src/engine/reference/attention.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../src/io/dtype.ts';
import { randomF32 } from '../src/util/random.ts';
import { testGpu, withDefaultLimitsKernels } from './gpu/device.ts';

// Errors: o component-wise, |got - want| / Σ_j p_j |v_jd| (maxRelError with the reference's
// oScale); lse absolute below 1, relative above: |got - want| / max(1, |want|). The reference
// takes the inputs as stored (f16-rounded for f16), so f16 error is the rounding of o to f16.
// Measured on lavapipe (Mesa 25), worst case over the cases below (the forward kernel): f32 o
// 1.1e-6, lse 6.5e-7; f16 storage o 4.8e-4 (2^-11 = 4.9e-4), lse 5.4e-7.
const TOL = { f32: { o: 1e-5, lse: 1e-5 }, f16: { o: 2e-3, lse: 1e-5 } };

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

const round16 = (x: Float32Array) => f16ArrayToF32(f32ArrayToF16(x));

interface Case extends AttentionShape {
  /** Lengths of the documents of each batch row (the rest of the row is padding, segment 0). */
  docs?: number[][];
  /** Explicit segment ids [batch, skv] instead of docs. */
  segments?: number[];
  seed: number;
}

/** Inputs of a case: q/k/v uniform in [-2, 2) (rounded to f16 for f16 storage). */
function inputs(c: Case, dtype: DType) {
  const { batch, tq, skv, heads, kvHeads, headDim: D } = c;
  const gen = (n: number, seed: number) => {
    const x = randomF32(n, seed).map((v) => 2 * v);
    return dtype === 'f16' ? round16(x) : x;
  };
  return {
    q: gen(batch * tq * heads * D, c.seed),
    k: gen(batch * skv * kvHeads * D, c.seed + 1),
    v: gen(batch * skv * kvHeads * D, c.seed + 2),
    seg: c.segments ? Uint32Array.from(c.segments) : c.docs ? segmentIdsOf(c.docs, skv) : undefined,
  };
}

/** Runs the kernel on explicit inputs (on another device if `on` is given); o and lse as f32. */
async function runAttention(
  c: AttentionShape,
  dtype: DType,
  x: { q: Float32Array; k: Float32Array; v: Float32Array; seg?: Uint32Array },
  split = false,
  on: Kernels = kernels,
): Promise<{ o: Float32Array; lse: Float32Array }> {
  const { batch, tq, skv, heads, kvHeads, headDim: D } = c;
  const dev = on.device;
  const q = uploadTensor(dev, x.q, [batch, tq, heads, D], dtype);
  const k = uploadTensor(dev, x.k, [batch, skv, kvHeads, D], dtype);
  const v = uploadTensor(dev, x.v, [batch, skv, kvHeads, D], dtype);
  const o = createTensor(dev, [batch, tq, heads, D], dtype);
  const lse = createTensor(dev, [batch, heads, tq], 'f32');
  const segmentIds = x.seg ? uploadU32(dev, x.seg) : undefined;
  const decodePartials = split ? dev.createBuffer({ size: batch * attentionDecodeBytes(heads, D, skv), usage: GPUBufferUsage.STORAGE }) : undefined;
  submitPass(on, (pass) => encodeAttention(on, pass, { q, k, v, o, lse, segmentIds, decodePartials }, c));
  const out = { o: await readTensor(dev, o), lse: await readTensor(dev, lse) };
  decodePartials?.destroy();
  for (const t of [q, k, v, o, lse]) t.buffer.destroy();
  segmentIds?.buffer.destroy();
  return out;
}

/** Max errors of o and lse against the float64 reference. */
async function attentionErrors(c: Case, dtype: DType, split = false, on: Kernels = kernels) {
  const x = inputs(c, dtype);
  const got = await runAttention(c, dtype, x, split, on);
  const ref = attentionRef(x.q, x.k, x.v, x.seg, c);
  let lseErr = 0;
  for (let i = 0; i < ref.lse.length; i++) {
    const e = Math.abs(got.lse[i] - ref.lse[i]) / Math.max(1, Math.abs(ref.lse[i]));
    lseErr = Number.isNaN(e) ? NaN : Math.max(lseErr, e);
  }
  return { o: maxRelError(got.o, ref.o, ref.oScale), lse: lseErr };
}

const name = (c: Case) =>
  `B${c.batch} T${c.tq} S${c.skv} H${c.heads}/${c.kvHeads} D${c.headDim}` +
  (c.causalOffset !== undefined ? ` offset ${c.causalOffset}` : '') +
  (c.window ? ` window ${c.window}` : '') +
  (c.scale !== undefined ? ` scale ${c.scale}` : '') +
  (c.docs ? ` docs ${JSON.stringify(c.docs)}` : '') +
  (c.segments ? ` segments ${runs(c.segments)}` : '');

/** Segment ids as runs, e.g. 1x8 2x8 1x8. */
const runs = (seg: number[]) =>
  seg
    .reduce<[number, number][]>((acc, x) => {
      const last = acc[acc.length - 1];
      if (last && last[0] === x) last[1]++;
      else acc.push([x, 1]);
      return acc;
    }, [])
    .map(([x, n]) => `${x}x${n}`)
    .join(' ');

const causal = (batch: number, t: number, heads: number, kvHeads: number, headDim: number, seed: number): Case => ({
  batch,
  tq: t,
  skv: t,
  heads,
  kvHeads,
  headDim,
  seed,
});

const run = (id: number, n: number) => new Array<number>(n).fill(id);

// Training rows: causal, odd lengths around the 64-row query block and the key tiles.
const CAUSAL: Case[] = [
  causal(1, 1, 4, 2, 16, 1),
  causal(2, 5, 4, 4, 24, 2),
  causal(1, 33, 8, 1, 64, 3),
  causal(2, 70, 4, 2, 24, 4),
  causal(1, 70, 8, 1, 16, 5),
  { ...causal(1, 33, 4, 2, 24, 6), scale: 0.3 }, // a scale other than 1/sqrt(D)
  causal(1, 21, 2, 1, 10, 7), // a head dim that is not a multiple of 4 (zero-padded vec4)
];
// Packed rows of 48: two and three documents, and one with a padded tail (segment 0).
const PACKED: Case[] = [
  { ...causal(3, 48, 4, 2, 16, 10), docs: [[20, 28], [13, 17, 18], [30, 10]] },
  { ...causal(3, 48, 8, 1, 24, 11), docs: [[20, 28], [13, 17, 18], [5, 33]] },
  // Documents across the 64-row query blocks and key tiles, and a padded tail.
  { ...causal(1, 150, 4, 4, 16, 12), docs: [[3, 70, 1, 50]] },
  // Ids need not be contiguous: a query attends every earlier key with its id, padding between.
  {
    ...causal(1, 48, 4, 2, 16, 13),
    segments: [...run(1, 8), ...run(2, 8), ...run(1, 8), ...run(0, 4), ...run(2, 12), ...run(3, 8)],
  },
];
// Decode against a KV cache: tq new queries at positions skv - tq .. skv - 1.
const DECODE: Case[] = [
  { ...causal(1, 1, 4, 2, 24, 20), skv: 40 },
  { ...causal(2, 3, 8, 1, 24, 21), skv: 40 },
  { ...causal(1, 3, 4, 4, 16, 22), skv: 40, causalOffset: 30 }, // keys past the last query unused
];
// Sliding window (Mistral), alone and with packing.
const WINDOW: Case[] = [
  { ...causal(1, 70, 4, 2, 16, 30), window: 16 },
  { ...causal(2, 130, 4, 2, 24, 31), window: 7 },
  { ...causal(1, 3, 4, 2, 16, 32), skv: 40, window: 5 },
  { ...causal(3, 48, 4, 2, 16, 33), window: 9, docs: [[20, 28], [13, 17, 18], [30, 10]] },
];

describe(`attention f32 against float64 (o component-wise ${TOL.f32.o}, lse ${TOL.f32.lse})`, () => {
  for (const [group, cases] of Object.entries({ causal: CAUSAL, packed: PACKED, decode: DECODE, window: WINDOW })) {
    for (const c of cases) {
      it(`${group}: ${name(c)}`, async () => {
        const err = await attentionErrors(c, 'f32');
        expect(err.o).toBeLessThan(TOL.f32.o);
        expect(err.lse).toBeLessThan(TOL.f32.lse);
      });
    }
  }
});

// The head dim is a run-time parameter: one pipeline per storage type covers every case.
const F16_CASES: Case[] = [CAUSAL[2], CAUSAL[3], PACKED[0], PACKED[1], DECODE[1], WINDOW[3]];
describe(`attention f16 storage, f32 accumulation (o ${TOL.f16.o}, lse ${TOL.f16.lse})`, () => {
  for (const c of F16_CASES) {
    it(name(c), async (ctx) => {
      if (!gpu.info.f16) ctx.skip();
      const err = await attentionErrors(c, 'f16');
      expect(err.o).toBeLessThan(TOL.f16.o);
      expect(err.lse).toBeLessThan(TOL.f16.lse);
      expect(err.o).toBeGreaterThan(1e-6); // f16 really was used: o carries its rounding
    });
  }
});

// Shapes at the kernel's tile edges (64 query rows a workgroup, 64 keys a tile, head dims up to 64
// and up to 128 in two register blocks), run with both variants: the one this device picks
// (double-buffered, weights of a whole tile in workgroup memory) and the one of WebGPU's 16 KiB
// default (weights a quarter tile at a time).
const EDGE: Case[] = [
  causal(1, 63, 2, 1, 10, 70),
  causal(1, 64, 2, 2, 64, 71),
  causal(1, 65, 4, 2, 128, 72),
  causal(1, 129, 2, 1, 128, 73),
  causal(2, 129, 4, 2, 65, 74), // the second register block with a partial vec4
  { ...causal(1, 129, 2, 1, 64, 75), docs: [[63, 2, 64]] }, // documents ending at tile edges
  { ...causal(1, 130, 2, 1, 32, 76), window: 64 }, // a window of exactly one tile
  { ...causal(1, 65, 2, 1, 16, 77), skv: 200 }, // key range from an offset, across tiles
  { ...causal(1, 100, 2, 1, 128, 78), skv: 150, window: 70, docs: [[10, 140]] },
];

/** Runs `f` with the kernels built as a device with `bytes` of workgroup memory would build them. */
async function withWorkgroupBytes<R>(bytes: number, f: () => Promise<R>): Promise<R> {
  const limits = gpu.info.limits;
  const saved = limits.maxComputeWorkgroupStorageSize;
  limits.maxComputeWorkgroupStorageSize = Math.min(saved, bytes);
  try {
    return await f();
  } finally {
    limits.maxComputeWorkgroupStorageSize = saved;
  }
}

describe('attention at tile edges, both variants, against float64', () => {
  for (const bytes of [Infinity, 16384]) {
    for (const c of EDGE) {
      it(`f32 ${bytes === Infinity ? 'device' : '16 KiB'} variant: ${name(c)}`, async () => {
        const err = await withWorkgroupBytes(bytes, () => attentionErrors(c, 'f32'));
        expect(err.o).toBeLessThan(TOL.f32.o);
        expect(err.lse).toBeLessThan(TOL.f32.lse);
      });
    }
  }
  it('builds the 16 KiB variant on a device with WebGPU\'s default limits', async () => {
    await withDefaultLimitsKernels(gpu, async (small) => {
      for (const c of [EDGE[2], EDGE[5]]) {
        const err = await attentionErrors(c, 'f32', false, small);
        expect(err.o).toBeLessThan(TOL.f32.o);
        expect(err.lse).toBeLessThan(TOL.f32.lse);
      }
    });
  });
  it(`f16 ${name(EDGE[3])}`, async (ctx) => {
    if (!gpu.info.f16) ctx.skip();
    const err = await attentionErrors(EDGE[3], 'f16');
    expect(err.o).toBeLessThan(TOL.f16.o);
    expect(err.lse).toBeLessThan(TOL.f16.lse);
  });
});

// The decode path (attention-decode.wgsl, keys split in 128s across workgroups): few queries
// against caches shorter than one split, across several, with a window, GQA, head dims 12 and 128.
// Measured on lavapipe (Mesa 25), worst case: f32 o 4.9e-7, lse 1.3e-7; f16 storage o 8.1e-5, lse 1.0e-7.
const SPLIT_DECODE: Case[] = [
  { ...causal(1, 1, 4, 2, 24, 40), skv: 1 },
  { ...causal(1, 1, 4, 2, 24, 41), skv: 40 },
  { ...causal(1, 1, 8, 2, 16, 42), skv: 700 },
  { ...causal(2, 3, 4, 1, 12, 43), skv: 515 },
  { ...causal(1, 8, 4, 4, 16, 44), skv: 300, causalOffset: 250 }, // keys past the last query unused
  { ...causal(1, 2, 4, 2, 16, 45), skv: 600, window: 300 }, // the window starts inside a split
  { ...causal(1, 1, 8, 2, 128, 46), skv: 513 },
];

describe('attention decode path (keys split across workgroups) against float64', () => {
  for (const c of SPLIT_DECODE) {
    it(`f32 ${name(c)}`, async () => {
      const err = await attentionErrors(c, 'f32', true);
      expect(err.o).toBeLessThan(TOL.f32.o);
      expect(err.lse).toBeLessThan(TOL.f32.lse);
    });
  }
  it(`f16 ${name(SPLIT_DECODE[3])}`, async (ctx) => {
    if (!gpu.info.f16) ctx.skip();
    const err = await attentionErrors(SPLIT_DECODE[3], 'f16', true);
    expect(err.o).toBeLessThan(TOL.f16.o);
    expect(err.lse).toBeLessThan(TOL.f16.lse);
  });
  it('takes more than ATTENTION_DECODE_MAX_TQ queries, segments, or a head dim not a multiple of 4 through the forward kernel', async () => {
    for (const c of [{ ...causal(1, ATTENTION_DECODE_MAX_TQ + 1, 4, 2, 16, 47), skv: 40 }, { ...causal(1, 1, 4, 2, 10, 48), skv: 300 }]) {
      const err = await attentionErrors(c, 'f32', true);
      expect(err.o).toBeLessThan(TOL.f32.o);
      expect(err.lse).toBeLessThan(TOL.f32.lse);
    }
  });
  it('rejects a scratch buffer that is too small', () => {
    const dev = gpu.device;
    const c = { batch: 1, tq: 1, skv: 700, heads: 4, kvHeads: 2, headDim: 16 };
    const q = createTensor(dev, [1, 1, 4, 16], 'f32'), o = createTensor(dev, [1, 1, 4, 16], 'f32');
    const k = createTensor(dev, [1, 700, 2, 16], 'f32'), lse = createTensor(dev, [1, 4, 1], 'f32');
    const small = dev.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
    expect(() => submitPass(kernels, (pass) => encodeAttention(kernels, pass, { q, k, v: k, o, lse, decodePartials: small }, c))).toThrow(/decode scratch holds/);
    for (const b of [q.buffer, o.buffer, k.buffer, lse.buffer, small]) b.destroy();
  });
});

// Chat decode reads the whole KV cache (its capacity) with the queries' positions, so that the
// kernels' parameters stay the same from token to token; rows past the keys in use hold garbage.
describe('attention with query positions over a whole KV cache, against float64 on the keys in use', () => {
  const cases: Case[] = [
    { ...causal(1, 1, 8, 2, 128, 46), skv: 513 }, // the decode path
    { ...causal(1, 2, 4, 2, 16, 45), skv: 600, window: 300 },
    { ...causal(1, ATTENTION_DECODE_MAX_TQ + 1, 4, 2, 16, 47), skv: 40 }, // the forward kernel
    { ...causal(1, 1, 4, 2, 10, 48), skv: 300 }, // the forward kernel (head dim 10)
  ];
  for (const c of cases) {
    it(`f32 ${name(c)}`, async () => {
      const { tq, skv, heads, kvHeads, headDim: D } = c;
      const capacity = skv + 150;
      const x = inputs(c, 'f32');
      const garbage = randomF32(150 * kvHeads * D, c.seed + 9).map((v) => 50 * v);
      const whole = (live: Float32Array) => Float32Array.from([...live, ...garbage]);
      const causalOffset = c.causalOffset ?? skv - tq;
      const dev = gpu.device;
      const q = uploadTensor(dev, x.q, [1, tq, heads, D], 'f32');
      const k = uploadTensor(dev, whole(x.k), [1, capacity, kvHeads, D], 'f32');
      const v = uploadTensor(dev, whole(x.v), [1, capacity, kvHeads, D], 'f32');
      const o = createTensor(dev, [1, tq, heads, D], 'f32');
      const lse = createTensor(dev, [1, heads, tq], 'f32');
      const positions = uploadU32(dev, Array.from({ length: tq }, (_, i) => causalOffset + i));
      const decodePartials = dev.createBuffer({ size: attentionDecodeBytes(heads, D, capacity), usage: GPUBufferUsage.STORAGE });
      submitPass(kernels, (pass) => encodeAttention(kernels, pass, { q, k, v, o, lse, decodePartials, positions }, { ...c, skv: capacity, causalOffset }));
      const got = { o: await readTensor(dev, o), lse: await readTensor(dev, lse) };
      for (const t of [q, k, v, o, lse, positions]) t.buffer.destroy();
      decodePartials.destroy();
      const ref = attentionRef(x.q, x.k, x.v, undefined, c);
      expect(maxRelError(got.o, ref.o, ref.oScale)).toBeLessThan(TOL.f32.o);
      for (let i = 0; i < ref.lse.length; i++) expect(Math.abs(got.lse[i] - ref.lse[i]) / Math.max(1, Math.abs(ref.lse[i]))).toBeLessThan(TOL.f32.lse);
    });
  }

  // The combine's per-head shares of o_proj's LoRA u (oLora): share[h, row, j] = Σ_c A[j, h·D + c] ·
  // o[row, h, c] against float64 from o as the kernel stored it: f32 sums, 1e-5 of Σ|terms|; with
  // f16 storage the shares take o before its rounding, 1e-3 (2^-11 = 4.9e-4 a term).
  // r 16 at D 128 is one product an invocation; r 20 loops (160 > 128); D 16 is one slice a row.
  const loraCases: [Case, number, DType][] = [
    [{ ...causal(1, 1, 8, 2, 128, 51), skv: 300 }, 16, 'f32'],
    [{ ...causal(1, 3, 4, 2, 128, 52), skv: 200 }, 20, 'f32'],
    [{ ...causal(1, 2, 4, 4, 16, 53), skv: 40 }, 64, 'f16'],
    [{ ...causal(1, 2, 4, 4, 16, 53), skv: 40 }, 64, 'f32'],
    [{ ...causal(1, 1, 8, 2, 128, 51), skv: 300 }, 16, 'f16'],
  ];
  for (const [c, r, dtype] of loraCases) {
    it(`o_proj LoRA shares, r ${r}, ${dtype} ${name(c)}`, async (ctx) => {
      if (dtype === 'f16' && !gpu.info.f16) ctx.skip();
      const { tq, skv, heads, kvHeads, headDim: D } = c;
      const x = inputs(c, dtype);
      const dev = gpu.device;
      const up = (data: Float32Array, shape: number[]) => uploadTensor(dev, data, shape, dtype);
      const q = up(x.q, [1, tq, heads, D]);
      const k = up(x.k, [1, skv, kvHeads, D]);
      const v = up(x.v, [1, skv, kvHeads, D]);
      const o = createTensor(dev, [1, tq, heads, D], dtype);
      const lse = createTensor(dev, [1, heads, tq], 'f32');
      const causalOffset = skv - tq;
      const positions = uploadU32(dev, Array.from({ length: tq }, (_, i) => causalOffset + i));
      const decodePartials = dev.createBuffer({ size: attentionDecodeBytes(heads, D, skv), usage: GPUBufferUsage.STORAGE });
      const aData = randomF32(r * heads * D, c.seed + 20);
      const a = uploadTensor(dev, aData, [r, heads * D], 'f32');
      const shares = createTensor(dev, [heads, tq, r], 'f32');
      submitPass(kernels, (pass) => encodeAttention(kernels, pass, { q, k, v, o, lse, decodePartials, positions, oLora: { a, shares } }, { ...c, causalOffset }));
      const [gotO, got] = [await readTensor(dev, o), await readTensor(dev, shares)];
      for (const t of [q, k, v, o, lse, positions, a, shares]) t.buffer.destroy();
      decodePartials.destroy();
      const want = new Float64Array(heads * tq * r);
      const scale = new Float64Array(heads * tq * r);
      for (let h = 0; h < heads; h++) {
        for (let row = 0; row < tq; row++) {
          for (let j = 0; j < r; j++) {
            const at = (h * tq + row) * r + j;
            for (let d = 0; d < D; d++) {
              const term = aData[j * heads * D + h * D + d] * gotO[(row * heads + h) * D + d];
              want[at] += term;
              scale[at] += Math.abs(term);
            }
          }
        }
      }
      expect(maxRelError(got, want, scale)).toBeLessThan(dtype === 'f16' ? 1e-3 : TOL.f32.o);
    });
  }

  it('refuses o_proj LoRA shares off the decode path, and ranks above 64', () => {
    const c: Case = { ...causal(1, 1, 4, 2, 16, 54), skv: 40 };
    const dev = gpu.device;
    const t = (shape: number[]) => createTensor(dev, shape, 'f32');
    const base = { q: t([1, 1, 4, 16]), k: t([1, 40, 2, 16]), v: t([1, 40, 2, 16]), o: t([1, 1, 4, 16]), lse: t([1, 4, 1]) };
    const decodePartials = dev.createBuffer({ size: attentionDecodeBytes(4, 16, 40), usage: GPUBufferUsage.STORAGE });
    const oLora = (r: number) => ({ a: t([r, 64]), shares: t([4, 1, r]) });
    expect(() => submitPass(kernels, (pass) => encodeAttention(kernels, pass, { ...base, oLora: oLora(16) }, c))).toThrow(/decode path only/);
    expect(() => submitPass(kernels, (pass) => encodeAttention(kernels, pass, { ...base, decodePartials, oLora: oLora(65) }, c))).toThrow(/r 1 \.\. 64/);
    decodePartials.destroy();
  });
});

describe('attention semantics', () => {
  it('computes a tiny case checked by hand (T=2, D=2)', async () => {
    // q0 = (1, 0), q1 = (0, 1); k0 = (1, 0), k1 = (1, 1); v0 = (1, 2), v1 = (3, 4); scale 1/√2.
    // Row 0 sees k0 only: o = v0, lse = q0·k0/√2 = 1/√2.
    // Row 1: scores (0, 1/√2); p1 = e^(1/√2) / (1 + e^(1/√2)) = 2.028115 / 3.028115 = 0.669762;
    // o = v0 + p1 (v1 - v0) = (1 + 2 p1, 2 + 2 p1); lse = ln(1 + e^(1/√2)) = ln 3.028115 = 1.107940.
    const shape = { batch: 1, tq: 2, skv: 2, heads: 1, kvHeads: 1, headDim: 2 };
    const got = await runAttention(shape, 'f32', {
      q: new Float32Array([1, 0, 0, 1]),
      k: new Float32Array([1, 0, 1, 1]),
      v: new Float32Array([1, 2, 3, 4]),
    });
    const want = [1, 2, 2.339523, 3.339523];
    got.o.forEach((x, i) => expect(x).toBeCloseTo(want[i], 5));
    expect(got.lse[0]).toBeCloseTo(0.707107, 5);
    expect(got.lse[1]).toBeCloseTo(1.107940, 5);
  });

  it('padding queries (segment 0) give o = 0 and lse = 0, never NaN', async () => {
    const c: Case = { ...causal(2, 48, 4, 2, 16, 40), docs: [[30, 10], [0, 0]] }; // row 1 all padding
    const x = inputs(c, 'f32');
    const got = await runAttention(c, 'f32', x);
    expect(got.o.some(Number.isNaN)).toBe(false);
    expect(got.lse.some(Number.isNaN)).toBe(false);
    const D = c.headDim;
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i < c.tq; i++) {
        if (x.seg![b * c.skv + i] !== 0) continue;
        for (let h = 0; h < c.heads; h++) {
          const at = ((b * c.tq + i) * c.heads + h) * D;
          expect([...got.o.subarray(at, at + D)]).toEqual(new Array(D).fill(0));
          expect(got.lse[(b * c.heads + h) * c.tq + i]).toBe(0);
        }
      }
    }
  });

  it('keys of another document do not change the output (segment isolation)', async () => {
    const c: Case = { ...causal(1, 48, 4, 2, 24, 41), docs: [[20, 28]] };
    const x = inputs(c, 'f32');
    const before = await runAttention(c, 'f32', x);
    // Change keys and values of document 1 (positions 0..19) only.
    const k = x.k.slice();
    const v = x.v.slice();
    const rowValues = c.kvHeads * c.headDim;
    for (let i = 0; i < 20 * rowValues; i++) {
      k[i] = 5 - k[i];
      v[i] = 3 * v[i] + 1;
    }
    const after = await runAttention(c, 'f32', { ...x, k, v });
    const D = c.headDim;
    const doc2 = 20 * c.heads * D; // o is [B, T, H, D]: document 2 is everything from row 20 on
    expect(after.o.subarray(doc2)).toEqual(before.o.subarray(doc2));
    for (let h = 0; h < c.heads; h++) {
      const at = h * c.tq + 20;
      expect(after.lse.subarray(at, (h + 1) * c.tq)).toEqual(before.lse.subarray(at, (h + 1) * c.tq));
    }
    // …while document 1 did change.
    expect(after.o.subarray(0, doc2)).not.toEqual(before.o.subarray(0, doc2));
  });

  it('GQA: query heads of one group read the same kv head', async () => {
    // With q equal across the 4 heads of a group, their outputs are equal; the other group differs.
    const shape = { batch: 1, tq: 9, skv: 9, heads: 8, kvHeads: 2, headDim: 16 };
    const qRow = randomF32(9 * 16, 50);
    const q = new Float32Array(9 * 8 * 16);
    for (let t = 0; t < 9; t++) for (let h = 0; h < 8; h++) q.set(qRow.subarray(t * 16, t * 16 + 16), (t * 8 + h) * 16);
    const got = await runAttention(shape, 'f32', { q, k: randomF32(9 * 2 * 16, 51), v: randomF32(9 * 2 * 16, 52) });
    const head = (t: number, h: number) => [...got.o.subarray((t * 8 + h) * 16, (t * 8 + h + 1) * 16)];
    for (let t = 0; t < 9; t++) {
      for (let h = 1; h < 4; h++) expect(head(t, h)).toEqual(head(t, 0));
      for (let h = 5; h < 8; h++) expect(head(t, h)).toEqual(head(t, 4));
    }
    expect(head(8, 4)).not.toEqual(head(8, 0));
  });
});

describe('attention plumbing', () => {
  it('chooses variants that fit the WebGPU default of 16 KiB and 32 KiB (lavapipe)', () => {
    expect(attentionVariant(128, 16384)).toEqual({ NV: 2, PK: 16, NBUF: 1 });
    expect(attentionVariant(64, 16384)).toEqual({ NV: 1, PK: 16, NBUF: 1 });
    expect(attentionVariant(65, 32768)).toEqual({ NV: 2, PK: 64, NBUF: 2 });
    expect(attentionVariant(10, 49152)).toEqual({ NV: 1, PK: 64, NBUF: 2 });
    // p, the staging buffers, the row-max exchange, row ranges, key segment ids, the key range
    // (16 B each, as Dawn counts).
    expect(attentionWorkgroupBytes({ PK: 16, NBUF: 1 })).toBe(16 * 64 * 4 + 4096 + 256 * 16 + 64 * 16 + 16 * 16 + 3 * 16);
    expect(attentionWorkgroupBytes({ PK: 16, NBUF: 1 })).toBeLessThanOrEqual(16384);
    expect(attentionWorkgroupBytes({ PK: 64, NBUF: 2 })).toBeLessThanOrEqual(32768);
    expect(() => attentionVariant(128, 8192)).toThrow(/workgroup memory, the device has 8192/);
    expect(ATTENTION_ROWS).toBe(64);
    expect(ATTENTION_KEYS_PER_TILE).toBe(64);
  });

  it('runs head dim 128 (Llama 3.1 8B) with the tiles of the 16 KiB default', async () => {
    // The kernel as a 16 KiB device would build it, whatever this device's limit.
    const limits = gpu.info.limits;
    const saved = limits.maxComputeWorkgroupStorageSize;
    limits.maxComputeWorkgroupStorageSize = 16384;
    try {
      const err = await attentionErrors({ ...causal(1, 40, 4, 1, 128, 60), docs: [[17, 23]] }, 'f32');
      expect(err.o).toBeLessThan(TOL.f32.o);
      expect(err.lse).toBeLessThan(TOL.f32.lse);
    } finally {
      limits.maxComputeWorkgroupStorageSize = saved;
    }
  });

  it('rejects bad shapes and parameters with clear messages', () => {
    const dev = gpu.device;
    const shape = { batch: 1, tq: 4, skv: 4, heads: 4, kvHeads: 2, headDim: 16 };
    const q = createTensor(dev, [1, 4, 4, 16], 'f32');
    const k = createTensor(dev, [1, 4, 2, 16], 'f32');
    const v = createTensor(dev, [1, 4, 2, 16], 'f32');
    const o = createTensor(dev, [1, 4, 4, 16], 'f32');
    const lse = createTensor(dev, [1, 4, 4], 'f32');
    const seg = uploadU32(dev, [1, 1, 1]);
    const encode = (sh: AttentionShape, t: AttentionTensors = { q, k, v, o, lse }) =>
      submitPass(kernels, (pass) => encodeAttention(kernels, pass, t, sh));
    expect(() => encode({ ...shape, kvHeads: 3 })).toThrow(/multiple of kvHeads/);
    expect(() => encode(shape, { q, k: q, v, o, lse })).toThrow(/k has shape \[1,4,4,16\], expected \[1,4,2,16\]/);
    expect(() => encode({ ...shape, causalOffset: 1 })).toThrow(/causalOffset 1/);
    expect(() => encode({ ...shape, headDim: 256 })).toThrow(/head dim 256 exceeds 128/);
    expect(() => encode(shape, { q, k, v, o, lse: o })).toThrow(/lse has shape/);
    expect(() => encode(shape, { q, k, v, o, lse, segmentIds: seg })).toThrow(/segmentIds has 3 values/);
    expect(() => encode({ ...shape, window: -1 })).toThrow(/window must be/);
    for (const t of [q, k, v, o, lse, seg]) t.buffer.destroy();
  });
});

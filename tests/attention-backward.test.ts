import { beforeAll, describe, expect, it } from 'vitest';
import { type AttentionShape } from '../src/engine/attention.ts';
import {
  attentionBackwardVariant,
  attentionBackwardWorkgroupBytes,
  createAttentionBackwardStats,
  encodeAttentionBackward,
  type AttentionBackwardTensors,
} from '../src/engine/attention-backward.ts';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import { uploadU32, createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../src/engine/tensor.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { attentionRef, segmentIdsOf } from '../src/engine/reference/attention.ts';
import { attentionBackwardRef } from '../src/engine/reference/attention-backward.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../src/io/dtype.ts';
import { randomF32 } from '../src/util/random.ts';
import { testGpu, withDefaultLimitsKernels } from './gpu/device.ts';

// Errors: component-wise, |got - want| / Σ|terms| with |ds| bounded by p (Σ|dO v| + Σ p Σ|dO v|)
// (the reference's dqScale, dkScale, dvScale), so cancellation in dp - D does not inflate them.
// The inputs (q, k, v, dO) as stored; o and lse are the float64 forward's, rounded to the storage
// type and to f32 (what the GPU forward hands over, to within its own tested error).
// Measured on lavapipe (Mesa 25), worst over the cases below: f32 dq 1.8e-7, dk 1.6e-7,
// dv 1.3e-6; f16 storage 4.8e-4 (the outputs' rounding to f16, 2^-11).
const TOL = { f32: 1e-5, f16: 2e-3 };

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
    dout: gen(batch * tq * heads * D, c.seed + 3),
    seg: c.segments ? Uint32Array.from(c.segments) : c.docs ? segmentIdsOf(c.docs, skv) : undefined,
  };
}

type Inputs = ReturnType<typeof inputs>;

async function runBackward(
  c: AttentionShape,
  dtype: DType,
  x: Inputs,
  on: Kernels = kernels,
): Promise<{ dq: Float32Array; dk: Float32Array; dv: Float32Array }> {
  const { batch, tq, skv, heads, kvHeads, headDim: D } = c;
  const fwd = attentionRef(x.q, x.k, x.v, x.seg, c);
  const o = Float32Array.from(fwd.o);
  const dev = on.device;
  const qShape = [batch, tq, heads, D];
  const kvShape = [batch, skv, kvHeads, D];
  const t: AttentionBackwardTensors = {
    q: uploadTensor(dev, x.q, qShape, dtype),
    k: uploadTensor(dev, x.k, kvShape, dtype),
    v: uploadTensor(dev, x.v, kvShape, dtype),
    o: uploadTensor(dev, dtype === 'f16' ? round16(o) : o, qShape, dtype),
    lse: uploadTensor(dev, Float32Array.from(fwd.lse), [batch, heads, tq], 'f32'),
    segmentIds: x.seg ? uploadU32(dev, x.seg) : undefined,
    dout: uploadTensor(dev, x.dout, qShape, dtype),
    dq: createTensor(dev, qShape, dtype),
    dk: createTensor(dev, kvShape, dtype),
    dv: createTensor(dev, kvShape, dtype),
    stats: createAttentionBackwardStats(dev, c),
  };
  submitPass(on, (pass) => encodeAttentionBackward(on, pass, t, c));
  const out = { dq: await readTensor(dev, t.dq), dk: await readTensor(dev, t.dk), dv: await readTensor(dev, t.dv) };
  for (const v of Object.values(t) as (Tensor | undefined)[]) v?.buffer.destroy();
  return out;
}

async function backwardErrors(c: Case, dtype: DType, on: Kernels = kernels) {
  const x = inputs(c, dtype);
  const got = await runBackward(c, dtype, x, on);
  const ref = attentionBackwardRef(x.q, x.k, x.v, x.dout, x.seg, c);
  return {
    dq: maxRelError(got.dq, ref.dq, ref.dqScale),
    dk: maxRelError(got.dk, ref.dk, ref.dkScale),
    dv: maxRelError(got.dv, ref.dv, ref.dvScale),
  };
}

const name = (c: Case) =>
  `B${c.batch} T${c.tq} S${c.skv} H${c.heads}/${c.kvHeads} D${c.headDim}` +
  (c.causalOffset !== undefined ? ` offset ${c.causalOffset}` : '') +
  (c.window ? ` window ${c.window}` : '') +
  (c.scale !== undefined ? ` scale ${c.scale}` : '') +
  (c.docs ? ` docs ${JSON.stringify(c.docs)}` : '') +
  (c.segments ? ' explicit segments' : '');

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

describe('attention backward reference against finite differences of the float64 forward', () => {
  // L = Σ dO ∘ o(q, k, v); GQA, packing with padding, non-contiguous ids, a window, an offset.
  const cases: Case[] = [
    { ...causal(1, 6, 4, 2, 3, 1), segments: [1, 1, 2, 2, 2, 0] },
    { ...causal(2, 5, 2, 1, 4, 2), window: 2, docs: [[5], [2, 3]] },
    { ...causal(1, 7, 2, 2, 3, 3), segments: [1, 1, 2, 1, 0, 2, 1], scale: 0.7 },
    { ...causal(1, 2, 2, 1, 3, 4), skv: 5 }, // two queries at positions 3, 4 of 5 keys
  ];
  for (const c of cases) {
    it(name(c), () => {
      const x = inputs(c, 'f32');
      const q = Float64Array.from(x.q);
      const k = Float64Array.from(x.k);
      const v = Float64Array.from(x.v);
      const loss = (qq: ArrayLike<number>, kk: ArrayLike<number>, vv: ArrayLike<number>) =>
        attentionRef(qq, kk, vv, x.seg, c).o.reduce((s, o, i) => s + o * x.dout[i], 0);
      const ref = attentionBackwardRef(q, k, v, x.dout, x.seg, c);
      expect(maxAbsDiff(ref.dq, centralDifference((qq) => loss(qq, k, v), q))).toBeLessThan(1e-8);
      expect(maxAbsDiff(ref.dk, centralDifference((kk) => loss(q, kk, v), k))).toBeLessThan(1e-8);
      expect(maxAbsDiff(ref.dv, centralDifference((vv) => loss(q, k, vv), v))).toBeLessThan(1e-8);
    });
  }
});

const CASES: Case[] = [
  causal(1, 1, 4, 2, 16, 1),
  causal(2, 5, 4, 4, 24, 2),
  causal(1, 70, 8, 1, 16, 5), // query and key blocks of 64; a GQA group of 8
  { ...causal(1, 33, 4, 2, 24, 6), scale: 0.3 },
  causal(1, 21, 2, 1, 10, 7), // head dim not a multiple of 4
  { ...causal(3, 48, 4, 2, 16, 10), docs: [[20, 28], [13, 17, 18], [30, 10]] },
  { ...causal(1, 150, 4, 4, 16, 12), docs: [[3, 70, 1, 50]] }, // across blocks, padded tail
  { ...causal(1, 48, 4, 2, 16, 13), segments: [...run(1, 8), ...run(2, 8), ...run(1, 8), ...run(0, 4), ...run(2, 12), ...run(3, 8)] },
  { ...causal(1, 70, 4, 2, 16, 30), window: 16 },
  { ...causal(3, 48, 4, 2, 16, 33), window: 9, docs: [[20, 28], [13, 17, 18], [30, 10]] },
  { ...causal(2, 3, 8, 1, 24, 21), skv: 40 }, // queries at the end of a longer key range
];

describe(`attention backward f32 against float64 (component-wise < ${TOL.f32})`, () => {
  for (const c of CASES) {
    it(name(c), async () => {
      const err = await backwardErrors(c, 'f32');
      console.log(`attention backward f32 ${name(c)}: dq ${err.dq.toExponential(2)}, dk ${err.dk.toExponential(2)}, dv ${err.dv.toExponential(2)}`);
      expect(err.dq).toBeLessThan(TOL.f32);
      expect(err.dk).toBeLessThan(TOL.f32);
      expect(err.dv).toBeLessThan(TOL.f32);
    });
  }
});

describe(`attention backward f16 storage, f32 accumulation (< ${TOL.f16})`, () => {
  for (const c of [CASES[2], CASES[5], CASES[9]]) {
    it(name(c), async (ctx) => {
      if (!gpu.info.f16) ctx.skip();
      const err = await backwardErrors(c, 'f16');
      console.log(`attention backward f16 ${name(c)}: dq ${err.dq.toExponential(2)}, dk ${err.dk.toExponential(2)}, dv ${err.dv.toExponential(2)}`);
      expect(err.dq).toBeLessThan(TOL.f16);
      expect(err.dk).toBeLessThan(TOL.f16);
      expect(err.dv).toBeLessThan(TOL.f16);
      expect(Math.max(err.dq, err.dk, err.dv), 'f16 rounding is visible').toBeGreaterThan(1e-6);
    });
  }
});

// Shapes at the kernels' tile edges (64 rows a workgroup, 64 columns a tile, head dims up to 64
// and up to 128 in two register blocks), run with both variants: the one this device picks (dq,
// dk and dv in one dispatch) and the one of WebGPU's 16 KiB default (weights a quarter tile at a
// time, one staging buffer, dq and dkv dispatched apart).
const EDGE: Case[] = [
  causal(1, 63, 2, 1, 10, 70),
  causal(1, 64, 2, 2, 64, 71),
  causal(1, 65, 4, 2, 128, 72),
  causal(1, 129, 2, 1, 128, 73),
  causal(2, 129, 4, 2, 65, 74), // the second register block with a partial vec4
  { ...causal(1, 129, 4, 1, 64, 75), docs: [[63, 2, 64]] }, // documents ending at tile edges; a group of 4
  { ...causal(1, 130, 2, 1, 32, 76), window: 64 }, // a window of exactly one tile
  { ...causal(1, 65, 2, 1, 16, 77), skv: 200 }, // queries from an offset, keys across tiles
  { ...causal(1, 100, 2, 1, 128, 78), skv: 150, window: 70, docs: [[10, 140]] },
];

/**
 * Runs `f` with the kernels built as a device with `bytes` of workgroup memory (and, given,
 * `buffers` storage buffers a stage) would build them.
 */
async function withWorkgroupBytes<R>(bytes: number, f: () => Promise<R>, buffers = Infinity): Promise<R> {
  const limits = gpu.info.limits;
  const saved = { ...limits };
  limits.maxComputeWorkgroupStorageSize = Math.min(saved.maxComputeWorkgroupStorageSize, bytes);
  limits.maxStorageBuffersPerShaderStage = Math.min(saved.maxStorageBuffersPerShaderStage, buffers);
  try {
    return await f();
  } finally {
    Object.assign(limits, saved);
  }
}

describe('attention backward at tile edges, both variants, against float64', () => {
  for (const bytes of [Infinity, 16384]) {
    for (const c of EDGE) {
      it(`f32 ${bytes === Infinity ? 'device' : '16 KiB'} variant: ${name(c)}`, async () => {
        const err = await withWorkgroupBytes(bytes, () => backwardErrors(c, 'f32'));
        expect(err.dq).toBeLessThan(TOL.f32);
        expect(err.dk).toBeLessThan(TOL.f32);
        expect(err.dv).toBeLessThan(TOL.f32);
      });
    }
  }
  it('runs dq and dkv as two dispatches on devices with 8 storage buffers a stage', async () => {
    // One dispatch for all three needs 9 (q, k, v, segment ids, dO, stats, dq, dk, dv).
    for (const c of [EDGE[3], EDGE[5]]) {
      const err = await withWorkgroupBytes(Infinity, () => backwardErrors(c, 'f32'), 8);
      expect(Math.max(err.dq, err.dk, err.dv)).toBeLessThan(TOL.f32);
    }
  });
  it('builds the 16 KiB variant on a device with WebGPU\'s default limits', async () => {
    await withDefaultLimitsKernels(gpu, async (small) => {
      for (const c of [EDGE[2], EDGE[5]]) {
        const err = await backwardErrors(c, 'f32', small);
        expect(Math.max(err.dq, err.dk, err.dv)).toBeLessThan(TOL.f32);
      }
    });
  });
  it(`f16 ${name(EDGE[3])}`, async (ctx) => {
    if (!gpu.info.f16) ctx.skip();
    const err = await backwardErrors(EDGE[3], 'f16');
    expect(Math.max(err.dq, err.dk, err.dv)).toBeLessThan(TOL.f16);
  });
});

describe('attention backward semantics', () => {
  it('padding (segment 0) gets zero gradients, never NaN, and its dO changes nothing', async () => {
    const c: Case = { ...causal(2, 40, 4, 2, 16, 40), docs: [[25, 9], [0]] }; // row 1 all padding
    const x = inputs(c, 'f32');
    const a = await runBackward(c, 'f32', x);
    for (const g of [a.dq, a.dk, a.dv]) expect(g.some(Number.isNaN)).toBe(false);
    const D = c.headDim;
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i < c.tq; i++) {
        if (x.seg![b * c.skv + i] !== 0) continue;
        const q0 = (b * c.tq + i) * c.heads * D;
        const k0 = (b * c.skv + i) * c.kvHeads * D;
        expect([...a.dq.subarray(q0, q0 + c.heads * D)].every((v) => v === 0)).toBe(true);
        expect([...a.dk.subarray(k0, k0 + c.kvHeads * D)].every((v) => v === 0)).toBe(true);
        expect([...a.dv.subarray(k0, k0 + c.kvHeads * D)].every((v) => v === 0)).toBe(true);
      }
    }
    // dO of padding rows is ignored.
    const dout = x.dout.slice();
    for (let i = 0; i < c.batch * c.tq; i++) if (x.seg![i] === 0) dout.fill(7, i * c.heads * D, (i + 1) * c.heads * D);
    const b = await runBackward(c, 'f32', { ...x, dout });
    expect(b.dq).toEqual(a.dq);
    expect(b.dk).toEqual(a.dk);
    expect(b.dv).toEqual(a.dv);
  });

  it('runs head dim 128 (Llama 3.1 8B) with the tiles of the 16 KiB default', async () => {
    const limits = gpu.info.limits;
    const saved = limits.maxComputeWorkgroupStorageSize;
    limits.maxComputeWorkgroupStorageSize = 16384;
    try {
      const err = await backwardErrors({ ...causal(1, 40, 4, 1, 128, 60), docs: [[17, 23]] }, 'f32');
      expect(err.dq).toBeLessThan(TOL.f32);
      expect(err.dk).toBeLessThan(TOL.f32);
      expect(err.dv).toBeLessThan(TOL.f32);
    } finally {
      limits.maxComputeWorkgroupStorageSize = saved;
    }
  });
});

describe('attention backward plumbing', () => {
  it('chooses variants that fit the WebGPU default of 16 KiB and 32 KiB (lavapipe)', () => {
    expect(attentionBackwardVariant(128, 16384)).toEqual({ NV: 2, PK: 16, NBUF: 1 });
    expect(attentionBackwardVariant(16, 16384)).toEqual({ NV: 1, PK: 16, NBUF: 1 });
    expect(attentionBackwardVariant(64, 32768)).toEqual({ NV: 1, PK: 64, NBUF: 2 });
    expect(attentionBackwardVariant(65, 49152)).toEqual({ NV: 2, PK: 64, NBUF: 2 });
    // Weights, staging buffers, row ranges, the tile's column ids, lse and D, the range (16 B each, as Dawn counts).
    expect(attentionBackwardWorkgroupBytes({ PK: 16, NBUF: 1 })).toBe(16 * 64 * 4 + 4096 + 64 * 16 + 3 * 16 * 16 + 3 * 16);
    expect(attentionBackwardWorkgroupBytes({ PK: 16, NBUF: 1 })).toBeLessThanOrEqual(16384);
    expect(attentionBackwardWorkgroupBytes({ PK: 64, NBUF: 2 })).toBeLessThanOrEqual(32768);
    expect(() => attentionBackwardVariant(128, 8192)).toThrow(/workgroup memory, the device has 8192/);
  });

  it('rejects bad shapes and parameters with clear messages', () => {
    const dev = gpu.device;
    const shape = { batch: 1, tq: 4, skv: 4, heads: 4, kvHeads: 2, headDim: 16 };
    const z = (s: number[]) => createTensor(dev, s, 'f32');
    const t: AttentionBackwardTensors = {
      q: z([1, 4, 4, 16]),
      k: z([1, 4, 2, 16]),
      v: z([1, 4, 2, 16]),
      o: z([1, 4, 4, 16]),
      lse: z([1, 4, 4]),
      dout: z([1, 4, 4, 16]),
      dq: z([1, 4, 4, 16]),
      dk: z([1, 4, 2, 16]),
      dv: z([1, 4, 2, 16]),
      stats: z([1, 4, 4, 3]),
    };
    const encode = (sh: AttentionShape, tt: AttentionBackwardTensors = t) => submitPass(kernels, (pass) => encodeAttentionBackward(kernels, pass, tt, sh));
    expect(() => encode({ ...shape, kvHeads: 3 })).toThrow(/multiple of kvHeads/);
    expect(() => encode(shape, { ...t, dk: t.dq })).toThrow(/dk has shape \[1,4,4,16\], expected \[1,4,2,16\]/);
    expect(() => encode(shape, { ...t, stats: t.lse })).toThrow(/stats has shape/);
    expect(() => encode(shape, { ...t, dq: t.q })).toThrow(/buffers of their own/);
    expect(() => encode(shape, { ...t, segmentIds: uploadU32(dev, [1, 1, 1]) })).toThrow(/segmentIds has 3 values/);
    expect(() => encode({ ...shape, headDim: 256 })).toThrow(/head dim 256 exceeds 128/);
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

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

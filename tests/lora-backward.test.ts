import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { loraScale } from '../src/engine/lora.ts';
import { encodeLoraBackward, encodeLoraBTranspose, loraBackwardScratchBytes } from '../src/engine/lora-backward.ts';
import { dropoutMask, loraDropoutKey, type LoraDropoutDraw } from '../src/engine/lora-dropout.ts';
import { loraRef } from '../src/engine/reference/lora.ts';
import { loraBackwardRef } from '../src/engine/reference/lora-backward.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../src/engine/tensor.ts';
import { randomF32 } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';
import { asStored } from './gpu/values.ts';

// Component-wise relative errors (the reference's Σ|terms| scales; with accumulation the prior
// value's magnitude is added). du, dA and dB are f32 dot products in both modes (f16 inputs are
// exact in f32); dx rounds once to its type. Measured on lavapipe (Mesa 25), worst over the cases:
// f32 du 9.5e-8, dA 1.0e-7, dB 7.2e-8, dx 2.7e-8; f16 x/dy with dx f16: dx 5.2e-5 (its rounding
// to f16, relative to the Σ|terms| scale).
const TOL = { f32: 1e-5, f16: 1e-3 };

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

describe('LoRA backward reference against finite differences of the float64 forward', () => {
  it('dA, dB and dx of L = Σ dy ∘ (s · (x Aᵀ) Bᵀ) (central differences)', () => {
    const s = { m: 3, k: 5, n: 4, r: 2, scale: 1.7 };
    const x = Float64Array.from(randomF32(s.m * s.k, 1));
    const a = Float64Array.from(randomF32(s.r * s.k, 2));
    const b = Float64Array.from(randomF32(s.n * s.r, 3));
    const dy = Float64Array.from(randomF32(s.m * s.n, 4));
    const y0 = new Float64Array(s.m * s.n);
    const loss = (xx: ArrayLike<number>, aa: ArrayLike<number>, bb: ArrayLike<number>) =>
      loraRef(xx, aa, bb, y0, s).y.reduce((acc, v, i) => acc + v * dy[i], 0);
    const ref = loraBackwardRef(x, a, b, dy, s);
    expect(maxAbsDiff(ref.da, centralDifference((aa) => loss(x, aa, b), a))).toBeLessThan(1e-8);
    expect(maxAbsDiff(ref.db, centralDifference((bb) => loss(x, a, bb), b))).toBeLessThan(1e-8);
    expect(maxAbsDiff(ref.dx, centralDifference((xx) => loss(xx, a, b), x))).toBeLessThan(1e-8);
  });

  it('with a dropout mask: the gradients of L = Σ dy ∘ (s · ((x ∘ mask) Aᵀ) Bᵀ)', () => {
    const s = { m: 4, k: 6, n: 3, r: 2, scale: 0.8 };
    const mask = dropoutMask({ p: 0.4, key: loraDropoutKey(2, 1, 0, 0, 'o_proj') }, s.m * s.k);
    expect(mask.some((v) => v === 0) && mask.some((v) => v > 1)).toBe(true);
    const x = Float64Array.from(randomF32(s.m * s.k, 5));
    const a = Float64Array.from(randomF32(s.r * s.k, 6));
    const b = Float64Array.from(randomF32(s.n * s.r, 7));
    const dy = Float64Array.from(randomF32(s.m * s.n, 8));
    const y0 = new Float64Array(s.m * s.n);
    const masked = { ...s, mask };
    const loss = (xx: ArrayLike<number>, aa: ArrayLike<number>, bb: ArrayLike<number>) =>
      loraRef(xx, aa, bb, y0, masked).y.reduce((acc, v, i) => acc + v * dy[i], 0);
    const ref = loraBackwardRef(x, a, b, dy, masked);
    expect(maxAbsDiff(ref.da, centralDifference((aa) => loss(x, aa, b), a))).toBeLessThan(1e-8);
    expect(maxAbsDiff(ref.db, centralDifference((bb) => loss(x, a, bb), b))).toBeLessThan(1e-8);
    expect(maxAbsDiff(ref.dx, centralDifference((xx) => loss(xx, a, b), x))).toBeLessThan(1e-8);
    // A dropped element gets no gradient.
    ref.dx.forEach((v, i) => mask[i] === 0 && expect(Math.abs(v)).toBe(0));
  });
});

interface Case {
  m: number;
  k: number;
  n: number;
  r: number;
  /** Storage type of x (and of dy unless `dy`). */
  dtype?: DType;
  dy?: DType;
  dx?: DType | 'none';
  /** Gradients and dx are accumulated into (else overwritten). */
  accumulate?: boolean;
  /** lora_dropout of the forward whose backward this is. */
  p?: number;
}

async function runCase(c: Case, seed: number) {
  const dtype = c.dtype ?? 'f32';
  const dyType = c.dy ?? dtype;
  const dxType = c.dx ?? dtype;
  const acc = c.accumulate ?? false;
  const scale = loraScale({ r: c.r, alpha: 16, rslora: true });
  const x = asStored(randomF32(c.m * c.k, seed), dtype);
  const a = randomF32(c.r * c.k, seed + 1).map((v) => v * 0.1);
  const b = randomF32(c.n * c.r, seed + 2).map((v) => v * 0.1);
  const dy = asStored(randomF32(c.m * c.n, seed + 3), dyType);
  const dropout: LoraDropoutDraw | null = c.p ? { p: c.p, key: loraDropoutKey(seed, 9, 0, 3, 'gate_proj') } : null;
  const mask = dropout ? dropoutMask(dropout, c.m * c.k) : undefined;
  const ref = loraBackwardRef(x, a, b, dy, { ...c, scale, mask });
  // u as the forward leaves it (f32).
  const u = Float32Array.from(ref.u);
  // Outputs hold values beforehand: added to when accumulating, overwritten (garbage) otherwise.
  const da0 = randomF32(c.r * c.k, seed + 4);
  const db0 = randomF32(c.n * c.r, seed + 5);
  const dx0 = asStored(randomF32(c.m * c.k, seed + 6), dxType === 'none' ? 'f32' : dxType);
  const dev = gpu.device;
  const tx = uploadTensor(dev, x, [c.m, c.k], dtype);
  const ta = uploadTensor(dev, a, [c.r, c.k], 'f32');
  const tb = uploadTensor(dev, b, [c.n, c.r], 'f32');
  const tu = uploadTensor(dev, u, [c.m, c.r], 'f32');
  const tdy = uploadTensor(dev, dy, [c.m, c.n], dyType);
  const tdu = createTensor(dev, [c.m, c.r], 'f32');
  const tda = uploadTensor(dev, da0, [c.r, c.k], 'f32');
  const tdb = uploadTensor(dev, db0, [c.n, c.r], 'f32');
  const tdx = dxType === 'none' ? undefined : uploadTensor(dev, dx0, [c.m, c.k], dxType);
  submitPass(kernels, (pass) =>
    encodeLoraBackward(kernels, pass, { a: ta, b: tb, scale, dropout }, { a: tda, b: tdb }, { x: tx, u: tu, dy: tdy, du: tdu, dx: tdx }, {
      accumulateGrads: acc,
      accumulateDx: acc,
    }),
  );
  const got = {
    du: await readTensor(dev, tdu),
    da: await readTensor(dev, tda),
    db: await readTensor(dev, tdb),
    dx: tdx ? await readTensor(dev, tdx) : undefined,
  };
  for (const t of [tx, ta, tb, tu, tdy, tdu, tda, tdb, tdx] as (Tensor | undefined)[]) t?.buffer.destroy();
  const plus = (want: Float64Array, prior: Float32Array) => (acc ? want.map((v, i) => v + prior[i]) : want);
  const plusAbs = (sc: Float64Array, prior: Float32Array) => (acc ? sc.map((v, i) => v + Math.abs(prior[i])) : sc);
  return {
    du: maxRelError(got.du, ref.du, ref.duScale),
    da: maxRelError(got.da, plus(ref.da, da0), plusAbs(ref.daScale, da0)),
    db: maxRelError(got.db, plus(ref.db, db0), plusAbs(ref.dbScale, db0)),
    dx: got.dx ? maxRelError(got.dx, plus(ref.dx, dx0), plusAbs(ref.dxScale, dx0)) : 0,
  };
}

const label = (c: Case) =>
  `M ${c.m}, K ${c.k}, N ${c.n}, r ${c.r}` +
  (c.dtype ? `, x ${c.dtype}, dy ${c.dy ?? c.dtype}, dx ${c.dx ?? c.dtype}` : '') +
  (c.dx === 'none' ? ', no dx' : '') +
  (c.accumulate ? ', accumulating' : '') +
  (c.p ? `, dropout ${c.p}` : '');

describe(`LoRA backward f32 against float64 (component-wise, < ${TOL.f32})`, () => {
  // r not a multiple of 16 leaves partial column groups; M, K, N odd and off the 8 / 16 / 64 tiles.
  const cases: Case[] = [
    { m: 1, k: 64, n: 70, r: 8 },
    { m: 7, k: 192, n: 130, r: 16 },
    { m: 33, k: 75, n: 70, r: 20, accumulate: true },
    { m: 100, k: 131, n: 67, r: 64 },
    { m: 3, k: 4101, n: 9, r: 16, dx: 'none' },
    { m: 70, k: 9, n: 4099, r: 8, accumulate: true },
  ];
  for (const [i, c] of cases.entries()) {
    it(label(c), async () => {
      const err = await runCase(c, 10 + 10 * i);
      console.log(`lora backward ${label(c)}: ${fmt(err)}`);
      for (const [name, e] of Object.entries(err)) expect(e, name).toBeLessThan(TOL.f32);
    });
  }
});

describe(`LoRA backward with dropout against float64, the mask rebuilt on the CPU (component-wise, < ${TOL.f32})`, () => {
  const cases: Case[] = [
    { m: 33, k: 75, n: 70, r: 20, p: 0.1, accumulate: true },
    { m: 100, k: 131, n: 67, r: 16, p: 0.5 },
    { m: 70, k: 9, n: 4099, r: 8, p: 0.05, accumulate: true },
  ];
  for (const [i, c] of cases.entries()) {
    it(label(c), async () => {
      const err = await runCase(c, 200 + 10 * i);
      console.log(`lora backward ${label(c)}: ${fmt(err)}`);
      for (const [name, e] of Object.entries(err)) expect(e, name).toBeLessThan(TOL.f32);
    });
  }
});

describe('LoRA backward, f16 activations (A, B, u, du and the gradients stay f32)', () => {
  const cases: Case[] = [
    { m: 33, k: 192, n: 70, r: 16, dtype: 'f16', dx: 'f16' },
    { m: 7, k: 75, n: 130, r: 8, dtype: 'f16', dy: 'f32', dx: 'f32', accumulate: true },
  ];
  for (const [i, c] of cases.entries()) {
    it(label(c), async (ctx) => {
      if (!gpu.info.f16) ctx.skip();
      const err = await runCase(c, 100 + 10 * i);
      console.log(`lora backward ${label(c)}: ${fmt(err)}`);
      expect(err.du).toBeLessThan(TOL.f32);
      expect(err.da).toBeLessThan(TOL.f32);
      expect(err.db).toBeLessThan(TOL.f32);
      expect(err.dx).toBeLessThan(c.dx === 'f16' ? TOL.f16 : TOL.f32);
      if (c.dx === 'f16') expect(err.dx, 'f16 rounding is visible').toBeGreaterThan(1e-6);
    });
  }
});

describe('LoRA backward plumbing', () => {
  it("duGiven: dA and dB from the du it is given (the tensor-core GEMM's, made from encodeLoraBTranspose's exact Bᵀ), du left alone", async () => {
    const s = { m: 70, k: 36, n: 48, r: 8, scale: 1.5 };
    const x = randomF32(s.m * s.k, 31);
    const a = randomF32(s.r * s.k, 32);
    const b = randomF32(s.n * s.r, 33);
    const dy = randomF32(s.m * s.n, 34);
    const ref = loraBackwardRef(x, a, b, dy, s);
    const given = Float32Array.from(ref.du, (v) => 2 * v); // not what a down of its own would make
    const dev = gpu.device;
    const t = (v: Float32Array, shape: number[]) => uploadTensor(dev, v, shape, 'f32');
    const [tx, ta, tb, tdy, tu, tdu] = [t(x, [s.m, s.k]), t(a, [s.r, s.k]), t(b, [s.n, s.r]), t(dy, [s.m, s.n]), t(Float32Array.from(ref.u), [s.m, s.r]), t(given, [s.m, s.r])];
    const [tda, tdb] = [createTensor(dev, [s.r, s.k], 'f32'), createTensor(dev, [s.n, s.r], 'f32')];
    const scratch = dev.createBuffer({ size: loraBackwardScratchBytes(s), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    let bt!: Tensor | null;
    submitPass(kernels, (pass) => (bt = encodeLoraBTranspose(kernels, pass, { a: ta, b: tb, scale: s.scale }, scratch)));
    expect(bt!.shape).toEqual([s.r, s.n]);
    const gotBt = (await readTensor(dev, { ...bt!, buffer: scratch })).subarray(0, s.r * s.n);
    expect(gotBt).toEqual(Float32Array.from({ length: s.r * s.n }, (_, i) => b[(i % s.n) * s.r + Math.floor(i / s.n)]));
    submitPass(kernels, (pass) =>
      encodeLoraBackward(kernels, pass, { a: ta, b: tb, scale: s.scale }, { a: tda, b: tdb }, { x: tx, u: tu, dy: tdy, du: tdu, scratch }, { accumulateGrads: false, duGiven: true }),
    );
    expect(await readTensor(dev, tdu)).toEqual(given);
    expect(maxRelError(await readTensor(dev, tda), ref.da.map((v) => 2 * v), ref.daScale.map((v) => 2 * v))).toBeLessThan(TOL.f32);
    expect(maxRelError(await readTensor(dev, tdb), ref.db, ref.dbScale)).toBeLessThan(TOL.f32);
    for (const tt of [tx, ta, tb, tdy, tu, tdu, tda, tdb]) tt.buffer.destroy();
    scratch.destroy();
  });

  it('a case checked by hand', async () => {
    // x = [1, 2], A = [[1, 0], [0, 1]], B = [[1, 2]], s = 0.5, dy = [3]: u = [1, 2],
    // dB = 0.5 · 3 · [1, 2] = [1.5, 3]; du = 0.5 · 3 · [1, 2] = [1.5, 3];
    // dA = duᵀ x = [[1.5, 3], [3, 6]]; dx = du A = [1.5, 3].
    const dev = gpu.device;
    const f = (v: number[], shape: number[]) => uploadTensor(dev, new Float32Array(v), shape, 'f32');
    const a = f([1, 0, 0, 1], [2, 2]);
    const b = f([1, 2], [1, 2]);
    const t = { x: f([1, 2], [1, 2]), u: f([1, 2], [1, 2]), dy: f([3], [1, 1]), du: createTensor(dev, [1, 2], 'f32'), dx: createTensor(dev, [1, 2], 'f32') };
    const g = { a: createTensor(dev, [2, 2], 'f32'), b: createTensor(dev, [1, 2], 'f32') };
    submitPass(kernels, (pass) => encodeLoraBackward(kernels, pass, { a, b, scale: 0.5 }, g, t));
    expect([...(await readTensor(dev, g.b))]).toEqual([1.5, 3]);
    expect([...(await readTensor(dev, t.du))]).toEqual([1.5, 3]);
    expect([...(await readTensor(dev, g.a))]).toEqual([1.5, 3, 3, 6]);
    expect([...(await readTensor(dev, t.dx))]).toEqual([1.5, 3]);
  });

  it('rejects bad shapes, types and aliasing with clear messages', () => {
    const dev = gpu.device;
    const z = (shape: number[], dtype: DType = 'f32') => createTensor(dev, shape, dtype);
    const l = { a: z([8, 64]), b: z([70, 8]), scale: 1 };
    const g = { a: z([8, 64]), b: z([70, 8]) };
    const t = { x: z([3, 64]), u: z([3, 8]), dy: z([3, 70]), du: z([3, 8]), dx: z([3, 64]) };
    const run = (ll = l, gg = g, tt: typeof t = t) => () => submitPass(kernels, (p) => encodeLoraBackward(kernels, p, ll, gg, tt));
    expect(run(l, { a: z([8, 63]), b: g.b })).toThrow(/lora backward: dA has shape \[8,63\], expected \[8,64\]/);
    expect(run(l, g, { ...t, dy: z([3, 71]) })).toThrow(/dy has shape \[3,71\], expected \[3,70\]/);
    expect(run(l, g, { ...t, du: z([3, 9]) })).toThrow(/du has shape/);
    expect(run(l, g, { ...t, dx: t.x })).toThrow(/distinct buffers/);
    expect(run(l, { a: g.a, b: l.b })).toThrow(/distinct buffers/);
    if (gpu.info.f16) expect(run(l, { a: z([8, 64], 'f16'), b: g.b })).toThrow(/dA must be f32/);
  });
});

function fmt(err: Record<string, number>): string {
  return Object.entries(err)
    .map(([k, v]) => `${k} ${v.toExponential(2)}`)
    .join(', ');
}

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

import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { encodeLora, encodeLoraU, encodeLoraUs, lora, LORA_GEMV_MAX_ROWS, loraGemvParts, loraScale } from '../src/engine/lora.ts';
import { dropoutFactor, dropoutMask, dropoutScale, loraDropoutKey, pcgHash, type LoraDropoutDraw } from '../src/engine/lora-dropout.ts';
import { loraRef } from '../src/engine/reference/lora.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../src/engine/tensor.ts';
import { randomF32 } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';
import { asStored } from './gpu/values.ts';

// Component-wise relative errors (reference/lora.ts scales): u is an f32 dot product over K
// (x in f16 is exact in f32, so u keeps f32 accuracy in both modes); y = y0 + scale · u Bᵀ rounds
// once to y's type: 2^-11 relative in f16.
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
  r: number;
  dtype?: DType;
  out?: DType;
  /** lora_dropout (training: the mask comes from a key, see lora-dropout.ts). */
  p?: number;
}

async function runCase(c: Case, seed: number): Promise<{ u: number; y: number }> {
  const dtype = c.dtype ?? 'f32';
  const out = c.out ?? dtype;
  const scale = loraScale({ r: c.r, alpha: 16, rslora: c.r % 2 === 0 });
  const x = asStored(randomF32(c.m * c.k, seed), dtype);
  const a = randomF32(c.r * c.k, seed + 1).map((v) => v * 0.1);
  const b = randomF32(c.n * c.r, seed + 2).map((v) => v * 0.1);
  const y0 = asStored(randomF32(c.m * c.n, seed + 3), out);
  const tx = uploadTensor(gpu.device, x, [c.m, c.k], dtype);
  const ta = uploadTensor(gpu.device, a, [c.r, c.k], 'f32');
  const tb = uploadTensor(gpu.device, b, [c.n, c.r], 'f32');
  const ty = uploadTensor(gpu.device, y0, [c.m, c.n], out);
  const dropout: LoraDropoutDraw | null = c.p ? { p: c.p, key: loraDropoutKey(seed, 3, 1, 2, 'up_proj') } : null;
  const tu = lora(kernels, tx, { a: ta, b: tb, scale, dropout }, ty);
  const u = await readTensor(gpu.device, tu);
  const y = await readTensor(gpu.device, ty);
  for (const t of [tx, ta, tb, ty, tu] as Tensor[]) t.buffer.destroy();
  const mask = dropout ? dropoutMask(dropout, c.m * c.k) : undefined;
  const ref = loraRef(x, a, b, y0, { ...c, scale, mask });
  return { u: maxRelError(u, ref.u, ref.uScale), y: maxRelError(y, ref.y, ref.yScale) };
}

const label = (c: Case) => `M ${c.m}, K ${c.k}, N ${c.n}, r ${c.r}${c.dtype ? `, x ${c.dtype}, y ${c.out ?? c.dtype}` : ''}${c.p ? `, dropout ${c.p}` : ''}`;

describe(`LoRA f32: u = x Aᵀ, y += scale · u Bᵀ, against float64 (component-wise, < ${TOL.f32})`, () => {
  // r not a multiple of 16 leaves a partial column group in the down kernel; M not a multiple of
  // 8 / 64 partial row groups; K odd and 4101 the slice loop's tail.
  const cases: Case[] = [
    { m: 1, k: 64, n: 70, r: 8 },
    { m: 7, k: 192, n: 130, r: 16 },
    { m: 33, k: 75, n: 70, r: 64 },
    { m: 100, k: 192, n: 130, r: 16 },
    { m: 33, k: 75, n: 70, r: 20 },
    { m: 3, k: 4101, n: 9, r: 16 },
  ];
  for (const [i, c] of cases.entries()) {
    it(label(c), async () => {
      const err = await runCase(c, 10 + i);
      console.log(`lora ${label(c)}: u ${err.u.toExponential(2)}, y ${err.y.toExponential(2)}`);
      expect(err.u).toBeLessThan(TOL.f32);
      expect(err.y).toBeLessThan(TOL.f32);
    });
  }
});

describe(`LoRA's down-projection alone (encodeLoraU: decode's rows take lora-gemv.wgsl), against float64 (< ${TOL.f32})`, () => {
  // K 4101: the four-load trips' tail; M 9 and dropout take the tiled kernel.
  const cases: Case[] = [
    { m: 1, k: 4096, n: 1, r: 16 },
    { m: 3, k: 4101, n: 1, r: 5, dtype: 'f16' },
    { m: LORA_GEMV_MAX_ROWS, k: 64, n: 1, r: 64 },
    { m: LORA_GEMV_MAX_ROWS + 1, k: 200, n: 1, r: 16 },
    { m: 2, k: 300, n: 1, r: 16, p: 0.3 },
  ];
  for (const [i, c] of cases.entries()) {
    it(label(c), async (ctx) => {
      if (c.dtype === 'f16' && !gpu.info.f16) ctx.skip();
      const dtype = c.dtype ?? 'f32';
      const seed = 40 + i;
      const x = asStored(randomF32(c.m * c.k, seed), dtype);
      const a = randomF32(c.r * c.k, seed + 1).map((v) => v * 0.1);
      const tx = uploadTensor(gpu.device, x, [c.m, c.k], dtype);
      const ta = uploadTensor(gpu.device, a, [c.r, c.k], 'f32');
      const tb = createTensor(gpu.device, [1, c.r], 'f32');
      const tu = createTensor(gpu.device, [c.m, c.r], 'f32');
      const dropout: LoraDropoutDraw | null = c.p ? { p: c.p, key: loraDropoutKey(seed, 3, 1, 2, 'q_proj') } : null;
      submitPass(kernels, (pass) => encodeLoraU(kernels, pass, tx, { a: ta, b: tb, scale: 1, dropout }, tu));
      const u = await readTensor(gpu.device, tu);
      for (const t of [tx, ta, tb, tu]) t.buffer.destroy();
      const mask = dropout ? dropoutMask(dropout, c.m * c.k) : undefined;
      const ref = loraRef(x, a, new Float32Array(c.r), new Float32Array(c.m), { ...c, scale: 1, mask });
      expect(maxRelError(u, ref.u, ref.uScale)).toBeLessThan(TOL.f32);
    });
  }

  // Decode's prologues: A times x · w (x the f32 residual stream, w the norm's weight; the norm's
  // 1 / rms is the NF4 GEMV's to apply) or silu(gate) · up, as the NF4 GEMV takes them.
  for (const [i, [kind, dtype, m]] of ([['rmsnorm', 'f32', 1], ['rmsnorm', 'f16', 3], ['swiglu', 'f32', 2], ['swiglu', 'f16', 1]] as const).entries()) {
    it(`prologue ${kind}, ${dtype}, M ${m}`, async (ctx) => {
      if (dtype === 'f16' && !gpu.info.f16) ctx.skip();
      const [k, r, eps, seed] = [1024, 16, 1e-5, 60 + i];
      const xType = kind === 'rmsnorm' ? 'f32' : dtype;
      const x = asStored(randomF32(m * k, seed).map((v) => 3 * v), xType);
      const second = asStored(randomF32(kind === 'rmsnorm' ? k : m * k, seed + 1), dtype);
      const a = randomF32(r * k, seed + 2).map((v) => v * 0.1);
      const tx = uploadTensor(gpu.device, x, [m, k], xType);
      const t2 = uploadTensor(gpu.device, second, kind === 'rmsnorm' ? [k] : [m, k], dtype);
      const ta = uploadTensor(gpu.device, a, [r, k], 'f32');
      const tb = createTensor(gpu.device, [1, r], 'f32');
      const tu = createTensor(gpu.device, [m, r], 'f32');
      const prologue = kind === 'rmsnorm' ? { kind, weight: t2, eps } : { kind, up: t2 };
      submitPass(kernels, (pass) => encodeLoraU(kernels, pass, tx, { a: ta, b: tb, scale: 1 }, tu, prologue));
      const u = await readTensor(gpu.device, tu);
      for (const t of [tx, t2, ta, tb, tu]) t.buffer.destroy();
      // The input A multiplies, in float64 (rounded to f32 for loraRef).
      const input = new Float32Array(m * k);
      for (let row = 0; row < m; row++) {
        for (let c = 0; c < k; c++) {
          const v = x[row * k + c];
          input[row * k + c] = kind === 'rmsnorm' ? v * second[c] : (v / (1 + Math.exp(-v))) * second[row * k + c];
        }
      }
      const ref = loraRef(input, a, new Float32Array(r), new Float32Array(m), { m, k, n: 1, r, scale: 1 });
      expect(maxRelError(u, ref.u, ref.uScale)).toBeLessThan(TOL.f32);
    });
  }

  // Decode's long rows (down_proj's K 14336) in parts of K, [parts, M, r], whose sum is u.
  for (const [i, [k, parts, kind, m]] of ([[9000, 3, 'swiglu', 2], [14336, 4, undefined, 1]] as const).entries()) {
    it(`u in ${parts} parts of K ${k}${kind ? `, prologue ${kind}` : ''}, M ${m}: their sum against float64`, async () => {
      const [r, seed] = [16, 70 + i];
      const x = randomF32(m * k, seed).map((v) => 3 * v);
      const up = randomF32(m * k, seed + 1);
      const a = randomF32(r * k, seed + 2).map((v) => v * 0.1);
      const tx = uploadTensor(gpu.device, x, [m, k], 'f32');
      const tup = uploadTensor(gpu.device, up, [m, k], 'f32');
      const ta = uploadTensor(gpu.device, a, [r, k], 'f32');
      const tb = createTensor(gpu.device, [1, r], 'f32');
      const tu = createTensor(gpu.device, [parts, m, r], 'f32');
      const prologue = kind ? { kind, up: tup } : undefined;
      submitPass(kernels, (pass) => encodeLoraUs(kernels, pass, tx, [{ lora: { a: ta, b: tb, scale: 1 }, u: tu }], prologue, parts));
      const got = await readTensor(gpu.device, tu);
      for (const t of [tx, tup, ta, tb, tu]) t.buffer.destroy();
      const sum = new Float32Array(m * r);
      for (let q = 0; q < parts; q++) for (let e = 0; e < m * r; e++) sum[e] += got[q * m * r + e];
      const input = kind ? x.map((v, e) => (v / (1 + Math.exp(-v))) * up[e]) : x;
      const ref = loraRef(input, a, new Float32Array(r), new Float32Array(m), { m, k, n: 1, r, scale: 1 });
      expect(maxRelError(sum, ref.u, ref.uScale)).toBeLessThan(TOL.f32);
    });
  }

  it('cuts K into parts of at most 4096, up to 4 (loraGemvParts)', () => {
    expect([4096, 4097, 8192, 14336, 50000].map(loraGemvParts)).toEqual([1, 2, 2, 4, 4]);
  });

  // Decode's groups (q/k/v, gate/up: one dispatch for adapters of the same x), each u against its
  // own float64 product; ranks that differ take a dispatch each, with the same result.
  for (const [i, [ranks, m, norm]] of ([[[16, 16, 16], 2, true], [[8, 8], 1, false], [[16, 8, 16], 3, true]] as const).entries()) {
    it(`a group of ${ranks.length} adapters, r ${ranks.join('/')}, M ${m}${norm ? ', rmsnorm prologue' : ''}`, async () => {
      const [k, eps, seed] = [512, 1e-5, 80 + 10 * i];
      const x = randomF32(m * k, seed).map((v) => 3 * v);
      const w = randomF32(k, seed + 1);
      const tx = uploadTensor(gpu.device, x, [m, k], 'f32');
      const tw = uploadTensor(gpu.device, w, [k], 'f32');
      const as = ranks.map((r, g) => randomF32(r * k, seed + 2 + g).map((v) => v * 0.1));
      const downs = ranks.map((r, g) => ({
        lora: { a: uploadTensor(gpu.device, as[g], [r, k], 'f32'), b: createTensor(gpu.device, [1, r], 'f32'), scale: 1 },
        u: createTensor(gpu.device, [m, r], 'f32'),
      }));
      let dispatches = 0;
      submitPass(kernels, (pass) => {
        const dispatch = pass.dispatchWorkgroups.bind(pass);
        pass.dispatchWorkgroups = (...size) => void (dispatches++, dispatch(...size));
        encodeLoraUs(kernels, pass, tx, downs, norm ? { kind: 'rmsnorm', weight: tw, eps } : undefined);
      });
      expect(dispatches).toBe(new Set(ranks).size === 1 ? 1 : ranks.length);
      const input = new Float32Array(m * k);
      for (let row = 0; row < m; row++) {
        for (let c = 0; c < k; c++) input[row * k + c] = norm ? x[row * k + c] * w[c] : x[row * k + c];
      }
      for (const [g, r] of ranks.entries()) {
        const u = await readTensor(gpu.device, downs[g].u);
        const ref = loraRef(input, as[g], new Float32Array(r), new Float32Array(m), { m, k, n: 1, r, scale: 1 });
        expect(maxRelError(u, ref.u, ref.uScale), `adapter ${g}`).toBeLessThan(TOL.f32);
      }
      for (const t of [tx, tw, ...downs.flatMap((d) => [d.lora.a, d.lora.b, d.u])]) t.buffer.destroy();
    });
  }
});

describe('LoRA, f16 activations (A, B and u stay f32)', () => {
  const cases: Case[] = [
    { m: 33, k: 192, n: 70, r: 16, dtype: 'f16', out: 'f16' },
    { m: 7, k: 75, n: 130, r: 8, dtype: 'f16', out: 'f32' },
  ];
  for (const [i, c] of cases.entries()) {
    const tol = c.out === 'f16' ? TOL.f16 : TOL.f32;
    it(`${label(c)} (y < ${tol})`, async (ctx) => {
      if (!gpu.info.f16) ctx.skip();
      const err = await runCase(c, 20 + i);
      console.log(`lora ${label(c)}: u ${err.u.toExponential(2)}, y ${err.y.toExponential(2)}`);
      expect(err.u).toBeLessThan(TOL.f32);
      expect(err.y).toBeLessThan(tol);
      if (c.out === 'f16') expect(err.y, 'f16 rounding is visible').toBeGreaterThan(1e-6);
    });
  }
});

describe(`LoRA with dropout (training), against float64 with the mask rebuilt on the CPU (< ${TOL.f32})`, () => {
  const cases: Case[] = [
    { m: 33, k: 75, n: 70, r: 16, p: 0.1 },
    { m: 100, k: 192, n: 130, r: 20, p: 0.5 },
    { m: 3, k: 4101, n: 9, r: 16, p: 0.05 },
  ];
  for (const [i, c] of cases.entries()) {
    it(label(c), async () => {
      const err = await runCase(c, 40 + i);
      console.log(`lora ${label(c)}: u ${err.u.toExponential(2)}, y ${err.y.toExponential(2)}`);
      expect(err.u).toBeLessThan(TOL.f32);
      expect(err.y).toBeLessThan(TOL.f32);
    });
  }

  it('the GPU mask is the CPU mask, bit for bit (A = I: u = x ∘ mask exactly)', async () => {
    const [m, k] = [50, 16];
    const x = randomF32(m * k, 7);
    const eye = new Float32Array(k * k).map((_, i) => (i % (k + 1) === 0 ? 1 : 0));
    const draw = { p: 0.3, key: loraDropoutKey(11, 5, 0, 1, 'q_proj') };
    const tx = uploadTensor(gpu.device, x, [m, k], 'f32');
    const ta = uploadTensor(gpu.device, eye, [k, k], 'f32');
    const tb = createTensor(gpu.device, [4, k], 'f32');
    const ty = createTensor(gpu.device, [m, 4], 'f32');
    const u = await readTensor(gpu.device, lora(kernels, tx, { a: ta, b: tb, scale: 1, dropout: draw }, ty));
    // (+ 0: a dropped negative x is -0 on the CPU; the GPU's sum of zeros gives +0.)
    const want = x.map((v, i) => Math.fround(v * dropoutFactor(draw, i)) + 0);
    expect(Array.from(u)).toEqual(Array.from(want));
    const dropped = want.filter((v) => v === 0).length;
    console.log(`lora dropout 0.3: ${dropped} of ${m * k} dropped on the GPU, same elements as the CPU`);
    expect(dropped).toBeGreaterThan(0.2 * m * k);
    expect(dropped).toBeLessThan(0.4 * m * k);
  });
});

describe('LoRA dropout mask (CPU hash)', () => {
  it('drops a fraction p of elements, independently of the key', () => {
    const n = 1 << 20;
    for (const p of [0.05, 0.1, 0.5]) {
      const a = dropoutMask({ p, key: loraDropoutKey(0, 1, 0, 0, 'q_proj') }, n);
      const b = dropoutMask({ p, key: loraDropoutKey(0, 1, 0, 0, 'k_proj') }, n);
      const rate = a.filter((v) => v === 0).length / n;
      const both = a.filter((v, i) => v === 0 && b[i] === 0).length / n;
      const sigma = Math.sqrt((p * (1 - p)) / n);
      console.log(`lora dropout p ${p}: rate ${rate.toFixed(5)} (${((rate - p) / sigma).toFixed(2)} sigma), both masks ${both.toFixed(5)} (p^2 ${(p * p).toFixed(5)})`);
      expect(Math.abs(rate - p)).toBeLessThan(5 * sigma);
      expect(Math.abs(both - p * p)).toBeLessThan(5 * Math.sqrt((p * p * (1 - p * p)) / n));
      expect(a.find((v) => v !== 0)).toBe(dropoutScale(p));
    }
  });

  it('keys differ for every part of (seed, step, micro-batch, layer, linear)', () => {
    const base = loraDropoutKey(0, 1, 0, 0, 'q_proj');
    const others = [loraDropoutKey(1, 1, 0, 0, 'q_proj'), loraDropoutKey(0, 2, 0, 0, 'q_proj'), loraDropoutKey(0, 1, 1, 0, 'q_proj'), loraDropoutKey(0, 1, 0, 1, 'q_proj'), loraDropoutKey(0, 1, 0, 0, 'v_proj')];
    expect(new Set([base, ...others]).size).toBe(6);
    // The hash in u32 arithmetic, checked by hand for v = 0: state = 2891336453, shift 14.
    const state = 2891336453;
    const word = Number((BigInt((Math.floor(state / 2 ** 14) ^ state) >>> 0) * 277803737n) % 2n ** 32n);
    expect(pcgHash(0)).toBe(((word >>> 22) ^ word) >>> 0);
  });
});

describe('LoRA plumbing', () => {
  it('loraScale: alpha / r, or alpha / sqrt(r) with rsLoRA (PEFT)', () => {
    expect(loraScale({ r: 16, alpha: 16 })).toBe(1);
    expect(loraScale({ r: 16, alpha: 16, rslora: true })).toBe(4);
    expect(loraScale({ r: 8, alpha: 32 })).toBe(4);
    expect(loraScale({ r: 64, alpha: 16, rslora: true })).toBe(2);
    expect(() => loraScale({ r: 0, alpha: 16 })).toThrow(/positive integer/);
  });

  it('a product checked by hand', async () => {
    // x = [1, 2], A = [[1, 0], [0, 1], [1, 1]] (r 3), B = [[1, 1, 1]] (N 1), scale 0.5, y0 = 10:
    // u = [1, 2, 3], y = 10 + 0.5 · 6 = 13.
    const x = uploadTensor(gpu.device, new Float32Array([1, 2]), [1, 2], 'f32');
    const a = uploadTensor(gpu.device, new Float32Array([1, 0, 0, 1, 1, 1]), [3, 2], 'f32');
    const b = uploadTensor(gpu.device, new Float32Array([1, 1, 1]), [1, 3], 'f32');
    const y = uploadTensor(gpu.device, new Float32Array([10]), [1, 1], 'f32');
    const u = lora(kernels, x, { a, b, scale: 0.5 }, y);
    expect([...(await readTensor(gpu.device, u))]).toEqual([1, 2, 3]);
    expect([...(await readTensor(gpu.device, y))]).toEqual([13]);
  });

  it('rejects bad shapes and types with clear messages', () => {
    const x = createTensor(gpu.device, [3, 64], 'f32');
    const a = createTensor(gpu.device, [8, 64], 'f32');
    const b = createTensor(gpu.device, [70, 8], 'f32');
    const u = createTensor(gpu.device, [3, 8], 'f32');
    const y = createTensor(gpu.device, [3, 70], 'f32');
    const run = (f: (pass: GPUComputePassEncoder) => void) => () => submitPass(kernels, f);
    expect(run((p) => encodeLora(kernels, p, x, { a, b: createTensor(gpu.device, [70, 9], 'f32'), scale: 1 }, u, y))).toThrow(
      /B has shape \[70,9\], expected \[out, 8\]/,
    );
    expect(run((p) => encodeLora(kernels, p, x, { a, b, scale: 1 }, createTensor(gpu.device, [3, 9], 'f32'), y))).toThrow(
      /u has shape \[3,9\], expected \[3,8\]/,
    );
    expect(run((p) => encodeLora(kernels, p, x, { a: createTensor(gpu.device, [8, 64], 'f16'), b, scale: 1 }, u, y))).toThrow(
      /must be f32/,
    );
    expect(run((p) => encodeLora(kernels, p, x, { a, b, scale: 1 }, u, x))).toThrow(/y has shape/);
  });
});

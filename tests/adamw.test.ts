import { beforeAll, describe, expect, it } from 'vitest';
import {
  ADAMW8_BLOCK,
  ADAMW8_MIN_SIZE,
  createAdamwState,
  createDynamicMapUnsigned,
  destroyAdamwState,
  dynamicMapMidpoints,
  dynamicMaps,
  encodeAdamw8Dequantize,
  encodeAdamw8Quantize,
  encodeAdamwStep,
  type Adamw8State,
  type AdamwConfig,
  type AdamwState,
} from '../src/engine/adamw.ts';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import { createGradNormScratch, destroyGradNormScratch, encodeClipGrads, encodeGradNorm } from '../src/engine/gradnorm.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { adamw8StepRef, adamwStepRef, dequantize8Ref, quantize8Ref, type Quantized8 } from '../src/engine/reference/adamw.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { createTensor, readTensor, uploadTensor, type Tensor } from '../src/engine/tensor.ts';
import { randomF32, rng } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';

// 32-bit: after 20 steps against the float64 reference run as torch runs on f32 tensors (step
// scalars and each tensor op's result rounded to f32, the arithmetic inside an op float64): param
// relative to max(|param|, 20 lr), m and v relative to their element's gradient scale.
// Measured on lavapipe (Mesa 25): param 1.8e-7, m 4.7e-8, v 1.8e-9; against float64 throughout
// (no f32 rounding anywhere) param 1.2e-6, the params' own f32 roundings over 20 steps.
// 8-bit: see the tests (quantizer bit-exact; trajectories within 1% of 32-bit, measured 0.44%).
const TOL32 = 1e-6;

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

function relErr(got: ArrayLike<number>, want: ArrayLike<number>, floor: number): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), floor);
    if (Number.isNaN(e)) return NaN;
    worst = Math.max(worst, e);
  }
  return worst;
}

async function readCodes(buffer: GPUBuffer, n: number): Promise<Uint8Array> {
  const t: Tensor = { buffer, shape: [Math.ceil(n / 4)], dtype: 'f32' };
  const words = await readTensor(gpu.device, t);
  return new Uint8Array(words.buffer, words.byteOffset, n).slice();
}

async function writeState(s: Adamw8State, m: Quantized8, v: Quantized8): Promise<void> {
  const dev = gpu.device;
  const pad = (c: Uint8Array) => {
    const out = new Uint8Array(Math.ceil(c.length / 4) * 4);
    out.set(c);
    return out;
  };
  dev.queue.writeBuffer(s.m, 0, pad(m.codes));
  dev.queue.writeBuffer(s.v, 0, pad(v.codes));
  dev.queue.writeBuffer(s.mAbsmax.buffer, 0, m.absmax);
  dev.queue.writeBuffer(s.vAbsmax.buffer, 0, v.absmax);
}

async function readState(s: Adamw8State): Promise<{ m: Quantized8; v: Quantized8 }> {
  return {
    m: { codes: await readCodes(s.m, s.n), absmax: await readTensor(gpu.device, s.mAbsmax) },
    v: { codes: await readCodes(s.v, s.n), absmax: await readTensor(gpu.device, s.vAbsmax) },
  };
}

describe('AdamW 32-bit against a float64 torch-equivalent reference', () => {
  it('one step checked by hand (bias correction and decoupled decay as torch.optim.AdamW)', async () => {
    // param 1, grad 0.5, lr 0.1, wd 0.01, step 1: decay -> 0.999; m = 0.05, v = 0.00025;
    // step_size = 0.1 / 0.1 = 1; denom = sqrt(0.00025) / sqrt(0.001) + 1e-8 = 0.5 + 1e-8;
    // param = 0.999 - 0.05 / (0.5 + 1e-8) = 0.89900000200.
    const p = uploadTensor(gpu.device, new Float32Array([1]), [1], 'f32');
    const g = uploadTensor(gpu.device, new Float32Array([0.5]), [1], 'f32');
    const s = createAdamwState(kernels, 1);
    submitPass(kernels, (pass) => encodeAdamwStep(kernels, pass, p, g, s, { lr: 0.1, weightDecay: 0.01 }, 1));
    expect((await readTensor(gpu.device, p))[0]).toBeCloseTo(0.899, 6);
    if (s.bits === 32) {
      expect((await readTensor(gpu.device, s.m))[0]).toBeCloseTo(0.05, 7);
      expect((await readTensor(gpu.device, s.v))[0]).toBeCloseTo(0.00025, 9);
    }
  });

  it(`20 steps on random params and grads (n 1237) match to ${TOL32} relative`, async () => {
    const n = 1237;
    const cfg: AdamwConfig = { lr: 1e-3, weightDecay: 0.01 };
    const p0 = randomF32(n, 1);
    // Gradients of varied magnitude per element (gscale 1e-3 .. 1), signs random.
    const gscale = Float64Array.from({ length: n }, (_, i) => 10 ** -((i % 7) / 2));
    const dev = gpu.device;
    const p = uploadTensor(dev, p0, [n], 'f32');
    const s = createAdamwState(kernels, n);
    const exact = { p: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n) };
    const stored = { p: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n) };
    for (let step = 1; step <= 20; step++) {
      const gr = randomF32(n, 100 + step).map((x, i) => x * gscale[i]);
      const g = uploadTensor(dev, gr, [n], 'f32');
      submitPass(kernels, (pass) => encodeAdamwStep(kernels, pass, p, g, s, cfg, step));
      g.buffer.destroy();
      adamwStepRef(exact.p, gr, exact.m, exact.v, step, cfg);
      adamwStepRef(stored.p, gr, stored.m, stored.v, step, cfg, { f32Tensors: true });
    }
    if (s.bits !== 32) throw new Error('expected 32-bit states');
    const got = { p: await readTensor(dev, p), m: await readTensor(dev, s.m), v: await readTensor(dev, s.v) };
    // param relative to max(|param|, 20 lr) (the distance 20 steps can move it: a parameter
    // near 0 is all update, whose f32 arithmetic is what is measured); m and v relative to
    // their element's gradient scale (m averages gradients and can cancel to ~0; v averages
    // their squares).
    const errors = (want: typeof exact) => ({
      param: relErr(got.p, want.p, 20 * cfg.lr),
      m: maxRelError(got.m, want.m, gscale),
      v: maxRelError(got.v, want.v, gscale.map((x) => x * x)),
    });
    const err = errors(stored);
    const drift = errors(exact);
    console.log(
      `adamw 32-bit after 20 steps, vs float64 on f32 tensors (torch): param ${err.param.toExponential(2)}, m ${err.m.toExponential(2)}, ` +
        `v ${err.v.toExponential(2)}; vs float64 throughout: param ${drift.param.toExponential(2)}`,
    );
    expect(err.param).toBeLessThan(TOL32);
    expect(err.m).toBeLessThan(TOL32);
    expect(err.v).toBeLessThan(TOL32);
    // Against float64 throughout, the params also carry 20 f32 roundings of their own and of the
    // decay factor f32(1 - lr·wd) (up to 3e-8 relative per step, the same sign every step).
    expect(drift.param).toBeLessThan(3e-6);
    destroyAdamwState(s);
  });
});

/**
 * AdamW updates of p0 with the gradient g0 on fresh tensors, each after the grad norm (max_norm 1)
 * and recorded as the given step; the params and the clip coefficient after them. `clipInPlace`:
 * the gradients clipped first (encodeClipGrads, g0 written again after each update) and AdamW
 * given no clip; else AdamW takes the norm's result (coefficient, skip, count).
 */
async function normThenAdamw(bits: 8 | 32, p0: Float32Array, g0: Float32Array, steps: readonly number[], clipInPlace = false) {
  const dev = gpu.device;
  const n = p0.length;
  const cfg = { lr: 0.05, weightDecay: 0.01 };
  const p = uploadTensor(dev, p0, [n], 'f32');
  const g = uploadTensor(dev, g0, [n], 'f32');
  const s = createAdamwState(kernels, n, { bits });
  const norm = createGradNormScratch(kernels, [g]);
  for (const step of steps) {
    submitPass(kernels, (pass) => {
      encodeGradNorm(kernels, pass, [g], norm, 1.0);
      if (clipInPlace) encodeClipGrads(kernels, pass, [g], norm);
      encodeAdamwStep(kernels, pass, p, g, s, cfg, step, clipInPlace ? undefined : norm.result);
    });
    if (clipInPlace) dev.queue.writeBuffer(g.buffer, 0, g0); // the trainer's next gradients
  }
  const coef = (await readTensor(dev, norm.result))[1];
  const out = { p: Array.from(await readTensor(dev, p)), coef };
  for (const t of [p, g]) t.buffer.destroy();
  destroyGradNormScratch(norm);
  destroyAdamwState(s);
  return out;
}

describe('AdamW with the clip coefficient on the GPU (the trainer: clip_grad_norm_ folded into the update)', () => {
  it.each([32, 8] as const)('equals clipping the gradients in place first, bit for bit (%i-bit states)', async (bits) => {
    const n = 5000;
    const p0 = randomF32(n, 41);
    const gr = randomF32(n, 42).map((x) => 3 * x);
    const [clipped, folded] = [await normThenAdamw(bits, p0, gr, [1, 2, 3], true), await normThenAdamw(bits, p0, gr, [1, 2, 3])];
    expect(folded.coef).toBeLessThan(0.05); // the norm (~100) far above max_norm 1: the clip matters
    expect(folded.coef).toBe(clipped.coef);
    expect(folded.p).toEqual(clipped.p);
    expect(folded.p).not.toEqual(Array.from(p0));
  });

  it.each([32, 8] as const)('changes nothing when the norm is inf or NaN (%i-bit states; the trainer submits the update unread)', async (bits) => {
    const dev = gpu.device;
    const n = 5000;
    const p = uploadTensor(dev, randomF32(n, 43), [n], 'f32');
    const gr = randomF32(n, 44);
    const g = uploadTensor(dev, gr, [n], 'f32');
    const s = createAdamwState(kernels, n, { bits });
    const norm = createGradNormScratch(kernels, [g]);
    const m = createTensor(dev, [n], 'f32');
    const v = createTensor(dev, [n], 'f32');
    const step = (t: number) => submitPass(kernels, (pass) => {
      encodeGradNorm(kernels, pass, [g], norm, 1.0);
      encodeAdamwStep(kernels, pass, p, g, s, { lr: 0.05, weightDecay: 0.01 }, t, norm.result);
    });
    const snapshot = async () => {
      if (s.bits === 8) submitPass(kernels, (pass) => encodeAdamw8Dequantize(kernels, pass, s, m, v));
      const [ms, vs] = s.bits === 8 ? [m, v] : [s.m, s.v];
      return { p: Array.from(await readTensor(dev, p)), m: Array.from(await readTensor(dev, ms)), v: Array.from(await readTensor(dev, vs)) };
    };
    step(1); // states that are not zero
    const before = await snapshot();
    expect(before.v.some((x) => x > 0)).toBe(true);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const g1 = Float32Array.from(gr);
      g1[1234] = bad;
      dev.queue.writeBuffer(g.buffer, 0, g1);
      step(2);
      expect(Number.isFinite((await readTensor(dev, norm.result))[0])).toBe(false);
      expect(await snapshot()).toEqual(before);
    }
    dev.queue.writeBuffer(g.buffer, 0, gr);
    step(2); // a finite norm updates again
    expect((await snapshot()).p).not.toEqual(before.p);
    for (const t of [p, g, m, v]) t.buffer.destroy();
    destroyGradNormScratch(norm);
    destroyAdamwState(s);
  });

  it.each([32, 8] as const)("takes step + 1's bias correction where the clip's count is one past step (a step submitted unread; %i-bit states)", async (bits) => {
    const n = 5000;
    const p0 = randomF32(n, 45);
    const g0 = randomF32(n, 46);
    // Three updates; the third recorded as step 2 but counted 3 by the norm's pass, against one recorded as step 3.
    const run = async (third: number) => (await normThenAdamw(bits, p0, g0, [1, 2, third])).p;
    const [late, exact] = [await run(2), await run(3)];
    expect(late).toEqual(exact);
    // The bias correction matters: recorded as step 4 (its count 3 not past 4) differs.
    expect(exact).not.toEqual(await run(4));
  });

  it('rejects a clip tensor that is not a gradnorm result', () => {
    const p = createTensor(gpu.device, [10], 'f32');
    const g = createTensor(gpu.device, [10], 'f32');
    const run = () => submitPass(kernels, (pass) => encodeAdamwStep(kernels, pass, p, g, createAdamwState(kernels, 10), { lr: 1 }, 1, createTensor(gpu.device, [1], 'f32')));
    expect(run).toThrow(/clip must be gradnorm's f32 result/);
  });
});

describe('8-bit states: dynamic maps and the quantizer', () => {
  it("the unsigned map is bnb's create_dynamic_map(signed=False)", () => {
    const u = createDynamicMapUnsigned();
    expect(u.length).toBe(256);
    for (let i = 1; i < 256; i++) expect(u[i]).toBeGreaterThan(u[i - 1]);
    expect(u[0]).toBe(0);
    expect(u[255]).toBe(1);
    // Smallest: 1e-6 · (0.1 + 0.55) / 2; largest below 1: (0.99296875 + 1) / 2 (linspace(0.1, 1, 129)).
    expect(u[1]).toBeCloseTo(3.25e-7, 12);
    expect(u[254]).toBeCloseTo(0.996484375, 6);
    // 2, 4, …, 128 values per decade: 2 in [1e-7, 1e-6), 128 in [0.1, 1).
    expect(u.filter((x) => x > 0 && x < 1e-6).length).toBe(2);
    expect(u.filter((x) => x >= 0.1 && x < 1).length).toBe(128);
    const s = dynamicMaps();
    expect(s.signed[s.zeroSigned]).toBe(0);
    expect(s.zeroSigned).toBe(127);
    expect(s.zeroUnsigned).toBe(0);
    expect(dynamicMapMidpoints(u).length).toBe(255);
  });

  it('GPU quantize and dequantize match the CPU reference bit for bit (n 5000: 20 blocks, a partial last one)', async () => {
    const n = 5000;
    const next = rng(7);
    // m: signed, magnitudes over 1e-9 .. 1 and per-block scales 1e-6 .. 1e2; v: nonnegative, as
    // squares; block 3 all zero; exact midpoints and ±absmax present.
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const block = Math.floor(i / ADAMW8_BLOCK);
      const scale = 10 ** ((block % 9) - 6);
      m[i] = (next() < 0.5 ? -1 : 1) * 10 ** (-9 * next()) * scale;
      v[i] = (10 ** (-6 * next()) * scale) ** 2;
      if (block === 3) m[i] = v[i] = 0;
    }
    const map = dynamicMaps();
    // Values exactly on a scaled threshold of block 5 (ties go to the upper code).
    const a5 = Math.max(...Array.from(m.subarray(5 * 256, 6 * 256), Math.abs));
    const mid = dynamicMapMidpoints(map.signed);
    for (let k = 0; k < 10; k++) m[5 * 256 + 10 + k] = Math.fround(mid[100 + 10 * k] * a5);
    const dev = gpu.device;
    const tm = uploadTensor(dev, m, [n], 'f32');
    const tv = uploadTensor(dev, v, [n], 'f32');
    const s = createAdamwState(kernels, n, { bits: 8 });
    if (s.bits !== 8) throw new Error('expected 8-bit states');
    submitPass(kernels, (pass) => encodeAdamw8Quantize(kernels, pass, tm, tv, s));
    const got = await readState(s);
    const want = { m: quantize8Ref(m, map.signed), v: quantize8Ref(v, map.unsigned) };
    expect([...got.m.absmax]).toEqual([...want.m.absmax]);
    expect([...got.v.absmax]).toEqual([...want.v.absmax]);
    expect(countDiff(got.m.codes, want.m.codes)).toBe(0);
    expect(countDiff(got.v.codes, want.v.codes)).toBe(0);
    // Dequantize back on the GPU.
    const dm = createTensor(dev, [n], 'f32');
    const dv = createTensor(dev, [n], 'f32');
    submitPass(kernels, (pass) => encodeAdamw8Dequantize(kernels, pass, s, dm, dv));
    const deqM = dequantize8Ref(want.m, map.signed);
    const deqV = dequantize8Ref(want.v, map.unsigned);
    expect([...(await readTensor(dev, dm))]).toEqual([...deqM]);
    expect([...(await readTensor(dev, dv))]).toEqual([...deqV]);
    // Nearest code: the error is at most half the map's widest gap times absmax. The signed map
    // has 64 codes per sign in [0.1, 1), 0.0141 apart; the unsigned one 128, 0.0070 apart.
    for (let i = 0; i < n; i++) {
      const b = Math.floor(i / ADAMW8_BLOCK);
      expect(Math.abs(deqM[i] - m[i])).toBeLessThanOrEqual(0.00705 * want.m.absmax[b]);
      expect(Math.abs(deqV[i] - v[i])).toBeLessThanOrEqual(0.00352 * want.v.absmax[b]);
    }
    for (const t of [tm, tv, dm, dv]) t.buffer.destroy();
    destroyAdamwState(s);
  });

  it(`keeps 32-bit states below ${ADAMW8_MIN_SIZE} elements unless told otherwise (bnb's min_8bit_size)`, () => {
    const bits = (n: number, o: { bits?: 8 | 32; min8bitSize?: number }) => {
      const s = createAdamwState(kernels, n, o);
      destroyAdamwState(s);
      return s.bits;
    };
    expect(bits(4095, { bits: 8 })).toBe(32);
    expect(bits(4096, { bits: 8 })).toBe(8);
    expect(bits(100, { bits: 8, min8bitSize: 0 })).toBe(8);
    expect(bits(100000, {})).toBe(32);
  });
});

describe('AdamW 8-bit', () => {
  it('one step from a random state matches the CPU reference (codes exact but for f32-vs-float64 ties)', async () => {
    const n = 4999;
    const maps = dynamicMaps();
    const cfg: AdamwConfig = { lr: 1e-3, weightDecay: 0.01 };
    const step = 7;
    const m0 = quantize8Ref(randomF32(n, 20).map((x) => x * 0.01), maps.signed);
    const v0 = quantize8Ref(randomF32(n, 21).map((x) => x * x * 1e-4), maps.unsigned);
    const p0 = randomF32(n, 22);
    const gr = randomF32(n, 23).map((x) => x * 0.05);
    const dev = gpu.device;
    const s = createAdamwState(kernels, n, { bits: 8 });
    if (s.bits !== 8) throw new Error('expected 8-bit states');
    await writeState(s, m0, v0);
    const p = uploadTensor(dev, p0, [n], 'f32');
    const g = uploadTensor(dev, gr, [n], 'f32');
    submitPass(kernels, (pass) => encodeAdamwStep(kernels, pass, p, g, s, cfg, step));
    const got = await readState(s);
    const ref = { m: m0, v: v0 };
    const pref = Float64Array.from(p0);
    adamw8StepRef(pref, gr, ref, maps, step, cfg);
    const paramErr = relErr(await readTensor(dev, p), pref, 1e-3);
    const diff = { m: countDiff(got.m.codes, ref.m.codes, 1), v: countDiff(got.v.codes, ref.v.codes, 1) };
    console.log(`adamw 8-bit one step: param ${paramErr.toExponential(2)}, codes differing m ${diff.m}, v ${diff.v} of ${n}`);
    expect(paramErr).toBeLessThan(1e-6);
    expect(relErr(got.m.absmax, ref.m.absmax, 0)).toBeLessThan(1e-6);
    expect(relErr(got.v.absmax, ref.v.absmax, 0)).toBeLessThan(1e-6);
    expect(diff.m).toBeLessThanOrEqual(n / 1000);
    expect(diff.v).toBeLessThanOrEqual(n / 1000);
    for (const t of [p, g]) t.buffer.destroy();
    destroyAdamwState(s);
  });

  it('8-bit and 32-bit trajectories on a noisy quadratic stay close (30 steps, n 5000)', async () => {
    // L(p) = ½ Σ c_i (p_i - t_i)², gradient c ∘ (p - t) + 0.1 · noise: a small regression-like
    // problem whose gradients shrink as it converges, so the 8-bit states see every scale.
    const n = 5000;
    const steps = 30;
    const cfg: AdamwConfig = { lr: 1e-2, weightDecay: 0.01 };
    const t = randomF32(n, 30);
    const c = randomF32(n, 31).map((x) => 1.25 + 0.75 * x);
    const p0 = randomF32(n, 32);
    const loss = (p: ArrayLike<number>) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += 0.5 * c[i] * (p[i] - t[i]) ** 2;
      return s;
    };
    const gradAt = (p: ArrayLike<number>, step: number) => {
      const noise = randomF32(n, 1000 + step);
      return Float32Array.from({ length: n }, (_, i) => c[i] * (p[i] - t[i]) + 0.1 * noise[i]);
    };
    const dev = gpu.device;
    const trajectory = async (state: AdamwState) => {
      const p = uploadTensor(dev, p0, [n], 'f32');
      const losses: number[] = [];
      for (let step = 1; step <= steps; step++) {
        const g = uploadTensor(dev, gradAt(await readTensor(dev, p), step), [n], 'f32');
        submitPass(kernels, (pass) => encodeAdamwStep(kernels, pass, p, g, state, cfg, step));
        g.buffer.destroy();
        losses.push(loss(await readTensor(dev, p)));
      }
      p.buffer.destroy();
      destroyAdamwState(state);
      return losses;
    };
    const l32 = await trajectory(createAdamwState(kernels, n, { bits: 32 }));
    const l8 = await trajectory(createAdamwState(kernels, n, { bits: 8 }));
    // The same trajectory on the CPU (float64 update, exact quantizer).
    const maps = dynamicMaps();
    const pc = Float64Array.from(p0);
    const st = { m: quantize8Ref(new Float32Array(n), maps.signed), v: quantize8Ref(new Float32Array(n), maps.unsigned) };
    const lref: number[] = [];
    for (let step = 1; step <= steps; step++) {
      adamw8StepRef(pc, gradAt(Float32Array.from(pc), step), st, maps, step, cfg);
      lref.push(loss(pc));
    }
    const worst8vs32 = Math.max(...l8.map((l, i) => Math.abs(l - l32[i]) / l32[i]));
    const worstRef = Math.max(...l8.map((l, i) => Math.abs(l - lref[i]) / lref[i]));
    console.log(
      `adamw 8-bit vs 32-bit over ${steps} steps: loss ${l32[0].toFixed(1)} -> ${l32[steps - 1].toFixed(1)} (32-bit), ` +
        `${l8[steps - 1].toFixed(1)} (8-bit); worst relative gap ${worst8vs32.toExponential(2)}; GPU vs CPU 8-bit ${worstRef.toExponential(2)}`,
    );
    expect(l32[steps - 1]).toBeLessThan(0.7 * l32[0]); // it does train
    expect(worst8vs32).toBeLessThan(0.01);
    expect(worstRef).toBeLessThan(1e-5);
  });

  it('rejects mismatched tensors and steps with clear messages', () => {
    const p = createTensor(gpu.device, [10], 'f32');
    const g = createTensor(gpu.device, [10], 'f32');
    const s = createAdamwState(kernels, 10);
    const run = (f: (pass: GPUComputePassEncoder) => void) => () => submitPass(kernels, f);
    expect(run((pass) => encodeAdamwStep(kernels, pass, p, g, createAdamwState(kernels, 11), { lr: 1 }, 1))).toThrow(/holds 11 elements, the param 10/);
    expect(run((pass) => encodeAdamwStep(kernels, pass, p, createTensor(gpu.device, [2, 5], 'f32'), s, { lr: 1 }, 1))).toThrow(/grad has shape/);
    expect(run((pass) => encodeAdamwStep(kernels, pass, p, g, s, { lr: 1 }, 0))).toThrow(/step must be an integer >= 1/);
    expect(run((pass) => encodeAdamwStep(kernels, pass, p, p, s, { lr: 1 }, 1))).toThrow(/grad must not be param/);
    expect(() => createAdamwState(kernels, 0)).toThrow(/positive element count/);
  });
});

/** Positions where two code arrays differ; throws if any differs by more than `maxStep`. */
function countDiff(a: Uint8Array, b: Uint8Array, maxStep = 255): number {
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    if (Math.abs(a[i] - b[i]) > maxStep) throw new Error(`code ${i}: ${a[i]} vs ${b[i]}`);
    count++;
  }
  return count;
}

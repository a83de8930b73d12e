import { beforeAll, describe, expect, it } from 'vitest';
import { uploadU32, createTensor, uploadTensor } from '../src/engine/tensor.ts';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { cdfInterval, sampleRef } from '../src/engine/reference/sample.ts';
import { createSampleOutput, createSampleScratch, encodeSample, sampleToken, sampleTokens, sampleWorkgroupSize, type SampleOptions } from '../src/engine/sample.ts';
import { randomF32, rng } from '../src/util/random.ts';
import { testGpu, withDefaultLimitsKernels } from './gpu/device.ts';

// The GPU sums in f32, so where u lies within EDGE of a boundary of the reference's CDF (float64)
// either neighbour is a correct draw; everywhere else the token must be the reference's.
const EDGE = 1e-5;

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

/** `rows` copies of one row of logits, as a [rows, V] tensor. */
function repeatRows(row: Float32Array, rows: number) {
  const all = new Float32Array(rows * row.length);
  for (let r = 0; r < rows; r++) all.set(row, r * row.length);
  return uploadTensor(gpu.device, all, [rows, row.length], 'f32');
}

function uniforms(n: number, seed: number): number[] {
  const next = rng(seed);
  return Array.from({ length: n }, () => Math.fround(next()));
}

/** Draws for each u from one row of logits; checks each against the reference. Returns the ids. */
async function checkDraws(logits: Float32Array, prev: number[], us: number[], opts: SampleOptions, on: Kernels = kernels): Promise<Uint32Array> {
  const t = on === kernels ? repeatRows(logits, us.length) : uploadTensor(on.device, new Float32Array(us.length * logits.length).map((_, i) => logits[i % logits.length]), [us.length, logits.length], 'f32');
  const ids = await sampleTokens(on, t, prev, us, opts);
  t.buffer.destroy();
  for (const [i, u] of us.entries()) {
    const ref = sampleRef(logits, prev, u, opts);
    const token = ids[i];
    expect(token, `u ${u}: a token of the vocabulary`).toBeLessThan(logits.length);
    expect(ref.probs[token], `u ${u}: token ${token} was removed by the reference`).toBeGreaterThan(0);
    const [lo, hi] = cdfInterval(ref.probs, token);
    expect(u, `u ${u}: token ${token} covers [${lo}, ${hi})`).toBeGreaterThanOrEqual(lo - EDGE);
    expect(u).toBeLessThan(hi + EDGE);
    const [rlo, rhi] = cdfInterval(ref.probs, ref.token);
    if (u > rlo + EDGE && u < rhi - EDGE) expect(token, `u ${u}`).toBe(ref.token);
  }
  return ids;
}

describe('greedy (temperature 0)', () => {
  it('equals argmax on random logits, V = 151936 (Qwen2) and 1000 with tied maxima', async () => {
    const big = randomF32(151936, 1).map((v) => v * 10);
    const argmax = (x: Float32Array) => x.reduce((best, v, i) => (v > x[best] ? i : best), 0);
    const t = uploadTensor(gpu.device, big, [big.length], 'f32');
    expect(await sampleToken(kernels, t, [], 0.5, { temperature: 0 })).toBe(argmax(big));
    const small = randomF32(1000, 2);
    small[700] = 5;
    small[300] = 5; // the first of equal maxima, as torch.argmax
    small[900] = 5;
    const ts = uploadTensor(gpu.device, small, [1000], 'f32');
    expect(await sampleToken(kernels, ts, [], 0.5, { temperature: 0 })).toBe(300);
  });

  it('repetition penalty: divides positive, multiplies negative logits, once per distinct id', async () => {
    const logits = new Float32Array(50).fill(-1);
    logits[5] = 2.0;
    logits[9] = 1.5;
    const t = uploadTensor(gpu.device, logits, [50], 'f32');
    const greedy = (prev: number[], penalty: number) => sampleToken(kernels, t, prev, 0, { temperature: 0, repetitionPenalty: penalty });
    expect(await greedy([], 1.2)).toBe(5);
    expect(await greedy([5], 1.5)).toBe(9); // 2.0 / 1.5 = 1.33 < 1.5
    expect(await greedy([5, 5, 5], 1.2)).toBe(5); // 2.0 / 1.2 = 1.67 > 1.5: once, not three times
    expect(await greedy([5, 9, 1000], 1.2)).toBe(5); // ids past the vocabulary are ignored
    // A negative logit is multiplied: it drops further.
    const neg = new Float32Array([-0.5, -0.4, -0.45]);
    const tn = uploadTensor(gpu.device, neg, [3], 'f32');
    expect(await sampleToken(kernels, tn, [1], 0, { temperature: 0, repetitionPenalty: 1.2 })).toBe(2); // -0.48 < -0.45
    expect(await sampleToken(kernels, tn, [], 0, { temperature: 0, repetitionPenalty: 1.2 })).toBe(1);
  });
});

describe('sampling with fixed u against the float64 reference (the chosen token covers u)', () => {
  const logits = randomF32(999, 3).map((v) => v * 5);
  const prev = [3, 17, 17, 500, 998];
  const configs: SampleOptions[] = [
    { temperature: 0.7 },
    { temperature: 1, topK: 50 },
    { temperature: 0.8, topP: 0.9 },
    { temperature: 1.3, topK: 40, topP: 0.95, repetitionPenalty: 1.3 },
    { temperature: 2, topK: 300, topP: 0.5 },
    { temperature: 1, topK: 1 },
    { temperature: 1, topP: 0 },
  ];
  for (const [i, opts] of configs.entries()) {
    it(JSON.stringify(opts), async () => {
      const ids = await checkDraws(logits, prev, uniforms(24, 10 + i), opts);
      if (opts.topK === 1 || opts.topP === 0) expect(new Set(ids).size).toBe(1);
    });
  }

  it("with 256 invocations a workgroup (WebGPU's default limits; the cases above use the device's own size)", async () => {
    await withDefaultLimitsKernels(gpu, async (k) => {
      expect(sampleWorkgroupSize(k.gpu.info.limits)).toBe(256);
      await checkDraws(logits, prev, uniforms(8, 40), { temperature: 1.3, topK: 40, topP: 0.95, repetitionPenalty: 1.3 }, k);
    });
  });

  // Top-p gathers the tokens near the maximum when they hold the cut and fit a workgroup (the cases
  // above), else it sweeps the vocabulary: a flat distribution has too many near tokens; and a cut
  // 9 below the maximum takes the widest nearby set (16).
  it('top-p over a flat distribution (too many near tokens to gather: the sweeps)', async () => {
    const flat = randomF32(5000, 6).map((v) => v * 0.05);
    await checkDraws(flat, [], uniforms(8, 50), { temperature: 1, topP: 0.9 });
  });

  it('top-p with its cut 9 below the maximum (the widest nearby set)', async () => {
    const far = randomF32(2000, 7).map((v) => -30 + v * 0.1);
    far[7] = 0;
    for (let i = 100; i < 400; i++) far[i] = -9 + far[i] + 30;
    await checkDraws(far, [], uniforms(8, 60), { temperature: 1, topP: 0.99 });
  });

  it('V = 151936, top_k 50, top_p 0.9, temperature 0.7', async () => {
    const big = randomF32(151936, 4).map((v) => v * 8);
    await checkDraws(big, [1, 2, 3], uniforms(2, 30), { temperature: 0.7, topK: 50, topP: 0.9, repetitionPenalty: 1.1 });
  });
});

describe('distribution', () => {
  it('2000 draws over V = 40 match the reference probabilities (chi-square, p < 1e-4)', async () => {
    const V = 40;
    const logits = randomF32(V, 5).map((v) => v * 3);
    const opts: SampleOptions = { temperature: 0.8, topK: 20, topP: 0.9 };
    const n = 2000;
    const us = uniforms(n, 77);
    const t = repeatRows(logits, n);
    const ids = await sampleTokens(kernels, t, [], us, opts);
    const probs = sampleRef(logits, [], 0, opts).probs;
    const counts = new Array<number>(V).fill(0);
    for (const id of ids) counts[id]++;
    for (let i = 0; i < V; i++) if (probs[i] === 0) expect(counts[i], `token ${i} was removed`).toBe(0);
    // Categories with an expected count >= 5, the rest pooled.
    let chi2 = 0;
    let cats = 0;
    let poolE = 0;
    let poolO = 0;
    for (let i = 0; i < V; i++) {
      if (probs[i] === 0) continue;
      const e = n * probs[i];
      if (e >= 5) {
        chi2 += (counts[i] - e) ** 2 / e;
        cats++;
      } else {
        poolE += e;
        poolO += counts[i];
      }
    }
    if (poolE > 0) {
      chi2 += (poolO - poolE) ** 2 / poolE;
      cats++;
    }
    const df = cats - 1;
    // Wilson-Hilferty: the chi-square quantile at 1 - 1e-4 (z = 3.719).
    const crit = df * (1 - 2 / (9 * df) + 3.719 * Math.sqrt(2 / (9 * df))) ** 3;
    console.log(`sample distribution: chi2 ${chi2.toFixed(2)} on ${df} df (bound ${crit.toFixed(2)}), ${probs.filter((p) => p > 0).length} tokens kept`);
    expect(df).toBeGreaterThan(3);
    expect(chi2).toBeLessThan(crit);
  });
});

describe('sample plumbing', () => {
  it('takes the largest workgroup of 1024, 512, 256 the limits allow (10 words of workgroup memory an invocation)', () => {
    const limits = (invocations: number, storage: number) => ({ maxComputeInvocationsPerWorkgroup: invocations, maxComputeWorkgroupSizeX: invocations, maxComputeWorkgroupStorageSize: storage });
    expect(sampleWorkgroupSize(limits(1024, 49152))).toBe(1024); // NVIDIA
    expect(sampleWorkgroupSize(limits(1024, 32768))).toBe(512); // lavapipe: 1024 would need 43,008 bytes
    expect(sampleWorkgroupSize(limits(256, 16384))).toBe(256); // WebGPU's defaults
  });

  it('rejects bad options and shapes with clear messages', () => {
    const logits = createTensor(gpu.device, [2, 10], 'f32');
    const u = createTensor(gpu.device, [2], 'f32');
    const out = createSampleOutput(gpu.device, 2);
    const prev = uploadU32(gpu.device, []);
    const scratch = createSampleScratch(kernels, 2, 10);
    const run = (opts: SampleOptions, o = out) => () => submitPass(kernels, (pass) => encodeSample(kernels, pass, logits, prev, u, o, scratch, opts));
    expect(run({ temperature: -1 })).toThrow(/temperature must be >= 0/);
    expect(run({ temperature: 1, topP: 1.5 })).toThrow(/top_p must be in \[0, 1\]/);
    expect(run({ temperature: 1, topK: 2.5 })).toThrow(/top_k must be an integer/);
    expect(run({ temperature: 1, repetitionPenalty: 0 })).toThrow(/repetition_penalty must be > 0/);
    expect(run({ temperature: 1 }, createSampleOutput(gpu.device, 3))).toThrow(/out holds 3 ids for 2 rows/);
    expect(() =>
      submitPass(kernels, (pass) => encodeSample(kernels, pass, logits, prev, u, out, createSampleScratch(kernels, 2, 11), { temperature: 1 })),
    ).toThrow(/scratch is for 2 rows of 11/);
  });
});

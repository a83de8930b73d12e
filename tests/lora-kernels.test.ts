// The LoRA kernels (shaders/lora.wgsl, lora-backward.wgsl) at shapes off their tiles, through every
// path of the wrappers, against the float64 references (component-wise, maxRelError with the
// references' Σ|terms| scales, as tests/lora.test.ts and lora-backward.test.ts):
//   down      16-byte loads (K % 4 == 0) or scalar ones (down_any); 8-row blocks and the 256-wide
//             walk over K cut anywhere (M, K off 8 / 256); r in 1, 8, 16, 20, 64 (j-groups of 16:
//             one partial, several)
//   up        256-column blocks and row blocks off their sizes; r > 16 (several j-groups, each
//             adding to y: a f16 y is rounded once per group of 16)
//   backward  with the caller's scratch (B transposed where N % 4 == 0; dA and dB summed over
//             chunks of tokens, M >= 128) and without (one chunk, B read in place); accumulate on
//             and off; dropout; f16 x / dy / dx
// f32 tolerance 1e-5 (the kernels sum in f32: ~1e-7 measured); f16 outputs 1e-3 for one rounding
// (2^-11 = 4.9e-4 relative), 2e-3 for the four of r = 64. The kernels use no subgroup operations
// (each reduction ends a long loop, once per workgroup, in workgroup memory), so there is no
// subgroup variant to switch.
import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { encodeLora, loraScale, upAhead, type LoraWeights } from '../src/engine/lora.ts';
import { encodeLoraBackward, loraBackwardScratchBytes } from '../src/engine/lora-backward.ts';
import { dropoutMask, loraDropoutKey, type LoraDropoutDraw } from '../src/engine/lora-dropout.ts';
import { loraRef } from '../src/engine/reference/lora.ts';
import { loraBackwardRef } from '../src/engine/reference/lora-backward.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../src/engine/tensor.ts';
import { randomF32 } from '../src/util/random.ts';
import { testGpu, withDefaultLimitsKernels } from './gpu/device.ts';
import { asStored } from './gpu/values.ts';

const TOL = { f32: 1e-5, f16: 1e-3, f16r64: 2e-3 };

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
  /** Storage type of x and dy; y / dx in `out` (default the same). */
  dtype?: DType;
  out?: DType;
  p?: number;
  accumulate?: boolean;
  /** Backward: pass a scratch of loraBackwardScratchBytes (default true). */
  scratch?: boolean;
}

const label = (c: Case) =>
  `M ${c.m}, K ${c.k}, N ${c.n}, r ${c.r}` +
  (c.dtype ? `, ${c.dtype}${c.out && c.out !== c.dtype ? ` (out ${c.out})` : ''}` : '') +
  (c.p ? `, dropout ${c.p}` : '') +
  (c.accumulate === false ? ', overwriting' : '') +
  (c.scratch === false ? ', no scratch' : '');

function inputs(c: Case, seed: number) {
  const dtype = c.dtype ?? 'f32';
  const out = c.out ?? dtype;
  const scale = loraScale({ r: c.r, alpha: 16, rslora: true });
  const x = asStored(randomF32(c.m * c.k, seed), dtype);
  const a = randomF32(c.r * c.k, seed + 1).map((v) => v * 0.1);
  const b = randomF32(c.n * c.r, seed + 2).map((v) => v * 0.1);
  const dropout: LoraDropoutDraw | null = c.p ? { p: c.p, key: loraDropoutKey(seed, 2, 1, 4, 'down_proj') } : null;
  const mask = dropout ? dropoutMask(dropout, c.m * c.k) : undefined;
  return { dtype, out, scale, x, a, b, dropout, mask };
}

const destroy = (...ts: (Tensor | undefined)[]) => ts.forEach((t) => t?.buffer.destroy());

async function forwardErrors(c: Case, seed: number, ks: Kernels = kernels): Promise<{ u: number; y: number }> {
  const { dtype, out, scale, x, a, b, dropout, mask } = inputs(c, seed);
  const y0 = asStored(randomF32(c.m * c.n, seed + 3), out);
  const dev = ks.device;
  const tx = uploadTensor(dev, x, [c.m, c.k], dtype);
  const ta = uploadTensor(dev, a, [c.r, c.k], 'f32');
  const tb = uploadTensor(dev, b, [c.n, c.r], 'f32');
  const ty = uploadTensor(dev, y0, [c.m, c.n], out);
  const tu = createTensor(dev, [c.m, c.r], 'f32');
  submitPass(ks, (pass) => encodeLora(ks, pass, tx, { a: ta, b: tb, scale, dropout }, tu, ty));
  const [u, y] = [await readTensor(dev, tu), await readTensor(dev, ty)];
  destroy(tx, ta, tb, ty, tu);
  const ref = loraRef(x, a, b, y0, { ...c, scale, mask });
  return { u: maxRelError(u, ref.u, ref.uScale), y: maxRelError(y, ref.y, ref.yScale) };
}

interface BackwardResult {
  err: { du: number; da: number; db: number; dx: number };
  got: Float32Array[];
}

async function backwardRun(c: Case, seed: number, ks: Kernels = kernels): Promise<BackwardResult> {
  const { dtype, out, scale, x, a, b, dropout, mask } = inputs(c, seed);
  const acc = c.accumulate ?? true;
  const dy = asStored(randomF32(c.m * c.n, seed + 3), dtype);
  const ref = loraBackwardRef(x, a, b, dy, { ...c, scale, mask });
  const da0 = randomF32(c.r * c.k, seed + 4);
  const db0 = randomF32(c.n * c.r, seed + 5);
  const dx0 = asStored(randomF32(c.m * c.k, seed + 6), out);
  const dev = ks.device;
  const t = {
    x: uploadTensor(dev, x, [c.m, c.k], dtype),
    u: uploadTensor(dev, Float32Array.from(ref.u), [c.m, c.r], 'f32'),
    dy: uploadTensor(dev, dy, [c.m, c.n], dtype),
    du: createTensor(dev, [c.m, c.r], 'f32'),
    dx: uploadTensor(dev, dx0, [c.m, c.k], out),
  };
  const l: LoraWeights = { a: uploadTensor(dev, a, [c.r, c.k], 'f32'), b: uploadTensor(dev, b, [c.n, c.r], 'f32'), scale, dropout };
  const g = { a: uploadTensor(dev, da0, [c.r, c.k], 'f32'), b: uploadTensor(dev, db0, [c.n, c.r], 'f32') };
  const bytes = loraBackwardScratchBytes(c);
  const scratch = c.scratch !== false && bytes > 0 ? dev.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE }) : undefined;
  submitPass(ks, (pass) => encodeLoraBackward(ks, pass, l, g, { ...t, scratch }, { accumulateGrads: acc, accumulateDx: acc }));
  const got = [await readTensor(dev, t.du), await readTensor(dev, g.a), await readTensor(dev, g.b), await readTensor(dev, t.dx)];
  destroy(...Object.values(t), l.a, l.b, g.a, g.b);
  scratch?.destroy();
  const plus = (want: Float64Array, prior: Float32Array) => (acc ? want.map((v, i) => v + prior[i]) : want);
  const plusAbs = (s: Float64Array, prior: Float32Array) => (acc ? s.map((v, i) => v + Math.abs(prior[i])) : s);
  const [du, da, db, dx] = got;
  return {
    got,
    err: {
      du: maxRelError(du, ref.du, ref.duScale),
      da: maxRelError(da, plus(ref.da, da0), plusAbs(ref.daScale, da0)),
      db: maxRelError(db, plus(ref.db, db0), plusAbs(ref.dbScale, db0)),
      dx: maxRelError(dx, plus(ref.dx, dx0), plusAbs(ref.dxScale, dx0)),
    },
  };
}

const fmt = (err: Record<string, number>) =>
  Object.entries(err)
    .map(([k, v]) => `${k} ${v.toExponential(2)}`)
    .join(', ');

describe('LoRA forward kernels at awkward shapes, against float64', () => {
  const cases: Case[] = [
    { m: 13, k: 260, n: 300, r: 16 }, // down: a partial 8-row block, the walk over K ending mid-step; up: a partial column block
    { m: 9, k: 1028, n: 257, r: 1 },
    { m: 100, k: 516, n: 70, r: 8, p: 0.2 }, // several up row blocks; dropout on the 16-byte path
    { m: 21, k: 132, n: 520, r: 64 }, // four j-groups in the grid (down) and in up's loop
    { m: 5, k: 37, n: 33, r: 20 }, // down_any
    { m: 17, k: 260, n: 300, r: 16, dtype: 'f16' },
    { m: 17, k: 132, n: 130, r: 64, dtype: 'f16' },
    { m: 11, k: 63, n: 40, r: 8, dtype: 'f16', out: 'f32', p: 0.1 },
  ];
  for (const [i, c] of cases.entries()) {
    const tol = c.dtype === 'f16' && (c.out ?? c.dtype) === 'f16' ? (c.r > 16 ? TOL.f16r64 : TOL.f16) : TOL.f32;
    it(`${label(c)} (u < ${TOL.f32}, y < ${tol})`, async (ctx) => {
      if (c.dtype === 'f16' && !gpu.info.f16) ctx.skip();
      const err = await forwardErrors(c, 300 + 10 * i);
      console.log(`lora kernels forward ${label(c)}: ${fmt(err)}`);
      expect(err.u).toBeLessThan(TOL.f32);
      expect(err.y).toBeLessThan(tol);
    });
  }
});

describe('LoRA backward kernels at awkward shapes, with and without the scratch, against float64', () => {
  const cases: Case[] = [
    { m: 200, k: 260, n: 300, r: 16 }, // 3 chunks of tokens for dA and dB, Bᵀ for du
    { m: 200, k: 260, n: 300, r: 16, scratch: false },
    { m: 150, k: 129, n: 67, r: 8, accumulate: false }, // N % 4 != 0: du reads B in place; K % 4 != 0
    { m: 131, k: 132, n: 516, r: 1, p: 0.3 },
    { m: 140, k: 200, n: 136, r: 64, p: 0.1 }, // four j-groups
    { m: 130, k: 68, n: 72, r: 20, accumulate: false, scratch: false },
    { m: 160, k: 132, n: 264, r: 16, dtype: 'f16' },
    { m: 136, k: 76, n: 68, r: 8, dtype: 'f16', out: 'f32', p: 0.2 },
  ];
  for (const [i, c] of cases.entries()) {
    const dxTol = c.dtype === 'f16' && (c.out ?? c.dtype) === 'f16' ? TOL.f16 : TOL.f32;
    it(`${label(c)} (du, dA, dB < ${TOL.f32}, dx < ${dxTol})`, async (ctx) => {
      if (c.dtype === 'f16' && !gpu.info.f16) ctx.skip();
      const { err } = await backwardRun(c, 400 + 10 * i);
      console.log(`lora kernels backward ${label(c)}: ${fmt(err)} (scratch ${c.scratch === false ? 'none' : `${loraBackwardScratchBytes(c)} B`})`);
      expect(err.du, 'du').toBeLessThan(TOL.f32);
      expect(err.da, 'dA').toBeLessThan(TOL.f32);
      expect(err.db, 'dB').toBeLessThan(TOL.f32);
      expect(err.dx, 'dx').toBeLessThan(dxTol);
    });
  }
});

describe("LoRA up-projection taking two rows a trip (SwiftShader's choice, upAhead) against float64", () => {
  const cases: Case[] = [
    { m: 100, k: 516, n: 70, r: 8, p: 0.2 }, // several row blocks, a tail trip; dropout
    { m: 21, k: 132, n: 520, r: 64 }, // four j-groups in up's loop
  ];
  it('is within the float64 tolerances, forward (y) and backward (dx)', async () => {
    const swiftshader = new Kernels({ ...gpu, info: { ...gpu.info, architecture: 'swiftshader' } });
    expect([upAhead(kernels), upAhead(swiftshader)]).toEqual([4, 2]);
    for (const [i, c] of cases.entries()) {
      const err = await forwardErrors(c, 700 + 10 * i, swiftshader);
      expect(err.y, label(c)).toBeLessThan(TOL.f32);
      const back = await backwardRun({ ...c, m: 140 }, 800 + 10 * i, swiftshader);
      expect(back.err.dx, label(c)).toBeLessThan(TOL.f32);
    }
  });
});

describe('LoRA kernels: determinism, scratch, limits', () => {
  it('the scratch holds B transposed and the partials of the chunked sums; none where nothing is split or transposed', () => {
    const c = { m: 200, k: 260, n: 300, r: 16 };
    // dB in 3 chunks of 68 tokens: 3 · N · r floats, more than Bᵀ (r · N) or dA's 3 · K · r.
    expect(loraBackwardScratchBytes(c)).toBe(4 * 3 * 300 * 16);
    expect(loraBackwardScratchBytes({ ...c, m: 100 })).toBe(4 * 16 * 300); // one chunk: Bᵀ only
    expect(loraBackwardScratchBytes({ ...c, m: 100, n: 301 })).toBe(0);
  });

  it('the backward is deterministic: two runs give the same bits', async () => {
    const c: Case = { m: 200, k: 260, n: 300, r: 16, p: 0.1 };
    const [a, b] = [await backwardRun(c, 7), await backwardRun(c, 7)];
    for (const [i, t] of a.got.entries()) expect(Array.from(t)).toEqual(Array.from(b.got[i]));
  });

  it('rejects a scratch smaller than loraBackwardScratchBytes', () => {
    const dev = gpu.device;
    const z = (shape: number[]) => createTensor(dev, shape, 'f32');
    const [m, k, n, r] = [200, 64, 64, 8];
    const scratch = dev.createBuffer({ size: loraBackwardScratchBytes({ m, k, n, r }) - 4, usage: GPUBufferUsage.STORAGE });
    const t = { x: z([m, k]), u: z([m, r]), dy: z([m, n]), du: z([m, r]), scratch };
    expect(() =>
      submitPass(kernels, (p) => encodeLoraBackward(kernels, p, { a: z([r, k]), b: z([n, r]), scale: 1 }, { a: z([r, k]), b: z([n, r]) }, t)),
    ).toThrow(/the scratch has \d+ bytes, this shape needs \d+/);
  });

  it("runs on WebGPU's default limits (16 KiB of workgroup memory, 8 storage buffers a stage)", async () => {
    await withDefaultLimitsKernels(gpu, async (small) => {
      const f = await forwardErrors({ m: 13, k: 260, n: 300, r: 20 }, 91, small);
      const b = await backwardRun({ m: 200, k: 260, n: 300, r: 20, p: 0.1 }, 92, small);
      console.log(`lora kernels on default limits: forward ${fmt(f)}; backward ${fmt(b.err)}`);
      for (const e of [f.u, f.y, ...Object.values(b.err)]) expect(e).toBeLessThan(TOL.f32);
    });
  });
});

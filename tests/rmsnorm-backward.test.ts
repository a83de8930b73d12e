import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { rmsnormRef } from '../src/engine/reference/rmsnorm.ts';
import { rmsnormBackwardRef } from '../src/engine/reference/rmsnorm-backward.ts';
import { encodeRmsnormBackward } from '../src/engine/rmsnorm-backward.ts';
import { createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../src/engine/tensor.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../src/io/dtype.ts';
import { randomF32 } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';

// dx component-wise against float64: |got - want| / (rstd |w dy| + rstd³ |x| Σ|w dy x| / H)
// (reference dxScale). The reference takes the inputs as stored (f16-rounded where f16).
// Measured on lavapipe (Mesa 25): f32 1.6e-7; dx f32 from f16 w/dy 1.8e-7; dx f16 4.5e-4 (2^-11).
const TOL = { f32: 2e-6, f16: 1e-3 };
const EPS = 1e-5;

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

const round16 = (x: Float32Array) => f16ArrayToF32(f32ArrayToF16(x));
const asStored = (x: Float32Array, dtype: DType) => (dtype === 'f16' ? round16(x) : x);

describe('rmsnorm backward reference against finite differences of the float64 forward', () => {
  it('dx and dw of L = Σ dy ∘ rmsnorm(x; w) (central differences, h = 1e-6)', () => {
    const [rows, hidden] = [3, 7];
    const x = Float64Array.from(randomF32(rows * hidden, 1), (v, i) => v * (i % 3 === 0 ? 4 : 1));
    const w = Float64Array.from(randomF32(hidden, 2), (v) => 1 + 0.5 * v);
    const dy = Float64Array.from(randomF32(rows * hidden, 3));
    const loss = (xx: ArrayLike<number>, ww: ArrayLike<number>) => {
      const y = rmsnormRef(xx, ww, hidden, EPS).y;
      return y.reduce((s, v, i) => s + v * dy[i], 0);
    };
    const ref = rmsnormBackwardRef(x, w, dy, hidden, EPS);
    const fdX = centralDifference((xx) => loss(xx, w), x);
    const fdW = centralDifference((ww) => loss(x, ww), w);
    expect(maxAbsDiff(ref.dx, fdX)).toBeLessThan(1e-8);
    expect(maxAbsDiff(ref.dw, fdW)).toBeLessThan(1e-8);
  });
});

interface Case {
  rows: number;
  hidden: number;
  /** Storage type of w. */
  dtype: DType;
  /** Type of x and dx. */
  residual: DType;
  /** Type of dy. */
  grad: DType;
}

async function backwardCase(c: Case, seed: number, accumulate = false): Promise<number> {
  const { rows, hidden } = c;
  const x = asStored(randomF32(rows * hidden, seed).map((v, i) => v * 10 ** ((Math.floor(i / hidden) % 3) - 1)), c.residual);
  const w = asStored(randomF32(hidden, seed + 1).map((v) => 1 + 0.5 * v), c.dtype);
  const dy = asStored(randomF32(rows * hidden, seed + 2), c.grad);
  const dx0 = asStored(randomF32(rows * hidden, seed + 3), c.residual);
  const rstd = Float32Array.from(rmsnormRef(x, w, hidden, EPS).rstd);
  const dev = gpu.device;
  const t = {
    x: uploadTensor(dev, x, [rows, hidden], c.residual),
    w: uploadTensor(dev, w, [hidden], c.dtype),
    rstd: uploadTensor(dev, rstd, [rows], 'f32'),
    dy: uploadTensor(dev, dy, [rows, hidden], c.grad),
    dx: uploadTensor(dev, dx0, [rows, hidden], c.residual), // added to, or overwritten
  };
  submitPass(kernels, (pass) => encodeRmsnormBackward(kernels, pass, t, { accumulate }));
  const got = await readTensor(dev, t.dx);
  for (const x of Object.values(t) as Tensor[]) x.buffer.destroy();
  // The reference with the GPU's (f32) rstd would differ by 6e-8 relative: negligible here.
  const ref = rmsnormBackwardRef(x, w, dy, hidden, EPS);
  const want = accumulate ? ref.dx.map((v, i) => v + dx0[i]) : ref.dx;
  const scale = accumulate ? ref.dxScale.map((v, i) => v + Math.abs(dx0[i])) : ref.dxScale;
  return maxRelError(got, want, scale);
}

// [rows, hidden]: below, at and above the workgroup (64), odd, and a Llama-sized row.
const SHAPES = [
  [1, 64],
  [7, 100],
  [33, 130],
  [3, 1],
  [2, 4097],
];

describe('rmsnorm backward against float64 (component-wise)', () => {
  const modes: Omit<Case, 'rows' | 'hidden'>[] = [
    { dtype: 'f32', residual: 'f32', grad: 'f32' },
    { dtype: 'f16', residual: 'f32', grad: 'f16' }, // the f16 mode: f32 residual stream, f16 dy
    { dtype: 'f16', residual: 'f32', grad: 'f32' }, // … with dy from an f32-output matmul backward
    { dtype: 'f16', residual: 'f16', grad: 'f16' }, // everything f16
  ];
  for (const m of modes) {
    const tol = m.residual === 'f16' ? TOL.f16 : TOL.f32;
    it(`w ${m.dtype}, x/dx ${m.residual}, dy ${m.grad}: shapes ${SHAPES.map((s) => s.join('x')).join(', ')} within ${tol}`, async (ctx) => {
      if (m.dtype === 'f16' && !gpu.info.f16) ctx.skip();
      let worst = 0;
      for (const [i, [rows, hidden]] of SHAPES.entries()) {
        const err = await backwardCase({ ...m, rows, hidden }, 10 + i);
        expect(err, `[${rows}, ${hidden}]`).toBeLessThan(tol);
        worst = Math.max(worst, err);
      }
      if (m.residual === 'f16') expect(worst, 'f16 rounding is visible').toBeGreaterThan(1e-5);
      console.log(`rmsnorm backward w ${m.dtype} x ${m.residual} dy ${m.grad}: ${worst.toExponential(2)}`);
    });
  }

  it('accumulates into dx (dx += …) when asked', async () => {
    expect(await backwardCase({ rows: 5, hidden: 77, dtype: 'f32', residual: 'f32', grad: 'f32' }, 40, true)).toBeLessThan(TOL.f32);
    // Four values a trip (past 4 x 256) with the tail after them
    expect(await backwardCase({ rows: 3, hidden: 2100, dtype: 'f32', residual: 'f32', grad: 'f32' }, 42, true)).toBeLessThan(TOL.f32);
  });

  it('uses a 2-D grid past the per-dimension workgroup limit', async () => {
    const saved = kernels;
    kernels = new Kernels({ ...gpu, info: { ...gpu.info, limits: { ...gpu.info.limits, maxComputeWorkgroupsPerDimension: 6 } } });
    try {
      expect(await backwardCase({ rows: 33, hidden: 70, dtype: 'f32', residual: 'f32', grad: 'f32' }, 41)).toBeLessThan(TOL.f32);
    } finally {
      kernels = saved;
    }
  });

  it('rejects mismatched shapes and types with a clear message', () => {
    const t = (shape: number[], dtype: DType = 'f32') => createTensor(gpu.device, shape, dtype);
    const x = t([3, 8]);
    const run = (o: Partial<{ w: Tensor; rstd: Tensor; dy: Tensor; dx: Tensor }>) =>
      submitPass(kernels, (p) => encodeRmsnormBackward(kernels, p, { x, w: t([8]), rstd: t([3]), dy: t([3, 8]), dx: t([3, 8]), ...o }));
    expect(() => run({ w: t([7]) })).toThrow(/rmsnorm backward: w has shape \[7\], expected \[8\]/);
    expect(() => run({ rstd: t([3, 1]) })).toThrow(/rstd has shape \[3,1\], expected \[3\]/);
    expect(() => run({ dy: t([24]) })).toThrow(/dy has shape \[24\], expected \[3,8\]/);
    expect(() => run({ dx: x })).toThrow(/dx must be a buffer of its own/);
    if (gpu.info.f16) expect(() => run({ dx: t([3, 8], 'f16') })).toThrow(/dx is f16 but x is f32/);
  });
});

/** ∂f/∂x_i by central differences (step h relative to max(1, |x_i|)), in float64. */
function centralDifference(f: (x: Float64Array) => number, x: ArrayLike<number>, h = 1e-6): Float64Array {
  const out = new Float64Array(x.length);
  const xx = Float64Array.from(x);
  for (let i = 0; i < x.length; i++) {
    const step = h * Math.max(1, Math.abs(x[i]));
    xx[i] = x[i] + step;
    const up = f(xx);
    xx[i] = x[i] - step;
    const down = f(xx);
    xx[i] = x[i];
    out[i] = (up - down) / (2 * step);
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

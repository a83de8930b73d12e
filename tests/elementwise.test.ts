import { beforeAll, describe, expect, it } from 'vitest';
import { encodeAdd, encodeSwiglu } from '../src/engine/elementwise.ts';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { randomF32 } from '../src/util/random.ts';
import { addRef, magnitudes, swigluRef } from '../src/engine/reference/elementwise.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../src/engine/tensor.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../src/io/dtype.ts';
import { testGpu } from './gpu/device.ts';

// Element counts: 1, odd, one full workgroup + 1, several workgroups, tokens x F.
const SIZES = [[1], [7], [257], [33, 130], [7, 1000]];
const F16_MIN_NORMAL = 2 ** -14;

// Component-wise relative error. Measured on lavapipe (Mesa 25) / an H200: swiglu f32 4.4e-7 /
// 5.6e-7 (exp's few ulp), f16 4.9e-4 (one rounding of the output, 2^-11); add f32 9.4e-8 / 6e-8
// (bound 2 · 2^-24 on |a| + |s·b|), with an f16 output 4.9e-4.
const TOL = { swiglu: { f32: 2e-6, f16: 1e-3 }, add: { f32: 2.5e-7, f16: 1e-3 } };

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

const round16 = (x: Float32Array) => f16ArrayToF32(f32ArrayToF16(x));
/** Random values in [-amp, amp), as the storage type holds them. */
function values(n: number, seed: number, dtype: DType, amp = 1): Float32Array {
  const v = randomF32(n, seed).map((x) => x * amp);
  return dtype === 'f16' ? round16(v) : v;
}
const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const destroy = (...ts: Tensor[]) => ts.forEach((t) => t.buffer.destroy());

async function swigluCase(k: Kernels, shape: number[], dtype: DType, seed: number): Promise<number> {
  const n = count(shape);
  const g = values(n, seed, dtype, 6); // silu's curved part and both tails
  const u = values(n, seed + 1, dtype, 2);
  const tg = uploadTensor(gpu.device, g, shape, dtype);
  const tu = uploadTensor(gpu.device, u, shape, dtype);
  const out = createTensor(gpu.device, shape, dtype);
  submitPass(k, (pass) => encodeSwiglu(k, pass, tg, tu, out));
  const got = await readTensor(gpu.device, out);
  destroy(tg, tu, out);
  const want = swigluRef(g, u);
  return maxRelError(got, want, magnitudes(want, dtype === 'f16' ? F16_MIN_NORMAL : 0));
}

/** out = a + s·b (a and out of type `residual`, b of `dtype`), out of place or in place. */
async function addCase(k: Kernels, shape: number[], dtype: DType, residual: DType, seed: number, inPlace: boolean): Promise<number> {
  const n = count(shape);
  const a = values(n, seed, residual, 4);
  const b = values(n, seed + 1, dtype);
  const s = 0.37;
  const ta = uploadTensor(gpu.device, a, shape, residual);
  const tb = uploadTensor(gpu.device, b, shape, dtype);
  const out = inPlace ? ta : createTensor(gpu.device, shape, residual);
  submitPass(k, (pass) => encodeAdd(k, pass, ta, tb, out, s));
  const got = await readTensor(gpu.device, out);
  destroy(ta, tb);
  if (!inPlace) destroy(out);
  // Relative to |a| + |s·b|: the f32 rounding of s·b counts on that scale when a and s·b cancel
  // (the f16 rounding of the output, relative to |out| <= |a| + |s·b|, fits it too).
  const ref = addRef(a, b, Math.fround(s));
  return maxRelError(got, ref.out, ref.scale);
}

describe('swiglu against float64 (component-wise relative error)', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    it(`${dtype}: sizes ${SIZES.map((s) => s.join('x')).join(', ')} within ${TOL.swiglu[dtype]}`, async (ctx) => {
      if (dtype === 'f16' && !gpu.info.f16) ctx.skip();
      for (const [i, shape] of SIZES.entries()) {
        const err = await swigluCase(kernels, shape, dtype, 10 + i);
        expect(err, `[${shape}]`).toBeLessThan(TOL.swiglu[dtype]);
        if (dtype === 'f16' && count(shape) > 100) expect(err, 'f16 rounding is visible').toBeGreaterThan(1e-5);
      }
    });
  }
});

describe('add (a + s·b) against float64', () => {
  const modes = [
    { dtype: 'f32', residual: 'f32' },
    { dtype: 'f16', residual: 'f32' }, // the f16 mode: f32 residual stream += f16 activations
    { dtype: 'f16', residual: 'f16' },
  ] as const;
  for (const { dtype, residual } of modes) {
    for (const inPlace of [false, true]) {
      const tol = TOL.add[residual];
      it(`b ${dtype}, a/out ${residual}${inPlace ? ', in place' : ''}: within ${tol}`, async (ctx) => {
        if (dtype === 'f16' && !gpu.info.f16) ctx.skip();
        for (const [i, shape] of SIZES.entries()) {
          const err = await addCase(kernels, shape, dtype, residual, 20 + i, inPlace);
          expect(err, `[${shape}]`).toBeLessThan(tol);
          if (residual === 'f16' && count(shape) > 100) expect(err, 'f16 rounding is visible').toBeGreaterThan(1e-5);
        }
      });
    }
  }
});

describe('elementwise plumbing', () => {
  it('computes values checked by hand', async () => {
    const up = (v: number[]) => uploadTensor(gpu.device, new Float32Array(v), [v.length], 'f32');
    const g = up([0, 1, -1]);
    const u = up([2, 2, 2]);
    const out = createTensor(gpu.device, [3], 'f32');
    submitPass(kernels, (pass) => encodeSwiglu(kernels, pass, g, u, out));
    const sw = await readTensor(gpu.device, out);
    // silu(1) = 1 / (1 + e^-1) = 0.7310586, silu(-1) = -0.2689414
    expect(sw[0]).toBe(0);
    expect(sw[1]).toBeCloseTo(1.4621172, 6);
    expect(sw[2]).toBeCloseTo(-0.5378828, 6);

    const a = up([1, 2, 3]);
    const b = up([2, 4, 6]);
    submitPass(kernels, (pass) => encodeAdd(kernels, pass, a, b, out, 0.5));
    expect([...(await readTensor(gpu.device, out))]).toEqual([2, 4, 6]);
    submitPass(kernels, (pass) => encodeAdd(kernels, pass, a, b, a)); // in place, scale 1
    expect([...(await readTensor(gpu.device, a))]).toEqual([3, 6, 9]);
  });

  it('takes four values an invocation where 4 divides n, bit for bit as one at a time', async () => {
    for (const dtype of ['f32', 'f16'] as const) {
      const run = async (n: number) => {
        const [g, u] = [values(n, 31, dtype, 8), values(n, 32, dtype, 8)];
        const [tg, tu] = [uploadTensor(gpu.device, g, [n], dtype), uploadTensor(gpu.device, u, [n], dtype)];
        const [sw, sum] = [createTensor(gpu.device, [n], dtype), createTensor(gpu.device, [n], dtype)];
        submitPass(kernels, (pass) => {
          encodeSwiglu(kernels, pass, tg, tu, sw);
          encodeAdd(kernels, pass, tg, tu, sum, 0.37);
          encodeAdd(kernels, pass, tu, tg, tu, -1.5); // in place
        });
        const out = [await readTensor(gpu.device, sw), await readTensor(gpu.device, sum), await readTensor(gpu.device, tu)];
        destroy(tg, tu, sw, sum);
        return out;
      };
      const [four, one] = [await run(4000), await run(3999)]; // the same values (a seed's prefix), 4000 by vec4
      for (const [i, x] of four.entries()) expect([...x.subarray(0, 3999)], `${dtype} output ${i}`).toEqual([...one[i]]);
    }
  });

  it('uses a 2-D grid past the per-dimension workgroup limit', async () => {
    // A device limit of 3 workgroups per dimension: 7 x 130 values = 4 workgroups -> grid 3 x 2.
    const small = new Kernels({ ...gpu, info: { ...gpu.info, limits: { ...gpu.info.limits, maxComputeWorkgroupsPerDimension: 3 } } });
    expect(await addCase(small, [7, 130], 'f32', 'f32', 5, false)).toBeLessThan(TOL.add.f32);
    expect(await swigluCase(small, [7, 130], 'f32', 6)).toBeLessThan(TOL.swiglu.f32);
  });

  it('rejects mismatched shapes and types with a clear message', () => {
    const t = (shape: number[], dtype: DType = 'f32') => createTensor(gpu.device, shape, dtype);
    const add = (a: Tensor, b: Tensor, out: Tensor) => submitPass(kernels, (p) => encodeAdd(kernels, p, a, b, out));
    const swiglu = (g: Tensor, u: Tensor, out: Tensor) => submitPass(kernels, (p) => encodeSwiglu(kernels, p, g, u, out));
    const a = t([2, 3]);
    expect(() => add(a, t([3, 2]), t([2, 3]))).toThrow(/add: b has shape \[3,2\], expected \[2,3\]/);
    expect(() => swiglu(a, t([2, 3]), t([6]))).toThrow(/swiglu: out has shape \[6\], expected \[2,3\]/);
    expect(() => swiglu(a, t([2, 3]), a)).toThrow(/three buffers/);
    expect(() => add(a, a, t([2, 3]))).toThrow(/b must not be a or out/);
    if (gpu.info.f16) {
      // a residual of f16 under f32 activations is no mode of the engine
      expect(() => add(t([2], 'f16'), t([2]), t([2], 'f16'))).toThrow(/elementwise: residual tensors must be f32 or the storage type f32, not f16/);
    }
  });
});

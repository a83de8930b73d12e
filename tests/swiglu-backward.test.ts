import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { magnitudes, swigluRef } from '../src/engine/reference/elementwise.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { swigluBackwardRef } from '../src/engine/reference/swiglu-backward.ts';
import { encodeSwigluBackward } from '../src/engine/swiglu-backward.ts';
import { createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../src/engine/tensor.ts';
import { randomF32 } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';
import { asStored } from './gpu/values.ts';

// Relative error per element against float64 (dgate: relative to |dout up| (s + |g| s (1 - s)),
// the reference's dgateScale, as silu' crosses zero at g = -1.28; values below 2^-14 count
// absolutely in f16). Inputs as stored. Measured on lavapipe (Mesa 25): f32 dgate 9.8e-7, dup
// 1.1e-6, both where g is far negative and sigmoid(g) ≈ exp(g): WGSL allows exp 3 + 2|x| ULP,
// i.e. up to 43 ULP (2.6e-6) at |g| = 20; f16 4.9e-4 both (one rounding to f16, 2^-11).
const TOL = { f32: 5e-6, f16: 1e-3 };
const F16_MIN_NORMAL = 2 ** -14;

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

describe('swiglu backward reference against finite differences of the float64 forward', () => {
  it('dgate and dup of L = Σ dout ∘ silu(gate) up (central differences)', () => {
    const n = 13;
    const gate = Float64Array.from(randomF32(n, 1), (v) => 8 * v); // -8 .. 8, through silu's minimum
    const up = Float64Array.from(randomF32(n, 2));
    const dout = Float64Array.from(randomF32(n, 3));
    const ref = swigluBackwardRef(gate, up, dout);
    const h = 1e-6;
    for (let i = 0; i < n; i++) {
      // L is a sum of independent terms: only term i depends on gate[i] and up[i].
      const term = (g: number, u: number) => swigluRef([g], [u])[0] * dout[i];
      const dg = (term(gate[i] + h, up[i]) - term(gate[i] - h, up[i])) / (2 * h);
      const du = (term(gate[i], up[i] + h) - term(gate[i], up[i] - h)) / (2 * h);
      expect(Math.abs(ref.dgate[i] - dg)).toBeLessThan(1e-9);
      expect(Math.abs(ref.dup[i] - du)).toBeLessThan(1e-9);
    }
  });
});

async function backwardCase(n: number, dtype: DType, seed: number, inplace: boolean): Promise<{ dgate: number; dup: number }> {
  // gate over -20 .. 20 (sigmoid saturates both ways), up and dout in [-1, 1).
  const gate = asStored(randomF32(n, seed).map((v) => 20 * v), dtype);
  const up = asStored(randomF32(n, seed + 1), dtype);
  const dout = asStored(randomF32(n, seed + 2), dtype);
  const dev = gpu.device;
  const tg = uploadTensor(dev, gate, [n], dtype);
  const tu = uploadTensor(dev, up, [n], dtype);
  const td = uploadTensor(dev, dout, [n], dtype);
  const dg = inplace ? tg : createTensor(dev, [n], dtype);
  const du = inplace ? tu : createTensor(dev, [n], dtype);
  submitPass(kernels, (pass) => encodeSwigluBackward(kernels, pass, tg, tu, td, dg, du));
  const got = { dgate: await readTensor(dev, dg), dup: await readTensor(dev, du) };
  for (const t of new Set<Tensor>([tg, tu, td, dg, du])) t.buffer.destroy();
  const ref = swigluBackwardRef(gate, up, dout);
  const floor = dtype === 'f16' ? F16_MIN_NORMAL : 0;
  return {
    dgate: maxRelError(got.dgate, ref.dgate, magnitudes(ref.dgateScale, floor)),
    dup: maxRelError(got.dup, ref.dup, magnitudes(ref.dup, floor)),
  };
}

describe('swiglu backward against float64 (relative error per element)', () => {
  const sizes = [1, 255, 1000, 4099];
  for (const dtype of ['f32', 'f16'] as const) {
    for (const inplace of [false, true]) {
      it(`${dtype}${inplace ? ', in place' : ''}: n = ${sizes.join(', ')} within ${TOL[dtype]}`, async (ctx) => {
        if (dtype === 'f16' && !gpu.info.f16) ctx.skip();
        let worst = { dgate: 0, dup: 0 };
        for (const [i, n] of sizes.entries()) {
          const err = await backwardCase(n, dtype, 10 * i + 1, inplace);
          expect(err.dgate, `dgate n ${n}`).toBeLessThan(TOL[dtype]);
          expect(err.dup, `dup n ${n}`).toBeLessThan(TOL[dtype]);
          worst = { dgate: Math.max(worst.dgate, err.dgate), dup: Math.max(worst.dup, err.dup) };
        }
        if (dtype === 'f16') expect(worst.dgate, 'f16 rounding is visible').toBeGreaterThan(1e-5);
        console.log(`swiglu backward ${dtype}${inplace ? ' in place' : ''}: dgate ${worst.dgate.toExponential(2)}, dup ${worst.dup.toExponential(2)}`);
      });
    }
  }

  it('rejects mismatched shapes, types and aliasing', () => {
    const t = (shape: number[], dtype: DType = 'f32') => createTensor(gpu.device, shape, dtype);
    const [g, u, d] = [t([4, 8]), t([4, 8]), t([4, 8])];
    const run = (dg: Tensor, du: Tensor, up = u) => submitPass(kernels, (p) => encodeSwigluBackward(kernels, p, g, up, d, dg, du));
    expect(() => run(t([4, 8]), t([32]))).toThrow(/swiglu backward: dup has shape \[32\], expected \[4,8\]/);
    expect(() => run(t([4, 8]), t([4, 8]), t([8, 4]))).toThrow(/up has shape/);
    expect(() => run(g, t([4, 8]))).toThrow(/five buffers, or dgate = gate and dup = up/);
    expect(() => run(d, t([4, 8]))).toThrow(/five buffers/);
    if (gpu.info.f16) expect(() => run(t([4, 8], 'f16'), t([4, 8]))).toThrow(/dgate is f16 but gate is f32/);
  });
});

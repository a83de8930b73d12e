import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { matmul, MATMUL_SOURCE as source } from '../src/engine/matmul.ts';
import { matmulRef, maxRelError } from '../src/engine/reference/matmul.ts';
import { MATMUL_TOLERANCE, matmulSelfTest } from '../src/engine/selftest.ts';
import { uploadTensor, readTensor } from '../src/engine/tensor.ts';
import { testGpu } from './gpu/device.ts';

// Odd sizes exercise every partial tile; 129x65x257 crosses tile edges in all three dimensions.
const SHAPES = [
  { m: 100, n: 70, k: 37 },
  { m: 1, n: 1, k: 1 },
  { m: 64, n: 64, k: 16 },
  { m: 129, n: 65, k: 257 },
  { m: 3, n: 200, k: 5 },
];

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

describe('matmul f32 against float64 (tolerance 1e-5, component-wise relative)', () => {
  for (const s of SHAPES) {
    for (const transB of [false, true]) {
      it(`${s.m}x${s.n}x${s.k}${transB ? ' Bᵀ' : ''}`, async () => {
        const r = await matmulSelfTest(gpu, { ...s, transB, dtype: 'f32', seed: s.m * 7 + s.k, kernels });
        expect(r.tolerance).toBe(1e-5);
        expect(r.maxRelError).toBeLessThan(1e-5);
      });
    }
  }
});

describe('matmul f16 storage, f32 accumulation (tolerance 1e-3)', () => {
  for (const s of SHAPES) {
    it(`${s.m}x${s.n}x${s.k}`, async (ctx) => {
      if (!gpu.info.f16) ctx.skip();
      const r = await matmulSelfTest(gpu, { ...s, dtype: 'f16', seed: s.n, kernels });
      expect(r.tolerance).toBe(MATMUL_TOLERANCE.f16);
      expect(r.maxRelError).toBeLessThan(1e-3);
      // f16 really was used: the output carries f16 rounding, so it is not f32-exact.
      if (s.m * s.n > 100) expect(r.maxRelError).toBeGreaterThan(1e-6);
    });
  }
});

describe('matmul plumbing', () => {
  it('computes a product checked by hand', async () => {
    const a = uploadTensor(gpu.device, new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], 'f32');
    const b = uploadTensor(gpu.device, new Float32Array([7, 8, 9, 10, 11, 12]), [3, 2], 'f32');
    const c = await readTensor(gpu.device, matmul(kernels, a, b, { m: 2, n: 2, k: 3 }));
    expect([...c]).toEqual([58, 64, 139, 154]);
  });

  it('the error measure catches a wrong result', () => {
    const a = new Float32Array([1, 2]);
    const b = new Float32Array([3, 4]);
    const { c, scale } = matmulRef(a, b, { m: 1, n: 1, k: 2 });
    expect(c[0]).toBe(11);
    expect(maxRelError([11], c, scale)).toBe(0);
    expect(maxRelError([11.011], c, scale)).toBeCloseTo(0.001, 6);
    expect(maxRelError([NaN], c, scale)).toBeNaN();
  });

  it('rejects mismatched shapes with a clear message', () => {
    const a = uploadTensor(gpu.device, new Float32Array(6), [2, 3], 'f32');
    const b = uploadTensor(gpu.device, new Float32Array(6), [2, 3], 'f32');
    expect(() => matmul(kernels, a, b, { m: 2, n: 2, k: 3 })).toThrow(/B has shape \[2,3\], expected \[3,2\]/);
  });

  it('caches compiled pipelines', () => {
    const k1 = kernels.get({ name: 'matmul', source, dtype: 'f32', constants: { TRANS_B: false } });
    const k2 = kernels.get({ name: 'matmul', source, dtype: 'f32', constants: { TRANS_B: false } });
    const k3 = kernels.get({ name: 'matmul', source, dtype: 'f32', constants: { TRANS_B: true } });
    expect(k1).toBe(k2);
    expect(k3).not.toBe(k1);
  });
});

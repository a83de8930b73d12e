// The frozen linear's bias add on the dense path (shaders/bias.wgsl) against its float64
// reference y + bias, f32 and f16 storage, odd sizes. Error: f32 1 ulp-level (2e-7 relative);
// f16 one rounding of the result (2^-11 = 4.9e-4).
import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { encodeBiasAdd } from '../src/engine/linear.ts';
import { readTensor, uploadTensor, type DType } from '../src/engine/tensor.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../src/io/dtype.ts';
import { randomF32 } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';

const TOL: Record<DType, number> = { f32: 2e-7, f16: 4.9e-4 };

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

describe('bias add', () => {
  it.each([
    [1, 5],
    [7, 33],
    [65, 129],
  ])('rows %i x out %i', async (rows, n) => {
    for (const dtype of (gpu.info.f16 ? ['f32', 'f16'] : ['f32']) as DType[]) {
      const round = (x: Float32Array) => (dtype === 'f16' ? f16ArrayToF32(f32ArrayToF16(x)) : x);
      const y0 = round(randomF32(rows * n, rows + n));
      const bias = randomF32(n, 7 * n);
      const y = uploadTensor(gpu.device, y0, [rows, n], dtype);
      const b = uploadTensor(gpu.device, bias, [n], 'f32');
      submitPass(kernels, (pass) => encodeBiasAdd(kernels, pass, y, b));
      const got = await readTensor(gpu.device, y);
      let err = 0;
      for (let i = 0; i < got.length; i++) {
        const want = y0[i] + bias[i % n];
        err = Math.max(err, Math.abs(got[i] - want) / Math.max(Math.abs(want), 2 ** -14));
      }
      expect(err, dtype).toBeLessThanOrEqual(TOL[dtype]);
      y.buffer.destroy();
      b.buffer.destroy();
    }
  });
});

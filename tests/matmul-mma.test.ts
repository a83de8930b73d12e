// The tensor-core GEMM's f32 operand path here (shaders/f16-rows.wgsl: rows scaled by powers of two
// into f16's range, exactly as the CPU model of it), and where the device has f16 subgroup matrices
// the GEMM itself against float64 (src/engine/matmul-mma-check.ts). On a device without them the
// GEMM's checks come from the benchmark machine: tests/fixtures/mma holds its record, and it must be
// for the shader this tree generates.
import { describe, expect, it } from 'vitest';
import { testGpu } from './gpu/device.ts';
import { Kernels, submitPass } from '../src/engine/kernels.ts';
import { encodeF16Rows } from '../src/engine/matmul-mma.ts';
import { checkMmaMatmul, mmaCases } from '../src/engine/matmul-mma-check.ts';
import { uploadTensor } from '../src/engine/tensor.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../src/io/dtype.ts';
import { randomF32 } from '../src/util/random.ts';

async function readBinding(device: GPUDevice, b: GPUBufferBinding): Promise<ArrayBuffer> {
  const staging = device.createBuffer({ size: b.size!, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(b.buffer, b.offset ?? 0, staging, 0, b.size!);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0);
  staging.destroy();
  return out;
}

describe('f16 rows (the f32 operand of the tensor-core GEMM)', () => {
  it('scales each row into [2^14, 2^15) by a power of two and rounds it to f16, as the CPU does', async () => {
    const gpu = await testGpu();
    if (!gpu.info.f16) return expect(gpu.info.features).not.toContain('shader-f16');
    const kernels = new Kernels(gpu);
    const m = 45;
    const k = 300;
    const a = randomF32(m * k, 5);
    // Rows from 2^-40 to 2^20 (below f16's subnormals, above its max), a zero row, an Inf, a NaN.
    for (let i = 0; i < m * k; i++) a[i] = Math.fround(a[i] * 2 ** (Math.floor(i / k) * 1.5 - 40));
    a.fill(0, 3 * k, 4 * k);
    a[5 * k + 7] = Infinity;
    a[6 * k + 2] = NaN;
    const t = uploadTensor(gpu.device, a, [m, k], 'f32');
    let got!: { values: GPUBufferBinding; scales: GPUBufferBinding };
    submitPass(kernels, (pass) => (got = encodeF16Rows(kernels, pass, t, m, k)));
    const values = f16ArrayToF32(new Uint16Array(await readBinding(gpu.device, got.values), 0, m * k));
    const scales = new Float32Array(await readBinding(gpu.device, got.scales));
    for (let r = 0; r < m; r++) {
      const row = a.subarray(r * k, (r + 1) * k);
      const max = row.reduce((x, v) => (Number.isNaN(v) ? x : Math.max(x, Math.abs(v))), 0);
      const s = max === 0 || max === Infinity ? 0 : 14 - Math.floor(Math.log2(max));
      expect([scales[2 * r], scales[2 * r + 1]], `row ${r}`).toEqual([2 ** s, 2 ** -s]);
      const want = f16ArrayToF32(f32ArrayToF16(Float32Array.from(row, (v) => v * 2 ** s)));
      expect(values.subarray(r * k, (r + 1) * k), `row ${r}`).toEqual(want);
      const top = Array.from(want, Math.abs).reduce((x, v) => (Number.isNaN(v) ? x : Math.max(x, v)), 0);
      if (s !== 0) expect(top).toBeGreaterThanOrEqual(2 ** 14);
      if (r === 5) expect(top).toBe(Infinity);
      else expect(top).toBeLessThanOrEqual(2 ** 15); // [2^14, 2^15) before rounding; f16 may round up to 2^15
    }
    t.buffer.destroy();
  });
});

describe('tensor-core GEMM against float64 (devices with f16 subgroup matrices)', () => {
  it('passes every case at the stated tolerances', async () => {
    const gpu = await testGpu();
    if (!gpu.info.mmaF16) return; // lavapipe and SwiftShader have no subgroup matrices: see the fixture test
    const kernels = new Kernels(gpu);
    for (const c of mmaCases(gpu.info.f16)) {
      const r = await checkMmaMatmul(kernels, c);
      expect(r.ok, JSON.stringify(r)).toBe(true);
    }
  });
});

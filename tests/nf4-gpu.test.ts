import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels, submitPass } from '../src/engine/kernels.ts';
import {
  createNf4Weight,
  dequantizeNf4Gpu,
  destroyNf4,
  doubleQuantizeNf4,
  encodeQuantizeNf4,
  quantizeNf4Gpu,
  readNf4,
  uploadNf4,
} from '../src/engine/nf4.ts';
import { readTensor, uploadTensor, type DType } from '../src/engine/tensor.ts';
import { f16ArrayToF32, f32ArrayToF16, f32Bits, f32FromBits } from '../src/io/dtype.ts';
import { NF4_THRESHOLDS, dequantizeNf4, nf4Encode, parseBnbQuantState, quantizeNf4, roundToDtype, type RawTensor } from '../src/io/nf4.ts';
import { bytesSource, openSafetensors } from '../src/io/safetensors.ts';
import { rng } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

const hex = (u8: Uint8Array) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');

function gaussian(n: number, seed: number, scale = 1): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()) * scale;
  return out;
}

/** Random weights with the awkward cases bnb's kernel has to get right, 64-element blocks. */
function awkward(rows: number, cols: number, seed: number, specials: boolean): Float32Array {
  const x = gaussian(rows * cols, seed, 0.02);
  const next = rng(seed + 1);
  const block = (b: number, f: (i: number) => number) => {
    for (let i = 0; i < 64 && b * 64 + i < x.length; i++) x[b * 64 + i] = f(i);
  };
  block(1, () => 0); // zero block
  block(2, (i) => (i === 5 ? 0 : -0));
  // thresholds and neighbours at absmax 1 (s = x exactly), and code values
  block(3, (i) => (i === 0 ? 1 : i < 16 ? NF4_THRESHOLDS[i - 1] : i < 31 ? f32FromBits(f32Bits(NF4_THRESHOLDS[i - 16]) + 1) : -0.5));
  // blocks spread over 60 decades: many different reciprocals
  for (let b = 4; b < 12; b++) {
    const scale = Math.fround(10 ** (next() * 60 - 30));
    block(b, () => Math.fround((next() * 2 - 1) * scale));
  }
  if (specials) {
    x[12 * 64 + 3] = NaN;
    x[13 * 64 + 7] = Infinity;
    block(14, () => NaN);
    block(15, (i) => f32FromBits(1 + i * 1000)); // subnormals only: FTZ
    block(16, (i) => (i % 3 ? f32FromBits(0x80000000 | (i * 777)) : 0.01 * i)); // subnormals among normals
    block(17, () => Math.fround((next() * 2 - 1) * 3e38)); // 1/absmax below 2^-126: flushed
  }
  return x;
}

/** Equal bit patterns, except that NaNs match NaNs and ±0 match (WGSL does not promise the sign of a zero product). */
function bitDiff(a: Float32Array, b: Float32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    if (f32Bits(a[i]) === f32Bits(b[i]) || (Number.isNaN(a[i]) && Number.isNaN(b[i])) || (a[i] === 0 && b[i] === 0)) continue;
    n++;
  }
  return n;
}

async function gpuQuantize(x: Float32Array, shape: number[], dtype: DType, blocksize: number) {
  const t = uploadTensor(gpu.device, x, shape, dtype);
  const w = quantizeNf4Gpu(kernels, t, { blocksize });
  const back = await readNf4(gpu.device, w);
  t.buffer.destroy();
  return { w, back };
}

describe('NF4 quantize on the GPU, bit-identical to the CPU reference', () => {
  const cases = [
    { rows: 37, cols: 192, blocksize: 64 },
    { rows: 37, cols: 37, blocksize: 64 }, // odd element count, last block partial
    { rows: 19, cols: 100, blocksize: 32 },
    { rows: 21, cols: 70, blocksize: 128 },
    { rows: 3, cols: 1000, blocksize: 4096 }, // one partial block bigger than the tensor
  ];
  for (const { rows, cols, blocksize } of cases) {
    it(`f32 ${rows}x${cols}, blocksize ${blocksize}, with ties, zero/-0/NaN/Inf/subnormal blocks`, async () => {
      const x = awkward(rows, cols, rows * cols + blocksize, true);
      const cpu = quantizeNf4(x, { blocksize, shape: [rows, cols] });
      const { w, back } = await gpuQuantize(x, [rows, cols], 'f32', blocksize);
      expect(back.shape).toEqual([rows, cols]);
      expect(hex(back.packed)).toBe(hex(cpu.packed));
      expect(Array.from(back.absmax, f32Bits)).toEqual(Array.from(cpu.absmax, f32Bits));
      destroyNf4(w);
    });
  }

  it('many reciprocals: blocks whose codes depend on the last bit of 1/absmax', async () => {
    // For random absmax a (over 70 decades), elements x near t / r (t a threshold, r = f32(1/a))
    // whose code changes when r moves by one ulp: a wrong reciprocal on the GPU cannot hide.
    const next = rng(77);
    const up = (v: number) => f32FromBits(f32Bits(v) + 1);
    const down = (v: number) => f32FromBits(f32Bits(v) - 1);
    const x = new Float32Array(2048 * 32);
    let sensitive = 0;
    for (let b = 0; b < 2048; b++) {
      const a = Math.fround((0.5 + next()) * 10 ** Math.floor(next() * 70 - 35));
      const r = Math.fround(1 / a);
      const vals = [a];
      for (let k = 0; k < 400 && vals.length < 32; k++) {
        const t = NF4_THRESHOLDS[Math.floor(next() * 15)];
        const c = Math.fround(t / r);
        for (const v of [down(c), c, up(c)]) {
          const codeAt = (rr: number) => nf4Encode(Math.fround(v * rr));
          if (Math.abs(v) <= a && (codeAt(r) !== codeAt(up(r)) || codeAt(r) !== codeAt(down(r)))) vals.push(v);
        }
      }
      sensitive += vals.length - 1;
      for (let i = 0; i < 32; i++) x[b * 32 + i] = vals[i] ?? Math.fround(a * (next() * 2 - 1));
    }
    expect(sensitive).toBeGreaterThan(2048 * 8);
    const cpu = quantizeNf4(x, { blocksize: 32 });
    const { w, back } = await gpuQuantize(x, [x.length], 'f32', 32);
    expect(hex(back.packed)).toBe(hex(cpu.packed));
    expect(Array.from(back.absmax, f32Bits)).toEqual(Array.from(cpu.absmax, f32Bits));
    destroyNf4(w);
  });

  it('f16 input (where shader-f16 exists): same bytes as the CPU on the f16 values', async (ctx) => {
    if (!gpu.info.f16) ctx.skip();
    for (const [rows, cols] of [
      [37, 192],
      [37, 37],
    ]) {
      const x = f16ArrayToF32(f32ArrayToF16(awkward(rows, cols, 5, false)));
      x[100] = NaN;
      x[200] = Infinity;
      x[300] = f16ArrayToF32(new Uint16Array([1]))[0]; // an f16 subnormal: a normal f32, not flushed
      const cpu = quantizeNf4(x, { shape: [rows, cols], dtype: 'float16' });
      const { w, back } = await gpuQuantize(x, [rows, cols], 'f16', 64);
      expect(back.dtype).toBe('float16');
      expect(hex(back.packed)).toBe(hex(cpu.packed));
      expect(Array.from(back.absmax, f32Bits)).toEqual(Array.from(cpu.absmax, f32Bits));
      destroyNf4(w);
    }
  });

  it('quantizing in chunks (streamed weights) gives the same bytes as at once', async () => {
    const rows = 37;
    const cols = 192;
    const x = awkward(rows, cols, 9, true);
    const w = createNf4Weight(gpu.device, [rows, cols]);
    const chunk = 64 * 30; // whole blocks; the last chunk is shorter
    submitPass(kernels, (pass) => {
      for (let off = 0; off < x.length; off += chunk) {
        const part = x.subarray(off, Math.min(x.length, off + chunk));
        const t = uploadTensor(gpu.device, part, [part.length], 'f32');
        encodeQuantizeNf4(kernels, pass, t, w, off);
      }
    });
    const back = await readNf4(gpu.device, w);
    const cpu = quantizeNf4(x, { shape: [rows, cols] });
    expect(hex(back.packed)).toBe(hex(cpu.packed));
    expect(Array.from(back.absmax)).toEqual(Array.from(cpu.absmax));
    const t = uploadTensor(gpu.device, x.subarray(0, 100), [100], 'f32');
    expect(() => submitPass(kernels, (pass) => encodeQuantizeNf4(kernels, pass, t, w, 0))).toThrow(/not the last must hold whole blocks/);
    expect(() => submitPass(kernels, (pass) => encodeQuantizeNf4(kernels, pass, t, w, 32))).toThrow(/not a multiple of the blocksize 64/);
    destroyNf4(w);
  });
});

describe('NF4 dequantize on the GPU', () => {
  it('f32 output: bit-identical to dequantizeNf4 (odd size, partial block)', async () => {
    const x = awkward(37, 37, 13, false);
    const cpu = quantizeNf4(x, { shape: [37, 37] });
    const w = uploadNf4(gpu.device, cpu);
    const got = await readTensor(gpu.device, dequantizeNf4Gpu(kernels, w, 'f32'));
    expect(bitDiff(got, dequantizeNf4(cpu))).toBe(0);
    destroyNf4(w);
  });

  it('f16 output: the f32 result rounded once (within one f16 ulp; WGSL may round either way)', async (ctx) => {
    if (!gpu.info.f16) ctx.skip();
    const x = awkward(37, 192, 17, false);
    const cpu = quantizeNf4(x, { shape: [37, 192] });
    const w = uploadNf4(gpu.device, cpu);
    const got = await readTensor(gpu.device, dequantizeNf4Gpu(kernels, w, 'f16'));
    const want = roundToDtype(dequantizeNf4(cpu), 'float16');
    const gotBits = f32ArrayToF16(got);
    const wantBits = f32ArrayToF16(want);
    let exact = 0;
    for (let i = 0; i < got.length; i++) {
      if (gotBits[i] === wantBits[i] || (got[i] === 0 && want[i] === 0)) exact++;
      else expect(Math.abs(gotBits[i] - wantBits[i])).toBe(1);
    }
    console.log(`nf4 dequant f16: ${exact} of ${got.length} values round exactly as round-to-nearest-even`);
    destroyNf4(w);
  });

  it('special-value blocks dequantize without error', async () => {
    const x = awkward(37, 192, 19, true);
    const w = uploadNf4(gpu.device, quantizeNf4(x, { shape: [37, 192] }));
    const got = await readTensor(gpu.device, dequantizeNf4Gpu(kernels, w, 'f32'));
    expect(got.length).toBe(37 * 192);
    destroyNf4(w);
  });

  it('double quantization on the CPU after the GPU quantized: the same decoded absmax as the CPU path', async () => {
    const x = gaussian(64 * 600, 23, 0.02);
    const t = uploadTensor(gpu.device, x, [600, 64], 'f32');
    const w = quantizeNf4Gpu(kernels, t);
    const nested = await doubleQuantizeNf4(gpu.device, w);
    const cpu = quantizeNf4(x, { shape: [600, 64], doubleQuant: true });
    expect(Array.from(nested.qabsmax)).toEqual(Array.from(cpu.nested!.qabsmax));
    const back = await readNf4(gpu.device, w);
    expect(Array.from(back.absmax)).toEqual(Array.from(cpu.absmax));
    expect(back.nested).toBe(nested);
    const got = await readTensor(gpu.device, dequantizeNf4Gpu(kernels, w, 'f32'));
    expect(bitDiff(got, dequantizeNf4(cpu))).toBe(0);
    await expect(doubleQuantizeNf4(gpu.device, w)).rejects.toThrow(/double-quantized already/);
    destroyNf4(w);
  });

  const fixture = join(import.meta.dirname, 'fixtures', 'nf4', 'random_bf16_nested.safetensors');
  it.skipIf(!existsSync(fixture))('a bitsandbytes checkpoint weight, uploaded as is, dequantizes to bnb f32 output', async () => {
    const file = await openSafetensors(bytesSource(new Uint8Array(readFileSync(fixture))));
    const tensors: Record<string, RawTensor> = {};
    for (const t of file.tensors) tensors[t.name] = { dtype: t.dtype, shape: t.shape, data: await file.read(t.name) };
    const w = uploadNf4(gpu.device, parseBnbQuantState(tensors));
    const got = await readTensor(gpu.device, dequantizeNf4Gpu(kernels, w, 'f32'));
    expect(bitDiff(got, await file.readF32('dequant_f32'))).toBe(0);
    const back = await readNf4(gpu.device, w);
    expect(hex(back.packed)).toBe(hex(tensors.weight.data));
    destroyNf4(w);
  });
});

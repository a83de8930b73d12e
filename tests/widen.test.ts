// The GPU widening of raw bf16/f16 words (shaders/widen.wgsl) against the CPU conversions of
// src/io/dtype.ts, bit for bit: every 16-bit pattern, random patterns of odd lengths, and chunks
// written into ranges of a larger buffer as the loader does.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels, submitPass } from '../src/engine/kernels.ts';
import { alignedBytes, encodeWiden, padTo4, widenGpu, type WidenSource } from '../src/engine/widen.ts';
import { type DType, readTensor } from '../src/engine/tensor.ts';
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToF16, f32ArrayToBf16 } from '../src/io/dtype.ts';
import { readNf4 } from '../src/engine/nf4.ts';
import { WeightUploader } from '../src/engine/weights.ts';
import { quantizeNf4 } from '../src/io/nf4.ts';
import { bytesSource, openSafetensors, toF32, writeSafetensorsToBytes, type Dtype } from '../src/io/safetensors.ts';
import { rng } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

async function readBits(buffer: GPUBuffer, offset = 0, size = buffer.size - offset): Promise<ArrayBuffer> {
  const device = gpu.device;
  const staging = device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, offset, staging, 0, size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const copy = staging.getMappedRange().slice(0);
  staging.unmap();
  staging.destroy();
  return copy;
}

/** What the CPU makes of raw patterns, as bits: f32 bits, or f16 bits for bf16 -> f16. */
function cpuBits(raw: Uint16Array, from: WidenSource, to: DType): Uint32Array | Uint16Array {
  const f32 = from === 'bf16' ? bf16ArrayToF32(raw) : f16ArrayToF32(raw);
  return to === 'f32' ? new Uint32Array(f32.buffer) : f32ArrayToF16(f32);
}

/** An f16 signalling NaN: the CPU table passes it through a JS number, which quiets it. */
const f16Signalling = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0 && (h & 0x200) === 0;

/** Compares GPU bits with the CPU's; returns the first mismatches, described. */
function mismatches(raw: Uint16Array, from: WidenSource, to: DType, gpuBits: Uint32Array | Uint16Array): string[] {
  const cpu = cpuBits(raw, from, to);
  const bad: string[] = [];
  for (let i = 0; i < raw.length && bad.length < 8; i++) {
    let want = cpu[i];
    if (from === 'f16' && f16Signalling(raw[i])) {
      // The exact widening keeps the signalling payload (the CPU's only inexactness, JS-side).
      want = (((raw[i] & 0x8000) << 16) | 0x7f800000 | ((raw[i] & 0x3ff) << 13)) >>> 0;
      if ((cpu[i] & ~0x400000) >>> 0 !== want) bad.push(`cpu reference changed at ${i}`);
    }
    if (gpuBits[i] !== want) bad.push(`[${i}] ${raw[i].toString(16)}: gpu ${gpuBits[i].toString(16)}, cpu ${want.toString(16)}`);
  }
  return bad;
}

async function widenBits(raw: Uint16Array, from: WidenSource, to: DType): Promise<Uint32Array | Uint16Array> {
  const t = widenGpu(kernels, raw, from, to);
  const bytes = await readBits(t.buffer);
  t.buffer.destroy();
  return to === 'f32' ? new Uint32Array(bytes, 0, raw.length) : new Uint16Array(bytes, 0, raw.length);
}

function randomPatterns(n: number, seed: number): Uint16Array {
  const next = rng(seed);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 65536);
  return out;
}

const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
const CASES: [WidenSource, DType][] = [
  ['bf16', 'f32'],
  ['f16', 'f32'],
  ['bf16', 'f16'],
];

describe('widen on the GPU', () => {
  for (const [from, to] of CASES) {
    it(`${from} -> ${to}: all 65536 patterns (NaN, Inf, subnormals, -0) bit-exact`, async () => {
      const got = await widenBits(all, from, to);
      expect(mismatches(all, from, to, got)).toEqual([]);
    });

    it(`${from} -> ${to}: random patterns, odd lengths`, async () => {
      for (const n of [1, 2, 3, 255, 257, 513, 4097]) {
        const raw = randomPatterns(n, n * 7 + 1);
        expect(mismatches(raw, from, to, await widenBits(raw, from, to))).toEqual([]);
      }
    });
  }

  it('an odd count: nothing written past n (f32), a 0 pad half (f16)', async () => {
    const raw = Uint16Array.of(0x3f80, 0xbf80, 0x7f80);
    const sentinel = new Uint32Array([1, 2, 3, 0xdeadbeef]);
    const out = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
    const src = gpu.device.createBuffer({ size: 8, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    gpu.device.queue.writeBuffer(src, 0, padTo4(new Uint8Array(raw.buffer)));
    gpu.device.queue.writeBuffer(out, 0, sentinel);
    submitPass(kernels, (pass) => encodeWiden(kernels, pass, src, 'bf16', out, 'f32', 3));
    expect([...new Uint32Array(await readBits(out))]).toEqual([0x3f800000, 0xbf800000, 0x7f800000, 0xdeadbeef]);
    gpu.device.queue.writeBuffer(out, 0, sentinel);
    submitPass(kernels, (pass) => encodeWiden(kernels, pass, src, 'bf16', out, 'f16', 3));
    expect([...new Uint32Array(await readBits(out))]).toEqual([0xbc003c00, 0x7c00, 3, 0xdeadbeef]);
    out.destroy();
    src.destroy();
  });

  for (const [from, to] of CASES) {
    it(`${from} -> ${to}: chunks at element offsets into one tensor, as the loader streams`, async () => {
      const n = 3 * 4096 + 1001; // 4096-element chunks, the last odd
      const chunk = 4096;
      const raw = randomPatterns(n, 99);
      const device = gpu.device;
      const dstBytes = alignedBytes(n, to);
      const dst = device.createBuffer({ size: dstBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
      const staging = device.createBuffer({ size: chunk * 2, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      const bytes = new Uint8Array(raw.buffer);
      const elem = to === 'f32' ? 4 : 2;
      for (let off = 0; off < n; off += chunk) {
        const m = Math.min(chunk, n - off);
        device.queue.writeBuffer(staging, 0, padTo4(bytes.subarray(off * 2, (off + m) * 2)));
        const range = { buffer: dst, offset: off * elem, size: alignedBytes(m, to) };
        submitPass(kernels, (pass) => encodeWiden(kernels, pass, staging, from, range, to, m));
      }
      const out = await readBits(dst);
      const got = to === 'f32' ? new Uint32Array(out, 0, n) : new Uint16Array(out, 0, n);
      expect(mismatches(raw, from, to, got)).toEqual([]);
      dst.destroy();
      staging.destroy();
    });
  }

  it('refuses what it cannot do', () => {
    const b = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
    expect(() => submitPass(kernels, (pass) => encodeWiden(kernels, pass, b, 'f16', b, 'f16', 2))).toThrow(/no conversion/);
    expect(() => submitPass(kernels, (pass) => encodeWiden(kernels, pass, b, 'bf16', b, 'f32', 5))).toThrow(/dst holds 16 bytes/);
    b.destroy();
  });
});

describe('the weight uploader widens 16-bit checkpoints on the GPU', () => {
  /** Gaussian-ish values with specials (quiet NaN, ±Inf, -0, subnormals of both formats). */
  function values(n: number, seed: number): Float32Array {
    const next = rng(seed);
    const v = Float32Array.from({ length: n }, () => (next() - 0.5) * 0.1);
    const specials = [NaN, Infinity, -Infinity, -0, 0, 1e-40, -3e-39, 6e-8, -3e-5, 65504, 1e5];
    specials.forEach((x, i) => (v[(i * 37) % n] = x));
    for (let i = 0; i < 64; i++) v[64 + i] = 0; // a zero block
    return v;
  }
  const encode = (v: Float32Array, dtype: Dtype): Uint8Array => {
    const typed = dtype === 'F32' ? v : dtype === 'F16' ? f32ArrayToF16(v) : f32ArrayToBf16(v);
    return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength).slice();
  };
  const f32bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

  for (const dtype of ['BF16', 'F16', 'F32'] as Dtype[]) {
    it(`${dtype}: NF4 codes and absmax as the CPU quantizeNf4; dense f32/f16 bit-exact (odd sizes)`, async () => {
      const shape = [7, 73]; // 511 elements: a partial last block and an odd count
      const v = values(511, dtype.length * 13);
      const bytes = await writeSafetensorsToBytes([
        { name: 'w', dtype, shape, data: encode(v, dtype) },
        { name: 'e', dtype, shape, data: encode(v, dtype) },
      ]);
      const st = await openSafetensors(bytesSource(bytes, 'x.safetensors'));
      const info = st.get('w');
      const source = toF32(info, await st.read('w')); // what the CPU path converted
      const up = new WeightUploader(kernels, 511);
      try {
        const w = await up.quantizeLinear(st, info, shape, false);
        const nf4Dtype = dtype === 'F32' ? 'float32' : dtype === 'F16' ? 'float16' : 'bfloat16';
        const want = quantizeNf4(source, { shape, dtype: nf4Dtype });
        const got = await readNf4(gpu.device, w);
        expect(Buffer.from(got.packed).equals(Buffer.from(want.packed))).toBe(true);
        expect(f32bits(got.absmax)).toEqual(f32bits(want.absmax));
        w.words.destroy();
        w.absmax.destroy();
        for (const to of (gpu.info.f16 ? ['f32', 'f16'] : ['f32']) as DType[]) {
          const t = await up.uploadDense(st, st.get('e'), shape, to);
          const back = await readTensor(gpu.device, t);
          const wantDense = to === 'f32' ? source : f16ArrayToF32(f32ArrayToF16(source));
          expect(f32bits(back), `dense ${to}`).toEqual(f32bits(wantDense));
          t.buffer.destroy();
        }
      } finally {
        up.destroy();
      }
    });
  }
});

// The plain float types of GGUF: F32, F16 and BF16 (little-endian; conversions from f32 round to
// nearest even, as torch/numpy do in convert_hf_to_gguf and as ggml does).

import { GGMLType } from './ggml-types.ts';
import { HOST_LITTLE_ENDIAN, bf16ArrayToF32, bytesToF32LE, bytesToU16LE, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16, f32ToBytesLE, u16ToBytesLE } from '../dtype.ts';
import type { QuantFormat } from './common.ts';

function into(out: Uint8Array | undefined, bytes: Uint8Array, name: string): Uint8Array {
  if (out === undefined) return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  if (out.length !== bytes.length) throw new RangeError(`${name}: output is ${out.length} bytes, needs ${bytes.length}`);
  out.set(bytes);
  return out;
}

function intoF32(out: Float32Array | undefined, values: Float32Array, name: string): Float32Array {
  if (out === undefined) return values;
  if (out.length !== values.length) throw new RangeError(`${name}: output holds ${out.length} values, the input has ${values.length}`);
  out.set(values);
  return out;
}

export const F32: QuantFormat = {
  type: GGMLType.F32,
  name: 'F32',
  blockSize: 1,
  typeSize: 4,
  quantize: (src, dst) => into(dst, f32ToBytesLE(src).slice(), 'F32'),
  dequantize: (src, dst) => intoF32(dst, bytesToF32LE(src), 'F32'),
};

export const F16: QuantFormat = {
  type: GGMLType.F16,
  name: 'F16',
  blockSize: 1,
  typeSize: 2,
  quantize: (src, dst) => {
    const out = u16Out(dst, src.length, 'F16');
    if (out === null) return into(dst, u16ToBytesLE(f32ArrayToF16(src)), 'F16');
    f32ArrayToF16(src, out);
    return dst ?? new Uint8Array(out.buffer);
  },
  dequantize: (src, dst) => intoF32(dst, f16ArrayToF32(bytesToU16LE(src)), 'F16'),
};

export const BF16: QuantFormat = {
  type: GGMLType.BF16,
  name: 'BF16',
  blockSize: 1,
  typeSize: 2,
  quantize: (src, dst) => {
    const out = u16Out(dst, src.length, 'BF16');
    if (out === null) return into(dst, u16ToBytesLE(f32ArrayToBf16(src)), 'BF16');
    bf16Into(src, out);
    return dst ?? new Uint8Array(out.buffer);
  },
  dequantize: (src, dst) => intoF32(dst, bf16ArrayToF32(bytesToU16LE(src)), 'BF16'),
};

/** Where 16-bit values can be written straight into `dst` (or a new buffer): a Uint16Array over
 * it; null when they cannot (a big-endian host, or `dst` at an odd offset). */
function u16Out(dst: Uint8Array | undefined, n: number, name: string): Uint16Array | null {
  if (!HOST_LITTLE_ENDIAN) return null;
  if (dst === undefined) return new Uint16Array(n);
  if (dst.length !== 2 * n) throw new RangeError(`${name}: output is ${dst.length} bytes, needs ${2 * n}`);
  return dst.byteOffset % 2 === 0 ? new Uint16Array(dst.buffer, dst.byteOffset, n) : null;
}

/** f32ArrayToBf16 (src/io/dtype.ts) with integer arithmetic: the same bits. Below the NaNs, b plus
 * the rounding bias stays under 2^32, so `>>> 16` is the division the reference truncates. */
function bf16Into(src: Float32Array, out: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    out[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x0040 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
}

// 16-bit float conversions by hand (Node 20 has no Float16Array; WebGPU hosts may lack shader-f16).
//
// Bit patterns of f16 (IEEE 754 binary16) and bf16 (bfloat16) are carried in plain numbers or in
// Uint16Array. Conversions from f32 round to nearest, ties to even, as PyTorch's `.half()` and
// `.bfloat16()` do; NaN stays NaN (quiet, sign kept), ±Inf stays ±Inf, subnormals are produced and
// read. Scalar functions take a JS number, which is first rounded to f32 (as Math.fround does):
// the conversion is defined from f32, like every framework's.
//
// Pure functions: no DOM, no Node modules; runs in a worker, the page and Node alike.

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** The f32 bit pattern of `x` (after rounding `x` to f32), as an unsigned 32-bit number. */
export function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0];
}

/** The f32 value of a 32-bit pattern. */
export function f32FromBits(bits: number): number {
  scratchU32[0] = bits >>> 0;
  return scratchF32[0];
}

// ---------------------------------------------------------------------------------------------
// f16

/** f32 bit pattern -> f16 bit pattern, round to nearest even. */
function f16FromF32Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) {
    // Inf, or NaN: keep the top payload bits and force the quiet bit so it never becomes Inf.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 127 + 15; // re-biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    // Result is subnormal (or zero). Values below half the smallest subnormal (2^-25) round to 0.
    if (e < -10) return sign;
    const m = mant | 0x800000; // implicit leading one
    const shift = 14 - e; // 14..24
    const half = 1 << (shift - 1);
    const rem = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rem > half || (rem === half && (r & 1) === 1)) r++; // may carry into the smallest normal
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++; // may carry up to Inf: correct
  return sign | r;
}

/** f16 bit pattern -> f32 bit pattern (exact). */
function f32BitsFromF16(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    // Subnormal: normalise the mantissa.
    let e = -14;
    while ((mant & 0x400) === 0) {
      mant <<= 1;
      e--;
    }
    mant &= 0x3ff;
    return (sign | ((e + 127) << 23) | (mant << 13)) >>> 0;
  }
  return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
}

/** A number -> f16 bits (via f32), round to nearest even. */
export function f32ToF16Bits(x: number): number {
  return f16FromF32Bits(f32Bits(x));
}

/** f16 bits -> the number it represents (exact). */
export function f16BitsToF32(h: number): number {
  return f32FromBits(f32BitsFromF16(h & 0xffff));
}

let f16Table: Float32Array | null = null;
/** All 65536 f16 values as f32, built on first use (256 KiB). */
function f16ToF32Table(): Float32Array {
  if (f16Table === null) {
    const bits = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) bits[h] = f32BitsFromF16(h);
    f16Table = new Float32Array(bits.buffer);
  }
  return f16Table;
}

/** Float32 values -> f16 bit patterns. `out` (same length) is filled and returned if given. */
export function f32ArrayToF16(src: Float32Array, out?: Uint16Array): Uint16Array {
  const dst = checkOut(out, src.length, Uint16Array);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) dst[i] = f16FromF32Bits(bits[i]);
  return dst;
}

/** f16 bit patterns -> Float32 values. */
export function f16ArrayToF32(src: Uint16Array, out?: Float32Array): Float32Array {
  const dst = checkOut(out, src.length, Float32Array);
  const table = f16ToF32Table();
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]];
  return dst;
}

// ---------------------------------------------------------------------------------------------
// bf16 (the top half of an f32)

function bf16FromF32Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) {
    // NaN: truncate and force the quiet bit, so a payload only in the low half is not lost.
    return ((bits >>> 16) | 0x0040) & 0xffff;
  }
  // Round to nearest even on the dropped 16 bits. Overflow rounds to Inf, as it should.
  const bias = 0x7fff + ((bits >>> 16) & 1);
  return Math.floor((bits + bias) / 65536) & 0xffff;
}

/** A number -> bf16 bits (via f32), round to nearest even. */
export function f32ToBf16Bits(x: number): number {
  return bf16FromF32Bits(f32Bits(x));
}

/** bf16 bits -> the number it represents (exact). */
export function bf16BitsToF32(b: number): number {
  return f32FromBits(((b & 0xffff) << 16) >>> 0);
}

/** Float32 values -> bf16 bit patterns. */
export function f32ArrayToBf16(src: Float32Array, out?: Uint16Array): Uint16Array {
  const dst = checkOut(out, src.length, Uint16Array);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i];
    if ((b & 0x7fffffff) > 0x7f800000) {
      dst[i] = (b >>> 16) | 0x0040;
    } else {
      dst[i] = (b + 0x7fff + ((b >>> 16) & 1)) / 65536; // Uint16Array store truncates; b+bias < 2^32
    }
  }
  return dst;
}

/** bf16 bit patterns -> Float32 values (exact). */
export function bf16ArrayToF32(src: Uint16Array, out?: Float32Array): Float32Array {
  const dst = checkOut(out, src.length, Float32Array);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return dst;
}

// ---------------------------------------------------------------------------------------------
// Little-endian byte views (safetensors and GGUF are little-endian on disk)

/** True on little-endian hosts (every browser and Node platform in practice). */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Little-endian bytes -> Uint16Array (a copy, so alignment of `bytes` never matters). */
export function bytesToU16LE(bytes: Uint8Array): Uint16Array {
  if (bytes.length % 2 !== 0) throw new RangeError(`byte length ${bytes.length} is not a multiple of 2`);
  const out = new Uint16Array(bytes.length / 2);
  if (HOST_LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes);
  } else {
    for (let i = 0; i < out.length; i++) out[i] = bytes[2 * i] | (bytes[2 * i + 1] << 8);
  }
  return out;
}

/** Uint16Array -> little-endian bytes (a view when the host is little-endian, else a copy). */
export function u16ToBytesLE(values: Uint16Array): Uint8Array {
  if (HOST_LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    out[2 * i] = values[i] & 0xff;
    out[2 * i + 1] = values[i] >>> 8;
  }
  return out;
}

/** Little-endian bytes -> Float32Array (a copy). */
export function bytesToF32LE(bytes: Uint8Array): Float32Array {
  if (bytes.length % 4 !== 0) throw new RangeError(`byte length ${bytes.length} is not a multiple of 4`);
  const out = new Float32Array(bytes.length / 4);
  if (HOST_LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes);
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
  }
  return out;
}

/** Float32Array -> little-endian bytes (a view when the host is little-endian, else a copy). */
export function f32ToBytesLE(values: Float32Array): Uint8Array {
  if (HOST_LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) dv.setFloat32(4 * i, values[i], true);
  return out;
}

function checkOut<T extends Uint16Array | Float32Array>(
  out: T | undefined,
  length: number,
  ctor: { new (n: number): T },
): T {
  if (out === undefined) return new ctor(length);
  if (out.length !== length) throw new RangeError(`output length ${out.length} != input length ${length}`);
  return out;
}

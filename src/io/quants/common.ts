// Helpers shared by the quantizers (block headers, argument checks, the QuantFormat interface).
// ggml's reference quantizers compute in float32 on scalar SSE (no FMA, no reassociation), so the
// quantizers round every operation to float32 with Math.fround in the order C evaluates it: their
// blocks come out bit-identical to ggml's (checked against bytes made by ggml itself:
// tests/fixtures/gguf/quant-refs.*).

import { f16BitsToF32, f32ToF16Bits } from '../dtype.ts';

/** Writes x as an IEEE half at `off` (little-endian); returns the half's value as a number. */
export function putF16(out: Uint8Array, off: number, x: number): number {
  const h = f32ToF16Bits(x);
  out[off] = h & 0xff;
  out[off + 1] = h >>> 8;
  return f16BitsToF32(h);
}

/** Reads the IEEE half at `off` (little-endian). */
export function getF16(bytes: Uint8Array, off: number): number {
  return f16BitsToF32(bytes[off] | (bytes[off + 1] << 8));
}

/** Largest |x| over x[o .. o+n), and the x (sign kept) where it is first reached. */
export function signedAbsMax(x: Float32Array, o: number, n: number): { amax: number; max: number } {
  let amax = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const v = x[o + i];
    const a = Math.abs(v);
    if (amax < a) {
      amax = a;
      max = v;
    }
  }
  return { amax, max };
}

/** Checks a (src, dst) pair and returns dst, allocated when absent. */
export function checkQuantizeArgs(name: string, blockSize: number, typeSize: number, src: Float32Array, dst?: Uint8Array): Uint8Array {
  if (src.length % blockSize !== 0) {
    throw new RangeError(`${name}: ${src.length} values are not a whole number of ${blockSize}-element blocks`);
  }
  const bytes = (src.length / blockSize) * typeSize;
  if (dst === undefined) return new Uint8Array(bytes);
  if (dst.length !== bytes) throw new RangeError(`${name}: output is ${dst.length} bytes, ${src.length} values need ${bytes}`);
  return dst;
}

export function checkDequantizeArgs(name: string, blockSize: number, typeSize: number, src: Uint8Array, dst?: Float32Array): Float32Array {
  if (src.length % typeSize !== 0) {
    throw new RangeError(`${name}: ${src.length} bytes are not a whole number of ${typeSize}-byte blocks`);
  }
  const n = (src.length / typeSize) * blockSize;
  if (dst === undefined) return new Float32Array(n);
  if (dst.length !== n) throw new RangeError(`${name}: output holds ${dst.length} values, the input has ${n}`);
  return dst;
}

/** One ggml tensor type: float32 values <-> its bytes. Rows are whole blocks, so a tensor is
 * quantized as one flat array (row after row), exactly as ggml's quantize_row_*_ref does. */
export interface QuantFormat {
  readonly type: number;
  readonly name: string;
  readonly blockSize: number;
  readonly typeSize: number;
  quantize(src: Float32Array, dst?: Uint8Array): Uint8Array;
  dequantize(src: Uint8Array, dst?: Float32Array): Float32Array;
}

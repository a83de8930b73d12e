// Every ggml tensor type the exporter writes, by id: quantize f32 -> bytes, dequantize bytes -> f32.

import { F16, BF16, F32 } from './float.ts';
import { Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 } from './legacy.ts';
import { Q2_K, Q3_K, Q4_K, Q5_K, Q6_K } from './kquants.ts';
import { ggmlTypeName } from './ggml-types.ts';
import type { QuantFormat } from './common.ts';

export type { QuantFormat } from './common.ts';
export { GGMLType, QK_K, ggmlRowBytes, ggmlTypeInfo, ggmlTypeName, isQuantized, requireGgmlType } from './ggml-types.ts';
export type { GGMLTypeId, GGMLTypeInfo, GGMLTypeName } from './ggml-types.ts';
export { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K };

const FORMATS: readonly QuantFormat[] = [F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K];
const BY_TYPE = new Map<number, QuantFormat>(FORMATS.map((f) => [f.type, f]));

export function quantFormat(type: number): QuantFormat {
  const f = BY_TYPE.get(type);
  if (!f) throw new RangeError(`no quantizer for ggml type ${ggmlTypeName(type)}`);
  return f;
}

/** f32 values (whole rows, row after row) -> the type's bytes. */
export function quantize(type: number, src: Float32Array, dst?: Uint8Array): Uint8Array {
  return quantFormat(type).quantize(src, dst);
}

/** The type's bytes -> f32 values. */
export function dequantize(type: number, src: Uint8Array, dst?: Float32Array): Float32Array {
  return quantFormat(type).dequantize(src, dst);
}

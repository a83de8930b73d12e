// ggml tensor types that GGUF files written here use: ids, block sizes and bytes per block
// (specs/formats.md §1.4; ggml.h `enum ggml_type`, gguf-py GGML_QUANT_SIZES).

export const GGMLType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  BF16: 30,
} as const;

export type GGMLTypeName = keyof typeof GGMLType;
export type GGMLTypeId = (typeof GGMLType)[GGMLTypeName];

export interface GGMLTypeInfo {
  readonly id: GGMLTypeId;
  readonly name: GGMLTypeName;
  /** Elements per block (1 for plain floats). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
}

/** Super-block size of the k-quants. */
export const QK_K = 256;

const INFO: readonly GGMLTypeInfo[] = [
  { id: 0, name: 'F32', blockSize: 1, typeSize: 4 },
  { id: 1, name: 'F16', blockSize: 1, typeSize: 2 },
  { id: 2, name: 'Q4_0', blockSize: 32, typeSize: 18 },
  { id: 3, name: 'Q4_1', blockSize: 32, typeSize: 20 },
  { id: 6, name: 'Q5_0', blockSize: 32, typeSize: 22 },
  { id: 7, name: 'Q5_1', blockSize: 32, typeSize: 24 },
  { id: 8, name: 'Q8_0', blockSize: 32, typeSize: 34 },
  { id: 10, name: 'Q2_K', blockSize: QK_K, typeSize: 84 },
  { id: 11, name: 'Q3_K', blockSize: QK_K, typeSize: 110 },
  { id: 12, name: 'Q4_K', blockSize: QK_K, typeSize: 144 },
  { id: 13, name: 'Q5_K', blockSize: QK_K, typeSize: 176 },
  { id: 14, name: 'Q6_K', blockSize: QK_K, typeSize: 210 },
  { id: 30, name: 'BF16', blockSize: 1, typeSize: 2 },
];

const BY_ID = new Map<number, GGMLTypeInfo>(INFO.map((t) => [t.id, t]));

/** Info for a type id this code knows, or undefined. */
export function ggmlTypeInfo(id: number): GGMLTypeInfo | undefined {
  return BY_ID.get(id);
}

/** Info for a type id; throws for ids this code does not know. */
export function requireGgmlType(id: number): GGMLTypeInfo {
  const t = BY_ID.get(id);
  if (!t) throw new RangeError(`ggml type ${id} is not supported here`);
  return t;
}

export function ggmlTypeName(id: number): string {
  return BY_ID.get(id)?.name ?? `type#${id}`;
}

/** Bytes of one row of `n` elements (n must be a multiple of the block size). */
export function ggmlRowBytes(id: number, n: number): number {
  const t = requireGgmlType(id);
  if (n % t.blockSize !== 0) {
    throw new RangeError(`${t.name}: a row of ${n} elements is not a whole number of ${t.blockSize}-element blocks`);
  }
  return (n / t.blockSize) * t.typeSize;
}

/** True for the block-quantized types (not F32/F16/BF16). */
export function isQuantized(id: number): boolean {
  return requireGgmlType(id).blockSize > 1;
}

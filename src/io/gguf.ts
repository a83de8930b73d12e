// GGUF v3 writer (specs/formats.md §1): header, metadata KVs with exact types, tensor infos, and the
// aligned tensor data, produced as a stream of chunks so that a multi-GB file never sits in memory.
//
// Layout: "GGUF" | u32 version 3 | u64 tensor_count | u64 kv_count | KVs | tensor infos | zero
// padding to the alignment | tensor data, each tensor at a multiple of the alignment and padded
// with zeros to the next one (also after the last, as gguf-py does). Tensor offsets are the running
// sum of the padded sizes in tensor-info order, which is what llama.cpp's reader demands.
//
// Shapes are given in GGUF order (`ne`, innermost first): an HF Linear weight [out, in] is
// ne = [in, out] with the same bytes. No DOM, no Node modules.

import { ggmlTypeName, requireGgmlType } from './quants/ggml-types.ts';

export { GGMLType } from './quants/ggml-types.ts';

export class GgufError extends Error {
  override name = 'GgufError';
}

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as u32 LE
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml GGML_MAX_NAME: tensor names must be shorter (in bytes). */
export const GGML_MAX_NAME = 64;
/** GGML_MAX_DIMS. */
export const GGML_MAX_DIMS = 4;

/** gguf_type: the metadata value types. */
export const GGUFValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

export type GGUFValueTypeName = keyof typeof GGUFValueType;
export type GGUFScalarTypeName = Exclude<GGUFValueTypeName, 'ARRAY'>;

export type GGUFScalar = number | bigint | boolean | string;

/** One metadata entry. `itemType` only for ARRAY (arrays of arrays are refused by llama.cpp). */
export type GGUFKV =
  | { readonly key: string; readonly type: GGUFScalarTypeName; readonly value: GGUFScalar }
  | {
      readonly key: string;
      readonly type: 'ARRAY';
      readonly itemType: GGUFScalarTypeName;
      readonly value: readonly GGUFScalar[] | ArrayLike<number>;
    };

// Constructors with the types gguf-py writes (specs/formats.md §1.2: llama.cpp checks them exactly).
export const kv = {
  str: (key: string, value: string): GGUFKV => ({ key, type: 'STRING', value }),
  u32: (key: string, value: number): GGUFKV => ({ key, type: 'UINT32', value }),
  i32: (key: string, value: number): GGUFKV => ({ key, type: 'INT32', value }),
  f32: (key: string, value: number): GGUFKV => ({ key, type: 'FLOAT32', value }),
  bool: (key: string, value: boolean): GGUFKV => ({ key, type: 'BOOL', value }),
  u64: (key: string, value: number | bigint): GGUFKV => ({ key, type: 'UINT64', value }),
  strs: (key: string, value: readonly string[]): GGUFKV => ({ key, type: 'ARRAY', itemType: 'STRING', value }),
  i32s: (key: string, value: ArrayLike<number>): GGUFKV => ({ key, type: 'ARRAY', itemType: 'INT32', value }),
  f32s: (key: string, value: ArrayLike<number>): GGUFKV => ({ key, type: 'ARRAY', itemType: 'FLOAT32', value }),
};

/** A tensor's bytes: given, or produced when its turn comes (a whole buffer or a stream of pieces). */
export type GgufTensorData =
  | Uint8Array
  | (() => Uint8Array | AsyncIterable<Uint8Array> | Promise<Uint8Array | AsyncIterable<Uint8Array>>);

export interface GgufTensorSpec {
  readonly name: string;
  /** GGUF order: ne[0] is the innermost (contiguous) dimension. */
  readonly ne: readonly number[];
  /** ggml_type id. */
  readonly type: number;
}

export interface GgufTensorToWrite extends GgufTensorSpec {
  readonly data: GgufTensorData;
}

/** Bytes of a tensor of this type and shape (ne[0] must be a whole number of blocks). */
export function ggufTensorByteLength(t: GgufTensorSpec): number {
  const info = requireGgmlType(t.type);
  const where = `tensor ${JSON.stringify(t.name)}`;
  if (t.ne.length < 1 || t.ne.length > GGML_MAX_DIMS) {
    throw new GgufError(`${where}: ${t.ne.length} dimensions (1..${GGML_MAX_DIMS} allowed)`);
  }
  for (const d of t.ne) {
    if (!Number.isSafeInteger(d) || d < 0) throw new GgufError(`${where}: dimension ${d} is not a non-negative integer`);
  }
  if (t.ne[0] % info.blockSize !== 0) {
    throw new GgufError(`${where}: ne[0] = ${t.ne[0]} is not a multiple of the ${info.name} block size ${info.blockSize}`);
  }
  let rows = 1;
  for (let i = 1; i < t.ne.length; i++) rows *= t.ne[i];
  return (t.ne[0] / info.blockSize) * info.typeSize * rows;
}

export function alignOffset(x: number, alignment: number): number {
  return x + ((alignment - (x % alignment)) % alignment);
}

/** The alignment a file with these KVs uses: `general.alignment` (UINT32) or 32. */
export function ggufAlignment(kvs: readonly GGUFKV[]): number {
  const a = kvs.find((k) => k.key === 'general.alignment');
  if (a === undefined) return GGUF_DEFAULT_ALIGNMENT;
  if (a.type !== 'UINT32') throw new GgufError(`general.alignment must be UINT32, got ${a.type}`);
  const v = Number(a.value);
  if (!Number.isInteger(v) || v <= 0 || (v & (v - 1)) !== 0 || v % 8 !== 0) {
    throw new GgufError(`general.alignment must be a power of two and a multiple of 8, got ${v}`);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Byte building

class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private readonly enc = new TextEncoder();

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.reserve(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  i8(v: number): void {
    this.reserve(1);
    this.view.setInt8(this.length, v);
    this.length += 1;
  }
  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }
  i16(v: number): void {
    this.reserve(2);
    this.view.setInt16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }
  u64(v: number | bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  i64(v: number | bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.length, BigInt(v), true);
    this.length += 8;
  }
  str(s: string): void {
    // Encode straight into the buffer after an 8-byte length slot (UTF-8 needs at most 3 bytes per UTF-16 unit).
    this.reserve(8 + 3 * s.length);
    const at = this.length;
    const { written } = this.enc.encodeInto(s, this.buf.subarray(at + 8));
    this.view.setBigUint64(at, BigInt(written), true);
    this.length = at + 8 + written;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  zeros(n: number): void {
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

const INT_RANGES: Partial<Record<GGUFScalarTypeName, [number, number]>> = {
  UINT8: [0, 0xff],
  INT8: [-0x80, 0x7f],
  UINT16: [0, 0xffff],
  INT16: [-0x8000, 0x7fff],
  UINT32: [0, 0xffffffff],
  INT32: [-0x80000000, 0x7fffffff],
};

function writeScalar(w: ByteWriter, type: GGUFScalarTypeName, v: GGUFScalar, where: string): void {
  const range = INT_RANGES[type];
  if (range !== undefined) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) {
      throw new GgufError(`${where}: ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)} is not a valid ${type}`);
    }
  }
  switch (type) {
    case 'UINT8':
      return w.u8(v as number);
    case 'INT8':
      return w.i8(v as number);
    case 'UINT16':
      return w.u16(v as number);
    case 'INT16':
      return w.i16(v as number);
    case 'UINT32':
      return w.u32(v as number);
    case 'INT32':
      return w.i32(v as number);
    case 'FLOAT32':
    case 'FLOAT64':
      if (typeof v !== 'number') throw new GgufError(`${where}: ${type} value must be a number`);
      return type === 'FLOAT32' ? w.f32(v) : w.f64(v);
    case 'BOOL':
      if (typeof v !== 'boolean') throw new GgufError(`${where}: BOOL value must be true or false`);
      return w.u8(v ? 1 : 0);
    case 'STRING':
      if (typeof v !== 'string') throw new GgufError(`${where}: STRING value must be a string`);
      return w.str(v);
    case 'UINT64':
    case 'INT64': {
      if (typeof v !== 'bigint' && !(typeof v === 'number' && Number.isSafeInteger(v))) {
        throw new GgufError(`${where}: ${type} value must be an integer`);
      }
      const b = BigInt(v);
      if (type === 'UINT64' ? b < 0n || b > 0xffffffffffffffffn : b < -(1n << 63n) || b >= 1n << 63n) {
        throw new GgufError(`${where}: ${b} is out of range for ${type}`);
      }
      return type === 'UINT64' ? w.u64(b) : w.i64(b);
    }
  }
}

const KEY_RE = /^[a-z0-9_]+(\.[a-z0-9_]+)*$/;

function writeKV(w: ByteWriter, e: GGUFKV): void {
  const where = `key ${JSON.stringify(e.key)}`;
  w.str(e.key);
  w.u32(GGUFValueType[e.type]);
  if (e.type !== 'ARRAY') {
    writeScalar(w, e.type, e.value, where);
    return;
  }
  if (!(e.itemType in GGUFValueType) || (e.itemType as string) === 'ARRAY') {
    throw new GgufError(`${where}: arrays of ${String(e.itemType)} are not allowed (llama.cpp refuses nested arrays)`);
  }
  const n = e.value.length;
  if (n === 0) throw new GgufError(`${where}: empty arrays are not written (gguf-py refuses them)`);
  w.u32(GGUFValueType[e.itemType]);
  w.u64(n);
  for (let i = 0; i < n; i++) writeScalar(w, e.itemType, e.value[i] as GGUFScalar, `${where}[${i}]`);
}

export interface GgufLayout {
  /** The header bytes including the padding up to the data section. */
  header: Uint8Array;
  /** Where the data section starts (a multiple of the alignment). */
  dataOffset: number;
  alignment: number;
  /** Per tensor: offset relative to dataOffset, byte length (unpadded). */
  tensors: { name: string; offset: number; byteLength: number }[];
  /** Size of the whole file. */
  fileSize: number;
}

/** Validates KVs and tensor infos and lays the file out (what writeGguf streams). */
export function buildGgufHeader(kvs: readonly GGUFKV[], tensors: readonly GgufTensorSpec[]): GgufLayout {
  const alignment = ggufAlignment(kvs);
  const seenKeys = new Set<string>();
  for (const e of kvs) {
    if (e.key.length === 0) throw new GgufError('empty metadata key');
    if (!KEY_RE.test(e.key)) throw new GgufError(`metadata key ${JSON.stringify(e.key)} is not lower_snake_case segments joined by "."`);
    if (new TextEncoder().encode(e.key).length > 65535) throw new GgufError(`metadata key ${JSON.stringify(e.key.slice(0, 40))}… is too long`);
    if (seenKeys.has(e.key)) throw new GgufError(`metadata key ${JSON.stringify(e.key)} is given twice`);
    seenKeys.add(e.key);
  }
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const e of kvs) writeKV(w, e);
  const seenNames = new Set<string>();
  const placed: GgufLayout['tensors'] = [];
  let offset = 0;
  for (const t of tensors) {
    const nameBytes = new TextEncoder().encode(t.name).length;
    if (nameBytes === 0 || nameBytes >= GGML_MAX_NAME) {
      throw new GgufError(`tensor name ${JSON.stringify(t.name)} must be 1..${GGML_MAX_NAME - 1} bytes`);
    }
    if (seenNames.has(t.name)) throw new GgufError(`tensor ${JSON.stringify(t.name)} is listed twice`);
    seenNames.add(t.name);
    const byteLength = ggufTensorByteLength(t);
    w.str(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    placed.push({ name: t.name, offset, byteLength });
    offset = alignOffset(offset + byteLength, alignment);
  }
  if (tensors.length > 0) w.zeros(alignOffset(w.length, alignment) - w.length);
  const header = w.result();
  return { header, dataOffset: header.length, alignment, tensors: placed, fileSize: header.length + offset };
}

/** Size of the file writeGguf produces (progress bars, Content-Length). */
export function ggufFileSize(kvs: readonly GGUFKV[], tensors: readonly GgufTensorSpec[]): number {
  return buildGgufHeader(kvs, tensors).fileSize;
}

/**
 * Yields the file as chunks: the header, then each tensor's bytes and its zero padding. A tensor's
 * `data` function runs only when its turn comes; its output must have exactly the tensor's size.
 */
export async function* writeGguf(kvs: readonly GGUFKV[], tensors: readonly GgufTensorToWrite[]): AsyncGenerator<Uint8Array> {
  const layout = buildGgufHeader(kvs, tensors);
  yield layout.header;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    const want = layout.tensors[i].byteLength;
    const where = `tensor ${JSON.stringify(t.name)} (${ggmlTypeName(t.type)} [${t.ne.join(', ')}])`;
    const produced = typeof t.data === 'function' ? await t.data() : t.data;
    let got = 0;
    if (produced instanceof Uint8Array) {
      got = produced.length;
      if (got !== want) throw new GgufError(`${where}: data is ${got} bytes, needs ${want}`);
      if (got > 0) yield produced;
    } else {
      for await (const piece of produced) {
        got += piece.length;
        if (got > want) throw new GgufError(`${where}: data runs past its ${want} bytes`);
        if (piece.length > 0) yield piece;
      }
      if (got !== want) throw new GgufError(`${where}: data is ${got} bytes, needs ${want}`);
    }
    const pad = alignOffset(want, layout.alignment) - want;
    if (pad > 0) yield new Uint8Array(pad);
  }
}

/** writeGguf as a ReadableStream (FileSystemWritableFileStream, Response bodies). */
export function ggufStream(kvs: readonly GGUFKV[], tensors: readonly GgufTensorToWrite[]): ReadableStream<Uint8Array> {
  return iterableStream(writeGguf(kvs, tensors));
}

/** Any async generator of chunks as a pull-based ReadableStream (cancel stops the generator). */
export function iterableStream(it: AsyncGenerator<Uint8Array>): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await it.next();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        controller.error(e);
      }
    },
    async cancel() {
      await it.return(undefined);
    },
  });
}

export { collectBytes } from '../util/bytes.ts';

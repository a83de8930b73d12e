// GGUF reader: header, metadata, tensor infos, with the checks llama.cpp's gguf.cpp makes (version,
// duplicate keys and names, name length, dimensions, block divisibility, contiguous aligned
// offsets, data inside the file), and tensor data as raw bytes or f32. Used to re-read every export
// in tests and to import GGUF adapters later. Works over any ByteSource (bytes, Blob, HTTP Range).

import { GGUFValueType, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGML_MAX_DIMS, GGML_MAX_NAME, GgufError, alignOffset, ggufTensorByteLength } from './gguf.ts';
import type { GGUFKV, GGUFScalar, GGUFScalarTypeName, GGUFValueTypeName } from './gguf.ts';
import { bytesSource } from './safetensors.ts';
import type { ByteSource } from './safetensors.ts';
import { ggmlTypeInfo, ggmlTypeName } from './quants/ggml-types.ts';
import { dequantize } from './quants/index.ts';

/** A value as read: 64-bit integers as bigint, arrays as JS arrays. */
export type GgufReadValue = number | bigint | boolean | string | (number | bigint | boolean | string)[];

export interface GgufReadKV {
  key: string;
  type: GGUFValueTypeName;
  /** For arrays: the element type. */
  itemType?: GGUFScalarTypeName;
  value: GgufReadValue;
}

export interface GgufReadTensor {
  name: string;
  ne: number[];
  type: number;
  /** Relative to the data section. */
  offset: number;
  /** Absolute position in the file. */
  fileOffset: number;
  byteLength: number;
}

export interface GgufFile {
  version: number;
  kvs: GgufReadKV[];
  /** Metadata by key. */
  meta: Map<string, GgufReadKV>;
  tensors: GgufReadTensor[];
  alignment: number;
  /** Start of the data section. */
  dataOffset: number;
  size: number;
  /** A metadata value, or undefined. */
  get(key: string): GgufReadValue | undefined;
  readTensor(name: string): Promise<Uint8Array>;
  /** Dequantized to f32 (GGUF order: ne[0] fastest). */
  readTensorF32(name: string): Promise<Float32Array>;
}

const TYPE_NAMES = Object.fromEntries(Object.entries(GGUFValueType).map(([k, v]) => [v, k])) as Record<number, GGUFValueTypeName>;

class NeedMore extends Error {}

class Cursor {
  private readonly view: DataView;
  pos = 0;
  private readonly dec = new TextDecoder('utf-8', { fatal: true });
  constructor(
    private readonly bytes: Uint8Array,
    private readonly complete: boolean,
    private readonly file: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number): void {
    if (this.pos + n > this.bytes.length) {
      if (this.complete) throw new GgufError(`${this.file}: truncated: header runs past the end of the file at byte ${this.pos}`);
      throw new NeedMore();
    }
  }
  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }
  i8(): number {
    this.need(1);
    return this.view.getInt8(this.pos++);
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  i16(): number {
    this.need(2);
    const v = this.view.getInt16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f32(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  i64(): bigint {
    this.need(8);
    const v = this.view.getBigInt64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** A u64 that must fit a JS number. */
  size(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(`${this.file}: ${what} ${v} is too large`);
    return Number(v);
  }
  str(what: string): string {
    const n = this.size(`${what} length`);
    this.need(n);
    try {
      const s = this.dec.decode(this.bytes.subarray(this.pos, this.pos + n));
      this.pos += n;
      return s;
    } catch {
      throw new GgufError(`${this.file}: ${what} is not valid UTF-8`);
    }
  }
}

function readScalar(c: Cursor, type: number, what: string): number | bigint | boolean | string {
  switch (type) {
    case GGUFValueType.UINT8:
      return c.u8();
    case GGUFValueType.INT8:
      return c.i8();
    case GGUFValueType.UINT16:
      return c.u16();
    case GGUFValueType.INT16:
      return c.i16();
    case GGUFValueType.UINT32:
      return c.u32();
    case GGUFValueType.INT32:
      return c.i32();
    case GGUFValueType.FLOAT32:
      return c.f32();
    case GGUFValueType.FLOAT64:
      return c.f64();
    case GGUFValueType.UINT64:
      return c.u64();
    case GGUFValueType.INT64:
      return c.i64();
    case GGUFValueType.BOOL: {
      const b = c.u8();
      if (b > 1) throw new GgufError(`${what}: BOOL byte is ${b}`);
      return b === 1;
    }
    case GGUFValueType.STRING:
      return c.str(what);
    default:
      throw new GgufError(`${what}: unknown value type ${type}`);
  }
}

interface ParsedHeader {
  version: number;
  kvs: GgufReadKV[];
  tensors: Omit<GgufReadTensor, 'fileOffset'>[];
  alignment: number;
  dataOffset: number;
}

function parseHeader(bytes: Uint8Array, complete: boolean, file: string): ParsedHeader {
  const c = new Cursor(bytes, complete, file);
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) throw new GgufError(`${file}: not a GGUF file (magic 0x${magic.toString(16).padStart(8, '0')})`);
  const version = c.u32();
  if ((version & 0xffff) === 0) throw new GgufError(`${file}: version ${version} looks byte-swapped (big-endian file?)`);
  if (version === 1) throw new GgufError(`${file}: GGUF v1 is not supported`);
  if (version < 2 || version > 3) throw new GgufError(`${file}: unsupported GGUF version ${version}`);
  const nTensors = c.size('tensor count');
  const nKv = c.size('KV count');
  const kvs: GgufReadKV[] = [];
  const keys = new Set<string>();
  for (let i = 0; i < nKv; i++) {
    const key = c.str(`key #${i}`);
    if (key.length === 0) throw new GgufError(`${file}: key #${i} is empty`);
    if (keys.has(key)) throw new GgufError(`${file}: duplicate key ${JSON.stringify(key)}`);
    keys.add(key);
    const t = c.u32();
    const typeName = TYPE_NAMES[t];
    if (typeName === undefined) throw new GgufError(`${file}: key ${JSON.stringify(key)} has unknown type ${t}`);
    if (t === GGUFValueType.ARRAY) {
      const it = c.u32();
      if (it === GGUFValueType.ARRAY) throw new GgufError(`${file}: key ${JSON.stringify(key)}: nested arrays are not supported`);
      const itemType = TYPE_NAMES[it] as GGUFScalarTypeName | undefined;
      if (itemType === undefined) throw new GgufError(`${file}: key ${JSON.stringify(key)} has unknown array element type ${it}`);
      const n = c.size(`key ${key} array length`);
      const value: (number | bigint | boolean | string)[] = new Array(n);
      for (let j = 0; j < n; j++) value[j] = readScalar(c, it, `${file}: key ${key}[${j}]`);
      kvs.push({ key, type: 'ARRAY', itemType, value });
    } else {
      kvs.push({ key, type: typeName, value: readScalar(c, t, `${file}: key ${key}`) });
    }
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = kvs.find((k) => k.key === 'general.alignment');
  if (al !== undefined) {
    if (al.type !== 'UINT32') throw new GgufError(`${file}: general.alignment has type ${al.type}, must be UINT32`);
    const v = al.value as number;
    if (v === 0 || (v & (v - 1)) !== 0) throw new GgufError(`${file}: general.alignment ${v} is not a power of two`);
    alignment = v;
  }
  const tensors: Omit<GgufReadTensor, 'fileOffset'>[] = [];
  const names = new Set<string>();
  let expected = 0;
  for (let i = 0; i < nTensors; i++) {
    const name = c.str(`tensor #${i} name`);
    const where = `${file}: tensor ${JSON.stringify(name)}`;
    if (new TextEncoder().encode(name).length >= GGML_MAX_NAME) throw new GgufError(`${where}: name is ${GGML_MAX_NAME} bytes or longer`);
    if (names.has(name)) throw new GgufError(`${where}: duplicate tensor name`);
    names.add(name);
    const nDims = c.u32();
    if (nDims < 1 || nDims > GGML_MAX_DIMS) throw new GgufError(`${where}: ${nDims} dimensions`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(c.size(`${name} ne[${d}]`));
    const type = c.u32();
    if (ggmlTypeInfo(type) === undefined) throw new GgufError(`${where}: ggml type ${type} is not supported here`);
    const offset = c.size(`${name} offset`);
    let byteLength: number;
    try {
      byteLength = ggufTensorByteLength({ name, ne, type });
    } catch (e) {
      throw new GgufError(`${file}: ${(e as Error).message}`);
    }
    if (offset !== expected) {
      throw new GgufError(`${where}: offset ${offset}, expected ${expected} (tensors must be contiguous and ${alignment}-aligned in order)`);
    }
    expected = alignOffset(offset + byteLength, alignment);
    tensors.push({ name, ne, type, offset, byteLength });
  }
  const dataOffset = nTensors > 0 ? alignOffset(c.pos, alignment) : c.pos;
  return { version, kvs, tensors, alignment, dataOffset };
}

/** Parses a GGUF file's header from any byte source (reads a growing prefix until it fits). */
export async function openGguf(source: ByteSource | Uint8Array, opts: { prefetchBytes?: number } = {}): Promise<GgufFile> {
  const src = source instanceof Uint8Array ? bytesSource(source, 'gguf') : source;
  const file = src.name ?? 'gguf file';
  let n = Math.min(src.size, opts.prefetchBytes ?? 1 << 20);
  let parsed: ParsedHeader;
  for (;;) {
    const prefix = await src.read(0, n);
    try {
      parsed = parseHeader(prefix, n === src.size, file);
      break;
    } catch (e) {
      if (!(e instanceof NeedMore)) throw e;
      n = Math.min(src.size, n * 4);
    }
  }
  const { dataOffset } = parsed;
  const tensors: GgufReadTensor[] = parsed.tensors.map((t) => ({ ...t, fileOffset: dataOffset + t.offset }));
  for (const t of tensors) {
    if (t.fileOffset + t.byteLength > src.size) {
      throw new GgufError(`${file}: tensor ${JSON.stringify(t.name)} data (bytes ${t.fileOffset}..${t.fileOffset + t.byteLength}) is not within the file (${src.size} bytes)`);
    }
  }
  const meta = new Map(parsed.kvs.map((k) => [k.key, k]));
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const getTensor = (name: string): GgufReadTensor => {
    const t = byName.get(name);
    if (!t) throw new GgufError(`${file}: no tensor named ${JSON.stringify(name)}`);
    return t;
  };
  const readTensor = async (name: string): Promise<Uint8Array> => {
    const t = getTensor(name);
    return src.read(t.fileOffset, t.byteLength);
  };
  return {
    version: parsed.version,
    kvs: parsed.kvs,
    meta,
    tensors,
    alignment: parsed.alignment,
    dataOffset,
    size: src.size,
    get: (key) => meta.get(key)?.value,
    readTensor,
    readTensorF32: async (name) => {
      const t = getTensor(name);
      const bytes = await readTensor(name);
      try {
        return dequantize(t.type, bytes);
      } catch (e) {
        throw new GgufError(`${file}: tensor ${JSON.stringify(name)} (${ggmlTypeName(t.type)}): ${(e as Error).message}`);
      }
    },
  };
}

/** Read KVs as KVs to write again (copying a file's metadata, as llama-quantize does). */
export function writableKVs(kvs: readonly GgufReadKV[]): GGUFKV[] {
  return kvs.map((e): GGUFKV => {
    if (e.type === 'ARRAY') return { key: e.key, type: 'ARRAY', itemType: e.itemType!, value: e.value as GGUFScalar[] };
    return { key: e.key, type: e.type, value: e.value as GGUFScalar };
  });
}

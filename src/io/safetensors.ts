// safetensors: header parsing with full validation, a streaming reader over any random-access
// byte source (bytes, Blob/File, HTTP Range), sharded checkpoints (model.safetensors.index.json),
// and a streaming writer with a sharding planner. The one implementation of the format in the app.
//
// Layout (specs/formats.md §5): u64 LE header length N | N bytes of UTF-8 JSON | data buffer.
// The JSON maps tensor names to {dtype, shape, data_offsets:[begin,end]} (offsets relative to the
// data buffer, end exclusive) plus an optional "__metadata__" string->string map. Tensors, sorted by
// offset, must tile the data buffer exactly: no gap, no overlap, nothing left over.
//
// No DOM, no Node modules: runs in a worker and in Node. Every failure is a SafetensorsError whose
// message names the file and, where there is one, the tensor.

import { bf16ArrayToF32, bytesToF32LE, bytesToU16LE, f16ArrayToF32 } from './dtype.ts';
import { collectBytes } from '../util/bytes.ts';

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

// ---------------------------------------------------------------------------------------------
// dtypes

/** Bytes per element of every byte-sized safetensors dtype. */
export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E4M3FNUZ: 1,
  F8_E5M2FNUZ: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
  C64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_BYTES;

/** Sub-byte dtypes of the format that this implementation recognises but does not handle. */
const SUB_BYTE_DTYPES = new Set(['F4', 'F6_E2M3', 'F6_E3M2']);

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.hasOwn(DTYPE_BYTES, s);
}

export function dtypeBytes(dtype: Dtype): number {
  return DTYPE_BYTES[dtype];
}

/** Largest header the reference implementation accepts (bytes of JSON). */
export const MAX_HEADER_BYTES = 100_000_000;

// ---------------------------------------------------------------------------------------------
// Header

export interface TensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Number of elements (1 for a 0-dim tensor, 0 for an empty one). */
  readonly numel: number;
  readonly byteLength: number;
  /** [begin, end) relative to the start of the data buffer, as stored in the header. */
  readonly dataOffsets: readonly [number, number];
  /** Absolute byte position of the tensor's first byte in the file. */
  readonly fileOffset: number;
  /** Name of the file that holds it (the source's name). */
  readonly file: string;
}

export interface SafetensorsHeader {
  /** N: length in bytes of the JSON header (padding included). */
  readonly headerLength: number;
  /** 8 + N: where the data buffer starts in the file. */
  readonly dataOffset: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in file order (ascending offset). */
  readonly tensors: readonly TensorInfo[];
}

/** Reads N from the first 8 bytes and checks it against the limit and the file size. */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, file = 'safetensors file'): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new SafetensorsError(
      `${file}: file is ${fileSize < 8 ? fileSize : prefix.length} bytes, too short for the 8-byte header length (truncated?)`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      `${file}: header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes (not a safetensors file?)`,
    );
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    throw new SafetensorsError(
      `${file}: header length ${len} goes past the end of the file (${fileSize} bytes; truncated?)`,
    );
  }
  return len;
}

/**
 * Parses and validates the JSON header. `json` holds exactly the N header bytes; `fileSize` is the
 * size of the whole file, used to check that the tensors tile the data buffer exactly.
 */
export function parseSafetensorsHeader(json: Uint8Array, fileSize: number, file = 'safetensors file'): SafetensorsHeader {
  const headerLength = json.length;
  const dataOffset = 8 + headerLength;
  const dataSize = fileSize - dataOffset;
  if (dataSize < 0) {
    throw new SafetensorsError(`${file}: header length ${headerLength} goes past the end of the file (${fileSize} bytes)`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(json);
  } catch {
    throw new SafetensorsError(`${file}: header is not valid UTF-8`);
  }
  if (text[0] !== '{') {
    throw new SafetensorsError(`${file}: header must be a JSON object starting with '{' (found ${JSON.stringify(text.slice(0, 16))})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`${file}: header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(parsed)) throw new SafetensorsError(`${file}: header is not a JSON object`);
  const dup = duplicateTopLevelKey(text);
  if (dup !== null) throw new SafetensorsError(`${file}: header lists ${JSON.stringify(dup)} twice`);

  let metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, file);
      continue;
    }
    tensors.push(parseTensorEntry(name, value, dataOffset, dataSize, file));
  }

  // Sorted by offset, the tensors must tile [0, dataSize) exactly.
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let expected = 0;
  let prev: TensorInfo | null = null;
  for (const t of tensors) {
    const [begin] = t.dataOffsets;
    if (begin < expected) {
      throw new SafetensorsError(
        `${file}: tensor ${q(t.name)} (bytes ${begin}..${t.dataOffsets[1]}) overlaps tensor ${q(prev!.name)} (bytes ${prev!.dataOffsets[0]}..${expected})`,
      );
    }
    if (begin > expected) {
      throw new SafetensorsError(
        `${file}: gap of ${begin - expected} bytes in the data before tensor ${q(t.name)} (starts at ${begin}, previous data ends at ${expected})`,
      );
    }
    expected = t.dataOffsets[1];
    prev = t;
  }
  if (expected !== dataSize) {
    throw new SafetensorsError(
      `${file}: tensors cover ${expected} bytes of data but the file holds ${dataSize} after the header (${dataSize - expected} bytes unaccounted for)`,
    );
  }
  return { headerLength, dataOffset, metadata, tensors };
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (value === null) return {};
  if (!isPlainObject(value)) throw new SafetensorsError(`${file}: __metadata__ must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw new SafetensorsError(`${file}: __metadata__[${q(k)}] must be a string, got ${typeName(v)}`);
    }
    out[k] = v;
  }
  return out;
}

function parseTensorEntry(name: string, value: unknown, dataOffset: number, dataSize: number, file: string): TensorInfo {
  const where = `${file}: tensor ${q(name)}`;
  if (!isPlainObject(value)) throw new SafetensorsError(`${where}: entry must be an object, got ${typeName(value)}`);
  const { dtype, shape, data_offsets: offsets } = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof dtype !== 'string') throw new SafetensorsError(`${where}: dtype missing or not a string`);
  if (!isDtype(dtype)) {
    if (SUB_BYTE_DTYPES.has(dtype)) throw new SafetensorsError(`${where}: dtype ${dtype} (sub-byte) is not supported`);
    throw new SafetensorsError(`${where}: unknown dtype ${q(dtype)}`);
  }
  const dims = checkShape(shape, where);
  const numel = numelOf(dims, where);
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    throw new SafetensorsError(`${where}: data_offsets must be an array [begin, end]`);
  }
  const [begin, end] = offsets as unknown[];
  if (!isNonNegInt(begin) || !isNonNegInt(end)) {
    throw new SafetensorsError(`${where}: data_offsets ${JSON.stringify(offsets)} must be non-negative integers`);
  }
  if (end < begin) throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] end before begin`);
  const byteLength = numel * DTYPE_BYTES[dtype];
  if (!Number.isSafeInteger(byteLength)) throw new SafetensorsError(`${where}: byte size overflows`);
  if (end - begin !== byteLength) {
    throw new SafetensorsError(
      `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype}[${dims.join(', ')}] needs ${byteLength}`,
    );
  }
  if (end > dataSize) {
    throw new SafetensorsError(
      `${where}: data_offsets [${begin}, ${end}] go past the end of the data (${dataSize} bytes; truncated file?)`,
    );
  }
  return { name, dtype, shape: dims, numel, byteLength, dataOffsets: [begin, end], fileOffset: dataOffset + begin, file };
}

function checkShape(shape: unknown, where: string): number[] {
  if (!Array.isArray(shape)) throw new SafetensorsError(`${where}: shape must be an array, got ${typeName(shape)}`);
  shape.forEach((d, i) => {
    if (!isNonNegInt(d)) {
      throw new SafetensorsError(`${where}: shape[${i}] = ${JSON.stringify(d)} is not a non-negative integer`);
    }
  });
  return shape as number[];
}

function numelOf(shape: readonly number[], where: string): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) throw new SafetensorsError(`${where}: element count of [${shape.join(', ')}] overflows`);
  }
  return n;
}

/** JSON.parse keeps the last of duplicate keys silently; the format forbids them, so look. */
function duplicateTopLevelKey(text: string): string | null {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Byte sources

/** Random access to the bytes of one file. `read` returns exactly `length` bytes. */
export interface ByteSource {
  readonly size: number;
  /** Used in error messages and as TensorInfo.file. */
  readonly name?: string;
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A source over bytes already in memory (reads are views, not copies). */
export function bytesSource(bytes: Uint8Array, name = 'bytes'): ByteSource {
  return {
    size: bytes.length,
    name,
    read(offset, length) {
      checkRange(offset, length, bytes.length, name);
      return Promise.resolve(bytes.subarray(offset, offset + length));
    },
  };
}

/** A source over a Blob or File (a dropped file, an OPFS file): only the slices read are loaded. */
export function blobSource(blob: Blob, name?: string): ByteSource {
  const label = name ?? ((blob as { name?: unknown }).name as string | undefined) ?? 'blob';
  return {
    size: blob.size,
    name: label,
    async read(offset, length) {
      checkRange(offset, length, blob.size, label);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
  };
}

export interface RangeResult {
  /** The bytes served; may be shorter than asked for only when the range reaches the end of the file. */
  bytes: Uint8Array;
  /** The file size from Content-Range, when the server reported it. */
  totalSize: number | null;
}

/**
 * Fetches bytes [offset, offset + length) of a URL. The Hub client supplies its own (auth, cache,
 * revision pinning); `rangeFetcher()` is the plain one.
 */
export type FetchRange = (url: string, offset: number, length: number) => Promise<RangeResult>;

/** A FetchRange over `fetch` that demands a 206 answer and checks Content-Range. */
export function rangeFetcher(
  fetchImpl: (url: string, init: RequestInit) => Promise<Response> = (url, init) => fetch(url, init),
  headers: Record<string, string> = {},
): FetchRange {
  return async (url, offset, length) => {
    const last = offset + length - 1;
    let res: Response;
    try {
      res = await fetchImpl(url, { headers: { ...headers, Range: `bytes=${offset}-${last}` } });
    } catch (e) {
      throw new SafetensorsError(`${url}: request for bytes ${offset}-${last} failed: ${(e as Error).message}`);
    }
    if (res.status !== 206) {
      await res.body?.cancel().catch(() => undefined);
      const why = res.status === 200 ? 'the server ignored the Range header' : `HTTP ${res.status} ${res.statusText}`;
      throw new SafetensorsError(`${url}: bytes ${offset}-${last}: expected 206 Partial Content, ${why}`);
    }
    const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (cr === null) throw new SafetensorsError(`${url}: 206 answer without a valid Content-Range header`);
    const start = Number(cr[1]);
    const end = Number(cr[2]);
    const totalSize = cr[3] === '*' ? null : Number(cr[3]);
    if (start !== offset || bytes.length !== end - start + 1 || end > last) {
      throw new SafetensorsError(
        `${url}: asked for bytes ${offset}-${last}, got ${bytes.length} bytes labelled ${cr[0]}`,
      );
    }
    return { bytes, totalSize };
  };
}

export interface HttpSourceOptions {
  /** File size when already known (Hub file listing): no request is made at open. */
  size?: number;
  fetchRange?: FetchRange;
  name?: string;
  /** Without `size`, the first `probeBytes` are fetched at open (size from Content-Range) and kept. */
  probeBytes?: number;
}

/** A source over an HTTP(S) URL read with Range requests. */
export async function httpSource(url: string, opts: HttpSourceOptions = {}): Promise<ByteSource> {
  const fetchRange = opts.fetchRange ?? rangeFetcher();
  const name = opts.name ?? url;
  let size = opts.size;
  let head: Uint8Array = new Uint8Array(0);
  if (size === undefined) {
    const probe = await fetchRange(url, 0, opts.probeBytes ?? DEFAULT_PREFETCH);
    if (probe.totalSize === null) throw new SafetensorsError(`${name}: the server did not report the file size`);
    size = probe.totalSize;
    head = probe.bytes;
  }
  const total = size;
  return {
    size: total,
    name,
    async read(offset, length) {
      checkRange(offset, length, total, name);
      if (length === 0) return new Uint8Array(0);
      if (offset + length <= head.length) return head.subarray(offset, offset + length);
      const { bytes } = await fetchRange(url, offset, length);
      if (bytes.length !== length) {
        throw new SafetensorsError(`${name}: asked for ${length} bytes at ${offset}, got ${bytes.length}`);
      }
      return bytes;
    },
  };
}

function checkRange(offset: number, length: number, size: number, name: string): void {
  if (!isNonNegInt(offset) || !isNonNegInt(length) || offset + length > size) {
    throw new SafetensorsError(`${name}: read of ${length} bytes at ${offset} is outside the file (${size} bytes)`);
  }
}

// ---------------------------------------------------------------------------------------------
// Reader

/** What both a single file and a sharded checkpoint offer. */
export interface TensorReader {
  /** Every tensor (file order; for shards, shard by shard). */
  readonly tensors: readonly TensorInfo[];
  has(name: string): boolean;
  /** Throws a SafetensorsError naming the tensor when absent. */
  get(name: string): TensorInfo;
  /**
   * The tensor's raw little-endian bytes. May be a view into a buffer shared with other reads (the
   * prefetched head, a bytesSource's array): copy before modifying.
   */
  read(name: string): Promise<Uint8Array>;
  /** `length` raw bytes starting `offset` bytes into the tensor. */
  readRange(name: string, offset: number, length: number): Promise<Uint8Array>;
  /** The raw bytes in pieces of at most `chunkBytes` (rounded down to whole elements). */
  readChunks(name: string, chunkBytes?: number): AsyncGenerator<Uint8Array>;
  /** The values as f32, from F32, F16, BF16 or F64. */
  readF32(name: string): Promise<Float32Array>;
}

export interface SafetensorsFile extends TensorReader, SafetensorsHeader {
  readonly name: string;
  readonly size: number;
}

const DEFAULT_PREFETCH = 64 * 1024;
const DEFAULT_CHUNK = 16 * 1024 * 1024;

/**
 * Opens a safetensors file: reads and validates its header (one read of the first `prefetchBytes`,
 * a second only when the header is longer), and nothing else until tensors are read. The prefetched
 * bytes are kept, so tensors that lie inside them (all of a small file) are served without a read.
 */
export async function openSafetensors(
  source: ByteSource,
  opts: { prefetchBytes?: number } = {},
): Promise<SafetensorsFile> {
  const name = source.name ?? 'safetensors file';
  const size = source.size;
  if (size < 8) parseHeaderLength(new Uint8Array(0), size, name);
  const first = await readExact(source, 0, Math.min(size, Math.max(8, opts.prefetchBytes ?? DEFAULT_PREFETCH)), name);
  const n = parseHeaderLength(first, size, name);
  let json: Uint8Array;
  if (8 + n <= first.length) {
    json = first.subarray(8, 8 + n);
  } else {
    json = new Uint8Array(n);
    json.set(first.subarray(8));
    json.set(await readExact(source, first.length, 8 + n - first.length, name), first.length - 8);
  }
  const header = parseSafetensorsHeader(json, size, name);
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const get = (tensor: string): TensorInfo => {
    const t = byName.get(tensor);
    if (t === undefined) throw new SafetensorsError(`${name}: no tensor named ${q(tensor)}`);
    return t;
  };
  const readRange = (tensor: string, offset: number, length: number): Promise<Uint8Array> => {
    const t = get(tensor);
    if (!isNonNegInt(offset) || !isNonNegInt(length) || offset + length > t.byteLength) {
      throw new SafetensorsError(`${name}: tensor ${q(tensor)}: range ${offset}+${length} outside its ${t.byteLength} bytes`);
    }
    const at = t.fileOffset + offset;
    // Small files: tensors inside the prefetched head need no second read.
    if (at + length <= first.length) return Promise.resolve(first.subarray(at, at + length));
    return readExact(source, at, length, name);
  };
  return {
    ...header,
    name,
    size,
    has: (tensor) => byName.has(tensor),
    get,
    read: (tensor) => readRange(tensor, 0, get(tensor).byteLength),
    readRange,
    readChunks: (tensor, chunkBytes = DEFAULT_CHUNK) => chunksOf(get(tensor), chunkBytes, readRange),
    readF32: async (tensor) => toF32(get(tensor), await readRange(tensor, 0, get(tensor).byteLength)),
  };
}

async function readExact(source: ByteSource, offset: number, length: number, name: string): Promise<Uint8Array> {
  if (length === 0) return new Uint8Array(0);
  const bytes = await source.read(offset, length);
  if (bytes.length !== length) {
    throw new SafetensorsError(`${name}: short read: asked for ${length} bytes at ${offset}, got ${bytes.length}`);
  }
  return bytes;
}

async function* chunksOf(
  t: TensorInfo,
  chunkBytes: number,
  readRange: (name: string, offset: number, length: number) => Promise<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  const elem = DTYPE_BYTES[t.dtype];
  const step = Math.max(elem, Math.floor(chunkBytes / elem) * elem);
  for (let off = 0; off < t.byteLength; off += step) {
    yield await readRange(t.name, off, Math.min(step, t.byteLength - off));
  }
}

/** Raw little-endian bytes of a float tensor -> Float32Array. */
export function toF32(t: Pick<TensorInfo, 'name' | 'dtype' | 'file'>, bytes: Uint8Array): Float32Array {
  switch (t.dtype) {
    case 'F32':
      return bytesToF32LE(bytes);
    case 'F16':
      return f16ArrayToF32(bytesToU16LE(bytes));
    case 'BF16':
      return bf16ArrayToF32(bytesToU16LE(bytes));
    case 'F64': {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const out = new Float32Array(bytes.length / 8);
      for (let i = 0; i < out.length; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    }
    default:
      throw new SafetensorsError(`${t.file}: tensor ${q(t.name)} has dtype ${t.dtype}, which is not a float type readable as f32`);
  }
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints

export const SAFETENSORS_SINGLE_FILE = 'model.safetensors';
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

export interface ShardIndex {
  /** The index's "metadata" object as found (transformers writes total_size, total_parameters). */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** metadata.total_size: the sum of tensor byte sizes (not file sizes), when present. */
  readonly totalSize: number | null;
  /** Tensor name -> shard file name. */
  readonly weightMap: ReadonlyMap<string, string>;
  /** Distinct shard files, sorted. */
  readonly files: readonly string[];
}

/** Parses and validates model.safetensors.index.json (text, bytes or already-parsed JSON). */
export function parseShardIndex(input: string | Uint8Array | unknown, file = SAFETENSORS_INDEX_FILE): ShardIndex {
  let json: unknown = input;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    let text: string;
    try {
      text = typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch {
      throw new SafetensorsError(`${file}: not valid UTF-8`);
    }
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new SafetensorsError(`${file}: not valid JSON: ${(e as Error).message}`);
    }
  }
  if (!isPlainObject(json)) throw new SafetensorsError(`${file}: must be a JSON object`);
  const meta = json.metadata ?? {};
  if (!isPlainObject(meta)) throw new SafetensorsError(`${file}: "metadata" must be an object`);
  let totalSize: number | null = null;
  if (meta.total_size !== undefined) {
    if (!isNonNegInt(meta.total_size)) {
      throw new SafetensorsError(`${file}: metadata.total_size must be a non-negative integer, got ${JSON.stringify(meta.total_size)}`);
    }
    totalSize = meta.total_size;
  }
  const wm = json.weight_map;
  if (!isPlainObject(wm)) throw new SafetensorsError(`${file}: "weight_map" must be an object of tensor name -> file`);
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(wm)) {
    if (typeof shard !== 'string') {
      throw new SafetensorsError(`${file}: weight_map[${q(tensor)}] must be a file name, got ${typeName(shard)}`);
    }
    if (!isSafeShardName(shard)) {
      throw new SafetensorsError(`${file}: weight_map[${q(tensor)}] = ${q(shard)} is not a plain relative .safetensors file name`);
    }
    weightMap.set(tensor, shard);
  }
  if (weightMap.size === 0) throw new SafetensorsError(`${file}: weight_map is empty`);
  const files = [...new Set(weightMap.values())].sort();
  return { metadata: meta, totalSize, weightMap, files };
}

function isSafeShardName(s: string): boolean {
  return (
    s.endsWith('.safetensors') &&
    !s.startsWith('/') &&
    !s.includes('\\') &&
    !s.includes('://') &&
    !s.split('/').some((part) => part === '..' || part === '.' || part === '')
  );
}

export interface ShardedSafetensors extends TensorReader {
  readonly index: ShardIndex;
  /** Each shard, opened, by file name (which is also its TensorInfo.file). */
  readonly shards: ReadonlyMap<string, SafetensorsFile>;
}

/**
 * Opens every shard of an index (headers only) and checks that the index and the shards agree:
 * each mapped tensor is in its shard and each shard holds only tensors mapped to it.
 */
export async function openShardedSafetensors(
  index: ShardIndex,
  openShard: (file: string) => Promise<ByteSource>,
  opts: { prefetchBytes?: number } = {},
): Promise<ShardedSafetensors> {
  const opened = await Promise.all(
    index.files.map(async (f) => {
      const src = await openShard(f);
      return openSafetensors(withName(src, f), opts);
    }),
  );
  const shards = new Map(index.files.map((f, i) => [f, opened[i]]));
  for (const [tensor, f] of index.weightMap) {
    if (!shards.get(f)!.has(tensor)) {
      throw new SafetensorsError(`${SAFETENSORS_INDEX_FILE}: maps tensor ${q(tensor)} to ${f}, which does not contain it`);
    }
  }
  const tensors: TensorInfo[] = [];
  for (const [f, st] of shards) {
    for (const t of st.tensors) {
      const mapped = index.weightMap.get(t.name);
      if (mapped !== f) {
        throw new SafetensorsError(
          `${f}: holds tensor ${q(t.name)}, which ${SAFETENSORS_INDEX_FILE} ${mapped === undefined ? 'does not list' : `maps to ${mapped}`}`,
        );
      }
      tensors.push(t);
    }
  }
  const shardOf = (tensor: string): SafetensorsFile => {
    const f = index.weightMap.get(tensor);
    if (f === undefined) throw new SafetensorsError(`${SAFETENSORS_INDEX_FILE}: no tensor named ${q(tensor)}`);
    return shards.get(f)!;
  };
  return {
    index,
    shards,
    tensors,
    has: (tensor) => index.weightMap.has(tensor),
    get: (tensor) => shardOf(tensor).get(tensor),
    read: (tensor) => shardOf(tensor).read(tensor),
    readRange: (tensor, offset, length) => shardOf(tensor).readRange(tensor, offset, length),
    readChunks: (tensor, chunkBytes) => shardOf(tensor).readChunks(tensor, chunkBytes),
    readF32: (tensor) => shardOf(tensor).readF32(tensor),
  };
}

function withName(src: ByteSource, name: string): ByteSource {
  return { size: src.size, name, read: (o, l) => src.read(o, l) };
}

// ---------------------------------------------------------------------------------------------
// Writer

export interface TensorSpec {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
}

export interface TensorToWrite extends TensorSpec {
  /** Little-endian bytes, or a function producing them when their turn comes (streamed exports). */
  readonly data: Uint8Array | (() => Promise<Uint8Array> | Uint8Array);
}

export function tensorByteLength(t: TensorSpec): number {
  const where = `tensor ${q(t.name)}`;
  if (!isDtype(t.dtype)) throw new SafetensorsError(`${where}: unknown dtype ${q(String(t.dtype))}`);
  return numelOf(checkShape(t.shape, where), where) * DTYPE_BYTES[t.dtype];
}

/**
 * The first bytes of the file: the 8-byte length, then the JSON header padded with spaces so that
 * the data starts at a multiple of 8 (as the reference writer does). `__metadata__` always carries
 * `format: "pt"` (as transformers writes) unless `metadata.format` says otherwise.
 * Tensors are laid out in the order given (not re-sorted), so a caller can stream them in
 * whatever order it produces them; readers sort by offset anyway.
 */
export function buildSafetensorsHeader(
  tensors: readonly TensorSpec[],
  metadata: Record<string, string> = {},
): Uint8Array<ArrayBuffer> {
  const meta: Record<string, string> = { format: 'pt', ...metadata };
  for (const [k, v] of Object.entries(meta)) {
    if (typeof v !== 'string') throw new SafetensorsError(`__metadata__[${q(k)}] must be a string`);
  }
  // Built by hand rather than JSON.stringify(object): integer-like keys would be reordered.
  const parts = [`${JSON.stringify('__metadata__')}:${JSON.stringify(meta)}`];
  const seen = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    if (typeof t.name !== 'string' || t.name === '' || t.name === '__metadata__') {
      throw new SafetensorsError(`tensor name ${JSON.stringify(t.name)} is not allowed`);
    }
    if (seen.has(t.name)) throw new SafetensorsError(`tensor ${q(t.name)} is listed twice`);
    seen.add(t.name);
    const n = tensorByteLength(t);
    const entry = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + n] };
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify(entry)}`);
    offset += n;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** Size of the whole file writeSafetensors would produce (for progress bars, Content-Length). */
export function safetensorsFileSize(tensors: readonly TensorSpec[], metadata: Record<string, string> = {}): number {
  return buildSafetensorsHeader(tensors, metadata).length + tensors.reduce((s, t) => s + tensorByteLength(t), 0);
}

/**
 * Yields the file as chunks: the header, then each tensor's bytes in the order given. A tensor's
 * `data` function is called only when its turn comes, so a multi-GB file never sits in memory.
 */
export async function* writeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata: Record<string, string> = {},
): AsyncGenerator<Uint8Array> {
  yield buildSafetensorsHeader(tensors, metadata);
  for (const t of tensors) {
    const data = typeof t.data === 'function' ? await t.data() : t.data;
    const want = tensorByteLength(t);
    if (!(data instanceof Uint8Array) || data.length !== want) {
      throw new SafetensorsError(
        `tensor ${q(t.name)}: data is ${data instanceof Uint8Array ? `${data.length} bytes` : typeName(data)}, ${t.dtype}[${t.shape.join(', ')}] needs ${want}`,
      );
    }
    if (data.length > 0) yield data;
  }
}

/** writeSafetensors as a ReadableStream (for FileSystemWritableFileStream, Response bodies). */
export function safetensorsStream(tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): ReadableStream<Uint8Array> {
  const it = writeSafetensors(tensors, metadata);
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

/** The whole file in one Uint8Array (small files, tests). */
export async function writeSafetensorsToBytes(
  tensors: readonly TensorToWrite[],
  metadata: Record<string, string> = {},
): Promise<Uint8Array<ArrayBuffer>> {
  return collectBytes(writeSafetensors(tensors, metadata));
}

// ---------------------------------------------------------------------------------------------
// Sharding

/** transformers' default max_shard_size "5GB" (decimal). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

export interface ShardIndexJson {
  metadata: { total_size: number; total_parameters: number };
  weight_map: Record<string, string>;
}

export interface ShardPlan<T extends TensorSpec> {
  shards: { fileName: string; tensors: T[]; tensorBytes: number }[];
  /** null when everything fits in one file (named model.safetensors, no index written). */
  index: ShardIndexJson | null;
}

/** "model-00002-of-00004.safetensors" (1-based, 5 digits, as transformers names them). */
export function shardFileName(i: number, count: number, prefix = 'model'): string {
  return `${prefix}-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;
}

/**
 * Splits tensors, in the order given, into shards of at most `maxShardBytes` tensor bytes
 * (headers not counted, as in transformers): a new shard starts when the next tensor would
 * overflow the current one; a tensor larger than the limit gets a shard of its own.
 */
export function planShards<T extends TensorSpec>(
  tensors: readonly T[],
  maxShardBytes = DEFAULT_MAX_SHARD_BYTES,
  prefix = 'model',
): ShardPlan<T> {
  if (!(maxShardBytes > 0)) throw new SafetensorsError(`max shard size must be positive, got ${maxShardBytes}`);
  const groups: { tensors: T[]; tensorBytes: number }[] = [];
  let cur: { tensors: T[]; tensorBytes: number } | null = null;
  let totalSize = 0;
  let totalParams = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new SafetensorsError(`tensor ${q(t.name)} is listed twice`);
    seen.add(t.name);
    const n = tensorByteLength(t);
    totalSize += n;
    totalParams += n / DTYPE_BYTES[t.dtype];
    if (cur === null || (cur.tensors.length > 0 && cur.tensorBytes + n > maxShardBytes)) {
      cur = { tensors: [], tensorBytes: 0 };
      groups.push(cur);
    }
    cur.tensors.push(t);
    cur.tensorBytes += n;
  }
  if (groups.length <= 1) {
    return { shards: [{ fileName: `${prefix}.safetensors`, tensors: groups[0]?.tensors ?? [], tensorBytes: totalSize }], index: null };
  }
  const shards = groups.map((g, i) => ({ fileName: shardFileName(i, groups.length, prefix), ...g }));
  const entries: [string, string][] = [];
  for (const s of shards) for (const t of s.tensors) entries.push([t.name, s.fileName]);
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const weight_map: Record<string, string> = {};
  for (const [k, v] of entries) weight_map[k] = v;
  return { shards, index: { metadata: { total_size: totalSize, total_parameters: totalParams }, weight_map } };
}

/** The index file's text, formatted as transformers writes it (2-space indent, trailing newline). */
export function formatShardIndex(index: ShardIndexJson): string {
  return `${JSON.stringify(index, null, 2)}\n`;
}

// ---------------------------------------------------------------------------------------------

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

function q(s: string): string {
  return JSON.stringify(s);
}

// Where training checkpoints live, and how one is committed so that a crash, a closed tab or a
// lost GPU in the middle of writing never leaves a half checkpoint that claims to be complete.
//
// A store holds named files; `write` is atomic (readers see the old file or the whole new one:
// temp name + rename in the implementations). On top of it, a checkpoint is a pair:
//   ckpt-<seq>.safetensors   the data (written first)
//   ckpt-<seq>.json          its record: what it is, its size and CRC-32 (written second: the commit)
// with seq one more than any name in the store. Only after the record is written are older
// checkpoints (and leftovers of failed writes) removed, records before data, so at every moment
// the newest complete pair is readable. Readers take the newest record whose data matches it.
//
// Implementations: memory (tests), OPFS (checkpoint-store-opfs.ts, the browser), a directory
// (checkpoint-store-node.ts, Node: tests and the headless runner).
import { collectBytes as concatChunks } from '../util/bytes.ts';

export interface CheckpointStore {
  /** 'memory' | 'opfs' | 'directory': where the files are (for people and logs). */
  readonly kind: string;
  /** Writes a whole file atomically; a failure (thrown by `data` too) leaves the old file, if any. */
  write(name: string, data: Uint8Array | AsyncIterable<Uint8Array>): Promise<void>;
  /** The file's bytes; null when there is none. */
  read(name: string): Promise<Uint8Array | null>;
  /** Every name in the store, leftovers of failed writes included. */
  list(): Promise<string[]>;
  /** Removes a file; no error when it is absent. */
  remove(name: string): Promise<void>;
}

/** Files in a Map: what a test or a run without persistent storage uses. */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly kind = 'memory';
  readonly files = new Map<string, Uint8Array>();

  async write(name: string, data: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    const bytes = await collectBytes(data); // throws before anything is stored
    this.files.set(name, bytes);
  }

  async read(name: string): Promise<Uint8Array | null> {
    return this.files.get(name) ?? null;
  }

  async list(): Promise<string[]> {
    return [...this.files.keys()];
  }

  async remove(name: string): Promise<void> {
    this.files.delete(name);
  }
}

/** All chunks in one array (a Uint8Array is returned as a copy, so the store owns its bytes). */
export async function collectBytes(data: Uint8Array | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  return data instanceof Uint8Array ? data.slice() : concatChunks(data);
}

// ---------------------------------------------------------------------------------------------
// The commit protocol

const NAME = /^ckpt-(\d{8})\.(safetensors|json)(\..*)?$/;

/** The record written after a checkpoint's data: the caller's facts plus what checks the data. */
export interface CommitRecord<Info> {
  seq: number;
  file: string;
  bytes: number;
  crc32: number;
  info: Info;
}

/** A committed checkpoint found in a store. */
export interface Committed<Info> {
  record: CommitRecord<Info>;
  /** The data, checked against the record's size and CRC-32. */
  data: Uint8Array;
}

function seqOf(name: string): number | null {
  const m = NAME.exec(name);
  return m ? Number(m[1]) : null;
}

const dataName = (seq: number): string => `ckpt-${String(seq).padStart(8, '0')}.safetensors`;
const recordName = (seq: number): string => `ckpt-${String(seq).padStart(8, '0')}.json`;

/**
 * Writes `data` as a new checkpoint, then its record (with `info`, made once the size is known),
 * then removes every older checkpoint file. Returns the record. If anything before the record
 * fails, the previous checkpoint stays the newest complete one (the next commit removes leftovers).
 */
export async function commitCheckpoint<Info>(
  store: CheckpointStore,
  data: Uint8Array | AsyncIterable<Uint8Array>,
  info: (written: { seq: number; file: string; bytes: number }) => Info,
): Promise<CommitRecord<Info>> {
  const names = await store.list();
  const seq = Math.max(0, ...names.map(seqOf).filter((s): s is number => s !== null)) + 1;
  const file = dataName(seq);
  const crc = new Crc32();
  let bytes = 0;
  async function* measured(): AsyncGenerator<Uint8Array> {
    if (data instanceof Uint8Array) {
      crc.update(data);
      bytes += data.length;
      yield data;
      return;
    }
    for await (const chunk of data) {
      crc.update(chunk);
      bytes += chunk.length;
      yield chunk;
    }
  }
  await store.write(file, measured());
  const record: CommitRecord<Info> = { seq, file, bytes, crc32: crc.value(), info: info({ seq, file, bytes }) };
  await store.write(recordName(seq), new TextEncoder().encode(JSON.stringify(record)));
  // Older checkpoints and failed writes go, records first (a record never outlives its data).
  const stale = (await store.list()).filter((n) => seqOf(n) !== null && n !== file && n !== recordName(seq));
  stale.sort((a, b) => Number(b.includes('.json')) - Number(a.includes('.json')));
  for (const n of stale) await store.remove(n);
  return record;
}

/** The records in a store, newest first (unreadable ones skipped). */
export async function listCommitted<Info>(store: CheckpointStore): Promise<CommitRecord<Info>[]> {
  const names = await store.list();
  const seqs = names.filter((n) => NAME.exec(n)?.[2] === 'json' && !NAME.exec(n)?.[3]).map((n) => seqOf(n)!);
  seqs.sort((a, b) => b - a);
  const out: CommitRecord<Info>[] = [];
  for (const seq of seqs) {
    const raw = await store.read(recordName(seq));
    if (!raw) continue;
    try {
      const r = JSON.parse(new TextDecoder().decode(raw)) as CommitRecord<Info>;
      if (r.seq === seq && r.file === dataName(seq) && names.includes(r.file)) out.push(r);
    } catch {
      // an unreadable record is no checkpoint
    }
  }
  return out;
}

/**
 * The newest checkpoint whose data is whole (size and CRC-32 as recorded); null when none is.
 * `problems` collects, for people, why newer ones were passed over.
 */
export async function loadCommitted<Info>(store: CheckpointStore, problems: string[] = []): Promise<Committed<Info> | null> {
  for (const record of await listCommitted<Info>(store)) {
    const data = await store.read(record.file);
    if (!data) {
      problems.push(`${record.file} is missing`);
      continue;
    }
    if (data.length !== record.bytes || crc32(data) !== record.crc32) {
      problems.push(`${record.file} is damaged (${data.length} bytes, ${record.bytes} recorded; CRC ${crc32(data)} vs ${record.crc32})`);
      continue;
    }
    return { record, data };
  }
  return null;
}

/** Removes every checkpoint file (a new run, or a person discarding the old one). */
export async function clearCheckpoints(store: CheckpointStore): Promise<void> {
  const names = (await store.list()).filter((n) => seqOf(n) !== null);
  names.sort((a, b) => Number(b.includes('.json')) - Number(a.includes('.json')));
  for (const n of names) await store.remove(n);
}

// ---------------------------------------------------------------------------------------------
// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): what zip and PNG use.

let table: Uint32Array | null = null;
function crcTable(): Uint32Array {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  return table;
}

export class Crc32 {
  private c = 0xffffffff;
  update(bytes: Uint8Array): void {
    const t = crcTable();
    let c = this.c;
    for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    this.c = c;
  }
  value(): number {
    return (this.c ^ 0xffffffff) >>> 0;
  }
}

export function crc32(bytes: Uint8Array): number {
  const c = new Crc32();
  c.update(bytes);
  return c.value();
}

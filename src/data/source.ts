// Picks the reader for a dropped file: by name, then by its first bytes.

import type { IssueSink } from './issues.ts';
import { readJsonArray } from './json-array.ts';
import { readJsonl } from './jsonl.ts';
import { blobAsyncBuffer, readParquet } from './parquet.ts';
import type { BlobLike } from './parquet.ts';
import type { SourceRecord } from './types.ts';

export type FileKind = 'jsonl' | 'json-array' | 'parquet';

/** What a File offers (structural, so Node tests can pass their own). */
export interface FileLike extends BlobLike {
  readonly name: string;
  stream(): ReadableStream<Uint8Array>;
}

/**
 * `head`: the first bytes of the file (a few hundred are plenty). Parquet starts with "PAR1";
 * JSON whose first non-space character is "[" is an array; "{" is JSON Lines.
 */
export function sniffFileKind(name: string, head: Uint8Array): FileKind | null {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x41 && head[2] === 0x52 && head[3] === 0x31) {
    return 'parquet';
  }
  const lower = name.toLowerCase();
  if (lower.endsWith('.parquet')) return 'parquet';
  let i = 0;
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) i = 3; // UTF-8 BOM
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x0a || head[i] === 0x0d || head[i] === 0x09)) i++;
  if (i < head.length) {
    if (head[i] === 0x5b) return 'json-array';
    if (head[i] === 0x7b) return 'jsonl';
  }
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  if (lower.endsWith('.json')) return 'json-array';
  return null;
}

export async function* readRecords(file: FileLike, kind: FileKind, issues: IssueSink): AsyncGenerator<SourceRecord> {
  switch (kind) {
    case 'jsonl':
      yield* readJsonl(file.stream(), issues);
      return;
    case 'json-array':
      yield* readJsonArray(file.stream(), issues);
      return;
    case 'parquet':
      yield* readParquet(blobAsyncBuffer(file));
      return;
  }
}

/** Reads the first `n` records (for format detection and previews). */
export async function takeRecords(records: AsyncIterable<SourceRecord>, n: number): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  if (n <= 0) return out;
  for await (const r of records) {
    out.push(r);
    if (out.length >= n) break;
  }
  return out;
}

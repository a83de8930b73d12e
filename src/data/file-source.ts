// Files as record sources: JSONL, JSON array or Parquet, streamed (File.stream(), Blob slices for
// Parquet), never whole in memory. A resumed read re-streams the text and passes over the lines
// before the cursor without parsing them; Parquet seeks to the row.

import { DataError } from './errors.ts';
import { JsonArrayError, readJsonArray } from './json-array.ts';
import { readJsonl } from './jsonl.ts';
import { blobAsyncBuffer, parquetInfo, readParquet } from './parquet.ts';
import type { AsyncBuffer } from './parquet.ts';
import type { ReadOptions, RecordSource, SourceInfo, SourceKind } from './record-source.ts';
import { sniffFileKind, takeRecords } from './source.ts';
import type { FileKind, FileLike } from './source.ts';
import type { SourceRecord } from './types.ts';
import type { IssueLog } from './issues.ts';

export interface FileSourceOptions {
  kind?: Extract<SourceKind, 'file' | 'demo'>;
  label?: string;
  /** Default: name + size + lastModified. */
  identity?: string;
}

const MAGIC: [string, number[]][] = [
  ['a PNG image', [0x89, 0x50, 0x4e, 0x47]],
  ['a JPEG image', [0xff, 0xd8, 0xff]],
  ['a GIF image', [0x47, 0x49, 0x46, 0x38]],
  ['a PDF document', [0x25, 0x50, 0x44, 0x46]],
  ['a ZIP archive', [0x50, 0x4b, 0x03, 0x04]],
  ['a gzip archive', [0x1f, 0x8b]],
];

/** Binary content under a text name (e.g. a PNG renamed .jsonl): refused up front. */
function binaryKind(head: Uint8Array): string | null {
  for (const [what, magic] of MAGIC) if (magic.every((b, i) => head[i] === b)) return what;
  return head.includes(0) ? 'binary data' : null;
}

const hex = (head: Uint8Array): string => [...head.slice(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');

export async function openFileSource(file: FileLike & { lastModified?: number }, options: FileSourceOptions = {}): Promise<RecordSource> {
  const label = options.label ?? file.name;
  if (file.size === 0) throw new DataError('no-records', `${label} is empty.`);
  const head = new Uint8Array(await file.slice(0, 512).arrayBuffer());
  const kind = sniffFileKind(file.name, head);
  if (kind !== 'parquet') {
    const binary = binaryKind(head);
    if (binary) throw new DataError('unknown-file-kind', `${label} is not a JSONL, JSON or Parquet file: it looks like ${binary} (it starts with bytes ${hex(head)}).`);
  }
  if (!kind) {
    throw new DataError('unknown-file-kind', `${label} is not a JSONL, JSON or Parquet file: it starts with ${JSON.stringify(new TextDecoder().decode(head.slice(0, 24)))}.`);
  }
  let bytes = 0;
  const count = (n: number): void => {
    bytes += n;
  };
  let parquet: { buffer: AsyncBuffer; rows: number; columns: string[]; metadata: Awaited<ReturnType<typeof parquetInfo>>['metadata'] } | null = null;
  if (kind === 'parquet') {
    const raw = blobAsyncBuffer(file);
    const buffer: AsyncBuffer = {
      byteLength: raw.byteLength,
      slice: async (s, e) => {
        const b = await raw.slice(s, e);
        count(b.byteLength);
        return b;
      },
    };
    try {
      const { info, metadata } = await parquetInfo(buffer);
      parquet = { buffer, rows: info.rows, columns: info.columns, metadata };
    } catch (e) {
      throw new DataError('unknown-file-kind', `${label} is not a readable Parquet file: ${(e as Error).message}`);
    }
  }
  const info: SourceInfo = {
    kind: options.kind ?? 'file',
    label,
    identity: options.identity ?? `file:${file.name}:${file.size}:${file.lastModified ?? 0}`,
    format: kind,
    totalBytes: file.size,
    totalRecords: parquet ? parquet.rows : null,
    ...(parquet ? { columns: parquet.columns } : {}),
  };

  const textStream = (counted: boolean): ReadableStream<Uint8Array> =>
    counted
      ? file.stream().pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, c) {
              count(chunk.length);
              c.enqueue(chunk);
            },
          }),
        )
      : file.stream();

  /** Bytes count the latest full read only (not head()), so they measure its progress. */
  function read(o: ReadOptions): AsyncGenerator<SourceRecord> {
    bytes = 0;
    return readKind(kind!, o, true);
  }

  function readKind(k: FileKind, o: ReadOptions, counted: boolean): AsyncGenerator<SourceRecord> {
    switch (k) {
      case 'jsonl':
        return readJsonl(textStream(counted), o.issues, { skipLines: o.skip, position: o.position });
      case 'json-array':
        return asDataError(readJsonArray(textStream(counted), o.issues, { skipItems: o.skip, position: o.position }));
      case 'parquet':
        return readParquet(parquet!.buffer, { startRow: o.skip, metadata: parquet!.metadata, position: o.position });
    }
  }

  return {
    info,
    read,
    async head(n: number, issues: IssueLog) {
      if (parquet) return takeRecords(readParquet(parquet.buffer, { metadata: parquet.metadata, endRow: n }), n);
      return takeRecords(readKind(kind!, { skip: 0, issues, position: { units: 0 } }, false), n);
    },
    bytesRead: () => bytes,
  };
}

/** A file that is not a JSON array after all is the person's input problem, not a crash. */
async function* asDataError(records: AsyncGenerator<SourceRecord>): AsyncGenerator<SourceRecord> {
  try {
    yield* records;
  } catch (e) {
    if (e instanceof JsonArrayError) throw new DataError('unknown-file-kind', e.message);
    throw e;
  }
}

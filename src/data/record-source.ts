// A source of records that can be read again from any position: what preparation, inspection and
// previews read. Files (dropped, picked, or the demo's fetched bytes) live in file-source.ts, Hub
// datasets in hub-source.ts.

import type { IssueLog, IssueSink } from './issues.ts';
import type { FileKind } from './source.ts';
import type { ReadPosition, SourceRecord } from './types.ts';

export type SourceKind = 'file' | 'demo' | 'hub';
/** How the records are read: a file format, or a Hub dataset's parquet files or viewer rows. */
export type SourceFormat = FileKind | 'hub-parquet' | 'hub-rows';

/** Plain data: safe to post from the worker and to store with a manifest. */
export interface SourceInfo {
  kind: SourceKind;
  /** For people: a file name, or "owner/name (train, first 10,000 rows)". */
  label: string;
  /** What the fingerprint is made of: file name + size + mtime, or Hub id + revision + split + limit. */
  identity: string;
  format: SourceFormat;
  totalBytes: number | null;
  /** Records (rows) to expect, when the source knows: Parquet and Hub datasets. */
  totalRecords: number | null;
  /** Column names known before reading (Parquet schema). */
  columns?: string[];
  /** Something worth telling, e.g. why the viewer's /rows API is used instead of parquet. */
  note?: string;
}

export interface ReadOptions {
  /** Source units (lines, array items, rows) to pass over: a resume cursor. */
  skip: number;
  issues: IssueSink;
  /** Updated before each yielded record (see ReadPosition). */
  position: ReadPosition;
  signal?: AbortSignal;
}

export interface RecordSource {
  readonly info: SourceInfo;
  read(options: ReadOptions): AsyncGenerator<SourceRecord>;
  /** The first records, for format detection and previews (may take a cheaper path than read). */
  head(n: number, issues: IssueLog, signal?: AbortSignal): Promise<SourceRecord[]>;
  /** Bytes read or fetched so far, over every read. */
  bytesRead(): number;
}

// Parquet rows as records, read row group by row group from a random-access source (a dropped
// File, or HTTP ranges of a Hub parquet file). Decompressors: hyparquet-compressors (snappy,
// gzip, brotli, zstd, lz4).

import { parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import type { AsyncBuffer, FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import type { ReadPosition, SourceRecord } from './types.ts';

export type { AsyncBuffer };

/** The part of a Blob/File this module needs (kept structural: no DOM types required). */
export interface BlobLike {
  readonly size: number;
  slice(start?: number, end?: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

export function blobAsyncBuffer(blob: BlobLike): AsyncBuffer {
  return { byteLength: blob.size, slice: (start, end) => blob.slice(start, end).arrayBuffer() };
}

export interface ParquetInfo {
  rows: number;
  rowGroups: number;
  columns: string[];
}

export async function parquetInfo(file: AsyncBuffer): Promise<{ info: ParquetInfo; metadata: FileMetaData }> {
  const metadata = await parquetMetadataAsync(file);
  const columns = topLevelColumns(metadata);
  return {
    metadata,
    info: { rows: Number(metadata.num_rows), rowGroups: metadata.row_groups.length, columns },
  };
}

export interface ParquetReadOptions {
  /** Read only these top-level columns (all when omitted). */
  columns?: string[];
  /** First row to read (for resuming); rows before it are not decoded where avoidable. */
  startRow?: number;
  /** Row to stop before (exclusive; default: all rows). */
  endRow?: number;
  metadata?: FileMetaData;
  /** Set to the record's row index + 1 before each record is yielded. */
  position?: ReadPosition;
}

/**
 * Yields every row as a plain object. Reads one row group at a time, so memory holds one decoded
 * row group (HF's converted parquet keeps row groups to a few tens of MB).
 */
export async function* readParquet(file: AsyncBuffer, options: ParquetReadOptions = {}): AsyncGenerator<SourceRecord> {
  const metadata = options.metadata ?? (await parquetMetadataAsync(file));
  const endRow = options.endRow ?? Infinity;
  let groupStart = 0;
  for (const group of metadata.row_groups) {
    if (groupStart >= endRow) break;
    const groupRows = Number(group.num_rows);
    const groupEnd = Math.min(groupStart + groupRows, endRow);
    const from = Math.max(groupStart, options.startRow ?? 0);
    if (from < groupEnd) {
      const rows = await parquetReadObjects({
        file,
        metadata,
        columns: options.columns,
        rowStart: from,
        rowEnd: groupEnd,
        compressors,
        rowFormat: 'object',
      });
      for (let i = 0; i < rows.length; i++) {
        if (options.position) options.position.units = from + i + 1;
        yield { where: `row ${from + i}`, value: rows[i] as Record<string, unknown> };
      }
    }
    groupStart += groupRows;
  }
}

/** Names of the top-level columns, in schema order. */
export function topLevelColumns(metadata: FileMetaData): string[] {
  // schema[0] is the root; its children follow depth-first. Collect the root's direct children.
  const schema = metadata.schema;
  const names: string[] = [];
  const root = schema[0];
  let i = 1;
  for (let c = 0; c < (root?.num_children ?? 0) && i < schema.length; c++) {
    names.push(schema[i].name);
    i = skipSubtree(schema, i);
  }
  return names;
}

function skipSubtree(schema: FileMetaData['schema'], i: number): number {
  const n = schema[i].num_children ?? 0;
  let j = i + 1;
  for (let c = 0; c < n; c++) j = skipSubtree(schema, j);
  return j;
}

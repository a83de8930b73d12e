// A Hub dataset as a record source: the parquet files of refs/convert/parquet read with hyparquet
// over HTTP Range (only the row groups needed, never a whole file), or, when Range is refused
// (proxies; CORS on the storage host: formats.md §6), the dataset viewer's /rows API, 100 rows
// a call. Both count rows the same way, so a resume cursor works with either.

import { parquetMetadataAsync } from 'hyparquet';
import type { FileMetaData } from 'hyparquet';
import { HubError } from '../io/hub.ts';
import type { HubClient, ParquetFile } from '../io/hub.ts';
import { abortError, DataError, isAbortError } from './errors.ts';
import type { IssueSink } from './issues.ts';
import { readParquet, topLevelColumns } from './parquet.ts';
import type { AsyncBuffer } from './parquet.ts';
import type { ReadOptions, RecordSource, SourceInfo } from './record-source.ts';
import { takeRecords } from './source.ts';
import type { SourceRecord } from './types.ts';

export interface HubDatasetSpec {
  /** e.g. "mlabonne/FineTome-100k" */
  dataset: string;
  /** Default: the first config that has `split`. */
  config?: string;
  split: string;
  /** Only the first `limit` rows (the seed's train[:10000]); null or absent: all. */
  limit?: number | null;
}

export interface HubSourceOptions {
  /** For the Range probe (default: the global fetch; HubClient does the rest). */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
  signal?: AbortSignal;
  /** 'auto' (default): parquet when Range works, else /rows. */
  mode?: 'auto' | 'parquet' | 'rows';
}

const PAGE = 100; // the viewer's maximum
const PARQUET_REVISION = 'refs/convert/parquet';

const withCommas = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

export async function openHubSource(hub: HubClient, spec: HubDatasetSpec, options: HubSourceOptions = {}): Promise<RecordSource> {
  const { signal } = options;
  const dataset = spec.dataset.trim();
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(dataset)) throw new DataError('hub', `"${spec.dataset}" is not a dataset id (expected owner/name, e.g. mlabonne/FineTome-100k).`);
  const limit = spec.limit ?? null;
  if (limit !== null && !(Number.isInteger(limit) && limit > 0)) throw new DataError('options', `The row limit must be a positive whole number (got ${limit}).`);
  const split = spec.split.trim();
  const config = spec.config?.trim() || (await findConfig(hub, dataset, split, signal));

  let files: ParquetFile[] = [];
  let note: string | undefined;
  if (options.mode !== 'rows') {
    try {
      files = await hub.datasetParquetFiles(dataset, config, split, signal);
    } catch (e) {
      if (isAbortError(e) || !(e instanceof HubError) || e.kind === 'repo-not-found' || e.kind === 'gated' || e.kind === 'gated-no-access') throw hubError(e, dataset);
      note = `the viewer lists no parquet files (${e.message})`;
    }
  }
  let revision: string | null = null;
  try {
    revision = (await hub.datasetInfo(dataset, PARQUET_REVISION)).sha;
  } catch (e) {
    if (isAbortError(e)) throw e;
  }

  let mode: 'parquet' | 'rows' = files.length > 0 ? 'parquet' : 'rows';
  if (mode === 'parquet' && options.mode !== 'parquet') {
    const refused = await probeRange(files[0].url, hub.authHeaders(), options.fetch ?? ((u, i) => fetch(u, i)), signal);
    if (refused) {
      mode = 'rows';
      note = `parquet over HTTP Range is not available (${refused}): reading through the dataset viewer, 100 rows a request`;
    }
  }

  let bytes = 0;
  const identityOf = (total: number | null): string => {
    const version = revision ?? (files.length > 0 ? files.map((f) => `${f.filename}:${f.size}`).join(',') : `rows=${total}`);
    return `hub:${hub.endpoint}/datasets/${dataset}@${version}:${config}/${split}:${limit ?? 'all'}`;
  };
  const label = `${dataset} (${config === 'default' ? '' : `${config}, `}${split}${limit !== null ? `, first ${withCommas(limit)} rows` : ''})`;

  const viewerPage = (offset: number, length: number, s?: AbortSignal) =>
    withRetry(() => hub.datasetRows(dataset, config, split, offset, length, s), s).catch((e: unknown) => {
      throw hubError(e, dataset);
    });

  const headViaViewer = async (n: number, issues: IssueSink, s?: AbortSignal): Promise<SourceRecord[]> => {
    const page = await viewerPage(0, Math.min(n, PAGE, limit ?? PAGE), s);
    return pageRecords(page.rows, limit ?? Infinity, issues).map((r) => r.record);
  };

  if (mode === 'rows') {
    const first = await viewerPage(0, 1, signal);
    const total = Math.min(first.num_rows_total, limit ?? Infinity);
    const info: SourceInfo = {
      kind: 'hub',
      label,
      identity: identityOf(first.num_rows_total),
      format: 'hub-rows',
      totalBytes: null,
      totalRecords: total,
      columns: first.features.map((f) => f.name),
      ...(note ? { note } : {}),
    };
    async function* read(o: ReadOptions): AsyncGenerator<SourceRecord> {
      bytes = 0;
      let offset = o.skip;
      while (offset < total) {
        const page = await viewerPage(offset, Math.min(PAGE, total - offset), o.signal);
        if (page.rows.length === 0) break;
        for (const { record, rowIndex } of pageRecords(page.rows, total, o.issues)) {
          o.position.units = rowIndex + 1;
          yield record;
        }
        offset = page.rows[page.rows.length - 1].row_idx + 1;
      }
    }
    return { info, read, head: headViaViewer, bytesRead: () => bytes };
  }

  // Parquet over Range: footers are read as needed (all of them when there is no limit, for the total).
  let currentSignal = signal;
  const buffers = files.map((f) => rangeBuffer(hub, f.url, f.size, (n) => (bytes += n), () => currentSignal));
  const metas: { metadata: FileMetaData; rows: number }[] = [];
  const meta = async (i: number) => {
    while (metas.length <= i) {
      const metadata = await parquetMetadataAsync(buffers[metas.length]).catch((e: unknown) => {
        throw hubError(e, dataset);
      });
      metas.push({ metadata, rows: Number(metadata.num_rows) });
    }
    return metas[i];
  };
  let available = 0;
  for (let i = 0; i < files.length && available < (limit ?? Infinity); i++) available += (await meta(i)).rows;
  const total = Math.min(available, limit ?? Infinity);
  const columns = topLevelColumns((await meta(0)).metadata);
  const info: SourceInfo = {
    kind: 'hub',
    label,
    identity: identityOf(total),
    format: 'hub-parquet',
    totalBytes: files.reduce((n, f) => n + f.size, 0),
    totalRecords: total,
    columns,
    ...(note ? { note } : {}),
  };
  async function* read(o: ReadOptions): AsyncGenerator<SourceRecord> {
    currentSignal = o.signal;
    bytes = 0;
    let base = 0;
    for (let i = 0; i < files.length && base < total; i++) {
      const { metadata, rows } = await meta(i);
      if (base + rows > o.skip) {
        const local = { units: 0 };
        const records = readParquet(buffers[i], { metadata, startRow: Math.max(0, o.skip - base), endRow: Math.min(rows, total - base), position: local });
        for await (const rec of records) {
          o.position.units = base + local.units;
          yield { where: `row ${base + local.units - 1}`, value: rec.value };
        }
      }
      base += rows;
    }
  }
  return {
    info,
    read,
    async head(n, issues, s) {
      try {
        return await headViaViewer(n, issues, s);
      } catch (e) {
        if (isAbortError(e)) throw e;
        return takeRecords(read({ skip: 0, issues, position: { units: 0 }, signal: s }), n);
      }
    },
    bytesRead: () => bytes,
  };
}

async function findConfig(hub: HubClient, dataset: string, split: string, signal?: AbortSignal): Promise<string> {
  const splits = await withRetry(() => hub.datasetSplits(dataset, signal), signal).catch((e: unknown) => {
    throw hubError(e, dataset);
  });
  const hit = splits.find((s) => s.split === split);
  if (hit) return hit.config;
  const names = splits.map((s) => (s.config === 'default' ? s.split : `${s.config}/${s.split}`));
  throw new DataError('hub', `${dataset} has no split "${split}"; its splits are: ${names.join(', ') || 'none'}.`);
}

interface ViewerRow {
  row_idx: number;
  row: Record<string, unknown>;
  truncated_cells?: string[];
}

/** Viewer rows as records; a row whose cells the viewer cut short is skipped (it is incomplete). */
function pageRecords(rows: readonly ViewerRow[], total: number, issues: IssueSink): { record: SourceRecord; rowIndex: number }[] {
  const out: { record: SourceRecord; rowIndex: number }[] = [];
  for (const r of rows) {
    if (r.row_idx >= total) break;
    const where = `row ${r.row_idx}`;
    if (r.truncated_cells && r.truncated_cells.length > 0) {
      issues.add('truncated by the viewer', where, `cells ${r.truncated_cells.join(', ')} were cut short by the dataset viewer`);
      continue;
    }
    out.push({ record: { where, value: r.row }, rowIndex: r.row_idx });
  }
  return out;
}

/** null when a 4-byte Range request is answered 206; else why not. */
async function probeRange(
  url: string,
  headers: Record<string, string>,
  fetchFn: (input: string, init?: RequestInit) => Promise<Response>,
  signal?: AbortSignal,
): Promise<string | null> {
  let res: Response;
  try {
    res = await fetchFn(url, { headers: { ...headers, Range: 'bytes=0-3' }, signal });
  } catch (e) {
    if (signal?.aborted) throw abortError(signal);
    return `the request failed: ${(e as Error).message}`;
  }
  await res.body?.cancel().catch(() => undefined);
  if (res.status === 206) return null;
  return res.ok ? `the server answered ${res.status} with the whole file instead of a range` : `HTTP ${res.status}`;
}

function rangeBuffer(hub: HubClient, url: string, size: number, count: (n: number) => void, signal: () => AbortSignal | undefined): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start, end = size) {
      const { bytes } = await hub.readRange(url, start, end - start, { signal: signal() });
      count(bytes.length);
      return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
        ? (bytes.buffer as ArrayBuffer)
        : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    },
  };
}

/** Viewer calls wait out rate limits and retry brief outages. */
async function withRetry<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof HubError) || attempt >= 4) throw e;
      const transient = e.kind === 'rate-limited' || e.kind === 'offline' || e.status >= 500;
      if (!transient) throw e;
      const wait = e.kind === 'rate-limited' ? Math.min(30, e.retryAfterSeconds ?? 2) * 1000 : 500 * 2 ** attempt;
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, wait);
        signal?.addEventListener('abort', () => (clearTimeout(t), reject(abortError(signal))), { once: true });
      });
    }
  }
}

function hubError(e: unknown, dataset: string): unknown {
  if (isAbortError(e) || e instanceof DataError) return e;
  if (e instanceof HubError) return new DataError('hub', e.message);
  return new DataError('hub', `Reading ${dataset} failed: ${(e as Error)?.message ?? String(e)}`);
}

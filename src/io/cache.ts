// The browser cache of model files, keyed by (repo, commit sha, path), so that a reload or a second
// load does not download again. Storage sits behind a small interface (CacheStore): OPFS in the
// worker (cache-opfs.ts), the Cache API where OPFS is missing (cache-web.ts), memory here (tests,
// the demo). ModelCache does the rest once for all of them: downloads through the cache with resume
// of partial files, a ByteSource whose reads wait for bytes still downloading (so tensors can be
// quantized while the shard streams in), listing, clearing and quota messages.
import type { ByteSource } from './safetensors.ts';

export interface CacheKey {
  repo: string;
  /** The commit sha (a branch name would go stale), or 'local' for files that are not on the Hub. */
  revision: string;
  path: string;
}

export interface CachedFileInfo extends CacheKey {
  /** The file's full size. */
  size: number;
  /** Bytes stored so far (= size when complete). */
  bytes: number;
  complete: boolean;
  etag: string | null;
  updatedAt: number;
}

/** What a branch name resolved to when last online, so an offline reload still finds its files. */
export interface RefRecord {
  repo: string;
  revision: string;
  sha: string;
  files: { path: string; size: number; etag: string | null }[];
}

export interface StorageUsage {
  usage: number;
  quota: number;
}

/** The bytes of one stored file. Reads may cover only bytes already appended. */
export interface StoredFile {
  readonly length: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  append(bytes: Uint8Array): Promise<void>;
  truncate(length: number): Promise<void>;
  /** Makes everything appended durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export type CacheKind = 'opfs' | 'cache-api' | 'memory';

/** Where bytes live: JSON records plus one data file per record id. */
export interface CacheStore {
  readonly kind: CacheKind;
  readRecord(id: string): Promise<unknown>;
  writeRecord(id: string, value: unknown): Promise<void>;
  recordIds(): Promise<string[]>;
  /** null when absent and `create` is false. */
  openFile(id: string, create: boolean): Promise<StoredFile | null>;
  /** Deletes the record and its data file. */
  remove(id: string): Promise<void>;
  estimate(): Promise<StorageUsage | null>;
}

/** The remote side of a cached download. */
export interface RemoteBytes {
  size: number;
  /** The content id the server gives the file; a partial file resumes only when it matches. */
  etag: string | null;
  /** The file's bytes from `start` to its end. */
  stream(start: number, signal?: AbortSignal): ReadableStream<Uint8Array>;
}

export interface CacheFetchOptions {
  signal?: AbortSignal;
  /** Called with each newly downloaded chunk's length. */
  onBytes?: (n: number) => void;
  /** Bytes the whole model still needs, for the quota message. */
  neededBytes?: number;
}

export interface CachedFetch {
  /** Reads wait for bytes not yet downloaded; they reject if the download fails. */
  source: ByteSource;
  /** Bytes that were already in the cache (all of them for a hit, the partial length on resume). */
  cachedBytes: number;
  /** Settles when the file is complete in the cache. */
  done: Promise<void>;
  /** Releases the stored file (OPFS access handles are exclusive). */
  close(): Promise<void>;
}

/** The browser would not store more: says how much the model needs and what can be freed. */
export class StorageQuotaError extends Error {
  override readonly name = 'StorageQuotaError';
}

const FLUSH_BYTES = 8 * 1024 * 1024;

interface FileRecord extends CachedFileInfo {
  type: 'file';
}

const gb = (n: number): string => `${(n / 1e9).toFixed(n < 1e8 ? 2 : 1)} GB`;

export function quotaMessage(neededBytes: number, usage: StorageUsage | null): string {
  const free = usage ? Math.max(0, usage.quota - usage.usage) : null;
  const state = free === null ? 'the browser refused to store more' : `${gb(free)} is free`;
  return (
    `Not enough browser storage: this model needs ${gb(neededBytes)}, ${state}. ` +
    'Free space by clearing cached models in the Model tab, or free disk space on this computer ' +
    '(the browser lets a site use a share of the free disk), or pick a smaller model.'
  );
}

export function isQuotaError(e: unknown): boolean {
  return (e as { name?: string } | null)?.name === 'QuotaExceededError';
}

async function hashId(prefix: string, text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return prefix + Array.from(new Uint8Array(digest, 0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}

const fileId = (k: CacheKey): Promise<string> => hashId('f-', JSON.stringify([k.repo, k.revision, k.path]));
const refId = (repo: string, revision: string): Promise<string> => hashId('r-', JSON.stringify([repo, revision]));

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');
}

export class ModelCache {
  constructor(readonly store: CacheStore) {}

  get kind(): CacheKind {
    return this.store.kind;
  }

  /**
   * The file through the cache: a hit is served from storage without a request; a partial file
   * with the same size and ETag resumes from its next byte; anything else downloads from byte 0.
   */
  async fetch(key: CacheKey, remote: RemoteBytes, opts: CacheFetchOptions = {}): Promise<CachedFetch> {
    const id = await fileId(key);
    const rec = (await this.store.readRecord(id)) as FileRecord | null;
    if (rec?.complete) {
      const file = await this.store.openFile(id, false);
      if (file && file.length >= rec.size) return completeFetch(file, rec.size, key.path);
      await file?.close();
    }
    const resumable = rec && !rec.complete && rec.etag !== null && rec.etag === remote.etag && rec.size === remote.size;
    const file = (await this.store.openFile(id, true))!;
    try {
      const start = resumable ? Math.min(rec.bytes, file.length) : 0;
      await file.truncate(start);
      const record: FileRecord = { type: 'file', ...key, size: remote.size, bytes: start, complete: false, etag: remote.etag, updatedAt: Date.now() };
      await this.store.writeRecord(id, record);
      return this.download(id, record, file, remote, opts);
    } catch (e) {
      await file.close().catch(() => undefined);
      throw await this.wrapQuota(e, opts.neededBytes ?? remote.size);
    }
  }

  private download(id: string, record: FileRecord, file: StoredFile, remote: RemoteBytes, opts: CacheFetchOptions): CachedFetch {
    const start = record.bytes;
    const waiters: { end: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
    let failure: unknown = null;
    let closed = false;
    const wake = (): void => {
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i];
        if (failure !== null) w.reject(failure);
        else if (file.length >= w.end) w.resolve();
        else continue;
        waiters.splice(i, 1);
      }
    };
    const persist = async (complete: boolean): Promise<void> => {
      await file.flush();
      record.bytes = file.length;
      record.complete = complete;
      record.updatedAt = Date.now();
      await this.store.writeRecord(id, record);
    };
    const pump = async (): Promise<void> => {
      if (start === remote.size) return persist(true);
      const reader = remote.stream(start, opts.signal).getReader();
      let sinceFlush = 0;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (file.length + value.length > remote.size) throw new Error(`${record.path}: the server sent more than the ${remote.size} bytes it announced`);
          await file.append(value);
          opts.onBytes?.(value.length);
          sinceFlush += value.length;
          wake();
          if (sinceFlush >= FLUSH_BYTES) {
            sinceFlush = 0;
            await persist(false);
          }
        }
      } finally {
        reader.releaseLock();
      }
      if (file.length !== remote.size) throw new Error(`${record.path}: the download ended at byte ${file.length} of ${remote.size}`);
      await persist(true);
    };
    const done = pump().catch(async (e: unknown) => {
      failure = await this.wrapQuota(e, opts.neededBytes ?? remote.size - file.length);
      if (!isQuotaError(e)) await persist(false).catch(() => undefined); // keep what arrived, for a resume
      wake();
      throw failure;
    });
    done.catch(() => undefined); // failures reach callers through reads and `done`
    const source: ByteSource = {
      size: remote.size,
      name: record.path,
      read: async (offset, length) => {
        if (closed) throw new Error(`${record.path}: read after close`);
        const end = offset + length;
        if (end > remote.size) throw new RangeError(`${record.path}: read of ${length} bytes at ${offset} is outside the file (${remote.size} bytes)`);
        if (file.length < end) {
          if (failure !== null) throw failure;
          if (opts.signal?.aborted) throw abortError(opts.signal);
          await new Promise<void>((resolve, reject) => waiters.push({ end, resolve, reject }));
        }
        return file.read(offset, length);
      },
    };
    return {
      source,
      cachedBytes: start,
      done,
      close: async () => {
        if (closed) return;
        closed = true;
        await done.catch(() => undefined);
        await file.close();
      },
    };
  }

  private async wrapQuota(e: unknown, needed: number): Promise<unknown> {
    if (!isQuotaError(e)) return e;
    return new StorageQuotaError(quotaMessage(needed, await this.store.estimate().catch(() => null)));
  }

  /** Throws StorageQuotaError when the browser reports less free space than `neededBytes`. */
  async checkSpace(neededBytes: number): Promise<void> {
    if (neededBytes <= 0) return;
    const usage = await this.store.estimate().catch(() => null);
    if (usage && usage.quota - usage.usage < neededBytes) throw new StorageQuotaError(quotaMessage(neededBytes, usage));
  }

  /** Bytes of the file already stored complete (0 when absent or partial). */
  async storedBytes(key: CacheKey): Promise<number> {
    const rec = (await this.store.readRecord(await fileId(key))) as FileRecord | null;
    return rec?.complete ? rec.size : 0;
  }

  async list(): Promise<CachedFileInfo[]> {
    const out: CachedFileInfo[] = [];
    for (const id of await this.store.recordIds()) {
      const rec = (await this.store.readRecord(id).catch(() => null)) as FileRecord | null;
      if (rec?.type !== 'file') continue;
      const { type: _type, ...info } = rec;
      out.push(info);
    }
    return out.sort((a, b) => a.repo.localeCompare(b.repo) || a.revision.localeCompare(b.revision) || a.path.localeCompare(b.path));
  }

  /** Deletes every file of `repo` (all repos when omitted); returns the bytes freed. */
  async clear(repo?: string): Promise<number> {
    let freed = 0;
    for (const id of await this.store.recordIds()) {
      const rec = (await this.store.readRecord(id).catch(() => null)) as (FileRecord | (RefRecord & { type: 'ref' })) | null;
      if (repo !== undefined && rec && rec.repo !== repo) continue;
      if (rec?.type === 'file') freed += rec.bytes;
      await this.store.remove(id);
    }
    return freed;
  }

  estimate(): Promise<StorageUsage | null> {
    return this.store.estimate();
  }

  async getRef(repo: string, revision: string): Promise<RefRecord | null> {
    const rec = (await this.store.readRecord(await refId(repo, revision))) as (RefRecord & { type: 'ref' }) | null;
    if (rec?.type !== 'ref') return null;
    const { type: _type, ...ref } = rec;
    return ref;
  }

  async putRef(ref: RefRecord): Promise<void> {
    await this.store.writeRecord(await refId(ref.repo, ref.revision), { type: 'ref', ...ref });
  }
}

function completeFetch(file: StoredFile, size: number, name: string): CachedFetch {
  let closed = false;
  return {
    source: {
      size,
      name,
      read: (offset, length) => {
        if (closed) return Promise.reject(new Error(`${name}: read after close`));
        if (offset + length > size) return Promise.reject(new RangeError(`${name}: read of ${length} bytes at ${offset} is outside the file (${size} bytes)`));
        return file.read(offset, length);
      },
    },
    cachedBytes: size,
    done: Promise.resolve(),
    close: async () => {
      if (!closed) await file.close();
      closed = true;
    },
  };
}

/** All of a CachedFetch's bytes once complete (small files: config, tokenizer). */
export async function readAllCached(f: CachedFetch): Promise<Uint8Array> {
  try {
    await f.done;
    return await f.source.read(0, f.source.size);
  } finally {
    await f.close();
  }
}

// ---------------------------------------------------------------------------------------------
// In memory: tests, and files that need no persistence (the demo, served with the app).

class MemoryFile implements StoredFile {
  private buf = new Uint8Array(0);
  length = 0;
  constructor(private readonly store: MemoryCacheStore) {}

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset + length > this.length) throw new RangeError(`memory cache: read past the stored ${this.length} bytes`);
    return this.buf.slice(offset, offset + length);
  }

  async append(bytes: Uint8Array): Promise<void> {
    this.store.reserve(bytes.length);
    if (this.length + bytes.length > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.length + bytes.length, this.buf.length * 2, 1024));
      grown.set(this.buf.subarray(0, this.length));
      this.buf = grown;
    }
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  async truncate(length: number): Promise<void> {
    this.store.reserve(Math.min(0, length - this.length));
    this.length = Math.min(length, this.length);
  }

  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

export class MemoryCacheStore implements CacheStore {
  readonly kind = 'memory' as const;
  private readonly records = new Map<string, string>();
  private readonly files = new Map<string, MemoryFile>();
  private used = 0;

  /** `quotaBytes`: appends past it throw a QuotaExceededError, as browsers do. */
  constructor(private readonly opts: { quotaBytes?: number } = {}) {}

  /** Accounts `n` more bytes (negative frees). */
  reserve(n: number): void {
    if (n > 0 && this.opts.quotaBytes !== undefined && this.used + n > this.opts.quotaBytes) {
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    }
    this.used += n;
  }

  async readRecord(id: string): Promise<unknown> {
    const text = this.records.get(id);
    return text === undefined ? null : JSON.parse(text);
  }

  async writeRecord(id: string, value: unknown): Promise<void> {
    this.records.set(id, JSON.stringify(value));
  }

  async recordIds(): Promise<string[]> {
    return [...this.records.keys()];
  }

  async openFile(id: string, create: boolean): Promise<StoredFile | null> {
    let f = this.files.get(id);
    if (!f && create) this.files.set(id, (f = new MemoryFile(this)));
    return f ?? null;
  }

  async remove(id: string): Promise<void> {
    const f = this.files.get(id);
    if (f) this.used -= f.length;
    this.files.delete(id);
    this.records.delete(id);
  }

  async estimate(): Promise<StorageUsage | null> {
    return this.opts.quotaBytes === undefined ? null : { usage: this.used, quota: this.opts.quotaBytes };
  }
}

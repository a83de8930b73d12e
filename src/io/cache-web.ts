// The cache's storage in the Cache API, for browsers without OPFS sync access handles. A Cache
// entry is written whole, so a file is a run of chunks, one entry per flush, each named by its
// byte range; records are JSON entries. Reads fetch the chunks they overlap (the last one read is
// kept, as tensors are read in file order).
import type { CacheStore, StorageUsage, StoredFile } from './cache.ts';

/** The subset of the Cache interface used (tests pass an in-memory one). */
export type CacheLike = Pick<Cache, 'put' | 'match' | 'delete' | 'keys'>;

const BASE = 'https://webtune-cache.invalid/';

interface Chunk {
  start: number;
  length: number;
}

const chunkUrl = (id: string, c: Chunk): string => `${BASE}${id}/chunk/${c.start}-${c.length}`;

class ChunkedFile implements StoredFile {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private last: { chunk: Chunk; bytes: Uint8Array } | null = null;

  constructor(
    private readonly cache: CacheLike,
    private readonly id: string,
    private chunks: Chunk[],
  ) {}

  private get committed(): number {
    const c = this.chunks[this.chunks.length - 1];
    return c ? c.start + c.length : 0;
  }

  get length(): number {
    return this.committed + this.pendingBytes;
  }

  private async chunkBytes(c: Chunk): Promise<Uint8Array> {
    if (this.last?.chunk === c) return this.last.bytes;
    const res = await this.cache.match(chunkUrl(this.id, c));
    if (!res) throw new Error(`browser cache: chunk ${c.start}-${c.length} of a cached file is missing; clear the cache and load again`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    this.last = { chunk: c, bytes };
    return bytes;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset + length > this.length) throw new RangeError(`browser cache: read past the stored ${this.length} bytes`);
    const out = new Uint8Array(length);
    let pos = offset;
    const end = offset + length;
    for (const c of this.chunks) {
      if (pos >= end) break;
      if (c.start + c.length <= pos) continue;
      const bytes = await this.chunkBytes(c);
      const from = pos - c.start;
      const n = Math.min(c.length - from, end - pos);
      out.set(bytes.subarray(from, from + n), pos - offset);
      pos += n;
    }
    // The rest is appended but not yet flushed.
    let at = this.committed;
    for (const p of this.pending) {
      if (pos >= end) break;
      if (at + p.length > pos) {
        const from = pos - at;
        const n = Math.min(p.length - from, end - pos);
        out.set(p.subarray(from, from + n), pos - offset);
        pos += n;
      }
      at += p.length;
    }
    return out;
  }

  async append(bytes: Uint8Array): Promise<void> {
    this.pending.push(bytes.slice());
    this.pendingBytes += bytes.length;
  }

  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const data = new Uint8Array(this.pendingBytes);
    let o = 0;
    for (const p of this.pending) {
      data.set(p, o);
      o += p.length;
    }
    const chunk = { start: this.committed, length: data.length };
    await this.cache.put(chunkUrl(this.id, chunk), new Response(data));
    this.chunks.push(chunk);
    this.pending = [];
    this.pendingBytes = 0;
  }

  async truncate(length: number): Promise<void> {
    if (length >= this.length) return;
    await this.flush();
    const keep: Chunk[] = [];
    for (const c of this.chunks) {
      if (c.start + c.length <= length) {
        keep.push(c);
        continue;
      }
      if (c.start < length) {
        const head = { start: c.start, length: length - c.start };
        await this.cache.put(chunkUrl(this.id, head), new Response((await this.chunkBytes(c)).slice(0, head.length)));
        keep.push(head);
      }
      await this.cache.delete(chunkUrl(this.id, c));
    }
    this.chunks = keep;
    this.last = null;
  }

  async close(): Promise<void> {
    this.last = null;
  }
}

export class CacheApiStore implements CacheStore {
  readonly kind = 'cache-api' as const;
  constructor(private readonly cache: CacheLike) {}

  async readRecord(id: string): Promise<unknown> {
    const res = await this.cache.match(`${BASE}${id}/record`);
    if (!res) return null;
    try {
      return await res.json();
    } catch {
      return null;
    }
  }

  async writeRecord(id: string, value: unknown): Promise<void> {
    await this.cache.put(`${BASE}${id}/record`, new Response(JSON.stringify(value), { headers: { 'Content-Type': 'application/json' } }));
  }

  private async urls(): Promise<string[]> {
    return (await this.cache.keys()).map((r) => r.url).filter((u) => u.startsWith(BASE));
  }

  async recordIds(): Promise<string[]> {
    return (await this.urls()).filter((u) => u.endsWith('/record')).map((u) => u.slice(BASE.length, -'/record'.length));
  }

  async openFile(id: string, create: boolean): Promise<StoredFile | null> {
    const prefix = `${BASE}${id}/chunk/`;
    const chunks = (await this.urls())
      .filter((u) => u.startsWith(prefix))
      .map((u) => {
        const [start, length] = u.slice(prefix.length).split('-').map(Number);
        return { start, length };
      })
      .sort((a, b) => a.start - b.start);
    // Only a gapless run from byte 0 is usable (a crash may leave a stray chunk).
    const run: Chunk[] = [];
    for (const c of chunks) if (c.start === (run.length ? run[run.length - 1].start + run[run.length - 1].length : 0)) run.push(c);
    if (!create && run.length === 0 && !(await this.cache.match(`${BASE}${id}/record`))) return null;
    return new ChunkedFile(this.cache, id, run);
  }

  async remove(id: string): Promise<void> {
    for (const u of await this.urls()) if (u.startsWith(`${BASE}${id}/`)) await this.cache.delete(u);
  }

  async estimate(): Promise<StorageUsage | null> {
    const e = await (globalThis as { navigator?: Navigator }).navigator?.storage?.estimate?.();
    return e && e.usage !== undefined && e.quota !== undefined ? { usage: e.usage, quota: e.quota } : null;
  }
}

/** The Cache API store, or null where `caches` is missing (Node, insecure origins). */
export async function openCacheApiStore(name = 'webtune-model-cache'): Promise<CacheStore | null> {
  const storage = (globalThis as { caches?: CacheStorage }).caches;
  if (!storage) return null;
  try {
    return new CacheApiStore(await storage.open(name));
  } catch {
    return null;
  }
}

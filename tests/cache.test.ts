// ModelCache over the in-memory store and over the Cache API store (an in-memory Cache here; OPFS
// runs in the e2e suite): hits, reads that wait for bytes still arriving, resume only with the same
// size and ETag, failures reaching waiting reads, listing, clearing, refs and quota messages.
import { describe, expect, it } from 'vitest';
import { MemoryCacheStore, ModelCache, quotaMessage, readAllCached, StorageQuotaError, type CacheStore, type RemoteBytes } from '../src/io/cache.ts';
import { CacheApiStore, type CacheLike } from '../src/io/cache-web.ts';
import { rng } from '../src/util/random.ts';

/** The Cache API's put/match/delete/keys over a Map, as Chrome's behaves for these calls. */
class FakeCache implements CacheLike {
  readonly entries = new Map<string, Uint8Array>();
  async put(req: RequestInfo | URL, res: Response): Promise<void> {
    this.entries.set(String(req instanceof Request ? req.url : req), new Uint8Array(await res.arrayBuffer()));
  }
  async match(req: RequestInfo | URL): Promise<Response | undefined> {
    const b = this.entries.get(String(req instanceof Request ? req.url : req));
    return b ? new Response(b.slice()) : undefined;
  }
  async delete(req: RequestInfo | URL): Promise<boolean> {
    return this.entries.delete(String(req instanceof Request ? req.url : req));
  }
  async keys(): Promise<readonly Request[]> {
    return [...this.entries.keys()].map((u) => new Request(u));
  }
}

function bytes(n: number, seed = 1): Uint8Array {
  const next = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(next() * 256));
}

/** A remote that serves `data` in `piece`-byte chunks, records where each stream started, and can
 *  stop after `failAfter` bytes or wait for `gate` before each chunk. */
function remote(data: Uint8Array, opts: { etag?: string | null; piece?: number; failAfter?: number; gate?: () => Promise<void> } = {}) {
  const starts: number[] = [];
  const r: RemoteBytes = {
    size: data.length,
    etag: opts.etag === undefined ? 'etag-1' : opts.etag,
    stream(start) {
      starts.push(start);
      let pos = start;
      return new ReadableStream<Uint8Array>({
        async pull(c) {
          await opts.gate?.();
          if (opts.failAfter !== undefined && pos >= opts.failAfter) return c.error(new TypeError('network error'));
          if (pos >= data.length) return c.close();
          const end = Math.min(data.length, pos + (opts.piece ?? 1000), opts.failAfter ?? Infinity);
          c.enqueue(data.slice(pos, end));
          pos = end;
        },
      });
    },
  };
  return { r, starts };
}

const KEY = { repo: 'owner/model', revision: 'a'.repeat(40), path: 'model.safetensors' };

const stores: [string, () => CacheStore][] = [
  ['memory', () => new MemoryCacheStore()],
  ['Cache API', () => new CacheApiStore(new FakeCache())],
];

describe.each(stores)('ModelCache over the %s store', (_name, makeStore) => {
  it('downloads once, then serves the file from storage', async () => {
    const cache = new ModelCache(makeStore());
    const data = bytes(25_000);
    const a = remote(data);
    const first = await cache.fetch(KEY, a.r);
    expect(first.cachedBytes).toBe(0);
    expect(Buffer.from(await readAllCached(first)).equals(Buffer.from(data))).toBe(true);
    const second = await cache.fetch(KEY, a.r);
    expect(second.cachedBytes).toBe(data.length);
    expect(Buffer.from(await second.source.read(1234, 5000)).equals(Buffer.from(data.subarray(1234, 6234)))).toBe(true);
    await second.close();
    expect(a.starts).toEqual([0]);
    expect(await cache.list()).toEqual([{ ...KEY, size: data.length, bytes: data.length, complete: true, etag: 'etag-1', updatedAt: expect.any(Number) }]);
  });

  it('reads wait for bytes still downloading', async () => {
    const cache = new ModelCache(makeStore());
    const data = bytes(10_000, 2);
    // One permit per chunk the remote may send.
    let permits = 0;
    let wakeRemote: (() => void) | null = null;
    const gate = async (): Promise<void> => {
      while (permits === 0) await new Promise<void>((r) => (wakeRemote = r));
      permits--;
    };
    const allow = (n: number): void => {
      permits += n;
      wakeRemote?.();
    };
    const chunks: number[] = [];
    const f = await cache.fetch(KEY, remote(data, { piece: 2000, gate }).r, { onBytes: (n) => chunks.push(n) });
    const tail = f.source.read(9000, 1000);
    let settled = false;
    void tail.then(() => (settled = true));
    allow(4);
    while (chunks.length < 4) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(false); // 8000 bytes so far
    expect(Buffer.from(await f.source.read(0, 8000)).equals(Buffer.from(data.subarray(0, 8000)))).toBe(true);
    allow(10);
    expect(Buffer.from(await tail).equals(Buffer.from(data.subarray(9000)))).toBe(true);
    await f.done;
    expect(chunks.reduce((a, b) => a + b, 0)).toBe(10_000);
    await f.close();
  });

  it('a failed download rejects waiting reads and keeps its bytes; the same ETag resumes, another restarts', async () => {
    const cache = new ModelCache(makeStore());
    const data = bytes(30_000, 3);
    const broken = remote(data, { failAfter: 12_000 });
    const f = await cache.fetch(KEY, broken.r);
    await expect(f.source.read(20_000, 10)).rejects.toThrow(/network error/);
    await expect(f.done).rejects.toThrow(/network error/);
    await f.close();
    expect((await cache.list())[0]).toMatchObject({ bytes: 12_000, complete: false });

    const again = remote(data);
    const g = await cache.fetch(KEY, again.r);
    expect(g.cachedBytes).toBe(12_000);
    expect(Buffer.from(await readAllCached(g)).equals(Buffer.from(data))).toBe(true);
    expect(again.starts).toEqual([12_000]);

    // A different file under the same key (ETag changed): from byte 0.
    const key2 = { ...KEY, path: 'other.safetensors' };
    const h = await cache.fetch(key2, remote(data, { failAfter: 5000 }).r);
    await h.done.catch(() => undefined);
    await h.close();
    const changed = remote(bytes(30_000, 4), { etag: 'etag-2' });
    const k = await cache.fetch(key2, changed.r);
    expect(k.cachedBytes).toBe(0);
    await readAllCached(k);
    expect(changed.starts).toEqual([0]);
  });

  it('no ETag, no resume', async () => {
    const cache = new ModelCache(makeStore());
    const data = bytes(5000, 5);
    const f = await cache.fetch(KEY, remote(data, { etag: null, failAfter: 3000 }).r);
    await f.done.catch(() => undefined);
    await f.close();
    const again = remote(data, { etag: null });
    await readAllCached(await cache.fetch(KEY, again.r));
    expect(again.starts).toEqual([0]);
  });

  it('lists, clears one repo or all, and keeps refs per repo and revision', async () => {
    const cache = new ModelCache(makeStore());
    const data = bytes(3000, 6);
    for (const repo of ['a/one', 'b/two']) {
      for (const path of ['config.json', 'model.safetensors']) await readAllCached(await cache.fetch({ ...KEY, repo, path }, remote(data).r));
      await cache.putRef({ repo, revision: 'main', sha: KEY.revision, files: [{ path: 'config.json', size: 3000, etag: 'etag-1' }] });
    }
    expect((await cache.list()).map((f) => `${f.repo}:${f.path}`)).toEqual(['a/one:config.json', 'a/one:model.safetensors', 'b/two:config.json', 'b/two:model.safetensors']);
    expect(await cache.getRef('a/one', 'main')).toMatchObject({ sha: KEY.revision });
    expect(await cache.clear('a/one')).toBe(6000);
    expect((await cache.list()).map((f) => f.repo)).toEqual(['b/two', 'b/two']);
    expect(await cache.getRef('a/one', 'main')).toBeNull();
    expect(await cache.getRef('b/two', 'main')).not.toBeNull();
    await cache.clear();
    expect(await cache.list()).toEqual([]);
    expect(await cache.getRef('b/two', 'main')).toBeNull();
  });
});

describe('storage quota', () => {
  it('a write past the quota becomes a message with the sizes', async () => {
    const cache = new ModelCache(new MemoryCacheStore({ quotaBytes: 2_000_000_000 }));
    await readAllCached(await cache.fetch({ ...KEY, path: 'a' }, remote(bytes(4000)).r));
    const big: RemoteBytes = {
      size: 5_000_000_000,
      etag: 'x',
      stream: () => new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(1024 * 1024)) }),
    };
    // Shrink the quota under the file so the first chunk past it fails.
    const small = new ModelCache(new MemoryCacheStore({ quotaBytes: 3 * 1024 * 1024 }));
    const f = await small.fetch(KEY, big, { neededBytes: 5_700_000_000 });
    const e = await f.done.then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(StorageQuotaError);
    expect((e as Error).message).toBe(
      'Not enough browser storage: this model needs 5.7 GB, 0.00 GB is free. Free space by clearing cached models in the Model tab, ' +
        'or free disk space on this computer (the browser lets a site use a share of the free disk), or pick a smaller model.',
    );
    await f.close();
    await expect(cache.checkSpace(2_500_000_000)).rejects.toThrow(/needs 2\.5 GB, 2\.0 GB is free/);
    await expect(cache.checkSpace(1_000_000)).resolves.toBeUndefined();
  });

  it('without an estimate the message still says what to do', () => {
    expect(quotaMessage(8e9, null)).toMatch(/^Not enough browser storage: this model needs 8\.0 GB, the browser refused to store more\. Free space/);
  });
});

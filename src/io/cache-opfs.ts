// The cache's storage in the Origin Private File System: one folder, `{id}.bin` data files written
// through sync access handles (dedicated workers only; exclusive, fast, random access) and
// `{id}.json` records written with createWritable (swapped in whole on close, so a record is never
// half-written). Exercised by the e2e suite; Node tests use MemoryCacheStore.
import type { CacheStore, StorageUsage, StoredFile } from './cache.ts';

// The parts of the OPFS API used here (TypeScript's DOM lib lacks some of them for workers).
interface SyncHandle {
  getSize(): number;
  read(buffer: Uint8Array, opts: { at: number }): number;
  write(buffer: Uint8Array, opts: { at: number }): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}
interface FileHandle {
  getFile(): Promise<File>;
  createWritable(): Promise<{ write(data: string | Uint8Array): Promise<void>; close(): Promise<void> }>;
  createSyncAccessHandle?: () => Promise<SyncHandle>;
}
interface DirHandle {
  getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<DirHandle>;
  getFileHandle(name: string, opts?: { create?: boolean }): Promise<FileHandle>;
  removeEntry(name: string): Promise<void>;
  keys(): AsyncIterable<string>;
}

const isNotFound = (e: unknown): boolean => (e as { name?: string } | null)?.name === 'NotFoundError';

class OpfsFile implements StoredFile {
  length: number;
  constructor(private readonly handle: SyncHandle) {
    this.length = handle.getSize();
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    const n = this.handle.read(out, { at: offset });
    if (n !== length) throw new Error(`browser storage: read ${n} of ${length} bytes at ${offset}`);
    return out;
  }

  async append(bytes: Uint8Array): Promise<void> {
    const n = this.handle.write(bytes, { at: this.length });
    this.length += n;
    if (n !== bytes.length) throw new DOMException(`browser storage wrote ${n} of ${bytes.length} bytes`, 'QuotaExceededError');
  }

  async truncate(length: number): Promise<void> {
    this.handle.truncate(length);
    this.length = Math.min(this.length, length);
  }

  async flush(): Promise<void> {
    this.handle.flush();
  }

  async close(): Promise<void> {
    this.handle.close();
  }
}

class OpfsStore implements CacheStore {
  readonly kind = 'opfs' as const;
  constructor(private readonly dir: DirHandle) {}

  async readRecord(id: string): Promise<unknown> {
    try {
      const file = await (await this.dir.getFileHandle(`${id}.json`)).getFile();
      return JSON.parse(await file.text());
    } catch (e) {
      if (isNotFound(e) || e instanceof SyntaxError) return null;
      throw e;
    }
  }

  async writeRecord(id: string, value: unknown): Promise<void> {
    const w = await (await this.dir.getFileHandle(`${id}.json`, { create: true })).createWritable();
    await w.write(JSON.stringify(value));
    await w.close();
  }

  async recordIds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const name of this.dir.keys()) if (name.endsWith('.json')) ids.push(name.slice(0, -5));
    return ids;
  }

  async openFile(id: string, create: boolean): Promise<StoredFile | null> {
    let handle: FileHandle;
    try {
      handle = await this.dir.getFileHandle(`${id}.bin`, { create });
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
    try {
      return new OpfsFile(await handle.createSyncAccessHandle!());
    } catch (e) {
      if ((e as { name?: string }).name === 'NoModificationAllowedError') {
        throw new Error('A cached model file is in use by another tab of the studio: close the other tab, or wait for its load to finish.');
      }
      throw e;
    }
  }

  async remove(id: string): Promise<void> {
    for (const name of [`${id}.bin`, `${id}.json`]) {
      await this.dir.removeEntry(name).catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      });
    }
  }

  async estimate(): Promise<StorageUsage | null> {
    const e = await navigator.storage?.estimate?.();
    return e && e.usage !== undefined && e.quota !== undefined ? { usage: e.usage, quota: e.quota } : null;
  }
}

/** The OPFS store, or null where OPFS or its sync access handles are missing. */
export async function openOpfsStore(folder = 'webtune-model-cache'): Promise<CacheStore | null> {
  const storage = (globalThis as { navigator?: { storage?: { getDirectory?: () => Promise<unknown> } } }).navigator?.storage;
  const proto = (globalThis as { FileSystemFileHandle?: { prototype: object } }).FileSystemFileHandle?.prototype;
  if (!storage?.getDirectory || !proto || !('createSyncAccessHandle' in proto)) return null;
  try {
    const root = (await storage.getDirectory()) as DirHandle;
    return new OpfsStore(await root.getDirectoryHandle(folder, { create: true }));
  } catch {
    return null; // e.g. storage blocked for this site
  }
}

// Checkpoints in the Origin Private File System (the browser; the trainer worker). A write goes to
// `<name>.tmp` through createWritable (the browser itself swaps a writable's data in only on
// close), then the temp file is renamed with move(); the commit protocol (checkpoint-store.ts)
// only ever writes fresh names, so the rename never replaces a file. Browsers without
// FileSystemHandle.move() get the file written under its final name with createWritable, which
// the File System spec also makes all-or-nothing (the data lands on close). Exercised in Node by
// tests/checkpoint-store.test.ts over a fake directory with the same semantics.
import type { CheckpointStore } from './checkpoint-store.ts';

// The parts of the OPFS API used here (TypeScript's DOM lib lacks some of them for workers).
interface Writable {
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort?(reason?: unknown): Promise<void>;
}
export interface OpfsFileHandle {
  getFile(): Promise<Blob>;
  createWritable(opts?: { keepExistingData?: boolean }): Promise<Writable>;
  move?(newName: string): Promise<void>;
}
export interface OpfsDirHandle {
  getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<OpfsDirHandle>;
  getFileHandle(name: string, opts?: { create?: boolean }): Promise<OpfsFileHandle>;
  removeEntry(name: string): Promise<void>;
  keys(): AsyncIterable<string>;
}

const isNotFound = (e: unknown): boolean => (e as { name?: string } | null)?.name === 'NotFoundError';

export class OpfsCheckpointStore implements CheckpointStore {
  readonly kind = 'opfs';
  constructor(private readonly dir: OpfsDirHandle) {}

  async write(name: string, data: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    const probe = await this.dir.getFileHandle(`${name}.tmp`, { create: true });
    const renamable = typeof probe.move === 'function';
    let created = false; // without move(): the final name did not exist before this write
    if (!renamable) {
      await this.remove(`${name}.tmp`);
      created = (await this.read(name)) === null;
    }
    const handle = renamable ? probe : await this.dir.getFileHandle(name, { create: true });
    const w = await handle.createWritable({ keepExistingData: false });
    try {
      if (data instanceof Uint8Array) await w.write(data);
      else for await (const chunk of data) await w.write(chunk);
      await w.close();
    } catch (e) {
      await w.abort?.(e).catch(() => undefined); // drops what was written: an old file stays as it was
      if (renamable || created) await this.remove(renamable ? `${name}.tmp` : name).catch(() => undefined);
      throw e;
    }
    if (renamable) await handle.move!(name);
  }

  async read(name: string): Promise<Uint8Array | null> {
    try {
      const file = await (await this.dir.getFileHandle(name)).getFile();
      return new Uint8Array(await file.arrayBuffer());
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async list(): Promise<string[]> {
    const out: string[] = [];
    for await (const name of this.dir.keys()) out.push(name);
    return out;
  }

  async remove(name: string): Promise<void> {
    await this.dir.removeEntry(name).catch((e: unknown) => {
      if (!isNotFound(e)) throw e;
    });
  }
}

/**
 * The store in OPFS folder `folder` (created when missing); null where the browser has no OPFS
 * (then checkpoints cannot survive a reload, and the caller says so).
 */
export async function openOpfsCheckpointStore(folder = 'webtune-checkpoints'): Promise<OpfsCheckpointStore | null> {
  const storage = (globalThis as { navigator?: { storage?: { getDirectory?: () => Promise<unknown> } } }).navigator?.storage;
  if (!storage?.getDirectory) return null;
  try {
    const root = (await storage.getDirectory()) as OpfsDirHandle;
    return new OpfsCheckpointStore(await root.getDirectoryHandle(folder, { create: true }));
  } catch {
    return null;
  }
}

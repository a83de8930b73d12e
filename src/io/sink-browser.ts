// Export sinks in the browser (the trainer worker), over File System Access handles:
//   - a folder the person picked (showDirectoryPicker, in the page; the handle crosses to the worker),
//   - one file the person picked (showSaveFilePicker),
//   - a folder in the Origin Private File System, from which the page downloads the files: a File
//     from OPFS is backed by the disk, so a 16 GB download never passes through memory.
// Each file is written to `name.partial` and renamed with move() on commit. Where a browser has no
// move(), the file is written under its final name and its writable is only closed on commit: until
// close() the bytes sit in the browser's swap file (`name.crswap`) and the file stays empty.

import { checkFileName, type ExportSink, type SinkFile } from './sink.ts';

// The parts of the API used here (TypeScript's DOM lib lacks move() and remove()).
interface Writable {
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
}
export interface FileHandleLike {
  readonly name: string;
  createWritable(opts?: { keepExistingData?: boolean }): Promise<Writable>;
  move?(newName: string): Promise<void>;
  remove?(): Promise<void>;
}
export interface DirectoryHandleLike {
  readonly name: string;
  getFileHandle(name: string, opts?: { create?: boolean }): Promise<FileHandleLike>;
  getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<DirectoryHandleLike>;
  removeEntry(name: string, opts?: { recursive?: boolean }): Promise<void>;
  keys?(): AsyncIterable<string>;
}

const PARTIAL = '.partial';
const ignoreNotFound = (e: unknown): void => {
  if ((e as { name?: string } | null)?.name !== 'NotFoundError') throw e;
};

interface Started {
  name: string;
  handle: FileHandleLike;
  writable: Writable | null;
  /** Written as `name.partial`, to be moved; else under `name` with the writable kept open. */
  partial: boolean;
  /** Without move(): `name` was there before (an older export), so a discard leaves it be. */
  existed: boolean;
  committed: boolean;
}

/** Files in a directory handle (a picked folder, or one in OPFS). */
export class DirectoryHandleSink implements ExportSink {
  private readonly started: Started[] = [];

  constructor(
    private readonly dir: DirectoryHandleLike,
    readonly where: string,
    readonly fullAdvice?: string,
    /** Runs after a discard that removed everything (e.g. removes the export's own folder). */
    private readonly afterDiscard?: () => Promise<void>,
  ) {}

  async create(name: string): Promise<SinkFile> {
    checkFileName(name);
    let handle = await this.dir.getFileHandle(name + PARTIAL, { create: true });
    const partial = typeof handle.move === 'function';
    let existed = false;
    if (!partial) {
      await this.dir.removeEntry(name + PARTIAL).catch(ignoreNotFound);
      existed = await this.dir.getFileHandle(name).then(
        () => true,
        () => false,
      );
      handle = await this.dir.getFileHandle(name, { create: true });
    }
    const entry: Started = { name, handle, writable: null, partial, existed, committed: false };
    this.started.push(entry);
    const writable = await handle.createWritable({ keepExistingData: false });
    entry.writable = writable;
    return {
      write: (chunk) => writable.write(chunk),
      close: async () => {
        if (!partial) return; // closed on commit: until then the bytes stay in the swap file
        entry.writable = null;
        await writable.close();
      },
    };
  }

  async commit(): Promise<void> {
    for (const f of this.started) {
      if (f.partial) {
        await this.dir.removeEntry(f.name).catch(ignoreNotFound); // an older export of the same name
        await f.handle.move!(f.name);
      } else {
        const w = f.writable!;
        f.writable = null;
        await w.close();
      }
      f.committed = true;
    }
  }

  async discard(): Promise<string[]> {
    const left: string[] = [];
    for (const f of this.started) {
      await f.writable?.abort().catch(() => undefined); // an unclosed writable's bytes never reach the file
      f.writable = null;
      if (!f.partial && f.existed && !f.committed) continue; // the older file is as it was
      const entry = f.partial && !f.committed ? f.name + PARTIAL : f.name;
      try {
        await this.dir.removeEntry(entry).catch(ignoreNotFound);
      } catch {
        left.push(entry);
      }
    }
    this.started.length = 0;
    if (left.length === 0) await this.afterDiscard?.().catch(() => undefined);
    return left;
  }
}

/** The one file a person picked (showSaveFilePicker). Its writable is closed on commit, so the
 * picked file gets its bytes only then; discard aborts it and removes the (empty) picked file. */
export class FileHandleSink implements ExportSink {
  private writable: Writable | null = null;
  private used = false;

  constructor(
    private readonly handle: FileHandleLike,
    readonly where: string,
    readonly fullAdvice?: string,
  ) {}

  async create(name: string): Promise<SinkFile> {
    if (this.used) throw new Error(`a single picked file cannot hold a second file (${name})`);
    this.used = true;
    const writable = await this.handle.createWritable({ keepExistingData: false });
    this.writable = writable;
    return { write: (chunk) => writable.write(chunk), close: async () => undefined };
  }

  async commit(): Promise<void> {
    const w = this.writable;
    this.writable = null;
    await w?.close();
  }

  async discard(): Promise<string[]> {
    if (!this.used) return [];
    await this.writable?.abort().catch(() => undefined);
    this.writable = null;
    try {
      if (this.handle.remove) await this.handle.remove();
      return [];
    } catch {
      return [this.handle.name]; // left empty: the browser did not let it be removed
    }
  }
}

export const EXPORTS_FOLDER = 'webtune-exports';

export const BROWSER_STORAGE_FULL =
  "Free some of the browser's storage (the Model tab can clear cached models), or save to a folder you pick instead (Chrome and Edge), then export again.";

/**
 * A fresh OPFS folder webtune-exports/<id> for one export, after removing earlier exports' folders
 * (the browser keeps their files until then, so a download started from them can finish).
 */
export async function browserStorageSink(id: string): Promise<DirectoryHandleSink> {
  const storage = (globalThis as { navigator?: { storage?: { getDirectory?: () => Promise<unknown> } } }).navigator?.storage;
  if (!storage?.getDirectory) throw new Error('this browser has no Origin Private File System to stage the download in');
  const root = (await storage.getDirectory()) as DirectoryHandleLike;
  const exports = await root.getDirectoryHandle(EXPORTS_FOLDER, { create: true });
  for await (const old of exports.keys?.() ?? []) {
    if (old !== id) await exports.removeEntry(old, { recursive: true }).catch(() => undefined); // in use: next time
  }
  return new DirectoryHandleSink(await exports.getDirectoryHandle(id, { create: true }), "the browser's storage", BROWSER_STORAGE_FULL);
}

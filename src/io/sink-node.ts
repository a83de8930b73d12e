// An export written into a folder on disk (the headless runner, tests, the bench): each file as
// `name.partial` until commit() renames it over `name`; discard() deletes this export's files.
// Node only (node:fs).

import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { checkFileName, type ExportSink, type SinkFile } from './sink.ts';

export const PARTIAL_SUFFIX = '.partial';

export class NodeDirectorySink implements ExportSink {
  readonly where: string;
  private readonly started: { name: string; handle: FileHandle | null; committed: boolean }[] = [];

  constructor(readonly dir: string) {
    this.where = dir;
  }

  async create(name: string): Promise<SinkFile> {
    checkFileName(name);
    await mkdir(this.dir, { recursive: true });
    const entry = { name, handle: null as FileHandle | null, committed: false };
    this.started.push(entry);
    const handle = await open(join(this.dir, name + PARTIAL_SUFFIX), 'w');
    entry.handle = handle;
    return {
      async write(chunk) {
        let off = 0;
        while (off < chunk.length) {
          const { bytesWritten } = await handle.write(chunk, off, chunk.length - off);
          off += bytesWritten;
        }
      },
      async close() {
        entry.handle = null;
        await handle.close();
      },
    };
  }

  async commit(): Promise<void> {
    for (const f of this.started) {
      if (f.handle) throw new Error(`${f.name} is still open`);
      await rename(join(this.dir, f.name + PARTIAL_SUFFIX), join(this.dir, f.name));
      f.committed = true;
    }
  }

  async discard(): Promise<string[]> {
    const left: string[] = [];
    for (const f of this.started) {
      await f.handle?.close().catch(() => undefined);
      f.handle = null;
      const path = join(this.dir, f.committed ? f.name : f.name + PARTIAL_SUFFIX);
      try {
        await rm(path, { force: true });
      } catch {
        left.push(path);
      }
    }
    this.started.length = 0;
    return left;
  }
}

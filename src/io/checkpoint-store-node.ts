// Checkpoints in a directory (Node: tests and the headless runner; never imported by browser code).
// A write goes to `<name>.tmp`, is flushed to disk (fsync), and is renamed over `<name>`: rename
// within one directory is atomic on POSIX file systems, so a reader sees the old file or the whole
// new one, even when the process dies in the middle of writing.
import { mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckpointStore } from './checkpoint-store.ts';

/** FileHandle.write may write less than asked (very large buffers): loop until all is written. */
async function writeAll(f: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let o = 0; o < bytes.length; ) o += (await f.write(bytes, o, bytes.length - o)).bytesWritten;
}

export class DirectoryCheckpointStore implements CheckpointStore {
  readonly kind = 'directory';
  constructor(readonly dir: string) {}

  async write(name: string, data: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `${name}.tmp`);
    const f = await open(tmp, 'w');
    try {
      if (data instanceof Uint8Array) await writeAll(f, data);
      else for await (const chunk of data) await writeAll(f, chunk);
      await f.sync();
    } catch (e) {
      await f.close();
      await rm(tmp, { force: true });
      throw e;
    }
    await f.close();
    await rename(tmp, join(this.dir, name));
  }

  async read(name: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await readFile(join(this.dir, name)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async list(): Promise<string[]> {
    try {
      return await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  async remove(name: string): Promise<void> {
    await rm(join(this.dir, name), { force: true });
  }
}

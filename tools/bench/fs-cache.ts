// A CacheStore on the local filesystem (Node), for the load benchmark: the same ModelCache logic
// the browser runs over OPFS, with records as JSON files and each cached file's bytes in a file.
// flush() does not fsync: a benchmark reads back what it wrote, from the OS page cache or disk.
import { mkdirSync } from 'node:fs';
import { open, readdir, readFile, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheStore, StorageUsage, StoredFile } from '../../src/io/cache.ts';

class FsStoredFile implements StoredFile {
  constructor(
    private readonly fh: FileHandle,
    public length: number,
  ) {}

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset + length > this.length) throw new RangeError(`fs cache: read past the stored ${this.length} bytes`);
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const { bytesRead } = await this.fh.read(out, done, length - done, offset + done);
      if (bytesRead === 0) throw new Error(`fs cache: file ended at ${offset + done}`);
      done += bytesRead;
    }
    return out;
  }

  async append(bytes: Uint8Array): Promise<void> {
    for (let done = 0; done < bytes.length; ) {
      const { bytesWritten } = await this.fh.write(bytes, done, bytes.length - done, this.length + done);
      done += bytesWritten;
    }
    this.length += bytes.length;
  }

  async truncate(length: number): Promise<void> {
    await this.fh.truncate(length);
    this.length = Math.min(this.length, length);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    await this.fh.close();
  }
}

export class FsCacheStore implements CacheStore {
  readonly kind = 'opfs' as const; // the role it plays: a persistent file store

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  async readRecord(id: string): Promise<unknown> {
    try {
      return JSON.parse(await readFile(join(this.dir, `${id}.json`), 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async writeRecord(id: string, value: unknown): Promise<void> {
    await writeFile(join(this.dir, `${id}.json`), JSON.stringify(value));
  }

  async recordIds(): Promise<string[]> {
    return (await readdir(this.dir)).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
  }

  async openFile(id: string, create: boolean): Promise<StoredFile | null> {
    const path = join(this.dir, `${id}.bin`);
    let fh: FileHandle;
    try {
      fh = await open(path, create ? 'a+' : 'r');
    } catch (e) {
      if (!create && (e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    // 'a+' appends whatever position is given on Linux; reopen read-write once the file exists.
    if (create) {
      await fh.close();
      fh = await open(path, 'r+');
    }
    return new FsStoredFile(fh, (await fh.stat()).size);
  }

  async remove(id: string): Promise<void> {
    await rm(join(this.dir, `${id}.json`), { force: true });
    await rm(join(this.dir, `${id}.bin`), { force: true });
  }

  async estimate(): Promise<StorageUsage | null> {
    return null;
  }
}

// The prepared-dataset store (src/data/kv.ts KeyValueStore) as files in a folder: one file per key,
// values in V8's serialization (structured clone, typed arrays included, as IndexedDB stores them).
// setMany writes every entry under a temporary name first and renames them in the given order;
// PreparedStore.commit puts the manifest last, so a crash between renames leaves shards that no
// manifest counts yet, which the next preparation simply writes again.
import { mkdirSync } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import type { KeyValueStore } from '../../src/data/kv.ts';

const SUFFIX = '.v8';

export class FileKv implements KeyValueStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  private path(key: string): string {
    return join(this.dir, encodeURIComponent(key) + SUFFIX);
  }

  async get<T>(key: string): Promise<T | undefined> {
    try {
      return deserialize(await readFile(this.path(key))) as T;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  getMany<T>(keys: readonly string[]): Promise<(T | undefined)[]> {
    return Promise.all(keys.map((k) => this.get<T>(k)));
  }

  async setMany(entries: readonly [string, unknown][]): Promise<void> {
    const tmp = entries.map(([k]) => `${this.path(k)}.${process.pid}.tmp`);
    try {
      for (const [i, [, v]] of entries.entries()) await writeFile(tmp[i], serialize(v));
    } catch (e) {
      await Promise.all(tmp.map((t) => rm(t, { force: true })));
      throw e;
    }
    for (const [i, [k]] of entries.entries()) await rename(tmp[i], this.path(k));
  }

  async delMany(keys: readonly string[]): Promise<void> {
    for (const k of keys) await rm(this.path(k), { force: true });
  }

  async keys(): Promise<string[]> {
    return (await readdir(this.dir)).filter((f) => f.endsWith(SUFFIX)).map((f) => decodeURIComponent(f.slice(0, -SUFFIX.length)));
  }
}

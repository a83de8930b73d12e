// The key-value store prepared datasets live in: IndexedDB in the data worker (idb-kv.ts), a Map
// in Node tests. Values are structured-cloned, typed arrays included.

export interface KeyValueStore {
  get<T>(key: string): Promise<T | undefined>;
  getMany<T>(keys: readonly string[]): Promise<(T | undefined)[]>;
  /** All entries in one transaction: either every one is stored or none is. */
  setMany(entries: readonly [string, unknown][]): Promise<void>;
  delMany(keys: readonly string[]): Promise<void>;
  keys(): Promise<string[]>;
}

/** In-memory store with IndexedDB's copy semantics (tests, Node). */
export class MemoryKv implements KeyValueStore {
  readonly map = new Map<string, unknown>();
  /** Test hook: throw this from the next setMany (e.g. a QuotaExceededError). */
  failNextWrite: Error | null = null;

  async get<T>(key: string): Promise<T | undefined> {
    return this.map.has(key) ? (structuredClone(this.map.get(key)) as T) : undefined;
  }

  async getMany<T>(keys: readonly string[]): Promise<(T | undefined)[]> {
    return Promise.all(keys.map((k) => this.get<T>(k)));
  }

  async setMany(entries: readonly [string, unknown][]): Promise<void> {
    if (this.failNextWrite) {
      const e = this.failNextWrite;
      this.failNextWrite = null;
      throw e;
    }
    const copies = entries.map(([k, v]) => [k, structuredClone(v)] as const);
    for (const [k, v] of copies) this.map.set(k, v);
  }

  async delMany(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.map.delete(k);
  }

  async keys(): Promise<string[]> {
    return [...this.map.keys()];
  }
}

// KeyValueStore on IndexedDB through idb-keyval (data worker only: Node has no IndexedDB).
import { createStore, delMany, get, getMany, keys, setMany } from 'idb-keyval';
import type { KeyValueStore } from './kv.ts';

export function idbKeyValueStore(database = 'webtune-datasets', store = 'kv'): KeyValueStore {
  const s = createStore(database, store);
  return {
    get: <T>(key: string) => get<T>(key, s),
    getMany: <T>(ks: readonly string[]) => getMany<T>([...ks], s),
    setMany: (entries) => setMany([...entries], s),
    delMany: (ks) => delMany([...ks], s),
    keys: async () => (await keys(s)).map(String),
  };
}

// Picks the browser's cache storage: OPFS, else the Cache API, else memory (nothing persists, but
// loading still works).
import { MemoryCacheStore, ModelCache } from './cache.ts';
import { openOpfsStore } from './cache-opfs.ts';
import { openCacheApiStore } from './cache-web.ts';

export async function openBrowserCache(): Promise<ModelCache> {
  const store = (await openOpfsStore()) ?? (await openCacheApiStore()) ?? new MemoryCacheStore();
  return new ModelCache(store);
}

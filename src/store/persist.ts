// What the UI keeps between visits, in IndexedDB through idb-keyval (a database of the page's own,
// apart from the data worker's): settings of each tab, and the charts of the last training run.
// Reads and writes are asynchronous and never throw: storage that is refused (private mode, a full
// disk) only means the values last for this page.
import { createStore, del, delMany, get, keys, set, type UseStore } from 'idb-keyval';

let db: UseStore | null = null;
/** Opened on first use (idb-keyval opens lazily), so importing this costs nothing. */
const store = (): UseStore => (db ??= createStore('webtune-ui', 'kv'));

/** The stored value, or undefined (none, or unreadable). Moves a value found under `legacyKey`
 *  in localStorage (where earlier versions kept settings) into IndexedDB. */
export async function loadPersisted<T>(key: string, legacyKey?: string): Promise<T | undefined> {
  try {
    const v = await get<T>(key, store());
    if (v !== undefined) return v;
  } catch {
    return readLegacy<T>(legacyKey);
  }
  const legacy = readLegacy<T>(legacyKey);
  if (legacy !== undefined && (await savePersisted(key, legacy)) && legacyKey) {
    try {
      localStorage.removeItem(legacyKey);
    } catch {
      // nothing to clean up then
    }
  }
  return legacy;
}

function readLegacy<T>(legacyKey: string | undefined): T | undefined {
  if (!legacyKey) return undefined;
  try {
    const raw = localStorage.getItem(legacyKey);
    return raw ? (JSON.parse(raw) as T) : undefined;
  } catch {
    return undefined;
  }
}

/** true when written. */
export async function savePersisted(key: string, value: unknown): Promise<boolean> {
  try {
    await set(key, value, store());
    return true;
  } catch {
    return false;
  }
}

export async function deletePersisted(key: string): Promise<void> {
  try {
    await del(key, store());
  } catch {
    // gone or unreachable: nothing more to do
  }
}

/** Deletes every key that starts with `prefix`, except `keep`. */
export async function deletePersistedPrefix(prefix: string, keep?: string): Promise<void> {
  try {
    const all = await keys(store());
    await delMany(
      all.filter((k) => typeof k === 'string' && k.startsWith(prefix) && k !== keep),
      store(),
    );
  } catch {
    // best effort: an old run's charts take little room
  }
}

/**
 * Saves the latest value of something a person edits, at most every `ms` (typing in a field
 * must not write on every key), and once more when the page is hidden.
 */
export function debouncedSaver<T>(key: string, ms = 300): (value: T) => void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let latest: T;
  const flush = (): void => {
    if (timer === null) return;
    clearTimeout(timer);
    timer = null;
    void savePersisted(key, latest);
  };
  if (typeof document !== 'undefined') document.addEventListener('visibilitychange', () => document.visibilityState === 'hidden' && flush());
  return (value) => {
    latest = value;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      void savePersisted(key, latest);
    }, ms);
  };
}

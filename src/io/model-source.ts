// Where a model's files come from: a Hub repo (pinned to the commit its revision names, through the
// browser cache) or a folder served with the app (the demo). Both give the loader the same
// ModelFiles, so loading code never asks which one it has.
import { MemoryCacheStore, ModelCache, readAllCached, type CachedFetch, type CacheFetchOptions, type RemoteBytes } from './cache.ts';
import { HubClient, HubError, type HubClientOptions, type RepoRef } from './hub.ts';

export type ModelSourceSpec =
  /** Files under a URL (the offline demo, served with the app); sizes from its manifest. */
  | { kind: 'demo'; id: string; name: string; baseUrl: string; files: { path: string; size: number }[] }
  /** A Hub model repo; `endpoint` defaults to huggingface.co, `revision` to main. */
  | { kind: 'hub'; id: string; revision?: string; token?: string; endpoint?: string };

export interface ModelFiles {
  readonly id: string;
  readonly name: string;
  /** The commit sha the files come from; null for the demo. */
  readonly revision: string | null;
  /** Every file of the repo with its size. */
  readonly files: ReadonlyMap<string, number>;
  /** The Hub was unreachable and a cached listing of this revision is used. */
  readonly offline: boolean;
  has(path: string): boolean;
  /** The file through the cache; its source's reads wait for bytes still downloading. */
  fetch(path: string, opts?: CacheFetchOptions): Promise<CachedFetch>;
  /** A whole (small) file. */
  bytes(path: string, signal?: AbortSignal): Promise<Uint8Array>;
  /** Bytes of the file already complete in the cache. */
  storedBytes(path: string): Promise<number>;
  /** Throws a StorageQuotaError when the browser has less room than `bytes`. */
  checkSpace(bytes: number): Promise<void>;
}

export interface ModelSourceDeps {
  /** The persistent cache for Hub files (the demo uses a throwaway one in memory). */
  cache: ModelCache;
  /** For the demo's files (default: the global fetch). */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
  /** Extra HubClient options (fetch, retryDelayMs). */
  hub?: Omit<HubClientOptions, 'endpoint' | 'token'>;
}

interface Listed {
  path: string;
  size: number;
  etag: string | null;
}

export function openModelFiles(source: ModelSourceSpec, deps: ModelSourceDeps): Promise<ModelFiles> {
  return source.kind === 'hub' ? openHub(source, deps) : Promise.resolve(openDemo(source, deps));
}

async function openHub(src: Extract<ModelSourceSpec, { kind: 'hub' }>, deps: ModelSourceDeps): Promise<ModelFiles> {
  const id = src.id.trim();
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(id)) {
    throw new HubError('repo-not-found', `"${src.id}" is not a model id: write it as owner/name, e.g. unsloth/Llama-3.2-1B-Instruct.`, 0, '');
  }
  const client = new HubClient({ ...deps.hub, endpoint: src.endpoint, token: src.token });
  const repo: RepoRef = { type: 'model', id };
  const revision = src.revision?.trim() || 'main';
  let sha: string;
  let listed: Listed[];
  let offline = false;
  try {
    const info = await client.modelInfo(id, revision, { blobs: true });
    sha = info.sha;
    // The Hub's content id is what it sends as the file's ETag (LFS sha256, else the git blob id).
    listed = info.siblings.map((s) => ({ path: s.rfilename, size: s.size ?? s.lfs?.size ?? -1, etag: s.lfs?.sha256 ?? s.blobId ?? null }));
    await deps.cache.putRef({ repo: id, revision, sha, files: listed }).catch(() => undefined);
  } catch (e) {
    const ref = e instanceof HubError && e.kind === 'offline' ? await deps.cache.getRef(id, revision) : null;
    if (!ref) throw e;
    ({ sha, files: listed } = ref);
    offline = true;
  }
  const byPath = new Map(listed.map((f) => [f.path, f]));
  const need = (path: string): Listed => {
    const f = byPath.get(path);
    if (!f) throw new HubError('file-not-found', `${path} is not in ${id} (revision ${revision}): check the file name.`, 404, client.fileUrl(repo, path, sha));
    return f;
  };
  const fetch = async (path: string, opts: CacheFetchOptions = {}): Promise<CachedFetch> => {
    const f = need(path);
    const size = f.size >= 0 ? f.size : (await client.headFile(repo, path, sha, opts.signal)).size;
    const remote: RemoteBytes = {
      size,
      etag: f.etag,
      stream: (start, signal) => client.download(repo, path, { revision: sha, start, signal }),
    };
    return deps.cache.fetch({ repo: id, revision: sha, path }, remote, opts);
  };
  return {
    id,
    name: id,
    revision: sha,
    files: new Map(listed.map((f) => [f.path, f.size])),
    offline,
    has: (path) => byPath.has(path),
    fetch,
    bytes: async (path, signal) => readAllCached(await fetch(path, { signal })),
    storedBytes: (path) => deps.cache.storedBytes({ repo: id, revision: sha, path }),
    checkSpace: (bytes) => deps.cache.checkSpace(bytes),
  };
}

function openDemo(src: Extract<ModelSourceSpec, { kind: 'demo' }>, deps: ModelSourceDeps): ModelFiles {
  const base = src.baseUrl.endsWith('/') ? src.baseUrl : `${src.baseUrl}/`;
  const fetchFn = deps.fetch ?? ((input: string, init?: RequestInit) => fetch(input, init));
  const cache = new ModelCache(new MemoryCacheStore()); // the files come with the app: nothing to keep
  const sizes = new Map(src.files.map((f) => [f.path, f.size]));
  const fetchFile = (path: string, opts: CacheFetchOptions = {}): Promise<CachedFetch> => {
    const size = sizes.get(path);
    if (size === undefined) return Promise.reject(new Error(`The demo model has no ${path} (not in its manifest).`));
    const remote: RemoteBytes = { size, etag: null, stream: (start, signal) => urlStream(fetchFn, base + path, start, signal) };
    return cache.fetch({ repo: src.id, revision: 'local', path }, remote, opts);
  };
  return {
    id: src.id,
    name: src.name,
    revision: null,
    files: sizes,
    offline: false,
    has: (path) => sizes.has(path),
    fetch: fetchFile,
    bytes: async (path, signal) => readAllCached(await fetchFile(path, { signal })),
    storedBytes: async () => 0,
    checkSpace: async () => undefined,
  };
}

/** A URL's body from byte `start` as a stream that starts the request on first read. */
function urlStream(
  fetchFn: (input: string, init?: RequestInit) => Promise<Response>,
  url: string,
  start: number,
  signal?: AbortSignal,
): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (!reader) {
          let res: Response;
          try {
            res = await fetchFn(url, { headers: start > 0 ? { Range: `bytes=${start}-` } : {}, signal });
          } catch (e) {
            if (signal?.aborted) throw e;
            throw new Error(`Cannot read ${url}: ${(e as Error).message}. Reload the page and try again.`);
          }
          if (!res.ok || !res.body) throw new Error(`Cannot read ${url}: the server answered ${res.status} ${res.statusText}.`);
          if (start > 0 && res.status !== 206) throw new Error(`Cannot resume ${url}: the server ignored the Range header.`);
          reader = res.body.getReader();
        }
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        controller.error(e);
      }
    },
    async cancel(reason) {
      await reader?.cancel(reason);
    },
  });
}

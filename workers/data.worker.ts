// Data worker: owns IndexedDB, files and dataset streams, and the tokenize/pack pipeline.
// Thin: it wires src/data and src/io to the comlink API declared in src/client/api.ts.
import { createStore, del, get, set } from 'idb-keyval';
import type { DataApi, DatasetSource, DemoManifest, HubEndpoints, PrepareOrigin, PrepareRequest } from '../src/client/api.ts';
import { idleProgress, inspectSource, openFileSource, openHubSource, prepareDataset, PreparedStore, previewSource, stableStringify } from '../src/data/index.ts';
import type { LoadedTokenizer, PreparedManifest, PrepareProgress, RecordSource, TokenizerSource } from '../src/data/index.ts';
import { idbKeyValueStore } from '../src/data/idb-kv.ts';
import { inlineExecutor } from '../src/data/tokenize-batch.ts';
import type { TokenizeExecutor } from '../src/data/tokenize-batch.ts';
import { startTokenizePool } from '../src/data/tokenize-pool.ts';
import type { PoolReply, SpawnTokenizeWorker, TokenizeSetup } from '../src/data/tokenize-pool.ts';
import { loadTokenizer } from '../src/data/tokenizer-load.ts';
import { serveRowSource } from '../src/engine/train/port-source.ts';
import type { BatchPort } from '../src/engine/train/port-source.ts';
import { shardRowSource } from '../src/engine/train/shard-source.ts';
import { HubClient } from '../src/io/hub.ts';
import { preparedBundleData } from '../src/io/run-bundle-prepared.ts';
import { crash, exposeApi } from './expose.ts';

// A database of its own: idb-keyval creates one object store per database.
const probeStore = createStore('webtune-probe', 'probe');
const prepared = new PreparedStore(idbKeyValueStore('webtune-datasets', 'kv'));
const jobs = new Map<string, AbortController>();
const tokenizers = new Map<string, Promise<LoadedTokenizer>>();

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function checkManifest(value: unknown, url: string): DemoManifest {
  const bad = (what: string) => new Error(`The demo manifest at ${url} is malformed: ${what}.`);
  if (typeof value !== 'object' || value === null) throw bad('not a JSON object');
  const m = value as Partial<DemoManifest>;
  const model = m.model;
  if (!model || typeof model.id !== 'string' || typeof model.name !== 'string' || typeof model.path !== 'string') {
    throw bad('"model" needs id, name and path');
  }
  if (!Array.isArray(model.files)) throw bad('"model.files" is not a list');
  if (typeof model.params !== 'number') throw bad('"model.params" is not a number');
  if (!Array.isArray(m.datasets)) throw bad('"datasets" is not a list');
  for (const d of m.datasets) {
    if (typeof d?.id !== 'string' || typeof d.name !== 'string' || typeof d.path !== 'string') {
      throw bad('each dataset needs id, name and path');
    }
    if (typeof d.rows !== 'number' || typeof d.bytes !== 'number') throw bad(`dataset "${d.id}" needs rows and bytes`);
  }
  return m as DemoManifest;
}

async function openSource(source: DatasetSource, signal?: AbortSignal): Promise<RecordSource> {
  switch (source.kind) {
    case 'file':
      return openFileSource(source.file);
    case 'demo': {
      const res = await fetch(source.url, { signal });
      if (!res.ok) throw new Error(`The demo dataset is missing: ${source.url} answered HTTP ${res.status}.`);
      const blob = await res.blob();
      const name = source.url.split('/').pop() ?? source.id;
      return openFileSource(new File([blob], name), { kind: 'demo', label: source.name, identity: `demo:${source.id}:${blob.size}` });
    }
    case 'hub': {
      return openHubSource(hubClient(source.hub), source, { signal });
    }
  }
}

function hubClient(hub: HubEndpoints): HubClient {
  return new HubClient({ endpoint: hub.endpoint, datasetsServer: hub.datasetsServer, token: hub.token });
}

function tokenizer(source: TokenizerSource): Promise<LoadedTokenizer> {
  const key = stableStringify(source);
  let t = tokenizers.get(key);
  if (!t) {
    t = loadTokenizer(source);
    t.catch(() => tokenizers.delete(key)); // a failed load is tried again next time
    tokenizers.set(key, t);
    // A Llama 3 tokenizer holds ~100 MB: keep the two most recent.
    for (const old of tokenizers.keys()) if (tokenizers.size > 2) tokenizers.delete(old);
  }
  return t;
}

/** Sources this big are tokenized by workers unless the request says otherwise: below, starting
 *  them (each builds its own tokenizer, about a second) would cost more than it saves. */
const POOL_MIN_BYTES = 8 << 20;
const POOL_MIN_RECORDS = 20_000;

/** As many tokenize workers as cores (this worker mostly waits on them), at most four: each
 *  builds and holds its own copy of the tokenizer (Llama 3's: about 85 MB of JS heap). */
function poolSize(): number {
  return Math.max(1, Math.min(4, navigator.hardwareConcurrency || 2));
}

const spawnTokenizeWorker: SpawnTokenizeWorker = (onReply, onError) => {
  const w = new Worker(new URL('./tokenize.worker.ts', import.meta.url), { type: 'module', name: 'tokenize' });
  w.addEventListener('message', (e: MessageEvent<PoolReply>) => onReply(e.data));
  w.addEventListener('error', (e) => {
    e.preventDefault();
    onError(new Error(e.message || 'the tokenize worker script could not be loaded'));
  });
  w.addEventListener('messageerror', () => onError(new Error('a message from a tokenize worker could not be read')));
  return { post: (request) => w.postMessage(request), terminate: () => w.terminate() };
};

/** How this preparation tokenizes: workers as asked, or by size; in this worker otherwise. */
function tokenizeWith(src: RecordSource, tok: LoadedTokenizer, asked: number | undefined) {
  const big = (src.info.totalBytes ?? 0) >= POOL_MIN_BYTES || (src.info.totalRecords ?? 0) >= POOL_MIN_RECORDS;
  const size = asked ?? (big ? poolSize() : 0);
  if (size === 0) return undefined;
  return async (setup: TokenizeSetup): Promise<TokenizeExecutor> => {
    try {
      return await startTokenizePool(spawnTokenizeWorker, size, setup);
    } catch (e) {
      if (asked !== undefined) throw e;
      // Chosen by size only: tokenizing here is slower, not wrong.
      console.warn(`webtune: tokenizing in the data worker itself: ${(e as Error).message}`);
      return inlineExecutor({ tokenizer: tok.tokenizer, info: tok.info, template: setup.template }, setup.options);
    }
  };
}

async function runPrepare(jobId: string, source: DatasetSource, request: PrepareRequest, onProgress: (p: PrepareProgress) => void): Promise<PreparedManifest> {
  if (jobs.has(jobId)) throw new Error(`A preparation with id ${jobId} is already running.`);
  const ctrl = new AbortController();
  jobs.set(jobId, ctrl);
  // The page may be gone or busy: progress is best effort (a report after a stored shard is
  // awaited, so a cancel sent from it is seen before the next shard).
  const report = (p: PrepareProgress): Promise<void> => Promise.resolve(onProgress(p)).then(
    () => undefined,
    () => undefined,
  );
  const origin = originOf(source, request);
  try {
    void report(idleProgress('loading tokenizer'));
    const [src, tok] = await Promise.all([openSource(source, ctrl.signal), tokenizer(request.tokenizer)]);
    return await prepareDataset(src, optionsOf(request), {
      store: prepared,
      tokenizer: tok,
      signal: ctrl.signal,
      onProgress: report,
      origin,
      tokenizeWith: tokenizeWith(src, tok, request.tokenizeWorkers),
    });
  } finally {
    jobs.delete(jobId);
  }
}

/** What is stored with the manifest to continue later: never a Hub token, never a file's bytes. */
function originOf(source: DatasetSource, request: PrepareRequest): PrepareOrigin {
  const { token: _t, ...tokenizerSource } = request.tokenizer as TokenizerSource & { token?: string };
  const stored: PrepareOrigin['source'] =
    source.kind === 'file'
      ? { kind: 'file', name: source.file.name, size: source.file.size, lastModified: source.file.lastModified }
      : source.kind === 'hub'
        ? { ...source, hub: { endpoint: source.hub.endpoint, datasetsServer: source.hub.datasetsServer } }
        : source;
  return { source: stored, request: { ...request, tokenizer: tokenizerSource as TokenizerSource } };
}

function optionsOf(request: PrepareRequest) {
  const { tokenizer: _tokenizer, tokenizeWorkers: _workers, ...options } = request;
  return options;
}

const api: DataApi = {
  async storeProbe() {
    const key = 'probe';
    const wrote = `${new Date().toISOString()} ${randomToken()}`;
    await set(key, wrote, probeStore);
    const readBack = (await get<string>(key, probeStore)) ?? '';
    await del(key, probeStore);
    return { wrote, readBack, ok: readBack === wrote };
  },

  async demoManifest(baseUrl) {
    const url = new URL('demo/manifest.json', baseUrl).href;
    let res: Response;
    try {
      res = await fetch(url, { cache: 'no-cache' });
    } catch (e) {
      throw new Error(`Could not fetch the demo manifest (${url}): ${(e as Error).message}`);
    }
    if (!res.ok) {
      throw new Error(`The demo files are missing: ${url} answered HTTP ${res.status}.`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // A single-page-app server answers unknown paths with index.html.
      throw new Error(`The demo files are missing: ${url} is not JSON (the server sent something else).`);
    }
    return checkManifest(json, url);
  },

  crash: (mode) => crash('data', mode),

  async inspect(source, mapping) {
    return inspectSource(await openSource(source), { mapping });
  },

  async preview(source, request, n = 3) {
    const [src, tok] = await Promise.all([openSource(source), tokenizer(request.tokenizer)]);
    return previewSource(src, optionsOf(request), tok, n);
  },

  prepare: (jobId, source, request, onProgress) => runPrepare(jobId, source, request, onProgress),

  async resumePrepared(jobId, fingerprint, onProgress) {
    const m = await prepared.manifest(fingerprint);
    if (!m) throw new Error(`No prepared dataset ${fingerprint} in this browser.`);
    const origin = m.origin as PrepareOrigin | undefined;
    if (!origin) throw new Error(`${m.name} cannot be continued: prepare it again from its source.`);
    if (origin.source.kind === 'file') throw new Error(`Choose ${origin.source.name} again and press Prepare with the same options: it continues from the stored shards.`);
    return runPrepare(jobId, origin.source, origin.request, onProgress);
  },

  async cancel(jobId) {
    const ctrl = jobs.get(jobId);
    ctrl?.abort(new DOMException('Cancelled: the stored shards are kept; prepare again to continue.', 'AbortError'));
    return ctrl !== undefined;
  },

  listPrepared: () => prepared.list(),
  openPrepared: async (fp) => (await prepared.manifest(fp)) ?? null,
  readShard: (fp, index, split) => prepared.readShard(fp, index, split),

  async serveBatches(fingerprint, split, port) {
    const source = shardRowSource(prepared, fingerprint, split);
    serveRowSource(port as BatchPort, source);
    const { rows, seqLength } = await source;
    return { rows, seqLength };
  },
  deletePrepared: (fp) => prepared.delete(fp),

  hubSplits(hub, dataset) {
    return hubClient(hub).datasetSplits(dataset.trim());
  },

  async bundleRecords(fingerprint, { file, token, firstRows }) {
    const m = await prepared.manifest(fingerprint);
    if (!m || m.status !== 'complete') throw new Error('This dataset is not prepared in this browser (or not to the end): prepare it in the Data tab, then export the bundle.');
    const origin = m.origin as PrepareOrigin | undefined;
    if (!origin) throw new Error(`${m.name} does not say where its records came from: prepare it again from its source, then export the bundle.`);
    const from = origin.source;
    let source: DatasetSource;
    if (from.kind === 'file') {
      // Only the file's identity is stored: its records need the very file, chosen again.
      if (!file || file.name !== from.name || file.size !== from.size) throw new Error(`The bundle needs the records of ${from.name}: choose that file again in the Data tab, then export the bundle.`);
      source = { kind: 'file', file };
    } else source = from.kind === 'hub' ? { ...from, hub: { ...from.hub, token: token ?? undefined } } : from;
    const tokenSource = { ...origin.request.tokenizer, ...(token ? { token } : {}) } as TokenizerSource;
    const [src, tok] = await Promise.all([openSource(source), tokenizer(tokenSource)]);
    const made = await preparedBundleData({ manifest: m, readShard: (i, split) => prepared.readShard(fingerprint, i, split), source: src, tokenizer: tok, firstRows });
    return { ...made, tokenizer: { info: tok.info, files: tok.files } };
  },

  async tokenizerFacts(source) {
    const t = await tokenizer(source);
    return { id: t.id, bosToken: t.info.bosToken, eosToken: t.info.eosToken, hasChatTemplate: t.info.chatTemplate !== null };
  },
};

exposeApi(api);

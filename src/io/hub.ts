// Hugging Face Hub client: repo metadata, model search, file lists, resumable downloads, the
// dataset viewer.
// Only fetch, AbortSignal and ReadableStream: the same code runs in pages, workers and Node.
// The endpoints are settings, so tests and offline work point it at tools/mock-hub.

export type RepoType = 'model' | 'dataset';

/** A repo on the Hub, e.g. { type: 'model', id: 'meta-llama/Llama-3.1-8B' }. */
export interface RepoRef {
  type: RepoType;
  id: string;
}

export type HubErrorKind =
  | 'gated' // gated repo, no token
  | 'gated-no-access' // token has not been granted the licence
  | 'repo-not-found'
  | 'file-not-found'
  | 'rate-limited'
  | 'offline' // the host could not be reached, or the connection kept dropping
  | 'unauthorized' // the token was refused
  | 'bad-response' // an answer that is not what the Hub sends (not JSON, wrong shape)
  | 'http';

/** A failed Hub request, with a message that says what to do about it. */
export class HubError extends Error {
  override readonly name = 'HubError';
  constructor(
    readonly kind: HubErrorKind,
    message: string,
    /** HTTP status; 0 when no answer came. */
    readonly status: number,
    readonly url: string,
    /** The Hub's X-Error-Code, when it sent one. */
    readonly code?: string,
    /** For 'rate-limited': seconds to wait, when the server said. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export interface HubClientOptions {
  /** Default https://huggingface.co */
  endpoint?: string;
  /** Default https://datasets-server.huggingface.co */
  datasetsServer?: string;
  /** A user access token (hf_...), sent as `Authorization: Bearer`. */
  token?: string;
  /** Default: the global fetch. */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
  /** First retry delay of downloads in ms, doubling per retry up to 10 s (default 500). */
  retryDelayMs?: number;
}

export interface Sibling {
  rfilename: string;
  size?: number;
  blobId?: string;
  lfs?: { sha256: string; size: number; pointerSize: number };
}

interface RepoInfoCommon {
  _id: string;
  id: string;
  author?: string;
  sha: string;
  private: boolean;
  gated: false | 'auto' | 'manual';
  disabled?: boolean;
  downloads?: number;
  likes?: number;
  tags: string[];
  lastModified?: string;
  createdAt?: string;
  cardData?: Record<string, unknown>;
  siblings: Sibling[];
}

export interface ModelInfo extends RepoInfoCommon {
  pipeline_tag?: string;
  library_name?: string;
  config?: {
    architectures?: string[];
    model_type?: string;
    quantization_config?: Record<string, unknown>;
    tokenizer_config?: Record<string, unknown>;
    [key: string]: unknown;
  };
  safetensors?: { parameters: Record<string, number>; total: number };
}

export type DatasetInfo = RepoInfoCommon;

export interface TreeEntry {
  type: 'file' | 'directory';
  path: string;
  size: number;
  oid: string;
  lfs?: { oid: string; size: number; pointerSize: number };
}

export interface FileHead {
  size: number;
  /** ETag without quotes or W/ (the sha256 for LFS files on huggingface.co); null if none. */
  etag: string | null;
  /** X-Repo-Commit; null when hidden (after a redirect to another host, in browsers). */
  commit: string | null;
}

export interface DownloadProgress {
  /** Bytes delivered so far (of the requested range). */
  loaded: number;
  /** Bytes in the requested range; null until the server says. */
  total: number | null;
  bytesPerSecond: number;
  etaSeconds: number | null;
}

export interface DownloadOptions {
  revision?: string;
  /** First byte (inclusive, default 0). */
  start?: number;
  /** End byte (exclusive, default end of file), as in Blob.slice. */
  end?: number;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Re-requests allowed in a row without progress before giving up (default 5). */
  retries?: number;
}

export interface DatasetSplit {
  dataset: string;
  config: string;
  split: string;
}

export interface DatasetFeature {
  feature_idx: number;
  name: string;
  type: Record<string, unknown>;
}

export interface DatasetRowsPage {
  features: DatasetFeature[];
  rows: { row_idx: number; row: Record<string, unknown>; truncated_cells: string[] }[];
  num_rows_total: number;
  num_rows_per_page: number;
  partial: boolean;
}

export interface ParquetFile {
  dataset: string;
  config: string;
  split: string;
  url: string;
  filename: string;
  size: number;
}

/** One model of the Hub's search (GET /api/models?search=), with the Hub's field names. */
export interface ModelSearchResult {
  id: string;
  downloads?: number;
  likes?: number;
  gated?: false | 'auto' | 'manual';
  private?: boolean;
  pipeline_tag?: string;
  lastModified?: string;
}

export interface ModelSearchOptions {
  /** Results wanted (default 20; the Hub allows up to 1000). */
  limit?: number;
  /** Most first; default: the Hub's own order. */
  sort?: 'downloads' | 'likes' | 'lastModified' | 'trendingScore';
  signal?: AbortSignal;
}

/** The fields a search asks for with expand= (without it the Hub leaves out gated). */
const SEARCH_FIELDS = ['downloads', 'likes', 'gated', 'private', 'pipeline_tag', 'lastModified'] as const;

/** What a request was about, so an error can name it. */
interface Subject {
  repo?: RepoRef;
  path?: string;
  revision?: string;
  viewer?: boolean;
  /** The text of a model search. */
  search?: string;
}

const DEFAULT_RETRIES = 5;
const MAX_RETRY_DELAY_MS = 10_000;
const PROGRESS_INTERVAL_MS = 100;

const trimSlash = (s: string): string => s.replace(/\/+$/, '');
const encodeSegments = (p: string): string => p.split('/').map(encodeURIComponent).join('/');
const hostOf = (url: string): string => {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
};
const normEtag = (e: string | null): string | null => (e ? e.replace(/^W\//, '').replace(/^"|"$/g, '') : null);

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');
}

function isAbort(e: unknown): boolean {
  return (e as { name?: string } | null)?.name === 'AbortError';
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Retry-After (seconds or HTTP date), else the `t=` of an IETF RateLimit header. */
function retryAfterSeconds(h: Headers): number | undefined {
  const ra = h.get('retry-after');
  if (ra) {
    if (/^\d+$/.test(ra.trim())) return Number(ra);
    const at = Date.parse(ra);
    if (!Number.isNaN(at)) return Math.max(0, Math.ceil((at - Date.now()) / 1000));
  }
  const t = h.get('ratelimit')?.match(/\bt=(\d+)/);
  return t ? Number(t[1]) : undefined;
}

function parseContentRange(v: string | null): { start: number; end: number; size: number | null } | null {
  const m = v?.match(/^bytes (\d+)-(\d+)\/(\d+|\*)$/);
  return m ? { start: Number(m[1]), end: Number(m[2]), size: m[3] === '*' ? null : Number(m[3]) } : null;
}

/** Bytes per second over the last few seconds. */
class RateMeter {
  private samples: { t: number; bytes: number }[] = [];
  rate(bytes: number): number {
    const now = Date.now();
    this.samples.push({ t: now, bytes });
    while (this.samples.length > 2 && now - this.samples[0].t > 3000) this.samples.shift();
    const first = this.samples[0];
    const dt = (now - first.t) / 1000;
    return dt > 0 ? (bytes - first.bytes) / dt : 0;
  }
}

export class HubClient {
  readonly endpoint: string;
  readonly datasetsServer: string;
  private readonly token?: string;
  private readonly fetchFn: (input: string, init?: RequestInit) => Promise<Response>;
  private readonly retryDelayMs: number;

  constructor(opts: HubClientOptions = {}) {
    this.endpoint = trimSlash(opts.endpoint ?? 'https://huggingface.co');
    this.datasetsServer = trimSlash(opts.datasetsServer ?? 'https://datasets-server.huggingface.co');
    this.token = opts.token || undefined;
    // A bare reference to window.fetch called as a method throws "Illegal invocation": wrap it.
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
    this.retryDelayMs = opts.retryDelayMs ?? 500;
  }

  /** Headers for any request to the Hub or the viewer (e.g. for hyparquet's asyncBufferFromUrl). */
  authHeaders(): Record<string, string> {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  /** The page of a repo on the Hub, e.g. https://huggingface.co/datasets/owner/name */
  repoPage(repo: RepoRef): string {
    return `${this.endpoint}/${repo.type === 'dataset' ? 'datasets/' : ''}${repo.id}`;
  }

  fileUrl(repo: RepoRef, path: string, revision = 'main'): string {
    return `${this.repoPage(repo)}/resolve/${encodeURIComponent(revision)}/${encodeSegments(path)}`;
  }

  // ---- metadata ----

  modelInfo(id: string, revision = 'main', opts: { blobs?: boolean } = {}): Promise<ModelInfo> {
    return this.repoInfo({ type: 'model', id }, revision, opts.blobs) as Promise<ModelInfo>;
  }

  datasetInfo(id: string, revision = 'main', opts: { blobs?: boolean } = {}): Promise<DatasetInfo> {
    return this.repoInfo({ type: 'dataset', id }, revision, opts.blobs);
  }

  private repoInfo(repo: RepoRef, revision: string, blobs?: boolean): Promise<RepoInfoCommon> {
    const url = `${this.apiBase(repo)}/revision/${encodeURIComponent(revision)}${blobs ? '?blobs=true' : ''}`;
    return this.getJson(url, { repo, revision });
  }

  /** Files (and folders) of a repo, following the Hub's pagination. */
  async listFiles(
    repo: RepoRef,
    revision = 'main',
    opts: { recursive?: boolean; path?: string; signal?: AbortSignal } = {},
  ): Promise<TreeEntry[]> {
    const dir = opts.path ? `/${encodeSegments(opts.path)}` : '';
    let url: string | null =
      `${this.apiBase(repo)}/tree/${encodeURIComponent(revision)}${dir}${opts.recursive ? '?recursive=true' : ''}`;
    const out: TreeEntry[] = [];
    while (url) {
      const res = await this.request(url, { repo, revision, path: opts.path }, { signal: opts.signal });
      out.push(...((await res.json()) as TreeEntry[]));
      url = res.headers.get('link')?.match(/<([^>]+)>;\s*rel="next"/)?.[1] ?? null;
    }
    return out;
  }

  /**
   * Size, ETag and commit of a file. A one-byte GET rather than HEAD: signed storage URLs that
   * LFS files redirect to are signed for GET only.
   */
  async headFile(repo: RepoRef, path: string, revision = 'main', signal?: AbortSignal): Promise<FileHead> {
    const url = this.fileUrl(repo, path, revision);
    const subject = { repo, path, revision };
    let res: Response;
    try {
      res = await this.fetchFn(url, { headers: { ...this.authHeaders(), Range: 'bytes=0-0' }, signal });
    } catch (e) {
      throw this.networkError(e, url, signal);
    }
    const head = (size: number): FileHead => ({
      size,
      etag: normEtag(res.headers.get('etag')),
      commit: res.headers.get('x-repo-commit'),
    });
    if (res.status === 416) {
      const empty = res.headers.get('content-range')?.match(/^bytes \*\/(0)$/);
      if (empty) {
        await res.body?.cancel().catch(() => undefined);
        return head(0); // an empty file has no byte 0
      }
    }
    if (!res.ok) throw await this.errorFrom(res, url, subject);
    await res.body?.cancel().catch(() => undefined);
    const size = res.status === 206 ? parseContentRange(res.headers.get('content-range'))?.size : Number(res.headers.get('content-length'));
    if (size === null || size === undefined || Number.isNaN(size)) {
      throw new HubError('http', `${hostOf(url)} did not report the size of ${path} in ${repo.id}.`, res.status, url);
    }
    return head(size);
  }

  /** Models whose id contains `query` (the Hub matches case-insensitively), as the Hub lists them. */
  async searchModels(query: string, opts: ModelSearchOptions = {}): Promise<ModelSearchResult[]> {
    const params = new URLSearchParams({ search: query.trim(), limit: String(opts.limit ?? 20) });
    if (opts.sort) params.set('sort', opts.sort);
    for (const f of SEARCH_FIELDS) params.append('expand', f);
    const url = `${this.endpoint}/api/models?${params}`;
    const res = await this.request(url, { search: query.trim() }, { signal: opts.signal });
    return parseSearchResults(await readJsonBody(res, url, 'the model search'), url, res.status);
  }

  /** A small JSON file of a repo (config.json), parsed; a bad answer is a 'bad-response' HubError. */
  async fileJson(repo: RepoRef, path: string, revision = 'main', signal?: AbortSignal): Promise<unknown> {
    const url = this.fileUrl(repo, path, revision);
    const res = await this.request(url, { repo, path, revision }, { signal });
    return readJsonBody(res, url, `${path} of ${repo.id}`);
  }

  // ---- bytes ----

  /** A file's bytes as one stream; dropped connections are resumed with Range requests. */
  download(repo: RepoRef, path: string, opts: DownloadOptions = {}): ReadableStream<Uint8Array> {
    const revision = opts.revision ?? 'main';
    return this.stream(this.fileUrl(repo, path, revision), opts, { repo, path, revision });
  }

  /** Like download(), for a full URL (e.g. a parquet file listed by the dataset viewer). */
  downloadUrl(url: string, opts: DownloadOptions = {}): ReadableStream<Uint8Array> {
    return this.stream(url, opts, {});
  }

  private stream(url: string, opts: DownloadOptions, subject: Subject): ReadableStream<Uint8Array> {
    // Our own controller too, so that cancelling the stream also ends a pending read.
    const ctrl = new AbortController();
    const outer = opts.signal;
    if (outer?.aborted) ctrl.abort(outer.reason);
    else outer?.addEventListener('abort', () => ctrl.abort(outer.reason), { once: true });
    const chunks = this.chunks(url, { ...opts, signal: ctrl.signal }, subject, {});
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const next = await chunks.next();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        } catch (e) {
          controller.error(e);
        }
      },
      async cancel(reason) {
        ctrl.abort(reason);
        await chunks.return(undefined).catch(() => undefined);
      },
    });
  }

  /**
   * Bytes [offset, offset + length) of a URL with the same resume logic; `totalSize` is the
   * file's size when the server reported it (shape of safetensors' FetchRange).
   */
  async readRange(
    url: string,
    offset: number,
    length: number,
    opts: { signal?: AbortSignal; retries?: number } = {},
  ): Promise<{ bytes: Uint8Array; totalSize: number | null }> {
    const state: { fileSize?: number } = {};
    const bytes = new Uint8Array(length);
    let n = 0;
    for await (const c of this.chunks(url, { ...opts, start: offset, end: offset + length }, {}, state)) {
      bytes.set(c, n);
      n += c.length;
    }
    return { bytes: n === length ? bytes : bytes.slice(0, n), totalSize: state.fileSize ?? null };
  }

  private async *chunks(
    url: string,
    opts: DownloadOptions,
    subject: Subject,
    state: { fileSize?: number },
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const { signal, onProgress } = opts;
    const start = opts.start ?? 0;
    const retries = opts.retries ?? DEFAULT_RETRIES;
    let limit = opts.end; // exclusive end the caller asked for, clamped to the file once known
    let pos = start; // next byte the consumer gets
    let etag: string | null | undefined; // of the first answer
    let failures = 0; // in a row, without progress
    const meter = new RateMeter();
    meter.rate(0); // the clock starts with the first request
    let lastReport = -Infinity;
    let trailing: ReturnType<typeof setTimeout> | undefined;
    const report = (final = false): void => {
      if (!onProgress) return;
      const loaded = pos - start;
      const end = limit ?? state.fileSize;
      const total = end === undefined ? null : end - start;
      // At most 10 a second (progress may cross to the UI thread), and always the last one. A
      // skipped report is made up when the interval is over, so bytes that arrive just before a
      // stall are still shown.
      const now = Date.now();
      if (!final && loaded !== total && now - lastReport < PROGRESS_INTERVAL_MS) {
        trailing ??= setTimeout(() => {
          trailing = undefined;
          report();
        }, PROGRESS_INTERVAL_MS - (now - lastReport));
        return;
      }
      clearTimeout(trailing);
      trailing = undefined;
      lastReport = now;
      const bytesPerSecond = meter.rate(loaded);
      const left = total === null ? null : total - loaded;
      const etaSeconds = left === null ? null : left <= 0 ? 0 : bytesPerSecond > 0 ? left / bytesPerSecond : null;
      onProgress({ loaded, total, bytesPerSecond, etaSeconds });
    };
    const retryOrThrow = async (cause: unknown): Promise<void> => {
      if (signal?.aborted) throw abortReason(signal);
      if (isAbort(cause)) throw cause;
      // Client errors are final; network failures (status 0) and server errors are worth a retry.
      if (cause instanceof HubError && cause.status !== 0 && (cause.status < 500 || cause.status === 501)) throw cause;
      if (failures >= retries) {
        if (cause instanceof HubError) throw cause;
        const end = limit ?? state.fileSize;
        const where = end === undefined ? `at byte ${pos}` : `at byte ${pos} of ${end}`;
        throw new HubError(
          'offline',
          `Download of ${subject.path ?? url} from ${hostOf(url)} stopped ${where}: the connection dropped ${failures + 1} times in a row. Check the connection and try again.`,
          0,
          url,
        );
      }
      failures++;
      await sleep(Math.min(this.retryDelayMs * 2 ** (failures - 1), MAX_RETRY_DELAY_MS), signal);
    };

    try {
      while (limit === undefined || pos < limit) {
        let res: Response;
        try {
          const range = pos > 0 || limit !== undefined ? `bytes=${pos}-${limit === undefined ? '' : limit - 1}` : undefined;
          res = await this.request(url, subject, { signal, headers: range ? { Range: range } : {} });
        } catch (e) {
          await retryOrThrow(e);
          continue;
        }
        // Same file as before? (a new commit in between would splice two versions together)
        const tag = normEtag(res.headers.get('etag'));
        if (etag === undefined) etag = tag;
        else if (etag && tag && etag !== tag) {
          await res.body?.cancel().catch(() => undefined);
          throw new HubError(
            'http',
            `${subject.path ?? url} changed on ${hostOf(url)} during the download (ETag ${etag} -> ${tag}): start it again.`,
            res.status,
            url,
          );
        }
        // Where this answer's body should end (absolute), when known.
        let bodyEnd: number | undefined;
        let skip = 0; // a 200 answer starts at byte 0, whatever was asked
        let sizeFromLength = false;
        if (res.status === 206) {
          const cr = parseContentRange(res.headers.get('content-range'));
          if (!cr || cr.start !== pos) {
            await res.body?.cancel().catch(() => undefined);
            throw new HubError('http', `${hostOf(url)} answered bytes ${cr ? cr.start : '?'}- when asked for ${pos}-.`, 206, url);
          }
          bodyEnd = cr.end + 1;
          if (cr.size !== null) {
            state.fileSize = cr.size;
            if (limit !== undefined) limit = Math.min(limit, cr.size);
          }
        } else {
          skip = pos;
          // In browsers a compressed body's Content-Length is the compressed size: only a hint.
          const len = res.headers.get('content-encoding') ? null : res.headers.get('content-length');
          if (len !== null) {
            bodyEnd = Number(len);
            if (state.fileSize === undefined) {
              state.fileSize = bodyEnd;
              sizeFromLength = true;
            }
          }
        }
        if (res.body === null) throw new HubError('http', `${hostOf(url)} sent no body for ${url}.`, res.status, url);

        const reader = res.body.getReader();
        let bodyPos = res.status === 206 ? pos : 0;
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            bodyPos += value.length;
            if (bodyEnd !== undefined && bodyPos > bodyEnd) {
              bodyEnd = undefined; // the announced length was of an encoded body
              if (sizeFromLength) state.fileSize = undefined;
            }
            let chunk = value;
            if (skip > 0) {
              if (chunk.length <= skip) {
                skip -= chunk.length;
                continue;
              }
              chunk = chunk.subarray(skip);
              skip = 0;
            }
            if (limit !== undefined && pos + chunk.length > limit) chunk = chunk.subarray(0, limit - pos);
            if (chunk.length > 0) {
              pos += chunk.length;
              failures = 0;
              report();
              yield chunk;
            }
            if (limit !== undefined && pos >= limit) return;
          }
          if (bodyEnd !== undefined && bodyPos < bodyEnd) {
            throw new TypeError(`connection closed at byte ${bodyPos} of ${bodyEnd}`);
          }
          // A complete 200 is the whole file; a complete 206 may be shorter than asked: ask on.
          if (res.status !== 206 || (limit === undefined && (state.fileSize === undefined || pos >= state.fileSize))) {
            if (res.status !== 206) state.fileSize = bodyPos;
            limit = pos;
            report(true);
            return;
          }
        } catch (e) {
          await retryOrThrow(e); // the body broke off: ask again from `pos`
        } finally {
          reader.cancel().catch(() => undefined);
        }
      }
    } finally {
      clearTimeout(trailing); // nothing reports after the download ends
    }
  }

  // ---- dataset viewer ----

  async datasetSplits(id: string, signal?: AbortSignal): Promise<DatasetSplit[]> {
    const r = await this.viewer<{ splits: DatasetSplit[] }>('splits', { dataset: id }, signal);
    return r.splits;
  }

  /** One page of rows (length at most 100, the viewer's limit). */
  datasetRows(
    id: string,
    config: string,
    split: string,
    offset = 0,
    length = 100,
    signal?: AbortSignal,
  ): Promise<DatasetRowsPage> {
    const q = { dataset: id, config, split, offset: String(offset), length: String(length) };
    return this.viewer<DatasetRowsPage>('rows', q, signal);
  }

  /** The auto-converted parquet files (refs/convert/parquet), with sizes. */
  async datasetParquetFiles(id: string, config?: string, split?: string, signal?: AbortSignal): Promise<ParquetFile[]> {
    const q: Record<string, string> = { dataset: id };
    if (config) q.config = config;
    if (split) q.split = split;
    const r = await this.viewer<{ parquet_files: ParquetFile[] }>('parquet', q, signal);
    return r.parquet_files;
  }

  private viewer<T>(endpoint: string, query: Record<string, string>, signal?: AbortSignal): Promise<T> {
    const url = `${this.datasetsServer}/${endpoint}?${new URLSearchParams(query)}`;
    return this.getJson<T>(url, { repo: { type: 'dataset', id: query.dataset }, viewer: true }, signal);
  }

  // ---- plumbing ----

  private apiBase(repo: RepoRef): string {
    return `${this.endpoint}/api/${repo.type === 'dataset' ? 'datasets' : 'models'}/${encodeSegments(repo.id)}`;
  }

  private async getJson<T>(url: string, subject: Subject, signal?: AbortSignal): Promise<T> {
    const res = await this.request(url, subject, { signal });
    return (await res.json()) as T;
  }

  /** fetch with the token; throws HubError for network failures and non-2xx answers. */
  private async request(
    url: string,
    subject: Subject,
    init: { signal?: AbortSignal; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    let res: Response;
    try {
      res = await this.fetchFn(url, { headers: { ...this.authHeaders(), ...init.headers }, signal: init.signal });
    } catch (e) {
      throw this.networkError(e, url, init.signal);
    }
    if (!res.ok) throw await this.errorFrom(res, url, subject);
    return res;
  }

  private networkError(e: unknown, url: string, signal?: AbortSignal): unknown {
    if (signal?.aborted) return abortReason(signal);
    if (isAbort(e)) return e;
    const host = hostOf(url);
    return new HubError('offline', `Cannot reach ${host}: check the connection (the demo model works offline).`, 0, url);
  }

  private async errorFrom(res: Response, url: string, subject: Subject): Promise<HubError> {
    const code = res.headers.get('x-error-code') ?? undefined;
    let detail = res.headers.get('x-error-message') ?? '';
    if (!detail) {
      const text = await res.text().catch(() => '');
      try {
        detail = String((JSON.parse(text) as { error?: unknown }).error ?? text);
      } catch {
        detail = text.slice(0, 200);
      }
    } else {
      await res.body?.cancel().catch(() => undefined);
    }
    const { status } = res;
    const host = hostOf(url);
    const repo = subject.repo;
    const name = repo ? repo.id : url;
    const page = repo ? this.repoPage(repo) : url;
    const err = (kind: HubErrorKind, message: string, retryAfter?: number): HubError =>
      new HubError(kind, message, status, url, code, retryAfter);

    if (status === 429) {
      const s = retryAfterSeconds(res.headers);
      const wait = s === undefined ? 'wait a minute' : `wait ${s} s`;
      const hint = this.token ? '' : ' (a token in the Model tab (Hugging Face token) raises the limit)';
      return err('rate-limited', `${host} is limiting requests: ${wait} and try again${hint}.`, s);
    }
    if (code === 'GatedRepo') {
      if (status === 403 || this.token) {
        return err(
          'gated-no-access',
          `Your token cannot read ${name} yet: open ${page}, accept the licence (some authors approve requests by hand, which can take a while), then try again.`,
        );
      }
      return err('gated', `${name} is gated: open ${page}, accept the licence, then paste a token with read access in the Model tab (Hugging Face token).`);
    }
    if (status === 401 && subject.search !== undefined && !this.token) {
      return err('unauthorized', `${host} asked for a token to search models: paste a token with read access in the Model tab (Hugging Face token).`);
    }
    // The search is public: a 401 there is always the token.
    if (status === 401 && (/invalid credentials/i.test(detail) || subject.search !== undefined)) {
      return err(
        'unauthorized',
        `${host} refused the Hugging Face token: paste a valid token with read access in the Model tab (Hugging Face token), or remove it to use public repos.`,
      );
    }
    const viewerHidden = code === 'ExternalUnauthenticatedError' || code === 'ExternalAuthenticatedError';
    if (code === 'RepoNotFound' || viewerHidden || (status === 401 && !subject.viewer)) {
      const what = repo?.type === 'dataset' ? 'Dataset' : 'Model';
      const msg = this.token
        ? `${what} ${name} was not found on ${host}, or your token cannot read it: check the name and the token's access.`
        : `${what} ${name} was not found on ${host}: check the name. If it is private or gated, paste a token with read access in the Model tab (Hugging Face token).`;
      return err('repo-not-found', msg);
    }
    if (code === 'RevisionNotFound') {
      return err('http', `${name} has no revision "${subject.revision ?? '?'}" on ${host}: check the branch, tag or commit.`);
    }
    if (code === 'EntryNotFound' || (status === 404 && subject.path !== undefined)) {
      const rev = subject.revision ? ` (revision ${subject.revision})` : '';
      return err('file-not-found', `${subject.path ?? 'That file'} is not in ${name}${rev}: check the file name.`);
    }
    if (status === 404 && repo && !subject.viewer) {
      return err('repo-not-found', `${name} was not found on ${host}: check the name.`);
    }
    if (status === 404 && subject.search !== undefined) {
      return err('http', `${host} has no model search (404 for /api/models): check the Hub base URL in Settings (now ${this.endpoint}).`);
    }
    if (code === 'ResponseNotFound' && subject.viewer) {
      return err('http', `The dataset viewer at ${host} has no such config or split of ${name}: check the names against its splits.`);
    }
    const said = detail ? `: ${detail.replace(/\.$/, '')}` : '';
    const advice = status >= 500 ? ' The service may be having trouble: try again in a few minutes.' : '';
    return err('http', `${host} answered ${status} ${res.statusText} for ${url}${said}.${advice}`);
  }
}

/** The body as JSON, or a HubError saying the server is not answering as a Hub does. */
async function readJsonBody(res: Response, url: string, what: string): Promise<unknown> {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    const start = text.trim().slice(0, 40).replace(/\s+/g, ' ');
    const sample = start ? `it starts "${start}${text.trim().length > 40 ? '…' : ''}"` : 'it is empty';
    throw new HubError(
      'bad-response',
      `${hostOf(url)} answered ${what} with something that is not JSON (${sample}): check the Hub base URL in Settings; it should be a Hugging Face Hub such as https://huggingface.co.`,
      res.status,
      url,
    );
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const numberOr = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const stringOr = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

const jsonKind = (v: unknown): string => (v === null ? 'null' : isRecord(v) ? 'an object' : `a ${typeof v}`);

/** Checks the search answer's shape: a list of models, each with an id; unknown fields are dropped. */
function parseSearchResults(body: unknown, url: string, status: number): ModelSearchResult[] {
  const fail = (why: string): never => {
    throw new HubError('bad-response', `${hostOf(url)} answered the model search with ${why}, not a list of models: check the Hub base URL in Settings.`, status, url);
  };
  if (!Array.isArray(body)) fail(jsonKind(body));
  return (body as unknown[]).map((item, i) => {
    const id = isRecord(item) ? (stringOr(item.id) ?? stringOr(item.modelId)) : undefined;
    if (!isRecord(item) || !id) return fail(`an entry without a model id (entry ${i + 1})`);
    const gated = item.gated;
    return {
      id,
      downloads: numberOr(item.downloads),
      likes: numberOr(item.likes),
      gated: gated === false || gated === 'auto' || gated === 'manual' ? gated : undefined,
      private: typeof item.private === 'boolean' ? item.private : undefined,
      pipeline_tag: stringOr(item.pipeline_tag),
      lastModified: stringOr(item.lastModified),
    };
  });
}

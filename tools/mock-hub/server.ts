// A local stand-in for huggingface.co and datasets-server.huggingface.co: same URL shapes, headers
// and errors, served from fixture folders, with injectable faults. Plain node:http.
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TOKENS } from './context.ts';
import type { Ctx, TokenGrant } from './context.ts';
import { Faults } from './faults.ts';
import type { FaultsSpec } from './faults.ts';
import { preflight, sendError, sendJson, setCors } from './http.ts';
import { routeHub } from './hub-api.ts';
import { RepoStore } from './repos.ts';
import { sendModelSearch } from './search.ts';
import type { FixtureRoot } from './repos.ts';
import { VIEWER_PREFIX, routeViewer } from './viewer.ts';
import { DEFAULT_UPLOAD_LIMITS, Uploads, type UploadLimits } from './uploads.ts';
import { routeWrite } from './write-api.ts';

export type { FaultsSpec, ByteFaultSpec, HttpErrorSpec, RateLimitSpec } from './faults.ts';
export type { UploadLimits } from './uploads.ts';
export type { TokenGrant } from './context.ts';
export type { FixtureRoot, RepoMeta } from './repos.ts';

/** tests/fixtures/hub: its models/ and datasets/ folders hold `{owner}/{name}/` repos. */
export const FIXTURES_DIR = fileURLToPath(new URL('../../tests/fixtures/hub/', import.meta.url));
export const DEFAULT_ROOTS: FixtureRoot[] = [
  { models: `${FIXTURES_DIR}models`, datasets: `${FIXTURES_DIR}datasets` },
];

export interface MockHubOptions {
  /** 0 (default): a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Folders of `{owner}/{name}/` repos; default DEFAULT_ROOTS (the test fixtures). */
  roots?: FixtureRoot[];
  /** Single repos mounted from any folder, by repo id, e.g. { models: { 'webtune/demo': 'public/demo/model' } }. */
  mounts?: { models?: Record<string, string>; datasets?: Record<string, string> };
  /** Accepted tokens; default hf_mock_ok (all access) and hf_mock_noaccess (no gated or private). */
  tokens?: Record<string, TokenGrant>;
  /** Entries per page of /tree before a Link: rel="next" (default 1000, as the Hub). */
  treePageSize?: number;
  /** Faults armed from the start (also settable later through `faults` or POST /__mock/faults). */
  faults?: FaultsSpec;
  /** Print one line per request. */
  log?: boolean;
  /** Where created repos and uploaded files are kept (default: a temporary folder, removed on close). */
  uploadsDir?: string;
  /** Multipart threshold and part size, per-file limit, per-namespace quota of uploads. */
  uploadLimits?: Partial<UploadLimits>;
}

export interface LoggedRequest {
  method: string;
  /** Path and query, as received. */
  url: string;
  authorization?: string;
  range?: string;
}

export interface MockHub {
  /** Hub endpoint, e.g. http://127.0.0.1:40123 (HubClient `endpoint`). */
  url: string;
  /** Dataset viewer base, `${url}/datasets-server` (HubClient `datasetsServer`). */
  datasetsServer: string;
  port: number;
  faults: Faults;
  /** Every request received (newest last); clear with `requests.length = 0`. */
  requests: LoggedRequest[];
  /** The folder created repos and uploads are kept in. */
  uploadsDir: string;
  close(): Promise<void>;
}

const MAX_LOG = 2000;

function bearer(req: IncomingMessage): string | undefined {
  const m = req.headers.authorization?.match(/^Bearer\s+(\S+)$/i);
  return m ? m[1] : undefined;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** POST /__mock/faults {drop, stall, rateLimit}; DELETE /__mock/faults; GET /__mock/requests. */
async function routeControl(req: IncomingMessage, res: ServerResponse, hub: MockHub, what: string): Promise<void> {
  if (what === 'faults' && req.method === 'POST') {
    try {
      hub.faults.apply(JSON.parse((await readBody(req)) || '{}') as FaultsSpec);
      sendJson(res, 200, { ok: true });
    } catch (e) {
      sendError(res, 400, undefined, `bad fault spec: ${(e as Error).message}`);
    }
  } else if (what === 'faults' && req.method === 'DELETE') {
    hub.faults.clear();
    sendJson(res, 200, { ok: true });
  } else if (what === 'requests') {
    sendJson(res, 200, hub.requests);
  } else if (what === 'health') {
    sendJson(res, 200, { ok: true });
  } else {
    sendError(res, 404, undefined, 'Not Found');
  }
}

export async function startMockHub(options: MockHubOptions = {}): Promise<MockHub> {
  const uploads = new Uploads(options.uploadsDir, { ...DEFAULT_UPLOAD_LIMITS, ...options.uploadLimits });
  // Created repos are found like fixture repos, after them.
  const store = new RepoStore([...(options.roots ?? DEFAULT_ROOTS), uploads.root], options.mounts ?? {});
  const tokens = options.tokens ?? DEFAULT_TOKENS;
  const faults = new Faults();
  if (options.faults) faults.apply(options.faults);
  const requests: LoggedRequest[] = [];
  let hub: MockHub;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
    requests.push({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      ...(req.headers.range ? { range: req.headers.range } : {}),
    });
    if (requests.length > MAX_LOG) requests.splice(0, requests.length - MAX_LOG);
    if (options.log) console.log(`mock-hub ${req.method} ${req.url}`);
    setCors(res);
    if (req.method === 'OPTIONS') return preflight(req, res);

    let segs: string[];
    try {
      segs = url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
    } catch {
      return sendError(res, 400, undefined, 'Bad Request');
    }
    if (segs[0] === '__mock') return routeControl(req, res, hub, segs.slice(1).join('/'));
    const injected = faults.takeHttpError(req.method ?? 'GET', url.pathname);
    if (injected) {
      req.resume(); // the body is not read
      return sendError(res, injected.status, undefined, injected.message);
    }

    const retryAfter = faults.takeRateLimit(url.pathname);
    if (retryAfter !== undefined) {
      return sendError(res, 429, undefined, `Too Many Requests: retry in ${retryAfter} seconds.`, {
        'Retry-After': String(retryAfter),
        RateLimit: `"api";r=0;t=${retryAfter}`,
        'RateLimit-Policy': '"fixed window";"api";q=1000;w=300',
      });
    }
    const token = bearer(req);
    const grant = token ? tokens[token] : undefined;
    if (token && !grant) return sendError(res, 401, undefined, 'Invalid credentials in Authorization header');

    const ctx: Ctx = {
      req,
      res,
      url,
      base: `http://${req.headers.host ?? `127.0.0.1:${hub.port}`}`,
      token,
      grant,
      store,
      faults,
      treePageSize: options.treePageSize ?? 1000,
      uploads,
    };
    if (await routeWrite(ctx, segs)) return;
    if (!['GET', 'HEAD'].includes(req.method ?? '')) return sendError(res, 405, undefined, 'Method Not Allowed');
    if (segs[0] === VIEWER_PREFIX) return routeViewer(ctx, segs.slice(1));
    if (segs.length === 2 && segs[0] === 'api' && segs[1] === 'models') return sendModelSearch(ctx);
    if (!routeHub(ctx, segs)) sendError(res, 404, undefined, 'Not Found');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) sendError(res, 500, undefined, `mock hub: ${(e as Error).message}`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port, address } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  const url = `http://${host}:${port}`;
  hub = {
    url,
    datasetsServer: `${url}/${VIEWER_PREFIX}`,
    port,
    faults,
    requests,
    uploadsDir: uploads.dir,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => {
          uploads.close();
          if (err) reject(err);
          else resolve();
        });
        server.closeAllConnections(); // stalled fault responses would otherwise keep it open
      }),
  };
  return hub;
}

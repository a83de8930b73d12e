// huggingface.co routes: /api/{models,datasets}/..., /{id}/resolve/..., /datasets/{id}/resolve/...,
// and the CDN path LFS files redirect to.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { accessRepo } from './context.ts';
import type { Ctx } from './context.ts';
import { sendError, sendFileBytes, sendJson } from './http.ts';
import { PARQUET_BRANCH, parquetSplits } from './parquet.ts';
import { findRevision, lfsPointer } from './repos.ts';
import type { Repo, RepoFile, RepoType, Revision } from './repos.ts';

const FIXED_DATE = '2025-01-01T00:00:00.000Z';
const quote = (s: string): string => `"${s}"`;
const encodePath = (p: string): string => p.split('/').map(encodeURIComponent).join('/');

/** Splits `rev/path...`, allowing an unencoded branch name with slashes (refs/convert/parquet). */
function splitRev(repo: Repo, parts: string[]): { rev: string; rest: string[] } {
  const joined = parts.join('/');
  for (const name of repo.revisions.keys()) {
    if (name.includes('/') && (joined === name || joined.startsWith(name + '/'))) {
      const rest = joined.slice(name.length + 1);
      return { rev: name, rest: rest ? rest.split('/') : [] };
    }
  }
  return { rev: parts[0] ?? 'main', rest: parts.slice(1) };
}

function revisionOr404(ctx: Ctx, repo: Repo, rev: string): Revision | undefined {
  const r = findRevision(repo, rev);
  if (!r) sendError(ctx.res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
  return r;
}

function readJson(rev: Revision, path: string): Record<string, unknown> | undefined {
  const f = rev.files.find((x) => x.path === path);
  if (!f) return undefined;
  try {
    return JSON.parse(readFileSync(f.abs, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Parameter counts per dtype from the safetensors headers, as the Hub's `safetensors` field. */
function safetensorsSummary(rev: Revision): { parameters: Record<string, number>; total: number } | undefined {
  const files = rev.files.filter((f) => f.path.endsWith('.safetensors'));
  if (files.length === 0) return undefined;
  const parameters: Record<string, number> = {};
  let total = 0;
  for (const f of files) {
    const fd = openSync(f.abs, 'r');
    try {
      const len = Buffer.alloc(8);
      readSync(fd, len, 0, 8, 0);
      const n = Number(len.readBigUInt64LE(0));
      if (n <= 0 || n > f.size - 8) continue;
      const head = Buffer.alloc(n);
      readSync(fd, head, 0, n, 8);
      const header = JSON.parse(head.toString('utf8')) as Record<string, { dtype: string; shape: number[] }>;
      for (const [name, t] of Object.entries(header)) {
        if (name === '__metadata__') continue;
        const count = t.shape.reduce((a, b) => a * b, 1);
        parameters[t.dtype] = (parameters[t.dtype] ?? 0) + count;
        total += count;
      }
    } catch {
      // not a valid safetensors file: the Hub just omits the summary
    } finally {
      closeSync(fd);
    }
  }
  return { parameters, total };
}

function sibling(f: RepoFile, blobs: boolean): Record<string, unknown> {
  if (!blobs) return { rfilename: f.path };
  return {
    rfilename: f.path,
    blobId: f.oid,
    size: f.size,
    ...(f.lfs ? { lfs: { sha256: f.lfs.oid, size: f.lfs.size, pointerSize: f.lfs.pointerSize } } : {}),
  };
}

export function modelFields(repo: Repo, rev: Revision): Record<string, unknown> {
  const config = readJson(rev, 'config.json');
  const tok = readJson(rev, 'tokenizer_config.json');
  const pick = (o: Record<string, unknown> | undefined, keys: string[]): Record<string, unknown> =>
    Object.fromEntries(keys.filter((k) => o && o[k] !== undefined).map((k) => [k, o![k]]));
  const archs = (config?.architectures as string[] | undefined) ?? [];
  const pipeline = repo.meta.pipeline_tag ?? (archs.some((a) => a.endsWith('ForCausalLM')) ? 'text-generation' : undefined);
  const st = safetensorsSummary(rev);
  const license = repo.meta.cardData?.license;
  const tags = repo.meta.tags ?? [
    ...(config ? ['transformers'] : []),
    ...(st ? ['safetensors'] : []),
    ...(typeof config?.model_type === 'string' ? [config.model_type] : []),
    ...(pipeline ? [pipeline] : []),
    ...(typeof license === 'string' ? [`license:${license}`] : []),
    'region:us',
  ];
  return {
    pipeline_tag: pipeline,
    library_name: repo.meta.library_name ?? (config ? 'transformers' : undefined),
    tags,
    config: config
      ? {
          ...pick(config, ['architectures', 'model_type', 'quantization_config']),
          ...(tok ? { tokenizer_config: pick(tok, ['bos_token', 'eos_token', 'pad_token', 'unk_token', 'chat_template']) } : {}),
        }
      : undefined,
    safetensors: st,
    spaces: [],
  };
}

function repoInfo(ctx: Ctx, repo: Repo, rev: Revision): Record<string, unknown> {
  const blobs = ['1', 'true'].includes(ctx.url.searchParams.get('blobs') ?? '');
  const license = repo.meta.cardData?.license;
  const info: Record<string, unknown> = {
    _id: createHash('sha1').update(`${repo.type}/${repo.id}`).digest('hex').slice(0, 24),
    id: repo.id,
    author: repo.id.includes('/') ? repo.id.split('/')[0] : undefined,
    sha: rev.sha,
    lastModified: FIXED_DATE,
    createdAt: FIXED_DATE,
    private: repo.meta.private ?? false,
    gated: repo.meta.gated ?? false,
    disabled: false,
    downloads: repo.meta.downloads ?? 0,
    likes: repo.meta.likes ?? 0,
    cardData: repo.meta.cardData,
    siblings: rev.files.map((f) => sibling(f, blobs)),
    usedStorage: rev.files.reduce((a, f) => a + f.size, 0),
    ...(repo.type === 'model'
      ? modelFields(repo, rev)
      : { tags: repo.meta.tags ?? [...(typeof license === 'string' ? [`license:${license}`] : []), 'region:us'] }),
  };
  const expand = ctx.url.searchParams.getAll('expand');
  if (expand.length === 0) return info;
  return Object.fromEntries(Object.entries(info).filter(([k]) => k === '_id' || k === 'id' || expand.includes(k)));
}

function treeEntries(rev: Revision, dir: string, recursive: boolean): Record<string, unknown>[] | undefined {
  const prefix = dir ? dir + '/' : '';
  const under = rev.files.filter((f) => f.path.startsWith(prefix));
  if (dir && under.length === 0) return undefined;
  const dirs = new Map<string, string[]>();
  const files: RepoFile[] = [];
  for (const f of under) {
    const rel = f.path.slice(prefix.length).split('/');
    const depth = recursive ? rel.length - 1 : Math.min(rel.length - 1, 1);
    for (let i = 1; i <= depth; i++) {
      const d = prefix + rel.slice(0, i).join('/');
      if (!dirs.has(d)) dirs.set(d, []);
      dirs.get(d)!.push(f.oid);
    }
    if (recursive || rel.length === 1) files.push(f);
  }
  const dirEntries = [...dirs].map(([path, oids]) => ({
    type: 'directory',
    oid: createHash('sha1').update(oids.join('')).digest('hex'),
    size: 0,
    path,
  }));
  const fileEntries = files.map((f) => ({
    type: 'file',
    oid: f.oid,
    size: f.size,
    ...(f.lfs ? { lfs: { oid: f.lfs.oid, size: f.lfs.size, pointerSize: f.lfs.pointerSize } } : {}),
    path: f.path,
  }));
  return [...dirEntries, ...fileEntries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function sendTree(ctx: Ctx, repo: Repo, parts: string[]): void {
  const { rev: revName, rest } = splitRev(repo, parts);
  const rev = revisionOr404(ctx, repo, revName);
  if (!rev) return;
  const recursive = ['1', 'true'].includes(ctx.url.searchParams.get('recursive') ?? '');
  const dir = rest.join('/').replace(/\/+$/, '');
  const entries = treeEntries(rev, dir, recursive);
  if (!entries) {
    sendError(ctx.res, 404, 'EntryNotFound', `${dir} does not exist on "${revName}"`);
    return;
  }
  // Paginated like the Hub: an opaque cursor and a Link header to the next page.
  const cursor = ctx.url.searchParams.get('cursor');
  const offset = cursor ? Number(Buffer.from(cursor, 'base64url').toString()) || 0 : 0;
  const page = entries.slice(offset, offset + ctx.treePageSize);
  const headers: Record<string, string> = {};
  if (offset + ctx.treePageSize < entries.length) {
    const next = new URL(ctx.url.pathname + ctx.url.search, ctx.base);
    next.searchParams.set('cursor', Buffer.from(String(offset + ctx.treePageSize)).toString('base64url'));
    headers.Link = `<${next.href}>; rel="next"`;
  }
  sendJson(ctx.res, 200, page, headers);
}

/** GET /api/datasets/{id}/parquet[/{config}[/{split}[/{n}.parquet]]] */
function sendParquetApi(ctx: Ctx, repo: Repo, parts: string[]): void {
  const splits = parquetSplits(repo);
  if (!splits) {
    sendError(ctx.res, 404, undefined, `No parquet export for dataset ${repo.id}`);
    return;
  }
  const [config, split, file] = parts;
  const urls = (s: (typeof splits)[number]): string[] =>
    s.files.map((_, n) => `${ctx.base}/api/datasets/${repo.id}/parquet/${encodeURIComponent(s.config)}/${encodeURIComponent(s.split)}/${n}.parquet`);
  const chosen = splits.filter((s) => (!config || s.config === config) && (!split || s.split === split));
  if ((config || split) && chosen.length === 0) {
    sendError(ctx.res, 404, undefined, 'Not found');
    return;
  }
  if (file !== undefined) {
    const n = Number(file.replace(/\.parquet$/, ''));
    const f = chosen[0].files[n];
    if (!Number.isInteger(n) || !f) {
      sendError(ctx.res, 404, 'EntryNotFound', 'Entry not found');
      return;
    }
    const location = `${ctx.base}/datasets/${repo.id}/resolve/${encodeURIComponent(PARQUET_BRANCH)}/${encodePath(f.path)}`;
    ctx.res.writeHead(302, { Location: location, 'Content-Length': '0' });
    ctx.res.end();
    return;
  }
  if (split) {
    sendJson(ctx.res, 200, urls(chosen[0]));
    return;
  }
  const byConfig: Record<string, Record<string, string[]>> = {};
  for (const s of chosen) (byConfig[s.config] ??= {})[s.split] = urls(s);
  sendJson(ctx.res, 200, config ? byConfig[config] : byConfig);
}

/** GET|HEAD /{id}/resolve/{rev}/{path} (and /raw/): bytes, or a 302 to the CDN for LFS files. */
function sendResolve(ctx: Ctx, repo: Repo, parts: string[], raw: boolean): void {
  const { rev: revName, rest } = splitRev(repo, parts);
  const rev = revisionOr404(ctx, repo, revName);
  if (!rev) return;
  const path = rest.join('/');
  const file = rev.files.find((f) => f.path === path);
  if (!file) {
    sendError(ctx.res, 404, 'EntryNotFound', 'Entry not found');
    return;
  }
  const common = { 'X-Repo-Commit': rev.sha };
  if (file.lfs && raw) {
    const pointer = lfsPointer(file.lfs.oid, file.lfs.size);
    ctx.res.writeHead(200, {
      ...common,
      ETag: quote(file.oid),
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(pointer)),
    });
    ctx.res.end(ctx.req.method === 'HEAD' ? undefined : pointer);
    return;
  }
  if (file.lfs) {
    // The real Hub answers LFS files with a redirect to a signed storage URL on another host.
    const kind = repo.type === 'dataset' ? 'datasets' : 'models';
    const cdn = `${ctx.base}/cdn-lfs/${kind}/${repo.id}/${file.lfs.oid}?filename=${encodeURIComponent(path.split('/').pop()!)}`;
    ctx.res.writeHead(302, {
      ...common,
      Location: cdn,
      ETag: quote(file.oid),
      'X-Linked-Etag': quote(file.lfs.oid),
      'X-Linked-Size': String(file.lfs.size),
      'Content-Length': '0',
    });
    ctx.res.end();
    return;
  }
  sendFileBytes(ctx.req, ctx.res, file, { ...common, ETag: quote(file.oid) }, ctx.faults.takeByteFault(repo.id, file.path));
}

/** GET /cdn-lfs/{models|datasets}/{owner}/{name}/{sha256}: the storage host. No auth (signed URL). */
function sendCdn(ctx: Ctx, parts: string[]): void {
  const [kind, owner, name, sha] = parts;
  const type: RepoType = kind === 'datasets' ? 'dataset' : 'model';
  const id = `${owner}/${name}`;
  const file = sha ? ctx.store.findLfs(type, id, sha) : undefined;
  if (!file) {
    sendError(ctx.res, 404, undefined, 'NoSuchKey');
    return;
  }
  sendFileBytes(ctx.req, ctx.res, file, { ETag: quote(sha) }, ctx.faults.takeByteFault(id, file.path));
}

/** Routes huggingface.co paths; returns false when the path is not one of them. */
export function routeHub(ctx: Ctx, segs: string[]): boolean {
  if (segs[0] === 'cdn-lfs') {
    sendCdn(ctx, segs.slice(1));
    return true;
  }
  if (segs[0] === 'api' && (segs[1] === 'models' || segs[1] === 'datasets') && segs.length >= 4) {
    const type: RepoType = segs[1] === 'models' ? 'model' : 'dataset';
    const id = `${segs[2]}/${segs[3]}`;
    const [what, ...rest] = segs.slice(4);
    const level = what === 'parquet' ? 'files' : 'meta';
    const repo = accessRepo(ctx, type, id, level);
    if (!repo) return true;
    if (what === undefined || (what === 'revision' && rest.length > 0)) {
      const rev = revisionOr404(ctx, repo, what === undefined ? 'main' : rest.join('/'));
      if (rev) sendJson(ctx.res, 200, repoInfo(ctx, repo, rev));
    } else if (what === 'tree') {
      sendTree(ctx, repo, rest);
    } else if (what === 'parquet' && type === 'dataset') {
      sendParquetApi(ctx, repo, rest);
    } else {
      sendError(ctx.res, 404, undefined, 'Not Found');
    }
    return true;
  }
  const isDataset = segs[0] === 'datasets';
  const s = isDataset ? segs.slice(1) : segs;
  if (s.length >= 4 && (s[2] === 'resolve' || s[2] === 'raw')) {
    const type: RepoType = isDataset ? 'dataset' : 'model';
    const repo = accessRepo(ctx, type, `${s[0]}/${s[1]}`, 'files');
    if (repo) sendResolve(ctx, repo, s.slice(3), s[2] === 'raw');
    return true;
  }
  return false;
}

// The Hub's write side, as @huggingface/hub's createRepo / commit / uploadFiles call it:
//   GET  /api/whoami-v2                                      who the token is, its role
//   POST /api/repos/create                                   a new model or dataset repo
//   POST /api/{models|datasets}/{id}/preupload/{rev}         which files go to LFS
//   POST /{id}.git/info/lfs/objects/batch (datasets/{id}...) where to PUT each LFS object
//   PUT  /lfs-storage/{oid}, /lfs-storage/{oid}/part/{n}     the storage host (no auth, like S3)
//   POST /lfs-storage/{oid}/complete                         joins a multipart upload
//   POST /api/{models|datasets}/{id}/commit/{rev}            NDJSON: header, file, lfsFile, deletedFile
// Tokens write only where they may (role "write", namespace = their user or one of their orgs),
// and only repos this mock created (fixture repos stay read-only).
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { accessRepo, webPrefix, type Ctx } from './context.ts';
import { sendError, sendJson } from './http.ts';
import { findRevision, isLfsFile, type RepoType } from './repos.ts';

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function readJson<T>(ctx: Ctx): Promise<T | undefined> {
  try {
    return JSON.parse((await readBody(ctx.req)).toString('utf8')) as T;
  } catch {
    sendError(ctx.res, 400, undefined, 'The request body is not JSON.');
    return undefined;
  }
}

const namespacesOf = (ctx: Ctx): string[] => (ctx.grant?.user ? [ctx.grant.user, ...(ctx.grant.orgs ?? [])] : []);

/** 401 without a token, 403 for a read token; true when the token may write. */
function needWriteToken(ctx: Ctx): boolean {
  if (!ctx.token || !ctx.grant) {
    sendError(ctx.res, 401, undefined, 'Invalid username or password.');
    return false;
  }
  if (ctx.grant.role !== 'write') {
    sendError(ctx.res, 403, undefined, 'You don\'t have the rights to do this: your token is read-only. Use a token with the "write" role.');
    return false;
  }
  return true;
}

/** The repo a write goes to, or undefined after sending the error (missing, not yours, read-only). */
function writableRepo(ctx: Ctx, type: RepoType, id: string, rev: string): string | undefined {
  if (!ctx.token || !ctx.grant) {
    sendError(ctx.res, 401, 'RepoNotFound', 'Invalid username or password.');
    return undefined;
  }
  const repo = accessRepo(ctx, type, id, 'meta');
  if (!repo) return undefined;
  if (!needWriteToken(ctx)) return undefined;
  const owner = id.split('/')[0];
  if (!namespacesOf(ctx).includes(owner) || !ctx.uploads.holds(type, id)) {
    sendError(ctx.res, 403, undefined, `You don't have the rights to write to ${type} ${id}: it belongs to "${owner}".`);
    return undefined;
  }
  if (!findRevision(repo, rev)) {
    sendError(ctx.res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    return undefined;
  }
  return owner;
}

function whoami(ctx: Ctx): void {
  if (!ctx.token || !ctx.grant) return sendError(ctx.res, 401, undefined, 'Invalid username or password.');
  const g = ctx.grant;
  const user = g.user ?? 'mock-user';
  sendJson(ctx.res, 200, {
    type: 'user',
    id: createHash('sha1').update(user).digest('hex').slice(0, 24),
    name: user,
    fullname: user,
    email: `${user}@example.invalid`,
    emailVerified: true,
    isPro: false,
    canPay: false,
    avatarUrl: '',
    periodEnd: null,
    billingMode: 'postpaid',
    orgs: (g.orgs ?? []).map((name) => ({ type: 'org', id: createHash('sha1').update(name).digest('hex').slice(0, 24), name, fullname: name, email: null, canPay: false, avatarUrl: '', periodEnd: null })),
    auth: { type: 'access_token', accessToken: { displayName: 'mock', role: g.role ?? 'read', createdAt: '2025-01-01T00:00:00.000Z' } },
  });
}

interface CreateBody {
  name?: string;
  organization?: string;
  type?: string;
  private?: boolean;
  visibility?: string;
}

async function createRepo(ctx: Ctx): Promise<void> {
  const body = await readJson<CreateBody>(ctx);
  if (!body) return;
  if (!needWriteToken(ctx)) return;
  const type: RepoType = body.type === 'dataset' ? 'dataset' : 'model';
  if (body.type && body.type !== 'model' && body.type !== 'dataset') return sendError(ctx.res, 400, undefined, `The mock Hub makes model and dataset repos, not ${body.type}.`);
  const owner = body.organization ?? ctx.grant!.user ?? '';
  const name = body.name ?? '';
  if (!/^[\w.-]+$/.test(owner) || !/^[\w.-]{1,96}$/.test(name) || name.startsWith('.')) return sendError(ctx.res, 400, undefined, `"${owner}/${name}" is not a valid repo name.`);
  const id = `${owner}/${name}`;
  if (!namespacesOf(ctx).includes(owner)) return sendError(ctx.res, 403, undefined, `You don't have the rights to create a ${type} under the namespace "${owner}".`);
  const url = `${ctx.base}/${webPrefix(type)}${id}`;
  if (ctx.store.get(type, id)) return sendError(ctx.res, 409, undefined, `You already created this ${type} repo`);
  ctx.uploads.createRepo(type, id, body.private === true || body.visibility === 'private');
  sendJson(ctx.res, 200, { url, name: id, id });
}

interface PreuploadBody {
  files?: { path: string; size: number; sample?: string }[];
}

async function preupload(ctx: Ctx, type: RepoType, id: string, rev: string): Promise<void> {
  const body = await readJson<PreuploadBody>(ctx);
  if (!body || !writableRepo(ctx, type, id, rev)) return;
  if (!Array.isArray(body.files)) return sendError(ctx.res, 400, undefined, 'files is missing');
  sendJson(ctx.res, 200, {
    files: body.files.map((f) => ({ path: f.path, uploadMode: isLfsFile(f.path, f.size) ? 'lfs' : 'regular', shouldIgnore: false })),
  });
}

interface BatchBody {
  operation?: string;
  transfers?: string[];
  objects?: { oid: string; size: number }[];
}

const etagOf = (bytes: Uint8Array): string => `"${createHash('sha1').update(bytes).digest('hex')}"`;

async function lfsBatch(ctx: Ctx, type: RepoType, id: string): Promise<void> {
  const body = await readJson<BatchBody>(ctx);
  if (!body) return;
  const owner = writableRepo(ctx, type, id, 'main');
  if (!owner) return;
  if (body.operation !== 'upload' || !Array.isArray(body.objects)) return sendError(ctx.res, 422, undefined, 'Only uploads are supported.');
  const { uploads } = ctx;
  const { multipartThreshold, partSize, maxFileBytes, quotaBytes } = uploads.limits;
  const incoming = body.objects.filter((o) => !uploads.hasLfs(o.oid) && o.size <= maxFileBytes).reduce((s, o) => s + o.size, 0);
  if (uploads.used(owner) + incoming > quotaBytes) {
    return sendError(ctx.res, 403, undefined, `Storage quota exceeded: "${owner}" holds ${uploads.used(owner)} of its ${quotaBytes} bytes and this upload needs ${incoming} more.`);
  }
  const multipart = (body.transfers ?? []).includes('multipart');
  const objects = body.objects.map((o) => {
    if (!/^[0-9a-f]{64}$/.test(o.oid)) return { oid: o.oid, size: o.size, error: { code: 422, message: 'Invalid oid' } };
    if (o.size > maxFileBytes) return { oid: o.oid, size: o.size, error: { code: 422, message: `This file is ${o.size} bytes, over the ${maxFileBytes} bytes a file may have.` } };
    if (uploads.hasLfs(o.oid)) return { oid: o.oid, size: o.size, authenticated: true }; // already there: nothing to send
    const query = `?size=${o.size}&ns=${encodeURIComponent(owner)}`;
    const store = `${ctx.base}/lfs-storage/${o.oid}`;
    if (multipart && o.size >= multipartThreshold) {
      const parts = Math.ceil(o.size / partSize);
      const header: Record<string, string> = { chunk_size: String(partSize) };
      for (let n = 1; n <= parts; n++) header[String(n).padStart(5, '0')] = `${store}/part/${n}`;
      return { oid: o.oid, size: o.size, authenticated: true, actions: { upload: { href: `${store}/complete${query}`, header } } };
    }
    return { oid: o.oid, size: o.size, authenticated: true, actions: { upload: { href: `${store}${query}` } } };
  });
  sendJson(ctx.res, 200, { transfer: multipart ? 'multipart' : 'basic', objects, hash_algo: 'sha256' }, { 'Content-Type': 'application/vnd.git-lfs+json' });
}

/** PUT /lfs-storage/{oid}[/part/{n}], POST /lfs-storage/{oid}/complete */
async function lfsStorage(ctx: Ctx, parts: string[]): Promise<void> {
  const [oid, what, n] = parts;
  const { uploads } = ctx;
  if (!oid || !/^[0-9a-f]{64}$/.test(oid)) return sendError(ctx.res, 404, undefined, 'NoSuchKey');
  const size = Number(ctx.url.searchParams.get('size'));
  const owner = ctx.url.searchParams.get('ns') ?? '';
  if (ctx.req.method === 'PUT' && what === undefined) {
    const problem = uploads.accept(await uploads.receive(ctx.req), oid, size, owner);
    if (problem) return sendError(ctx.res, 400, undefined, `BadDigest: ${problem}`);
    ctx.res.writeHead(200, { ETag: `"${oid}"`, 'Content-Length': '0' });
    return void ctx.res.end();
  }
  if (ctx.req.method === 'PUT' && what === 'part' && /^\d+$/.test(n ?? '')) {
    const body = await readBody(ctx.req);
    writeFileSync(uploads.partPath(oid, Number(n)), body);
    ctx.res.writeHead(200, { ETag: etagOf(body), 'Content-Length': '0' });
    return void ctx.res.end();
  }
  if (ctx.req.method === 'POST' && what === 'complete') {
    const body = (await readBody(ctx.req)).toString('utf8');
    let done: { oid?: string; parts?: { partNumber: number; etag: string }[] };
    try {
      done = JSON.parse(body);
    } catch {
      return sendError(ctx.res, 400, undefined, 'The completion body is not JSON.');
    }
    const list = done.parts ?? [];
    for (const [i, p] of list.entries()) {
      if (p.partNumber !== i + 1 || !uploads.partExists(oid, p.partNumber)) return sendError(ctx.res, 400, undefined, `InvalidPart: part ${p.partNumber} was not uploaded`);
      if (etagOf(readFileSync(uploads.partPath(oid, p.partNumber))) !== p.etag) return sendError(ctx.res, 400, undefined, `InvalidPart: part ${p.partNumber} has another ETag`);
    }
    const problem = uploads.accept(uploads.joinParts(oid, list.length), oid, size, owner);
    if (problem) return sendError(ctx.res, 400, undefined, `BadDigest: ${problem}`);
    return sendJson(ctx.res, 200, { oid, size });
  }
  sendError(ctx.res, 405, undefined, 'Method Not Allowed');
}

type CommitLine =
  | { key: 'header'; value: { summary?: string; description?: string; parentCommit?: string } }
  | { key: 'file'; value: { path: string; content: string; encoding?: string } }
  | { key: 'lfsFile'; value: { path: string; oid: string; size: number; algo?: string } }
  | { key: 'deletedFile'; value: { path: string } };

async function commit(ctx: Ctx, type: RepoType, id: string, rev: string): Promise<void> {
  const text = (await readBody(ctx.req)).toString('utf8');
  if (!writableRepo(ctx, type, id, rev)) return;
  let lines: CommitLine[];
  try {
    lines = text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as CommitLine);
  } catch {
    return sendError(ctx.res, 400, undefined, 'The commit body is not NDJSON.');
  }
  const header = lines.find((l) => l.key === 'header');
  if (!header || header.key !== 'header' || !header.value.summary) return sendError(ctx.res, 400, undefined, 'The commit needs a header with a summary.');
  const current = ctx.store.get(type, id)!.revisions.get('main')!.sha;
  if (header.value.parentCommit && header.value.parentCommit !== current) {
    return sendError(ctx.res, 412, undefined, `A commit has happened since ${header.value.parentCommit}: the branch is at ${current}.`);
  }
  const { uploads } = ctx;
  for (const l of lines) {
    if (l.key === 'lfsFile') {
      if (!uploads.hasLfs(l.value.oid)) return sendError(ctx.res, 422, undefined, `Your push was rejected because an LFS pointer pointed to a file that does not exist: ${l.value.path}`);
      if (statSync(uploads.lfsPath(l.value.oid)).size !== l.value.size) return sendError(ctx.res, 422, undefined, `${l.value.path}: the LFS object has another size than ${l.value.size}`);
    } else if (l.key === 'file' && l.value.encoding !== undefined && l.value.encoding !== 'base64') {
      return sendError(ctx.res, 422, undefined, `${l.value.path}: unknown encoding ${l.value.encoding}`);
    }
  }
  try {
    for (const l of lines) {
      if (l.key === 'file') uploads.writeFile(type, id, l.value.path, l.value.encoding === 'base64' ? Buffer.from(l.value.content, 'base64') : Buffer.from(l.value.content, 'utf8'));
      else if (l.key === 'lfsFile') uploads.placeLfs(type, id, l.value.path, l.value.oid);
      else if (l.key === 'deletedFile') uploads.deleteFile(type, id, l.value.path);
    }
  } catch (e) {
    return sendError(ctx.res, 422, undefined, `The commit was rejected: ${(e as Error).message}`);
  }
  const sha = ctx.store.get(type, id)!.revisions.get('main')!.sha;
  sendJson(ctx.res, 200, { success: true, commitOid: sha, commitUrl: `${ctx.base}/${webPrefix(type)}${id}/commit/${sha}`, hookOutput: '' });
}

/** Routes the write API; false when the path is not one of it. */
export async function routeWrite(ctx: Ctx, segs: string[]): Promise<boolean> {
  const method = ctx.req.method ?? 'GET';
  if (segs[0] === 'api' && segs[1] === 'whoami-v2' && segs.length === 2 && method === 'GET') {
    whoami(ctx);
    return true;
  }
  if (segs[0] === 'api' && segs[1] === 'repos' && segs[2] === 'create' && method === 'POST') {
    await createRepo(ctx);
    return true;
  }
  if (segs[0] === 'api' && (segs[1] === 'models' || segs[1] === 'datasets') && (segs[4] === 'preupload' || segs[4] === 'commit') && method === 'POST') {
    const type: RepoType = segs[1] === 'models' ? 'model' : 'dataset';
    const id = `${segs[2]}/${segs[3]}`;
    const rev = segs.slice(5).join('/') || 'main';
    if (segs[4] === 'preupload') await preupload(ctx, type, id, rev);
    else await commit(ctx, type, id, rev);
    return true;
  }
  const lfs = segs[0] === 'datasets' ? segs.slice(1) : segs;
  if (lfs.length === 6 && lfs[1].endsWith('.git') && lfs.slice(2).join('/') === 'info/lfs/objects/batch' && method === 'POST') {
    await lfsBatch(ctx, segs[0] === 'datasets' ? 'dataset' : 'model', `${lfs[0]}/${lfs[1].slice(0, -'.git'.length)}`);
    return true;
  }
  if (segs[0] === 'lfs-storage' && (method === 'PUT' || method === 'POST')) {
    await lfsStorage(ctx, segs.slice(1));
    return true;
  }
  return false;
}

// Publishing an export on the Hugging Face Hub with @huggingface/hub: the adapter, a merged model or
// a GGUF (or any export's files) into a new or existing model repo the token may write, in one
// commit, with a model card and progress.
//
//   uploadToHub({ repo, token, files, kind, card, onProgress })
//     1. whoAmI: the token works and has the "write" role; whose namespaces it may write
//     2. the repo: "name" goes under the token's user; an existing repo must be in one of its
//        namespaces; a missing one is created (unless createIfMissing is false)
//     3. each file made into a Blob (streamed files through `spool`: in memory by default, a
//        temporary file with nodeFileSpool), README.md from the card when the files have none
//     4. uploadFilesWithProgress: preupload, LFS (basic or multipart) for large files, commit
//
// Failures are HubUploadErrors whose message is a sentence for people. LFS objects the Hub already
// holds are not sent again, so running a failed upload again resumes it.

import { createRepo, HubApiError, repoExists, uploadFilesWithProgress, whoAmI, type CommitOutput, type CommitProgressEvent } from '@huggingface/hub';
import type { ExportFile } from './export-files.ts';
import { hubModelCard, type HubCardFacts, type UploadKind } from './hub-upload-card.ts';

export type { HubCardFacts, UploadKind } from './hub-upload-card.ts';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

export type HubUploadErrorKind =
  | 'no-token'
  | 'invalid-token'
  | 'read-only-token'
  | 'bad-name'
  | 'not-yours'
  | 'missing-repo'
  | 'too-large'
  | 'quota'
  | 'rate-limited'
  | 'network'
  | 'rejected'
  | 'aborted';

export class HubUploadError extends Error {
  override name = 'HubUploadError';
  constructor(
    readonly kind: HubUploadErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A file already in a Blob (a File from disk or OPFS): uploaded without copying. */
export interface BlobFile {
  name: string;
  blob: Blob;
}

export type UploadFile = ExportFile | BlobFile;

/** Turns a streamed file into a Blob the upload can read several times (hash, then send). */
export type Spool = (file: ExportFile, signal?: AbortSignal) => Promise<{ blob: Blob; release?: () => Promise<void> }>;

export interface HubUploadProgress {
  phase: 'checking' | 'preparing' | 'hashing' | 'uploading' | 'committing' | 'done';
  /** The file being worked on, when one is. */
  file?: string;
  /** Bytes prepared, hashed or sent (by phase) of all files. */
  bytesDone: number;
  bytesTotal: number;
}

export interface HubUploadRequest {
  /** "name" (under the token's user) or "namespace/name". */
  repo: string;
  token: string | null | undefined;
  /** Paths in the repo: the files' names ("adapter_config.json", "sub/dir/file.bin"). */
  files: readonly UploadFile[];
  /** What is uploaded: picks the card (and the commit title). */
  kind: UploadKind;
  /** The run, for README.md; written only when `files` has no README.md. */
  card?: HubCardFacts | null;
  /** A new repo is private (default false). */
  private?: boolean;
  /** Create the repo when it does not exist (default true). */
  createIfMissing?: boolean;
  commitTitle?: string;
  /** The Hub's base URL (default https://huggingface.co; the mock Hub's in tests). */
  hubUrl?: string;
  signal?: AbortSignal;
  onProgress?: (p: HubUploadProgress) => void;
  /** Default: memorySpool. */
  spool?: Spool;
}

export interface HubUploadResult {
  repo: string;
  /** The repo's page. */
  url: string;
  commit: string;
  commitUrl: string;
  created: boolean;
  files: { path: string; bytes: number }[];
  /** The token's user. */
  user: string;
}

/** Collects a streamed file into an in-memory Blob (browsers may keep large Blobs on disk). */
export const memorySpool: Spool = async (file, signal) => {
  const parts: Blob[] = [];
  let pending: Uint8Array<ArrayBuffer>[] = [];
  let pendingBytes = 0;
  for await (const chunk of file.chunks()) {
    signal?.throwIfAborted();
    pending.push(new Uint8Array(chunk));
    pendingBytes += chunk.length;
    // Fold into a Blob every 64 MiB so the chunks do not pile up in the JS heap.
    if (pendingBytes >= 64 << 20) {
      parts.push(new Blob(pending));
      pending = [];
      pendingBytes = 0;
    }
  }
  parts.push(new Blob(pending));
  return { blob: new Blob(parts) };
};

const REPO_PART = /^[\w.-]{1,96}$/;

function fail(kind: HubUploadErrorKind, message: string, cause?: unknown): HubUploadError {
  return new HubUploadError(kind, message, { cause });
}

/** The Hub's own words of an API error, without the URL and request id trailer. */
function hubWords(e: HubApiError): string {
  const data = e.data as { error?: unknown; message?: unknown } | undefined;
  const said = typeof data?.error === 'string' ? data.error : typeof data?.message === 'string' ? data.message : e.message.replace(/\. URL: .*$/s, '');
  return said.replace(/\.$/, '');
}

const RESUME = 'Files the Hub already received are kept: upload again to send only the rest.';

/** An error of any step as a HubUploadError with a sentence for people. */
function explain(e: unknown, repo: string, signal?: AbortSignal): HubUploadError {
  if (e instanceof HubUploadError) return e;
  if (signal?.aborted || (e instanceof Error && e.name === 'AbortError')) return fail('aborted', `The upload to ${repo} was stopped. ${RESUME}`, e);
  if (e instanceof HubApiError) {
    const words = hubWords(e);
    if (e.statusCode === 401) return fail('invalid-token', `The Hub does not accept this token (${words}): it may be mistyped or revoked. Paste a current token with the "write" role.`, e);
    if (e.statusCode === 413 || /too large|bytes a file may have|exceeds the (file )?size/i.test(words)) return fail('too-large', `The Hub refused a file as too large: ${words}. Pick a smaller export (a stronger GGUF quantization, or the adapter alone).`, e);
    if (/quota|storage limit|storage space/i.test(words)) return fail('quota', `The Hub account is out of storage: ${words}. Free space on the Hub (delete old repos or files), or upload under an organization with room. ${RESUME}`, e);
    if (e.statusCode === 429) return fail('rate-limited', `The Hub asked to slow down (${words}). Wait a minute, then upload again. ${RESUME}`, e);
    if (e.statusCode === 403) return fail('rejected', `The Hub refused to write to ${repo}: ${words}. Check that the token has the "write" role and may write to that namespace.`, e);
    return fail('rejected', `The Hub refused the upload to ${repo} (HTTP ${e.statusCode}): ${words}. ${RESUME}`, e);
  }
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof TypeError || /fetch failed|network|ECONN|socket/i.test(message)) {
    return fail('network', `The connection to the Hub failed (${message}). Check the network, then upload again. ${RESUME}`, e);
  }
  return fail('rejected', `The upload to ${repo} failed: ${message}. ${RESUME}`, e);
}

interface Account {
  user: string;
  /** The user and its orgs: where the token may create and write. */
  namespaces: string[];
}

async function account(token: string, hubUrl: string): Promise<Account> {
  let who: Awaited<ReturnType<typeof whoAmI>>;
  try {
    who = await whoAmI({ accessToken: token, hubUrl });
  } catch (e) {
    if (e instanceof HubApiError && e.statusCode === 401) {
      throw fail('invalid-token', 'The Hub does not accept this token: it may be mistyped, expired or revoked. Paste a current token with the "write" role (huggingface.co/settings/tokens).', e);
    }
    throw e;
  }
  if (who.auth.accessToken?.role === 'read') {
    throw fail('read-only-token', `This token of ${who.name} is read-only: uploading needs a token with the "write" role (huggingface.co/settings/tokens), or a fine-grained one that may write to the repo.`);
  }
  const orgs = who.type === 'user' ? who.orgs.map((o) => o.name) : [];
  return { user: who.name, namespaces: [who.name, ...orgs] };
}

function repoId(name: string, user: string): string {
  const id = name.includes('/') ? name : `${user}/${name}`;
  const parts = id.split('/');
  if (parts.length !== 2 || !parts.every((p) => REPO_PART.test(p)) || parts[1].startsWith('.') || parts[1].endsWith('.git')) {
    throw fail('bad-name', `"${name}" is not a repo name the Hub takes: use "name" or "namespace/name", with letters, digits, "-", "_" and "." (up to 96 characters).`);
  }
  return id;
}

const whose = (a: Account): string => `this token belongs to ${a.user}${a.namespaces.length > 1 ? ` (organizations: ${a.namespaces.slice(1).join(', ')})` : ''}`;

/** The repo to write to, created when missing; `created` tells which. */
async function ensureRepo(id: string, a: Account, req: HubUploadRequest, token: string, hubUrl: string): Promise<boolean> {
  const owner = id.split('/')[0];
  const mine = a.namespaces.includes(owner);
  const exists = await repoExists({ repo: { type: 'model', name: id }, accessToken: token, hubUrl });
  if (exists && !mine) {
    throw fail('not-yours', `The repo ${id} exists and belongs to "${owner}", and ${whose(a)}: it cannot write there. Pick a name under ${a.user}, like ${a.user}/${id.split('/')[1]}.`);
  }
  if (exists) return false;
  if (req.createIfMissing === false) {
    throw fail('missing-repo', `There is no model repo ${id} on the Hub (or it is private and this token may not see it). Create it first, or let the upload create it.`);
  }
  if (!mine) throw fail('not-yours', `New repos can go under ${a.namespaces.map((n) => `"${n}"`).join(' or ')} only: ${whose(a)}, not to "${owner}".`);
  try {
    await createRepo({ repo: { type: 'model', name: id }, accessToken: token, hubUrl, private: req.private === true });
    return true;
  } catch (e) {
    if (e instanceof HubApiError && e.statusCode === 409) return false; // made meanwhile: write to it
    if (e instanceof HubApiError && e.statusCode === 403) throw fail('not-yours', `The Hub refused to create ${id}: ${hubWords(e)}. ${whose(a)}.`, e);
    throw e;
  }
}

const isBlobFile = (f: UploadFile): f is BlobFile => 'blob' in f;

/** The upload's files as Blobs, README.md from the card added when missing. */
async function blobs(req: HubUploadRequest, report: (bytes: number, file: string) => void): Promise<{ files: { path: string; blob: Blob }[]; release: (() => Promise<void>)[] }> {
  const spool = req.spool ?? memorySpool;
  const files: { path: string; blob: Blob }[] = [];
  const release: (() => Promise<void>)[] = [];
  for (const f of req.files) {
    if (isBlobFile(f)) files.push({ path: f.name, blob: f.blob });
    else {
      const s = await spool(f, req.signal);
      files.push({ path: f.name, blob: s.blob });
      if (s.release) release.push(s.release);
    }
    report(files[files.length - 1].blob.size, f.name);
  }
  if (req.card && !files.some((f) => f.path === 'README.md')) files.push({ path: 'README.md', blob: new Blob([hubModelCard(req.kind, req.card)]) });
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f.path)) throw fail('bad-name', `Two files would both be ${f.path} in the repo.`);
    seen.add(f.path);
  }
  return { files, release };
}

const TITLES: Record<UploadKind, string> = { adapter: 'LoRA adapter', merged: 'merged model', gguf: 'GGUF' };

/** Uploads the files to a model repo on the Hub in one commit. Throws HubUploadError. */
export async function uploadToHub(req: HubUploadRequest): Promise<HubUploadResult> {
  const hubUrl = (req.hubUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
  const token = req.token?.trim();
  if (!token) {
    throw fail('no-token', 'Uploading to the Hub needs an access token with the "write" role: create one at huggingface.co/settings/tokens and enter it in the Hub settings.');
  }
  const progress = (p: HubUploadProgress) => req.onProgress?.(p);
  let id = req.repo;
  const release: (() => Promise<void>)[] = [];
  try {
    progress({ phase: 'checking', bytesDone: 0, bytesTotal: 0 });
    const a = await account(token, hubUrl);
    id = repoId(req.repo, a.user);
    const created = await ensureRepo(id, a, req, token, hubUrl);

    let prepared = 0;
    const known = req.files.reduce((s, f) => s + (isBlobFile(f) ? f.blob.size : (f.size ?? 0)), 0);
    const made = await blobs(req, (bytes, file) => {
      prepared += bytes;
      progress({ phase: 'preparing', file, bytesDone: prepared, bytesTotal: Math.max(known, prepared) });
    });
    release.push(...made.release);
    const sizes = new Map(made.files.map((f) => [f.path, f.blob.size]));
    const total = made.files.reduce((s, f) => s + f.blob.size, 0);

    // Per file, the fraction hashed and the fraction sent: progress is their bytes.
    const hashed = new Map<string, number>();
    const sent = new Map<string, number>();
    const bytesOf = (m: Map<string, number>) => [...m].reduce((s, [path, x]) => s + x * (sizes.get(path) ?? 0), 0);
    const it = uploadFilesWithProgress({
      repo: { type: 'model', name: id },
      accessToken: token,
      hubUrl,
      files: made.files.map((f) => ({ path: f.path, content: f.blob })),
      commitTitle: req.commitTitle ?? `Upload ${TITLES[req.kind]} from WebTune Studio`,
      abortSignal: req.signal,
    });
    let step: IteratorResult<CommitProgressEvent, CommitOutput | undefined>;
    while (!(step = await it.next()).done) {
      const ev = step.value;
      if (ev.event === 'phase') {
        if (ev.phase === 'committing') {
          // Small files travel inside the commit itself: they are sent now.
          for (const path of sizes.keys()) if (!sent.has(path)) sent.set(path, 1);
          progress({ phase: 'committing', bytesDone: total, bytesTotal: total });
        }
      } else if (ev.state === 'hashing') {
        hashed.set(ev.path, ev.progress);
        progress({ phase: 'hashing', file: ev.path, bytesDone: bytesOf(hashed), bytesTotal: total });
      } else if (ev.state === 'uploading') {
        sent.set(ev.path, ev.progress);
        progress({ phase: 'uploading', file: ev.path, bytesDone: bytesOf(sent), bytesTotal: total });
      }
    }
    const out = step.value;
    if (!out) throw fail('rejected', `The Hub gave no commit for the upload to ${id}.`);
    progress({ phase: 'done', bytesDone: total, bytesTotal: total });
    return {
      repo: id,
      url: `${hubUrl}/${id}`,
      commit: out.commit.oid,
      commitUrl: out.commit.url,
      created,
      files: made.files.map((f) => ({ path: f.path, bytes: f.blob.size })),
      user: a.user,
    };
  } catch (e) {
    throw explain(e, id, req.signal);
  } finally {
    for (const r of release) await r().catch(() => undefined);
  }
}

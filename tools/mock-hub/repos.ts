// Fixture repos on disk -> what the Hub knows about them: revisions, files, git/LFS ids.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

export type RepoType = 'model' | 'dataset';

/** Optional `.mock.json` in a repo folder. */
export interface RepoMeta {
  gated?: false | 'auto' | 'manual';
  private?: boolean;
  /** Commit id of main; default: a hash of the file ids. */
  sha?: string;
  /** Branch name -> sub-folder of the repo holding that branch's files (hidden from main). */
  branches?: Record<string, string>;
  cardData?: Record<string, unknown>;
  tags?: string[];
  pipeline_tag?: string;
  library_name?: string;
  /** Counts the Hub shows (default 0), so search results can be told apart and sorted. */
  downloads?: number;
  likes?: number;
}

export interface LfsInfo {
  oid: string; // sha256 hex
  size: number;
  pointerSize: number;
}

export interface RepoFile {
  path: string; // repo-relative, '/'-separated
  abs: string;
  size: number;
  oid: string; // git blob sha1 (of the LFS pointer for LFS files)
  lfs?: LfsInfo;
}

export interface Revision {
  name: string;
  sha: string;
  files: RepoFile[]; // sorted by path
}

export interface Repo {
  type: RepoType;
  id: string;
  dir: string;
  meta: RepoMeta;
  revisions: Map<string, Revision>; // by branch name
}

// Extensions the Hub's default .gitattributes send to LFS.
const LFS_EXT =
  /\.(safetensors|bin|parquet|gguf|pt|pth|ckpt|onnx|h5|msgpack|model|arrow|zip|gz|tar|npy|npz|tflite|ot)$/i;
const LFS_MIN_SIZE = 10 * 1024 * 1024;

/** Whether the Hub keeps a file of this path and size in LFS (by extension, or 10 MiB and more). */
export function isLfsFile(path: string, size: number): boolean {
  return LFS_EXT.test(path) || size >= LFS_MIN_SIZE;
}

interface Hashes {
  mtimeMs: number;
  size: number;
  sha1: string;
  sha256: string;
}
// Hashing a mounted demo model on every request would be slow: remember by (mtime, size).
const hashCache = new Map<string, Hashes>();

function hashes(abs: string, mtimeMs: number, size: number): Hashes {
  const hit = hashCache.get(abs);
  if (hit && hit.mtimeMs === mtimeMs && hit.size === size) return hit;
  const bytes = readFileSync(abs);
  const h: Hashes = {
    mtimeMs,
    size,
    sha1: gitBlobOid(bytes),
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
  hashCache.set(abs, h);
  return h;
}

export function gitBlobOid(bytes: Uint8Array | string): string {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');
}

export function lfsPointer(sha256: string, size: number): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`;
}

function walk(dir: string, skip: Set<string>, out: string[]): void {
  for (const name of readdirSync(dir).sort()) {
    const abs = join(dir, name);
    if (skip.has(abs)) continue;
    const st = statSync(abs);
    if (st.isDirectory()) walk(abs, skip, out);
    else if (st.isFile()) out.push(abs);
  }
}

function scanFiles(root: string, skip: Set<string>): RepoFile[] {
  const abs: string[] = [];
  if (existsSync(root)) walk(root, skip, abs);
  return abs.map((a) => {
    const st = statSync(a);
    const h = hashes(a, st.mtimeMs, st.size);
    const path = relative(root, a).split(sep).join('/');
    if (isLfsFile(path, st.size)) {
      const pointer = lfsPointer(h.sha256, st.size);
      return {
        path,
        abs: a,
        size: st.size,
        oid: gitBlobOid(pointer),
        lfs: { oid: h.sha256, size: st.size, pointerSize: Buffer.byteLength(pointer) },
      };
    }
    return { path, abs: a, size: st.size, oid: h.sha1 };
  });
}

function commitSha(type: RepoType, id: string, branch: string, files: RepoFile[]): string {
  const h = createHash('sha1').update(`${type}/${id}@${branch}\n`);
  for (const f of files) h.update(`${f.path} ${f.oid}\n`);
  return h.digest('hex');
}

/** Reads a repo folder fresh (cheap for fixtures; hashes are cached). */
export function loadRepo(type: RepoType, id: string, dir: string): Repo {
  const metaPath = join(dir, '.mock.json');
  const meta: RepoMeta = existsSync(metaPath) ? JSON.parse(readFileSync(metaPath, 'utf8')) : {};
  const branches = meta.branches ?? {};
  const skip = new Set([metaPath, ...Object.values(branches).map((d) => join(dir, d))]);
  const revisions = new Map<string, Revision>();
  const mainFiles = scanFiles(dir, skip);
  revisions.set('main', { name: 'main', sha: meta.sha ?? commitSha(type, id, 'main', mainFiles), files: mainFiles });
  for (const [name, sub] of Object.entries(branches)) {
    const files = scanFiles(join(dir, sub), new Set());
    revisions.set(name, { name, sha: commitSha(type, id, name, files), files });
  }
  return { type, id, dir, meta, revisions };
}

/** A branch name or a commit sha -> revision. */
export function findRevision(repo: Repo, rev: string): Revision | undefined {
  const byName = repo.revisions.get(rev);
  if (byName) return byName;
  for (const r of repo.revisions.values()) if (r.sha === rev) return r;
  return undefined;
}

export interface FixtureRoot {
  models?: string;
  datasets?: string;
}

/** Where repos live: explicit mounts first, then `{root}/{owner}/{name}` folders. */
export class RepoStore {
  constructor(
    private roots: FixtureRoot[],
    private mounts: { models?: Record<string, string>; datasets?: Record<string, string> },
  ) {}

  dirOf(type: RepoType, id: string): string | undefined {
    const mounted = type === 'model' ? this.mounts.models?.[id] : this.mounts.datasets?.[id];
    if (mounted) return existsSync(mounted) ? mounted : undefined;
    if (!/^[\w.-]+(\/[\w.-]+)?$/.test(id) || id.split('/').some((s) => s === '..' || s === '.')) return undefined;
    for (const r of this.roots) {
      const base = type === 'model' ? r.models : r.datasets;
      if (!base) continue;
      const dir = join(base, id);
      if (existsSync(dir) && statSync(dir).isDirectory()) return dir;
    }
    return undefined;
  }

  get(type: RepoType, id: string): Repo | undefined {
    const dir = this.dirOf(type, id);
    return dir ? loadRepo(type, id, dir) : undefined;
  }

  /** Ids of every repo of a type: the mounted ones, then the `{owner}/{name}` folders of each root. */
  list(type: RepoType): string[] {
    const ids = new Set(Object.keys((type === 'model' ? this.mounts.models : this.mounts.datasets) ?? {}));
    for (const r of this.roots) {
      const base = type === 'model' ? r.models : r.datasets;
      if (!base || !existsSync(base)) continue;
      for (const owner of readdirSync(base).sort()) {
        const ownerDir = join(base, owner);
        if (!statSync(ownerDir).isDirectory()) continue;
        for (const name of readdirSync(ownerDir).sort()) {
          if (statSync(join(ownerDir, name)).isDirectory()) ids.add(`${owner}/${name}`);
        }
      }
    }
    return [...ids].filter((id) => this.dirOf(type, id) !== undefined);
  }

  /** An LFS object of one repo by its sha256 (any revision), for the CDN path. */
  findLfs(type: RepoType, id: string, sha256: string): RepoFile | undefined {
    const repo = this.get(type, id);
    if (!repo) return undefined;
    for (const rev of repo.revisions.values()) {
      const f = rev.files.find((x) => x.lfs?.oid === sha256);
      if (f) return f;
    }
    return undefined;
  }
}

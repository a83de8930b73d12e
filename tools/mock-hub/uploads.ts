// What the mock Hub stores when a client writes: repos it created (folders under `root/models` and
// `root/datasets`, read back by the RepoStore like any fixture repo, so uploads come back through
// the normal download URLs) and LFS objects (`root/.lfs/{sha256}`, multipart parts beside them).
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, sep } from 'node:path';
import type { FixtureRoot, RepoType } from './repos.ts';

export interface UploadLimits {
  /** Files of at least this many bytes are uploaded in parts (the LFS "multipart" transfer). */
  multipartThreshold: number;
  /** Bytes per part of a multipart upload. */
  partSize: number;
  /** Larger files are refused in the LFS batch answer (the Hub's per-file limit). */
  maxFileBytes: number;
  /** Bytes of LFS objects one namespace may hold; more is refused (a storage quota). */
  quotaBytes: number;
}

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = {
  multipartThreshold: 64 * 1024 * 1024,
  partSize: 16 * 1024 * 1024,
  maxFileBytes: 50 * 1024 ** 3,
  quotaBytes: Number.MAX_SAFE_INTEGER,
};

const HEX64 = /^[0-9a-f]{64}$/;

export class Uploads {
  /** The folder everything is stored under. */
  readonly dir: string;
  readonly root: FixtureRoot;
  private readonly lfsDir: string;
  private readonly owned: boolean;
  /** LFS bytes stored per namespace (owner), for the quota. */
  private readonly usage = new Map<string, number>();

  /** `dir` undefined: a temporary folder, deleted by close(). */
  constructor(
    dir: string | undefined,
    readonly limits: UploadLimits,
  ) {
    this.owned = dir === undefined;
    const base = dir ?? mkdtempSync(join(tmpdir(), 'mock-hub-uploads-'));
    this.dir = base;
    this.root = { models: join(base, 'models'), datasets: join(base, 'datasets') };
    this.lfsDir = join(base, '.lfs');
    mkdirSync(this.lfsDir, { recursive: true });
  }

  /** The folder of a repo this store holds (created or not). */
  repoDir(type: RepoType, id: string): string {
    return join(type === 'dataset' ? this.root.datasets! : this.root.models!, ...id.split('/'));
  }

  createRepo(type: RepoType, id: string, isPrivate: boolean): void {
    const dir = this.repoDir(type, id);
    mkdirSync(dir, { recursive: true });
    if (isPrivate) writeFileSync(join(dir, '.mock.json'), JSON.stringify({ private: true }));
  }

  /** Whether this store holds the repo (it may also be a fixture repo, which it does not hold). */
  holds(type: RepoType, id: string): boolean {
    return existsSync(this.repoDir(type, id));
  }

  private filePath(type: RepoType, id: string, path: string): string {
    const rel = normalize(path);
    if (!path || rel.startsWith('..') || rel.startsWith(sep) || rel === '.mock.json' || path.includes('\\')) throw new Error(`bad path ${JSON.stringify(path)}`);
    return join(this.repoDir(type, id), rel);
  }

  writeFile(type: RepoType, id: string, path: string, bytes: Uint8Array): void {
    const p = this.filePath(type, id, path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, bytes);
  }

  /** Puts the stored LFS object `oid` at `path` of the repo. */
  placeLfs(type: RepoType, id: string, path: string, oid: string): void {
    const p = this.filePath(type, id, path);
    mkdirSync(dirname(p), { recursive: true });
    copyFileSync(this.lfsPath(oid), p);
  }

  deleteFile(type: RepoType, id: string, path: string): boolean {
    const p = this.filePath(type, id, path);
    if (!existsSync(p)) return false;
    unlinkSync(p);
    return true;
  }

  lfsPath(oid: string): string {
    if (!HEX64.test(oid)) throw new Error(`bad oid ${oid}`);
    return join(this.lfsDir, oid);
  }

  hasLfs(oid: string): boolean {
    return HEX64.test(oid) && existsSync(this.lfsPath(oid));
  }

  used(namespace: string): number {
    return this.usage.get(namespace) ?? 0;
  }

  /** Streams a request body to a temporary file; resolves to its path, size and SHA-256. */
  async receive(req: IncomingMessage): Promise<{ path: string; size: number; sha256: string }> {
    const path = join(this.lfsDir, `incoming-${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    const out = createWriteStream(path);
    try {
      for await (const chunk of req) {
        const c = chunk as Buffer;
        hash.update(c);
        size += c.length;
        if (!out.write(c)) await new Promise<void>((r) => out.once('drain', () => r()));
      }
    } finally {
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    }
    return { path, size, sha256: hash.digest('hex') };
  }

  /** Keeps a received body as LFS object `oid` when its hash and size are the announced ones. */
  accept(received: { path: string; size: number; sha256: string }, oid: string, size: number, namespace: string): string | null {
    if (received.sha256 !== oid || received.size !== size) {
      rmSync(received.path, { force: true });
      return `the bytes received (${received.size}, sha256 ${received.sha256}) are not object ${oid} of ${size} bytes`;
    }
    if (!this.hasLfs(oid)) {
      renameSync(received.path, this.lfsPath(oid));
      this.usage.set(namespace, this.used(namespace) + size);
    } else rmSync(received.path, { force: true });
    return null;
  }

  partPath(oid: string, part: number): string {
    return `${this.lfsPath(oid)}.part${part}`;
  }

  /** Joins the parts of a multipart upload (in order) into one received body. */
  joinParts(oid: string, parts: number): { path: string; size: number; sha256: string } {
    const path = join(this.lfsDir, `incoming-${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    writeFileSync(path, new Uint8Array(0));
    for (let n = 1; n <= parts; n++) {
      const bytes = readFileSync(this.partPath(oid, n));
      hash.update(bytes);
      size += bytes.length;
      writeFileSync(path, bytes, { flag: 'a' });
      unlinkSync(this.partPath(oid, n));
    }
    return { path, size, sha256: hash.digest('hex') };
  }

  partExists(oid: string, part: number): boolean {
    return existsSync(this.partPath(oid, part)) && statSync(this.partPath(oid, part)).isFile();
  }

  close(): void {
    if (this.owned) rmSync(this.dir, { recursive: true, force: true });
  }
}

// Uploads to the Hub (src/io/hub-upload.ts) through @huggingface/hub against the mock Hub: an
// adapter as a zip and as a folder, a 5 MiB GGUF in parts (multipart LFS) spooled to disk, each
// read back through the normal download URLs; a failed commit uploaded again without sending the
// LFS object twice; and the errors people get, as sentences.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseModelConfig } from '../src/engine/arch.ts';
import { fileBytes, type ExportFile } from '../src/io/export-files.ts';
import { HubUploadError, uploadToHub, type HubCardFacts, type HubUploadProgress, type HubUploadRequest } from '../src/io/hub-upload.ts';
import { nodeFileSpool } from '../src/io/hub-upload-node.ts';
import { peftAdapterFiles, peftAdapterZip } from '../src/io/peft.ts';
import { startMockHub, type MockHub } from '../tools/mock-hub/server.ts';
import { randomAdapter } from './export-helpers.ts';

const arch = parseModelConfig(JSON.parse(readFileSync(join('public/demo/model', 'config.json'), 'utf8')));
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

const CARD: HubCardFacts = {
  baseModel: 'webtune/demo-tiny-llama',
  settings: { r: 8, loraAlpha: 16, useRslora: true, targetModules: ['q_proj', 'v_proj'] },
  datasets: ['webtune/demo-sort-words'],
  template: 'chatml',
  training: { learning_rate: 3e-4, max_steps: 60 },
  steps: 60,
  finalLoss: 0.4321,
  losses: [
    { step: 1, loss: 6.3 },
    { step: 60, loss: 0.4321 },
  ],
  date: '2026-03-01',
};

/** A fake GGUF of `size` bytes, made in 64 KiB chunks from a seed (the same bytes every call). */
function bigFile(name: string, size: number, seed: number): ExportFile {
  return {
    name,
    size,
    async *chunks() {
      let x = seed;
      for (let at = 0; at < size; at += 65536) {
        const c = new Uint8Array(Math.min(65536, size - at));
        for (let i = 0; i < c.length; i++) {
          x = (Math.imul(x, 1103515245) + 12345) >>> 0;
          c[i] = x >>> 24;
        }
        yield c;
      }
    },
  };
}

let hub: MockHub;
beforeAll(async () => {
  hub = await startMockHub({ uploadLimits: { multipartThreshold: 2 * MiB, partSize: MiB } });
});
afterAll(() => hub.close());

const upload = (r: Partial<HubUploadRequest> & Pick<HubUploadRequest, 'repo' | 'files'>) => uploadToHub({ token: 'hf_mock_write', kind: 'adapter', hubUrl: hub.url, ...r });
const download = async (repo: string, path: string): Promise<Uint8Array> => {
  const res = await fetch(`${hub.url}/${repo}/resolve/main/${path}`, { headers: { Authorization: 'Bearer hf_mock_write' } });
  expect(res.status, `${repo}/${path}`).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
};
const rejection = async (p: Promise<unknown>): Promise<HubUploadError> => {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(HubUploadError);
    return e as HubUploadError;
  }
  throw new Error('the upload did not fail');
};
const requestsSince = (n: number) => hub.requests.slice(n).map((r) => `${r.method} ${r.url.split('?')[0]}`);

describe('uploads', () => {
  it('creates a repo and uploads the adapter .zip with a model card, with progress to the end', async () => {
    const zip: ExportFile = { name: 'demo-tiny-llama-lora.zip', chunks: () => peftAdapterZip(arch, randomAdapter(arch, 1), undefined, new Date('2026-03-01T00:00:00Z')) };
    const events: HubUploadProgress[] = [];
    const before = hub.requests.length;
    const r = await upload({ repo: 'demo-lora-zip', files: [zip], card: CARD, onProgress: (p) => events.push(p) });
    expect(r).toMatchObject({ repo: 'mock-user/demo-lora-zip', created: true, user: 'mock-user', url: `${hub.url}/mock-user/demo-lora-zip` });
    expect(r.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(r.files.map((f) => f.path)).toEqual(['demo-tiny-llama-lora.zip', 'README.md']);
    expect(sha256(await download(r.repo, zip.name))).toBe(sha256(await fileBytes(zip)));
    const card = new TextDecoder().decode(await download(r.repo, 'README.md'));
    expect(card).toContain('base_model: webtune/demo-tiny-llama');
    expect(card).toContain('- webtune-studio');
    expect(card).toContain('| final training loss | 0.4321 |');
    expect(card).toContain('- webtune/demo-sort-words');
    // Through @huggingface/hub's calls: whoami, create, preupload, LFS batch, the PUT, the commit.
    const calls = requestsSince(before);
    for (const c of ['GET /api/whoami-v2', 'POST /api/repos/create', 'POST /api/models/mock-user/demo-lora-zip/preupload/main', 'POST /mock-user/demo-lora-zip.git/info/lfs/objects/batch', 'POST /api/models/mock-user/demo-lora-zip/commit/main']) {
      expect(calls).toContain(c);
    }
    expect(calls.some((c) => c.startsWith('PUT /lfs-storage/'))).toBe(true);
    const phases = [...new Set(events.map((e) => e.phase))];
    expect(phases[0]).toBe('checking');
    expect(phases).toEqual(expect.arrayContaining(['preparing', 'hashing', 'uploading', 'committing', 'done']));
    const last = events.at(-1)!;
    expect(last).toMatchObject({ phase: 'done', bytesDone: last.bytesTotal });
    expect(last.bytesTotal).toBe(r.files.reduce((s, f) => s + f.bytes, 0));
  });

  it('uploads the adapter as a folder into a repo that exists (the org\'s), the safetensors through LFS', async () => {
    const files = peftAdapterFiles(arch, randomAdapter(arch, 2), { ...CARD });
    const first = await upload({ repo: 'mock-org/demo-lora', files: files.slice(0, 1) });
    expect(first.created).toBe(true);
    const r = await upload({ repo: 'mock-org/demo-lora', files });
    expect(r.created).toBe(false);
    for (const f of files) expect(sha256(await download(r.repo, f.name)), f.name).toBe(sha256(await fileBytes(f)));
    const info = await (await fetch(`${hub.url}/api/models/mock-org/demo-lora?blobs=true`, { headers: { Authorization: 'Bearer hf_mock_write' } })).json();
    const st = info.siblings.find((s: { rfilename: string }) => s.rfilename === 'adapter_model.safetensors');
    expect(st.lfs.sha256).toBe(sha256(await fileBytes(files[1])));
    expect(info.sha).toBe(r.commit);
  });

  it('uploads a 5 MiB GGUF in parts, spooled to disk, and reads it back whole', async () => {
    const gguf = bigFile('demo-Q4_K_M.gguf', 5 * MiB + 12345, 7);
    const before = hub.requests.length;
    const events: HubUploadProgress[] = [];
    const r = await upload({ repo: 'demo-gguf', files: [gguf], kind: 'gguf', card: { ...CARD, ggufType: 'Q4_K_M', ggufFile: gguf.name }, spool: nodeFileSpool(), onProgress: (p) => events.push(p) });
    const parts = requestsSince(before).filter((c) => /^PUT \/lfs-storage\/[0-9a-f]{64}\/part\/\d+$/.test(c));
    expect(parts).toHaveLength(6);
    expect(requestsSince(before).some((c) => /^POST \/lfs-storage\/[0-9a-f]{64}\/complete$/.test(c))).toBe(true);
    expect(sha256(await download(r.repo, gguf.name))).toBe(sha256(await fileBytes(gguf)));
    const card = new TextDecoder().decode(await download(r.repo, 'README.md'));
    expect(card).toContain('library_name: gguf');
    expect(card).toContain('llama-cli -m demo-Q4_K_M.gguf -cnv');
    const done = events.filter((e) => e.phase === 'uploading').map((e) => e.bytesDone);
    expect(done.every((b, i) => i === 0 || b >= done[i - 1])).toBe(true);
  });

  it('resumes: after a failed commit, uploading again does not send the large file twice', async () => {
    const gguf = bigFile('model-Q8_0.gguf', 3 * MiB, 11);
    hub.faults.httpError({ pathPrefix: '/api/models/mock-user/demo-resume/commit', status: 500, message: 'Internal Error - We\'re working hard to fix this as soon as possible!' });
    const e = await rejection(upload({ repo: 'demo-resume', files: [gguf], kind: 'gguf' }));
    expect(e.kind).toBe('rejected');
    expect(e.message).toMatch(/^The Hub refused the upload to mock-user\/demo-resume \(HTTP 500\): Internal Error.*upload again to send only the rest\.$/);
    const before = hub.requests.length;
    const r = await upload({ repo: 'demo-resume', files: [gguf], kind: 'gguf' });
    expect(r.created).toBe(false);
    expect(requestsSince(before).filter((c) => c.startsWith('PUT /lfs-storage/'))).toEqual([]);
    expect(sha256(await download(r.repo, gguf.name))).toBe(sha256(await fileBytes(gguf)));
  });
});

describe('upload errors', () => {
  const files = [{ name: 'notes.txt', blob: new Blob(['hello']) }];

  it('no token', async () => {
    for (const token of [undefined, null, '', '   ']) {
      const e = await rejection(upload({ repo: 'x', files, token }));
      expect(e.kind).toBe('no-token');
      expect(e.message).toContain('needs an access token with the "write" role');
    }
  });

  it('a token the Hub does not know', async () => {
    const e = await rejection(upload({ repo: 'x', files, token: 'hf_not_a_token' }));
    expect(e.kind).toBe('invalid-token');
    expect(e.message).toMatch(/^The Hub does not accept this token/);
  });

  it('a read-only token, and nothing is created', async () => {
    const e = await rejection(upload({ repo: 'read-only-attempt', files, token: 'hf_mock_read' }));
    expect(e.kind).toBe('read-only-token');
    expect(e.message).toBe('This token of mock-user is read-only: uploading needs a token with the "write" role (huggingface.co/settings/tokens), or a fine-grained one that may write to the repo.');
    expect((await fetch(`${hub.url}/api/models/mock-user/read-only-attempt`, { headers: { Authorization: 'Bearer hf_mock_write' } })).status).toBe(404);
  });

  it('a missing repo when creating is not allowed', async () => {
    const e = await rejection(upload({ repo: 'not-there', files, createIfMissing: false }));
    expect(e.kind).toBe('missing-repo');
    expect(e.message).toBe('There is no model repo mock-user/not-there on the Hub (or it is private and this token may not see it). Create it first, or let the upload create it.');
  });

  it('someone else\'s repo: a fixture repo, another user\'s new repo, and their namespace', async () => {
    const fixture = await rejection(upload({ repo: 'webtune/tiny-random-llama', files }));
    expect(fixture.kind).toBe('not-yours');
    expect(fixture.message).toBe(
      'The repo webtune/tiny-random-llama exists and belongs to "webtune", and this token belongs to mock-user (organizations: mock-org): it cannot write there. Pick a name under mock-user, like mock-user/tiny-random-llama.',
    );
    await upload({ repo: 'theirs', files, token: 'hf_mock_other' });
    expect((await rejection(upload({ repo: 'other-user/theirs', files }))).kind).toBe('not-yours');
    const ns = await rejection(upload({ repo: 'other-user/brand-new', files }));
    expect(ns.kind).toBe('not-yours');
    expect(ns.message).toContain('New repos can go under "mock-user" or "mock-org" only');
  });

  it('a name the Hub does not take, and two files of one path', async () => {
    expect((await rejection(upload({ repo: 'a/b/c', files }))).kind).toBe('bad-name');
    expect((await rejection(upload({ repo: 'bad name!', files }))).kind).toBe('bad-name');
    const dup = await rejection(upload({ repo: 'dup', files: [...files, ...files] }));
    expect(dup).toMatchObject({ kind: 'bad-name', message: 'Two files would both be notes.txt in the repo.' });
  });

  it('a stopped upload', async () => {
    const stop = new AbortController();
    const e = await rejection(upload({ repo: 'stopped', files: [bigFile('big.gguf', 3 * MiB, 1)], kind: 'gguf', signal: stop.signal, onProgress: (p) => p.phase === 'hashing' && stop.abort() }));
    expect(e.kind).toBe('aborted');
    expect(e.message).toMatch(/^The upload to mock-user\/stopped was stopped\./);
  });
});

describe('storage limits', () => {
  let small: MockHub;
  beforeAll(async () => {
    small = await startMockHub({ uploadLimits: { maxFileBytes: 2 * MiB, quotaBytes: 3 * MiB } });
  });
  afterAll(() => small.close());
  const up = (repo: string, file: ExportFile) => uploadToHub({ repo, files: [file], kind: 'gguf', token: 'hf_mock_write', hubUrl: small.url });

  it('a file over the Hub\'s size limit', async () => {
    const e = await rejection(up('too-big', bigFile('huge.gguf', 2 * MiB + 1, 3)));
    expect(e.kind).toBe('too-large');
    expect(e.message).toMatch(/^The Hub refused a file as too large: .*over the 2097152 bytes a file may have\. Pick a smaller export/);
  });

  it('an account out of storage', async () => {
    await up('fills', bigFile('a.gguf', 2 * MiB, 4));
    const e = await rejection(up('overflows', bigFile('b.gguf', 2 * MiB, 5)));
    expect(e.kind).toBe('quota');
    expect(e.message).toMatch(/^The Hub account is out of storage: Storage quota exceeded/);
  });
});

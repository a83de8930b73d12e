// The mock Hub speaks huggingface.co's HTTP: checked here with plain fetch, no client code.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES_DIR, startMockHub } from '../tools/mock-hub/server.ts';
import type { MockHub } from '../tools/mock-hub/server.ts';

const MODEL = 'webtune/tiny-random-llama';
const GATED = 'webtune/tiny-gated-llama';
const PRIVATE = 'webtune/tiny-private-llama';
const DATASET = 'webtune/tiny-sharegpt';

const fixture = (rel: string): Buffer => readFileSync(join(FIXTURES_DIR, rel));
const modelFile = (f: string): Buffer => fixture(`models/${MODEL}/${f}`);
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const gitOid = (b: Uint8Array): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const auth = (token: string): RequestInit => ({ headers: { Authorization: `Bearer ${token}` } });

let hub: MockHub;
let base: string;
const get = (path: string, init?: RequestInit): Promise<Response> => fetch(base + path, init);
const bytes = async (res: Response): Promise<Buffer> => Buffer.from(await res.arrayBuffer());

beforeAll(async () => {
  hub = await startMockHub({ port: 0 });
  base = hub.url;
});
afterAll(() => hub.close());
afterEach(() => hub.faults.clear());

describe('model info', () => {
  it('has the Hub fields, siblings, config and a safetensors summary', async () => {
    const res = await get(`/api/models/${MODEL}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const info = await res.json();
    expect(info.id).toBe(MODEL);
    expect(info.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(info.private).toBe(false);
    expect(info.gated).toBe(false);
    expect(info.pipeline_tag).toBe('text-generation');
    expect(info.tags).toContain('llama');
    expect(info.config.architectures).toEqual(['LlamaForCausalLM']);
    expect(info.config.model_type).toBe('llama');
    expect(info.config.tokenizer_config.eos_token).toBe('</s>');
    expect(info.safetensors).toEqual({ parameters: { BF16: 856 }, total: 856 });
    const names = info.siblings.map((s: { rfilename: string }) => s.rfilename);
    expect(names).toEqual(['README.md', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer_config.json']);
    expect(names).not.toContain('.mock.json');
    expect(info.siblings[0]).toEqual({ rfilename: 'README.md' });
  });

  it('adds sizes and LFS ids with ?blobs=true, and answers /revision/{rev}', async () => {
    const info = await (await get(`/api/models/${MODEL}/revision/main?blobs=true`)).json();
    const st = info.siblings.find((s: { rfilename: string }) => s.rfilename === 'model.safetensors');
    const file = modelFile('model.safetensors');
    expect(st.size).toBe(file.length);
    expect(st.lfs.sha256).toBe(sha256(file));
    expect(st.lfs.size).toBe(file.length);
    const cfg = info.siblings.find((s: { rfilename: string }) => s.rfilename === 'config.json');
    expect(cfg.blobId).toBe(gitOid(modelFile('config.json')));
    expect(cfg.lfs).toBeUndefined();
    const bySha = await (await get(`/api/models/${MODEL}/revision/${info.sha}`)).json();
    expect(bySha.sha).toBe(info.sha);
  });

  it('filters fields with expand=', async () => {
    const info = await (await get(`/api/models/${MODEL}?expand=sha&expand=gated`)).json();
    expect(Object.keys(info).sort()).toEqual(['_id', 'gated', 'id', 'sha']);
  });

  it('answers 404 RevisionNotFound for an unknown revision', async () => {
    const res = await get(`/api/models/${MODEL}/revision/no-such-branch`);
    expect(res.status).toBe(404);
    expect(res.headers.get('x-error-code')).toBe('RevisionNotFound');
  });
});

describe('tree', () => {
  it('lists one level, folders as directory entries', async () => {
    const tree = await (await get(`/api/datasets/${DATASET}/tree/main`)).json();
    expect(tree.map((e: { path: string }) => e.path)).toEqual(['README.md', 'data']);
    expect(tree[1]).toMatchObject({ type: 'directory', size: 0, path: 'data' });
  });

  it('lists recursively and under a path, with git and LFS ids', async () => {
    const all = await (await get(`/api/datasets/${DATASET}/tree/main?recursive=true`)).json();
    expect(all.map((e: { path: string }) => e.path)).toEqual(['README.md', 'data', 'data/test.jsonl', 'data/train.jsonl']);
    const train = all.find((e: { path: string }) => e.path === 'data/train.jsonl');
    const content = fixture(`datasets/${DATASET}/data/train.jsonl`);
    expect(train).toEqual({ type: 'file', oid: gitOid(content), size: content.length, path: 'data/train.jsonl' });
    const sub = await (await get(`/api/datasets/${DATASET}/tree/main/data`)).json();
    expect(sub.map((e: { path: string }) => e.path)).toEqual(['data/test.jsonl', 'data/train.jsonl']);

    const model = await (await get(`/api/models/${MODEL}/tree/main`)).json();
    const st = model.find((e: { path: string }) => e.path === 'model.safetensors');
    const file = modelFile('model.safetensors');
    const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(file)}\nsize ${file.length}\n`;
    expect(st.lfs).toEqual({ oid: sha256(file), size: file.length, pointerSize: pointer.length });
    expect(st.oid).toBe(gitOid(Buffer.from(pointer)));
  });

  it('reads the parquet branch by its encoded name', async () => {
    const tree = await (await get(`/api/datasets/${DATASET}/tree/refs%2Fconvert%2Fparquet/default?recursive=true`)).json();
    expect(tree.map((e: { path: string }) => e.path)).toEqual([
      'default/test',
      'default/test/0000.parquet',
      'default/train',
      'default/train/0000.parquet',
    ]);
  });

  it('paginates with a Link header', async () => {
    const small = await startMockHub({ treePageSize: 2 });
    try {
      let url: string | null = `${small.url}/api/models/${MODEL}/tree/main`;
      const paths: string[] = [];
      let pages = 0;
      while (url) {
        const res: Response = await fetch(url);
        paths.push(...(await res.json()).map((e: { path: string }) => e.path));
        url = res.headers.get('link')?.match(/<([^>]+)>;\s*rel="next"/)?.[1] ?? null;
        pages++;
      }
      expect(pages).toBe(3);
      expect(paths).toHaveLength(5);
      expect(new Set(paths).size).toBe(5);
    } finally {
      await small.close();
    }
  });

  it('answers 404 EntryNotFound for a missing folder', async () => {
    const res = await get(`/api/models/${MODEL}/tree/main/nope`);
    expect(res.status).toBe(404);
    expect(res.headers.get('x-error-code')).toBe('EntryNotFound');
  });
});

describe('resolve', () => {
  it('serves a small file with ETag, X-Repo-Commit and Accept-Ranges', async () => {
    const info = await (await get(`/api/models/${MODEL}`)).json();
    const res = await get(`/${MODEL}/resolve/main/config.json`);
    expect(res.status).toBe(200);
    const body = await bytes(res);
    const file = modelFile('config.json');
    expect(body.equals(file)).toBe(true);
    expect(res.headers.get('etag')).toBe(`"${gitOid(file)}"`);
    expect(res.headers.get('x-repo-commit')).toBe(info.sha);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('content-length')).toBe(String(file.length));
  });

  it('serves byte ranges with 206 and Content-Range', async () => {
    const file = modelFile('config.json');
    const res = await get(`/${MODEL}/resolve/main/config.json`, { headers: { Range: 'bytes=10-19' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 10-19/${file.length}`);
    expect(res.headers.get('content-length')).toBe('10');
    expect((await bytes(res)).equals(file.subarray(10, 20))).toBe(true);

    const open = await get(`/${MODEL}/resolve/main/config.json`, { headers: { Range: 'bytes=500-' } });
    expect(open.headers.get('content-range')).toBe(`bytes 500-${file.length - 1}/${file.length}`);
    expect((await bytes(open)).equals(file.subarray(500))).toBe(true);

    const suffix = await get(`/${MODEL}/resolve/main/config.json`, { headers: { Range: 'bytes=-5' } });
    expect((await bytes(suffix)).equals(file.subarray(file.length - 5))).toBe(true);

    const past = await get(`/${MODEL}/resolve/main/config.json`, { headers: { Range: `bytes=520-99999` } });
    expect(past.headers.get('content-range')).toBe(`bytes 520-${file.length - 1}/${file.length}`);
  });

  it('answers HEAD with the headers and no body', async () => {
    const res = await fetch(`${base}/${MODEL}/resolve/main/config.json`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(modelFile('config.json').length));
    expect(res.headers.get('etag')).toMatch(/^"[0-9a-f]{40}"$/);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it('answers 416 for a range past the end', async () => {
    const size = modelFile('config.json').length;
    const res = await get(`/${MODEL}/resolve/main/config.json`, { headers: { Range: `bytes=${size}-` } });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe(`bytes */${size}`);
  });

  it('redirects LFS files to the storage host, which serves ranges', async () => {
    const file = modelFile('model.safetensors');
    const res = await get(`/${MODEL}/resolve/main/model.safetensors`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const location = res.headers.get('location')!;
    expect(location).toContain('/cdn-lfs/');
    expect(res.headers.get('x-linked-etag')).toBe(`"${sha256(file)}"`);
    expect(res.headers.get('x-linked-size')).toBe(String(file.length));
    expect(res.headers.get('x-repo-commit')).toMatch(/^[0-9a-f]{40}$/);

    const followed = await get(`/${MODEL}/resolve/main/model.safetensors`, { headers: { Range: 'bytes=0-7' } });
    expect(followed.status).toBe(206);
    expect(followed.url).toBe(location);
    expect(followed.headers.get('etag')).toBe(`"${sha256(file)}"`);
    expect((await bytes(followed)).equals(file.subarray(0, 8))).toBe(true);
  });

  it('serves the LFS pointer on /raw/', async () => {
    const file = modelFile('model.safetensors');
    const text = await (await get(`/${MODEL}/raw/main/model.safetensors`)).text();
    expect(text).toBe(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(file)}\nsize ${file.length}\n`);
  });

  it('serves dataset files under /datasets/ and the parquet branch', async () => {
    const train = fixture(`datasets/${DATASET}/data/train.jsonl`);
    expect((await bytes(await get(`/datasets/${DATASET}/resolve/main/data/train.jsonl`))).equals(train)).toBe(true);
    const pq = fixture(`datasets/${DATASET}/refs-convert-parquet/default/train/0000.parquet`);
    const res = await get(`/datasets/${DATASET}/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet`);
    expect((await bytes(res)).equals(pq)).toBe(true);
    expect(res.status).toBe(200);
    // the branch folder is not part of main
    expect((await get(`/datasets/${DATASET}/resolve/main/refs-convert-parquet/default/train/0000.parquet`)).status).toBe(404);
  });
});

describe('errors', () => {
  it('answers 404 EntryNotFound for a missing file', async () => {
    const res = await get(`/${MODEL}/resolve/main/nope.json`);
    expect(res.status).toBe(404);
    expect(res.headers.get('x-error-code')).toBe('EntryNotFound');
    expect(await res.json()).toEqual({ error: 'Entry not found' });
  });

  it('answers RepoNotFound: 401 anonymous, 404 with a token', async () => {
    const anon = await get('/api/models/webtune/no-such-model');
    expect(anon.status).toBe(401);
    expect(anon.headers.get('x-error-code')).toBe('RepoNotFound');
    expect((await anon.json()).error).toBe('Repository not found');
    const file = await get('/webtune/no-such-model/resolve/main/config.json');
    expect(file.status).toBe(401);
    expect(file.headers.get('x-error-message')).toBe('Invalid username or password.');
    const withToken = await get('/api/models/webtune/no-such-model', auth('hf_mock_ok'));
    expect(withToken.status).toBe(404);
    expect(withToken.headers.get('x-error-code')).toBe('RepoNotFound');
  });

  it('hides private repos unless the token may read them', async () => {
    expect((await get(`/api/models/${PRIVATE}`)).status).toBe(401);
    expect((await get(`/api/models/${PRIVATE}`, auth('hf_mock_noaccess'))).status).toBe(404);
    const ok = await get(`/api/models/${PRIVATE}`, auth('hf_mock_ok'));
    expect(ok.status).toBe(200);
    expect((await ok.json()).private).toBe(true);
  });

  it('gates files of gated repos: 401 anonymous, 403 without the licence, 200 with it', async () => {
    const info = await get(`/api/models/${GATED}`);
    expect(info.status).toBe(200);
    expect((await info.json()).gated).toBe('manual');

    const anon = await get(`/${GATED}/resolve/main/config.json`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get('x-error-code')).toBe('GatedRepo');
    expect(anon.headers.get('x-error-message')).toBe(
      `Access to model ${GATED} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
    );
    const denied = await get(`/${GATED}/resolve/main/config.json`, auth('hf_mock_noaccess'));
    expect(denied.status).toBe(403);
    expect(denied.headers.get('x-error-code')).toBe('GatedRepo');
    expect(denied.headers.get('x-error-message')).toBe(
      `Access to model ${GATED} is restricted and you are not in the authorized list. Visit ${base}/${GATED} to ask for access.`,
    );
    const ok = await get(`/${GATED}/resolve/main/config.json`, auth('hf_mock_ok'));
    expect(ok.status).toBe(200);
    expect((await bytes(ok)).equals(fixture(`models/${GATED}/config.json`))).toBe(true);
  });

  it('refuses unknown tokens everywhere', async () => {
    const res = await get(`/api/models/${MODEL}`, auth('hf_not_a_token'));
    expect(res.status).toBe(401);
    expect(res.headers.get('x-error-code')).toBeNull();
    expect((await res.json()).error).toBe('Invalid credentials in Authorization header');
  });
});

describe('dataset viewer', () => {
  const viewer = (q: string, init?: RequestInit): Promise<Response> => fetch(`${hub.datasetsServer}/${q}`, init);
  const trainRows = (): unknown[] =>
    fixture(`datasets/${DATASET}/data/train.jsonl`).toString('utf8').trim().split('\n').map((l) => JSON.parse(l));

  it('lists splits from the parquet branch', async () => {
    const res = await viewer(`splits?dataset=${DATASET}`);
    expect(await res.json()).toEqual({
      splits: [
        { dataset: DATASET, config: 'default', split: 'train' },
        { dataset: DATASET, config: 'default', split: 'test' },
      ],
      pending: [],
      failed: [],
    });
  });

  it('pages /rows with the real JSON shape', async () => {
    const rows: unknown[] = [];
    for (let offset = 0; offset < 15; offset += 5) {
      const page = await (await viewer(`rows?dataset=${DATASET}&config=default&split=train&offset=${offset}&length=5`)).json();
      expect(page.num_rows_total).toBe(12);
      expect(page.num_rows_per_page).toBe(100);
      expect(page.partial).toBe(false);
      expect(page.features.map((f: { name: string }) => f.name)).toEqual(['conversations', 'source', 'score']);
      page.rows.forEach((r: { row_idx: number; row: unknown; truncated_cells: unknown[] }, i: number) => {
        expect(r.row_idx).toBe(offset + i);
        expect(r.truncated_cells).toEqual([]);
        rows.push(r.row);
      });
    }
    expect(rows).toEqual(trainRows());
    const page = await (await viewer(`rows?dataset=${DATASET}&config=default&split=train&offset=0&length=1`)).json();
    expect(page.features[0]).toEqual({
      feature_idx: 0,
      name: 'conversations',
      type: {
        feature: { from: { dtype: 'string', _type: 'Value' }, value: { dtype: 'string', _type: 'Value' } },
        _type: 'List',
      },
    });
    expect(page.features[2].type).toEqual({ dtype: 'float64', _type: 'Value' });
  });

  it('rejects length > 100 and unknown splits like the real viewer', async () => {
    const long = await viewer(`rows?dataset=${DATASET}&config=default&split=train&offset=0&length=101`);
    expect(long.status).toBe(422);
    expect(long.headers.get('x-error-code')).toBe('InvalidParameter');
    const nosplit = await viewer(`rows?dataset=${DATASET}&config=default&split=validation`);
    expect(nosplit.status).toBe(404);
    expect(nosplit.headers.get('x-error-code')).toBe('ResponseNotFound');
    const noparam = await viewer(`rows?dataset=${DATASET}`);
    expect(noparam.status).toBe(422);
  });

  it('hides missing datasets: 401 anonymous, 404 with a token', async () => {
    const anon = await viewer('splits?dataset=webtune/none');
    expect(anon.status).toBe(401);
    expect(anon.headers.get('x-error-code')).toBe('ExternalUnauthenticatedError');
    const tok = await viewer('splits?dataset=webtune/none', auth('hf_mock_ok'));
    expect(tok.status).toBe(404);
    expect(tok.headers.get('x-error-code')).toBe('ExternalAuthenticatedError');
  });

  it('lists parquet files whose URLs serve the files', async () => {
    const list = await (await viewer(`parquet?dataset=${DATASET}&config=default&split=train`)).json();
    expect(list.parquet_files).toHaveLength(1);
    const f = list.parquet_files[0];
    const pq = fixture(`datasets/${DATASET}/refs-convert-parquet/default/train/0000.parquet`);
    expect(f).toMatchObject({ dataset: DATASET, config: 'default', split: 'train', filename: '0000.parquet', size: pq.length });
    expect(f.url).toBe(`${base}/datasets/${DATASET}/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet`);
    expect((await bytes(await fetch(f.url))).equals(pq)).toBe(true);
    const all = await (await viewer(`parquet?dataset=${DATASET}`)).json();
    expect(all.parquet_files.map((x: { split: string }) => x.split)).toEqual(['train', 'test']);
  });

  it('answers the Hub parquet shortcut, whose file URLs redirect to the branch', async () => {
    const all = await (await get(`/api/datasets/${DATASET}/parquet`)).json();
    expect(all).toEqual({
      default: {
        train: [`${base}/api/datasets/${DATASET}/parquet/default/train/0.parquet`],
        test: [`${base}/api/datasets/${DATASET}/parquet/default/test/0.parquet`],
      },
    });
    expect(await (await get(`/api/datasets/${DATASET}/parquet/default/test`)).json()).toEqual(all.default.test);
    const pq = fixture(`datasets/${DATASET}/refs-convert-parquet/default/test/0000.parquet`);
    expect((await bytes(await fetch(all.default.test[0]))).equals(pq)).toBe(true);
  });

  it('answers /is-valid', async () => {
    const v = await (await viewer(`is-valid?dataset=${DATASET}`)).json();
    expect(v).toMatchObject({ preview: true, viewer: true });
  });
});

describe('browser support', () => {
  it('answers CORS preflights and exposes the Hub headers', async () => {
    const pre = await fetch(`${base}/${MODEL}/resolve/main/config.json`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://localhost:5173',
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'authorization,range',
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(pre.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
    expect(pre.headers.get('access-control-allow-headers')).toMatch(/range/i);
    expect(pre.headers.get('access-control-allow-methods')).toMatch(/GET/);

    const res = await get(`/${MODEL}/resolve/main/nope`);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    const exposed = res.headers.get('access-control-expose-headers')!.split(/,\s*/).map((h) => h.toLowerCase());
    for (const h of ['etag', 'content-range', 'content-length', 'x-repo-commit', 'x-error-code', 'x-error-message', 'x-linked-etag', 'x-linked-size', 'accept-ranges']) {
      expect(exposed).toContain(h);
    }
  });
});

describe('faults', () => {
  async function readUntilError(res: Response): Promise<{ got: Buffer; error: unknown }> {
    const reader = res.body!.getReader();
    const parts: Uint8Array[] = [];
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return { got: Buffer.concat(parts), error: undefined };
        parts.push(value);
      }
    } catch (e) {
      return { got: Buffer.concat(parts), error: e };
    }
  }

  it('cuts a body after N bytes, once', async () => {
    const file = modelFile('model.safetensors');
    hub.faults.drop({ file: 'model.safetensors', afterBytes: 1000 });
    const res = await get(`/${MODEL}/resolve/main/model.safetensors`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(file.length));
    const { got, error } = await readUntilError(res);
    expect(error).toBeInstanceOf(TypeError);
    expect(got.equals(file.subarray(0, 1000))).toBe(true);
    const again = await bytes(await get(`/${MODEL}/resolve/main/model.safetensors`));
    expect(again.equals(file)).toBe(true);
  });

  it('counts the cut from the start of a ranged answer', async () => {
    const file = modelFile('config.json');
    hub.faults.drop({ file: 'config.json', repo: MODEL, afterBytes: 50 });
    const res = await get(`/${MODEL}/resolve/main/config.json`, { headers: { Range: 'bytes=100-' } });
    const { got, error } = await readUntilError(res);
    expect(error).toBeDefined();
    expect(got.equals(file.subarray(100, 150))).toBe(true);
  });

  it('stalls a body after N bytes, then cuts it after holdMs', async () => {
    hub.faults.stall({ file: 'config.json', afterBytes: 20, holdMs: 150 });
    const t0 = Date.now();
    const { got, error } = await readUntilError(await get(`/${MODEL}/resolve/main/config.json`));
    expect(error).toBeDefined();
    expect(got.equals(modelFile('config.json').subarray(0, 20))).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('can ignore Range and answer 200 with the whole file', async () => {
    hub.faults.ignoreRange({ file: 'config.json' });
    const res = await get(`/${MODEL}/resolve/main/config.json`, { headers: { Range: 'bytes=10-19' } });
    expect(res.status).toBe(200);
    expect((await bytes(res)).equals(modelFile('config.json'))).toBe(true);
    expect((await get(`/${MODEL}/resolve/main/config.json`, { headers: { Range: 'bytes=10-19' } })).status).toBe(206);
  });

  it('takes faults over HTTP (for other processes, e.g. the e2e browser)', async () => {
    const post = await fetch(`${base}/__mock/faults`, {
      method: 'POST',
      body: JSON.stringify({ drop: { file: 'README.md', afterBytes: 10 } }),
    });
    expect(post.status).toBe(200);
    const { got, error } = await readUntilError(await get(`/${MODEL}/resolve/main/README.md`));
    expect(error).toBeDefined();
    expect(got.length).toBe(10);
    await fetch(`${base}/__mock/faults`, { method: 'POST', body: JSON.stringify({ drop: { file: 'README.md', afterBytes: 10 } }) });
    await fetch(`${base}/__mock/faults`, { method: 'DELETE' });
    expect((await bytes(await get(`/${MODEL}/resolve/main/README.md`))).equals(modelFile('README.md'))).toBe(true);
  });

  it('answers 429 with Retry-After while rate-limited', async () => {
    hub.faults.rateLimit({ count: 2, retryAfterSeconds: 7, pathPrefix: '/api/' });
    expect((await get(`/${MODEL}/resolve/main/config.json`)).status).toBe(200); // other paths untouched
    for (let i = 0; i < 2; i++) {
      const res = await get(`/api/models/${MODEL}`);
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('7');
    }
    expect((await get(`/api/models/${MODEL}`)).status).toBe(200);
  });
});

describe('mounts', () => {
  it('serves a folder as an extra repo', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mock-hub-'));
    writeFileSync(join(dir, 'config.json'), '{"model_type":"llama"}');
    writeFileSync(join(dir, 'model.safetensors'), new Uint8Array(16));
    const mounted = await startMockHub({ mounts: { models: { 'webtune/demo-tiny-llama': dir } } });
    try {
      const info = await (await fetch(`${mounted.url}/api/models/webtune/demo-tiny-llama`)).json();
      expect(info.siblings.map((s: { rfilename: string }) => s.rfilename)).toEqual(['config.json', 'model.safetensors']);
      const res = await fetch(`${mounted.url}/webtune/demo-tiny-llama/resolve/main/config.json`);
      expect(await res.text()).toBe('{"model_type":"llama"}');
      // the fixture roots are still served next to the mounts
      expect((await fetch(`${mounted.url}/api/models/${MODEL}`)).status).toBe(200);
    } finally {
      await mounted.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

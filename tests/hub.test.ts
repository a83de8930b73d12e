// HubClient against the mock Hub over real HTTP (no stubbed fetch): metadata, downloads that
// resume after injected connection drops, every error kind, tokens, aborts, the dataset viewer.
import { mkdtempSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HubClient, HubError } from '../src/io/hub.ts';
import type { DownloadProgress, RepoRef } from '../src/io/hub.ts';
import { FIXTURES_DIR, startMockHub } from '../tools/mock-hub/server.ts';
import type { MockHub } from '../tools/mock-hub/server.ts';

const MODEL: RepoRef = { type: 'model', id: 'webtune/tiny-random-llama' };
const GATED: RepoRef = { type: 'model', id: 'webtune/tiny-gated-llama' };
const DATASET: RepoRef = { type: 'dataset', id: 'webtune/tiny-sharegpt' };
const fixture = (rel: string): Buffer => readFileSync(join(FIXTURES_DIR, rel));
const modelFile = (f: string): Buffer => fixture(`models/${MODEL.id}/${f}`);
const WEIGHTS = modelFile('model.safetensors');

let hub: MockHub;
let client: HubClient;
const makeClient = (token?: string, endpoint?: string): HubClient =>
  new HubClient({ endpoint: endpoint ?? hub.url, datasetsServer: hub.datasetsServer, token, retryDelayMs: 1 });

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(parts);
    parts.push(value);
  }
}

/** The HubError a promise rejects with (fails the test if it resolves or throws something else). */
async function hubError(p: Promise<unknown>): Promise<HubError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(HubError);
  return e as HubError;
}

/** Range headers of the client's requests for a file (not the storage-host hops after a redirect). */
const rangesAsked = (path: string): (string | undefined)[] =>
  hub.requests.filter((r) => r.url.includes(`/resolve/main/${path}`)).map((r) => r.range);

beforeAll(async () => {
  hub = await startMockHub({ port: 0, treePageSize: 3 }); // small pages: listFiles must follow Link
  client = makeClient();
});
afterAll(() => hub.close());
afterEach(() => {
  hub.faults.clear();
  hub.requests.length = 0;
});

describe('metadata', () => {
  it('reads model info', async () => {
    const info = await client.modelInfo(MODEL.id);
    expect(info.id).toBe(MODEL.id);
    expect(info.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(info.gated).toBe(false);
    expect(info.config?.model_type).toBe('llama');
    expect(info.safetensors?.total).toBe(856);
    expect(info.siblings.map((s) => s.rfilename)).toContain('model.safetensors');
    const blobs = await client.modelInfo(MODEL.id, 'main', { blobs: true });
    expect(blobs.siblings.find((s) => s.rfilename === 'model.safetensors')?.size).toBe(WEIGHTS.length);
  });

  it('reads dataset info', async () => {
    const info = await client.datasetInfo(DATASET.id);
    expect(info.id).toBe(DATASET.id);
    expect(info.siblings.map((s) => s.rfilename)).toEqual(['README.md', 'data/test.jsonl', 'data/train.jsonl']);
  });

  it('lists files through every page', async () => {
    const flat = await client.listFiles(MODEL);
    expect(flat.map((e) => e.path)).toEqual([
      'README.md',
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer_config.json',
    ]);
    expect(hub.requests.filter((r) => r.url.includes('/tree/')).length).toBe(2);
    expect(flat.find((e) => e.path === 'model.safetensors')?.lfs?.size).toBe(WEIGHTS.length);

    const top = await client.listFiles(DATASET);
    expect(top.map((e) => `${e.type}:${e.path}`)).toEqual(['file:README.md', 'directory:data']);
    const deep = await client.listFiles(DATASET, 'main', { recursive: true });
    expect(deep.filter((e) => e.type === 'file').map((e) => e.path)).toEqual([
      'README.md',
      'data/test.jsonl',
      'data/train.jsonl',
    ]);
    const branch = await client.listFiles(DATASET, 'refs/convert/parquet', { recursive: true, path: 'default/train' });
    expect(branch.map((e) => e.path)).toEqual(['default/train/0000.parquet']);
  });

  it('builds Hub file URLs', () => {
    const c = new HubClient();
    expect(c.fileUrl(MODEL, 'model.safetensors')).toBe('https://huggingface.co/webtune/tiny-random-llama/resolve/main/model.safetensors');
    expect(c.fileUrl(DATASET, 'default/train/0000.parquet', 'refs/convert/parquet')).toBe(
      'https://huggingface.co/datasets/webtune/tiny-sharegpt/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet',
    );
  });

  it('reads size, ETag and commit of a file', async () => {
    const info = await client.modelInfo(MODEL.id);
    const cfg = await client.headFile(MODEL, 'config.json');
    expect(cfg.size).toBe(modelFile('config.json').length);
    expect(cfg.etag).toMatch(/^[0-9a-f]{40}$/);
    expect(cfg.commit).toBe(info.sha);
    const weights = await client.headFile(MODEL, 'model.safetensors');
    expect(weights.size).toBe(WEIGHTS.length);
    expect(weights.etag).toMatch(/^[0-9a-f]{64}$/); // the sha256, from the storage host
    expect(rangesAsked('model.safetensors')).toContain('bytes=0-0');
  });
});

describe('download', () => {
  it('streams a whole file, progress reaching the total', async () => {
    const progress: DownloadProgress[] = [];
    const got = await readAll(client.download(MODEL, 'model.safetensors', { onProgress: (p) => progress.push(p) }));
    expect(got.equals(WEIGHTS)).toBe(true);
    const last = progress.at(-1)!;
    expect(last.loaded).toBe(WEIGHTS.length);
    expect(last.total).toBe(WEIGHTS.length);
    expect(last.etaSeconds).toBe(0);
    expect(rangesAsked('model.safetensors')[0]).toBeUndefined(); // a plain GET when no range is wanted
  });

  it('streams a byte range [start, end)', async () => {
    const got = await readAll(client.download(MODEL, 'model.safetensors', { start: 100, end: 1100 }));
    expect(got.equals(WEIGHTS.subarray(100, 1100))).toBe(true);
    expect(rangesAsked('model.safetensors')).toEqual(['bytes=100-1099']);
    const tail = await readAll(client.download(MODEL, 'config.json', { start: 500 }));
    expect(tail.equals(modelFile('config.json').subarray(500))).toBe(true);
  });

  it('resumes after dropped connections with identical bytes', async () => {
    hub.faults.drop({ file: 'model.safetensors', afterBytes: 1000 }); // first answer cut at 1000
    hub.faults.drop({ file: 'model.safetensors', afterBytes: 700 }); // the resumed one at 1700
    const progress: DownloadProgress[] = [];
    const got = await readAll(client.download(MODEL, 'model.safetensors', { onProgress: (p) => progress.push(p) }));
    expect(got.length).toBe(WEIGHTS.length);
    expect(got.equals(WEIGHTS)).toBe(true);
    expect(rangesAsked('model.safetensors')).toEqual([undefined, 'bytes=1000-', 'bytes=1700-']);
    const loaded = progress.map((p) => p.loaded);
    expect(loaded).toEqual([...loaded].sort((a, b) => a - b));
    expect(progress.at(-1)).toMatchObject({ loaded: WEIGHTS.length, total: WEIGHTS.length });
  });

  it('resumes a ranged download of a non-LFS file within its range', async () => {
    const file = modelFile('config.json');
    hub.faults.drop({ file: 'config.json', afterBytes: 64 });
    const got = await readAll(client.download(MODEL, 'config.json', { start: 10, end: 400 }));
    expect(got.equals(file.subarray(10, 400))).toBe(true);
    expect(rangesAsked('config.json')).toEqual(['bytes=10-399', 'bytes=74-399']);
  });

  it('resumes through a server that ignores Range (skips what it already has)', async () => {
    hub.faults.drop({ file: 'model.safetensors', afterBytes: 1234 });
    hub.faults.ignoreRange({ file: 'model.safetensors' }); // the resumed request gets all of it again
    const got = await readAll(client.download(MODEL, 'model.safetensors'));
    expect(got.equals(WEIGHTS)).toBe(true);
    expect(rangesAsked('model.safetensors')).toEqual([undefined, 'bytes=1234-']);
    hub.faults.ignoreRange({ file: 'model.safetensors' });
    const slice = await readAll(client.download(MODEL, 'model.safetensors', { start: 2000, end: 2100 }));
    expect(slice.equals(WEIGHTS.subarray(2000, 2100))).toBe(true);
  });

  it('keeps going while each retry makes progress', async () => {
    hub.faults.drop({ file: 'model.safetensors', afterBytes: 300, times: 6 });
    const got = await readAll(client.download(MODEL, 'model.safetensors', { retries: 2 }));
    expect(got.equals(WEIGHTS)).toBe(true);
    expect(rangesAsked('model.safetensors')).toHaveLength(7);
  });

  it('gives up with a clear error when drops repeat without progress', async () => {
    hub.faults.drop({ file: 'model.safetensors', afterBytes: 0, times: 10 });
    const e = await hubError(readAll(client.download(MODEL, 'model.safetensors', { retries: 2 })));
    expect(e.kind).toBe('offline');
    expect(e.message).toContain('model.safetensors');
    expect(e.message).toContain(`at byte 0 of ${WEIGHTS.length}`);
    expect(e.message).toContain('dropped 3 times in a row');
    expect(rangesAsked('model.safetensors')).toHaveLength(3);
  });

  it('refuses to splice two versions when the file changes between attempts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hub-test-'));
    const file = join(dir, 'notes.txt');
    writeFileSync(file, 'a'.repeat(2000));
    const mounted = await startMockHub({ mounts: { models: { 'webtune/changing': dir } } });
    try {
      mounted.faults.drop({ file: 'notes.txt', afterBytes: 500 });
      const c = new HubClient({ endpoint: mounted.url, retryDelayMs: 1 });
      let replaced = false;
      const onProgress = (): void => {
        if (replaced) return;
        replaced = true; // a new commit lands while the first answer is on its way
        writeFileSync(join(dir, 'next.tmp'), 'b'.repeat(2000));
        renameSync(join(dir, 'next.tmp'), file);
        utimesSync(file, new Date(), new Date(Date.now() + 60_000));
      };
      const e = await hubError(readAll(c.download({ type: 'model', id: 'webtune/changing' }, 'notes.txt', { onProgress })));
      expect(e.kind).toBe('http');
      expect(e.message).toContain('notes.txt changed on');
      expect(e.message).toContain('start it again');
    } finally {
      await mounted.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops on abort, mid-body and before the start', async () => {
    hub.faults.stall({ file: 'model.safetensors', afterBytes: 500 });
    const ctrl = new AbortController();
    const reader = client.download(MODEL, 'model.safetensors', { signal: ctrl.signal }).getReader();
    let got = 0;
    while (got < 500) got += (await reader.read()).value!.length;
    expect(got).toBe(500);
    ctrl.abort();
    await expect(reader.read()).rejects.toMatchObject({ name: 'AbortError' });

    const pre = new AbortController();
    pre.abort();
    await expect(readAll(client.download(MODEL, 'config.json', { signal: pre.signal }))).rejects.toMatchObject({ name: 'AbortError' });
    await expect(client.modelInfo(MODEL.id).then(() => 'ok')).resolves.toBe('ok');
  });

  it('reports the bytes that arrived just before a stall', async () => {
    hub.faults.stall({ file: 'model.safetensors', afterBytes: 500 });
    // The real answer re-chunked so that a second chunk follows the first at once, inside the
    // progress interval: its report must still come once the interval is over.
    const split = async (input: string, init?: RequestInit): Promise<Response> => {
      const res = await fetch(input, init);
      const body = res.body!.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, out) {
            out.enqueue(chunk.subarray(0, 1));
            if (chunk.length > 1) out.enqueue(chunk.subarray(1));
          },
        }),
      );
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const c = new HubClient({ endpoint: hub.url, fetch: split });
    const loaded: number[] = [];
    const reader = c.download(MODEL, 'model.safetensors', { onProgress: (p) => loaded.push(p.loaded) }).getReader();
    let got = 0;
    while (got < 500) got += (await reader.read()).value!.length;
    await expect.poll(() => loaded.at(-1), { timeout: 2000 }).toBe(500);
    expect(loaded[0]).toBe(1);
    await reader.cancel();
  });

  it('cancelling the stream ends the download for good', async () => {
    // The connection stalls, then breaks 150 ms later: a download still alive would resume then.
    hub.faults.stall({ file: 'config.json', afterBytes: 100, holdMs: 150 });
    const reader = client.download(MODEL, 'config.json').getReader();
    expect((await reader.read()).value?.length).toBe(100);
    const pending = reader.read();
    await new Promise((r) => setTimeout(r, 50)); // now the download waits on the stalled connection
    await reader.cancel('not needed');
    await expect(pending).resolves.toMatchObject({ done: true });
    await new Promise((r) => setTimeout(r, 300));
    expect(rangesAsked('config.json')).toHaveLength(1);
  });

  it('reads ranges for safetensors headers, with the file size', async () => {
    const { bytes, totalSize } = await client.readRange(client.fileUrl(MODEL, 'model.safetensors'), 0, 8);
    expect(Buffer.from(bytes).equals(WEIGHTS.subarray(0, 8))).toBe(true);
    expect(totalSize).toBe(WEIGHTS.length);
  });
});

describe('errors', () => {
  it('gated, without a token', async () => {
    const e = await hubError(readAll(client.download(GATED, 'config.json')));
    expect(e.kind).toBe('gated');
    expect(e.status).toBe(401);
    expect(e.code).toBe('GatedRepo');
    expect(e.message).toBe(
      `webtune/tiny-gated-llama is gated: open ${hub.url}/webtune/tiny-gated-llama, accept the licence, then paste a token with read access in the Model tab (Hugging Face token).`,
    );
  });

  it('gated, with a token that has not been granted access', async () => {
    const e = await hubError(makeClient('hf_mock_noaccess').headFile(GATED, 'config.json'));
    expect(e.kind).toBe('gated-no-access');
    expect(e.status).toBe(403);
    expect(e.message).toContain(`open ${hub.url}/webtune/tiny-gated-llama, accept the licence`);
  });

  it('gated, with a token that has access: downloads', async () => {
    const got = await readAll(makeClient('hf_mock_ok').download(GATED, 'model-00002-of-00002.safetensors'));
    expect(got.equals(fixture(`models/${GATED.id}/model-00002-of-00002.safetensors`))).toBe(true);
  });

  it('repo not found, with and without a token', async () => {
    const anon = await hubError(client.modelInfo('webtune/no-such-model'));
    expect(anon.kind).toBe('repo-not-found');
    expect(anon.status).toBe(401);
    expect(anon.message).toBe(
      `Model webtune/no-such-model was not found on ${new URL(hub.url).host}: check the name. If it is private or gated, paste a token with read access in the Model tab (Hugging Face token).`,
    );
    const tok = await hubError(makeClient('hf_mock_ok').datasetInfo('webtune/no-such-data'));
    expect(tok.kind).toBe('repo-not-found');
    expect(tok.status).toBe(404);
    expect(tok.message).toContain('Dataset webtune/no-such-data was not found');
    expect(tok.message).toContain('or your token cannot read it');
    const files = await hubError(readAll(client.download({ type: 'model', id: 'webtune/no-such-model' }, 'config.json')));
    expect(files.kind).toBe('repo-not-found');
  });

  it('file not found', async () => {
    const e = await hubError(readAll(client.download(MODEL, 'nope.json')));
    expect(e.kind).toBe('file-not-found');
    expect(e.status).toBe(404);
    expect(e.message).toBe('nope.json is not in webtune/tiny-random-llama (revision main): check the file name.');
    expect((await hubError(client.headFile(MODEL, 'nope.json'))).kind).toBe('file-not-found');
  });

  it('rate limited, with the seconds to wait', async () => {
    hub.faults.rateLimit({ retryAfterSeconds: 42 });
    const e = await hubError(client.modelInfo(MODEL.id));
    expect(e.kind).toBe('rate-limited');
    expect(e.status).toBe(429);
    expect(e.retryAfterSeconds).toBe(42);
    expect(e.message).toContain('wait 42 s and try again');
  });

  it('offline', async () => {
    const dead = makeClient(undefined, 'http://127.0.0.1:1');
    const e = await hubError(dead.modelInfo(MODEL.id));
    expect(e.kind).toBe('offline');
    expect(e.status).toBe(0);
    expect(e.message).toBe('Cannot reach 127.0.0.1:1: check the connection (the demo model works offline).');
    const d = await hubError(readAll(dead.download(MODEL, 'config.json', { retries: 1 })));
    expect(d.kind).toBe('offline');
  });

  it('unauthorized token', async () => {
    const e = await hubError(makeClient('hf_typo').modelInfo(MODEL.id));
    expect(e.kind).toBe('unauthorized');
    expect(e.status).toBe(401);
    expect(e.message).toContain('refused the Hugging Face token: paste a valid token');
  });

  it('other HTTP errors name the status and what the server said', async () => {
    const rev = await hubError(client.modelInfo(MODEL.id, 'no-such-branch'));
    expect(rev.kind).toBe('http');
    expect(rev.code).toBe('RevisionNotFound');
    expect(rev.message).toContain('has no revision "no-such-branch"');
    const rows = await hubError(client.datasetRows(DATASET.id, 'default', 'train', 0, 101));
    expect(rows.kind).toBe('http');
    expect(rows.status).toBe(422);
    expect(rows.message).toContain("Parameter 'length' must not be greater than 100");
    const split = await hubError(client.datasetRows(DATASET.id, 'default', 'validation'));
    expect(split.status).toBe(404);
    expect(split.message).toContain('no such config or split of webtune/tiny-sharegpt');
  });

  it('a dataset the viewer cannot show', async () => {
    const e = await hubError(client.datasetSplits('webtune/no-such-data'));
    expect(e.kind).toBe('repo-not-found');
    expect(e.code).toBe('ExternalUnauthenticatedError');
  });
});

describe('token', () => {
  it('is sent to the Hub and the viewer, and only when set', async () => {
    const authed = makeClient('hf_mock_ok');
    await authed.modelInfo(MODEL.id);
    await authed.datasetSplits(DATASET.id);
    await readAll(authed.download(MODEL, 'model.safetensors'));
    expect(hub.requests.length).toBeGreaterThanOrEqual(4); // info, splits, resolve, storage redirect
    for (const r of hub.requests) expect(r.authorization).toBe('Bearer hf_mock_ok');
    hub.requests.length = 0;
    await client.modelInfo(MODEL.id);
    expect(hub.requests[0].authorization).toBeUndefined();
  });
});

describe('dataset viewer', () => {
  const trainRows = (): unknown[] =>
    fixture(`datasets/${DATASET.id}/data/train.jsonl`).toString('utf8').trim().split('\n').map((l) => JSON.parse(l));

  it('lists splits', async () => {
    const splits = await client.datasetSplits(DATASET.id);
    expect(splits.map((s) => `${s.config}/${s.split}`)).toEqual(['default/train', 'default/test']);
  });

  it('pages rows', async () => {
    const rows: unknown[] = [];
    let total = Infinity;
    for (let offset = 0; offset < total; offset += 5) {
      const page = await client.datasetRows(DATASET.id, 'default', 'train', offset, 5);
      total = page.num_rows_total;
      rows.push(...page.rows.map((r) => r.row));
    }
    expect(rows).toEqual(trainRows());
  });

  it('lists parquet files whose bytes download', async () => {
    const all = await client.datasetParquetFiles(DATASET.id);
    expect(all.map((f) => f.split)).toEqual(['train', 'test']);
    const [train] = await client.datasetParquetFiles(DATASET.id, 'default', 'train');
    const pq = fixture(`datasets/${DATASET.id}/refs-convert-parquet/default/train/0000.parquet`);
    expect(train.size).toBe(pq.length);
    expect((await readAll(client.downloadUrl(train.url))).equals(pq)).toBe(true);
  });
});

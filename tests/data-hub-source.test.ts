// Hub datasets against the mock Hub: parquet over HTTP Range, the /rows fallback when Range is
// refused, row limits, progress, resume.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { openHubSource } from '../src/data/hub-source.ts';
import type { HubDatasetSpec } from '../src/data/hub-source.ts';
import { IssueLog } from '../src/data/issues.ts';
import { MemoryKv } from '../src/data/kv.ts';
import { prepareDataset } from '../src/data/prepare.ts';
import type { PrepareOptions } from '../src/data/prepare-options.ts';
import type { PrepareProgress } from '../src/data/progress.ts';
import type { RecordSource } from '../src/data/record-source.ts';
import { PreparedStore } from '../src/data/store.ts';
import type { LoadedTokenizer } from '../src/data/tokenizer-load.ts';
import type { SourceRecord } from '../src/data/types.ts';
import { HubClient } from '../src/io/hub.ts';
import { startMockHub } from '../tools/mock-hub/server.ts';
import type { MockHub } from '../tools/mock-hub/server.ts';
import { DEMO_JSONL, demoTokenizer } from './fixtures/data/demo.ts';

let hub: MockHub;
let client: HubClient;
let tok: LoadedTokenizer;
let dir: string;

const TINY = 'webtune/tiny-sharegpt';
const MANY = 'webtune/many-rows'; // 300 demo rows in two parquet files (180 + 120), row groups of 50

function writeManyRows(root: string): void {
  const records = new TextDecoder()
    .decode(DEMO_JSONL)
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { conversations: unknown[] });
  const file = (rows: typeof records) =>
    new Uint8Array(
      parquetWriteBuffer({
        columnData: [
          { name: 'conversations', data: rows.map((r) => r.conversations) },
          { name: 'n', data: rows.map((_, i) => i) },
        ],
        schema: [
          { name: 'root', num_children: 2 },
          { name: 'conversations', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
          { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
          { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
          { name: 'from', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
          { name: 'value', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
          { name: 'n', type: 'INT32', repetition_type: 'OPTIONAL' },
        ],
        rowGroupSize: 50,
      }),
    );
  const split = join(root, 'pq/default/train');
  mkdirSync(split, { recursive: true });
  writeFileSync(join(split, '0000.parquet'), file(records.slice(0, 180)));
  writeFileSync(join(split, '0001.parquet'), file(records.slice(180)));
  writeFileSync(join(root, 'README.md'), '# many rows\n');
  writeFileSync(join(root, '.mock.json'), JSON.stringify({ branches: { 'refs/convert/parquet': 'pq' } }));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'webtune-hub-ds-'));
  writeManyRows(dir);
  hub = await startMockHub({ mounts: { datasets: { [MANY]: dir } } });
  client = new HubClient({ endpoint: hub.url, datasetsServer: hub.datasetsServer, retryDelayMs: 10 });
  tok = await demoTokenizer();
});
afterAll(async () => {
  await hub?.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  hub.faults.clear();
  hub.requests.length = 0;
});

const OPTS: PrepareOptions = { template: 'chatml', trainOnResponsesOnly: true, maxSeqLength: 128, overflow: 'truncate', packing: true, validationFraction: 0, seed: 0 };

async function readAll(src: RecordSource, skip = 0): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const r of src.read({ skip, issues: new IssueLog(), position: { units: 0 } })) out.push(r);
  return out;
}

/** Range is refused for every parquet file of `repo` (as a proxy that ignores it would). */
function refuseRange(repo: string): void {
  for (const file of ['default/train/0000.parquet', 'default/train/0001.parquet']) hub.faults.ignoreRange({ file, repo, times: 1000 });
}

const parquetRequests = () => hub.requests.filter((r) => r.url.includes('.parquet') || r.url.includes('/cdn-lfs/'));
const rowsRequests = () => hub.requests.filter((r) => r.url.startsWith('/datasets-server/rows'));

describe('Hub dataset source', () => {
  it('reads the parquet files of refs/convert/parquet over HTTP Range', async () => {
    const src = await openHubSource(client, { dataset: TINY, split: 'train' });
    expect(src.info).toMatchObject({ kind: 'hub', format: 'hub-parquet', totalRecords: 12, columns: ['conversations', 'source', 'score'] });
    expect(src.info.label).toBe('webtune/tiny-sharegpt (train)');
    expect(src.info.identity).toMatch(/^hub:http:\/\/127\.0\.0\.1:\d+\/datasets\/webtune\/tiny-sharegpt@[0-9a-f]{40}:default\/train:all$/);
    hub.requests.length = 0;
    const records = await readAll(src);
    expect(records.map((r) => r.where)).toEqual(Array.from({ length: 12 }, (_, i) => `row ${i}`));
    expect(records[0].value).toMatchObject({ conversations: [{ from: 'system' }, { from: 'human', value: 'What is 2 plus 0?' }, { from: 'gpt' }], source: 'sums-a' });
    const gets = parquetRequests().filter((r) => r.method === 'GET');
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.every((r) => /^bytes=\d+-\d+$/.test(r.range ?? ''))).toBe(true);
    expect(rowsRequests()).toEqual([]);
  });

  it('falls back to the viewer /rows API when Range is refused, with the same records', async () => {
    const viaParquet = await readAll(await openHubSource(client, { dataset: MANY, split: 'train' }));
    refuseRange(MANY);
    const src = await openHubSource(client, { dataset: MANY, split: 'train' });
    expect(src.info.format).toBe('hub-rows');
    expect(src.info.note).toMatch(/parquet over HTTP Range is not available \(the server answered 200 with the whole file instead of a range\)/);
    expect(src.info.totalRecords).toBe(300);
    hub.requests.length = 0;
    const viaRows = await readAll(src);
    expect(rowsRequests()).toHaveLength(3); // 100 rows a request
    expect(viaRows.map((r) => r.where)).toEqual(viaParquet.map((r) => r.where));
    expect(viaRows.map((r) => r.value)).toEqual(viaParquet.map((r) => r.value));
    expect(viaParquet).toHaveLength(300);
  });

  it('honours the row limit in both modes, across files and pages', async () => {
    const spec: HubDatasetSpec = { dataset: MANY, split: 'train', limit: 250 };
    const pq = await openHubSource(client, spec);
    expect(pq.info).toMatchObject({ format: 'hub-parquet', totalRecords: 250, label: 'webtune/many-rows (train, first 250 rows)' });
    const a = await readAll(pq);
    expect(a).toHaveLength(250);
    expect(a.map((r) => r.value.n)).toEqual([...Array.from({ length: 180 }, (_, i) => i), ...Array.from({ length: 70 }, (_, i) => i)]);
    const resumed = await readAll(pq, 175);
    expect(resumed.map((r) => r.where)).toEqual(a.slice(175).map((r) => r.where));
    refuseRange(MANY);
    const rows = await openHubSource(client, spec);
    expect(rows.info.format).toBe('hub-rows');
    const b = await readAll(rows);
    expect(b.map((r) => r.value)).toEqual(a.map((r) => r.value));
    expect((await readAll(rows, 175)).map((r) => r.where)).toEqual(a.slice(175).map((r) => r.where));
    expect((await readAll(await openHubSource(client, { dataset: TINY, split: 'train', limit: 5 }))).map((r) => r.where)).toEqual(['row 0', 'row 1', 'row 2', 'row 3', 'row 4']);
  });

  it('prepares a Hub dataset with progress up to the total, the same in both modes', async () => {
    const events: PrepareProgress[] = [];
    const store = new PreparedStore(new MemoryKv());
    const m = await prepareDataset(await openHubSource(client, { dataset: MANY, split: 'train', limit: 250 }), OPTS, {
      store,
      tokenizer: tok,
      progressIntervalMs: 0,
      onProgress: (p) => events.push(p),
    });
    expect(m.stats.examples).toBe(250);
    const reading = events.filter((e) => e.phase === 'reading');
    expect(reading.length).toBeGreaterThan(10);
    expect(reading.every((e) => e.totalRecords === 250)).toBe(true);
    expect(reading[reading.length - 1].fraction).toBe(1);
    expect(reading[reading.length - 1].recordsRead).toBe(250);
    expect(events[events.length - 1]).toMatchObject({ phase: 'done', recordsRead: 250, fraction: 1 });

    refuseRange(MANY);
    const viaRows = await prepareDataset(await openHubSource(client, { dataset: MANY, split: 'train', limit: 250 }), OPTS, { store: new PreparedStore(new MemoryKv()), tokenizer: tok });
    expect(viaRows.fingerprint).toBe(m.fingerprint); // same data: the same dataset
    expect(viaRows.stats).toEqual(m.stats);
    expect(viaRows.source.format).toBe('hub-rows');
  });

  it('resumes a cancelled Hub preparation where it stopped', async () => {
    const opts = { ...OPTS, shardTokens: 1500 };
    const spec: HubDatasetSpec = { dataset: MANY, split: 'train' };
    const fetchedBytes = () =>
      parquetRequests()
        .filter((r) => r.method === 'GET')
        .reduce((n, r) => {
          const m = /bytes=(\d+)-(\d+)/.exec(r.range ?? '');
          return n + (m ? Number(m[2]) - Number(m[1]) + 1 : 0);
        }, 0);
    const wholeSource = await openHubSource(client, spec);
    hub.requests.length = 0;
    const whole = await prepareDataset(wholeSource, opts, { store: new PreparedStore(new MemoryKv()), tokenizer: tok });
    const wholeBytes = fetchedBytes();
    const store = new PreparedStore(new MemoryKv());
    const ctrl = new AbortController();
    await expect(
      prepareDataset(await openHubSource(client, spec), opts, {
        store,
        tokenizer: tok,
        signal: ctrl.signal,
        progressIntervalMs: 0,
        onProgress: (p) => p.shards >= 3 && ctrl.abort(),
      }),
    ).rejects.toMatchObject({ name: 'AbortError' });
    const units = (await store.list())[0].cursor.units;
    const again = await openHubSource(client, spec);
    hub.requests.length = 0;
    const resumed = await prepareDataset(again, opts, { store, tokenizer: tok });
    expect({ ...resumed, createdAt: 0, updatedAt: 0 }).toEqual({ ...whole, createdAt: 0, updatedAt: 0 });
    // Only the row groups from the cursor on were fetched again.
    expect(units).toBeGreaterThan(50);
    expect(fetchedBytes()).toBeGreaterThan(0);
    expect(fetchedBytes()).toBeLessThan(wholeBytes * (1 - 50 / 300));
  });

  it('says what is wrong with a dataset id, a split or a missing dataset', async () => {
    await expect(openHubSource(client, { dataset: TINY, split: 'validation' })).rejects.toThrow(
      'webtune/tiny-sharegpt has no split "validation"; its splits are: train, test.',
    );
    await expect(openHubSource(client, { dataset: 'webtune/nope', split: 'train' })).rejects.toMatchObject({ name: 'DataError', reason: 'hub' });
    await expect(openHubSource(client, { dataset: 'not a dataset id', split: 'train' })).rejects.toThrow(/is not a dataset id/);
  });
});

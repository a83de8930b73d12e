// The Data tab in Chromium against the built app and the mock Hub: files picked or dropped,
// Hub datasets (parquet over Range, and /rows when Range is refused), preparation into IndexedDB
// that survives a reload, and bad-record reports.
import { readFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { launchChromium, studioUrl, watchErrors } from './browser.ts';

let browser: Browser;
let page: Page;
let errors: string[];

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});
beforeEach(async () => {
  const context = await browser.newContext();
  page = await context.newPage();
  errors = watchErrors(page);
});
afterEach(async () => {
  await fetch(`${inject('hubUrl')}/__mock/faults`, { method: 'DELETE' });
  await page.context().close();
});

const byTestId = (id: string) => page.getByTestId(id);
const attr = (id: string, name: string) => byTestId(id).getAttribute(name);
const DEMO = 'public/demo/data/sort-words.jsonl';

async function prepareAndWait(): Promise<void> {
  await byTestId('prepare-button').click();
  await expect.poll(() => byTestId('prepare-done').count(), { timeout: 60_000 }).toBe(1);
}

describe('Data tab', () => {
  it('picks the demo JSONL, detects ShareGPT, prepares it, and still lists it after a reload', async () => {
    await page.goto(studioUrl('#data'));
    expect(await byTestId('dataset-status').innerText()).toMatch(/No dataset prepared/);
    await byTestId('data-file-input').setInputFiles(DEMO);
    await expect.poll(() => attr('detected-format', 'data-kind'), { timeout: 30_000 }).toBe('sharegpt');
    expect(await attr('source-summary', 'data-format')).toBe('jsonl');
    expect(await byTestId('sample-record').count()).toBe(5);

    // The preview marks exactly the answers (+ end of turn) as trained.
    await expect.poll(() => byTestId('preview-example').count(), { timeout: 30_000 }).toBe(3);
    const firstTrained = await byTestId('preview-example').first().getByTestId('trained-span').first().innerText();
    expect(firstTrained).toBe('camel, eagle, koala, owl, tiger<|im_end|>');

    await prepareAndWait();
    const stats = byTestId('dataset-stats');
    expect(await stats.getAttribute('data-records')).toBe('300');
    expect(await stats.getAttribute('data-skipped')).toBe('0');
    expect(Number(await stats.getAttribute('data-tokens'))).toBeGreaterThan(5000);
    const rows = Number(await stats.getAttribute('data-rows'));
    expect(rows).toBeGreaterThan(0);
    expect(await byTestId('length-histogram').locator('.recharts-bar-rectangle').count()).toBeGreaterThan(0);
    expect(await byTestId('dataset-status').innerText()).toMatch(/For training: sort-words\.jsonl/);

    await page.reload();
    const item = byTestId('prepared-item');
    await expect.poll(() => item.count(), { timeout: 30_000 }).toBe(1);
    expect(await item.getAttribute('data-status')).toBe('complete');
    expect(await item.getAttribute('data-selected')).toBe('true');
    expect(await item.innerText()).toMatch(/sort-words\.jsonl/);
    expect(await byTestId('dataset-status').innerText()).toMatch(new RegExp(`For training: sort-words\\.jsonl — ${rows} rows of 2048 tokens`));
    await byTestId('tab-train').click();
    await expect.poll(() => attr('check-dataset', 'data-done')).toBe('true');

    // The same file and options again: found in IndexedDB, not prepared twice.
    await byTestId('tab-data').click();
    await byTestId('data-file-input').setInputFiles(DEMO);
    await expect.poll(() => attr('detected-format', 'data-kind'), { timeout: 30_000 }).toBe('sharegpt');
    await prepareAndWait();
    expect(await byTestId('prepared-item').count()).toBe(1);

    await byTestId('prepared-delete').click();
    await expect.poll(() => byTestId('prepared-item').count()).toBe(0);
    expect(await byTestId('dataset-status').innerText()).toMatch(/No dataset prepared/);
    expect(errors).toEqual([]);
  });

  it('reports the broken lines of a dropped JSONL, with line numbers, and prepares the rest', async () => {
    await page.goto(studioUrl('#data'));
    const lines = readFileSync(DEMO, 'utf8').trim().split('\n').slice(0, 40);
    lines.splice(3, 0, '{"conversations": [}'); // line 4
    lines.splice(16, 0, 'this is not JSON'); // line 17
    lines.splice(25, 0, '{"conversations":[{"from":"human","value":"no answer"}]}'); // line 26
    const text = lines.join('\n') + '\n';
    // A real drop: the file travels in a DataTransfer, as from the desktop.
    const transfer = await page.evaluateHandle((t) => {
      const dt = new DataTransfer();
      dt.items.add(new File([t], 'broken.jsonl', { type: 'application/jsonl' }));
      return dt;
    }, text);
    await byTestId('data-dropzone').dispatchEvent('dragover', { dataTransfer: transfer });
    await byTestId('data-dropzone').dispatchEvent('drop', { dataTransfer: transfer });
    await expect.poll(() => attr('detected-format', 'data-kind'), { timeout: 30_000 }).toBe('sharegpt');
    expect(await byTestId('inspect-issues').innerText()).toMatch(/line 4: not valid JSON \(.+\) — skipped/);

    await prepareAndWait();
    expect(await attr('dataset-stats', 'data-records')).toBe('43');
    expect(await attr('dataset-stats', 'data-examples')).toBe('40');
    expect(await attr('issue-report', 'data-total')).toBe('3');
    const reported = await byTestId('issue-example').allInnerTexts();
    expect(reported).toHaveLength(3);
    expect(reported[0]).toMatch(/^line 4: not valid JSON \(.+\) — skipped$/);
    expect(reported[1]).toMatch(/^line 17: not valid JSON \(Unexpected token .+\) — skipped$/);
    expect(reported[2]).toBe('line 26: no assistant turn (1 messages, none from the assistant) — skipped');
    expect(errors).toEqual([]);
  });

  it('shows progress with rate and ETA, and cancels', async () => {
    await page.goto(studioUrl('#data'));
    // 33 MB, 180k records: long enough on any machine to see the rate and ETA and cancel before the
    // end (60 copies took ~1-2 s on two cores, and the test once raced the end of the job).
    const big = Buffer.from(readFileSync(DEMO, 'utf8').repeat(600));
    await byTestId('data-file-input').setInputFiles({ name: 'big.jsonl', mimeType: 'application/jsonl', buffer: big });
    await expect.poll(() => attr('detected-format', 'data-kind'), { timeout: 30_000 }).toBe('sharegpt');
    await byTestId('prepare-button').click();
    await expect.poll(() => attr('prepare-progress', 'data-phase'), { timeout: 30_000, interval: 50 }).toBe('reading');
    await expect.poll(() => byTestId('prepare-progress').innerText(), { timeout: 30_000, interval: 50 }).toMatch(/records\/s · .* tokens\/s · .* of .* · .* left/);
    await byTestId('prepare-cancel').click();
    await expect.poll(() => byTestId('prepare-error').count(), { timeout: 30_000 }).toBe(1);
    expect(await byTestId('prepare-error').innerText()).toMatch(/Cancelled\. The shards prepared so far are kept/);
    expect(await byTestId('prepare-button').isDisabled()).toBe(false);
    expect(errors).toEqual([]);
  });

  it('refuses a file with no known format, naming its columns', async () => {
    await page.goto(studioUrl('#data'));
    await byTestId('data-file-input').setInputFiles({ name: 'odd.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from('{"a":1,"b":"x"}\n{"a":2,"b":"y"}\n') });
    await expect.poll(() => byTestId('format-message').count(), { timeout: 30_000 }).toBe(1);
    expect(await byTestId('format-message').innerText()).toBe(
      'No conversations found: the file has columns [a, b]; map one of them as ShareGPT/OpenAI messages, Alpaca or text.',
    );
    expect(await byTestId('prepare-button').isDisabled()).toBe(true);
    // Mapping column "b" as plain text makes it usable.
    await byTestId('format-kind').selectOption('text');
    await byTestId('map-text').selectOption('b');
    await byTestId('mapping-apply').click();
    await expect.poll(() => attr('detected-format', 'data-kind'), { timeout: 30_000 }).toBe('text');
    await prepareAndWait();
    expect(await attr('dataset-stats', 'data-examples')).toBe('2');
  });

  it('prepares a Hub dataset from the mock Hub through its parquet files, over HTTP Range', async () => {
    const hub = inject('hubUrl');
    await page.goto(studioUrl('#data'));
    await byTestId('hub-dataset').fill('webtune/tiny-sharegpt');
    await expect.poll(async () => (await byTestId('hub-split').evaluate((el) => el.tagName)) === 'SELECT', { timeout: 30_000 }).toBe(true);
    await byTestId('hub-limit').fill('10');
    await byTestId('hub-load').click();
    await expect.poll(() => attr('source-summary', 'data-format'), { timeout: 30_000 }).toBe('hub-parquet');
    expect(await attr('detected-format', 'data-kind')).toBe('sharegpt');
    await prepareAndWait();
    expect(await attr('dataset-stats', 'data-records')).toBe('10');
    // The mock's log is shared by the whole run: look at this dataset's parquet bytes only.
    const log = (await (await fetch(`${hub}/__mock/requests`)).json()) as { method: string; url: string; range?: string }[];
    const parquet = log.filter((r) => r.method === 'GET' && r.url.includes('webtune/tiny-sharegpt') && (r.url.includes('/cdn-lfs/') || r.url.endsWith('.parquet')));
    expect(parquet.length).toBeGreaterThan(0);
    expect(parquet.every((r) => /^bytes=\d+-\d+$/.test(r.range ?? ''))).toBe(true);
    expect(errors).toEqual([]);
  });

  it('falls back to the dataset viewer /rows when the parquet host refuses Range', async () => {
    const hub = inject('hubUrl');
    await fetch(`${hub}/__mock/faults`, {
      method: 'POST',
      body: JSON.stringify({ ignoreRange: { file: 'default/train/0000.parquet', repo: 'webtune/tiny-sharegpt', times: 1000 } }),
    });
    await page.goto(studioUrl('#data'));
    await byTestId('hub-dataset').fill('webtune/tiny-sharegpt');
    await byTestId('hub-limit').fill('');
    await byTestId('hub-load').click();
    await expect.poll(() => attr('source-summary', 'data-format'), { timeout: 30_000 }).toBe('hub-rows');
    expect(await byTestId('source-summary').innerText()).toMatch(/dataset viewer/);
    await prepareAndWait();
    expect(await attr('dataset-stats', 'data-records')).toBe('12');
    expect(errors).toEqual([]);
  });
});

describe('data worker API', () => {
  // Deterministic: the data worker awaits the progress report of each stored shard, and this
  // report's callback awaits the cancel, so the preparation stops right after its second shard.
  it('a cancelled preparation keeps its shards across a reload and continues from them', async () => {
    await page.goto(studioUrl('#data'));
    const first = await page.evaluate(async () => {
      const w = (window as unknown as { __webtune: { data: any } }).__webtune.data;
      const base = new URL('./', location.href).href;
      const source = { kind: 'demo', id: 'webtune/demo-sort-words', name: 'Sort words (demo)', url: `${base}demo/data/sort-words.jsonl` };
      const request = {
        template: 'chatml',
        trainOnResponsesOnly: true,
        maxSeqLength: 256,
        overflow: 'truncate',
        packing: true,
        validationFraction: 0,
        seed: 0,
        shardTokens: 1500,
        tokenizer: { kind: 'url', id: 'webtune/demo-tiny-llama', url: `${base}demo/model/` },
      };
      try {
        await w.prepare('job-c', source, request, async (p: { shards: number }) => {
          if (p.shards >= 2) await w.cancel('job-c');
        });
        return 'not cancelled';
      } catch (e) {
        return (e as Error).name;
      }
    });
    expect(first).toBe('AbortError');
    await page.reload();
    const item = byTestId('prepared-item');
    await expect.poll(() => item.getAttribute('data-status'), { timeout: 30_000 }).toBe('partial');
    expect(await item.innerText()).toMatch(/partial: 2 shards stored/);
    expect(await byTestId('dataset-status').innerText()).toMatch(/No dataset prepared/);
    await byTestId('prepared-continue').click();
    await expect.poll(() => byTestId('prepare-done').count(), { timeout: 60_000 }).toBe(1);
    expect(await attr('dataset-stats', 'data-records')).toBe('300');
    expect(await item.getAttribute('data-status')).toBe('complete');
    expect(await byTestId('dataset-status').innerText()).toMatch(/For training: Sort words \(demo\)/);
    expect(errors).toEqual([]);
  });

  it('tokenize workers spawned by the data worker store exactly the rows it stores alone', async () => {
    await page.goto(studioUrl('#data'));
    const result = await page.evaluate(async () => {
      const w = (window as unknown as { __webtune: { data: any } }).__webtune.data;
      const base = new URL('./', location.href).href;
      const source = { kind: 'demo', id: 'webtune/demo-sort-words', name: 'Sort words (demo)', url: `${base}demo/data/sort-words.jsonl` };
      const request = {
        template: 'chatml',
        trainOnResponsesOnly: true,
        maxSeqLength: 256,
        overflow: 'truncate',
        packing: true,
        validationFraction: 0.1,
        seed: 4,
        shardTokens: 3000,
        tokenizer: { kind: 'url', id: 'webtune/demo-tiny-llama', url: `${base}demo/model/` },
      };
      const rows = async (m: { fingerprint: string; shards: unknown[] }) => {
        const out: number[][] = [];
        for (const split of ['train', 'validation']) {
          for (let i = 0; i < m.shards.length; i++) {
            const s = await w.readShard(m.fingerprint, i, split);
            out.push([...s.input_ids], [...s.labels_mask], [...s.segment_ids]);
          }
        }
        return out;
      };
      const pooled = await w.prepare('job-pool', source, { ...request, tokenizeWorkers: 2 }, () => undefined);
      const pooledRows = await rows(pooled);
      await w.deletePrepared(pooled.fingerprint);
      const alone = await w.prepare('job-alone', source, { ...request, tokenizeWorkers: 0 }, () => undefined);
      const aloneRows = await rows(alone);
      return {
        same: JSON.stringify(pooledRows) === JSON.stringify(aloneRows),
        sameStats: JSON.stringify(pooled.stats) === JSON.stringify(alone.stats),
        shards: alone.shards.length,
        tokens: aloneRows.reduce((n, r) => n + r.length, 0),
        examples: pooled.stats.examples,
      };
    });
    expect(result.examples).toBe(300);
    expect(result.shards).toBeGreaterThanOrEqual(3);
    expect(result.tokens).toBeGreaterThan(10_000);
    expect(result.same).toBe(true);
    expect(result.sameStats).toBe(true);
    expect(errors).toEqual([]);
  });

  it('serves packed rows of a prepared dataset on a MessagePort, and refuses an unknown one', async () => {
    await page.goto(studioUrl('#data'));
    const result = await page.evaluate(async () => {
      const w = (window as unknown as { __webtune: { data: any } }).__webtune.data;
      const base = new URL('./', location.href).href;
      const source = { kind: 'demo', id: 'webtune/demo-sort-words', name: 'Sort words (demo)', url: `${base}demo/data/sort-words.jsonl` };
      const request = {
        template: 'chatml',
        trainOnResponsesOnly: true,
        maxSeqLength: 256,
        overflow: 'truncate',
        packing: true,
        validationFraction: 0,
        seed: 0,
        tokenizer: { kind: 'url', id: 'webtune/demo-tiny-llama', url: `${base}demo/model/` },
      };
      const m = await w.prepare('job-port', source, request, () => undefined);
      const { port1, port2 } = new MessageChannel();
      const served = await w.serveBatches(m.fingerprint, 'train', port1);
      // The other end, spoken by hand (in the app, portRowSource in the trainer worker does this).
      const replies = new Map<number, (r: any) => void>();
      port2.onmessage = (e) => replies.get(e.data.id)?.(e.data);
      const ask = (msg: { id: number; [k: string]: unknown }) => new Promise<any>((resolve) => {
        replies.set(msg.id, resolve);
        port2.postMessage(msg);
      });
      const opened = await ask({ type: 'open', id: 0 });
      const rows = await ask({ type: 'read', id: 1, start: 1, count: 2 });
      const shard = await w.readShard(m.fingerprint, 0, 'train');
      const expected = [...shard.input_ids.subarray(256, 768)];
      let refused = '';
      try {
        await w.serveBatches('no-such-dataset', 'train', new MessageChannel().port1);
      } catch (e) {
        refused = (e as Error).message;
      }
      return {
        served,
        trainRows: m.stats.train.rows,
        opened: [opened.type, opened.rows, opened.seqLength],
        batch: [rows.type, rows.batch.batch, rows.batch.seqLen, rows.batch.inputIds.constructor.name],
        same: JSON.stringify([...rows.batch.inputIds]) === JSON.stringify(expected),
        refused,
      };
    });
    expect(result.trainRows).toBeGreaterThanOrEqual(3);
    expect(result.served).toEqual({ rows: result.trainRows, seqLength: 256 });
    expect(result.opened).toEqual(['opened', result.trainRows, 256]);
    expect(result.batch).toEqual(['rows', 2, 256, 'Uint32Array']);
    expect(result.same).toBe(true);
    expect(result.refused).toMatch(/No prepared dataset no-such-dataset\./);
    expect(errors).toEqual([]);
  });

  it('prepares the demo dataset into IndexedDB and reads a shard back', async () => {
    await page.goto(studioUrl('#data'));
    const result = await page.evaluate(async () => {
      const w = (window as unknown as { __webtune: { data: any } }).__webtune.data;
      const base = new URL('./', location.href).href;
      const source = { kind: 'demo', id: 'webtune/demo-sort-words', name: 'Sort words (demo)', url: `${base}demo/data/sort-words.jsonl` };
      const request = {
        template: 'chatml',
        trainOnResponsesOnly: true,
        maxSeqLength: 256,
        overflow: 'truncate',
        packing: true,
        validationFraction: 0,
        seed: 0,
        tokenizer: { kind: 'url', id: 'webtune/demo-tiny-llama', url: `${base}demo/model/` },
      };
      const phases: string[] = [];
      const m = await w.prepare('job-1', source, request, (p: { phase: string }) => phases.push(p.phase));
      const shard = await w.readShard(m.fingerprint, 0);
      const list = await w.listPrepared();
      return {
        records: m.stats.records,
        rows: m.stats.train.rows,
        phases,
        shardRows: shard.rows,
        ids: shard.input_ids.constructor.name,
        listed: list.map((x: { fingerprint: string }) => x.fingerprint),
        fp: m.fingerprint,
      };
    });
    expect(result.records).toBe(300);
    expect(result.shardRows).toBe(result.rows);
    expect(result.ids).toBe('Int32Array');
    expect(result.listed).toEqual([result.fp]);
    expect(result.phases[0]).toBe('loading tokenizer');
    expect(result.phases).toContain('done');
    expect(errors).toEqual([]);
  });
});

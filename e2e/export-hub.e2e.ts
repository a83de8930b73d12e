// The Export tab's run bundle and Hub upload in Chromium: the demo model trained 3 steps on the demo
// file, then the run bundle downloaded as a .zip (its records read again from the file chosen in the
// Data tab) that holds train.py, the data and the Axolotl config, and the adapter uploaded to the
// mock Hub (global-setup.ts) with the write token typed into the Model tab; the files read back
// from the mock as the upload said, the card included. A read-only token gets a sentence first.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseModelConfig } from '../src/engine/arch.ts';
import { readPeftAdapter } from '../src/io/peft.ts';
import { launchChromium, studioUrl, watchDownloads, watchErrors } from './browser.ts';
import { DEMO_DATA, fillSmallRun, loadDemoModel, prepareDemoData, waitForSummary } from './train-setup.ts';

let browser: Browser;
let page: Page;
let errors: string[];
let downloadsOf: ReturnType<typeof watchDownloads>;
const dir = mkdtempSync(join(tmpdir(), 'webtune-export-hub-e2e-'));
const LONG = { timeout: 180_000 };
const byTestId = (id: string) => page.getByTestId(id);
const attr = (id: string, name: string) => byTestId(id).getAttribute(name);
const arch = parseModelConfig(JSON.parse(readFileSync('public/demo/model/config.json', 'utf8')));

async function setToken(token: string): Promise<void> {
  await byTestId('tab-model').click();
  await byTestId('hf-token').fill(token);
  await byTestId('hf-token-save').click();
  await byTestId('tab-export').click();
}

beforeAll(async () => {
  browser = await launchChromium();
  const context = await browser.newContext({ acceptDownloads: true });
  page = await context.newPage();
  errors = watchErrors(page);
  downloadsOf = watchDownloads(page, dir, 240_000);
  await page.goto(studioUrl('#model'));
  await loadDemoModel(page);
  await prepareDemoData(page, { maxLength: 128, validationPercent: 0 });
  await fillSmallRun(page, { steps: 3 });
  await byTestId('train-start').click();
  await waitForSummary(page, errors);
  await byTestId('tab-export').click();
  // Not expect.poll: that is for tests, not hooks.
  await page.locator('[data-testid="check-export-adapter"][data-done="true"]').waitFor({ timeout: 60_000 });
}, 600_000);
afterAll(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Export tab: run bundle and Hub upload', () => {
  it('downloads the run bundle: a zip with train.py, the trained records as JSONL and the Axolotl config', async () => {
    await byTestId('export-save-mode').selectOption('download');
    const files = await downloadsOf(1, () => byTestId('export-bundle-button').click());
    expect([...files.keys()]).toEqual(['demo-tiny-llama-run-bundle.zip']);
    await expect.poll(() => attr('export-job', 'data-status'), LONG).toBe('done');
    expect(await attr('export-result', 'data-kind')).toBe('bundle');
    const zip = unzipSync(new Uint8Array(readFileSync(files.get('demo-tiny-llama-run-bundle.zip')!)));
    for (const f of ['train.py', 'data/train.jsonl', 'axolotl.yaml', 'adapter/adapter_model.safetensors']) expect(zip[f], f).toBeDefined();
    const text = (f: string) => new TextDecoder().decode(zip[f]);
    expect(text('train.py')).toContain('accelerate');
    expect(text('axolotl.yaml')).toMatch(/base_model: webtune\/demo-tiny-llama/);
    // Every JSONL line is a conversation of the chosen file, as messages.
    const source = new Set(readFileSync(DEMO_DATA, 'utf8').trim().split('\n').map((l) => JSON.stringify(JSON.parse(l).conversations.map((c: { value: string }) => c.value))));
    const lines = text('data/train.jsonl').trim().split('\n');
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines) expect(source.has(JSON.stringify(JSON.parse(l).messages.map((m: { content: string }) => m.content))), l).toBe(true);
    const rows = JSON.parse(text('data/rows.json'));
    expect(rows.train.docs_per_row.reduce((a: number, b: number) => a + b, 0)).toBe(lines.length);
  });

  it('a read-only token: the upload says so in a sentence', async () => {
    await setToken('hf_mock_read');
    await byTestId('hub-upload-repo').fill('demo-denied');
    await byTestId('hub-upload-button').click();
    await expect.poll(() => attr('hub-upload', 'data-status'), LONG).toBe('error');
    expect(await byTestId('hub-upload-status').innerText()).toMatch(/read-only: uploading needs a token with the "write" role/);
  });

  it('uploads the adapter to the mock Hub: the files read back, the card says the run', async () => {
    await setToken('hf_mock_write');
    await byTestId('hub-upload-repo').fill('demo-from-studio');
    await byTestId('hub-upload-button').click();
    await expect.poll(() => attr('hub-upload', 'data-status'), LONG).toBe('done');
    const hub = inject('hubUrl');
    expect(await byTestId('hub-upload-url').getAttribute('href')).toBe(`${hub}/mock-user/demo-from-studio`);
    const get = async (path: string) => {
      const res = await fetch(`${hub}/mock-user/demo-from-studio/resolve/main/${path}`, { headers: { Authorization: 'Bearer hf_mock_write' } });
      expect(res.status, path).toBe(200);
      return new Uint8Array(await res.arrayBuffer());
    };
    const { adapter } = await readPeftAdapter({ config: new TextDecoder().decode(await get('adapter_config.json')), weights: await get('adapter_model.safetensors') }, arch);
    expect(adapter.settings.baseModelNameOrPath).toBe('webtune/demo-tiny-llama');
    expect(Math.hypot(...[...adapter.modules.values()].flatMap((m) => Array.from(m.b)))).toBeGreaterThan(0);
    const card = new TextDecoder().decode(await get('README.md'));
    expect(card).toContain('base_model: webtune/demo-tiny-llama');
    expect(card).toContain('sort-words');
    const info = await (await fetch(`${hub}/api/models/mock-user/demo-from-studio`, { headers: { Authorization: 'Bearer hf_mock_write' } })).json();
    expect(info.private).toBe(true);
    expect(errors).toEqual([]);
  });
});

// The Export tab in Chromium: the demo model trained for a few steps, then the adapter (.zip) and a
// GGUF Q8_0 with its Modelfile exported to the browser's downloads (the pickers of the File System
// Access API cannot be driven headless; the downloads come from files the trainer worker wrote to
// OPFS). The downloads arrive (Playwright download events), are non-empty, re-parse with our readers
// (fflate + readPeftAdapter, gguf-read), and llama.cpp (node-llama-cpp) loads the GGUF and generates.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseModelConfig } from '../src/engine/arch.ts';
import { openGguf } from '../src/io/gguf-read.ts';
import { readPeftAdapter } from '../src/io/peft.ts';
import { DEMO, llamaGreedy, readJson } from '../tests/fixtures/gguf/helpers.ts';
import { launchChromium, studioUrl, watchDownloads, watchErrors } from './browser.ts';

let browser: Browser;
let page: Page;
let errors: string[];
let downloadsOf: ReturnType<typeof watchDownloads>;
const dir = mkdtempSync(join(tmpdir(), 'webtune-export-e2e-'));
const LONG = { timeout: 120_000 };
const byTestId = (id: string) => page.getByTestId(id);
const attr = (id: string, name: string) => byTestId(id).getAttribute(name);

beforeAll(async () => {
  browser = await launchChromium();
  const context = await browser.newContext({ acceptDownloads: true });
  page = await context.newPage();
  errors = watchErrors(page);
  downloadsOf = watchDownloads(page, dir);
});
afterAll(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Export tab', () => {
  it('before training: every export says what it needs', async () => {
    await page.goto(studioUrl('#model'));
    await expect.poll(() => attr('gpu-info', 'data-status'), LONG).toBe('ready');
    await byTestId('model-load-demo').click();
    await expect.poll(() => attr('current-model', 'data-status'), LONG).toBe('loaded');
    await byTestId('tab-export').click();
    await expect.poll(() => attr('check-export-model', 'data-done')).toBe('true');
    expect(await attr('check-export-adapter', 'data-done')).toBe('false');
    for (const kind of ['adapter', 'merged', 'gguf']) {
      expect(await byTestId(`export-${kind}-button`).isDisabled(), kind).toBe(true);
      expect(await page.locator(`#export-${kind}-why`).innerText()).toBe('Needs a trained adapter.');
    }
    // The GGUF sizes are planned from the model alone; Q4_K_M is the recommendation.
    await expect.poll(() => attr('gguf-size-q8_0', 'data-bytes')).not.toBe('');
    const q8 = Number(await attr('gguf-size-q8_0', 'data-bytes'));
    const f16 = Number(await attr('gguf-size-f16', 'data-bytes'));
    expect(q8).toBeGreaterThan(100_000);
    expect(f16).toBeGreaterThan(q8);
    expect(await byTestId('gguf-type-q4_k_m').isChecked()).toBe(true);
    expect(await byTestId('gguf-types').innerText()).toMatch(/Q4_K_M\s*recommended/);
  });

  it('trains a few steps, then exports the adapter zip and a GGUF Q8_0 + Modelfile as downloads that our readers and llama.cpp take', async () => {
    try {
      await trainThenExport();
    } catch (e) {
      // What the page showed, so that a failure on a busy machine can be told from a bug.
      const shown = await page.evaluate(() =>
        ['train-progress', 'train-error', 'export-job', 'export-status'].map((id) => `${id}: ${document.querySelector(`[data-testid="${id}"]`)?.textContent ?? '-'}`).join(' | '),
      );
      console.log(`export e2e failed; page: ${shown}; errors: ${errors.join('; ')}`);
      throw e;
    }
  });
});

/** The demo trained for 3 steps, then both exports checked (the second test's body). */
async function trainThenExport(): Promise<void> {
  await byTestId('tab-data').click();
  await byTestId('data-file-input').setInputFiles('public/demo/data/sort-words.jsonl');
  await expect.poll(() => attr('detected-format', 'data-kind'), LONG).toBe('sharegpt');
  await byTestId('opt-max-length').fill('128');
  await byTestId('prepare-button').click();
  await expect.poll(() => byTestId('prepare-done').count(), LONG).toBe(1);
  await byTestId('tab-train').click();
  await byTestId('train-r').waitFor();
  await byTestId('train-length').selectOption('maxSteps');
  await byTestId('train-max-steps').fill('3');
  await byTestId('train-lr').fill('3e-3');
  await byTestId('train-warmup').fill('1');
  await byTestId('train-batch').fill('1');
  await byTestId('train-accum').fill('1');
  await byTestId('train-start').click();
  await expect.poll(() => byTestId('train-summary').count(), { timeout: 180_000 }).toBe(1);

  await byTestId('tab-export').click();
  await expect.poll(() => attr('check-export-adapter', 'data-done')).toBe('true');
  await byTestId('export-save-mode').selectOption('download');

  // The adapter: one .zip.
  const zipFiles = await downloadsOf(1, () => byTestId('export-adapter-button').click());
  await expect.poll(() => attr('export-job', 'data-status'), LONG).toBe('done');
  expect([...zipFiles.keys()]).toEqual(['demo-tiny-llama-lora.zip']);
  const zip = readFileSync(zipFiles.get('demo-tiny-llama-lora.zip')!);
  expect(zip.length).toBeGreaterThan(10_000);
  expect(Number(await attr('export-result', 'data-bytes'))).toBe(zip.length);
  const files = unzipSync(new Uint8Array(zip));
  expect(Object.keys(files).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
  const arch = parseModelConfig(readJson(join(DEMO, 'config.json')));
  const { adapter } = await readPeftAdapter({ config: new TextDecoder().decode(files['adapter_config.json']), weights: files['adapter_model.safetensors'] }, arch);
  expect(adapter.settings.r).toBe(16);
  expect(adapter.modules.size).toBe(2 * 7);
  // Trained: some lora_B is no longer zero.
  expect([...adapter.modules.values()].some((m) => m.b.some((x) => x !== 0))).toBe(true);
  const readme = new TextDecoder().decode(files['README.md']);
  expect(readme).toContain('| steps | 3 |');
  expect(readme).toContain('| chat template | chatml |');

  // GGUF Q8_0 and its Modelfile: a folder export, two downloads.
  await byTestId('gguf-type-q8_0').check();
  const ggufFiles = await downloadsOf(2, () => byTestId('export-gguf-button').click());
  await expect.poll(() => attr('export-job', 'data-status'), LONG).toBe('done');
  expect([...ggufFiles.keys()].sort()).toEqual(['Modelfile', 'demo-tiny-llama-Q8_0.gguf']);
  const ggufPath = ggufFiles.get('demo-tiny-llama-Q8_0.gguf')!;
  const gguf = new Uint8Array(readFileSync(ggufPath));
  expect(gguf.length).toBe(Number(await attr('gguf-size-q8_0', 'data-bytes')) - readFileSync(ggufFiles.get('Modelfile')!).length);
  const g = await openGguf(gguf);
  expect(g.get('general.architecture')).toBe('llama');
  expect(g.get('general.file_type')).toBe(7);
  expect(g.get('general.name')).toBe('webtune/demo-tiny-llama (LoRA merged)');
  expect(String(g.get('tokenizer.chat_template'))).toContain('<|im_start|>');
  expect(g.tensors.length).toBe(3 + 2 * 9);
  expect(readFileSync(ggufFiles.get('Modelfile')!, 'utf8').split('\n')[0]).toBe('FROM ./demo-tiny-llama-Q8_0.gguf');
  expect(await byTestId('export-status').innerText()).toMatch(/^Saved the GGUF Q8_0 \(.* in 2 files\) to your browser's downloads/);
  expect(await byTestId('export-notes').innerText()).toContain('Merged into the original base weights');

  // llama.cpp loads it and generates.
  const tokens = await llamaGreedy(ggufPath, [508, 509], 8);
  expect(tokens.length).toBe(8);
  expect(errors).toEqual([]);
}

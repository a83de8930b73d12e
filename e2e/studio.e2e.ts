// The built studio in Debian's Chromium (WebGPU on SwiftShader here), against the mock Hub.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
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

const byTestId = (id: string) => page.getByTestId(id);

describe('studio shell', () => {
  it('loads, shows the WebGPU adapter from the trainer worker, and lists the demo', async () => {
    await page.goto(studioUrl());
    await expect.poll(() => byTestId('gpu-info').getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    const summary = await byTestId('gpu-summary').innerText();
    expect(summary).toMatch(/^GPU: .+, f16: (yes|no), subgroups: (yes|no), max buffer: [\d.]+ (MiB|GiB)/);
    expect(await byTestId('gpu-limits').textContent()).toMatch(/maxStorageBufferBindingSize/);

    expect(await byTestId('model-status').innerText()).toMatch(/No model loaded/);
    const demo = byTestId('model-demo');
    await demo.waitFor();
    expect(await demo.innerText()).toMatch(/Demo \(offline\)/);
    expect(await demo.getAttribute('data-model-id')).toBe('webtune/demo-tiny-llama');

    await byTestId('tab-data').click();
    const dataset = byTestId('dataset-demo');
    await dataset.waitFor();
    expect(await dataset.innerText()).toMatch(/Sort words \(demo\)\s+sharegpt\s+300\s/);
    expect(await byTestId('dataset-status').innerText()).toMatch(/No dataset prepared/);
    expect(page.url()).toMatch(/#data$/);
    expect(errors).toEqual([]);
  });

  it('every tab says what exists and what is missing', async () => {
    await page.goto(studioUrl('#train'));
    expect(await byTestId('check-model').getAttribute('data-done')).toBe('false');
    expect(await byTestId('check-dataset').getAttribute('data-done')).toBe('false');
    await byTestId('tab-chat').click();
    expect(await byTestId('chat-status').innerText()).toMatch(/No model loaded/);
    await byTestId('tab-export').click();
    for (const id of ['export-adapter', 'export-merged', 'export-gguf']) {
      expect(await byTestId(id).getAttribute('data-enabled')).toBe('false');
    }
  });

  it('runs the matmul kernel in the trainer worker against the float64 reference', async () => {
    await page.goto(studioUrl());
    await byTestId('selftest-run').click();
    const result = byTestId('selftest-result');
    await expect.poll(() => result.getAttribute('data-ok'), { timeout: 60_000 }).toBe('true');
    const err = Number(await result.getAttribute('data-max-rel-error'));
    expect(err).toBeGreaterThanOrEqual(0);
    expect(err).toBeLessThan(1e-5); // f32, component-wise relative to Σ|a·b|
    expect(await result.innerText()).toMatch(/matmul 100×70×37 f32/);
  });

  it('writes to and reads back from IndexedDB in the data worker', async () => {
    await page.goto(studioUrl());
    await byTestId('storage-check').click();
    const probe = byTestId('storage-probe');
    await expect.poll(() => probe.getAttribute('data-ok'), { timeout: 30_000 }).toBe('true');
  });

  it('reports a dying worker with its message and restarts it on demand', async () => {
    await page.goto(studioUrl());
    await expect.poll(() => byTestId('gpu-info').getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    await page.evaluate(() => (window as unknown as { __webtune: { trainer: { crash(m: string): Promise<void> } } }).__webtune.trainer.crash('die'));
    const banner = byTestId('worker-error-trainer');
    await banner.waitFor();
    expect(await banner.getAttribute('data-kind')).toBe('crash');
    expect(await byTestId('worker-error-trainer-message').innerText()).not.toBe('');
    expect(await byTestId('worker-status-trainer').getAttribute('data-status')).toBe('crashed');

    await byTestId('worker-restart-trainer').click();
    await expect.poll(() => byTestId('gpu-info').getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    await byTestId('selftest-run').click();
    await expect.poll(() => byTestId('selftest-result').getAttribute('data-ok'), { timeout: 60_000 }).toBe('true');
  });

  it('surfaces device loss as an event', async () => {
    await page.goto(studioUrl());
    await expect.poll(() => byTestId('gpu-info').getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    await page.evaluate(() => (window as unknown as { __webtune: { trainer: { loseDevice(): Promise<void> } } }).__webtune.trainer.loseDevice());
    await byTestId('gpu-lost').waitFor();
    expect(await byTestId('gpu-info').getAttribute('data-status')).toBe('lost');
  });

  it('takes the Hub base URL from the address, for the mock Hub', async () => {
    await page.goto(studioUrl());
    await byTestId('settings-open').click();
    const hub = await byTestId('settings-hub').inputValue();
    expect(hub).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // The mock answers as the Hub does for the demo repo mounted in global-setup.ts.
    const info = await page.evaluate(async (url) => (await fetch(`${url}/api/models/webtune/demo-tiny-llama`)).json(), hub);
    expect(info.id).toBe('webtune/demo-tiny-llama');
  });

  it('shows a clear page when the browser has no WebGPU', async () => {
    await page.addInitScript(() => {
      delete (Navigator.prototype as { gpu?: unknown }).gpu;
    });
    await page.goto(studioUrl());
    const notice = byTestId('no-webgpu');
    await notice.waitFor();
    expect(await notice.getAttribute('data-reason')).toBe('no-api');
    expect(await notice.innerText()).toMatch(/needs WebGPU/);
    expect(await notice.innerText()).toMatch(/Chrome/);
    expect(errors).toEqual([]);
  });
});

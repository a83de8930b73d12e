// The Model tab in Chromium against the mock Hub: the demo loads and ticks the Train checklist; a
// Hub model loads with progress into the OPFS cache, a reloaded page loads it again without
// downloading, and Clear empties the cache; a gated repo asks for the licence and a token.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { launchChromium, studioUrl, watchErrors } from './browser.ts';

let browser: Browser;
let context: BrowserContext;
let page: Page;
let errors: string[];
const hub = inject('hubUrl');

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});
beforeEach(async () => {
  context = await browser.newContext(); // a fresh profile: empty OPFS
  page = await context.newPage();
  errors = watchErrors(page);
});
afterEach(async () => {
  await fetch(`${hub}/__mock/faults`, { method: 'DELETE' });
  await context?.close();
});

const byTestId = (id: string) => page.getByTestId(id);
const LOAD_TIMEOUT = { timeout: 120_000 };

async function openStudio(): Promise<void> {
  await page.goto(studioUrl());
  await expect.poll(() => byTestId('gpu-info').getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
}

const modelStatus = () => byTestId('current-model').getAttribute('data-status');

/** Requests the mock Hub received for a file's bytes (the resolve URL or the storage host). */
async function weightRequests(file: string): Promise<number> {
  const log = (await (await fetch(`${hub}/__mock/requests`)).json()) as { url: string }[];
  return log.filter((r) => (r.url.includes('/resolve/') ? r.url.endsWith(`/${file}`) : r.url.startsWith('/cdn-lfs/') && r.url.includes(`filename=${file}`)))
    .length;
}

async function loadFromHub(id: string): Promise<void> {
  await byTestId('hub-model-id').fill(id);
  await byTestId('hub-model-load').click();
}

describe('Model tab', () => {
  it('loads the offline demo: summary shown, the Train checklist has the model', async () => {
    await openStudio();
    expect(await byTestId('model-status').innerText()).toMatch(/No model loaded/);
    await byTestId('model-load-demo').click();
    await expect.poll(modelStatus, LOAD_TIMEOUT).toBe('loaded');
    expect(await byTestId('model-status').innerText()).toMatch(/Loaded: Demo \(offline\) \(156\.5K parameters, llama\)/);
    expect(await byTestId('model-arch').innerText()).toMatch(/llama, 2 layers, hidden 64, 4\/2 heads, vocab 512/);
    expect(await byTestId('model-summary').innerText()).toMatch(/Embeddings in f(16|32)/);
    expect(Number(await byTestId('model-gpu-bytes').getAttribute('data-bytes'))).toBeGreaterThan(0);
    const seconds = Number(await byTestId('model-load-time').getAttribute('data-seconds'));
    console.log(`demo load in Chromium: ${seconds.toFixed(2)} s`);

    await byTestId('tab-train').click();
    expect(await byTestId('check-model').getAttribute('data-done')).toBe('true');
    await byTestId('tab-model').click();
    await byTestId('model-unload').click();
    await expect.poll(modelStatus).toBe('none');
    expect(errors).toEqual([]);
  });

  it('loads a Hub model with progress into the cache; after a reload it loads without downloading; Clear empties it', async () => {
    const id = 'webtune/tiny-random-llama';
    // Hold the weights download after 1000 bytes for a moment (the client then resumes): the
    // progress is visible meanwhile.
    await fetch(`${hub}/__mock/faults`, {
      method: 'POST',
      body: JSON.stringify({ stall: { file: 'model.safetensors', repo: id, afterBytes: 1000, holdMs: 1500 } }),
    });
    await openStudio();
    await expect.poll(() => byTestId('cache-panel').getAttribute('data-kind'), LOAD_TIMEOUT).toBe('opfs');
    await byTestId('cache-empty').waitFor();
    await loadFromHub(id);
    const bytes = byTestId('load-progress-bytes');
    await expect.poll(() => bytes.getAttribute('data-bytes-done'), LOAD_TIMEOUT).toBe('1000');
    expect(await bytes.innerText()).toMatch(/1000 B of [\d.]+ KiB downloaded/);
    await expect.poll(modelStatus, LOAD_TIMEOUT).toBe('loaded');
    const size = Number(await byTestId('model-load-time').getAttribute('data-downloaded'));
    expect(size).toBeGreaterThan(1000);
    const cached = page.locator(`[data-testid="cache-repo"][data-repo="${id}"]`);
    await cached.waitFor();
    expect(await cached.innerText()).toMatch(/model\.safetensors/);

    const before = await weightRequests('model.safetensors');
    await page.reload();
    await expect.poll(() => byTestId('gpu-info').getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    expect(await byTestId('model-status').innerText()).toMatch(/No model loaded/);
    await cached.waitFor(); // still cached after the reload
    await loadFromHub(id);
    await expect.poll(modelStatus, LOAD_TIMEOUT).toBe('loaded');
    expect(await byTestId('model-load-time').getAttribute('data-downloaded')).toBe('0');
    expect(Number(await byTestId('model-load-time').getAttribute('data-cached'))).toBe(size);
    expect(await weightRequests('model.safetensors')).toBe(before);
    expect(await weightRequests('config.json')).toBeGreaterThan(0); // asked once, before the reload

    await cached.getByTestId('cache-clear-repo').click();
    await byTestId('cache-empty').waitFor();
    expect(errors).toEqual([]);
  });

  it('cancelling keeps the bytes so far in the cache; the next load resumes from there', async () => {
    const id = 'webtune/tiny-random-llama';
    await fetch(`${hub}/__mock/faults`, { method: 'POST', body: JSON.stringify({ stall: { file: 'model.safetensors', repo: id, afterBytes: 500 } }) });
    await openStudio();
    await loadFromHub(id);
    await expect.poll(() => byTestId('load-progress-bytes').getAttribute('data-bytes-done'), LOAD_TIMEOUT).toBe('500');
    await byTestId('load-cancel').click();
    await expect.poll(modelStatus).toBe('none');
    expect(await byTestId('current-model').innerText()).toMatch(/Load cancelled\. What was downloaded stays cached/);
    const cached = page.locator(`[data-testid="cache-repo"][data-repo="${id}"]`);
    await expect.poll(() => cached.innerText()).toMatch(/1 partly downloaded/);

    await fetch(`${hub}/__mock/faults`, { method: 'DELETE' });
    await byTestId('hub-model-load').click();
    await expect.poll(modelStatus, LOAD_TIMEOUT).toBe('loaded');
    expect(await byTestId('model-load-time').getAttribute('data-cached')).toBe('500');
    const log = (await (await fetch(`${hub}/__mock/requests`)).json()) as { url: string; range?: string }[];
    expect(log.filter((r) => r.url.includes('model.safetensors')).map((r) => r.range)).toContain('bytes=500-');
  });

  it('a gated repo without a token says to accept the licence and add a token; with one it loads', async () => {
    await openStudio();
    await loadFromHub('webtune/tiny-gated-llama');
    await expect.poll(modelStatus, LOAD_TIMEOUT).toBe('error');
    expect(await byTestId('model-error').getAttribute('data-error-name')).toBe('HubError');
    expect(await byTestId('model-status').innerText()).toMatch(
      /webtune\/tiny-gated-llama is gated: open http:\/\/127\.0\.0\.1:\d+\/webtune\/tiny-gated-llama, accept the licence, then paste a token with read access/,
    );

    await byTestId('hf-token').fill('hf_mock_ok');
    await byTestId('hf-token-save').click();
    expect(await byTestId('hf-token-state').getAttribute('data-saved')).toBe('true');
    await byTestId('hub-model-load').click();
    await expect.poll(modelStatus, LOAD_TIMEOUT).toBe('loaded');
    expect(await byTestId('model-summary').getAttribute('data-model-id')).toBe('webtune/tiny-gated-llama');
  });

  // The out-of-memory plan of issue 8: the planner can judge a total against a GPU memory figure
  // (planMemory's deviceMemoryBytes: fits / "does not fit in X: Y over"), but WebGPU does not report
  // one and the Model tab neither asks for it nor shows the plan's verdict or warnings on a preset.
  it.todo('a preset whose planner estimate exceeds this GPU says so clearly, with what to change');
});

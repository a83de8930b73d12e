// The Model tab in Chromium against the mock Hub: the demo loads and ticks the Train checklist; a
// Hub model loads with progress into the OPFS cache, a reloaded page loads it again without
// downloading, and Clear empties the cache; a gated repo asks for the licence and a token; a preset
// over the GPU memory set says what to change; the Hub search finds, marks and fills in models.
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

  // WebGPU reports no GPU memory size: the person sets it in the GPU panel (kept in IndexedDB), and
  // each preset's planned default run is judged against it.
  it('a preset whose planner estimate exceeds this GPU says so clearly, with what to change', async () => {
    await openStudio();
    const smol = byTestId('preset-HuggingFaceTB/SmolLM2-135M-Instruct');
    await smol.waitFor(LOAD_TIMEOUT); // presets are planned once the GPU is ready
    const budget = byTestId('gpu-memory-budget');
    expect(await budget.getAttribute('data-source')).not.toBe('set');
    expect(await budget.innerText()).toMatch(/^Planning against [\d.]+ GB: /);

    // Plenty of memory: no verdict on the preset.
    await byTestId('gpu-memory-input').fill('64');
    await byTestId('gpu-memory-save').click();
    await expect.poll(() => budget.getAttribute('data-bytes')).toBe(String(64 * 1024 ** 3));
    expect(await smol.getAttribute('data-fit')).toBe('fits');
    expect(await smol.getByTestId('fit-verdict').count()).toBe(0);

    // 1 GB: SmolLM2 135M's default run (about 2 GiB) does not fit; the demo still does.
    await byTestId('gpu-memory-input').fill('1');
    await byTestId('gpu-memory-save').click();
    expect(await budget.getAttribute('data-source')).toBe('set');
    expect(await budget.innerText()).toMatch(/^Planning against 1 GB: set by you, saved in this browser/);
    const verdict = smol.getByTestId('fit-verdict');
    await verdict.waitFor();
    expect(await verdict.getAttribute('data-level')).toBe('over');
    expect(Number(await verdict.getAttribute('data-need-bytes'))).toBeGreaterThan(1024 ** 3);
    const text = await verdict.innerText();
    expect(text).toMatch(/Will not fit: the default run needs ≈ [\d.]+ GiB, [\d.]+ (GiB|MiB) more than the 1\.0 GiB of GPU memory set in the GPU section\./);
    expect(text).toMatch(/What to change \(any one will do\):/);
    expect(text).toMatch(/Batch size \d in the Train tab \(≈ [\d.]+ MiB; Accumulation \d+ keeps 16 rows per step\)|Max length \d+ tokens when preparing the data in the Data tab/);
    expect(await byTestId('model-demo').getByTestId('fit-verdict').count()).toBe(0);
    const llama8b = byTestId('preset-unsloth/Meta-Llama-3.1-8B-bnb-4bit').getByTestId('fit-verdict');
    expect(await llama8b.innerText()).toMatch(/A smaller model: even batch size 1 at 256 tokens needs ≈ [\d.]+ GiB with this one/);

    // Kept across a reload; Forget goes back to the detected or assumed size.
    await page.reload();
    await expect.poll(() => byTestId('gpu-info').getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    await expect.poll(() => budget.getAttribute('data-bytes')).toBe(String(1024 ** 3));
    await verdict.waitFor(LOAD_TIMEOUT);
    await byTestId('gpu-memory-forget').click();
    expect(await budget.getAttribute('data-source')).not.toBe('set');
    expect(errors).toEqual([]);
  });

  it('searches the Hub by name: results with downloads and a gated marker; a pick fills in the form and loads', async () => {
    await openStudio();
    await byTestId('hub-search-input').fill('TINY');
    const results = page.getByTestId('hub-search-result');
    await expect.poll(() => results.count()).toBeGreaterThanOrEqual(3);
    const ids = await results.evaluateAll((els) => els.map((e) => e.getAttribute('data-model-id')));
    expect(ids).toEqual(expect.arrayContaining(['webtune/demo-tiny-llama', 'webtune/tiny-gated-llama', 'webtune/tiny-random-llama']));
    expect(ids).not.toContain('webtune/tiny-private-llama'); // no token
    expect(await byTestId('hub-search-status').innerText()).toMatch(/^\d+ models\.$/);
    const gated = page.locator('[data-testid="hub-search-result"][data-model-id="webtune/tiny-gated-llama"]');
    expect(await gated.getByTestId('hub-result-gated').innerText()).toBe('gated');
    const random = page.locator('[data-testid="hub-search-result"][data-model-id="webtune/tiny-random-llama"]');
    expect(await random.getByTestId('hub-result-gated').count()).toBe(0);
    expect(await random.innerText()).toMatch(/text-generation · 0 downloads · 0 likes/);
    // One debounced request in the Hub's URL shape, not one per key.
    const log = (await (await fetch(`${hub}/__mock/requests`)).json()) as { url: string }[];
    const searches = log.filter((r) => r.url.startsWith('/api/models?')).map((r) => new URL(r.url, hub).searchParams);
    expect(searches.length).toBeGreaterThanOrEqual(1);
    expect(searches.at(-1)!.get('search')).toBe('TINY');
    expect(searches.at(-1)!.get('limit')).toBe('20');
    expect(searches.at(-1)!.getAll('expand')).toContain('gated');

    await random.click();
    expect(await byTestId('hub-model-id').inputValue()).toBe('webtune/tiny-random-llama');
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute('data-testid'))).toBe('hub-model-load');
    await page.keyboard.press('Enter');
    await expect.poll(modelStatus, LOAD_TIMEOUT).toBe('loaded');
    expect(await byTestId('model-summary').getAttribute('data-model-id')).toBe('webtune/tiny-random-llama');
    // Not a preset: planned from its config.json, against the GPU memory.
    await expect.poll(() => byTestId('model-fit').getAttribute('data-level'), LOAD_TIMEOUT).toBe('fits');
    expect(errors).toEqual([]);

    // A rate-limited search says how long to wait.
    await fetch(`${hub}/__mock/faults`, { method: 'POST', body: JSON.stringify({ rateLimit: { retryAfterSeconds: 7, pathPrefix: '/api/models' } }) });
    await byTestId('hub-search-input').fill('llama');
    await expect.poll(() => byTestId('hub-search-status').innerText()).toMatch(/The search failed: .+ is limiting requests: wait 7 s and try again \(a token in the Model tab \(Hugging Face token\) raises the limit\)\./);
    expect(await page.getByTestId('hub-search-result').count()).toBe(0);
  });
});

// The Train tab in Chromium against the built app: the demo model and the demo dataset (short
// rows, to stay fast on SwiftShader), a short run with a high learning rate, live metrics, and the
// summary.
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
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
  await page.context().close();
});

const byTestId = (id: string) => page.getByTestId(id);
const attr = (id: string, name: string) => byTestId(id).getAttribute(name);
const DEMO = 'public/demo/data/sort-words.jsonl';
const STEPS = 8;

describe('Train tab', () => {
  it('trains the demo model on the demo data: progress, live charts, a falling loss, a summary', async () => {
    await page.goto(studioUrl('#model'));
    await expect.poll(() => attr('gpu-info', 'data-status'), { timeout: 60_000 }).toBe('ready');
    await byTestId('model-load-demo').click();
    await expect.poll(() => attr('current-model', 'data-status'), { timeout: 60_000 }).toBe('loaded');

    await byTestId('tab-data').click();
    await byTestId('data-file-input').setInputFiles(DEMO);
    await expect.poll(() => attr('detected-format', 'data-kind'), { timeout: 30_000 }).toBe('sharegpt');
    await byTestId('opt-max-length').fill('128');
    await byTestId('prepare-button').click();
    await expect.poll(() => byTestId('prepare-done').count(), { timeout: 60_000 }).toBe(1);
    const rows = Number(await attr('dataset-stats', 'data-rows'));
    expect(rows).toBeGreaterThan(0);

    await byTestId('tab-train').click();
    await expect.poll(() => attr('check-model', 'data-done')).toBe('true');
    await expect.poll(() => attr('check-dataset', 'data-done')).toBe('true');
    // The seed recipe is the form's default.
    await byTestId('train-r').waitFor();
    expect(await byTestId('train-r').inputValue()).toBe('16');
    expect(await byTestId('train-lr').inputValue()).toBe('0.0003');
    expect(await byTestId('train-optim').inputValue()).toBe('adamw_8bit');
    expect(await byTestId('train-dropout').inputValue()).toBe('0');
    expect(await byTestId('train-checkpoint-every').inputValue()).toBe('50');
    expect(await byTestId('train-eval-every').inputValue()).toBe('0');
    expect(await byTestId('train-patience').inputValue()).toBe('0');

    await byTestId('train-length').selectOption('maxSteps');
    await byTestId('train-max-steps').fill(String(STEPS));
    await byTestId('train-lr').fill('3e-3');
    await byTestId('train-warmup').fill('1');
    await byTestId('train-batch').fill('1');
    await byTestId('train-accum').fill('1');

    const t0 = Date.now();
    await byTestId('train-start').click();
    await expect.poll(() => attr('train-progress', 'data-status'), { timeout: 10_000 }).toMatch(/running|done/);
    expect(await byTestId('train-start').isDisabled()).toBe(true);
    try {
      await expect.poll(() => byTestId('train-summary').count(), { timeout: 180_000 }).toBe(1);
    } catch (e) {
      const state = await page.evaluate(() => document.querySelector('[data-testid="train-progress"]')?.textContent + ' | ' + document.querySelector('[data-testid="train-error"]')?.textContent);
      console.log(`train did not finish: ${state}; errors: ${errors.join('; ')}`);
      throw e;
    }
    const seconds = (Date.now() - t0) / 1000;

    expect(await attr('train-progress', 'data-step')).toBe(String(STEPS));
    expect(await attr('train-progress', 'data-total')).toBe(String(STEPS));
    expect(await byTestId('train-progress').innerText()).toMatch(new RegExp(`Step ${STEPS} / ${STEPS}`));
    expect(await attr('chart-loss', 'data-points')).toBe(String(STEPS));
    expect(await byTestId('chart-loss').locator('.recharts-line-dot').count()).toBe(STEPS);
    for (const id of ['chart-lr', 'chart-grad-norm', 'chart-tokens']) expect(await attr(id, 'data-points')).toBe(String(STEPS));

    const summary = byTestId('train-summary');
    expect(await summary.getAttribute('data-stopped')).toBe('done');
    expect(await summary.getAttribute('data-steps')).toBe(String(STEPS));
    const first = Number(await summary.getAttribute('data-first-loss'));
    const final = Number(await summary.getAttribute('data-final-loss'));
    console.log(`train e2e: ${rows} rows of 128 tokens, ${STEPS} steps, loss ${first.toFixed(4)} -> ${final.toFixed(4)}, ${seconds.toFixed(1)} s (run ${await summary.getAttribute('data-seconds')} s)`);
    expect(Number.isFinite(first)).toBe(true);
    expect(final).toBeLessThan(first);
    expect(await summary.innerText()).toMatch(new RegExp(`Done: ${STEPS} steps`));

    // The smoothing toggle redraws the same points.
    await byTestId('train-smooth').check();
    expect(await attr('chart-loss', 'data-drawn')).toBe(String(STEPS));
    expect(await byTestId('train-start').isDisabled()).toBe(false);
    expect(errors).toEqual([]);
  });
});

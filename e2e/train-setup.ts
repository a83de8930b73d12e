// Steps the training e2e tests share: the demo model loaded, the demo data prepared and selected,
// and the Train tab's form filled with small settings (SwiftShader trains a demo step in seconds).
// They wait on attribute selectors rather than expect.poll, so that beforeAll hooks can use them.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Page } from 'playwright-core';
import { dropFile } from './browser.ts';

export const DEMO_DATA = 'public/demo/data/sort-words.jsonl';

/** Waits until the element with this test id has the attribute value. */
const until = (page: Page, id: string, name: string, value: string, timeout = 60_000) => page.locator(`[data-testid="${id}"][${name}="${value}"]`).waitFor({ timeout });

export async function loadDemoModel(page: Page): Promise<void> {
  await page.getByTestId('tab-model').click();
  await until(page, 'gpu-info', 'data-status', 'ready');
  await page.getByTestId('model-load-demo').click();
  await until(page, 'current-model', 'data-status', 'loaded');
}

/** Prepares the demo JSONL with short rows, picked with the file input or (`drop`) dropped on the
 *  drop zone; resolves to the train row count. */
export async function prepareDemoData(page: Page, opts: { maxLength: number; validationPercent: number; drop?: boolean }): Promise<{ rows: number }> {
  await page.getByTestId('tab-data').click();
  if (opts.drop) await dropFile(page, 'data-dropzone', { name: basename(DEMO_DATA), text: readFileSync(DEMO_DATA, 'utf8') });
  else await page.getByTestId('data-file-input').setInputFiles(DEMO_DATA);
  await until(page, 'detected-format', 'data-kind', 'sharegpt', 30_000);
  await page.getByTestId('opt-max-length').fill(String(opts.maxLength));
  await page.getByTestId('opt-validation').fill(String(opts.validationPercent));
  await page.getByTestId('prepare-button').click();
  await page.getByTestId('prepare-done').waitFor({ timeout: 60_000 });
  return { rows: Number(await page.getByTestId('dataset-stats').getAttribute('data-rows')) };
}

export interface SmallRun {
  steps: number;
  lr?: string;
  checkpointEvery?: number;
  evalEvery?: number;
}

/** Opens the Train tab and fills the form: batch 1 x 1, warmup 1, `steps` max steps. */
export async function fillSmallRun(page: Page, run: SmallRun): Promise<void> {
  const byTestId = (id: string) => page.getByTestId(id);
  await byTestId('tab-train').click();
  await until(page, 'check-model', 'data-done', 'true', 10_000);
  await until(page, 'check-dataset', 'data-done', 'true', 10_000);
  await byTestId('train-r').waitFor();
  await byTestId('train-length').selectOption('maxSteps');
  await byTestId('train-max-steps').fill(String(run.steps));
  await byTestId('train-lr').fill(run.lr ?? '3e-3');
  await byTestId('train-warmup').fill('1');
  await byTestId('train-batch').fill('1');
  await byTestId('train-accum').fill('1');
  await byTestId('train-checkpoint-every').fill(String(run.checkpointEvery ?? 0));
  await byTestId('train-eval-every').fill(String(run.evalEvery ?? 0));
}

/** Waits for the run's summary (a pause, a stop or the end); fails at once on a run error. */
export async function waitForSummary(page: Page, errors: string[], timeout = 240_000): Promise<void> {
  try {
    await page.locator('[data-testid="train-summary"], [data-testid="train-error"]').first().waitFor({ timeout });
  } catch (e) {
    const state = await page.evaluate(() => document.querySelector('[data-testid="train-progress"]')?.textContent);
    console.log(`the run did not end: ${state}; errors: ${errors.join('; ')}`);
    throw e;
  }
  const error = page.getByTestId('train-error');
  if ((await error.count()) > 0) throw new Error(`the run failed: ${await error.innerText()}`);
}

// Checkpoints and resume in the Train tab, in Chromium against the built app, on the demo model
// and data (rows of 64 tokens, 2% validation, batch 1: a step takes seconds on SwiftShader):
// Pause writes a checkpoint and Resume continues from the step after it, with eval loss points
// on the loss chart every evalEvery steps; a reload in the middle of a run offers the checkpoint,
// asks for its model, and the resumed run continues from the checkpoint's step with the chart
// keeping the points from before the reload; a finished run, after a reload, gives its adapter
// back without training, and Discard deletes the checkpoint and its charts.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, studioUrl, watchErrors } from './browser.ts';
import { fillSmallRun, loadDemoModel, prepareDemoData, waitForSummary } from './train-setup.ts';

let browser: Browser;
let context: BrowserContext;
let page: Page;
let errors: string[];

const byTestId = (id: string) => page.getByTestId(id);
const attr = (id: string, name: string) => byTestId(id).getAttribute(name);
const num = async (id: string, name: string) => Number(await attr(id, name));
const seconds = (t0: number) => ((Date.now() - t0) / 1000).toFixed(1);

beforeAll(async () => {
  browser = await launchChromium();
  context = await browser.newContext();
  page = await context.newPage();
  errors = watchErrors(page);
  await page.goto(studioUrl('#model'));
  await loadDemoModel(page);
  await prepareDemoData(page, { maxLength: 64, validationPercent: 2 });
}, 180_000);
afterAll(async () => {
  await context?.close();
  await browser?.close();
});

/** The steps of the loss chart are exactly 1..n, once each (a resume that repeated or skipped a
 *  step would break this). */
async function expectChartSteps(n: number): Promise<void> {
  expect(await num('chart-loss', 'data-points')).toBe(n);
  expect(await num('chart-loss', 'data-first-step')).toBe(1);
  expect(await num('chart-loss', 'data-last-step')).toBe(n);
}

/** A retried test finds the page as the failed attempt left it: end a run still going. */
async function endRunOfEarlierAttempt(): Promise<void> {
  await byTestId('tab-train').click();
  const stop = byTestId('train-stop');
  if ((await stop.count()) > 0 && !(await stop.isDisabled())) {
    await stop.click();
    await page.locator('[data-testid="train-progress"]:not([data-status="running"]):not([data-status="stopping"]):not([data-status="pausing"])').waitFor({ timeout: 240_000 });
  }
}

describe('Train tab: checkpoints and resume', () => {
  it('Pause writes a checkpoint, Resume continues from the next step, eval loss joins the loss chart every evalEvery steps', { timeout: 420_000 }, async () => {
    const STEPS = 4;
    await endRunOfEarlierAttempt();
    await fillSmallRun(page, { steps: STEPS, checkpointEvery: 2, evalEvery: 2 });
    const status = await byTestId('train-status').innerText();
    expect(status).toMatch(/[1-9]\d* validation rows/);

    const t0 = Date.now();
    await byTestId('train-start').click();
    await expect.poll(() => num('train-progress', 'data-step'), { timeout: 240_000 }).toBeGreaterThanOrEqual(1);
    await byTestId('train-pause').click();
    await waitForSummary(page, errors);
    const paused = await num('train-summary', 'data-steps');
    console.log(`paused after step ${paused} of ${STEPS} at ${seconds(t0)} s (${status})`);
    expect(await attr('train-summary', 'data-stopped')).toBe('paused');
    expect(paused).toBeGreaterThanOrEqual(1);
    expect(paused).toBeLessThan(STEPS);
    // The pause's checkpoint is the one offered, and the charts hold exactly the steps taken.
    expect(await num('train-summary', 'data-checkpoint-step')).toBe(paused);
    await byTestId('train-checkpoint').waitFor();
    expect(await num('train-checkpoint', 'data-step')).toBe(paused);
    // Paused on an interval step, the interval's checkpoint is the pause's (it is not written twice).
    expect(await attr('train-checkpoint', 'data-reason')).toBe(paused % 2 === 0 ? 'interval' : 'pause');
    expect(await num('train-progress', 'data-checkpoint-step')).toBe(paused);
    await expectChartSteps(paused);
    expect(await byTestId('train-log').innerText()).toContain(`Paused after step ${paused} of ${STEPS}`);

    const t1 = Date.now();
    await byTestId('train-resume').click();
    await expect.poll(() => attr('train-progress', 'data-status'), { timeout: 10_000 }).toMatch(/running|done/);
    await waitForSummary(page, errors);
    console.log(`resumed from step ${paused}: done ${seconds(t1)} s later (${seconds(t0)} s in all)`);
    expect(await attr('train-summary', 'data-stopped')).toBe('done');
    expect(await num('train-summary', 'data-steps')).toBe(STEPS);
    // The first step the resumed run reported is the one after the checkpoint.
    expect(await num('train-progress', 'data-first-step')).toBe(paused + 1);
    await expectChartSteps(STEPS);

    // Eval loss at steps 2 and 4, drawn as dots of their own series on the loss chart.
    expect(await num('chart-loss', 'data-overlay-points')).toBe(STEPS / 2);
    expect(await byTestId('chart-loss').locator('.chart-overlay-dot').count()).toBe(STEPS / 2);
    expect(await byTestId('chart-loss').innerText()).toMatch(/eval loss [\d.]+ at step 4/);
    expect(Number(await attr('train-summary', 'data-best-eval-loss'))).toBeGreaterThan(0);
    // GPU memory from the run's metrics.
    expect(await num('train-gpu-memory', 'data-bytes')).toBeGreaterThan(0);
    expect(await num('train-gpu-memory', 'data-peak')).toBeGreaterThanOrEqual(await num('train-gpu-memory', 'data-bytes'));
    expect(errors).toEqual([]);
  });

  it('a reload mid-run offers the checkpoint; after loading its model, Resume continues from its step and the chart keeps its points', { timeout: 480_000 }, async () => {
    const STEPS = 6;
    await endRunOfEarlierAttempt();
    await fillSmallRun(page, { steps: STEPS, checkpointEvery: 2, evalEvery: 0 });
    const t0 = Date.now();
    await byTestId('train-start').click();
    // Past the first checkpoint (step 2) and into the next step: the reload interrupts a run.
    await expect.poll(() => num('train-progress', 'data-checkpoint-step'), { timeout: 240_000 }).toBeGreaterThanOrEqual(2);
    await expect.poll(() => num('train-progress', 'data-step'), { timeout: 120_000 }).toBeGreaterThanOrEqual(3);
    const before = await num('train-progress', 'data-checkpoint-step');
    const reached = await num('train-progress', 'data-step');
    console.log(`reloading at step ${reached} (checkpoint of step ${before}), ${seconds(t0)} s into the run`);
    await page.reload();

    // The offer: step C of 6, the demo model needed (a reload starts a new trainer worker).
    const offer = byTestId('train-checkpoint');
    await offer.waitFor({ timeout: 60_000 });
    const c = await num('train-checkpoint', 'data-step');
    console.log(`offered: checkpoint of step ${c} (${await attr('train-checkpoint', 'data-reason')}), ${seconds(t0)} s`);
    expect(c).toBeGreaterThanOrEqual(before);
    expect(c % 2).toBe(0);
    expect(c).toBeLessThan(STEPS);
    expect(await num('train-checkpoint', 'data-total')).toBe(STEPS);
    expect(await attr('train-checkpoint', 'data-reason')).toBe('interval');
    expect(await offer.innerText()).toMatch(new RegExp(`step ${c} of ${STEPS}`));
    expect(await offer.innerText()).toContain('webtune/demo-tiny-llama');
    expect(await byTestId('train-checkpoint-dataset').innerText()).toMatch(/sort-words/);
    // The chart of the run so far came back from IndexedDB, up to the checkpoint.
    await expectChartSteps(c);
    expect(await num('train-progress', 'data-step')).toBe(c);
    // The form's settings were kept too.
    expect(await byTestId('train-max-steps').inputValue()).toBe(String(STEPS));
    expect(await byTestId('train-checkpoint-every').inputValue()).toBe('2');

    expect(await byTestId('train-resume').isDisabled()).toBe(true);
    expect(await byTestId('train-checkpoint-model').innerText()).toMatch(/load webtune\/demo-tiny-llama first/);
    await byTestId('train-checkpoint-load-model').click();
    await expect.poll(() => byTestId('train-resume').isDisabled(), { timeout: 60_000 }).toBe(false);
    expect(await byTestId('train-checkpoint-model').count()).toBe(0);

    const t1 = Date.now();
    await byTestId('train-resume').click();
    await expect.poll(() => num('train-progress', 'data-first-step'), { timeout: 240_000 }).toBeGreaterThan(0);
    expect(await num('train-progress', 'data-first-step')).toBe(c + 1);
    await waitForSummary(page, errors);
    console.log(`resumed from step ${c}: done ${seconds(t1)} s later (${seconds(t0)} s since Train)`);
    expect(await attr('train-summary', 'data-stopped')).toBe('done');
    expect(await num('train-summary', 'data-steps')).toBe(STEPS);
    await expectChartSteps(STEPS);
    // The loss fell over the whole run, across the reload.
    expect(Number(await attr('train-summary', 'data-final-loss'))).toBeLessThan(Number(await attr('train-summary', 'data-first-loss')));
    // A finished run in this page offers nothing more to resume.
    expect(await byTestId('train-checkpoint').count()).toBe(0);
    expect(errors).toEqual([]);
  });

  it('after a reload, a finished run is offered for restoring its adapter (chat can use it again), and Discard deletes it for good', { timeout: 300_000 }, async () => {
    await endRunOfEarlierAttempt();
    await page.reload();
    const offer = byTestId('train-checkpoint');
    await offer.waitFor({ timeout: 60_000 });
    expect(await attr('train-checkpoint', 'data-reason')).toBe('end');
    expect(await num('train-checkpoint', 'data-step')).toBe(6);
    expect(await offer.innerText()).toMatch(/A finished run is stored: step 6 of 6/);
    // The history saved with the last checkpoint: the whole run.
    await expectChartSteps(6);
    await byTestId('train-checkpoint-load-model').click();
    await expect.poll(() => byTestId('train-resume').isDisabled(), { timeout: 60_000 }).toBe(false);
    expect(await byTestId('train-resume').innerText()).toBe('Restore its adapter');
    const t0 = Date.now();
    await byTestId('train-resume').click();
    await waitForSummary(page, errors);
    console.log(`adapter restored in ${seconds(t0)} s`);
    expect(await attr('train-summary', 'data-stopped')).toBe('done');
    // No step was trained again.
    expect(await attr('train-progress', 'data-first-step')).toBe('');
    await expectChartSteps(6);
    expect(await byTestId('train-log').innerText()).toContain('restored from its checkpoint');
    await byTestId('tab-chat').click();
    expect(await byTestId('chat-mode-adapter').isDisabled()).toBe(false);
    expect(await byTestId('chat-mode-compare').isDisabled()).toBe(false);

    await page.reload();
    await byTestId('tab-train').click();
    await offer.waitFor({ timeout: 60_000 });
    await byTestId('train-discard').click();
    await byTestId('train-discard-confirm').click();
    await expect.poll(() => offer.count(), { timeout: 30_000 }).toBe(0);
    expect(await byTestId('chart-loss').count()).toBe(0);
    await page.reload();
    await page.locator('[data-testid="train-controls"][data-checkpoint-checked="true"]').waitFor({ timeout: 60_000 });
    expect(await offer.count()).toBe(0);
    expect(await byTestId('chart-loss').count()).toBe(0);
    expect(errors).toEqual([]);
  });
});

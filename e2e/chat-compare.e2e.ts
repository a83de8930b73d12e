// The Chat tab side by side, in Chromium: after a short training run on the demo model (4 steps
// at 10x the recipe's learning rate, so that the adapter changes the greedy answer), one prompt
// is answered in two columns, the base model's first and then the adapter's (one GPU: never both
// at once); with temperature 0 the two answers differ, and each equals what the single modes
// (base model only, adapter only) answer to the same prompt in a new chat.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, studioUrl, watchErrors } from './browser.ts';
import { fillSmallRun, loadDemoModel, prepareDemoData, waitForSummary } from './train-setup.ts';

let browser: Browser;
let context: BrowserContext;
let page: Page;
let errors: string[];

const PROMPT = 'Sort these words alphabetically: pear apple fig';
const MAX_TOKENS = 24;
const byTestId = (id: string) => page.getByTestId(id);
const LONG = { timeout: 120_000 };

beforeAll(async () => {
  browser = await launchChromium();
  context = await browser.newContext();
  page = await context.newPage();
  errors = watchErrors(page);
  await page.goto(studioUrl('#model'));
  await loadDemoModel(page);
  await prepareDemoData(page, { maxLength: 64, validationPercent: 0 });
}, 180_000);
afterAll(async () => {
  await context?.close();
  await browser?.close();
});

async function setField(id: string, value: string): Promise<void> {
  await byTestId(id).fill(value);
  await byTestId(id).blur();
}

/** Records, at every change of the page, which answer columns are streaming. */
async function watchLanes(): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { __lanes: string[] };
    w.__lanes = [];
    const obs = new MutationObserver(() => {
      const streaming = [...document.querySelectorAll('[data-testid="chat-message"][data-streaming="true"]')].map((e) => e.getAttribute('data-lane') ?? 'single');
      const entry = streaming.join('+') || 'none';
      if (w.__lanes[w.__lanes.length - 1] !== entry) w.__lanes.push(entry);
    });
    obs.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  });
}

const laneLog = () => page.evaluate(() => (window as unknown as { __lanes: string[] }).__lanes);

interface Answer {
  text: string;
  tokens: number;
  stop: string;
}

async function answerOf(selector: string): Promise<Answer> {
  const msg = page.locator(selector).last();
  const stats = msg.getByTestId('chat-stats');
  return {
    text: await msg.getByTestId('chat-content').innerText(),
    tokens: Number(await stats.getAttribute('data-tokens')),
    stop: (await stats.getAttribute('data-stop')) ?? '',
  };
}

/** A new chat in `mode`, one prompt, its answer (single modes). */
async function askAlone(mode: 'base' | 'adapter'): Promise<Answer> {
  await byTestId('chat-new').click();
  await byTestId('chat-empty').waitFor();
  await byTestId(`chat-mode-${mode}`).check();
  await byTestId('chat-input').fill(PROMPT);
  await byTestId('chat-send').click();
  await page.locator('[data-testid="chat-message"][data-role="assistant"] [data-testid="chat-stats"]').waitFor(LONG);
  const a = await answerOf('[data-testid="chat-message"][data-role="assistant"]');
  expect(await page.locator('[data-testid="chat-message"][data-role="assistant"] [data-testid="chat-stats"]').getAttribute('data-adapter')).toBe(String(mode === 'adapter'));
  return a;
}

describe('Chat tab: side by side', () => {
  it('after training, one prompt gets a base answer and then an adapter answer; greedy, they differ, and match the single modes', { timeout: 480_000 }, async () => {
    await fillSmallRun(page, { steps: 4 });
    const t0 = Date.now();
    await byTestId('train-start').click();
    await waitForSummary(page, errors);
    expect(await byTestId('train-summary').getAttribute('data-stopped')).toBe('done');
    console.log(`trained 4 steps in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    await byTestId('tab-chat').click();
    await byTestId('chat-input').waitFor();
    expect(await byTestId('chat-mode-compare').isDisabled()).toBe(false);
    await setField('chat-temperature', '0');
    await setField('chat-max-tokens', String(MAX_TOKENS));
    await byTestId('chat-mode-compare').check();
    expect(await byTestId('chat-status').innerText()).toMatch(/side by side/);

    await watchLanes();
    const t1 = Date.now();
    await byTestId('chat-input').fill(PROMPT);
    await byTestId('chat-send').click();
    const pair = byTestId('chat-pair');
    await pair.locator('[data-lane="adapter"] [data-testid="chat-stats"]').waitFor(LONG);
    await pair.locator('[data-lane="base"] [data-testid="chat-stats"]').waitFor(LONG);
    const base = await answerOf('[data-testid="chat-pair"] [data-lane="base"]');
    const tuned = await answerOf('[data-testid="chat-pair"] [data-lane="adapter"]');
    const lanes = await laneLog();
    console.log(
      `side by side in ${((Date.now() - t1) / 1000).toFixed(1)} s; streaming order ${lanes.join(' > ')}\n  base:    ${JSON.stringify(base.text)} (${base.tokens} tokens, ${base.stop})\n  adapter: ${JSON.stringify(tuned.text)} (${tuned.tokens} tokens, ${tuned.stop})`,
    );
    // Both columns answered, each once, the base model first; never both streaming together.
    expect(await pair.count()).toBe(1);
    expect(await page.locator('[data-testid="chat-message"][data-role="user"]').count()).toBe(1);
    expect(base.tokens).toBeGreaterThan(0);
    expect(tuned.tokens).toBeGreaterThan(0);
    expect(lanes.filter((l) => l !== 'none')).toEqual(['base', 'adapter']);
    expect(await pair.locator('[data-lane="base"] [data-testid="chat-stats"]').getAttribute('data-adapter')).toBe('false');
    expect(await pair.locator('[data-lane="adapter"] [data-testid="chat-stats"]').getAttribute('data-adapter')).toBe('true');
    // The adapter changed the greedy answer.
    expect(tuned.text).not.toBe(base.text);

    // Each column is what its model alone answers (greedy: repeatable).
    const alone = { base: await askAlone('base'), adapter: await askAlone('adapter') };
    expect(alone.base.text).toBe(base.text);
    expect(alone.adapter.text).toBe(tuned.text);
    expect(errors).toEqual([]);
  });
});

// The Chat tab in Chromium with the offline demo model: a reply streams in token by token and ends
// with a stop reason and its speed; greedy decoding repeats itself across a New chat; Stop ends a
// long reply early. No console errors throughout.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, studioUrl, watchErrors } from './browser.ts';

let browser: Browser;
let context: BrowserContext;
let page: Page;
let errors: string[];

const PROMPT = 'Sort these words alphabetically: pear apple fig';
const byTestId = (id: string) => page.getByTestId(id);
const LONG = { timeout: 60_000 };

beforeAll(async () => {
  browser = await launchChromium();
  context = await browser.newContext();
  page = await context.newPage();
  errors = watchErrors(page);
  await page.goto(studioUrl('#model'));
  // expect.poll works only inside a test: wait on attribute selectors here.
  await page.locator('[data-testid="gpu-info"][data-status="ready"]').waitFor(LONG);
  await byTestId('model-load-demo').click();
  await page.locator('[data-testid="current-model"][data-status="loaded"]').waitFor(LONG);
  await byTestId('tab-chat').click();
  await byTestId('chat-input').waitFor();
});
afterAll(async () => {
  await context?.close();
  await browser?.close();
});

/** The newest assistant message. */
const reply = () => page.locator('[data-testid="chat-message"][data-role="assistant"]').last();

async function setField(id: string, value: string): Promise<void> {
  await byTestId(id).fill(value);
  await byTestId(id).blur();
}

/** Records the reply's token count each time the page changes it, from before Send to the end. */
async function watchTokens(): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { __tokenLog: { tokens: number; streaming: boolean }[] };
    w.__tokenLog = [];
    const obs = new MutationObserver(() => {
      const msgs = document.querySelectorAll('[data-testid="chat-message"][data-role="assistant"]');
      const last = msgs[msgs.length - 1];
      if (!last) return;
      const tokens = Number(last.getAttribute('data-tokens') ?? '0');
      const streaming = last.getAttribute('data-streaming') === 'true';
      const prev = w.__tokenLog[w.__tokenLog.length - 1];
      if (!prev || prev.tokens !== tokens || prev.streaming !== streaming) w.__tokenLog.push({ tokens, streaming });
    });
    obs.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  });
}

const tokenLog = () => page.evaluate(() => (window as unknown as { __tokenLog: { tokens: number; streaming: boolean }[] }).__tokenLog);

interface Stats {
  stop: string;
  tokens: number;
  prefill: number;
  tps: number;
  text: string;
}

async function sendAndWait(prompt: string): Promise<Stats> {
  const before = await page.locator('[data-testid="chat-stats"]').count();
  await byTestId('chat-input').fill(prompt);
  await byTestId('chat-send').click();
  await expect.poll(() => page.locator('[data-testid="chat-stats"]').count(), LONG).toBe(before + 1);
  const stats = reply().getByTestId('chat-stats');
  return {
    stop: (await stats.getAttribute('data-stop')) ?? '',
    tokens: Number(await stats.getAttribute('data-tokens')),
    prefill: Number(await stats.getAttribute('data-prefill-s')),
    tps: Number(await stats.getAttribute('data-decode-tps')),
    text: await reply().getByTestId('chat-content').innerText(),
  };
}

describe('Chat tab', () => {
  it('streams a reply token by token, then shows how it stopped and how fast it was', async () => {
    expect(await byTestId('chat-status').innerText()).toMatch(/Chatting with Demo \(offline\) — base model/);
    // Without a trained adapter only the base model can answer.
    expect(await byTestId('chat-mode-base').isChecked()).toBe(true);
    expect(await byTestId('chat-mode-adapter').isDisabled()).toBe(true);
    expect(await byTestId('chat-mode-compare').isDisabled()).toBe(true);
    await setField('chat-max-tokens', '8');
    await setField('chat-repetition-penalty', '1');
    await watchTokens();
    const s = await sendAndWait(PROMPT);
    const log = await tokenLog();
    const streamed = log.filter((e) => e.streaming && e.tokens > 0).map((e) => e.tokens);
    console.log(`chat reply: ${s.tokens} tokens, stop ${s.stop}, prefill ${s.prefill.toFixed(3)} s, decode ${s.tps.toFixed(1)} tokens/s; counts seen while streaming: ${streamed.join(',')}`);
    expect(['eos', 'length']).toContain(s.stop);
    expect(s.tokens).toBeGreaterThan(0);
    expect(s.tokens).toBeLessThanOrEqual(8);
    expect(s.prefill).toBeGreaterThan(0);
    expect(Number(await reply().getAttribute('data-tokens'))).toBe(s.tokens);
    // The message grew while streaming: token counts above zero were shown before the end, rising.
    expect(streamed.length).toBeGreaterThan(0);
    for (let i = 1; i < streamed.length; i++) expect(streamed[i]).toBeGreaterThan(streamed[i - 1]);
    expect(await page.locator('[data-testid="chat-message"][data-role="user"]').last().innerText()).toContain(PROMPT);
    expect(await reply().getByTestId('chat-stats').innerText()).toMatch(/tokens\/s/);
    expect(errors).toEqual([]);
  });

  it('with temperature 0 the same prompt gives the same reply after New chat', async () => {
    await byTestId('chat-new').click();
    await byTestId('chat-empty').waitFor();
    await setField('chat-temperature', '0');
    await setField('chat-max-tokens', '6');
    const a = await sendAndWait(PROMPT);
    await byTestId('chat-new').click();
    await byTestId('chat-empty').waitFor();
    const b = await sendAndWait(PROMPT);
    console.log(`greedy replies: ${a.tokens} and ${b.tokens} tokens (${a.stop}, ${b.stop}), ${JSON.stringify(a.text.slice(0, 60))}`);
    expect(a.tokens).toBeGreaterThan(0);
    expect(b.text).toBe(a.text);
    expect(b.tokens).toBe(a.tokens);
    expect(b.stop).toBe(a.stop);
    expect(errors).toEqual([]);
  });

  it('Stop ends a long reply early', async () => {
    await byTestId('chat-new').click();
    await setField('chat-temperature', '1');
    await setField('chat-max-tokens', '200');
    await setField('chat-seed', '7');
    await byTestId('chat-input').fill(PROMPT);
    await byTestId('chat-send').click();
    await expect.poll(async () => Number((await reply().getAttribute('data-tokens')) ?? '0'), LONG).toBeGreaterThan(0);
    await byTestId('chat-stop').click();
    const stats = reply().getByTestId('chat-stats');
    await stats.waitFor(LONG);
    const stop = await stats.getAttribute('data-stop');
    const tokens = Number(await stats.getAttribute('data-tokens'));
    console.log(`stopped reply: ${tokens} tokens, stop ${stop}`);
    expect(stop).toBe('aborted');
    expect(tokens).toBeLessThan(200);
    expect(await byTestId('chat-stop').isDisabled()).toBe(true);
    expect(await byTestId('chat-send').isDisabled()).toBe(true); // the input is empty
    expect(errors).toEqual([]);
  });
});

// Tokenizers built from fetched files: a folder URL (the demo next to the app) or a Hub repo.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer } from '../src/data/tokenizer-load.ts';
import { startMockHub } from '../tools/mock-hub/server.ts';
import type { MockHub } from '../tools/mock-hub/server.ts';
import { demoTokenizer } from './fixtures/data/demo.ts';

let hub: MockHub;
beforeAll(async () => {
  hub = await startMockHub({ mounts: { models: { 'webtune/demo-tiny-llama': 'public/demo/model' } } });
});
afterAll(async () => {
  await hub?.close();
});

const TEXT = '<|im_start|>user\nSort: pear, apple<|im_end|>\n<|im_start|>assistant\napple, pear<|im_end|>\n';

describe('loadTokenizer', () => {
  it('from a folder URL: the same tokenizer as the files on disk', async () => {
    const requested: string[] = [];
    const fakeFetch = (async (input: string | URL | Request) => {
      const url = String(input);
      requested.push(url);
      const m = /^https:\/\/app\.example\/demo\/model\/(.+)$/.exec(url);
      try {
        return new Response(readFileSync(`public/demo/model/${m?.[1]}`));
      } catch {
        return new Response('not found', { status: 404 });
      }
    }) as typeof fetch;
    const t = await loadTokenizer({ kind: 'url', id: 'webtune/demo-tiny-llama', url: 'https://app.example/demo/model/' }, fakeFetch);
    const ref = await demoTokenizer();
    expect(t.digest).toBe(ref.digest);
    expect(t.tokenizer.encode(TEXT, { add_special_tokens: false })).toEqual(ref.tokenizer.encode(TEXT, { add_special_tokens: false }));
    expect(t.info).toEqual(ref.info);
    expect(requested.sort()).toEqual([
      'https://app.example/demo/model/chat_template.jinja',
      'https://app.example/demo/model/tokenizer.json',
      'https://app.example/demo/model/tokenizer_config.json',
    ]);
  });

  it('from a Hub repo through the Hub client (the mock Hub here)', async () => {
    const t = await loadTokenizer({ kind: 'hub', id: 'webtune/demo-tiny-llama', endpoint: hub.url });
    expect(t.digest).toBe((await demoTokenizer()).digest);
    expect(t.info.chatTemplate).toMatch(/<\|im_start\|>/);
  });

  it('says which tokenizer is missing', async () => {
    await expect(loadTokenizer({ kind: 'hub', id: 'webtune/no-such-model', endpoint: hub.url })).rejects.toMatchObject({
      name: 'DataError',
      reason: 'tokenizer',
      message: expect.stringMatching(/webtune\/no-such-model was not found/),
    });
    // tiny-random-llama has a tokenizer_config.json but no tokenizer.json
    await expect(loadTokenizer({ kind: 'hub', id: 'webtune/tiny-random-llama', endpoint: hub.url })).rejects.toThrow(/tokenizer\.json is not in webtune\/tiny-random-llama/);
  });
});

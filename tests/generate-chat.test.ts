// Chat on the demo model as the trainer worker runs it: the tokenizer that came with the loaded
// model, its chat template, stop ids from config / generation_config / the end-of-turn token,
// text streamed as deltas that add up to the answer.
import { beforeAll, describe, expect, it } from 'vitest';
import { chatReply, createChatSession, destroyChatSession } from '../src/engine/chat.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { loadModel, unloadModel } from '../src/engine/loader.ts';
import { encodePrompt } from '../src/data/tokenize.ts';
import { folderSource, loadDeps } from './forward-helpers.ts';
import { testGpu } from './gpu/device.ts';

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

describe('chat on the demo model', () => {
  it('renders the template, streams text deltas, stops at <|im_end|> or max tokens', async () => {
    const { source, fetch } = folderSource('public/demo/model', 'webtune/demo-tiny-llama');
    const loaded = await loadModel(loadDeps(gpu, kernels, fetch), source);
    const s = await createChatSession(kernels, loaded, { maxContext: 96 });
    expect(s.template.id).toBe('model');
    expect(s.stopIds).toContain(510); // <|im_end|>: eos_token_id and the end of turn
    const messages = [{ role: 'user' as const, content: 'sort: pear apple fig' }];
    const prompt = encodePrompt({ tokenizer: s.tokenizer.tokenizer, info: s.tokenizer.info, template: s.template }, messages);
    expect(s.tokenizer.tokenizer.decode(prompt.slice(-3))).toContain('assistant');
    const deltas: string[] = [];
    const ids: number[] = [];
    const reply = await chatReply(s, messages, null, { maxNewTokens: 12, temperature: 0 }, (t) => {
      deltas.push(t.text);
      ids.push(t.id);
    });
    expect(['eos', 'length']).toContain(reply.stop);
    expect(reply.tokens).toBe(ids.length);
    expect(ids.every((id) => !s.stopIds.includes(id))).toBe(true);
    expect(deltas.join('')).toBe(reply.text);
    expect(reply.promptTokens).toBe(prompt.length);
    console.log(`demo chat (${reply.stop}, ${reply.tokens} tokens): ${JSON.stringify(reply.text)}`);

    // An answer whose very first token ends the turn is an empty answer, not an error.
    const first = (await chatReply(s, messages, null, { maxNewTokens: 1, temperature: 0 })).text;
    const firstId = ids[0];
    const ends = { ...s, stopIds: [...s.stopIds, firstId] };
    const empty = await chatReply(ends, messages, null, { maxNewTokens: 12, temperature: 0 });
    expect(first.length).toBeGreaterThan(0);
    expect(empty).toMatchObject({ stop: 'eos', tokens: 0, text: '' });
    destroyChatSession(s);
    unloadModel(loaded);
  });
});

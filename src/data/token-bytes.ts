// Byte lengths of the tokens of a byte-level BPE tokenizer (GPT-2, Llama 3, Qwen): each ordinary
// token's text is one alphabet character per byte of the original UTF-8, and an added token is its
// literal text. With it, a character position maps to a token boundary by counting bytes, so
// tokenization needs one encode of the whole text instead of a second one of the pieces.
// Tokenizers that are not byte-level (SentencePiece) or whose normaliser rewrites text get null,
// and alignment falls back to re-tokenizing pieces.

import type { TokenizerLike } from './tokenizer-info.ts';

const cache = new WeakMap<object, Int32Array | null>();

/** GPT-2's bytes_to_unicode alphabet: the 256 characters that stand for bytes. */
function byteAlphabet(): Set<number> {
  const set = new Set<number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    set.add(printable ? b : 256 + extra++);
  }
  return set;
}

export function utf8Length(s: string, from = 0, to = s.length): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < to) {
      n += 4; // a surrogate pair: one 4-byte character
      i++;
    } else n += 3;
  }
  return n;
}

const PROBE = [
  'Hello, world!  Two  spaces,\ttab, and\nnew\n\nlines.',
  'café vs cafe\u0301, 日本語, emoji 🙂👍🏽, math ≈ π — “quotes”',
  '<|im_start|>assistant\n  code() { return 1; }<|im_end|>\n<|eot_id|>',
  '\u00a0non-breaking\u2028separator ÿ ® ¬',
];

/** Byte length per token id, or null when this tokenizer is not byte-level BPE. */
export function tokenByteLengths(tok: TokenizerLike): Int32Array | null {
  if (cache.has(tok)) return cache.get(tok)!;
  const table = build(tok);
  cache.set(tok, table);
  return table;
}

function build(tok: TokenizerLike): Int32Array | null {
  const raw = tok.get_vocab?.();
  if (!raw) return null;
  const entries: [string, number][] = raw instanceof Map ? [...raw.entries()] : Object.entries(raw);
  const special = new Set(tok.all_special_tokens ?? []);
  const alphabet = byteAlphabet();
  let max = 0;
  for (const [, id] of entries) max = Math.max(max, id);
  const lens = new Int32Array(max + 1).fill(-1);
  for (const [text, id] of entries) {
    let ordinary = !special.has(text);
    if (ordinary) {
      for (let i = 0; i < text.length; i++) {
        if (!alphabet.has(text.charCodeAt(i))) {
          ordinary = false; // not alphabet text: an added token, literal
          break;
        }
      }
    }
    lens[id] = ordinary ? text.length : utf8Length(text);
  }
  // The rule must hold on real text, or the tokenizer is not what it looks like.
  for (const s of PROBE) {
    let n = 0;
    for (const id of tok.encode(s, { add_special_tokens: false })) {
      const l = id < lens.length ? lens[id] : -1;
      if (l < 0) return null;
      n += l;
    }
    if (n !== utf8Length(s)) return null;
  }
  return lens;
}

// A faster encode() for byte-level BPE tokenizers of Llama 3's shape, with transformers.js still
// computing every id.
//
// transformers.js encodes a text as: split at added tokens -> normalizer -> pre-tokenizer -> BPE
// of each pre-token -> ids. For a tokenizer.json with no normalizer, a pre-tokenizer that is a
// regex Split followed by a ByteLevel byte mapping without a regex of its own, a BPE model that
// does not fuse unknown tokens, and added tokens that strip nothing around them, the ids of a text
// are therefore the concatenation of: the id of each added token, and for the text between them,
// the ids of each pre-token, where a pre-token's ids depend on its text alone. Most of encode()'s
// time goes into the per-word byte mapping (a TextEncoder call and string joins per word), and
// words repeat, so the ids of each pre-token are remembered.
//
// A pre-token seen for the first time is encoded by the tokenizer on its own; those ids are the
// pre-token's ids inside any text exactly when the Split leaves the pre-token whole, which is
// checked. Where it does not (never seen with Llama 3's pattern), the whole text goes to the
// tokenizer. Anything but encode(text, { add_special_tokens: false }) goes to the tokenizer as is.

import { SplitPreTokenizer } from '@huggingface/tokenizers';
import type { TokenizerLike } from './tokenizer-info.ts';

/**
 * Pre-tokens remembered per generation (two generations: at most twice this many, about 25 MB).
 * English text needs a few hundred thousand distinct words before its tail thins out, and a word
 * seen for the first time costs the tokenizer ~100 µs (its BPE), a remembered one well under 1 µs.
 */
export const MEMO_GENERATION_SIZE = 1 << 17;

/** A pre-token's ids: most are one token, kept as a number; null: not rememberable. */
export type Remembered = number | readonly number[] | null;

/** Learned entries kept for takeLearned() at most (beyond, sharing stops: nobody is taking them). */
const MAX_UNTAKEN = 1 << 16;

interface Plan {
  split: SplitPreTokenizer;
  added: Map<string, number>;
  /** Matches any added token, longest first (transformers.js splits at the longest match). */
  addedPattern: RegExp | null;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why this tokenizer's encode() is not a concatenation over pre-tokens, or the plan when it is. */
export function pretokenPlan(tokenizerJson: unknown, tokenizerConfig: Json = {}): { plan: Plan } | { reason: string } {
  if (!isObject(tokenizerJson)) return { reason: 'tokenizer.json is not an object' };
  if (tokenizerJson.normalizer != null) return { reason: 'it has a normalizer' };
  if (tokenizerConfig.remove_space || tokenizerConfig.do_lowercase_and_remove_accent) return { reason: 'its config rewrites text' };
  const pre = tokenizerJson.pre_tokenizer;
  const steps = isObject(pre) && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? (pre.pretokenizers as unknown[]) : [];
  const [split, bytes] = steps;
  if (steps.length !== 2 || !isObject(split) || !isObject(bytes)) return { reason: 'its pre-tokenizer is not Split + ByteLevel' };
  if (split.type !== 'Split' || split.invert !== false || split.behavior !== 'Isolated') return { reason: 'its Split is not an isolating regex split' };
  if (bytes.type !== 'ByteLevel' || bytes.use_regex !== false || bytes.add_prefix_space) return { reason: 'its ByteLevel splits or prefixes text' };
  const model = tokenizerJson.model;
  if (!isObject(model) || model.type !== 'BPE' || model.fuse_unk) return { reason: 'its model is not BPE without unk fusing' };
  const added = new Map<string, number>();
  for (const t of Array.isArray(tokenizerJson.added_tokens) ? (tokenizerJson.added_tokens as unknown[]) : []) {
    if (!isObject(t) || typeof t.content !== 'string' || typeof t.id !== 'number') return { reason: 'an added token is malformed' };
    if (t.lstrip || t.rstrip) return { reason: `added token ${t.content} strips the text around it` };
    if (t.content.length > 0) added.set(t.content, t.id);
  }
  const alternatives = [...added.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
  return {
    plan: {
      split: new SplitPreTokenizer(split as unknown as ConstructorParameters<typeof SplitPreTokenizer>[0]),
      added,
      addedPattern: alternatives.length > 0 ? new RegExp(alternatives.join('|'), 'g') : null,
    },
  };
}

/** `tok` with a remembering encode() when its tokenizer.json allows it, else `tok` itself. */
export function withPretokenMemo(tok: TokenizerLike, tokenizerJson: unknown, tokenizerConfig: Json = {}, generationSize?: number): TokenizerLike {
  const p = pretokenPlan(tokenizerJson, tokenizerConfig);
  return 'plan' in p ? new PretokenMemoTokenizer(tok, p.plan, generationSize) : tok;
}

export class PretokenMemoTokenizer implements TokenizerLike {
  /** Pre-tokens remembered now (for tests: stays under twice the generation size). */
  get remembered(): number {
    return this.recent.size + this.older.size;
  }

  private recent = new Map<string, Remembered>();
  private older = new Map<string, Remembered>();
  /** What this instance asked the tokenizer since takeLearned() was last called; null: not kept. */
  private learned: [string, Remembered][] | null = null;
  readonly get_vocab?: TokenizerLike['get_vocab'];

  constructor(
    readonly inner: TokenizerLike,
    private readonly plan: Plan,
    private readonly generationSize = MEMO_GENERATION_SIZE,
  ) {
    if (inner.get_vocab) this.get_vocab = () => inner.get_vocab!();
  }

  get bos_token() {
    return this.inner.bos_token;
  }
  get eos_token() {
    return this.inner.eos_token;
  }
  get pad_token() {
    return this.inner.pad_token;
  }
  get chat_template() {
    return this.inner.chat_template;
  }
  get all_special_tokens() {
    return this.inner.all_special_tokens;
  }

  decode(ids: number[], options?: Parameters<TokenizerLike['decode']>[1]): string {
    return this.inner.decode(ids, options);
  }

  encode(text: string, options?: { add_special_tokens?: boolean }): number[] {
    if (options?.add_special_tokens !== false) return this.inner.encode(text, options);
    const ids: number[] = [];
    const pattern = this.plan.addedPattern;
    let from = 0;
    if (pattern) {
      pattern.lastIndex = 0;
      for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
        if (!this.encodeSection(text.slice(from, m.index), ids)) return this.inner.encode(text, options);
        ids.push(this.plan.added.get(m[0])!);
        from = m.index + m[0].length;
      }
    }
    if (!this.encodeSection(from === 0 ? text : text.slice(from), ids)) return this.inner.encode(text, options);
    return ids;
  }

  /** Appends the ids of text free of added tokens; false when a pre-token cannot be remembered. */
  private encodeSection(section: string, out: number[]): boolean {
    if (section.length === 0) return true;
    for (const piece of this.plan.split.pre_tokenize_text(section)) {
      const ids = this.lookup(piece);
      if (typeof ids === 'number') out.push(ids);
      else if (ids === null) return false;
      else for (let i = 0; i < ids.length; i++) out.push(ids[i]);
    }
    return true;
  }

  private lookup(piece: string): Remembered {
    let ids = this.recent.get(piece);
    if (ids !== undefined) return ids;
    ids = this.older.get(piece);
    if (ids === undefined) {
      ids = this.learn(piece);
      if (this.learned) {
        if (this.learned.length < MAX_UNTAKEN) this.learned.push([piece, ids]);
        else this.learned = null;
      }
    }
    this.remember(piece, ids);
    return ids;
  }

  /**
   * The pre-tokens learned since the last call (the first call starts keeping them). Tokenize
   * workers pass them to each other, so that each new word costs one BPE run, not one per worker;
   * a pre-token's ids depend on nothing but the tokenizer files, which all workers share.
   */
  takeLearned(): [string, Remembered][] {
    const out = this.learned ?? [];
    this.learned = [];
    return out;
  }

  /** Remembers what another copy of the same tokenizer learned (see takeLearned). */
  teach(entries: readonly (readonly [string, Remembered])[]): void {
    for (const [piece, ids] of entries) if (!this.recent.has(piece)) this.remember(piece, ids);
  }

  /** The piece's ids, or null when the Split would cut the piece on its own (then they may differ). */
  private learn(piece: string): Remembered {
    const parts = this.plan.split.pre_tokenize_text(piece);
    if (parts.length !== 1 || parts[0] !== piece) return null;
    const ids = this.inner.encode(piece, { add_special_tokens: false });
    return ids.length === 1 ? ids[0] : ids;
  }

  /** Two generations approximate least-recently-used at the cost of a Map swap. */
  private remember(piece: string, ids: Remembered): void {
    if (this.recent.size >= this.generationSize) {
      this.older = this.recent;
      this.recent = new Map();
    }
    this.recent.set(piece, ids);
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

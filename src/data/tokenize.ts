// Example -> token ids + per-token loss mask.
//
// The whole rendered conversation is tokenized in one piece (the ids a model sees at inference).
// The character spans of the assistant turns (content + end-of-turn text) are found by rendering
// prefixes of the conversation; they are mapped to token boundaries by tokenizing the text cut
// at the span boundaries and checking that the pieces concatenate to the whole. When a boundary
// falls inside a token (rare: e.g. content that begins with a newline right after a newline), the
// boundary is located by tokenizing the prefix, and the token crossing it is trained (counted in
// `misalignedBoundaries`). Byte-level BPE tokenizers skip the second tokenization: boundaries are
// found by counting the bytes of each token (token-bytes.ts).

import { renderChat } from './templates.ts';
import { tokenByteLengths, utf8Length } from './token-bytes.ts';
import type { EffectiveTemplate } from './templates.ts';
import type { TokenizerInfo, TokenizerLike } from './tokenizer-info.ts';
import type { Example, Message, Outcome, TokenizedExample } from './types.ts';

export interface TokenizeOptions {
  maxSeqLength: number;
  /** Conversations: train only assistant content + end-of-turn. Otherwise every token is trained. */
  trainOnResponsesOnly: boolean;
  /** Longer examples are cut to maxSeqLength ('truncate') or rejected ('drop'). */
  overflow: 'truncate' | 'drop';
  /** Plain-text examples get the EOS appended (default true). */
  appendEosToText?: boolean;
}

export interface TokenizeContext {
  tokenizer: TokenizerLike;
  info: TokenizerInfo;
  template: EffectiveTemplate;
}

export interface TokenizeResult {
  example: TokenizedExample;
  /** Length before truncation. */
  fullLength: number;
  /** Span boundaries that fell inside a token. */
  misalignedBoundaries: number;
}

export interface CharSpan {
  start: number;
  end: number;
}

/**
 * Renders a conversation and finds each assistant turn's trained span: from the start of its
 * content to the end of its end-of-turn text. Fails (with a reason) when the template raises, or
 * when rendering is not prefix-stable (a later turn rewrites earlier text).
 */
export function renderWithSpans(template: EffectiveTemplate, messages: readonly Message[]): Outcome<{ text: string; spans: CharSpan[] }> {
  let text: string;
  try {
    text = renderChat(template, messages);
  } catch (e) {
    return { ok: false, reason: 'template error', detail: e instanceof Error ? e.message : String(e) };
  }
  const spans: CharSpan[] = [];
  const eot = template.endOfTurn;
  for (let i = 0; i < messages.length; i++) {
    if (messages[i].role !== 'assistant') continue;
    let through: string;
    let before = '';
    try {
      // The usual last turn: its prefix is the whole conversation, already rendered.
      through = i === messages.length - 1 ? text : renderChat(template, messages.slice(0, i + 1));
      if (i > 0) before = renderChat(template, messages.slice(0, i), { addGenerationPrompt: true });
    } catch (e) {
      return { ok: false, reason: 'template error', detail: e instanceof Error ? e.message : String(e) };
    }
    if (!text.startsWith(through)) {
      return { ok: false, reason: 'template not prefix-stable', detail: `rendering turn ${i} alone differs from the full conversation` };
    }
    let start = commonPrefixLength(before, through);
    if (spans.length > 0) start = Math.max(start, spans[spans.length - 1].end);
    const eotAt = through.lastIndexOf(eot);
    let end: number;
    if (eotAt >= start) {
      end = eotAt + eot.length;
      // A template whose generation prompt does not cover the assistant header leaves header text
      // before the content; skip it (the content ends where the end-of-turn text begins).
      const content = messages[i].content.trim();
      const body = through.slice(start, eotAt).trimEnd();
      if (body.endsWith(content)) {
        const contentStart = start + body.length - content.length;
        if (through.slice(start, contentStart).trim().length > 0) start = contentStart;
      }
    } else {
      end = through.length; // no end-of-turn text: train up to the end of the turn's rendering
    }
    spans.push({ start, end });
  }
  return { ok: true, value: { text, spans } };
}

export function tokenizeExample(example: Example, ctx: TokenizeContext, options: TokenizeOptions): Outcome<TokenizeResult> {
  let ids: number[];
  let mask: Uint8Array;
  let misaligned = 0;
  const { info } = ctx;

  if ('text' in example) {
    ids = ctx.tokenizer.encode(example.text, { add_special_tokens: false });
    if (info.addsBosOnEncode && info.bosId !== null && ids[0] !== info.bosId) ids.unshift(info.bosId);
    if ((options.appendEosToText ?? true) && info.eosId !== null) ids.push(info.eosId);
    mask = new Uint8Array(ids.length).fill(1);
  } else {
    const rendered = renderWithSpans(ctx.template, example.messages);
    if (!rendered.ok) return rendered;
    const { text, spans } = rendered.value;
    const aligned = alignSpans(ctx.tokenizer, text, spans);
    ids = aligned.ids;
    misaligned = aligned.misaligned;
    mask = new Uint8Array(ids.length);
    if (options.trainOnResponsesOnly) {
      for (const s of aligned.tokenSpans) mask.fill(1, s.start, s.end);
    } else {
      mask.fill(1);
    }
    const bos = info.bosId;
    if (!ctx.template.addsBos && info.addsBosOnEncode && bos !== null && ids[0] !== bos) {
      ids.unshift(bos);
      const shifted = new Uint8Array(mask.length + 1);
      shifted.set(mask, 1);
      mask = shifted;
    }
  }
  if (ids.length === 0) return { ok: false, reason: 'empty after tokenization' };
  mask[0] = 0; // nothing inside the document precedes its first token

  const fullLength = ids.length;
  let truncated = false;
  if (fullLength > options.maxSeqLength) {
    if (options.overflow === 'drop') {
      return { ok: false, reason: 'too long', detail: `${fullLength} tokens > max_seq_length ${options.maxSeqLength}` };
    }
    ids = ids.slice(0, options.maxSeqLength);
    mask = mask.slice(0, options.maxSeqLength);
    truncated = true;
  }
  let trained = 0;
  for (let i = 0; i < mask.length; i++) trained += mask[i];
  if (trained === 0) {
    return { ok: false, reason: 'no trained tokens', detail: truncated ? `all responses lie beyond max_seq_length ${options.maxSeqLength}` : 'no assistant tokens' };
  }
  return {
    ok: true,
    value: { example: { input_ids: Int32Array.from(ids), labels_mask: mask, truncated }, fullLength, misalignedBoundaries: misaligned },
  };
}

/** Prompt ids for generation: the conversation so far plus the assistant header. */
export function encodePrompt(ctx: TokenizeContext, messages: readonly Message[]): number[] {
  const text = renderChat(ctx.template, messages, { addGenerationPrompt: true });
  const ids = ctx.tokenizer.encode(text, { add_special_tokens: false });
  const bos = ctx.info.bosId;
  if (!ctx.template.addsBos && ctx.info.addsBosOnEncode && bos !== null && ids[0] !== bos) ids.unshift(bos);
  return ids;
}

interface Aligned {
  ids: number[];
  tokenSpans: CharSpan[];
  misaligned: number;
}

/** Tokenizes `text` whole and maps character spans to token index spans. */
export function alignSpans(tok: TokenizerLike, text: string, spans: readonly CharSpan[]): Aligned {
  const whole = tok.encode(text, { add_special_tokens: false });
  const lens = tokenByteLengths(tok);
  if (lens && whole.every((id) => lens[id] >= 0)) return alignByBytes(whole, lens, text, spans);
  const cuts = [...new Set(spans.flatMap((s) => [s.start, s.end]))].filter((c) => c > 0 && c < text.length).sort((a, b) => a - b);

  // Fast path: pieces between cuts tokenize to exactly the whole's tokens.
  const tokenAt = new Map<number, number>([
    [0, 0],
    [text.length, whole.length],
  ]);
  let pos = 0;
  let count = 0;
  let same = true;
  for (const cut of [...cuts, text.length]) {
    const piece = tok.encode(text.slice(pos, cut), { add_special_tokens: false });
    for (let j = 0; j < piece.length && same; j++) same = whole[count + j] === piece[j];
    count += piece.length;
    if (!same || count > whole.length) {
      same = false;
      break;
    }
    tokenAt.set(cut, count);
    pos = cut;
  }
  let misaligned = 0;
  const startAt = new Map<number, number>();
  const endAt = new Map<number, number>();
  if (same && count === whole.length) {
    for (const c of cuts) {
      startAt.set(c, tokenAt.get(c)!);
      endAt.set(c, tokenAt.get(c)!);
    }
  } else {
    // Slow path: locate each cut by tokenizing the text before it.
    for (const c of cuts) {
      const prefix = tok.encode(text.slice(0, c), { add_special_tokens: false });
      const k = commonPrefixLength(prefix, whole);
      if (k === prefix.length) {
        startAt.set(c, k);
        endAt.set(c, k);
      } else {
        misaligned++;
        startAt.set(c, k); // the token crossing the cut is trained
        endAt.set(c, Math.min(k + 1, whole.length));
      }
    }
  }
  const edge = (c: number, m: Map<number, number>) => (c <= 0 ? 0 : c >= text.length ? whole.length : m.get(c)!);
  const tokenSpans = spans.map((s) => ({ start: edge(s.start, startAt), end: edge(s.end, endAt) }));
  return { ids: whole, tokenSpans, misaligned };
}

/**
 * Byte-level tokenizers: a cut is at the token boundary whose byte offset equals the cut's; a cut
 * inside a token trains that token (as the re-tokenizing path does).
 */
function alignByBytes(whole: number[], lens: Int32Array, text: string, spans: readonly CharSpan[]): Aligned {
  const cuts = [...new Set(spans.flatMap((s) => [s.start, s.end]))].filter((c) => c > 0 && c < text.length).sort((a, b) => a - b);
  const startAt = new Map<number, number>();
  const endAt = new Map<number, number>();
  let misaligned = 0;
  let k = 0; // tokens wholly before `bytes`
  let tokenEnd = 0; // byte offset where token k-1 ends
  let bytes = 0;
  let prev = 0;
  for (const c of cuts) {
    bytes += utf8Length(text, prev, c);
    prev = c;
    while (k < whole.length && tokenEnd + lens[whole[k]] <= bytes) tokenEnd += lens[whole[k++]];
    startAt.set(c, k);
    if (tokenEnd === bytes) {
      endAt.set(c, k);
    } else {
      misaligned++;
      endAt.set(c, Math.min(k + 1, whole.length));
    }
  }
  const edge = (c: number, m: Map<number, number>) => (c <= 0 ? 0 : c >= text.length ? whole.length : m.get(c)!);
  const tokenSpans = spans.map((s) => ({ start: edge(s.start, startAt), end: edge(s.end, endAt) }));
  return { ids: whole, tokenSpans, misaligned };
}

function commonPrefixLength<T extends string | readonly number[]>(a: T, b: T): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

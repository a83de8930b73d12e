// Facts about a tokenizer that templating, tokenization and packing need, read once.

import type { TokenizerFacts } from './templates.ts';

/**
 * The part of @huggingface/transformers' PreTrainedTokenizer this pipeline uses (structural, so a
 * test double or another tokenizer library can stand in).
 */
export interface TokenizerLike {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
  readonly bos_token?: string | null;
  readonly eos_token?: string | null;
  readonly pad_token?: string | null;
  readonly chat_template?: unknown;
  readonly all_special_tokens?: readonly string[];
  /** Token text -> id (byte-level tokenizers get a faster alignment with it). */
  get_vocab?(): Map<string, number> | Record<string, number>;
}

export interface TokenizerInfo extends TokenizerFacts {
  bosId: number | null;
  eosId: number | null;
  /** Id written into padding positions (never attended, never trained). */
  padId: number;
  /** Whether encode(text, {add_special_tokens: true}) prepends the BOS (Llama: yes). */
  addsBosOnEncode: boolean;
}

/** Markers checked even when not listed as special (added tokens that are not flagged special). */
const MARKERS = ['<|im_start|>', '<|im_end|>', '<|eot_id|>', '<|end_of_text|>', '<|endoftext|>', '<end_of_turn>', '<|end|>'];

/** Llama 3.1 / Unsloth pad token; preferred over EOS as pad when the vocabulary has it. */
const PAD_CANDIDATES = ['<|finetune_right_pad_id|>', '<pad>', '<|pad|>'];

export function readTokenizerInfo(tok: TokenizerLike): TokenizerInfo {
  const singleId = (text: string | null | undefined): number | null => {
    if (!text) return null;
    const ids = tok.encode(text, { add_special_tokens: false });
    return ids.length === 1 ? ids[0] : null;
  };
  const special = new Set<string>();
  for (const t of tok.all_special_tokens ?? []) special.add(t);
  for (const t of MARKERS) if (!special.has(t) && singleId(t) !== null) special.add(t);

  const bosToken = tok.bos_token ?? null;
  const eosToken = tok.eos_token ?? null;
  const bosId = singleId(bosToken);
  const eosId = singleId(eosToken);
  const empty = tok.encode('', { add_special_tokens: true });
  const addsBosOnEncode = bosId !== null && empty.length > 0 && empty[0] === bosId;

  let padId: number | null = null;
  for (const t of PAD_CANDIDATES) {
    if (special.has(t)) padId = singleId(t);
    if (padId !== null) break;
  }
  padId ??= singleId(tok.pad_token) ?? eosId ?? 0;

  return {
    bosToken,
    eosToken,
    specialTokens: [...special],
    chatTemplate: chatTemplateString(tok.chat_template),
    bosId,
    eosId,
    padId,
    addsBosOnEncode,
  };
}

function chatTemplateString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null) {
    const d = (v as Record<string, unknown>).default;
    if (typeof d === 'string') return d;
  }
  return null;
}

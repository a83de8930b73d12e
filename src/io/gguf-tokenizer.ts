// Tokenizer metadata for GGUF (specs/formats.md §1.7) from a Hugging Face tokenizer.json +
// tokenizer_config.json (+ config.json for special ids they leave unset), as convert_hf_to_gguf
// writes it for byte-level BPE ("gpt2") tokenizers: Llama 3.x, Qwen2/2.5/3, SmolLM, the demo model.
// SentencePiece tokenizers (Llama 2, Mistral v0.1-v0.3: tokenizer.ggml.model "llama") are refused
// with a clear message for now.

import { kv } from './gguf.ts';
import type { GGUFKV } from './gguf.ts';

export class GgufTokenizerError extends Error {
  override name = 'GgufTokenizerError';
}

/** llama_token_type. */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** Pre-tokenizer regexes of tokenizer.json Split steps, and the name llama.cpp knows them by. */
const LLAMA3_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export interface GgufTokenizerInput {
  /** tokenizer.json, parsed. */
  tokenizerJson: unknown;
  /** tokenizer_config.json, parsed. */
  tokenizerConfig: Record<string, unknown>;
  /** config.json, parsed: bos/eos/pad_token_id for ids the tokenizer files leave unset. */
  modelConfig?: Record<string, unknown>;
  /** The model's vocabulary size (embedding rows): ids without a token become "[PAD{i}]". */
  vocabSize?: number;
  /** Jinja to store as tokenizer.chat_template (the training template's exportSource); default: tokenizer_config's. */
  chatTemplate?: string | null;
  /** Unsloth's map_eos_token: rename the EOS token's text (same id). */
  eosRename?: { from: string; to: string } | null;
  /** tokenizer.ggml.pre; default: detected from the pre-tokenizer, else `fallbackPre`. */
  pre?: string;
  /** Used when the pre-tokenizer is not recognised (by model family: "llama-bpe", "qwen2"). */
  fallbackPre?: string;
}

export interface GgufTokenizerInfo {
  kvs: GGUFKV[];
  tokens: string[];
  tokenTypes: number[];
  pre: string;
  bosId: number | null;
  eosId: number | null;
  padId: number | null;
  addBos: boolean;
  warnings: string[];
}

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Text of a special token entry of tokenizer_config.json (a string or {content}). */
function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v.content === 'string') return v.content;
  return null;
}

/** Split-regex of the pre-tokenizer (a Split step anywhere in a Sequence), if any. */
function splitRegexes(pre: unknown): string[] {
  if (!isObj(pre)) return [];
  if (pre.type === 'Sequence' && Array.isArray(pre.pretokenizers)) return pre.pretokenizers.flatMap(splitRegexes);
  if (pre.type === 'Split' && isObj(pre.pattern) && typeof pre.pattern.Regex === 'string') return [pre.pattern.Regex];
  return [];
}

function hasDigitsSplit(pre: unknown): boolean {
  if (!isObj(pre)) return false;
  if (pre.type === 'Sequence' && Array.isArray(pre.pretokenizers)) return pre.pretokenizers.some(hasDigitsSplit);
  return pre.type === 'Digits' && pre.individual_digits === true;
}

function hasByteLevel(node: unknown): boolean {
  if (!isObj(node)) return false;
  if (node.type === 'ByteLevel') return true;
  const list = node.pretokenizers ?? node.processors ?? node.decoders;
  return Array.isArray(list) && list.some(hasByteLevel);
}

/** tokenizer.ggml.pre for a tokenizer.json, by its pre-tokenizer; null when not recognised. */
export function detectPre(tokenizerJson: unknown): string | null {
  if (!isObj(tokenizerJson)) return null;
  const pre = tokenizerJson.pre_tokenizer;
  const regexes = splitRegexes(pre);
  if (regexes.includes(LLAMA3_REGEX)) return 'llama-bpe';
  if (regexes.includes(QWEN2_REGEX)) return 'qwen2';
  // SmolLM / SmolLM2: Digits(individual) + ByteLevel(use_regex), no Split.
  if (regexes.length === 0 && hasDigitsSplit(pre) && hasByteLevel(pre)) return 'smollm';
  return null;
}

/** Whether the TemplateProcessing post-processor puts a special token first / last of a single sequence. */
function templateSpecials(post: unknown): { first: string | null; last: string | null } | null {
  if (!isObj(post)) return null;
  if (post.type === 'Sequence' && Array.isArray(post.processors)) {
    for (const p of post.processors) {
      const r = templateSpecials(p);
      if (r) return r;
    }
    return null;
  }
  if (post.type !== 'TemplateProcessing' || !Array.isArray(post.single)) return null;
  const idOf = (item: unknown): string | null => (isObj(item) && isObj(item.SpecialToken) && typeof item.SpecialToken.id === 'string' ? item.SpecialToken.id : null);
  const single = post.single as unknown[];
  return { first: idOf(single[0]), last: single.length > 1 ? idOf(single[single.length - 1]) : null };
}

/** Added tokens the converter makes CONTROL even without special: true (gguf-py does_token_look_special). */
function looksSpecial(t: string): boolean {
  if (t === '<pad>' || t === '<mask>' || t === '<2mass>' || t === '[@BOS@]') return true;
  return (t.startsWith('<|') && t.endsWith('|>')) || (t.startsWith('<\uff5c') && t.endsWith('\uff5c>')) || (t.startsWith('<unused') && t.endsWith('>'));
}

/** Tokenizer KVs for GGUF. Throws GgufTokenizerError for tokenizers that cannot be written as "gpt2". */
export function ggufTokenizer(input: GgufTokenizerInput): GgufTokenizerInfo {
  const tj = input.tokenizerJson;
  if (!isObj(tj) || !isObj(tj.model)) throw new GgufTokenizerError('tokenizer.json has no "model" section');
  const model = tj.model;
  if (model.type !== 'BPE') {
    throw new GgufTokenizerError(`tokenizer.json model type ${JSON.stringify(model.type)} is not supported for GGUF export (only byte-level BPE)`);
  }
  if (!hasByteLevel(tj.pre_tokenizer) && !hasByteLevel(tj.decoder)) {
    throw new GgufTokenizerError(
      'this tokenizer is a SentencePiece-style BPE (no ByteLevel step); GGUF export supports byte-level BPE tokenizers (Llama 3, Qwen, SmolLM) for now',
    );
  }
  if (!isObj(model.vocab)) throw new GgufTokenizerError('tokenizer.json model.vocab is missing');
  const warnings: string[] = [];

  const byId = new Map<number, string>();
  for (const [text, id] of Object.entries(model.vocab)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new GgufTokenizerError(`tokenizer.json vocab entry ${JSON.stringify(text)} has id ${String(id)}`);
    byId.set(id, text);
  }
  const added = new Map<number, { content: string; special: boolean }>();
  for (const a of Array.isArray(tj.added_tokens) ? tj.added_tokens : []) {
    if (isObj(a) && typeof a.id === 'number' && typeof a.content === 'string') {
      added.set(a.id, { content: a.content, special: a.special === true });
      byId.set(a.id, a.content);
    }
  }
  // added_tokens_decoder of tokenizer_config.json can list tokens tokenizer.json lacks.
  const atd = input.tokenizerConfig.added_tokens_decoder;
  if (isObj(atd)) {
    for (const [k, v] of Object.entries(atd)) {
      const id = Number(k);
      if (Number.isInteger(id) && isObj(v) && typeof v.content === 'string' && !added.has(id)) {
        added.set(id, { content: v.content, special: v.special === true });
        byId.set(id, v.content);
      }
    }
  }
  let maxId = -1;
  for (const id of byId.keys()) maxId = Math.max(maxId, id);
  const n = Math.max(maxId + 1, input.vocabSize ?? 0);
  if (input.vocabSize !== undefined && maxId + 1 > input.vocabSize) {
    // llama.cpp sizes token_embd by the token count: the file would not load.
    throw new GgufTokenizerError(`the tokenizer has ${maxId + 1} tokens but the model only ${input.vocabSize} embedding rows`);
  }

  const tokens: string[] = new Array(n);
  const tokenTypes: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const t = byId.get(i);
    if (t === undefined) {
      tokens[i] = `[PAD${i}]`;
      tokenTypes[i] = TokenType.UNUSED;
      continue;
    }
    const a = added.get(i);
    tokens[i] = t;
    tokenTypes[i] = a === undefined ? TokenType.NORMAL : a.special || looksSpecial(t) ? TokenType.CONTROL : TokenType.USER_DEFINED;
  }

  // Special ids: tokenizer_config.json's token texts first, config.json's ids after.
  const idOfText = (text: string | null): number | null => {
    if (text === null) return null;
    for (let i = 0; i < n; i++) if (tokens[i] === text) return i;
    return null;
  };
  const cfg = input.modelConfig ?? {};
  const cfgId = (field: string): number | null => {
    const v = cfg[field];
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < n) return v;
    if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
    return null;
  };
  const tc = input.tokenizerConfig;
  const bosId = idOfText(tokenText(tc.bos_token)) ?? cfgId('bos_token_id');
  const eosId = idOfText(tokenText(tc.eos_token)) ?? cfgId('eos_token_id');
  const unkId = idOfText(tokenText(tc.unk_token));
  const padId = idOfText(tokenText(tc.pad_token)) ?? cfgId('pad_token_id');

  const rename = input.eosRename;
  if (rename) {
    const id = idOfText(rename.from);
    if (id === null) throw new GgufTokenizerError(`EOS rename: no token ${JSON.stringify(rename.from)} in the vocabulary`);
    const clash = idOfText(rename.to);
    if (clash !== null && clash !== id) {
      // Unsloth swaps the two texts when the target already exists.
      tokens[clash] = rename.from;
    }
    tokens[id] = rename.to;
    tokenTypes[id] = TokenType.CONTROL;
  }

  // add_bos / add_eos: tokenizer_config.json, else the TemplateProcessing post-processor.
  const specials = templateSpecials(tj.post_processor);
  const bosText = bosId !== null ? byId.get(bosId) ?? null : null;
  const eosText = eosId !== null ? byId.get(eosId) ?? null : null;
  const addBos = typeof tc.add_bos_token === 'boolean' ? tc.add_bos_token : specials !== null && specials.first !== null && specials.first === bosText;
  const addEos = typeof tc.add_eos_token === 'boolean' ? tc.add_eos_token : specials !== null && specials.last !== null && specials.last === eosText;

  const merges = readMerges(model.merges);
  if (merges.length === 0) throw new GgufTokenizerError('tokenizer.json has no merges (llama.cpp requires them for a BPE vocabulary)');

  let pre = input.pre ?? detectPre(tj);
  if (pre === null) {
    pre = input.fallbackPre ?? 'default';
    warnings.push(`pre-tokenizer not recognised; writing tokenizer.ggml.pre = ${JSON.stringify(pre)}`);
  }

  const kvs: GGUFKV[] = [
    kv.str('tokenizer.ggml.model', 'gpt2'),
    kv.str('tokenizer.ggml.pre', pre),
    kv.strs('tokenizer.ggml.tokens', tokens),
    kv.i32s('tokenizer.ggml.token_type', tokenTypes),
    kv.strs('tokenizer.ggml.merges', merges),
  ];
  if (bosId !== null) kvs.push(kv.u32('tokenizer.ggml.bos_token_id', bosId));
  if (eosId !== null) kvs.push(kv.u32('tokenizer.ggml.eos_token_id', eosId));
  else warnings.push('no EOS token: llama.cpp will not know where generation ends');
  if (unkId !== null) kvs.push(kv.u32('tokenizer.ggml.unknown_token_id', unkId));
  if (padId !== null) kvs.push(kv.u32('tokenizer.ggml.padding_token_id', padId));
  kvs.push(kv.bool('tokenizer.ggml.add_bos_token', addBos));
  kvs.push(kv.bool('tokenizer.ggml.add_eos_token', addEos));
  const template = input.chatTemplate !== undefined ? input.chatTemplate : typeof tc.chat_template === 'string' ? tc.chat_template : null;
  if (template) kvs.push(kv.str('tokenizer.chat_template', template));

  return { kvs, tokens, tokenTypes, pre, bosId, eosId, padId, addBos, warnings };
}

/** tokenizer.json merges as "a b" strings (pairs are joined; a space inside a part becomes U+0120). */
function readMerges(m: unknown): string[] {
  if (!Array.isArray(m)) return [];
  return m.map((e, i) => {
    if (typeof e === 'string') return e;
    if (Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'string') {
      return `${e[0].replace(/ /g, '\u0120')} ${e[1].replace(/ /g, '\u0120')}`;
    }
    throw new GgufTokenizerError(`tokenizer.json merges[${i}] is neither "a b" nor ["a", "b"]`);
  });
}

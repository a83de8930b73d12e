// Chat with a loaded model: the tokenizer that came with it (tokenizer.json + tokenizer_config.json,
// read by @huggingface/transformers through src/data/tokenizer-load.ts), its chat template resolved
// as training resolves it (src/data/templates.ts), the prompt encoded as training encodes a
// conversation (encodePrompt), and the Generator. Stops at the config's EOS ids, the
// generation_config's, and the template's end-of-turn token; streams text deltas.
import type { TemplateId } from '../data/templates.ts';
import { resolveTemplate, type EffectiveTemplate } from '../data/templates.ts';
import { encodePrompt } from '../data/tokenize.ts';
import { tokenizerFromFiles, type LoadedTokenizer } from '../data/tokenizer-load.ts';
import type { Message } from '../data/types.ts';
import { Generator, type GenerateOptions, type StopReason } from './generate.ts';
import type { Kernels } from './kernels.ts';
import type { LoadedModel } from './loader.ts';
import type { LoraSet } from './lora-weights.ts';
import { destroyModelWeights, modelFromLoaded, type ModelWeights } from './model.ts';

export interface ChatOptions {
  /** Tokens of prompt + answer the KV cache holds (default min(2048, max_position_embeddings)). */
  maxContext?: number;
  /** Chat template (default: the model's own when its tokenizer has one, else ChatML). */
  template?: TemplateId;
}

export interface ChatSession {
  model: ModelWeights;
  generator: Generator;
  tokenizer: LoadedTokenizer;
  template: EffectiveTemplate;
  /** EOS ids and the end-of-turn token's id. */
  stopIds: number[];
}

/** A token as streamed to the UI: its id and the text it adds (empty while a multi-byte character
 * is incomplete). The deltas add up to the reply's text, except for an incomplete character at the
 * very end: the reply's `text` is the final word. */
export interface ChatToken {
  id: number;
  text: string;
}

export interface ChatReply {
  text: string;
  tokens: number;
  stop: StopReason;
  promptTokens: number;
  prefillSeconds: number;
  decodeTokensPerSecond: number;
}

export type ChatGenerateOptions = Omit<GenerateOptions, 'stopIds' | 'onToken'>;

export async function createChatSession(kernels: Kernels, loaded: LoadedModel, opts: ChatOptions = {}): Promise<ChatSession> {
  const json = loaded.tokenizerFiles.get('tokenizer.json');
  const config = loaded.tokenizerFiles.get('tokenizer_config.json');
  if (!json) throw new Error(`${loaded.summary.id} has no tokenizer.json: chat needs its tokenizer.`);
  const tokenizer = await tokenizerFromFiles(loaded.summary.id, {
    tokenizerJson: JSON.parse(json),
    tokenizerConfig: config ? (JSON.parse(config) as Record<string, unknown>) : {},
  });
  const template = resolveTemplate(opts.template ?? (tokenizer.info.chatTemplate ? 'model' : 'chatml'), tokenizer.info);
  const stopIds = new Set<number>(loaded.arch.eosTokenIds);
  const gen = loaded.tokenizerFiles.get('generation_config.json');
  if (gen) {
    const eos = (JSON.parse(gen) as { eos_token_id?: number | number[] }).eos_token_id;
    for (const id of Array.isArray(eos) ? eos : eos === undefined ? [] : [eos]) stopIds.add(id);
  }
  for (const text of template.stopStrings) {
    const ids = tokenizer.tokenizer.encode(text, { add_special_tokens: false });
    if (ids.length === 1) stopIds.add(ids[0]);
  }
  const model = await modelFromLoaded(kernels, loaded);
  const maxContext = opts.maxContext ?? Math.min(2048, loaded.arch.maxPositions);
  return { model, generator: new Generator(kernels, model, { maxContext }), tokenizer, template, stopIds: [...stopIds] };
}

/** Frees the session's GPU memory (KV cache, arena, converted weights). */
export function destroyChatSession(s: ChatSession): void {
  s.generator.destroy();
  destroyModelWeights(s.model);
}

/**
 * Answers the conversation `messages` (its last turn a user's): the prompt is rendered with the
 * template's generation prompt, then tokens are generated and streamed as text deltas.
 */
export async function chatReply(
  s: ChatSession,
  messages: readonly Message[],
  lora: LoraSet | null,
  options: ChatGenerateOptions,
  onToken?: (t: ChatToken) => void | Promise<void>,
): Promise<ChatReply> {
  const { tokenizer } = s.tokenizer;
  const prompt = encodePrompt({ tokenizer, info: s.tokenizer.info, template: s.template }, messages);
  const ids: number[] = [];
  let shown = '';
  // An answer that ends at once (its first token ends the turn) has no ids: the tokenizer refuses those.
  const decode = (): string => (ids.length === 0 ? '' : tokenizer.decode(ids, { skip_special_tokens: true }));
  const result = await s.generator.generate(prompt, lora, {
    ...options,
    stopIds: s.stopIds,
    onToken: async (id) => {
      ids.push(id);
      const text = decode();
      // Hold back an incomplete UTF-8 sequence (decoded as U+FFFD) until its last byte arrives.
      const ready = text.endsWith('\uFFFD') ? shown : text;
      const delta = ready.startsWith(shown) ? ready.slice(shown.length) : '';
      if (ready.startsWith(shown)) shown = ready;
      await onToken?.({ id, text: delta });
    },
  });
  return {
    text: decode(),
    tokens: result.tokens.length,
    stop: result.stop,
    promptTokens: result.promptTokens,
    prefillSeconds: result.prefillSeconds,
    decodeTokensPerSecond: result.decodeTokensPerSecond,
  };
}

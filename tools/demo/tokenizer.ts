// The demo tokenizer in the Hugging Face tokenizers JSON format, shaped like Llama 3's:
// byte-level BPE, Split (Llama 3 pattern) + ByteLevel pre-tokenizer, ByteLevel decoder, and a
// post-processor that prepends the BOS token on encode (as Llama 3's does with <|begin_of_text|>).
//
// Special tokens (ids after the learned vocabulary, as Llama 3 puts its own after 128000):
//   <|endoftext|>  BOS: prepended by the post-processor on encode(); also a document separator.
//   <|im_start|>   ChatML turn start.
//   <|im_end|>     ChatML turn end, and the EOS (what Unsloth's chatml map_eos_token makes it).
//   <|pad|>        padding only.
// The chat template is Unsloth's ChatML (specs/formats.md §7): no BOS in the rendered text.

import type { BpeModel } from './bpe.ts';
import { LLAMA3_SPLIT_PATTERN } from './bpe.ts';

export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|pad|>'] as const;
export const BOS_TOKEN = '<|endoftext|>';
export const EOS_TOKEN = '<|im_end|>';
export const PAD_TOKEN = '<|pad|>';

/** Unsloth's chatml_template, verbatim. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'user' %}{{'<|im_start|>user\n' + message['content'] + '<|im_end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|im_start|>assistant\n' + message['content'] + '<|im_end|>\n' }}{% else %}{{ '<|im_start|>system\n' + message['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

export const MODEL_MAX_LENGTH = 512;

export interface DemoTokenizer {
  tokenizerJson: unknown;
  tokenizerConfigJson: unknown;
  /** Token id of each special token. */
  ids: Record<(typeof SPECIAL_TOKENS)[number], number>;
  vocabSize: number;
}

export function buildTokenizer(bpe: BpeModel): DemoTokenizer {
  const base = bpe.vocab.length;
  const ids = Object.fromEntries(SPECIAL_TOKENS.map((t, i) => [t, base + i])) as DemoTokenizer['ids'];
  const added = SPECIAL_TOKENS.map((content, i) => ({
    id: base + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const vocab: Record<string, number> = {};
  bpe.vocab.forEach((t, i) => (vocab[t] = i));
  const bos = ids[BOS_TOKEN];
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_SPLIT_PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: BOS_TOKEN, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: BOS_TOKEN, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: BOS_TOKEN, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [BOS_TOKEN]: { id: BOS_TOKEN, ids: [bos], tokens: [BOS_TOKEN] } },
        },
      ],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: bpe.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const addedTokensDecoder: Record<string, unknown> = {};
  for (const t of added) {
    addedTokensDecoder[String(t.id)] = {
      content: t.content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  }
  const tokenizerConfigJson = {
    added_tokens_decoder: addedTokensDecoder,
    bos_token: BOS_TOKEN,
    eos_token: EOS_TOKEN,
    pad_token: PAD_TOKEN,
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_input_names: ['input_ids', 'attention_mask'],
    model_max_length: MODEL_MAX_LENGTH,
    padding_side: 'right',
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { tokenizerJson, tokenizerConfigJson, ids, vocabSize: base + SPECIAL_TOKENS.length };
}

/** The ChatML text of a conversation (the template's output), for training the BPE on. */
export function renderChatml(messages: readonly { role: string; content: string }[]): string {
  return messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('');
}

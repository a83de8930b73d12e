// Chat templates: the one implementation used to build training text, chat prompts and the
// chat_template written into exported models. Each template is a Jinja string rendered with
// @huggingface/jinja, plus the facts the trainer needs (end-of-turn text, stop strings, BOS).
//
// ChatML follows Unsloth's get_chat_template(..., "chatml", map_eos_token=True): a tokenizer without
// an <|im_end|> token does not get a new token; instead its EOS token stands in for <|im_end|>
// (Unsloth renames the EOS token's text to "<|im_end|>"; the id and embedding are reused) and
// <|im_start|> stays plain text. Here the tokenizer is left as it is and the EOS text is rendered
// where ChatML says <|im_end|>, which yields the same token ids. Exports apply the rename
// (`eosRename`) and store the plain ChatML template (`exportSource`), as Unsloth's files do.

import { Template } from '@huggingface/jinja';
import type { Message } from './types.ts';

export type TemplateId = 'chatml' | 'llama3' | 'mistral' | 'alpaca' | 'model' | 'custom';

/** What the template layer needs to know about a tokenizer (plain data). */
export interface TokenizerFacts {
  bosToken: string | null;
  eosToken: string | null;
  /** Texts that the tokenizer encodes as one special/added token (e.g. "<|eot_id|>"). */
  specialTokens: readonly string[];
  /** tokenizer_config.json chat_template, if any. */
  chatTemplate: string | null;
}

export interface BuiltinTemplate {
  id: Exclude<TemplateId, 'model' | 'custom'>;
  label: string;
  source: string;
  /** Text that closes an assistant turn; null = the tokenizer's EOS text. */
  endOfTurn: string | null;
}

/** Unsloth unsloth/chat_templates.py `chatml_template` (no BOS). */
export const CHATML_SOURCE =
  "{% for message in messages %}{% if message['role'] == 'user' %}{{'<|im_start|>user\n' + message['content'] + '<|im_end|>\n'}}" +
  "{% elif message['role'] == 'assistant' %}{{'<|im_start|>assistant\n' + message['content'] + '<|im_end|>\n' }}" +
  "{% else %}{{ '<|im_start|>system\n' + message['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/** Meta Llama 3 Instruct tokenizer_config.json `chat_template` (BOS first, content trimmed). */
export const LLAMA3_SOURCE =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}" +
  "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/** Mistral [INST] format (v0.2 style); a leading system prompt joins the first user turn. */
export const MISTRAL_SOURCE =
  '{{ bos_token }}{% for message in messages %}' +
  "{% if message['role'] == 'system' %}{% if not loop.first %}{{ raise_exception('Mistral: a system message is only allowed first') }}{% endif %}" +
  "{% elif message['role'] == 'user' %}{% if loop.index0 == 1 and messages[0]['role'] == 'system' %}" +
  "{{ '[INST] ' + messages[0]['content'] + '\n\n' + message['content'] + ' [/INST]' }}" +
  "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}" +
  "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}";

/** Alpaca prompt as a chat template (no BOS: the tokenizer adds it). */
export const ALPACA_SOURCE =
  "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\n\n' }}{% set loop_messages = messages[1:] %}" +
  "{% else %}{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' }}" +
  '{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}' +
  "{% if message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}" +
  "{% elif message['role'] == 'assistant' %}{{ '### Response:\n' + message['content'] + eos_token + '\n\n' }}" +
  "{% else %}{{ raise_exception('Alpaca: a system message is only allowed first') }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}";

export const BUILTIN_TEMPLATES: Readonly<Record<BuiltinTemplate['id'], BuiltinTemplate>> = {
  chatml: { id: 'chatml', label: 'ChatML (Unsloth)', source: CHATML_SOURCE, endOfTurn: '<|im_end|>' },
  llama3: { id: 'llama3', label: 'Llama 3', source: LLAMA3_SOURCE, endOfTurn: '<|eot_id|>' },
  mistral: { id: 'mistral', label: 'Mistral [INST]', source: MISTRAL_SOURCE, endOfTurn: null },
  alpaca: { id: 'alpaca', label: 'Alpaca prompt', source: ALPACA_SOURCE, endOfTurn: null },
};

const IM_END = '<|im_end|>';

/** End-of-turn markers recognised in a model's own template, in order of preference. */
const KNOWN_END_OF_TURN = ['<|eot_id|>', '<|im_end|>', '<end_of_turn>', '<|end|>', '<|eot|>', '<|endoftext|>'];

/** A template resolved against one tokenizer: what training, chat and export all use. */
export interface EffectiveTemplate {
  id: TemplateId;
  /** Jinja rendered for training text and chat prompts, against the tokenizer as it is. */
  source: string;
  /**
   * Jinja to store in exported tokenizer_config.json / GGUF `tokenizer.chat_template`. Equal to
   * `source` unless `eosRename` is set, in which case the exported vocabulary renames the EOS token.
   */
  exportSource: string;
  /** Text closing an assistant turn in `source` (trained in responses-only mode). */
  endOfTurn: string;
  /** Generation stops at any of these (token texts of the tokenizer as it is). */
  stopStrings: string[];
  /** True when `source` itself renders the BOS token (then the tokenizer must not add another). */
  addsBos: boolean;
  bosToken: string | null;
  eosToken: string | null;
  /** Unsloth's map_eos_token: exports rename the EOS token text `from` to `to` (same id). */
  eosRename: { from: string; to: string } | null;
  warnings: string[];
}

export interface ResolveOptions {
  /** ChatML only: stand the EOS token in for a missing <|im_end|> (Unsloth's default: true). */
  mapEosToken?: boolean;
  /** Jinja for id 'custom'. */
  source?: string;
  /** id 'custom': end-of-turn text (default: detected as for 'model'). */
  endOfTurn?: string;
}

export class TemplateError extends Error {}

export function resolveTemplate(id: TemplateId, facts: TokenizerFacts, options: ResolveOptions = {}): EffectiveTemplate {
  const warnings: string[] = [];
  const special = new Set(facts.specialTokens);
  let source: string;
  let exportSource: string;
  let endOfTurn: string | null;
  let eosRename: EffectiveTemplate['eosRename'] = null;

  if (id === 'model' || id === 'custom') {
    const src = id === 'model' ? facts.chatTemplate : options.source;
    if (!src) {
      throw new TemplateError(
        id === 'model' ? "This model's tokenizer_config.json has no chat_template." : 'No Jinja source given for the custom template.',
      );
    }
    source = exportSource = src;
    endOfTurn = options.endOfTurn ?? KNOWN_END_OF_TURN.find((t) => src.includes(t) && special.has(t)) ?? null;
  } else {
    const def = BUILTIN_TEMPLATES[id];
    source = exportSource = def.source;
    endOfTurn = def.endOfTurn;
    if (id === 'chatml' && !special.has(IM_END)) {
      if ((options.mapEosToken ?? true) && facts.eosToken) {
        source = def.source.split(IM_END).join(escapeForJinjaString(facts.eosToken));
        endOfTurn = facts.eosToken;
        eosRename = { from: facts.eosToken, to: IM_END };
      } else {
        warnings.push(`"${IM_END}" is not a token of this tokenizer: it will be trained as plain text pieces.`);
      }
    }
  }

  if (endOfTurn === null) {
    if (!facts.eosToken) throw new TemplateError('The tokenizer has no EOS token to end assistant turns with.');
    endOfTurn = facts.eosToken;
  }
  if (!special.has(endOfTurn)) {
    warnings.push(`End of turn "${endOfTurn}" is not a special token of this tokenizer: it is tokenized as text.`);
  }
  const stopStrings = unique([endOfTurn, ...(facts.eosToken ? [facts.eosToken] : [])]);
  const partial = { source, bosToken: facts.bosToken, eosToken: facts.eosToken };
  return {
    id,
    source,
    exportSource,
    endOfTurn,
    stopStrings,
    addsBos: rendersBos(partial),
    bosToken: facts.bosToken,
    eosToken: facts.eosToken,
    eosRename,
    warnings,
  };
}

export interface RenderOptions {
  addGenerationPrompt?: boolean;
}

/** Renders messages with the template; throws if the template raises (e.g. a misplaced system turn). */
export function renderChat(
  t: Pick<EffectiveTemplate, 'source' | 'bosToken' | 'eosToken'>,
  messages: readonly Message[],
  options: RenderOptions = {},
): string {
  return compiled(t.source).render({
    messages: messages.map((m) => ({ role: m.role, content: m.content })),
    add_generation_prompt: options.addGenerationPrompt ?? false,
    bos_token: t.bosToken ?? '',
    eos_token: t.eosToken ?? '',
  });
}

const cache = new Map<string, Template>();

function compiled(source: string): Template {
  let t = cache.get(source);
  if (!t) {
    t = new Template(source);
    if (cache.size > 32) cache.clear();
    cache.set(source, t);
  }
  return t;
}

function rendersBos(t: Pick<EffectiveTemplate, 'source' | 'bosToken' | 'eosToken'>): boolean {
  if (!t.bosToken) return false;
  try {
    const probe: Message[] = [
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'b' },
    ];
    return renderChat(t, probe).startsWith(t.bosToken);
  } catch {
    return t.source.includes('bos_token');
  }
}

/** The built-in templates write token texts inside single-quoted Jinja strings. */
function escapeForJinjaString(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

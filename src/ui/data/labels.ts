// Words for people: formats, templates, skip reasons.
import type { FormatKind, IssueExample, TemplateId } from '../../data/index.ts';

export const FORMAT_LABELS: Record<FormatKind, string> = {
  sharegpt: 'ShareGPT (conversations of from/value)',
  openai: 'OpenAI messages (role/content)',
  alpaca: 'Alpaca (instruction/input/output)',
  text: 'Plain text',
};

export const FORMAT_SHORT: Record<FormatKind, string> = { sharegpt: 'ShareGPT', openai: 'OpenAI messages', alpaca: 'Alpaca', text: 'Plain text' };

export const TEMPLATE_LABELS: Record<Exclude<TemplateId, 'custom'>, string> = {
  chatml: 'ChatML (Unsloth)',
  llama3: 'Llama 3',
  mistral: 'Mistral [INST]',
  alpaca: 'Alpaca prompt',
  model: "The model's own",
};

const REASONS: Record<string, string> = {
  'invalid JSON': 'not valid JSON',
  'not a JSON object': 'not a JSON object',
  'line too long': 'line too long',
  'missing field': 'a field is missing',
  'wrong type': 'a field has the wrong type',
  'empty conversation': 'empty conversation',
  'no assistant turn': 'no assistant turn',
  'unknown role': 'unknown role',
  'too long': 'longer than the max length',
  'no trained tokens': 'nothing to train on',
};

export function reasonText(reason: string): string {
  return REASONS[reason] ?? reason;
}

/** "line 17: not valid JSON (Unexpected token …) — skipped" */
export function issueLine(e: IssueExample): string {
  return `${e.where}: ${reasonText(e.reason)}${e.detail ? ` (${e.detail})` : ''} — skipped`;
}

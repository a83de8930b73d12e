// Ollama Modelfile next to a GGUF, so `ollama create NAME -f Modelfile` works in one step: FROM the
// GGUF, a TEMPLATE in Go-template syntax that renders the same text as the training chat template,
// the stop tokens, and optionally a SYSTEM prompt and PARAMETERs. BOS is not in the templates:
// llama.cpp adds it itself when the GGUF says tokenizer.ggml.add_bos_token.

export class ModelfileError extends Error {
  override name = 'ModelfileError';
}

export interface OllamaTemplate {
  /** Go template (Ollama's .Messages form). */
  template: string;
  /** PARAMETER stop values. */
  stops: string[];
}

/** ChatML as Unsloth's chatml template renders it (no BOS, "\n" after each <|im_end|>). */
export const OLLAMA_CHATML: OllamaTemplate = {
  template: '{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n',
  stops: ['<|im_start|>', '<|im_end|>'],
};

/** Llama 3 Instruct (header, blank line, content, <|eot_id|>; BOS from the tokenizer). */
export const OLLAMA_LLAMA3: OllamaTemplate = {
  template:
    '{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n',
  stops: ['<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
};

export const OLLAMA_TEMPLATES = { chatml: OLLAMA_CHATML, llama3: OLLAMA_LLAMA3 } as const;
export type OllamaTemplateId = keyof typeof OLLAMA_TEMPLATES;

export interface ModelfileOptions {
  /** The GGUF path as `ollama create` sees it, e.g. "./model-Q4_K_M.gguf". */
  from: string;
  /** A built-in template, or a Go template with its stops. */
  template: OllamaTemplateId | OllamaTemplate;
  /** More stop strings (e.g. the tokenizer's EOS text), added after the template's, without duplicates. */
  extraStops?: readonly string[];
  system?: string;
  /** PARAMETER lines (temperature, top_p, num_ctx, …), in the order given. */
  parameters?: Readonly<Record<string, number | string>>;
}

function quoted(value: string, what: string): string {
  if (value.includes('"') || value.includes('\n')) throw new ModelfileError(`${what} ${JSON.stringify(value)} may not contain a quote or a newline`);
  return `"${value}"`;
}

function tripleQuoted(value: string, what: string): string {
  if (value.includes('"""')) throw new ModelfileError(`${what} may not contain """`);
  return `"""${value}"""`;
}

/** The Modelfile text. */
export function ollamaModelfile(opts: ModelfileOptions): string {
  const t = typeof opts.template === 'string' ? OLLAMA_TEMPLATES[opts.template] : opts.template;
  if (!t) throw new ModelfileError(`unknown Ollama template ${JSON.stringify(opts.template)}`);
  if (!opts.from) throw new ModelfileError('FROM: no GGUF path');
  const lines = [`FROM ${opts.from}`, `TEMPLATE ${tripleQuoted(t.template, 'TEMPLATE')}`];
  const stops = [...new Set([...t.stops, ...(opts.extraStops ?? [])])];
  for (const s of stops) lines.push(`PARAMETER stop ${quoted(s, 'stop')}`);
  for (const [k, v] of Object.entries(opts.parameters ?? {})) {
    if (!/^[a-z_]+$/.test(k)) throw new ModelfileError(`PARAMETER name ${JSON.stringify(k)} is not valid`);
    lines.push(`PARAMETER ${k} ${typeof v === 'number' ? String(v) : quoted(v, k)}`);
  }
  if (opts.system !== undefined && opts.system !== '') lines.push(`SYSTEM ${tripleQuoted(opts.system, 'SYSTEM')}`);
  return `${lines.join('\n')}\n`;
}

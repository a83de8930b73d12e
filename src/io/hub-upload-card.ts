// The model card (README.md) an upload to the Hub carries: the adapter's card as PEFT exports
// write it, or a card for a merged model or a GGUF with the same run facts (base model, data,
// settings, final losses, the tool).

import { adapterModelCard, type AdapterCardSummary } from './peft.ts';

export type UploadKind = 'adapter' | 'merged' | 'gguf';

export interface HubCardFacts extends AdapterCardSummary {
  /** GGUF: the quantization type, as llama.cpp names it (Q4_K_M). */
  ggufType?: string;
  /** GGUF: the file name, for the run commands. */
  ggufFile?: string;
}

const yamlStr = (x: string): string => (/^[\w./-]+$/.test(x) ? x : JSON.stringify(x));

/** The adapter card's sections after its title: LoRA settings, training, results. */
function runSections(f: HubCardFacts): string {
  const full = adapterModelCard(f);
  const end = full.indexOf('\n### Framework versions');
  return full.slice(full.indexOf('\n## LoRA'), end < 0 ? undefined : end).trim();
}

function frontMatter(f: HubCardFacts, library: string, tags: string[]): string[] {
  const lines = ['---', `base_model: ${yamlStr(f.baseModel)}`, `library_name: ${library}`, 'pipeline_tag: text-generation', 'tags:', ...tags.map((t) => `- ${yamlStr(t)}`)];
  if (f.datasets?.length) lines.push('datasets:', ...f.datasets.map((d) => `- ${yamlStr(d)}`));
  lines.push('---', '');
  return lines;
}

export function hubModelCard(kind: UploadKind, f: HubCardFacts): string {
  if (kind === 'adapter') return adapterModelCard(f);
  const made = `Fine-tuned in the browser with WebTune Studio (QLoRA on WebGPU)${f.date ? ` on ${f.date}` : ''}`;
  if (kind === 'merged') {
    return [
      ...frontMatter(f, 'transformers', ['merged-lora', 'lora', 'webtune-studio']),
      `# ${f.baseModel} with a LoRA adapter merged`,
      '',
      `${made}; the adapter is merged into the weights, so the model loads with \`AutoModelForCausalLM.from_pretrained\` and needs no PEFT.`,
      '',
      runSections(f),
      '',
    ].join('\n');
  }
  const type = f.ggufType ?? 'GGUF';
  const file = f.ggufFile ?? 'model.gguf';
  return [
    ...frontMatter(f, 'gguf', ['gguf', 'llama.cpp', 'merged-lora', 'webtune-studio']),
    `# ${f.baseModel} with a LoRA adapter merged (GGUF ${type})`,
    '',
    `${made}; the adapter is merged into the weights, quantized to ${type} for llama.cpp.`,
    '',
    '```sh',
    `llama-cli -m ${file} -cnv`,
    '```',
    '',
    runSections(f),
    '',
  ].join('\n');
}

// Ollama Modelfile: the exact text for ChatML and Llama 3, and that each TEMPLATE renders the same
// prompt as the Jinja chat template it stands for (rendered with a small Go-template evaluator for
// the constructs used: range .Messages, .Role, .Content, whitespace trimming).

import { describe, expect, it } from 'vitest';
import { CHATML_SOURCE, LLAMA3_SOURCE, renderChat } from '../src/data/templates.ts';
import { ModelfileError, OLLAMA_CHATML, OLLAMA_LLAMA3, ollamaModelfile } from '../src/io/modelfile.ts';

describe('Modelfile text', () => {
  it('ChatML', () => {
    expect(ollamaModelfile({ from: './model-Q4_K_M.gguf', template: 'chatml' })).toBe(
      [
        'FROM ./model-Q4_K_M.gguf',
        'TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}',
        '{{ .Content }}<|im_end|>',
        '{{ end }}<|im_start|>assistant',
        '"""',
        'PARAMETER stop "<|im_start|>"',
        'PARAMETER stop "<|im_end|>"',
        '',
      ].join('\n'),
    );
  });

  it('Llama 3, with a system prompt, parameters and an extra stop', () => {
    const text = ollamaModelfile({
      from: './llama-3.1-8b-finetune.Q8_0.gguf',
      template: 'llama3',
      extraStops: ['<|eot_id|>', '<|end_of_text|>'],
      system: 'You are a helpful assistant.',
      parameters: { temperature: 0.7, num_ctx: 2048 },
    });
    expect(text).toBe(
      [
        'FROM ./llama-3.1-8b-finetune.Q8_0.gguf',
        'TEMPLATE """{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>',
        '',
        '{{ .Content }}<|eot_id|>',
        '{{- end }}<|start_header_id|>assistant<|end_header_id|>',
        '',
        '"""',
        'PARAMETER stop "<|start_header_id|>"',
        'PARAMETER stop "<|end_header_id|>"',
        'PARAMETER stop "<|eot_id|>"',
        'PARAMETER stop "<|end_of_text|>"',
        'PARAMETER temperature 0.7',
        'PARAMETER num_ctx 2048',
        'SYSTEM """You are a helpful assistant."""',
        '',
      ].join('\n'),
    );
  });

  it('refuses what would break the file', () => {
    expect(() => ollamaModelfile({ from: 'm.gguf', template: 'chatml', system: 'say """hi"""' })).toThrow(ModelfileError);
    expect(() => ollamaModelfile({ from: 'm.gguf', template: 'chatml', extraStops: ['a"b'] })).toThrow(/quote/);
    expect(() => ollamaModelfile({ from: '', template: 'chatml' })).toThrow(/FROM/);
    expect(() => ollamaModelfile({ from: 'm.gguf', template: 'nope' as never })).toThrow(/unknown Ollama template/);
  });
});

/** Go text/template, just enough for these templates: {{- / -}} trimming, range .Messages, .Role, .Content. */
function renderGo(template: string, messages: { role: string; content: string }[]): string {
  type Node = { text: string } | { action: string };
  const nodes: Node[] = [];
  const re = /\{\{(-?)\s*(.*?)\s*(-?)\}\}/gs;
  let last = 0;
  let trimNext = false;
  for (let m = re.exec(template); m; m = re.exec(template)) {
    let text = template.slice(last, m.index);
    if (trimNext) text = text.replace(/^\s+/, '');
    if (m[1] === '-') text = text.replace(/\s+$/, '');
    nodes.push({ text }, { action: m[2] });
    trimNext = m[3] === '-';
    last = re.lastIndex;
  }
  let tail = template.slice(last);
  if (trimNext) tail = tail.replace(/^\s+/, '');
  nodes.push({ text: tail });
  const run = (from: number, to: number, msg: { role: string; content: string } | null): string => {
    let out = '';
    for (let i = from; i < to; i++) {
      const n = nodes[i];
      if ('text' in n) out += n.text;
      else if (n.action === '.Role') out += msg!.role;
      else if (n.action === '.Content') out += msg!.content;
      else if (n.action === 'range .Messages') {
        let depth = 1;
        let j = i + 1;
        for (; j < to; j++) {
          const a = nodes[j];
          if ('action' in a && a.action.startsWith('range')) depth++;
          if ('action' in a && a.action === 'end' && --depth === 0) break;
        }
        for (const m of messages) out += run(i + 1, j, m);
        i = j;
      } else throw new Error(`unsupported action ${n.action}`);
    }
    return out;
  };
  return run(0, nodes.length, null);
}

describe('TEMPLATE renders what the Jinja chat template renders', () => {
  const conversations = [
    [{ role: 'user', content: 'Sort these words alphabetically: pear apple' }],
    [
      { role: 'system', content: 'You sort words.' },
      { role: 'user', content: 'pear apple' },
      { role: 'assistant', content: 'apple pear' },
      { role: 'user', content: 'fig date' },
    ],
  ];
  it('ChatML (Unsloth, no BOS)', () => {
    for (const messages of conversations) {
      const jinja = renderChat({ source: CHATML_SOURCE, bosToken: null, eosToken: '<|im_end|>' }, messages as never, { addGenerationPrompt: true });
      expect(renderGo(OLLAMA_CHATML.template, messages)).toBe(jinja);
    }
  });
  it('Llama 3 (BOS comes from the tokenizer, not the template)', () => {
    for (const messages of conversations) {
      const jinja = renderChat({ source: LLAMA3_SOURCE, bosToken: '<|begin_of_text|>', eosToken: '<|eot_id|>' }, messages as never, { addGenerationPrompt: true });
      expect('<|begin_of_text|>' + renderGo(OLLAMA_LLAMA3.template, messages)).toBe(jinja);
    }
  });
});

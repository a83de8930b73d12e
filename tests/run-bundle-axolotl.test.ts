// axolotl.yaml parses (the `yaml` package, YAML 1.2) and every key it writes is one Axolotl knows,
// of the type Axolotl's config models declare (axolotl-ai-cloud/axolotl, src/axolotl/utils/schemas/
// config.py, training.py, peft.py, model.py, datasets.py), kept below as a schema of the keys we
// write; and every setting of the studio run is there with its value.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { axolotlConfig, type BundleRunFacts } from '../src/io/run-bundle-configs.ts';
import { AXOLOTL_KEY_NOTES } from '../src/io/run-bundle-readme.ts';

type Check = (v: unknown) => boolean;
const str: Check = (v) => typeof v === 'string';
const int: Check = (v) => Number.isInteger(v);
const num: Check = (v) => typeof v === 'number' && Number.isFinite(v);
const bool: Check = (v) => typeof v === 'boolean';
const oneOf = (...xs: unknown[]): Check => (v) => xs.includes(v);
const listOf = (c: Check): Check => (v) => Array.isArray(v) && v.every(c);
const either = (...cs: Check[]): Check => (v) => cs.some((c) => c(v));
const mapOf = (c: Check): Check => (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every(c);

/** SFTDataset (datasets.py): the keys a dataset entry may have. */
const DATASET: Record<string, Check> = {
  path: str,
  split: str,
  type: str,
  ds_type: str,
  field: str,
  field_messages: str,
  message_property_mappings: mapOf(str),
  roles_to_train: listOf(str),
  train_on_eos: oneOf('all', 'turn', 'last'),
};
const dataset: Check = (v) => typeof v === 'object' && v !== null && Object.entries(v).every(([k, x]) => k in DATASET && DATASET[k](x));

/** transformers' SchedulerType values and OptimizerNames we may write. */
const SCHEDULERS = ['linear', 'cosine', 'cosine_with_restarts', 'polynomial', 'constant', 'constant_with_warmup'];
const OPTIMIZERS = ['adamw_torch', 'adamw_torch_fused', 'adamw_bnb_8bit', 'adamw_8bit'];

/** AxolotlInputConfig's fields that the bundle writes, with their declared types. */
const SCHEMA: Record<string, Check> = {
  base_model: str,
  tokenizer_config: str,
  adapter: oneOf('lora', 'qlora'),
  load_in_4bit: bool,
  lora_model_dir: str,
  lora_r: int,
  lora_alpha: int,
  lora_dropout: num,
  lora_target_modules: either(str, listOf(str)),
  peft_use_rslora: bool,
  chat_template: str,
  chat_template_jinja: str,
  eot_tokens: listOf(str),
  special_tokens: mapOf(str),
  datasets: (v) => Array.isArray(v) && v.length >= 1 && v.every(dataset),
  test_datasets: (v) => Array.isArray(v) && v.length >= 1 && v.every(dataset),
  val_set_size: num,
  dataset_prepared_path: str,
  output_dir: str,
  train_on_inputs: bool,
  sequence_len: int,
  sample_packing: bool,
  eval_sample_packing: bool,
  pad_to_sequence_len: bool,
  flash_attention: bool,
  micro_batch_size: int,
  gradient_accumulation_steps: int,
  num_epochs: num,
  max_steps: int,
  learning_rate: num,
  lr_scheduler: oneOf(...SCHEDULERS),
  warmup_steps: int,
  warmup_ratio: num,
  optimizer: oneOf(...OPTIMIZERS),
  weight_decay: num,
  max_grad_norm: num,
  seed: int,
  eval_steps: either(int, num),
  gradient_checkpointing: either(bool, oneOf('offload', 'offload_disk')),
  bf16: either(bool, oneOf('auto')),
  logging_steps: int,
};

/** The keys that break the schema, as sentences (empty: all fine). */
function schemaProblems(config: Record<string, unknown>): string[] {
  return Object.entries(config).flatMap(([k, v]) => (!(k in SCHEMA) ? [`unknown key ${k}`] : SCHEMA[k](v) ? [] : [`${k}: ${JSON.stringify(v)} has the wrong type`]));
}

const TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}: # \"quoted\" & 'single' {{- x -}}\ttab";

const FACTS: BundleRunFacts = {
  modelId: 'unsloth/Meta-Llama-3.1-8B-bnb-4bit',
  modelType: 'llama',
  quantization: 'nf4',
  loraR: 16,
  loraAlpha: 32,
  useRslora: true,
  targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  loraDropout: 0.05,
  learningRate: 3e-4,
  lrScheduler: 'constant',
  warmupSteps: 10,
  warmupRatio: null,
  batchSize: 8,
  gradAccum: 2,
  epochs: 3,
  maxSteps: 120,
  optimizer: 'adamw_8bit',
  weightDecay: 0.01,
  maxGradNorm: 1,
  seed: 3407,
  evalEvery: 20,
  maxSeqLength: 2048,
  packing: true,
  trainOnResponsesOnly: true,
  chatTemplate: TEMPLATE,
  endOfTurn: '<|eot_id|>',
  dataKind: 'chat',
  hasValidation: true,
  hasAdapter: true,
  hasTokenizer: true,
  padToken: '<|finetune_right_pad_id|>',
};

const config = (f: Partial<BundleRunFacts> = {}) => parse(axolotlConfig({ ...FACTS, ...f })) as Record<string, unknown>;

describe('axolotl.yaml', () => {
  it('has only keys Axolotl knows, each of its type', () => {
    for (const variant of [{}, { quantization: 'none' as const, hasAdapter: false, hasValidation: false, hasTokenizer: false, padToken: null, maxSteps: null, warmupSteps: null, warmupRatio: 0.03 }, { dataKind: 'text' as const, packing: false }]) {
      expect(schemaProblems(config(variant))).toEqual([]);
    }
  });

  it('holds every setting of the studio run', () => {
    const c = config();
    expect(c).toMatchObject({
      base_model: FACTS.modelId,
      tokenizer_config: './tokenizer',
      adapter: 'qlora',
      load_in_4bit: true,
      lora_model_dir: './adapter',
      lora_r: 16,
      lora_alpha: 32,
      lora_dropout: 0.05,
      lora_target_modules: FACTS.targetModules,
      peft_use_rslora: true,
      chat_template: 'jinja',
      eot_tokens: ['<|eot_id|>'],
      special_tokens: { pad_token: '<|finetune_right_pad_id|>' },
      train_on_inputs: false,
      sequence_len: 2048,
      sample_packing: true,
      eval_sample_packing: true,
      pad_to_sequence_len: true,
      flash_attention: true,
      micro_batch_size: 8,
      gradient_accumulation_steps: 2,
      num_epochs: 3,
      max_steps: 120,
      learning_rate: 3e-4,
      lr_scheduler: 'constant_with_warmup',
      warmup_steps: 10,
      optimizer: 'adamw_bnb_8bit',
      weight_decay: 0.01,
      max_grad_norm: 1,
      seed: 3407,
      eval_steps: 20,
    });
    // The template reads back exactly, braces, quotes, tabs and all.
    expect(c.chat_template_jinja).toBe(TEMPLATE);
    expect(c.datasets).toEqual([
      {
        path: 'data/train.jsonl',
        ds_type: 'json',
        type: 'chat_template',
        field_messages: 'messages',
        message_property_mappings: { role: 'role', content: 'content' },
        roles_to_train: ['assistant'],
        train_on_eos: 'turn',
      },
    ]);
    expect((c.test_datasets as { path: string; split: string }[])[0]).toMatchObject({ path: 'data/validation.jsonl', split: 'train' });
    expect(c.warmup_ratio).toBeUndefined();
  });

  it('says what the other runs change: 16-bit LoRA, no adapter, warmup ratio, all tokens, plain text', () => {
    const c = config({ quantization: 'none', hasAdapter: false, hasValidation: false, warmupSteps: null, warmupRatio: 0.03, trainOnResponsesOnly: false, maxSteps: null, optimizer: 'adamw', lrScheduler: 'cosine' });
    expect(c).toMatchObject({ adapter: 'lora', load_in_4bit: false, val_set_size: 0, warmup_ratio: 0.03, train_on_inputs: true, optimizer: 'adamw_torch', lr_scheduler: 'cosine' });
    for (const k of ['lora_model_dir', 'test_datasets', 'warmup_steps', 'max_steps', 'eval_steps']) expect(c, k).not.toHaveProperty(k);
    expect((c.datasets as { roles_to_train: string[] }[])[0].roles_to_train).toEqual(['system', 'user', 'assistant']);
    const t = config({ dataKind: 'text' });
    expect(t.datasets).toEqual([{ path: 'data/train.jsonl', ds_type: 'json', type: 'completion', field: 'text' }]);
    expect(t).not.toHaveProperty('chat_template_jinja');
    // Axolotl takes an integer alpha.
    expect(config({ loraAlpha: 24.5 }).lora_alpha).toBe(25);
  });

  it('lists every key it writes in the README\'s list of keys it relies on', () => {
    const listed = new Set(AXOLOTL_KEY_NOTES.flatMap(([keys]) => keys));
    for (const k of Object.keys(config())) expect(listed.has(k), k).toBe(true);
    for (const k of Object.keys(config({ quantization: 'none', hasValidation: false, warmupSteps: null, warmupRatio: 0.1 }))) expect(listed.has(k), k).toBe(true);
  });

  it('the schema check itself catches unknown keys and wrong types', () => {
    expect(schemaProblems({ lora_r: 16.5, lora_rank: 16, datasets: [{ path: 'x', fields: 'y' }] })).toEqual([
      'lora_r: 16.5 has the wrong type',
      'unknown key lora_rank',
      'datasets: [{"path":"x","fields":"y"}] has the wrong type',
    ]);
  });
});

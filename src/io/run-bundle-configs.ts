// The configs a run bundle carries: accelerate's for DDP (a copy of the model per GPU) and FSDP
// (the model sharded over the GPUs), and an Axolotl config with the same settings.

import { toYaml, type YamlValue } from './run-bundle-yaml.ts';

/** The facts of the studio run the configs are written from. */
export interface BundleRunFacts {
  modelId: string;
  /** config.json model_type: FSDP wraps this family's decoder layers. */
  modelType: string | null;
  /** 'nf4': the base as the studio held it (bitsandbytes 4-bit); 'none': dtype weights. */
  quantization: 'nf4' | 'none';
  loraR: number;
  loraAlpha: number;
  useRslora: boolean;
  targetModules: readonly string[];
  loraDropout: number;
  learningRate: number;
  lrScheduler: 'linear' | 'cosine' | 'constant';
  warmupSteps: number | null;
  warmupRatio: number | null;
  batchSize: number;
  gradAccum: number;
  epochs: number;
  maxSteps: number | null;
  optimizer: 'adamw' | 'adamw_8bit';
  weightDecay: number;
  maxGradNorm: number;
  seed: number;
  evalEvery: number;
  maxSeqLength: number;
  packing: boolean;
  trainOnResponsesOnly: boolean;
  /** The template text the studio rendered, and the text that ends an assistant turn. */
  chatTemplate: string;
  endOfTurn: string;
  /** Conversations ({"messages"}) or plain text ({"text"}). */
  dataKind: 'chat' | 'text';
  hasValidation: boolean;
  hasAdapter: boolean;
  hasTokenizer: boolean;
  padToken: string | null;
}

export const DDP_CONFIG_FILE = 'accelerate_config_ddp.yaml';
export const FSDP_CONFIG_FILE = 'accelerate_config_fsdp.yaml';
export const AXOLOTL_FILE = 'axolotl.yaml';

/** transformers' decoder layer class per model_type (FSDP wraps one unit per layer). */
const DECODER_LAYER: Record<string, string> = {
  llama: 'LlamaDecoderLayer',
  mistral: 'MistralDecoderLayer',
  qwen2: 'Qwen2DecoderLayer',
  qwen3: 'Qwen3DecoderLayer',
};

const LAUNCH_COMMON = {
  compute_environment: 'LOCAL_MACHINE',
  machine_rank: 0,
  main_training_function: 'main',
  num_machines: 1,
  num_processes: 2,
  rdzv_backend: 'static',
  same_network: true,
  use_cpu: false,
};

export function ddpConfig(): string {
  return toYaml({
    header: [
      'accelerate launch --config_file accelerate_config_ddp.yaml --num_processes N train.py',
      'DDP: every GPU holds the whole model and takes its share of each step\'s rows.',
      '--num_processes on the command line wins over num_processes here.',
    ],
    body: { ...LAUNCH_COMMON, distributed_type: 'MULTI_GPU', gpu_ids: 'all', mixed_precision: 'no', downcast_bf16: 'no' },
  });
}

export function fsdpConfig(f: Pick<BundleRunFacts, 'modelType'>): string {
  const layer = f.modelType ? DECODER_LAYER[f.modelType] : undefined;
  return toYaml({
    header: [
      'accelerate launch --config_file accelerate_config_fsdp.yaml --num_processes N train.py --dtype bfloat16',
      'FSDP: the model is sharded over the GPUs, for models that do not fit one. Compute in bf16.',
      'A model of many GB: set fsdp_cpu_ram_efficient_loading to true so that only rank 0 reads the',
      'weights into CPU memory (the other ranks get them through fsdp_sync_module_states).',
    ],
    body: {
      ...LAUNCH_COMMON,
      distributed_type: 'FSDP',
      mixed_precision: 'bf16',
      fsdp_config: {
        fsdp_version: 1,
        fsdp_auto_wrap_policy: 'TRANSFORMER_BASED_WRAP',
        ...(layer ? { fsdp_transformer_layer_cls_to_wrap: layer } : {}),
        fsdp_backward_prefetch: 'BACKWARD_PRE',
        fsdp_cpu_ram_efficient_loading: false,
        fsdp_forward_prefetch: false,
        fsdp_offload_params: false,
        fsdp_sharding_strategy: 'FULL_SHARD',
        fsdp_state_dict_type: 'FULL_STATE_DICT',
        fsdp_sync_module_states: true,
        fsdp_use_orig_params: true,
      },
    },
  });
}

/** transformers' scheduler names for the studio's (its constant schedule has a warmup). */
export const HF_SCHEDULER = { linear: 'linear', cosine: 'cosine', constant: 'constant_with_warmup' } as const;
/** transformers' optimizer names (Axolotl's `optimizer`). */
export const HF_OPTIMIZER = { adamw: 'adamw_torch', adamw_8bit: 'adamw_bnb_8bit' } as const;

/** What Axolotl is told, key by key, with why; the README lists the same keys. */
export function axolotlBody(f: BundleRunFacts): Record<string, YamlValue | undefined> {
  const dataset = (path: string, split?: string): Record<string, YamlValue> =>
    f.dataKind === 'text'
      ? { path, ds_type: 'json', ...(split ? { split } : {}), type: 'completion', field: 'text' }
      : {
          path,
          ds_type: 'json',
          ...(split ? { split } : {}),
          type: 'chat_template',
          field_messages: 'messages',
          message_property_mappings: { role: 'role', content: 'content' },
          roles_to_train: f.trainOnResponsesOnly ? ['assistant'] : ['system', 'user', 'assistant'],
          train_on_eos: 'turn',
        };
  const qlora = f.quantization === 'nf4';
  return {
    base_model: f.modelId,
    tokenizer_config: f.hasTokenizer ? './tokenizer' : undefined,
    adapter: qlora ? 'qlora' : 'lora',
    load_in_4bit: qlora,
    lora_model_dir: f.hasAdapter ? './adapter' : undefined,
    lora_r: f.loraR,
    // Axolotl takes an integer alpha.
    lora_alpha: Math.round(f.loraAlpha),
    lora_dropout: f.loraDropout,
    lora_target_modules: [...f.targetModules],
    peft_use_rslora: f.useRslora,
    chat_template: f.dataKind === 'chat' ? 'jinja' : undefined,
    chat_template_jinja: f.dataKind === 'chat' ? f.chatTemplate : undefined,
    eot_tokens: f.dataKind === 'chat' ? [f.endOfTurn] : undefined,
    special_tokens: f.padToken ? { pad_token: f.padToken } : undefined,
    datasets: [dataset('data/train.jsonl')],
    test_datasets: f.hasValidation ? [dataset('data/validation.jsonl', 'train')] : undefined,
    val_set_size: f.hasValidation ? undefined : 0,
    dataset_prepared_path: './axolotl-prepared',
    output_dir: './axolotl-output',
    train_on_inputs: !f.trainOnResponsesOnly,
    sequence_len: f.maxSeqLength,
    sample_packing: f.packing,
    eval_sample_packing: f.hasValidation ? f.packing : undefined,
    pad_to_sequence_len: f.packing,
    flash_attention: f.packing,
    micro_batch_size: f.batchSize,
    gradient_accumulation_steps: f.gradAccum,
    num_epochs: f.epochs,
    max_steps: f.maxSteps ?? undefined,
    learning_rate: f.learningRate,
    lr_scheduler: HF_SCHEDULER[f.lrScheduler],
    warmup_steps: f.warmupSteps ?? undefined,
    warmup_ratio: f.warmupSteps === null ? (f.warmupRatio ?? 0) : undefined,
    optimizer: HF_OPTIMIZER[f.optimizer],
    weight_decay: f.weightDecay,
    max_grad_norm: f.maxGradNorm,
    seed: f.seed,
    eval_steps: f.hasValidation && f.evalEvery > 0 ? f.evalEvery : undefined,
    gradient_checkpointing: true,
    bf16: 'auto',
    logging_steps: 1,
  };
}

export function axolotlConfig(f: BundleRunFacts): string {
  return toYaml({
    header: [
      'Axolotl: the studio run\'s settings in Axolotl\'s keys (README.md lists each and what it relies on).',
      '  axolotl train axolotl.yaml',
      'micro_batch_size and gradient_accumulation_steps are per GPU in Axolotl: on N GPUs, divide',
      'gradient_accumulation_steps by N to keep the studio\'s batch. Axolotl tokenizes the turns its',
      'own way: for the studio\'s exact tokens, use train.py.',
    ],
    body: axolotlBody(f),
  });
}

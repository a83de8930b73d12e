// Curated models for the Model tab, each with the config.json fields the engine reads (numbers
// copied from tests/fixtures/configs/*.json; tests/model-load-presets.test.ts checks them), so the
// memory planner and the download size can be shown before anything is fetched.
import { LINEAR_NAMES, parseModelConfig, type ModelArch } from './arch.ts';
import type { GpuInfo } from './gpu.ts';
import { maxLmHeadChunk, nf4Bytes, planMemory, SPEC_DEFAULT_LIMITS, type PlanSettings } from './planner.ts';

export interface ModelPreset {
  /** Hub repo id. */
  id: string;
  label: string;
  /** The fixture its numbers come from. */
  configFrom: string;
  /** The offline demo (loaded from the app's files, not the Hub). */
  demo?: boolean;
  note?: string;
  config: Record<string, unknown>;
}

const LLAMA3_ROPE = { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' };

const llama = (c: Record<string, unknown>) => ({ architectures: ['LlamaForCausalLM'], model_type: 'llama', torch_dtype: 'bfloat16', rms_norm_eps: 1e-5, ...c });
const qwen2 = (c: Record<string, unknown>) => ({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', torch_dtype: 'bfloat16', rms_norm_eps: 1e-6, rope_theta: 1000000.0, max_position_embeddings: 32768, tie_word_embeddings: true, vocab_size: 151936, ...c });
const smol = (c: Record<string, unknown>) => llama({ vocab_size: 49152, max_position_embeddings: 8192, tie_word_embeddings: true, rope_scaling: null, ...c });

export const MODEL_PRESETS: readonly ModelPreset[] = [
  {
    id: 'unsloth/Meta-Llama-3.1-8B-bnb-4bit',
    label: 'Llama 3.1 8B (bnb-4bit)',
    configFrom: 'unsloth--Meta-Llama-3.1-8B-bnb-4bit',
    note: 'The reference workflow (Unsloth tutorial): pre-quantized NF4, no 16-bit detour.',
    config: llama({
      hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8,
      vocab_size: 128256, max_position_embeddings: 131072, rope_theta: 500000.0, tie_word_embeddings: false,
      rope_scaling: { ...LLAMA3_ROPE, factor: 8.0 },
      quantization_config: { quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: 'bfloat16', llm_int8_skip_modules: null },
    }),
  },
  {
    id: 'unsloth/Llama-3.2-1B-Instruct',
    label: 'Llama 3.2 1B Instruct',
    configFrom: 'meta-llama--Llama-3.2-1B',
    note: "Unsloth's ungated copy of Meta's weights.",
    config: llama({ hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, max_position_embeddings: 131072, rope_theta: 500000.0, rope_scaling: LLAMA3_ROPE, tie_word_embeddings: true }),
  },
  {
    id: 'unsloth/Llama-3.2-3B-Instruct',
    label: 'Llama 3.2 3B Instruct',
    configFrom: 'meta-llama--Llama-3.2-3B',
    note: "Unsloth's ungated copy of Meta's weights.",
    config: llama({ hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 28, num_attention_heads: 24, num_key_value_heads: 8, head_dim: 128, vocab_size: 128256, max_position_embeddings: 131072, rope_theta: 500000.0, rope_scaling: LLAMA3_ROPE, tie_word_embeddings: true }),
  },
  {
    id: 'Qwen/Qwen2.5-0.5B-Instruct',
    label: 'Qwen2.5 0.5B Instruct',
    configFrom: 'Qwen--Qwen2.5-0.5B',
    config: qwen2({ hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2 }),
  },
  {
    id: 'Qwen/Qwen2.5-1.5B-Instruct',
    label: 'Qwen2.5 1.5B Instruct',
    configFrom: 'Qwen--Qwen2.5-1.5B-Instruct',
    config: qwen2({ hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12, num_key_value_heads: 2 }),
  },
  {
    id: 'HuggingFaceTB/SmolLM2-135M-Instruct',
    label: 'SmolLM2 135M Instruct',
    configFrom: 'HuggingFaceTB--SmolLM2-135M',
    config: smol({ hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, rope_theta: 100000 }),
  },
  {
    id: 'HuggingFaceTB/SmolLM2-360M-Instruct',
    label: 'SmolLM2 360M Instruct',
    configFrom: 'HuggingFaceTB--SmolLM2-360M.trimmed',
    config: smol({ hidden_size: 960, intermediate_size: 2560, num_hidden_layers: 32, num_attention_heads: 15, num_key_value_heads: 5, rope_theta: 100000 }),
  },
  {
    id: 'HuggingFaceTB/SmolLM2-1.7B-Instruct',
    label: 'SmolLM2 1.7B Instruct',
    configFrom: 'HuggingFaceTB--SmolLM2-1.7B-Instruct',
    config: smol({ hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 24, num_attention_heads: 32, num_key_value_heads: 32, rope_theta: 130000 }),
  },
  {
    id: 'mistralai/Mistral-7B-Instruct-v0.3',
    label: 'Mistral 7B Instruct v0.3',
    configFrom: 'mistralai--Mistral-7B-v0.3',
    config: { architectures: ['MistralForCausalLM'], model_type: 'mistral', torch_dtype: 'bfloat16', hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32768, max_position_embeddings: 32768, rope_theta: 1000000.0, rms_norm_eps: 1e-5, tie_word_embeddings: false, sliding_window: null },
  },
  {
    id: 'webtune/demo-tiny-llama',
    label: 'Demo (offline)',
    configFrom: 'webtune--demo-tiny-llama',
    demo: true,
    note: 'A tiny Llama shipped with the app: works without the network.',
    config: llama({ hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 512, max_position_embeddings: 512, rope_theta: 10000, rope_scaling: null, tie_word_embeddings: false }),
  },
];

/**
 * The studio's default run (DESIGN.md, the Unsloth reference): seq 2048, r=16 on all seven linears,
 * gradient checkpointing, batch 8, AdamW 8-bit. Activations in f16 where the GPU has shader-f16,
 * and the lm_head chunk clamped to one storage binding.
 */
export function defaultPlanSettings(arch: ModelArch, gpu?: Pick<GpuInfo, 'f16' | 'limits'> | null): PlanSettings {
  const binding = gpu?.limits.maxStorageBufferBindingSize ?? SPEC_DEFAULT_LIMITS.maxStorageBufferBindingSize;
  const dtype = gpu?.f16 ? 'f16' : 'f32';
  return {
    batchSize: 8,
    seqLen: 2048,
    loraR: 16,
    targets: LINEAR_NAMES,
    gradientCheckpointing: true,
    optimizer: 'adamw_8bit',
    // As training runs today: f32 activations (the backward has no f16 mode yet), the embedding
    // and lm_head in f16 where the device has it.
    activationDtype: 'f32',
    embeddingDtype: dtype,
    lmHeadChunk: Math.max(1, Math.min(256, maxLmHeadChunk(arch, binding))),
  };
}

/** Bytes of the checkpoint's weights: 16-bit (or as torch_dtype says), NF4 for a bnb-4bit repo. */
export function estimateDownloadBytes(arch: ModelArch): number {
  const elem = arch.torchDtype === 'float32' ? 4 : 2;
  if (arch.quantization.method !== 'bnb-nf4') return arch.params.total * elem;
  const dq = arch.quantization.doubleQuant;
  const perLayer = arch.linears.reduce((s, l) => {
    const b = nf4Bytes(l.out * l.in, dq);
    return s + b.nf4 + b.absmax;
  }, 0);
  return perLayer * arch.layers + (arch.params.total - arch.params.linear) * elem;
}

export interface PresetView {
  id: string;
  label: string;
  demo: boolean;
  note: string | null;
  family: string;
  params: number;
  downloadBytes: number;
  /** The planner's total for the default run on this GPU (training plus chat). */
  memoryBytes: number;
  /** Base weights alone on the GPU. */
  weightBytes: number;
  planLines: string[];
  warnings: string[];
}

export function presetViews(gpu?: Pick<GpuInfo, 'f16' | 'limits'> | null): PresetView[] {
  return MODEL_PRESETS.map((p) => {
    const arch = parseModelConfig(p.config);
    const plan = planMemory(arch, defaultPlanSettings(arch, gpu), { limits: gpu?.limits });
    return {
      id: p.id,
      label: p.label,
      demo: p.demo ?? false,
      note: p.note ?? null,
      family: arch.family,
      params: arch.params.total,
      downloadBytes: estimateDownloadBytes(arch),
      memoryBytes: plan.totalBytes,
      weightBytes: plan.weights.total,
      planLines: plan.lines,
      warnings: plan.warnings,
    };
  });
}

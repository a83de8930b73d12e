// What to tell a person whose NVIDIA GPU reaches the page without shader-f16: Chrome on
// Linux/Vulkan hides it unless started with Dawn's f16 toggle. The memory it saves is the
// planner's own difference for the reference model, not a number written here.
import type { GpuInfo } from '../../client/index.ts';
import { defaultPlanSettings, MODEL_PRESETS, parseModelConfig, planMemory } from '../../client/memory-plan.ts';
import { formatBytes } from '../../util/format.ts';

/** The Chrome command-line flags that expose shader-f16 on NVIDIA under Vulkan. */
export const CHROME_F16_FLAGS = '--enable-unsafe-webgpu --enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia';

const REFERENCE = 'unsloth/Meta-Llama-3.1-8B-bnb-4bit';

/** Bytes the reference preset's default training run saves with shader-f16 (f16 embed_tokens / lm_head). */
export function f16Saving(info: Pick<GpuInfo, 'limits'>): { label: string; bytes: number } {
  const preset = MODEL_PRESETS.find((p) => p.id === REFERENCE) ?? MODEL_PRESETS[0];
  const arch = parseModelConfig(preset.config);
  const plan = (f16: boolean) => planMemory(arch, defaultPlanSettings(arch, { f16, limits: info.limits }), { limits: info.limits }).totalBytes;
  return { label: preset.label, bytes: plan(false) - plan(true) };
}

/** A notice for an NVIDIA adapter without shader-f16, or null when there is nothing to say. */
export function f16Advice(info: Pick<GpuInfo, 'vendor' | 'description' | 'f16' | 'limits'>): string | null {
  if (info.f16 || !/nvidia/i.test(`${info.vendor} ${info.description}`)) return null;
  const saving = f16Saving(info);
  return (
    `This NVIDIA GPU reaches the page without 16-bit floats (shader-f16). Chrome on Linux enables them when started with ` +
    `${CHROME_F16_FLAGS}. Then the embeddings and lm_head are kept in 16 bits (${formatBytes(saving.bytes)} less for ` +
    `${saving.label}'s default run), chat runs with 16-bit activations and KV cache, and the matrix products run on the ` +
    `tensor cores (subgroup matrices): ${TENSOR_CORE_GAIN.where}, QLoRA training went from ${TENSOR_CORE_GAIN.train[0]} to ` +
    `${TENSOR_CORE_GAIN.train[1]} tokens/s and prefill from ${TENSOR_CORE_GAIN.prefill[0]} to ${TENSOR_CORE_GAIN.prefill[1]}.`
  );
}

/** What the tensor cores bought on the benchmark machine: the same code with and without them (npm run bench
 * -- --no-tensor-cores), tokens/s at seq 2048; tests/f16-advice.test.ts checks these against the files. */
export const TENSOR_CORE_GAIN = {
  where: 'on an H200 with a Llama-3.2-1B-shaped model',
  files: ['bench/h200-2026-11-30-s16-models-simt-1b.json', 'bench/h200-2026-11-30-s16-models-mma-1b.json'],
  train: [2464, 12475],
  prefill: [9760, 47574],
} as const;

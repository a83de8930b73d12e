// The Model tab's presets: their config numbers are the fixtures' (copied by hand, so checked
// here), and the download sizes and memory plans shown before loading come out of them.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseModelConfig, type ModelArch } from '../src/engine/arch.ts';
import { defaultPlanSettings, estimateDownloadBytes, MODEL_PRESETS, presetViews } from '../src/engine/presets.ts';

const fixture = (name: string): ModelArch =>
  parseModelConfig(JSON.parse(readFileSync(new URL(`./fixtures/configs/${name}.json`, import.meta.url), 'utf8')));

/** What the engine takes from a config (token ids and bookkeeping left out). */
const dims = (a: ModelArch) => ({
  family: a.family,
  vocabSize: a.vocabSize,
  hidden: a.hidden,
  intermediate: a.intermediate,
  layers: a.layers,
  heads: a.heads,
  kvHeads: a.kvHeads,
  headDim: a.headDim,
  rmsNormEps: a.rmsNormEps,
  ropeTheta: a.ropeTheta,
  ropeScaling: a.ropeScaling,
  maxPositions: a.maxPositions,
  tiedEmbeddings: a.tiedEmbeddings,
  attentionBias: a.attentionBias,
  qkNorm: a.qkNorm,
  torchDtype: a.torchDtype,
  quantization: a.quantization,
  params: a.params,
});

describe('model presets', () => {
  it('cover the models the Model tab promises', () => {
    expect(MODEL_PRESETS.map((p) => p.id)).toEqual([
      'unsloth/Meta-Llama-3.1-8B-bnb-4bit',
      'unsloth/Llama-3.2-1B-Instruct',
      'unsloth/Llama-3.2-3B-Instruct',
      'Qwen/Qwen2.5-0.5B-Instruct',
      'Qwen/Qwen2.5-1.5B-Instruct',
      'HuggingFaceTB/SmolLM2-135M-Instruct',
      'HuggingFaceTB/SmolLM2-360M-Instruct',
      'HuggingFaceTB/SmolLM2-1.7B-Instruct',
      'mistralai/Mistral-7B-Instruct-v0.3',
      'webtune/demo-tiny-llama',
    ]);
  });

  it.each(MODEL_PRESETS.map((p) => [p.id, p] as const))('%s has the numbers of its fixture config', (_id, p) => {
    expect(dims(parseModelConfig(p.config))).toEqual(dims(fixture(p.configFrom)));
  });

  it('download sizes: 16-bit checkpoints and the bnb-4bit one', () => {
    const arch = (id: string) => parseModelConfig(MODEL_PRESETS.find((p) => p.id === id)!.config);
    // Llama 3.1 8B bnb-4bit: 3.49 GB of NF4 codes + double-quant absmax + 2 x 1.05 GB bf16 embeddings.
    const bnb = estimateDownloadBytes(arch('unsloth/Meta-Llama-3.1-8B-bnb-4bit'));
    expect(bnb / 1e9).toBeCloseTo(5.70, 1);
    const llama1b = arch('unsloth/Llama-3.2-1B-Instruct');
    expect(estimateDownloadBytes(llama1b)).toBe(llama1b.params.total * 2); // 2.47 GB of bf16
    expect(estimateDownloadBytes(llama1b) / 1e9).toBeCloseTo(2.47, 2);
  });

  it('memory plans against the GPU: f16 where it has shader-f16, lm_head chunk within one binding', () => {
    const limits = { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 2 ** 27 } as never;
    const views = presetViews({ f16: true, limits });
    const ref = views[0];
    expect(ref.label).toBe('Llama 3.1 8B (bnb-4bit)');
    expect(ref.weightBytes).toBe(6_028_279_808); // the planner test's number for the reference run
    expect(ref.memoryBytes).toBeGreaterThan(ref.weightBytes);
    expect(ref.planLines.at(-1)).toMatch(/GPU memory unknown/);
    const arch = parseModelConfig(MODEL_PRESETS[0].config);
    expect(defaultPlanSettings(arch, { f16: true, limits }).lmHeadChunk).toBe(256);
    const small = { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 2 ** 26 } as never;
    expect(defaultPlanSettings(arch, { f16: true, limits: small }).lmHeadChunk).toBe(130); // 2^26 / (128256 * 4)
    expect(defaultPlanSettings(arch, { f16: false, limits }).activationDtype).toBe('f32');
    const demo = views.find((v) => v.demo)!;
    expect(demo.params).toBe(156480);
    expect(views.every((v) => v.downloadBytes > 0 && v.memoryBytes > 0)).toBe(true);
  });
});

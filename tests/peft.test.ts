// PEFT adapter files against what peft 0.21 wrote for the parity fixtures (tests/fixtures/parity/*/
// adapter): adapter_config.json's key set and text, adapter_model.safetensors' keys, shapes and
// bytes; round trips; the reader's checks; the model card; the zip.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../src/engine/arch.ts';
import { collectBytes } from '../src/io/gguf.ts';
import { fileBytes } from '../src/io/export-files.ts';
import {
  PeftError,
  adapterConfig,
  adapterConfigJson,
  adapterModelCard,
  adapterSafetensors,
  adapterTensors,
  loraScaling,
  loraTargets,
  peftAdapterFiles,
  peftAdapterZip,
  readPeftAdapter,
  type LoraAdapter,
  type LoraSettings,
} from '../src/io/peft.ts';
import { bytesSource, openSafetensors, writeSafetensorsToBytes } from '../src/io/safetensors.ts';
import { PARITY, PARITY_VARIANTS, gaussian, loadParity, readJson } from './fixtures/gguf/helpers.ts';
import { firstDiff } from './fixtures/gguf/helpers.ts';

const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

function randomAdapter(arch: ReturnType<typeof parseModelConfig>, settings: LoraSettings, seed: number): LoraAdapter {
  const modules = new Map();
  loraTargets(arch, settings).forEach((t, i) => {
    modules.set(t.path, { a: gaussian(settings.r * t.linear.in, seed + 2 * i, 0.1), b: gaussian(t.linear.out * settings.r, seed + 2 * i + 1, 0.1) });
  });
  return { settings, modules };
}

describe('adapter_config.json', () => {
  const fixtureText = readFileSync(join(PARITY, 'llama/adapter/adapter_config.json'), 'utf8');
  const fixture = JSON.parse(fixtureText) as Record<string, unknown>;

  it('has exactly the keys peft 0.21 writes', () => {
    const ours = adapterConfig({ r: 16, loraAlpha: 16, targetModules: ALL });
    expect(Object.keys(ours).sort()).toEqual(Object.keys(fixture).sort());
  });

  it("is byte for byte the fixture's file for the same settings (json.dumps indent=2, sort_keys)", () => {
    const text = adapterConfigJson({ r: 8, loraAlpha: 16, useRslora: true, targetModules: fixture.target_modules as string[] });
    expect(text).toBe(fixtureText);
  });

  it('writes the settings with Python number formatting', () => {
    const c = JSON.parse(adapterConfigJson({ r: 16, loraAlpha: 32, loraDropout: 0.05, targetModules: ['q_proj'], baseModelNameOrPath: 'unsloth/Meta-Llama-3.1-8B-bnb-4bit' }));
    expect(c).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 16, lora_alpha: 32, lora_dropout: 0.05, bias: 'none', use_rslora: false, target_modules: ['q_proj'], base_model_name_or_path: 'unsloth/Meta-Llama-3.1-8B-bnb-4bit' });
    expect(adapterConfigJson({ r: 8, loraAlpha: 8, targetModules: ['q_proj'] })).toContain('"lora_dropout": 0.0,');
    expect(adapterConfigJson({ r: 8, loraAlpha: 8, loraDropout: 0.00001, targetModules: ['q_proj'] })).toContain('"lora_dropout": 1e-05,');
    expect(adapterConfigJson({ r: 8, loraAlpha: 12.5, targetModules: ['q_proj'] })).toContain('"lora_alpha": 12.5,');
  });

  it('scaling: alpha / r, or alpha / sqrt(r) with rsLoRA', () => {
    expect(loraScaling({ r: 16, loraAlpha: 32 })).toBe(2);
    expect(loraScaling({ r: 16, loraAlpha: 16, useRslora: true })).toBe(4);
  });
});

describe('adapter_model.safetensors', () => {
  for (const variant of PARITY_VARIANTS) {
    it(`${variant}: the same keys and shapes as peft's, F32`, async () => {
      const p = await loadParity(variant);
      const settings: LoraSettings = { r: 8, loraAlpha: 16, useRslora: true, targetModules: ALL };
      const tensors = adapterTensors(p.arch, randomAdapter(p.arch, settings, 1));
      const want = p.adapter.tensors.map((t) => [t.name, t.dtype, t.shape]).sort();
      expect(tensors.map((t) => [t.name, t.dtype, t.shape]).sort()).toEqual(want);
    });
  }

  it("re-writing the fixture adapter read with our reader gives peft's file byte for byte", async () => {
    const p = await loadParity('llama');
    const { adapter, warnings } = await readPeftAdapter({ config: p.adapterConfig, weights: p.adapter }, p.arch);
    expect(warnings).toEqual([]);
    const ours = await collectBytes(adapterSafetensors(p.arch, adapter));
    const theirs = new Uint8Array(readFileSync(join(PARITY, 'llama/adapter/adapter_model.safetensors')));
    expect(ours.length).toBe(theirs.length);
    expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true);
  });

  it('round trip: random A/B -> files -> reader gives the same arrays and settings', async () => {
    const arch = parseModelConfig(readJson(join(PARITY, 'qwen3/config.json')));
    const settings: LoraSettings = { r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], loraDropout: 0.1, baseModelNameOrPath: 'Qwen/Qwen3-0.6B', layersToTransform: [1] };
    const adapter = randomAdapter(arch, settings, 9);
    expect([...adapter.modules.keys()]).toEqual(['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj', 'model.layers.1.mlp.down_proj']);
    const [config, weights] = peftAdapterFiles(arch, adapter);
    expect((await fileBytes(weights)).length).toBe(weights.size);
    const back = await readPeftAdapter({ config: new TextDecoder().decode(await fileBytes(config)), weights: await fileBytes(weights) }, arch);
    expect(back.adapter.settings).toEqual({ ...settings, useRslora: false, revision: null });
    expect([...back.adapter.modules.keys()]).toEqual([...adapter.modules.keys()]);
    for (const [k, m] of adapter.modules) {
      expect(firstDiff(back.adapter.modules.get(k)!.a, m.a)).toBe(-1);
      expect(firstDiff(back.adapter.modules.get(k)!.b, m.b)).toBe(-1);
    }
  });

  it('the reader refuses adapters that do not fit the model, naming the problem', async () => {
    const p = await loadParity('llama');
    const base = { config: p.adapterConfig, weights: p.adapter };
    const other = parseModelConfig(readJson(join(PARITY, 'qwen3/config.json')));
    await expect(readPeftAdapter(base, other)).rejects.toThrow(/q_proj.lora_A.weight has shape \[8, 64\], expected \[8, 64\]|lora_B.weight has shape \[64, 8\], expected \[96, 8\]/);
    await expect(readPeftAdapter({ ...base, config: { ...p.adapterConfig, use_dora: true } }, p.arch)).rejects.toThrow(/DoRA/);
    await expect(readPeftAdapter({ ...base, config: { ...p.adapterConfig, peft_type: 'IA3' } }, p.arch)).rejects.toThrow(/only LORA/);
    await expect(readPeftAdapter({ ...base, config: { ...p.adapterConfig, rank_pattern: { q_proj: 4 } } }, p.arch)).rejects.toThrow(/rank_pattern/);
    await expect(readPeftAdapter({ ...base, config: { ...p.adapterConfig, r: 4 } }, p.arch)).rejects.toThrow(/expected \[4, /);
    await expect(readPeftAdapter({ ...base, config: '{not json' }, p.arch)).rejects.toThrow(PeftError);
    // Missing and extra tensors.
    const only = p.adapter.tensors.filter((t) => !t.name.includes('layers.1.mlp.down_proj.lora_B'));
    const missing = await writeSafetensorsToBytes(await Promise.all(only.map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: (await p.adapter.read(t.name)).slice() }))));
    await expect(readPeftAdapter({ config: p.adapterConfig, weights: missing }, p.arch)).rejects.toThrow(/missing base_model.model.model.layers.1.mlp.down_proj.lora_B.weight/);
    const narrowed = { ...p.adapterConfig, target_modules: ['q_proj'] };
    await expect(readPeftAdapter({ config: narrowed, weights: p.adapter }, p.arch)).rejects.toThrow(/match no LoRA target/);
  });

  it('accepts a target_modules regex and "all-linear", as PEFT does', async () => {
    const p = await loadParity('llama');
    for (const target_modules of ['.*\\.(q|k|v|o|gate|up|down)_proj', 'all-linear']) {
      const { adapter } = await readPeftAdapter({ config: { ...p.adapterConfig, target_modules }, weights: p.adapter }, p.arch);
      expect(adapter.settings.targetModules).toEqual(ALL);
      expect(adapter.modules.size).toBe(14);
    }
  });
});

describe('model card and zip', () => {
  const settings: LoraSettings = { r: 16, loraAlpha: 16, useRslora: true, targetModules: ALL, baseModelNameOrPath: 'unsloth/Meta-Llama-3.1-8B-bnb-4bit' };

  it('the model card has the settings, the training arguments and the final losses', () => {
    const card = adapterModelCard({
      baseModel: 'unsloth/Meta-Llama-3.1-8B-bnb-4bit',
      settings,
      datasets: ['mlabonne/FineTome-100k'],
      template: 'chatml (EOS mapped to <|im_end|>)',
      training: { learning_rate: 3e-4, lr_scheduler_type: 'linear', per_device_train_batch_size: 8, gradient_accumulation_steps: 2, num_train_epochs: 1, max_seq_length: 2048, packing: true },
      steps: 60,
      tokens: 1_966_080,
      finalLoss: 0.8123,
      finalEvalLoss: null,
      losses: [
        { step: 1, loss: 1.9 },
        { step: 60, loss: 0.8123 },
      ],
      mergeSource: 'nf4',
      date: '2026-09-01',
    });
    expect(card.startsWith('---\nbase_model: unsloth/Meta-Llama-3.1-8B-bnb-4bit\nlibrary_name: peft\n')).toBe(true);
    for (const s of ['- base_model:adapter:unsloth/Meta-Llama-3.1-8B-bnb-4bit', '- mlabonne/FineTome-100k', '| r | 16 |', '| lora_alpha | 16 |', '| use_rslora | true |', '| scaling | 4 |', '| target_modules | q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj |', '| learning_rate | 3.00e-4 |', '| packing | true |', '| final training loss | 0.8123 |', '| 60 | 0.8123 |', 'dequantized NF4']) {
      expect(card, s).toContain(s);
    }
    expect(card).not.toContain('eval loss');
  });

  it('the zip holds the three files, unchanged', async () => {
    const p = await loadParity('llama');
    const adapter = randomAdapter(p.arch, { ...settings, r: 4 }, 3);
    const zipped = await collectBytes(peftAdapterZip(p.arch, adapter, { baseModel: 'tiny', settings: { ...settings, r: 4 } }));
    const files = unzipSync(zipped);
    expect(Object.keys(files).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    const st = await openSafetensors(bytesSource(files['adapter_model.safetensors']));
    expect(st.tensors.length).toBe(28);
    expect(firstDiff(await st.readF32('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'), adapter.modules.get('model.layers.0.self_attn.q_proj')!.a)).toBe(-1);
    expect(JSON.parse(new TextDecoder().decode(files['adapter_config.json'])).r).toBe(4);
  });

  it('refuses settings that do not fit the model before writing anything', async () => {
    const p = await loadParity('llama');
    expect(() => loraTargets(p.arch, { ...settings, targetModules: ['qkv_proj'] })).toThrow(/not a linear of this model/);
    expect(() => loraTargets(p.arch, { ...settings, targetModules: [] })).toThrow(/empty/);
    const adapter = randomAdapter(p.arch, { ...settings, r: 4 }, 3);
    adapter.modules.delete('model.layers.1.mlp.up_proj');
    expect(() => peftAdapterFiles(p.arch, adapter)).toThrow(/no weights for model.layers.1.mlp.up_proj/);
  });
});

// Merging an adapter into the base weights (f32 on the CPU, against a float64 merge), and the merged
// 16-bit export: shards, index, config, generation config, tokenizer files, re-read with the
// safetensors reader. That llama.cpp gets PyTorch's LoRA logits from the merged weights is in
// tests/gguf-llama.test.ts.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16 } from '../src/io/dtype.ts';
import { fileBytes, type ExportFile } from '../src/io/export-files.ts';
import { exportTokenizerFiles, mergedConfig, mergedConfigText, mergedModelFiles, renameToken } from '../src/io/export-merged.ts';
import { mergeLora, mergeLoraF64, mergedWeights } from '../src/io/merge.ts';
import { loraScaling, loraTargets, readPeftAdapter } from '../src/io/peft.ts';
import { bytesSource, openSafetensors, openShardedSafetensors, parseShardIndex, type ByteSource } from '../src/io/safetensors.ts';
import { CHATML_SOURCE } from '../src/data/templates.ts';
import { DEMO, PARITY_VARIANTS, gaussian, loadParity, readJson } from './fixtures/gguf/helpers.ts';
import { firstDiff } from './fixtures/gguf/helpers.ts';

describe('merge W + scale * B A', () => {
  for (const variant of PARITY_VARIANTS) {
    it(`${variant}: f32 merge of the fixture's PEFT adapter equals a float64 merge`, async () => {
      const p = await loadParity(variant);
      const { adapter } = await readPeftAdapter({ config: p.adapterConfig, weights: p.adapter }, p.arch);
      const scale = loraScaling(adapter.settings);
      expect(scale).toBeCloseTo(16 / Math.sqrt(8), 12); // r 8, alpha 16, rsLoRA
      const merged = mergedWeights(p.arch, { read: (n) => p.model.readF32(n) }, adapter);
      let worst = 0;
      let changed = 0;
      for (const t of loraTargets(p.arch, adapter.settings)) {
        const name = `${t.path}.weight`;
        const w = await p.model.readF32(name);
        const got = await merged.read(name);
        const m = adapter.modules.get(t.path)!;
        const want = mergeLoraF64(w, m.a, m.b, t.linear.out, t.linear.in, adapter.settings.r, scale);
        let maxAbs = 0;
        for (let i = 0; i < want.length; i++) maxAbs = Math.max(maxAbs, Math.abs(want[i]));
        for (let i = 0; i < want.length; i++) {
          worst = Math.max(worst, Math.abs(got[i] - want[i]) / maxAbs);
          if (got[i] !== w[i]) changed++;
        }
      }
      // f32 rounding of W' itself is 6e-8 relative; the f32 sum adds a little.
      expect(worst).toBeLessThan(3e-7);
      expect(changed).toBeGreaterThan(0);
      // Tensors that are not LoRA targets pass through untouched.
      expect(firstDiff(await merged.read('model.norm.weight'), await p.model.readF32('model.norm.weight'))).toBe(-1);
      expect(firstDiff(await merged.read('model.embed_tokens.weight'), await p.model.readF32('model.embed_tokens.weight'))).toBe(-1);
    });
  }

  it('B = 0 (a fresh adapter) leaves W as it is; shapes are checked', () => {
    const w = gaussian(6 * 5, 1);
    expect(mergeLora(w, gaussian(2 * 5, 2), new Float32Array(6 * 2), 6, 5, 2, 4)).toEqual(w);
    expect(() => mergeLora(w, gaussian(2 * 5, 2), new Float32Array(5), 6, 5, 2, 4)).toThrow(/B has 5 values, expected \[6, 2\]/);
    // In place.
    const a = gaussian(2 * 5, 3);
    const b = gaussian(6 * 2, 4);
    const copy = w.slice();
    const out = mergeLora(copy, a, b, 6, 5, 2, 0.5, copy);
    expect(out).toBe(copy);
    expect(out).toEqual(mergeLora(w, a, b, 6, 5, 2, 0.5));
  });
});

// ---------------------------------------------------------------------------------------------

function filesByName(files: ExportFile[]): Map<string, ExportFile> {
  return new Map(files.map((f) => [f.name, f]));
}

async function source(f: ExportFile): Promise<ByteSource> {
  return bytesSource(await fileBytes(f), f.name);
}

describe('merged 16-bit export', () => {
  const tokenizerJson = readJson(join(DEMO, 'tokenizer.json'));
  const tokenizerConfig = readJson(join(DEMO, 'tokenizer_config.json'));

  it('bf16, one file: re-opens with the reader, values are bf16(merged f32), files and config as transformers expects', async () => {
    const p = await loadParity('llama');
    const { adapter } = await readPeftAdapter({ config: p.adapterConfig, weights: p.adapter }, p.arch);
    const weights = mergedWeights(p.arch, { read: (n) => p.model.readF32(n) }, adapter);
    const files = mergedModelFiles({
      tensors: p.model.tensors.map((t) => ({ name: t.name, shape: t.shape })),
      weights,
      dtype: 'bfloat16',
      config: { ...p.config, quantization_config: { quant_method: 'bitsandbytes' } },
      tokenizerJson,
      tokenizerConfig,
      chatTemplate: CHATML_SOURCE,
    });
    const by = filesByName(files);
    expect(files.map((f) => f.name)).toEqual(['model.safetensors', 'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']);
    const model = by.get('model.safetensors')!;
    const bytes = await fileBytes(model);
    expect(bytes.length).toBe(model.size);
    const st = await openSafetensors(bytesSource(bytes));
    expect(st.metadata).toEqual({ format: 'pt' });
    expect(st.tensors.length).toBe(p.model.tensors.length);
    for (const t of st.tensors) {
      expect(t.dtype).toBe('BF16');
      expect(t.shape).toEqual(p.model.get(t.name).shape);
      expect(firstDiff(await st.readF32(t.name), bf16ArrayToF32(f32ArrayToBf16(await weights.read(t.name)))), t.name).toBe(-1);
    }
    const config = JSON.parse(new TextDecoder().decode(await fileBytes(by.get('config.json')!)));
    expect(config.quantization_config).toBeUndefined();
    expect([config.dtype, config.torch_dtype]).toEqual(['bfloat16', 'bfloat16']); // transformers 5 reads "dtype", 4.x "torch_dtype"
    expect(config.hidden_size).toBe(64);
    const gen = JSON.parse(new TextDecoder().decode(await fileBytes(by.get('generation_config.json')!)));
    expect(gen).toEqual({ _from_model_config: true, bos_token_id: 1, eos_token_id: 2 });
    const tc = JSON.parse(new TextDecoder().decode(await fileBytes(by.get('tokenizer_config.json')!)));
    expect(tc.chat_template).toBe(CHATML_SOURCE);
  });

  it('f16 in shards: model-0000i-of-0000n.safetensors + model.safetensors.index.json; tied embeddings drop lm_head', async () => {
    const p = await loadParity('llama3-tied');
    const names = p.model.tensors.map((t) => ({ name: t.name, shape: t.shape }));
    names.push({ name: 'lm_head.weight', shape: [256, 64] }); // as if the checkpoint had stored it
    const weights = { read: (n: string) => p.model.readF32(n === 'lm_head.weight' ? 'model.embed_tokens.weight' : n) };
    const files = mergedModelFiles({ tensors: names, weights, dtype: 'float16', config: p.config, generationConfig: { do_sample: false }, tokenizerJson, tokenizerConfig, maxShardBytes: 40_000 });
    const shards = files.filter((f) => f.name.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(2);
    expect(shards.map((f) => f.name)[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    const index = parseShardIndex(new TextDecoder().decode(await fileBytes(files.find((f) => f.name === 'model.safetensors.index.json')!)));
    expect([...index.weightMap.keys()]).not.toContain('lm_head.weight');
    expect(index.weightMap.size).toBe(p.model.tensors.length);
    const sources = new Map<string, ByteSource>();
    for (const s of shards) sources.set(s.name, await source(s));
    const sharded = await openShardedSafetensors(index, async (file) => sources.get(file)!);
    for (const t of p.model.tensors) {
      expect(sharded.get(t.name).dtype).toBe('F16');
      expect(firstDiff(await sharded.readF32(t.name), f16ArrayToF32(f32ArrayToF16(await p.model.readF32(t.name)))), t.name).toBe(-1);
    }
    const config = JSON.parse(new TextDecoder().decode(await fileBytes(files.find((f) => f.name === 'config.json')!)));
    expect(config.dtype).toBe('float16');
    const gen = JSON.parse(new TextDecoder().decode(await fileBytes(files.find((f) => f.name === 'generation_config.json')!)));
    expect(gen).toEqual({ do_sample: false });
  });

  it('config.json: quantization_config dropped, dtype and torch_dtype set', () => {
    expect(mergedConfig({ torch_dtype: 'float16', quantization_config: {}, hidden_size: 8 }, 'bfloat16')).toEqual({ torch_dtype: 'bfloat16', dtype: 'bfloat16', hidden_size: 8 });
    expect(mergedConfig({ hidden_size: 8 }, 'float16')).toEqual({ hidden_size: 8, dtype: 'float16', torch_dtype: 'float16' });
  });

  it('config.json keeps the numbers as the source text wrote them: 8.0 stays 8.0 (transformers reads 8 as an int), 1e-05 stays 1e-05', async () => {
    // As transformers writes a Llama 3.1 config (json.dumps: floats keep their ".0").
    const source = `{
  "architectures": ["LlamaForCausalLM"],
  "hidden_size": 64,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0,
  "initializer_range": 0.02,
  "eos_token_id": [128001, 128008.0],
  "quantization_config": {"bnb_4bit_compute_dtype": "bfloat16", "llm_int8_threshold": 6.0},
  "a \\"quoted\\" key, {[1.0]}": -0.0,
  "torch_dtype": "float32"
}`;
    const config = JSON.parse(source) as Record<string, unknown>;
    const text = mergedConfigText(config, 'bfloat16', source);
    expect(text).toContain('"factor": 8.0,');
    expect(text).toContain('"high_freq_factor": 4.0,');
    expect(text).toContain('"low_freq_factor": 1.0,');
    expect(text).toContain('"original_max_position_embeddings": 8192,');
    expect(text).toContain('"rms_norm_eps": 1e-05,');
    expect(text).toContain('"rope_theta": 500000.0,');
    expect(text).toContain('"initializer_range": 0.02,');
    expect(text).toMatch(/"eos_token_id": \[\s+128001,\s+128008.0\s+\]/);
    expect(text).toContain('"a \\"quoted\\" key, {[1.0]}": -0.0,');
    expect(text).not.toContain('quantization_config');
    // The same values as mergedConfig, in the same layout apart from the numbers.
    expect(JSON.parse(text)).toEqual(mergedConfig(config, 'bfloat16'));
    expect(text.replace(/: (8\.0|4\.0|1\.0|1e-05|500000\.0|-0\.0),/g, (_, m: string) => `: ${Number(m)},`).replace('128008.0', '128008')).toBe(mergedConfigText(config, 'bfloat16'));
    // A changed value is written fresh; without the text (or with text that is not the config's JSON), JSON.stringify's numbers.
    expect(mergedConfigText({ ...config, rope_theta: 1e6 }, 'bfloat16', source)).toContain('"rope_theta": 1000000,');
    expect(mergedConfigText(config, 'bfloat16')).toContain('"factor": 8,');
    expect(mergedConfigText(config, 'bfloat16', '{"rope_scaling": {"factor": 8.0')).toContain('"factor": 8,');
    // Through the merged export's files.
    const p = await loadParity('llama');
    const tensors = p.model.tensors.slice(0, 1).map((t) => ({ name: t.name, shape: t.shape }));
    const files = mergedModelFiles({ tensors, weights: { read: (n) => p.model.readF32(n) }, dtype: 'float16', config, configText: source, tokenizerJson, tokenizerConfig });
    expect(new TextDecoder().decode(await fileBytes(files.find((f) => f.name === 'config.json')!))).toBe(mergedConfigText(config, 'float16', source));
  });

  it("Unsloth's EOS rename in tokenizer files (the two texts swap when both exist); the template is set, not rewritten", () => {
    const llama3ish = {
      added_tokens: [
        { id: 5, content: '<|begin_of_text|>', special: true },
        { id: 6, content: '<|end_of_text|>', special: true },
      ],
      model: { type: 'BPE', vocab: { a: 0, '<|begin_of_text|>': 5, '<|end_of_text|>': 6 }, merges: [] },
      post_processor: { type: 'TemplateProcessing', special_tokens: { '<|begin_of_text|>': { ids: [5] } } },
    };
    const cfg = { eos_token: '<|end_of_text|>', bos_token: '<|begin_of_text|>', added_tokens_decoder: { '6': { content: '<|end_of_text|>', special: true } }, chat_template: 'old' };
    const out = exportTokenizerFiles(llama3ish, cfg, CHATML_SOURCE, { from: '<|end_of_text|>', to: '<|im_end|>' });
    const tj = out.tokenizerJson as typeof llama3ish;
    expect(tj.added_tokens[1].content).toBe('<|im_end|>');
    expect(Object.keys(tj.model.vocab)).toEqual(['a', '<|begin_of_text|>', '<|im_end|>']);
    expect(out.tokenizerConfig.eos_token).toBe('<|im_end|>');
    expect((out.tokenizerConfig.added_tokens_decoder as Record<string, { content: string }>)['6'].content).toBe('<|im_end|>');
    expect(out.tokenizerConfig.chat_template).toBe(CHATML_SOURCE);
    // Swap when the target text exists already.
    expect(renameToken({ a: '<x>', b: '<y>', c: 'pre <x> post' }, '<x>', '<y>')).toEqual({ a: '<y>', b: '<x>', c: 'pre <y> post' });
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  allTensorSpecs,
  describeArch,
  isSkippedModule,
  LINEAR_NAMES,
  ModelConfigError,
  type ModelArch,
  parseModelConfig,
  ropeInverseFrequencies,
  tensorNames,
  tensorSpecs,
  UnsupportedModelError,
} from '../src/engine/arch.ts';

// Fixtures in tests/fixtures/configs/ are hand-written mirrors of the public config.json files of
// the models their names give (owner--name.json). Sources and confidence:
// - meta-llama Llama-3.1-8B(-Instruct), Llama-3.2-1B/3B: formats.md §7 table + the published configs.
// - unsloth--Meta-Llama-3.1-8B-bnb-4bit: the base config + quantization_config as described in
//   formats.md §3 for older unsloth uploads (no _load_in_* / bnb_4bit_quant_storage); pad 128004
//   per landscape.md §0. Version strings left out.
// - SmolLM2-135M, SmolLM2-1.7B-Instruct, TinyLlama-1.1B-Chat-v1.0, Llama-2-7b-hf, Mistral-7B
//   v0.1/v0.3, Qwen2.5-0.5B, Qwen2.5-1.5B-Instruct, Qwen3-0.6B: full configs.
// - SmolLM2-360M.trimmed: only the architecture fields (the rest of that file is not needed here).
// - gemma-2-2b, Phi-3-mini-4k-instruct, Llama-3.2-11B-Vision.abridged: refusal tests only.
// - webtune--demo-tiny-llama: a copy of public/demo/model/config.json (the embedded demo).
// The parameter totals below are the models' published sizes (e.g. 8,030,261,248 for Llama 3.1
// 8B, 1,235,814,400 for Llama 3.2 1B, 494,032,768 for Qwen2.5-0.5B, 134,515,008 for SmolLM2-135M):
// they check the shapes independently of the code that derives them.

function fixture(name: string): unknown {
  return JSON.parse(readFileSync(new URL(`./fixtures/configs/${name}.json`, import.meta.url), 'utf8'));
}
function arch(name: string): ModelArch {
  return parseModelConfig(fixture(name));
}
function withFields(name: string, patch: Record<string, unknown>): Record<string, unknown> {
  return { ...(fixture(name) as Record<string, unknown>), ...patch };
}
function shapes(a: ModelArch): Record<string, [number, number]> {
  return Object.fromEntries(a.linears.map((l) => [l.name, [l.out, l.in]]));
}

const SUPPORTED_MSG = 'supported: llama (Llama 2/3/3.1/3.2, SmolLM, TinyLlama), mistral, qwen2, qwen3';

describe('parseModelConfig: supported models', () => {
  it('Llama 3.1 8B', () => {
    const a = arch('meta-llama--Llama-3.1-8B');
    expect(a).toMatchObject({
      family: 'llama',
      modelType: 'llama',
      architectures: ['LlamaForCausalLM'],
      vocabSize: 128256,
      hidden: 4096,
      intermediate: 14336,
      layers: 32,
      heads: 32,
      kvHeads: 8,
      headDim: 128,
      rmsNormEps: 1e-5,
      ropeTheta: 500000,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
      maxPositions: 131072,
      tiedEmbeddings: false,
      attentionBias: false,
      qkNorm: false,
      slidingWindow: null,
      bosTokenId: 128000,
      eosTokenIds: [128001],
      padTokenId: null,
      torchDtype: 'bfloat16',
      quantization: { method: 'none' },
      defaulted: [],
    });
    expect(shapes(a)).toEqual({
      q_proj: [4096, 4096],
      k_proj: [1024, 4096],
      v_proj: [1024, 4096],
      o_proj: [4096, 4096],
      gate_proj: [14336, 4096],
      up_proj: [14336, 4096],
      down_proj: [4096, 14336],
    });
    expect(a.linears.map((l) => l.name)).toEqual(LINEAR_NAMES);
    expect(a.linears.every((l) => !l.bias)).toBe(true);
    // 218,103,808 linear + 8,192 norm per layer; 525,336,576 embedding and lm_head each.
    expect(a.params).toEqual({
      embedding: 525_336_576,
      lmHead: 525_336_576,
      finalNorm: 4096,
      perLayer: { linear: 218_103_808, bias: 0, norm: 8192, total: 218_112_000 },
      layers: 6_979_584_000,
      linear: 6_979_321_856,
      total: 8_030_261_248,
    });
    expect(describeArch(a)).toBe('llama, 32 layers, hidden 4096, 32/8 heads, vocab 128256, 8.03 B params, RoPE llama3 x8');
  });

  it('Llama 3.1 8B Instruct: eos is a list', () => {
    expect(arch('meta-llama--Llama-3.1-8B-Instruct').eosTokenIds).toEqual([128001, 128008, 128009]);
  });

  it('unsloth Llama 3.1 8B bnb-4bit: NF4 with double quant', () => {
    const a = arch('unsloth--Meta-Llama-3.1-8B-bnb-4bit');
    expect(a.quantization).toEqual({ method: 'bnb-nf4', doubleQuant: true, computeDtype: 'bfloat16', skipModules: [] });
    expect(a.padTokenId).toBe(128004);
    expect(a.params.total).toBe(8_030_261_248);
    expect(describeArch(a)).toContain('NF4 (bnb, double quant)');
  });

  it('Llama 3.2 1B and 3B: tied embeddings, explicit head_dim, llama3 factor 32', () => {
    const one = arch('meta-llama--Llama-3.2-1B');
    expect(one).toMatchObject({ hidden: 2048, layers: 16, heads: 32, kvHeads: 8, headDim: 64, tiedEmbeddings: true });
    expect(one.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
    expect(one.params.lmHead).toBe(0);
    expect(one.params.total).toBe(1_235_814_400);
    const three = arch('meta-llama--Llama-3.2-3B');
    expect(three).toMatchObject({ hidden: 3072, intermediate: 8192, layers: 28, heads: 24, kvHeads: 8, headDim: 128 });
    expect(three.params.total).toBe(3_212_749_824);
  });

  it('SmolLM2 135M / 360M / 1.7B (llama family, tied, no rope scaling)', () => {
    const s = arch('HuggingFaceTB--SmolLM2-135M');
    expect(s).toMatchObject({ family: 'llama', hidden: 576, heads: 9, kvHeads: 3, headDim: 64, ropeTheta: 100000, tiedEmbeddings: true });
    expect(s.ropeScaling).toEqual({ type: 'none' });
    expect(s.bosTokenId).toBe(0);
    expect(s.eosTokenIds).toEqual([0]);
    expect(s.params.total).toBe(134_515_008);
    const m = arch('HuggingFaceTB--SmolLM2-360M.trimmed');
    expect(m).toMatchObject({ hidden: 960, heads: 15, kvHeads: 5, headDim: 64, layers: 32 });
    expect(m.params.total).toBe(361_821_120);
    // The trimmed fixture leaves out bos/eos and attention_bias: nothing is invented for them.
    expect(m.bosTokenId).toBeNull();
    expect(m.eosTokenIds).toEqual([]);
    const l = arch('HuggingFaceTB--SmolLM2-1.7B-Instruct');
    expect(l).toMatchObject({ hidden: 2048, heads: 32, kvHeads: 32, layers: 24, ropeTheta: 130000, padTokenId: 2 });
    expect(l.params.total).toBe(1_711_376_384);
  });

  it('TinyLlama 1.1B and Llama 2 7B (Llama 2 style)', () => {
    const t = arch('TinyLlama--TinyLlama-1.1B-Chat-v1.0');
    expect(t).toMatchObject({ hidden: 2048, intermediate: 5632, layers: 22, heads: 32, kvHeads: 4, vocabSize: 32000, maxPositions: 2048 });
    expect(t.ropeScaling).toEqual({ type: 'none' });
    expect(t.params.total).toBe(1_100_048_384);
    const l2 = arch('meta-llama--Llama-2-7b-hf');
    // No rope_theta in the Llama 2 config: transformers' default 10000.
    expect(l2.ropeTheta).toBe(10000);
    expect(l2.defaulted).toEqual(['rope_theta']);
    expect(l2).toMatchObject({ kvHeads: 32, torchDtype: 'float16', maxPositions: 4096 });
    expect(l2.params.total).toBe(6_738_415_616);
  });

  it('Mistral 7B v0.1 (sliding window 4096) and v0.3 (none)', () => {
    const v1 = arch('mistralai--Mistral-7B-v0.1');
    expect(v1).toMatchObject({ family: 'mistral', slidingWindow: 4096, ropeTheta: 10000, vocabSize: 32000, kvHeads: 8, headDim: 128 });
    expect(v1.params.total).toBe(7_241_732_096);
    expect(tensorNames(v1, 0)).toContain('model.layers.0.mlp.gate_proj.weight');
    const v3 = arch('mistralai--Mistral-7B-v0.3');
    expect(v3).toMatchObject({ slidingWindow: null, ropeTheta: 1_000_000, vocabSize: 32768 });
    expect(v3.params.total).toBe(7_248_023_552);
  });

  it('Qwen2.5 0.5B / 1.5B: q/k/v biases, tied, sliding window unused', () => {
    const q = arch('Qwen--Qwen2.5-0.5B');
    expect(q).toMatchObject({ family: 'qwen2', hidden: 896, heads: 14, kvHeads: 2, headDim: 64, rmsNormEps: 1e-6, tiedEmbeddings: true });
    expect(q.slidingWindow).toBeNull();
    expect(q.attentionBias).toBe(true);
    expect(q.linears.filter((l) => l.bias).map((l) => l.name)).toEqual(['q_proj', 'k_proj', 'v_proj']);
    expect(q.params.perLayer.bias).toBe(896 + 128 + 128);
    expect(q.params.total).toBe(494_032_768);
    const q15 = arch('Qwen--Qwen2.5-1.5B-Instruct');
    expect(q15).toMatchObject({ hidden: 1536, intermediate: 8960, layers: 28, heads: 12, kvHeads: 2, headDim: 128 });
    expect(q15.eosTokenIds).toEqual([151645]);
    expect(q15.params.total).toBe(1_543_714_304);
  });

  it('Qwen3 0.6B: head_dim 128 != hidden/heads, q_norm/k_norm', () => {
    const q = arch('Qwen--Qwen3-0.6B');
    expect(q).toMatchObject({ family: 'qwen3', hidden: 1024, heads: 16, kvHeads: 8, headDim: 128, qkNorm: true, attentionBias: false });
    expect(shapes(q)).toMatchObject({ q_proj: [2048, 1024], k_proj: [1024, 1024], o_proj: [1024, 2048] });
    expect(q.params.perLayer.norm).toBe(2 * 1024 + 2 * 128);
    // 440,466,432 non-embedding (the model card's "0.44B") + 155,582,464 embedding + final norm.
    expect(q.params.layers).toBe(440_466_432);
    expect(q.params.total).toBe(596_049_920);
  });

  it('the embedded demo model', () => {
    const d = arch('webtune--demo-tiny-llama');
    expect(d).toMatchObject({ hidden: 64, intermediate: 172, layers: 2, heads: 4, kvHeads: 2, headDim: 16, vocabSize: 512 });
    expect(d.params.total).toBe(156_480); // public/demo/manifest.json "params"
  });
});

describe('tensor names (transformers state dict)', () => {
  it('llama layer and model-level tensors', () => {
    const a = arch('meta-llama--Llama-3.1-8B');
    expect(tensorNames(a, 3)).toEqual([
      'model.layers.3.input_layernorm.weight',
      'model.layers.3.self_attn.q_proj.weight',
      'model.layers.3.self_attn.k_proj.weight',
      'model.layers.3.self_attn.v_proj.weight',
      'model.layers.3.self_attn.o_proj.weight',
      'model.layers.3.mlp.gate_proj.weight',
      'model.layers.3.mlp.up_proj.weight',
      'model.layers.3.mlp.down_proj.weight',
      'model.layers.3.post_attention_layernorm.weight',
    ]);
    expect(tensorSpecs(a)).toEqual([
      { name: 'model.embed_tokens.weight', shape: [128256, 4096], kind: 'embedding' },
      { name: 'model.norm.weight', shape: [4096], kind: 'norm' },
      { name: 'lm_head.weight', shape: [128256, 4096], kind: 'lm_head' },
    ]);
    expect(tensorSpecs(a, 0).find((t) => t.linear === 'down_proj')).toEqual({
      name: 'model.layers.0.mlp.down_proj.weight',
      shape: [4096, 14336],
      kind: 'linear',
      linear: 'down_proj',
    });
    expect(() => tensorSpecs(a, 32)).toThrow(RangeError);
  });

  it('tied models have no lm_head.weight', () => {
    expect(tensorNames(arch('meta-llama--Llama-3.2-1B'))).toEqual(['model.embed_tokens.weight', 'model.norm.weight']);
  });

  it('qwen2 biases, qwen3 q_norm/k_norm', () => {
    const q2 = tensorNames(arch('Qwen--Qwen2.5-0.5B'), 0);
    expect(q2).toContain('model.layers.0.self_attn.q_proj.bias');
    expect(q2).toContain('model.layers.0.self_attn.k_proj.bias');
    expect(q2).toContain('model.layers.0.self_attn.v_proj.bias');
    expect(q2).not.toContain('model.layers.0.self_attn.o_proj.bias');
    const q3 = tensorSpecs(arch('Qwen--Qwen3-0.6B'), 1);
    expect(q3.find((t) => t.name === 'model.layers.1.self_attn.q_norm.weight')?.shape).toEqual([128]);
    expect(q3.find((t) => t.name === 'model.layers.1.self_attn.k_norm.weight')?.shape).toEqual([128]);
    expect(q3.some((t) => t.kind === 'bias')).toBe(false);
  });

  it('all tensors add up to the parameter count', () => {
    for (const name of ['meta-llama--Llama-3.2-1B', 'Qwen--Qwen2.5-0.5B', 'Qwen--Qwen3-0.6B', 'webtune--demo-tiny-llama']) {
      const a = arch(name);
      const specs = allTensorSpecs(a);
      expect(new Set(specs.map((t) => t.name)).size).toBe(specs.length);
      expect(specs.reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1), 0)).toBe(a.params.total);
    }
  });
});

describe('refusals (from config.json only)', () => {
  it.each([
    ['google--gemma-2-2b', 'architecture gemma2 (Gemma2ForCausalLM) is not supported yet; '],
    ['microsoft--Phi-3-mini-4k-instruct', 'architecture phi3 (Phi3ForCausalLM) is not supported yet; '],
    ['meta-llama--Llama-3.2-11B-Vision.abridged', 'architecture mllama (MllamaForConditionalGeneration) is not supported yet; '],
  ])('%s', (name, start) => {
    let err: unknown;
    try {
      arch(name);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedModelError);
    expect((err as UnsupportedModelError).reason).toBe('architecture');
    expect((err as Error).message).toBe(start + SUPPORTED_MSG);
  });

  it('a supported model_type with another head', () => {
    const cfg = withFields('meta-llama--Llama-3.1-8B', { architectures: ['LlamaForSequenceClassification'] });
    expect(() => parseModelConfig(cfg)).toThrow(/LlamaForSequenceClassification is not supported yet: only LlamaForCausalLM/);
  });

  it('no model_type: the class name decides', () => {
    const cfg = withFields('Qwen--Qwen2.5-0.5B', { model_type: undefined });
    expect(parseModelConfig(cfg).family).toBe('qwen2');
    expect(() => parseModelConfig(withFields('google--gemma-2-2b', { model_type: undefined }))).toThrow(
      'architecture Gemma2ForCausalLM is not supported yet',
    );
  });

  it.each([
    [{ quant_method: 'gptq', bits: 4, group_size: 128, desc_act: false, sym: true }, 'GPTQ checkpoints are not supported; pick the original model or a bitsandbytes 4-bit (bnb-4bit) one'],
    [{ quant_method: 'awq', bits: 4, group_size: 128, zero_point: true, version: 'gemm' }, 'AWQ checkpoints are not supported; pick the original model or a bitsandbytes 4-bit (bnb-4bit) one'],
    [{ quant_method: 'fbgemm_fp8' }, 'FP8 (fbgemm) checkpoints are not supported'],
    [{ quant_method: 'bitsandbytes', load_in_8bit: true, load_in_4bit: false }, 'bitsandbytes 8-bit (LLM.int8) checkpoints are not supported'],
    [{ quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'fp4' }, 'bitsandbytes 4-bit "fp4" checkpoints are not supported (only nf4)'],
    [{ quant_method: 'bitsandbytes', load_in_4bit: true }, 'bitsandbytes 4-bit "fp4"'], // BitsAndBytesConfig's default type
    [{ quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_quant_storage: 'bfloat16' }, 'bnb_4bit_quant_storage "bfloat16"'],
  ])('quantization %j', (qc, message) => {
    const cfg = withFields('meta-llama--Llama-2-7b-hf', { quantization_config: qc });
    expect(() => parseModelConfig(cfg)).toThrow(UnsupportedModelError);
    expect(() => parseModelConfig(cfg)).toThrow(message);
  });

  it('bnb nf4 variants: newer keys, skip modules, defaults', () => {
    const newer = withFields('meta-llama--Llama-3.1-8B', {
      quantization_config: {
        _load_in_4bit: true,
        _load_in_8bit: false,
        bnb_4bit_compute_dtype: 'float16',
        bnb_4bit_quant_storage: 'uint8',
        bnb_4bit_quant_type: 'nf4',
        bnb_4bit_use_double_quant: false,
        llm_int8_enable_fp32_cpu_offload: false,
        llm_int8_has_fp16_weight: false,
        llm_int8_skip_modules: ['lm_head', 'model.layers.1.mlp'],
        llm_int8_threshold: 6.0,
        load_in_4bit: true,
        load_in_8bit: false,
        quant_method: 'bitsandbytes',
      },
    });
    expect(parseModelConfig(newer).quantization).toEqual({
      method: 'bnb-nf4',
      doubleQuant: false,
      computeDtype: 'float16',
      skipModules: ['lm_head', 'model.layers.1.mlp'],
    });
  });

  it('skip-module matching works on whole path segments', () => {
    const skip = ['lm_head', 'model.layers.1.mlp'];
    expect(isSkippedModule(skip, 'model.layers.1.mlp.down_proj')).toBe(true);
    expect(isSkippedModule(skip, 'model.layers.11.mlp.down_proj')).toBe(false);
    expect(isSkippedModule(skip, 'model.layers.1.self_attn.q_proj')).toBe(false);
    expect(isSkippedModule(skip, 'lm_head')).toBe(true);
    expect(isSkippedModule(['q_proj'], 'model.layers.0.self_attn.q_proj')).toBe(true);
  });

  it.each([
    [{ rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 } }, 'RoPE scaling "yarn" (rope_scaling) is not supported; supported: none, linear, llama3'],
    [{ rope_scaling: { type: 'dynamic', factor: 2 } }, 'RoPE scaling "dynamic"'],
    [{ rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [1] } }, 'RoPE scaling "longrope"'],
  ])('rope %j', (patch, message) => {
    expect(() => parseModelConfig(withFields('TinyLlama--TinyLlama-1.1B-Chat-v1.0', patch))).toThrow(message);
  });

  it('features the engine lacks', () => {
    expect(() => parseModelConfig(withFields('TinyLlama--TinyLlama-1.1B-Chat-v1.0', { mlp_bias: true }))).toThrow('mlp_bias: true is not supported');
    expect(() => parseModelConfig(withFields('TinyLlama--TinyLlama-1.1B-Chat-v1.0', { hidden_act: 'gelu' }))).toThrow('hidden_act "gelu" is not supported');
    expect(() => parseModelConfig(withFields('Qwen--Qwen2.5-0.5B', { use_sliding_window: true }))).toThrow('use_sliding_window: true is not supported for qwen2');
  });
});

describe('RoPE variants and older/newer config shapes', () => {
  it('linear scaling, old "type" key', () => {
    const a = parseModelConfig(withFields('TinyLlama--TinyLlama-1.1B-Chat-v1.0', { rope_scaling: { type: 'linear', factor: 2.0 } }));
    expect(a.ropeScaling).toEqual({ type: 'linear', factor: 2 });
    // theta 10000, head_dim 64, i = 5: 10000^(-10/64) / 2
    expect(ropeInverseFrequencies(a)[5]).toBeCloseTo(0.11856868528308277, 15);
  });

  it('transformers 5 rope_parameters and dtype', () => {
    const base = withFields('meta-llama--Llama-3.2-1B', { rope_theta: undefined, rope_scaling: undefined, torch_dtype: undefined });
    const a = parseModelConfig({
      ...base,
      dtype: 'bfloat16',
      rope_parameters: { rope_type: 'llama3', rope_theta: 500000.0, factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 },
    });
    expect(a.ropeTheta).toBe(500000);
    expect(a.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
    expect(a.torchDtype).toBe('bfloat16');
    const d = parseModelConfig({ ...withFields('HuggingFaceTB--SmolLM2-135M', { rope_theta: undefined, rope_scaling: undefined }), rope_parameters: { rope_type: 'default', rope_theta: 100000 } });
    expect(d.ropeTheta).toBe(100000);
    expect(d.ropeScaling).toEqual({ type: 'none' });
  });

  it('missing optional fields take transformers defaults and are listed', () => {
    const cfg = withFields('TinyLlama--TinyLlama-1.1B-Chat-v1.0', {
      num_key_value_heads: undefined,
      rms_norm_eps: undefined,
      max_position_embeddings: undefined,
      tie_word_embeddings: undefined,
    });
    const a = parseModelConfig(cfg);
    expect(a).toMatchObject({ kvHeads: 32, rmsNormEps: 1e-6, maxPositions: 2048, tiedEmbeddings: false });
    expect(a.defaulted.sort()).toEqual(['max_position_embeddings', 'num_key_value_heads', 'rms_norm_eps', 'tie_word_embeddings']);
  });
});

describe('validation names the field', () => {
  it.each([
    [{ hidden_size: undefined }, 'hidden_size', 'config.json: hidden_size is missing'],
    [{ vocab_size: '32000' }, 'vocab_size', 'config.json: vocab_size must be a positive integer (got "32000")'],
    [{ num_hidden_layers: 0 }, 'num_hidden_layers', 'must be a positive integer (got 0)'],
    [{ intermediate_size: 5632.5 }, 'intermediate_size', 'must be a positive integer'],
    [{ num_key_value_heads: 5 }, 'num_key_value_heads', 'num_attention_heads (32) must be a multiple of num_key_value_heads (5)'],
    [{ hidden_size: 2050 }, 'head_dim', 'hidden_size (2050) is not a multiple of num_attention_heads (32)'],
    [{ head_dim: 63 }, 'head_dim', 'head_dim (63) must be even'],
    [{ rms_norm_eps: -1 }, 'rms_norm_eps', 'rms_norm_eps must be a positive number'],
    [{ rope_theta: 'big' }, 'rope_theta', 'rope_theta must be a positive number'],
    [{ tie_word_embeddings: 'no' }, 'tie_word_embeddings', 'tie_word_embeddings must be true or false'],
    [{ eos_token_id: [2, 'x'] }, 'eos_token_id', 'eos_token_id must be a token id or a list of token ids'],
    [{ model_type: 7 }, 'model_type', 'model_type must be a string'],
    [{ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }, 'rope_scaling.original_max_position_embeddings', 'rope_scaling.original_max_position_embeddings is missing'],
    [{ quantization_config: { quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_compute_dtype: 'int8' } }, 'quantization_config.bnb_4bit_compute_dtype', 'bnb_4bit_compute_dtype "int8"'],
  ])('%j', (patch, field, message) => {
    let err: unknown;
    try {
      parseModelConfig(withFields('TinyLlama--TinyLlama-1.1B-Chat-v1.0', patch));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelConfigError);
    expect((err as ModelConfigError).field).toBe(field);
    expect((err as Error).message).toContain(message);
  });

  it('not an object', () => {
    expect(() => parseModelConfig(null)).toThrow('config.json must be a JSON object');
    expect(() => parseModelConfig([1])).toThrow(ModelConfigError);
    expect(() => parseModelConfig({})).toThrow('model_type is missing');
  });
});

describe('ropeInverseFrequencies', () => {
  // Hand computation (Python float64) of transformers' _compute_llama3_parameters for theta 500000,
  // head_dim 128, low 1, high 4, original 8192: inv[i] = 500000^(-i/64); wavelength 2π/inv[i]
  // is < 2048 for i <= 28 (kept), > 8192 for i >= 35 (divided by the factor), in between blended
  // with smooth = (8192/wavelength - 1)/3, e.g. i = 29: wavelength 2401.738, smooth 0.803621.
  const EXPECTED: Record<number, { unscaled: number; f8: number; f32: number }> = {
    0: { unscaled: 1, f8: 1, f32: 1 },
    28: { unscaled: 0.0032114459947525913, f8: 0.0032114459947525913, f32: 0.0032114459947525913 },
    29: { unscaled: 0.0026160992529250353, f8: 0.002166570763503359, f32: 0.002118406996779608 },
    31: { unscaled: 0.0017360467021768655, f8: 0.0008567514129196321, f32: 0.000762541203356357 },
    34: { unscaled: 0.0009384738703573801, f8: 0.00017850781276799638, f32: 9.70828780262767e-5 },
    35: { unscaled: 0.0007644969883171747, f8: 9.556212353964683e-5, f32: 2.3890530884911708e-5 },
    63: { unscaled: 2.455140791131609e-6, f8: 3.068925988914511e-7, f32: 7.672314972286278e-8 },
  };
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

  it('Llama 3.1 (factor 8) and Llama 3.2 (factor 32)', () => {
    const f8 = ropeInverseFrequencies(arch('meta-llama--Llama-3.1-8B'));
    const f32 = ropeInverseFrequencies(arch('meta-llama--Llama-3.2-3B'));
    const none = ropeInverseFrequencies({ headDim: 128, ropeTheta: 500000, ropeScaling: { type: 'none' } });
    expect(f8.length).toBe(64);
    for (const [i, e] of Object.entries(EXPECTED)) {
      expect(rel(none[+i], e.unscaled)).toBeLessThan(1e-13);
      expect(rel(f8[+i], e.f8)).toBeLessThan(1e-13);
      expect(rel(f32[+i], e.f32)).toBeLessThan(1e-13);
    }
  });

  it('matches llama.cpp rope_freqs divisors (formats.md §1.5)', () => {
    const scaled = ropeInverseFrequencies(arch('meta-llama--Llama-3.1-8B'));
    const base = ropeInverseFrequencies({ headDim: 128, ropeTheta: 500000, ropeScaling: { type: 'none' } });
    for (let i = 0; i < 64; i++) {
      const wl = (2 * Math.PI) / base[i];
      const divisor = wl < 2048 ? 1 : wl > 8192 ? 8 : 1 / ((1 - (8192 / wl - 1) / 3) / 8 + (8192 / wl - 1) / 3);
      expect(rel(base[i] / divisor, scaled[i])).toBeLessThan(1e-12);
    }
  });

  it('monotone non-increasing, and 1B head_dim 64 has 32 entries', () => {
    const f = ropeInverseFrequencies(arch('meta-llama--Llama-3.2-1B'));
    expect(f.length).toBe(32);
    for (let i = 1; i < f.length; i++) expect(f[i]).toBeLessThanOrEqual(f[i - 1]);
  });
});

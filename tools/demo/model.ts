// The demo model: a tiny random Llama (hidden 64, 2 layers, GQA 4/2 heads of 16) with transformers'
// names, shapes and initialisation: every Linear and the embedding ~ normal(0, initializer_range),
// the embedding row of pad_token_id zeroed (nn.Embedding padding_idx), RMSNorm weights ones.
// Stored in bf16 (torch_dtype "bfloat16"), like a model saved with .to(torch.bfloat16).

import { f32ArrayToBf16, u16ToBytesLE } from '../../src/io/dtype.ts';
import type { TensorToWrite } from '../../src/io/safetensors.ts';
import type { Rng } from './prng.ts';

export interface DemoModelConfig {
  vocabSize: number;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
}

export const HIDDEN = 64;
export const INTERMEDIATE = 172; // ~ 8/3 * 64, rounded to a multiple of 4 (not of 8: edge cases)
export const LAYERS = 2;
export const HEADS = 4;
export const KV_HEADS = 2;
export const HEAD_DIM = 16;
export const INIT_STD = 0.02;

export function llamaConfig(c: DemoModelConfig): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId,
    head_dim: HEAD_DIM,
    hidden_act: 'silu',
    hidden_size: HIDDEN,
    initializer_range: INIT_STD,
    intermediate_size: INTERMEDIATE,
    max_position_embeddings: 512,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: HEADS,
    num_hidden_layers: LAYERS,
    num_key_value_heads: KV_HEADS,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 10000.0,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    use_cache: true,
    vocab_size: c.vocabSize,
  };
}

export function generationConfig(c: DemoModelConfig): Record<string, unknown> {
  return {
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId,
    do_sample: false,
  };
}

/** [name, shape] of every weight, in transformers' module order. */
export function llamaTensorShapes(vocabSize: number): [string, number[]][] {
  const out: [string, number[]][] = [['model.embed_tokens.weight', [vocabSize, HIDDEN]]];
  for (let i = 0; i < LAYERS; i++) {
    const p = `model.layers.${i}`;
    out.push(
      [`${p}.self_attn.q_proj.weight`, [HEADS * HEAD_DIM, HIDDEN]],
      [`${p}.self_attn.k_proj.weight`, [KV_HEADS * HEAD_DIM, HIDDEN]],
      [`${p}.self_attn.v_proj.weight`, [KV_HEADS * HEAD_DIM, HIDDEN]],
      [`${p}.self_attn.o_proj.weight`, [HIDDEN, HEADS * HEAD_DIM]],
      [`${p}.mlp.gate_proj.weight`, [INTERMEDIATE, HIDDEN]],
      [`${p}.mlp.up_proj.weight`, [INTERMEDIATE, HIDDEN]],
      [`${p}.mlp.down_proj.weight`, [HIDDEN, INTERMEDIATE]],
      [`${p}.input_layernorm.weight`, [HIDDEN]],
      [`${p}.post_attention_layernorm.weight`, [HIDDEN]],
    );
  }
  out.push(['model.norm.weight', [HIDDEN]], ['lm_head.weight', [vocabSize, HIDDEN]]);
  return out;
}

/**
 * The weights as bf16 tensors, values drawn in module order, listed sorted by name (the order the
 * reference writer would lay them out in, all dtypes being equal).
 */
export function llamaWeights(c: DemoModelConfig, rng: Rng): { tensors: TensorToWrite[]; params: number } {
  const tensors: TensorToWrite[] = [];
  let params = 0;
  for (const [name, shape] of llamaTensorShapes(c.vocabSize)) {
    const n = shape.reduce((a, b) => a * b, 1);
    params += n;
    const v = new Float32Array(n);
    if (name.endsWith('layernorm.weight') || name === 'model.norm.weight') {
      v.fill(1);
    } else {
      for (let i = 0; i < n; i++) v[i] = INIT_STD * rng.normal();
      if (name === 'model.embed_tokens.weight') v.fill(0, c.padTokenId * HIDDEN, (c.padTokenId + 1) * HIDDEN);
    }
    tensors.push({ name, dtype: 'BF16', shape, data: u16ToBytesLE(f32ArrayToBf16(v)) });
  }
  tensors.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { tensors, params };
}

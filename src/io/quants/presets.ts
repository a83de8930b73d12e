// Which ggml type each tensor of a GGUF gets, per export preset (specs/formats.md §1.6, §2.8):
// F32/F16/BF16 as convert_hf_to_gguf writes them (2-D weights in the out-type, everything 1-D in
// F32), and the quantized presets as llama-quantize's llama_tensor_get_type chooses them when
// quantizing that F16 file without an importance matrix: the base type, the output / token_embd
// types, the attn_v / ffn_down bumps by layer index (use_more_bits), and the shape fallback when a
// row is not a whole number of 256-element super-blocks.

import { GGMLType, ggmlTypeInfo } from './ggml-types.ts';
import type { GGMLTypeId } from './ggml-types.ts';

export const GGUF_PRESETS = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q6_K', 'Q5_K_M', 'Q4_K_M', 'Q3_K_M', 'Q2_K'] as const;
export type GgufPreset = (typeof GGUF_PRESETS)[number];

/** general.file_type (llama_ftype) of each preset. */
export const LLAMA_FTYPE: Readonly<Record<GgufPreset, number>> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q8_0: 7,
  Q2_K: 10,
  Q3_K_M: 12,
  Q4_K_M: 15,
  Q5_K_M: 17,
  Q6_K: 18,
  BF16: 32,
};

/** llama_ftype_get_default_type. */
const BASE_TYPE: Readonly<Record<GgufPreset, GGMLTypeId>> = {
  F32: GGMLType.F32,
  F16: GGMLType.F16,
  BF16: GGMLType.BF16,
  Q8_0: GGMLType.Q8_0,
  Q4_0: GGMLType.Q4_0,
  Q6_K: GGMLType.Q6_K,
  Q5_K_M: GGMLType.Q5_K,
  Q4_K_M: GGMLType.Q4_K,
  Q3_K_M: GGMLType.Q3_K,
  Q2_K: GGMLType.Q2_K,
};

export function isGgufPreset(s: unknown): s is GgufPreset {
  return typeof s === 'string' && (GGUF_PRESETS as readonly string[]).includes(s);
}

/** Parses "q4_k_m", "Q4_K_M", "f16"… */
export function parseGgufPreset(s: string): GgufPreset {
  const u = s.toUpperCase();
  if (!isGgufPreset(u)) throw new RangeError(`unknown GGUF type ${JSON.stringify(s)}; one of ${GGUF_PRESETS.join(', ').toLowerCase()}`);
  return u;
}

export interface TensorTypeQuery {
  /** GGUF tensor name, e.g. "blk.3.attn_v.weight". */
  name: string;
  /** GGUF shape (ne[0] innermost). */
  ne: readonly number[];
  /** Decoder layers of the model. */
  nLayer: number;
  /** n_head / n_head_kv. */
  nGqa: number;
  /** True when the file has no output.weight (token_embd doubles as the output). */
  tied: boolean;
  /** llama.cpp's LLM_TYPE_70B (arch llama with 80 layers): attn_v gets more bits. */
  is70B?: boolean;
}

type Category = 'output' | 'token_embd' | 'attn_v' | 'attn_k' | 'attn_q' | 'attn_output' | 'ffn_up' | 'ffn_gate' | 'ffn_down' | 'other';

function category(name: string): Category {
  if (name === 'output.weight') return 'output';
  if (name === 'token_embd.weight') return 'token_embd';
  if (name.includes('attn_v.weight')) return 'attn_v';
  if (name.includes('attn_k.weight')) return 'attn_k';
  if (name.includes('attn_q.weight')) return 'attn_q';
  if (name.includes('attn_output.weight')) return 'attn_output';
  if (name.includes('ffn_up')) return 'ffn_up';
  if (name.includes('ffn_gate')) return 'ffn_gate';
  if (name.includes('ffn_down')) return 'ffn_down';
  return 'other';
}

/** Whether llama-quantize (and convert's out-type) would change this tensor's type at all. */
export function isQuantizable(name: string, ne: readonly number[]): boolean {
  if (ne.length < 2) return false;
  if (!name.endsWith('weight')) return false;
  if (name.includes('_norm.weight')) return false;
  if (name.includes('ffn_gate_inp.weight')) return false;
  return true;
}

/** llama-quantize's use_more_bits(i_layer, n_layers). */
export function useMoreBits(i: number, n: number): boolean {
  const n8 = Math.trunc(n / 8);
  return i < n8 || i >= Math.trunc((7 * n) / 8) || (i - n8) % 3 === 2;
}

function layerOf(name: string): number {
  const m = /^blk\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : -1;
}

/** The type before the shape fallback (llama_tensor_get_type_impl for the presets here). */
function mixtureType(preset: GgufPreset, q: TensorTypeQuery, base: GGMLTypeId): GGMLTypeId {
  const cat = category(q.name);
  const i = layerOf(q.name);
  const n = q.nLayer;
  if (cat === 'output' || (q.tied && cat === 'token_embd')) {
    const blk = ggmlTypeInfo(base)!.blockSize;
    if (q.ne[0] % blk !== 0) return GGMLType.Q8_0;
    return base !== GGMLType.Q8_0 ? GGMLType.Q6_K : base;
  }
  if (cat === 'token_embd') return base;
  if (cat === 'attn_v') {
    let t: GGMLTypeId = base;
    if (preset === 'Q2_K') t = q.nGqa >= 4 ? GGMLType.Q4_K : GGMLType.Q3_K;
    else if (preset === 'Q3_K_M') t = i < 2 ? GGMLType.Q5_K : GGMLType.Q4_K;
    else if ((preset === 'Q4_K_M' || preset === 'Q5_K_M') && useMoreBits(i, n)) t = GGMLType.Q6_K;
    if (q.is70B && (t === GGMLType.Q3_K || t === GGMLType.Q4_K)) t = GGMLType.Q5_K;
    return t;
  }
  if (cat === 'ffn_down') {
    if (preset === 'Q2_K') return GGMLType.Q3_K;
    if (preset === 'Q3_K_M') return i < Math.trunc(n / 16) ? GGMLType.Q5_K : GGMLType.Q4_K;
    if ((preset === 'Q4_K_M' || preset === 'Q5_K_M') && useMoreBits(i, n)) return GGMLType.Q6_K;
    return base;
  }
  if (cat === 'attn_output') {
    if (preset === 'Q2_K') return GGMLType.Q3_K;
    if (preset === 'Q3_K_M') return GGMLType.Q4_K;
    return base;
  }
  return base;
}

/** tensor_type_fallback: a type whose block fits the row, else F16. */
function fallback(t: GGMLTypeId, ne0: number): GGMLTypeId {
  if (ne0 % ggmlTypeInfo(t)!.blockSize === 0) return t;
  let r: GGMLTypeId;
  switch (t) {
    case GGMLType.Q2_K:
    case GGMLType.Q3_K:
      r = GGMLType.Q4_0;
      break;
    case GGMLType.Q4_K:
      r = GGMLType.Q5_0;
      break;
    case GGMLType.Q5_K:
      r = GGMLType.Q5_1;
      break;
    case GGMLType.Q6_K:
      r = GGMLType.Q8_0;
      break;
    default:
      // llama-quantize has no fallback for Q8_0/Q4_0 (it aborts); convert_hf_to_gguf writes F16.
      return GGMLType.F16;
  }
  return ne0 % ggmlTypeInfo(r)!.blockSize === 0 ? r : GGMLType.F16;
}

/** The ggml type of one tensor in a file of this preset. */
export function presetTensorType(preset: GgufPreset, q: TensorTypeQuery): GGMLTypeId {
  if (preset === 'F32') return GGMLType.F32;
  if (!isQuantizable(q.name, q.ne)) return GGMLType.F32;
  const base = BASE_TYPE[preset];
  if (preset === 'F16' || preset === 'BF16') return base;
  return fallback(mixtureType(preset, q, base), q.ne[0]);
}

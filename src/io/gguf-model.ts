// A Hugging Face checkpoint (f32 weights from any source: a merged model, a dequantized one) as a
// GGUF file llama.cpp loads (specs/formats.md §1.5-1.6, §2.8): architecture KVs with the types
// convert_hf_to_gguf writes, HF -> GGUF tensor names and shapes, the Q/K row permutation for arch
// `llama`, rope_freqs for Llama 3.1/3.2 RoPE scaling, and each tensor's type from the preset.
// Tensors are read, permuted and quantized one at a time when the stream reaches them.
//
// Families: llama and mistral (llama.cpp arch "llama"), qwen2 ("qwen2": q/k/v biases, NEOX RoPE,
// no permutation), qwen3 ("qwen3": q/k norms, no permutation).

import { GgufError, kv, writeGguf } from './gguf.ts';
import type { GGUFKV, GgufTensorToWrite } from './gguf.ts';
import { ggmlTypeName } from './quants/ggml-types.ts';
import type { GGMLTypeId } from './quants/ggml-types.ts';
import { quantize } from './quants/index.ts';
import { LLAMA_FTYPE, presetTensorType } from './quants/presets.ts';
import type { GgufPreset } from './quants/presets.ts';
import { linearPath } from './export-arch.ts';
import type { ExportArch, WeightSource } from './export-arch.ts';


export type GgufArchName = 'llama' | 'qwen2' | 'qwen3';

/** The llama.cpp architecture a family is written as. */
export function ggufArchName(family: string): GgufArchName {
  switch (family) {
    case 'llama':
    case 'mistral':
      return 'llama';
    case 'qwen2':
      return 'qwen2';
    case 'qwen3':
      return 'qwen3';
    default:
      throw new GgufError(`GGUF export does not support the "${family}" architecture (supported: llama, mistral, qwen2, qwen3)`);
  }
}

export interface GgufTensorPlan {
  /** GGUF name, e.g. "blk.0.attn_q.weight". */
  name: string;
  /** The transformers tensor it comes from (null: computed, i.e. rope_freqs). */
  hfName: string | null;
  /** GGUF shape (ne[0] innermost = the HF shape reversed). */
  ne: number[];
  type: GGMLTypeId;
  /** Q/K permutation (arch llama): rows regrouped per head, with this many heads. */
  permuteHeads?: number;
}

const LINEAR_GGUF: Record<string, string> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

/** GGUF name of a transformers tensor name (null: not written, e.g. rotary inv_freq). */
export function ggufTensorName(hfName: string): string | null {
  if (hfName === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hfName === 'model.norm.weight') return 'output_norm.weight';
  if (hfName === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hfName);
  if (!m) return null;
  const [, layer, mod, kind] = m;
  const parts = mod.split('.');
  const last = parts[parts.length - 1];
  let g: string | undefined;
  if (mod === 'input_layernorm') g = 'attn_norm';
  else if (mod === 'post_attention_layernorm') g = 'ffn_norm';
  else if (mod === 'self_attn.q_norm') g = 'attn_q_norm';
  else if (mod === 'self_attn.k_norm') g = 'attn_k_norm';
  else if (parts.length === 2) g = LINEAR_GGUF[last];
  return g === undefined ? null : `blk.${layer}.${g}.${kind}`;
}

/**
 * The Q/K row permutation convert_hf_to_gguf applies for arch llama: HF's rotate_half pairs
 * (i, i + hd/2) become llama.cpp's adjacent pairs (2i, 2i+1):
 * `out_row[h*hd + 2i + j] = in_row[h*hd + j*hd/2 + i]`. `cols` = 1 for a bias.
 */
export function permuteQK(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  if (w.length !== rows * cols) throw new GgufError(`permuteQK: ${w.length} values are not ${rows} x ${cols}`);
  if (rows % (2 * heads) !== 0) throw new GgufError(`permuteQK: ${rows} rows do not split into ${heads} heads of even size`);
  const hd = rows / heads;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * hd + j * half + i) * cols;
        const dst = (h * hd + 2 * i + j) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/** Llama 3.1/3.2 `rope_freqs.weight`: the per-frequency divisor llama.cpp applies, or null without llama3 scaling. */
export function ropeFreqs(arch: Pick<ExportArch, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array | null {
  const s = arch.ropeScaling;
  if (s.type !== 'llama3') return null;
  const half = arch.headDim / 2;
  const out = new Float32Array(half);
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const freq = 1 / Math.pow(arch.ropeTheta, (2 * i) / arch.headDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/** Every tensor of the GGUF file, in file order, with its source and type. */
export function planGgufTensors(arch: ExportArch, preset: GgufPreset): GgufTensorPlan[] {
  const ggufArch = ggufArchName(arch.family);
  const permute = ggufArch === 'llama';
  if (arch.ropeScaling.type === 'llama3' && ggufArch !== 'llama') {
    throw new GgufError(`llama3 RoPE scaling is only written for arch llama, not ${ggufArch}`);
  }
  const plan: Omit<GgufTensorPlan, 'type'>[] = [];
  const rf = ropeFreqs(arch);
  if (rf !== null) plan.push({ name: 'rope_freqs.weight', hfName: null, ne: [rf.length] });
  plan.push({ name: 'token_embd.weight', hfName: 'model.embed_tokens.weight', ne: [arch.hidden, arch.vocabSize] });
  plan.push({ name: 'output_norm.weight', hfName: 'model.norm.weight', ne: [arch.hidden] });
  if (!arch.tiedEmbeddings) plan.push({ name: 'output.weight', hfName: 'lm_head.weight', ne: [arch.hidden, arch.vocabSize] });
  for (let i = 0; i < arch.layers; i++) {
    const p = `model.layers.${i}`;
    plan.push({ name: `blk.${i}.attn_norm.weight`, hfName: `${p}.input_layernorm.weight`, ne: [arch.hidden] });
    for (const l of arch.linears) {
      const g = LINEAR_GGUF[l.name];
      if (g === undefined) throw new GgufError(`no GGUF name for linear ${l.name}`);
      const heads = permute && l.name === 'q_proj' ? arch.heads : permute && l.name === 'k_proj' ? arch.kvHeads : undefined;
      const path = linearPath(i, l);
      plan.push({ name: `blk.${i}.${g}.weight`, hfName: `${path}.weight`, ne: [l.in, l.out], permuteHeads: heads });
      if (l.bias) plan.push({ name: `blk.${i}.${g}.bias`, hfName: `${path}.bias`, ne: [l.out], permuteHeads: heads });
      if (arch.qkNorm && l.name === 'k_proj') {
        plan.push({ name: `blk.${i}.attn_q_norm.weight`, hfName: `${p}.self_attn.q_norm.weight`, ne: [arch.headDim] });
        plan.push({ name: `blk.${i}.attn_k_norm.weight`, hfName: `${p}.self_attn.k_norm.weight`, ne: [arch.headDim] });
      }
    }
    plan.push({ name: `blk.${i}.ffn_norm.weight`, hfName: `${p}.post_attention_layernorm.weight`, ne: [arch.hidden] });
  }
  const query = {
    nLayer: arch.layers,
    nGqa: arch.heads / arch.kvHeads,
    tied: arch.tiedEmbeddings,
    is70B: ggufArch === 'llama' && arch.layers === 80,
  };
  return plan.map((t) => ({ ...t, type: presetTensorType(preset, { ...query, name: t.name, ne: t.ne }) }));
}

export interface GgufModelOptions {
  arch: ExportArch;
  preset: GgufPreset;
  weights: WeightSource;
  /** Tokenizer KVs (ggufTokenizer(...).kvs). */
  tokenizer: readonly GGUFKV[];
  /** general.name */
  name?: string;
  /** More KVs (general.* descriptions, …), written after the architecture's. */
  extra?: readonly GGUFKV[];
  /** Tensors with more elements are read and quantized in row chunks of about this many
   * elements, when the source has readRows and no permutation applies (default 2^24). */
  chunkElements?: number;
  /** Quantizes instead of quantize() on this thread (a pool of workers, src/io/quant-pool.ts, or
   * the GPU, src/engine/kquant-gpu.ts); must give quantize()'s bytes. */
  quantizer?: GgufQuantizer;
}

/** f32 values (whole rows) -> the type's bytes, as quantize() makes them, now or later. */
export type GgufQuantizer = (type: GGMLTypeId, values: Float32Array) => Uint8Array | Promise<Uint8Array>;

/** general.* and architecture KVs (without the tokenizer's). */
export function ggufModelKVs(arch: ExportArch, preset: GgufPreset, name?: string): GGUFKV[] {
  const a = ggufArchName(arch.family);
  const kvs: GGUFKV[] = [kv.str('general.architecture', a), kv.str('general.type', 'model')];
  if (name) kvs.push(kv.str('general.name', name));
  kvs.push(
    kv.u32('general.file_type', LLAMA_FTYPE[preset]),
    kv.u32('general.quantization_version', 2),
    kv.u32('general.alignment', 32),
    kv.u32(`${a}.block_count`, arch.layers),
    kv.u32(`${a}.context_length`, arch.maxPositions),
    kv.u32(`${a}.embedding_length`, arch.hidden),
    kv.u32(`${a}.feed_forward_length`, arch.intermediate),
    kv.u32(`${a}.attention.head_count`, arch.heads),
    kv.u32(`${a}.attention.head_count_kv`, arch.kvHeads),
    kv.f32(`${a}.rope.freq_base`, arch.ropeTheta),
    kv.f32(`${a}.attention.layer_norm_rms_epsilon`, arch.rmsNormEps),
    kv.u32(`${a}.attention.key_length`, arch.headDim),
    kv.u32(`${a}.attention.value_length`, arch.headDim),
    kv.u32(`${a}.rope.dimension_count`, arch.headDim),
    kv.u32(`${a}.vocab_size`, arch.vocabSize),
  );
  if (arch.ropeScaling.type === 'linear') {
    kvs.push(kv.str(`${a}.rope.scaling.type`, 'linear'), kv.f32(`${a}.rope.scaling.factor`, arch.ropeScaling.factor));
  }
  return kvs;
}

/** KVs and lazily produced tensors of the GGUF file (pass to writeGguf / ggufStream). */
export function ggufModel(opts: GgufModelOptions): { kvs: GGUFKV[]; tensors: GgufTensorToWrite[]; plan: GgufTensorPlan[] } {
  const { arch, preset, weights } = opts;
  const plan = planGgufTensors(arch, preset);
  const kvs = [...ggufModelKVs(arch, preset, opts.name), ...opts.tokenizer, ...(opts.extra ?? [])];
  const chunk = opts.chunkElements ?? 1 << 24;
  const quantizer = opts.quantizer ?? quantize;
  const quantizeAs = async (t: GgufTensorPlan, w: Float32Array): Promise<Uint8Array> => {
    try {
      return await quantizer(t.type, w);
    } catch (e) {
      throw new GgufError(`${t.name} (${ggmlTypeName(t.type)}): ${(e as Error).message}`);
    }
  };
  async function* rowChunks(t: GgufTensorPlan, rowsPerChunk: number): AsyncGenerator<Uint8Array> {
    const [cols, rows] = t.ne;
    const chunkAt = async (start: number): Promise<Uint8Array> => {
      const count = Math.min(rowsPerChunk, rows - start);
      const w = await weights.readRows!(t.hfName!, start, count);
      if (w.length !== count * cols) throw new GgufError(`${t.hfName}: rows ${start}..${start + count} gave ${w.length} values, expected ${count * cols}`);
      return quantizeAs(t, w);
    };
    // One chunk ahead: with a pool of workers the next chunk is read and queued while this one's
    // last pieces finish (the pieces still come back in order).
    let next: Promise<Uint8Array> | null = chunkAt(0);
    for (let start = 0; start < rows; start += rowsPerChunk) {
      const current: Promise<Uint8Array> = next!;
      next = start + rowsPerChunk < rows ? chunkAt(start + rowsPerChunk) : null;
      next?.catch(() => undefined); // surfaces when its turn comes
      yield await current;
    }
  }
  const tensors: GgufTensorToWrite[] = plan.map((t) => ({
    name: t.name,
    ne: t.ne,
    type: t.type,
    data: async () => {
      const n = t.ne.reduce((a, b) => a * b, 1);
      if (t.hfName !== null && t.ne.length === 2 && n > chunk && weights.readRows && t.permuteHeads === undefined) {
        return rowChunks(t, Math.max(1, Math.floor(chunk / t.ne[0])));
      }
      let w: Float32Array;
      if (t.hfName === null) {
        w = ropeFreqs(arch)!;
      } else {
        w = await weights.read(t.hfName);
        if (w.length !== n) {
          throw new GgufError(`${t.hfName}: ${w.length} values, expected ${n} ([${[...t.ne].reverse().join(', ')}])`);
        }
        if (t.permuteHeads !== undefined) {
          const rows = t.ne.length === 2 ? t.ne[1] : t.ne[0];
          const cols = t.ne.length === 2 ? t.ne[0] : 1;
          w = permuteQK(w, rows, cols, t.permuteHeads);
        }
      }
      return quantizeAs(t, w);
    },
  }));
  return { kvs, tensors, plan };
}

/** The GGUF file as chunks. */
export function ggufModelStream(opts: GgufModelOptions): AsyncGenerator<Uint8Array> {
  const { kvs, tensors } = ggufModel(opts);
  return writeGguf(kvs, tensors);
}

/** How many tensors of each type a plan has, e.g. { F32: 9, Q4_K: 10, Q6_K: 5 } (like llama.cpp's load log). */
export function typeCounts(plan: readonly Pick<GgufTensorPlan, 'type'>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of plan) out[ggmlTypeName(t.type)] = (out[ggmlTypeName(t.type)] ?? 0) + 1;
  return out;
}


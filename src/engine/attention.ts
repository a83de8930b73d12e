// Causal grouped-query attention forward (shaders/attention.wgsl), flash-attention style: tiled
// over keys with an online softmax, so memory is O(T), never a [T x S] score matrix. One kernel
// serves packed training rows (segment ids, S = T) and chat decode against a KV cache (T new
// queries at positions S - T .. S - 1), with an optional sliding window. On devices with f16
// subgroup matrices the tensor-core kernel of attention-mma.ts takes all but decode.
import { type U32Tensor, expectShape, type Tensor } from './tensor.ts';
import { sizeOf, type Kernels } from './kernels.ts';
import source from '../../shaders/attention.wgsl?raw';
import decodeSource from '../../shaders/attention-decode.wgsl?raw';
import { attentionMmaApplies, attentionMmaTakesTypes, encodeAttentionMma } from './attention-mma.ts';

export interface AttentionTensors {
  /** [batch, tq, heads, headDim], storage type. */
  q: Tensor;
  /** [batch, skv, kvHeads, headDim], storage type. */
  k: Tensor;
  /** [batch, skv, kvHeads, headDim], storage type. */
  v: Tensor;
  /** Output [batch, tq, heads, headDim], storage type. */
  o: Tensor;
  /** Output [batch, heads, tq], f32: log Σ_j exp(scale · q·k_j) per query row (for the backward). */
  lse: Tensor;
  /**
   * [batch, skv] u32 (length batch · skv): document of each key position; query i has the id of
   * position causalOffset + i. A query attends only keys of its own segment; segment 0 is
   * padding and attends nothing. Absent: one sequence per batch row.
   */
  segmentIds?: U32Tensor;
  /**
   * Scratch of at least attentionDecodeBytes(…) bytes. Given, with tq <= ATTENTION_DECODE_MAX_TQ,
   * no segments and a head dim that is a multiple of 4 (every real model's), the keys are split
   * across workgroups (attention-decode.wgsl): chat decode.
   */
  decodePartials?: GPUBuffer;
  /**
   * Chat decode against a KV cache (batch 1): query i sits at positions[i] (u32, length tq) and k/v
   * are the whole cache (skv = its capacity), keys 0 .. causalOffset + tq - 1 in use. On the decode
   * path the kernels' parameters then stay the same from one token to the next (their bind groups
   * are reused: a new one per token and layer cost ~50 us of CPU); elsewhere the in-use keys are
   * attended as without positions. The positions must be causalOffset + i.
   */
  positions?: U32Tensor;
  /**
   * o_proj's LoRA down-projection on the decode path (takesDecodePath): A [r, heads · headDim] f32
   * (r <= 64, headDim % 16 == 0), and each head's share of u = o · Aᵀ written to shares
   * [heads, batch · tq, r] f32 by the combine, for the o_proj GEMV to sum (nf4-gemv.ts
   * `lora.parts`): decode's lora-gemv dispatch for o_proj folded in.
   */
  oLora?: { a: Tensor; shares: Tensor };
  /**
   * lse already holds this product's logsumexp (the forward's, kept for training's recompute of a
   * layer): the tensor-core kernel then takes one pass over the keys instead of two and leaves lse
   * as it is; the other kernels compute it again (the same values).
   */
  lseKnown?: boolean;
}

/** Whether encodeAttention takes the split-keys decode path (attention-decode.wgsl) for these tensors and shape. */
export function takesDecodePath(t: Pick<AttentionTensors, 'decodePartials' | 'segmentIds'>, tq: number, headDim: number): boolean {
  return !!t.decodePartials && !t.segmentIds && tq <= ATTENTION_DECODE_MAX_TQ && headDim % 4 === 0;
}

/** The most LoRA rows the decode combine takes (oLora). */
export const ATTENTION_DECODE_MAX_LORA_R = 64;

export interface AttentionShape {
  batch: number;
  /** Query tokens per batch row. */
  tq: number;
  /** Key/value tokens per batch row (= tq in training; the cache length in decode). */
  skv: number;
  /** Query heads (num_attention_heads). */
  heads: number;
  /** Key/value heads (num_key_value_heads); divides heads. */
  kvHeads: number;
  /** Up to 128. */
  headDim: number;
  /** Score scale; default 1 / sqrt(headDim). */
  scale?: number;
  /** Absolute position of query 0; default skv - tq (0 in training, the cache offset in decode). */
  causalOffset?: number;
  /** Sliding window: key j is allowed only if position - j < window. 0 (default): no window. */
  window?: number;
}

/** Keys per workgroup of the decode path (attention-decode.wgsl's SPLIT). */
export const ATTENTION_DECODE_SPLIT = 128;
/** The most new queries per batch row that take the decode path. */
export const ATTENTION_DECODE_MAX_TQ = 8;

/** Bytes of the decode path's scratch for `heads` x `headDim` and up to `skv` keys, batch 1. */
export function attentionDecodeBytes(heads: number, headDim: number, skv: number): number {
  return ATTENTION_DECODE_MAX_TQ * heads * Math.ceil(skv / ATTENTION_DECODE_SPLIT) * (headDim + 2) * 4;
}

/** Query rows per workgroup (the shader's BR). */
export const ATTENTION_ROWS = 64;
/** Keys per tile (the shader's BC). */
export const ATTENTION_KEYS_PER_TILE = 64;
/** Largest head dim the kernel takes (its register blocks: 2 x 64 columns). */
export const ATTENTION_MAX_HEAD_DIM = 128;

/** The override constants of a compiled variant of shaders/attention.wgsl. */
export interface AttentionVariant {
  /** vec4 output columns per invocation and row: 1 for head dim <= 64, 2 up to 128. */
  NV: number;
  /** Keys of the weights p held in workgroup memory at once: 64 (a whole tile), or 16 with NBUF 1. */
  PK: number;
  /** Staging buffers: 2 (double-buffered) or 1. */
  NBUF: number;
}

/**
 * Workgroup bytes of a variant, as Dawn counts them: p (PK keys x 64 rows f32), the staging
 * buffers (4 KiB each), the row-max exchange (4 KiB), the rows' ranges (1 KiB), the keys'
 * segment ids (256 B), the key range (3 x 16 B).
 */
export function attentionWorkgroupBytes(v: Pick<AttentionVariant, 'PK' | 'NBUF'>): number {
  return v.PK * 64 * 4 + v.NBUF * 4096 + 4096 + 1024 + 256 + 3 * 16;
}

/**
 * The variant for a head dim and a device's workgroup memory: the double-buffered one with a
 * whole tile of weights (29.3 KiB) where it fits, else the one for WebGPU's 16 KiB default
 * (13.3 KiB).
 */
export function attentionVariant(headDim: number, workgroupBytes: number): AttentionVariant {
  const NV = headDim > 64 ? 2 : 1;
  for (const [PK, NBUF] of [[64, 2], [16, 1]]) {
    if (attentionWorkgroupBytes({ PK, NBUF }) <= workgroupBytes) return { NV, PK, NBUF };
  }
  throw new Error(`attention: needs ${attentionWorkgroupBytes({ PK: 16, NBUF: 1 })} bytes of workgroup memory, the device has ${workgroupBytes}`);
}

/**
 * Records o = softmax(mask(scale · q kᵀ)) v per (batch, query head), and lse, into `pass`.
 * GQA: query head h uses kv head floor(h / (heads / kvHeads)). Masks: causal (key position <=
 * query position), the window, segments. A query with no allowed key (padding) gets o = 0,
 * lse = 0. f32 accumulation whatever the storage type.
 */
export function encodeAttention(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  t: AttentionTensors,
  s: AttentionShape,
): void {
  const { batch, tq, skv, heads, kvHeads, headDim } = s;
  const scale = s.scale ?? 1 / Math.sqrt(headDim);
  const causalOffset = s.causalOffset ?? skv - tq;
  const window = s.window ?? 0;
  for (const [name, value] of Object.entries({ batch, tq, skv, heads, kvHeads, headDim })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`attention: ${name} must be a positive integer, not ${value}`);
  }
  if (heads % kvHeads !== 0) throw new Error(`attention: heads (${heads}) must be a multiple of kvHeads (${kvHeads})`);
  if (headDim > ATTENTION_MAX_HEAD_DIM) throw new Error(`attention: head dim ${headDim} exceeds ${ATTENTION_MAX_HEAD_DIM}`);
  if (!Number.isInteger(causalOffset) || causalOffset < 0 || causalOffset + tq > skv) {
    throw new Error(`attention: causalOffset ${causalOffset} must be in 0..skv - tq (${skv - tq})`);
  }
  if (!Number.isInteger(window) || window < 0) throw new Error(`attention: window must be an integer >= 0, not ${window}`);
  if (!Number.isFinite(scale)) throw new Error(`attention: scale must be finite, not ${scale}`);
  expectShape('attention', t.q, [batch, tq, heads, headDim], 'q');
  expectShape('attention', t.k, [batch, skv, kvHeads, headDim], 'k');
  expectShape('attention', t.v, [batch, skv, kvHeads, headDim], 'v');
  expectShape('attention', t.o, [batch, tq, heads, headDim], 'o');
  expectShape('attention', t.lse, [batch, heads, tq], 'lse');
  // dtype: o's; q, k, v share it, or are f16 beside an f32 o on the tensor cores (training's arena: activations.ts qkvDtype).
  const dtype = t.o.dtype;
  const qkv = t.q.dtype;
  for (const [name, x] of [['k', t.k], ['v', t.v]] as const) {
    if (x.dtype !== qkv) throw new Error(`attention: ${name} is ${x.dtype} but q is ${qkv}`);
  }
  if (!attentionMmaTakesTypes(kernels.gpu.info, dtype, qkv, headDim) || (qkv !== dtype && takesDecodePath(t, tq, headDim))) {
    throw new Error(`attention: o is ${dtype} but q is ${qkv} (f16 q, k, v beside an f32 o take the tensor-core attention, without a KV cache's decode path)`);
  }
  if (t.lse.dtype !== 'f32') throw new Error(`attention: lse must be f32, not ${t.lse.dtype}`);
  if (t.segmentIds && t.segmentIds.length !== batch * skv) {
    throw new Error(`attention: segmentIds has ${t.segmentIds.length} values, expected batch · skv = ${batch * skv}`);
  }
  if (batch * Math.max(tq, skv) * heads * headDim >= 2 ** 32) throw new Error('attention: tensors of 2^32 values or more');
  if (t.positions) {
    if (batch !== 1 || t.segmentIds) throw new Error('attention: query positions are for a KV cache (batch 1, no segments)');
    if (t.positions.length !== tq) throw new Error(`attention: ${t.positions.length} positions for ${tq} queries`);
  }

  if (takesDecodePath(t, tq, headDim)) {
    encodeDecodeAttention(kernels, pass, t, t.decodePartials!, { batch, tq, skv, heads, kvHeads, headDim, causalOffset, window, scale });
    return;
  }
  if (t.oLora) throw new Error('attention: an o_proj LoRA share is computed on the decode path only (takesDecodePath)');
  // Batch 1: the forward kernel reads only the keys in use from the front of a longer cache.
  const keys = t.positions ? causalOffset + tq : skv;
  const seg = t.segmentIds?.buffer ?? kernels.placeholder();
  if (attentionMmaApplies(kernels.gpu.info, dtype, headDim)) {
    const buffers = { q: t.q.buffer, k: t.k.buffer, v: t.v.buffer, seg, o: t.o.buffer, lse: t.lse.buffer };
    encodeAttentionMma(kernels, pass, buffers, { batch, tq, skv: keys, heads, kvHeads, headDim, causalOffset, window, scale }, !!t.segmentIds, dtype, t.lseKnown, qkv);
    return;
  }
  // One pipeline per storage type, head dims up to 64 or 128, and device: the head dim itself
  // is a run-time parameter.
  const constants = { ...attentionVariant(headDim, kernels.gpu.info.limits.maxComputeWorkgroupStorageSize) };
  const kernel = kernels.get({ name: 'attention', source, dtype, constants });
  const params = {
    tq,
    skv: keys,
    heads,
    kv_heads: kvHeads,
    head_dim: headDim,
    causal_offset: causalOffset,
    window,
    use_segments: t.segmentIds ? 1 : 0,
    scale_log2: scale * Math.LOG2E,
    four: 4,
    sixteen: 16,
  };
  // [heads, query blocks, batch]: the heads of a GQA group side by side (the shader walks the
  // blocks in reverse, longest first).
  kernels.dispatch(pass, kernel, [t.q.buffer, t.k.buffer, t.v.buffer, seg, t.o.buffer, t.lse.buffer], params, [
    heads,
    Math.ceil(tq / ATTENTION_ROWS),
    batch,
  ]);
}

/**
 * Splits of ATTENTION_DECODE_SPLIT keys that hold the first `keys` keys: the decode path's grid,
 * the one thing of its recording that changes with the position (generate.ts replays a decode
 * step's dispatches while this stays the same).
 */
export function decodeSplitsInUse(keys: number): number {
  return Math.ceil(keys / ATTENTION_DECODE_SPLIT);
}

/** The split-keys path: one workgroup per (split, query, head), then one combine per (query, head). */
function encodeDecodeAttention(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  t: AttentionTensors,
  partials: GPUBuffer,
  s: Required<Omit<AttentionShape, 'batch'>> & { batch: number },
): void {
  // Splits of the whole k/v (the partials' stride), and those holding keys in use (the grid).
  const splits = Math.ceil(s.skv / ATTENTION_DECODE_SPLIT);
  const live = decodeSplitsInUse(s.causalOffset + s.tq);
  const bytes = s.batch * s.tq * s.heads * splits * (s.headDim + 2) * 4;
  if (sizeOf(partials) < bytes) throw new Error(`attention: decode scratch holds ${sizeOf(partials)} bytes, ${bytes} needed`);
  const params = {
    tq: s.tq,
    skv: s.skv,
    heads: s.heads,
    kv_heads: s.kvHeads,
    head_dim: s.headDim,
    causal_offset: t.positions ? 0 : s.causalOffset,
    window: s.window,
    splits,
    scale_log2: s.scale * Math.LOG2E,
    use_positions: t.positions ? 1 : 0,
  };
  const lora = t.oLora;
  const r = lora ? lora.a.shape[0] : 0;
  if (lora) {
    if (!(r >= 1 && r <= ATTENTION_DECODE_MAX_LORA_R)) throw new Error(`attention: an o_proj LoRA share takes r 1 .. ${ATTENTION_DECODE_MAX_LORA_R}, not ${r}`);
    if (s.headDim % 16 !== 0) throw new Error(`attention: an o_proj LoRA share takes a head dim that is a multiple of 16, not ${s.headDim}`);
    expectShape('attention', lora.a, [r, s.heads * s.headDim], 'o_proj LoRA A');
    expectShape('attention', lora.shares, [s.heads, s.batch * s.tq, r], 'o_proj LoRA shares');
    if (lora.a.dtype !== 'f32' || lora.shares.dtype !== 'f32') throw new Error('attention: the o_proj LoRA A and shares must be f32');
  }
  const dtype = t.q.dtype;
  const partial = kernels.get({ name: 'attention-decode', source: decodeSource, dtype, entryPoint: 'partial' });
  const combine = kernels.get({ name: 'attention-decode', source: decodeSource, dtype, entryPoint: 'combine', constants: lora ? { LORA: true } : undefined });
  const qpos = t.positions?.buffer ?? kernels.placeholder();
  const all = { ...params, lora_r: r, lora_rows: s.batch * s.tq };
  kernels.dispatchAt(pass, partial, [[0, t.q.buffer], [1, t.k.buffer], [2, t.v.buffer], [3, partials], [7, qpos]], all, [live, s.tq * s.heads, s.batch]);
  // Without a LoRA the combine's share bindings (declared, never touched) take placeholders.
  const shares: [number, GPUBuffer][] = [[8, lora?.a.buffer ?? kernels.placeholder()], [9, lora?.shares.buffer ?? kernels.placeholder(1)]];
  kernels.dispatchAt(pass, combine, [[3, partials], [4, t.o.buffer], [5, t.lse.buffer], [7, qpos], ...shares], all, [1, s.tq * s.heads, s.batch]);
}

// Causal grouped-query attention backward (shaders/attention-backward.wgsl), flash-attention
// style: the probabilities are recomputed tile by tile from q, k and the forward's lse, so memory
// stays O(T). Same masks as the forward (attention.ts): causal, sliding window, segment ids of
// packed rows (segment 0 = padding: no gradient in or out). Two dispatches: D_i = dO_i · o_i,
// then dq (a workgroup per 64 queries) with dk and dv (a workgroup per 64 keys, summing the query
// heads of its GQA group); three where a stage has fewer than 9 storage buffers. On devices with
// f16 subgroup matrices (head dims of 32s) the tensor-core kernels of attention-mma.ts instead.
// Reference: reference/attention-backward.ts.
import { ATTENTION_MAX_HEAD_DIM, type AttentionShape, type AttentionVariant } from './attention.ts';
import { type U32Tensor, expectShape, createTensor, type Tensor } from './tensor.ts';
import { grid, type Kernels } from './kernels.ts';
import { ATTENTION_STATS_PER_ROW, attentionMmaBackwardApplies, attentionMmaTakesTypes, encodeAttentionBackwardMma } from './attention-mma.ts';
import source from '../../shaders/attention-backward.wgsl?raw';

export interface AttentionBackwardTensors {
  /** The forward's inputs: q [batch, tq, heads, headDim], k and v [batch, skv, kvHeads, headDim]. */
  q: Tensor;
  k: Tensor;
  v: Tensor;
  /** The forward's outputs: o [batch, tq, heads, headDim] and lse [batch, heads, tq] f32. */
  o: Tensor;
  lse: Tensor;
  /** As for the forward: [batch, skv] u32 document ids, 0 = padding. */
  segmentIds?: U32Tensor;
  /** Gradient of o, shape and type of o. */
  dout: Tensor;
  /** Outputs, shapes and type of q, k, v (written, not accumulated). */
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
  /**
   * Scratch [batch, heads, tq, 3] f32 (createAttentionBackwardStats): the (lse · log2 e, D_i) pairs of
   * all rows, then each row's max |dO| (the tensor-core kernels' scale for dO).
   */
  stats: Tensor;
}

/** Rows per workgroup of the dq and dkv kernels (the shader's BR): queries in dq, keys in dkv. */
export const ATTENTION_BACKWARD_ROWS = 64;

/**
 * Workgroup bytes of a variant of the dq and dkv kernels (the larger), as Dawn counts them: the
 * weights (PK columns x 64 rows f32), the staging buffers (4 KiB each), the rows' ranges (1 KiB),
 * the tile's column segment ids, lse and D (3 x 256 B), the range (3 x 16 B).
 */
export function attentionBackwardWorkgroupBytes(v: Pick<AttentionVariant, 'PK' | 'NBUF'>): number {
  return v.PK * 64 * 4 + v.NBUF * 4096 + 1024 + 3 * 256 + 3 * 16;
}

/**
 * The variant for a head dim and a device's workgroup memory: the double-buffered one with a
 * whole tile of weights (25.8 KiB) where it fits, else the one for WebGPU's 16 KiB default (9.8 KiB).
 */
export function attentionBackwardVariant(headDim: number, workgroupBytes: number): AttentionVariant {
  const NV = headDim > 64 ? 2 : 1;
  for (const [PK, NBUF] of [[64, 2], [16, 1]]) {
    if (attentionBackwardWorkgroupBytes({ PK, NBUF }) <= workgroupBytes) return { NV, PK, NBUF };
  }
  throw new Error(`attention backward: needs ${attentionBackwardWorkgroupBytes({ PK: 16, NBUF: 1 })} bytes of workgroup memory, the device has ${workgroupBytes}`);
}

/** The stats scratch for a shape: [batch, heads, tq, 3] f32. */
export function createAttentionBackwardStats(device: GPUDevice, s: Pick<AttentionShape, 'batch' | 'heads' | 'tq'>): Tensor {
  return createTensor(device, [s.batch, s.heads, s.tq, ATTENTION_STATS_PER_ROW], 'f32', 'attention_backward.stats');
}

/**
 * Records dq, dk, dv = the gradients of encodeAttention's o w.r.t. q, k, v given dO, into `pass`
 * (two or three dispatches). The shape `s` is the forward's. f32 accumulation whatever the
 * storage type.
 */
export function encodeAttentionBackward(kernels: Kernels, pass: GPUComputePassEncoder, t: AttentionBackwardTensors, s: AttentionShape): void {
  const { batch, tq, skv, heads, kvHeads, headDim } = s;
  const scale = s.scale ?? 1 / Math.sqrt(headDim);
  const causalOffset = s.causalOffset ?? skv - tq;
  const window = s.window ?? 0;
  const what = 'attention backward';
  for (const [name, value] of Object.entries({ batch, tq, skv, heads, kvHeads, headDim })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${what}: ${name} must be a positive integer, not ${value}`);
  }
  if (heads % kvHeads !== 0) throw new Error(`${what}: heads (${heads}) must be a multiple of kvHeads (${kvHeads})`);
  if (headDim > ATTENTION_MAX_HEAD_DIM) throw new Error(`${what}: head dim ${headDim} exceeds ${ATTENTION_MAX_HEAD_DIM}`);
  if (!Number.isInteger(causalOffset) || causalOffset < 0 || causalOffset + tq > skv) {
    throw new Error(`${what}: causalOffset ${causalOffset} must be in 0..skv - tq (${skv - tq})`);
  }
  if (!Number.isInteger(window) || window < 0) throw new Error(`${what}: window must be an integer >= 0, not ${window}`);
  if (!Number.isFinite(scale)) throw new Error(`${what}: scale must be finite, not ${scale}`);
  const qShape = [batch, tq, heads, headDim];
  const kvShape = [batch, skv, kvHeads, headDim];
  // Each tensor's shape, and its type: k and v q's, dO and the gradients o's (q, k, v may be f16
  // beside f32 others on the tensor cores, as in the forward: attentionMmaTakesTypes).
  for (const [name, x, shape, like] of [
    ['q', t.q, qShape, 'q'],
    ['k', t.k, kvShape, 'q'],
    ['v', t.v, kvShape, 'q'],
    ['o', t.o, qShape, 'o'],
    ['dout', t.dout, qShape, 'o'],
    ['dq', t.dq, qShape, 'o'],
    ['dk', t.dk, kvShape, 'o'],
    ['dv', t.dv, kvShape, 'o'],
  ] as const) {
    expectShape(what, x, shape, name);
    if (x.dtype !== t[like].dtype) throw new Error(`${what}: ${name} is ${x.dtype} but ${like} is ${t[like].dtype}`);
  }
  expectShape(what, t.lse, [batch, heads, tq], 'lse');
  expectShape(what, t.stats, [batch, heads, tq, ATTENTION_STATS_PER_ROW], 'stats');
  if (t.lse.dtype !== 'f32' || t.stats.dtype !== 'f32') throw new Error(`${what}: lse and stats must be f32`);
  if (t.segmentIds && t.segmentIds.length !== batch * skv) {
    throw new Error(`${what}: segmentIds has ${t.segmentIds.length} values, expected batch · skv = ${batch * skv}`);
  }
  const outs = [t.dq, t.dk, t.dv, t.stats].map((x) => x.buffer);
  const ins = [t.q, t.k, t.v, t.o, t.lse, t.dout].map((x) => x.buffer);
  if (new Set([...outs, ...ins]).size !== outs.length + ins.length) throw new Error(`${what}: outputs and scratch must be buffers of their own`);
  if (batch * Math.max(tq, skv) * heads * headDim >= 2 ** 32) throw new Error(`${what}: tensors of 2^32 values or more`);

  const dtype = t.o.dtype;
  const qkv = t.q.dtype;
  if (!attentionMmaTakesTypes(kernels.gpu.info, dtype, qkv, headDim)) {
    throw new Error(`${what}: o is ${dtype} but q is ${qkv} (f16 q, k, v beside f32 take the tensor-core backward)`);
  }
  if (attentionMmaBackwardApplies(kernels.gpu.info, dtype, headDim)) {
    const buffers = { q: t.q.buffer, k: t.k.buffer, v: t.v.buffer, seg: t.segmentIds?.buffer ?? kernels.placeholder(), o: t.o.buffer, lse: t.lse.buffer };
    const grads = { dout: t.dout.buffer, dq: t.dq.buffer, dk: t.dk.buffer, dv: t.dv.buffer, stats: t.stats.buffer };
    const shape = { batch, tq, skv, heads, kvHeads, headDim, causalOffset, window, scale };
    encodeAttentionBackwardMma(kernels, pass, { ...buffers, ...grads }, shape, !!t.segmentIds, dtype, qkv);
    return;
  }
  const limits = kernels.gpu.info.limits;
  const constants = { ...attentionBackwardVariant(headDim, limits.maxComputeWorkgroupStorageSize) };
  const get = (entryPoint: string) => kernels.get({ name: 'attention_backward', source, dtype, constants, entryPoint });
  const seg = t.segmentIds?.buffer ?? kernels.placeholder();
  const rows = batch * heads * tq;
  const params = {
    rows,
    tq,
    skv,
    heads,
    kv_heads: kvHeads,
    head_dim: headDim,
    causal_offset: causalOffset,
    window,
    use_segments: t.segmentIds ? 1 : 0,
    scale_log2: scale * Math.LOG2E,
    scale,
    four: 4,
  };
  const rowsPerGroup = ATTENTION_BACKWARD_ROWS;
  kernels.dispatchAt(pass, get('delta'), [[4, t.dout.buffer], [5, t.stats.buffer], [9, t.o.buffer], [10, t.lse.buffer]], params, grid(kernels, Math.ceil(rows / 64)));
  const common: [number, GPUBuffer][] = [[0, t.q.buffer], [1, t.k.buffer], [2, t.v.buffer], [3, seg], [4, t.dout.buffer], [5, t.stats.buffer]];
  const keyBlocks = Math.ceil(skv / rowsPerGroup);
  const queryBlocks = Math.ceil(tq / rowsPerGroup);
  if (limits.maxStorageBuffersPerShaderStage >= 9 && constants.NBUF === 2) {
    // dq, dk and dv in one dispatch (9 storage buffers): kvHeads · key blocks dkv workgroups, then
    // heads · query blocks dq ones, as a flat index over a 2-D grid; the batch row in z. (The
    // variant for 16 KiB of workgroup memory, for small GPUs, keeps to two: one pipeline less.)
    const [gx, gy] = grid(kernels, kvHeads * keyBlocks + heads * queryBlocks);
    kernels.dispatchAt(pass, get('grads'), [...common, [6, t.dq.buffer], [7, t.dk.buffer], [8, t.dv.buffer]], params, [gx, gy, batch]);
  } else {
    kernels.dispatchAt(pass, get('dq_main'), [...common, [6, t.dq.buffer]], params, [heads, queryBlocks, batch]);
    kernels.dispatchAt(pass, get('dkv_main'), [...common, [7, t.dk.buffer], [8, t.dv.buffer]], params, [kvHeads, keyBlocks, batch]);
  }
}


// The activation arena of the forward pass (llm.c's ActivationTensors): every buffer the forward
// writes, allocated once for a capacity of tokens and reused by every call. A call for a shape
// (batch, seqLen) with batch · seqLen <= capacity gets tensors of exactly that shape laid over the
// front of the same buffers (forwardTensors), so no GPU memory is allocated in the hot path, and
// one arena serves a training shape, a prefill chunk and a one-token decode step.
//
// Kept for the backward (gradient checkpointing, issue 6): each layer's input in `residual`
// (layers + 1 f32 buffers: the embedding output, each layer's output; the last is the final
// norm's input), and each layer's attention logsumexp in `lse` (256 KB a layer at an 8B's 2048
// tokens: the recompute then takes one pass over the keys, attention.ts `lseKnown`). Everything else
// is one layer's worth, overwritten layer by layer, so that after encodeLayer(i) it holds exactly
// the saves of layer i (its recompute before its backward).
// Tensors take the arena's type, but for the f32 residual stream, rstd/lse/u (f32) and, in training on
// the tensor cores, q, k and v (f16: ActivationOptions.qkvF16).
// Every buffer is counted by the memory accountant (gpu-memory.ts): 'activations', the lm_head
// loss scratch 'scratch'.
import { attentionMmaTakesF16Qkv } from './attention-mma.ts';
import type { LinearName, ModelArch } from './arch.ts';
import { type U32Tensor, BYTES, type DType, type Tensor } from './tensor.ts';
import type { Kernels } from './kernels.ts';
import { trackedBuffer } from './gpu-memory.ts';
import { NF4_GEMV_MAX_ROWS } from './nf4-gemv.ts';
import { createLmHeadScratch, destroyLmHeadScratch, lmHeadChunkRows, type LmHeadScratch } from './lmhead.ts';

export interface ActivationOptions {
  /** Capacity: the largest batch · seqLen a call may use is batch · seqLen. */
  batch: number;
  seqLen: number;
  /** Keep every layer's input (layers + 1 residual buffers, for the backward); default true.
   * false: two buffers used in turn (inference). */
  checkpoints?: boolean;
  /** The per-token loss of the chunked lm_head (targets, lse, loss, scratch); default true. */
  loss?: boolean;
  /** Rows of full logits [rows, V] f32 the arena holds (tests, generation); default 0. */
  logitsRows?: number;
  /** LoRA rank: one u = x · Aᵀ buffer [tokens, r] f32 per linear; 0 (default): no LoRA. */
  loraR?: number;
  /** Storage type of the lm_head matrix (ModelWeights.embedDtype): sizes the loss's vocabulary
   * chunks so that a chunk of E fits one binding. Default: the activation dtype. */
  embedDtype?: DType;
  /** Keep q, k and v in f16 where the arena is f32 and checkpointed (training), the architecture has no
   * q/k norms, and the tensor-core attention takes f16 q, k, v beside f32 (attentionMmaTakesF16Qkv):
   * its tiles round them to f16 anyway, and it reads half the bytes. Calls of up to NF4_GEMV_MAX_ROWS
   * tokens keep them in the arena's type (the GEMV writes no f16 beside an f32 x), so the buffers
   * keep its size. Default true. */
  qkvF16?: boolean;
}

type Buf = GPUBuffer;

export interface Activations {
  arch: ModelArch;
  dtype: DType;
  /** Storage type of q, k and v (their projections write it) in calls of more than NF4_GEMV_MAX_ROWS tokens: dtype, or f16 (ActivationOptions.qkvF16). */
  qkvDtype: DType;
  /** Tokens the buffers hold. */
  capacity: number;
  options: Required<ActivationOptions>;
  ids: Buf;
  positions: Buf;
  segments: Buf;
  targets: Buf;
  residual: Buf[];
  mid: Buf;
  ln1: Buf;
  rstd1: Buf;
  qRaw: Buf | null;
  kRaw: Buf | null;
  rstdQ: Buf | null;
  rstdK: Buf | null;
  q: Buf;
  k: Buf;
  v: Buf;
  attn: Buf;
  /** One per layer with checkpoints, else one for all. */
  lse: Buf[];
  attnOut: Buf;
  ln2: Buf;
  rstd2: Buf;
  gate: Buf;
  up: Buf;
  act: Buf;
  down: Buf;
  u: Partial<Record<LinearName, Buf>>;
  lnF: Buf;
  rstdF: Buf;
  tokenLse: Buf | null;
  tokenLoss: Buf | null;
  lmScratch: LmHeadScratch | null;
  logits: Buf | null;
  /** Bytes of every buffer above. */
  bytes: number;
}

export function createActivations(kernels: Kernels, arch: ModelArch, dtype: DType, options: ActivationOptions): Activations {
  const o: Required<ActivationOptions> = { checkpoints: true, loss: true, logitsRows: 0, loraR: 0, qkvF16: true, ...options, embedDtype: options.embedDtype ?? dtype };
  const n = o.batch * o.seqLen;
  if (!(Number.isInteger(o.batch) && o.batch > 0 && Number.isInteger(o.seqLen) && o.seqLen > 0)) {
    throw new Error(`activations: batch ${o.batch} x seqLen ${o.seqLen} must be positive integers`);
  }
  const device = kernels.device;
  const { hidden: H, intermediate: F, heads, kvHeads, headDim: D, vocabSize: V } = arch;
  let bytes = 0;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const buf = (label: string, elems: number, elemBytes: number): Buf => {
    const size = Math.max(4, Math.ceil((elems * elemBytes) / 4) * 4);
    bytes += size;
    return trackedBuffer(device, { size, usage, label: `act.${label}` }, 'activations');
  };
  const act = (label: string, elems: number) => buf(label, elems, BYTES[dtype]);
  const qkvDtype: DType = o.qkvF16 && dtype === 'f32' && o.checkpoints && !arch.qkNorm && attentionMmaTakesF16Qkv(kernels.gpu.info, D) ? 'f16' : dtype;
  const f32 = (label: string, elems: number) => buf(label, elems, 4);
  const u32 = (label: string) => buf(label, n, 4);

  let lmScratch: LmHeadScratch | null = null;
  if (o.loss) {
    lmScratch = createLmHeadScratch(kernels, n, lmHeadChunkRows(kernels, H, o.embedDtype));
    bytes += lmScratch.partial.size + lmScratch.tlogit.size + lmScratch.run.size;
  }
  const u: Partial<Record<LinearName, Buf>> = {};
  if (o.loraR > 0) for (const l of arch.linears) u[l.name] = f32(`u.${l.name}`, n * o.loraR);
  return {
    arch,
    dtype,
    qkvDtype,
    capacity: n,
    options: o,
    ids: u32('ids'),
    positions: u32('positions'),
    segments: u32('segments'),
    targets: u32('targets'),
    residual: Array.from({ length: o.checkpoints ? arch.layers + 1 : 2 }, (_, i) => f32(`residual.${i}`, n * H)),
    mid: f32('mid', n * H),
    ln1: act('ln1', n * H),
    rstd1: f32('rstd1', n),
    qRaw: arch.qkNorm ? act('q_raw', n * heads * D) : null,
    kRaw: arch.qkNorm ? act('k_raw', n * kvHeads * D) : null,
    rstdQ: arch.qkNorm ? f32('rstd_q', n * heads) : null,
    rstdK: arch.qkNorm ? f32('rstd_k', n * kvHeads) : null,
    q: act('q', n * heads * D),
    k: act('k', n * kvHeads * D),
    v: act('v', n * kvHeads * D),
    attn: act('attn', n * heads * D),
    lse: Array.from({ length: o.checkpoints ? arch.layers : 1 }, (_, i) => f32(`lse.${i}`, n * heads)),
    attnOut: act('attn_out', n * H),
    ln2: act('ln2', n * H),
    rstd2: f32('rstd2', n),
    gate: act('gate', n * F),
    up: act('up', n * F),
    act: act('act', n * F),
    down: act('down', n * H),
    u,
    lnF: act('lnf', n * H),
    rstdF: f32('rstdf', n),
    tokenLse: o.loss ? f32('token_lse', n) : null,
    tokenLoss: o.loss ? f32('token_loss', n) : null,
    lmScratch,
    logits: o.logitsRows > 0 ? f32('logits', o.logitsRows * V) : null,
    get bytes() {
      return bytes;
    },
  };
}

export function destroyActivations(a: Activations): void {
  const bufs: (Buf | null)[] = [
    a.ids, a.positions, a.segments, a.targets, ...a.residual, a.mid, a.ln1, a.rstd1, a.qRaw, a.kRaw, a.rstdQ, a.rstdK,
    a.q, a.k, a.v, a.attn, ...a.lse, a.attnOut, a.ln2, a.rstd2, a.gate, a.up, a.act, a.down, ...Object.values(a.u),
    a.lnF, a.rstdF, a.tokenLse, a.tokenLoss, a.logits,
  ];
  for (const b of bufs) b?.destroy();
  if (a.lmScratch) destroyLmHeadScratch(a.lmScratch);
}

/** The tensors of one call of shape (batch, seqLen), laid over the arena's buffers. */
export interface ForwardTensors {
  batch: number;
  seqLen: number;
  /** batch · seqLen. */
  tokens: number;
  ids: U32Tensor;
  positions: U32Tensor;
  segments: U32Tensor;
  targets: U32Tensor;
  /** [tokens, H] f32 each: residual[i] is layer i's input. */
  residual: Tensor[];
  mid: Tensor;
  ln1: Tensor;
  rstd1: Tensor;
  /** The q/k projections before Qwen3's q_norm/k_norm ([tokens, heads · D]); q/k otherwise. */
  qRaw: Tensor;
  kRaw: Tensor;
  rstdQ: Tensor | null;
  rstdK: Tensor | null;
  /** [tokens, heads · D], after the norm and RoPE. */
  q: Tensor;
  k: Tensor;
  v: Tensor;
  /** Attention output [tokens, heads · D] and its logsumexp [batch, heads, seqLen] f32: one per
   * layer where the arena keeps checkpoints (layerLse), else one for all. */
  attn: Tensor;
  lse: Tensor[];
  attnOut: Tensor;
  ln2: Tensor;
  rstd2: Tensor;
  gate: Tensor;
  up: Tensor;
  act: Tensor;
  down: Tensor;
  u: Partial<Record<LinearName, Tensor>>;
  lnF: Tensor;
  rstdF: Tensor;
  tokenLse: Tensor | null;
  tokenLoss: Tensor | null;
}

/** Layer i's attention logsumexp (its own where the arena keeps one per layer). */
export function layerLse(t: ForwardTensors, i: number): Tensor {
  return t.lse[Math.min(i, t.lse.length - 1)];
}

export function forwardTensors(a: Activations, batch: number, seqLen: number): ForwardTensors {
  const n = batch * seqLen;
  if (!(Number.isInteger(n) && n > 0 && n <= a.capacity)) {
    throw new Error(`activations: batch ${batch} x seqLen ${seqLen} exceeds the arena's ${a.capacity} tokens`);
  }
  const { hidden: H, intermediate: F, heads, kvHeads, headDim: D } = a.arch;
  const dt = a.dtype;
  const t = (buffer: Buf, shape: number[], dtype: DType = dt): Tensor => ({ buffer, shape, dtype });
  const ids = (buffer: Buf): U32Tensor => ({ buffer, length: n });
  const qkv = n > NF4_GEMV_MAX_ROWS ? a.qkvDtype : dt;
  const q = t(a.q, [n, heads * D], qkv);
  const k = t(a.k, [n, kvHeads * D], qkv);
  const u: Partial<Record<LinearName, Tensor>> = {};
  for (const [name, b] of Object.entries(a.u) as [LinearName, Buf][]) u[name] = t(b, [n, a.options.loraR], 'f32');
  return {
    batch,
    seqLen,
    tokens: n,
    ids: ids(a.ids),
    positions: ids(a.positions),
    segments: ids(a.segments),
    targets: ids(a.targets),
    residual: a.residual.map((b) => t(b, [n, H], 'f32')),
    mid: t(a.mid, [n, H], 'f32'),
    ln1: t(a.ln1, [n, H]),
    rstd1: t(a.rstd1, [n], 'f32'),
    qRaw: a.qRaw ? t(a.qRaw, [n, heads * D]) : q,
    kRaw: a.kRaw ? t(a.kRaw, [n, kvHeads * D]) : k,
    rstdQ: a.rstdQ ? t(a.rstdQ, [n, heads], 'f32') : null,
    rstdK: a.rstdK ? t(a.rstdK, [n, kvHeads], 'f32') : null,
    q,
    k,
    v: t(a.v, [n, kvHeads * D], qkv),
    attn: t(a.attn, [n, heads * D]),
    lse: a.lse.map((b) => t(b, [batch, heads, seqLen], 'f32')),
    attnOut: t(a.attnOut, [n, H]),
    ln2: t(a.ln2, [n, H]),
    rstd2: t(a.rstd2, [n], 'f32'),
    gate: t(a.gate, [n, F]),
    up: t(a.up, [n, F]),
    act: t(a.act, [n, F]),
    down: t(a.down, [n, H]),
    u,
    lnF: t(a.lnF, [n, H]),
    rstdF: t(a.rstdF, [n], 'f32'),
    tokenLse: a.tokenLse ? t(a.tokenLse, [n], 'f32') : null,
    tokenLoss: a.tokenLoss ? t(a.tokenLoss, [n], 'f32') : null,
  };
}

// The Llama-family forward pass, written out as llm.c's gpt2_forward is: a straight list of kernel
// calls over a planned arena (activations.ts). One function per stage, so the trainer can recompute
// one layer alone before its backward (gradient checkpointing):
//
//   encodeEmbedding   x0 = E[ids]                                         (f32 residual stream)
//   encodeLayer(i)    ln1 = RMSNorm(x)                                     input_layernorm
//                     q, k, v = ln1 · Wᵀ (+ bias) (+ s · B A ln1)          NF4 or dense, + LoRA
//                     q, k = RMSNorm_headDim(q, k)                         Qwen3 q_norm / k_norm
//                     q, k = RoPE(q, k; position_ids)
//                     attn = softmax(q kᵀ / sqrt(D)) v                     causal, GQA, segments
//                     h = x + attn · Woᵀ (+ LoRA)                          o_proj, residual add
//                     ln2 = RMSNorm(h)                                     post_attention_layernorm
//                     x' = h + down(silu(gate(ln2)) * up(ln2)) (+ LoRA)    MLP, residual add
//   encodeHead        lnF = RMSNorm(x_L); per-token CE of the chunked lm_head and/or logits
//
// Packed rows [B, T] (training): segment ids keep documents apart, position ids restart per
// document. With a KV cache (generation, generate.ts) a layer writes its roped k and v into the
// cache and attends over it from position `past` on; its GEMVs (few rows, NF4) then take the norms
// and SwiGLU as prologues and the residual adds and LoRA up-projections as epilogues, since no
// backward reads the saves. Activations in the model's dtype (f16 where the device has
// shader-f16: the one switch), the residual stream in f32.
import { createActivations, destroyActivations, forwardTensors, layerLse, type Activations, type ActivationOptions, type ForwardTensors } from './activations.ts';
import type { LinearName } from './arch.ts';
import { ATTENTION_DECODE_MAX_LORA_R, encodeAttention, takesDecodePath } from './attention.ts';
import { encodeAdd, encodeSwiglu } from './elementwise.ts';
import { encodeEmbedding } from './embedding.ts';
import type { Kernels } from './kernels.ts';
import { encodeLinear, encodeLinearLoraU, encodeLinears, linearShape } from './linear.ts';
import { encodeNf4Gemv, NF4_GEMV_MAX_ROWS, type GemvPrologue } from './nf4-gemv.ts';
import type { Nf4GpuWeight } from './nf4.ts';
import { encodeLmHeadLogits, encodeLmHeadLoss } from './lmhead.ts';
import { encodeLoraU, encodeLoraUs, hasDropout, loraGemvParts, type LoraWeights } from './lora.ts';
import type { LoraSet } from './lora-weights.ts';
import type { ModelWeights } from './model.ts';
import { encodeRmsnorm } from './rmsnorm.ts';
import { encodeRope, encodeRopeAppend } from './rope.ts';
import { readTensor, type Tensor } from './tensor.ts';

export interface ForwardContext {
  kernels: Kernels;
  model: ModelWeights;
  /** The LoRA set to apply; null: the base model alone (adapter off). */
  lora: LoraSet | null;
}

/** Packed rows as the data pipeline makes them (src/data/pack.ts), row-major [batch, seqLen]. */
export interface PackedBatch {
  batch: number;
  seqLen: number;
  inputIds: ArrayLike<number>;
  /** Position inside each token's document. */
  positionIds: ArrayLike<number>;
  /** 1..n per document of a row, 0 for padding. */
  segmentIds: ArrayLike<number>;
  /** 1 where a token is trained as a target (labels_mask); absent: every token. */
  lossMask?: ArrayLike<number>;
}

/** Target id of a position that is not trained (>= any vocabulary). */
export const IGNORE_TARGET = 0xffffffff;

/**
 * Next-token targets of packed rows: position i of a row predicts token i + 1 when it is in the
 * same document (segment, not padding) and trained (lossMask[i + 1]); IGNORE_TARGET elsewhere.
 * `count` is the number of trained targets: the loss is their mean.
 */
export function nextTokenTargets(b: PackedBatch): { targets: Uint32Array; count: number } {
  const n = b.batch * b.seqLen;
  const targets = new Uint32Array(n).fill(IGNORE_TARGET);
  let count = 0;
  for (let r = 0; r < b.batch; r++) {
    for (let i = r * b.seqLen; i < (r + 1) * b.seqLen - 1; i++) {
      const seg = b.segmentIds[i];
      if (seg === 0 || b.segmentIds[i + 1] !== seg) continue;
      if (b.lossMask && !b.lossMask[i + 1]) continue;
      targets[i] = b.inputIds[i + 1];
      count++;
    }
  }
  return { targets, count };
}

/** A forward arena with its context: what a training step or a parity test holds. */
export interface ForwardRun {
  ctx: ForwardContext;
  acts: Activations;
}

/** Plans the arena for (batch, seqLen) once; reuse it for every call of that shape or smaller. */
export function createForwardRun(ctx: ForwardContext, options: ActivationOptions): ForwardRun {
  const loraR = options.loraR ?? ctx.lora?.spec.r ?? 0;
  return { ctx, acts: createActivations(ctx.kernels, ctx.model.arch, ctx.model.dtype, { embedDtype: ctx.model.embedDtype, ...options, loraR }) };
}

/** Writes a batch's ids, positions, segments and targets into the arena (queue writes, no allocation). */
export function writeBatch(run: ForwardRun, b: PackedBatch): { tensors: ForwardTensors; trainedTokens: number } {
  const t = forwardTensors(run.acts, b.batch, b.seqLen);
  const n = t.tokens;
  for (const [what, x] of [['inputIds', b.inputIds], ['positionIds', b.positionIds], ['segmentIds', b.segmentIds]] as const) {
    if (x.length !== n) throw new Error(`forward: ${what} has ${x.length} values for ${b.batch} x ${b.seqLen}`);
  }
  const q = run.ctx.kernels.device.queue;
  q.writeBuffer(t.ids.buffer, 0, Uint32Array.from(b.inputIds));
  q.writeBuffer(t.positions.buffer, 0, Uint32Array.from(b.positionIds));
  q.writeBuffer(t.segments.buffer, 0, Uint32Array.from(b.segmentIds));
  const { targets, count } = nextTokenTargets(b);
  q.writeBuffer(t.targets.buffer, 0, targets);
  return { tensors: t, trainedTokens: count };
}

export interface ForwardOptions {
  /** Per-token loss into tokenLoss / tokenLse (the arena must have been planned with loss). */
  loss?: boolean;
  /** Full logits of rows [firstRow, firstRow + rows of `out`) into `out` ([rows, V] f32). */
  logits?: { out: Tensor; firstRow?: number };
  /** Where layers write their K/V (generation); absent: attention over the batch itself. */
  cache?: KvCacheView;
}

/** A KV cache as a layer sees it: buffers [capacity, kvHeads, headDim] per layer, `past` tokens
 * already in it; the call's tokens go to positions past .. past + tokens - 1. Batch 1. */
export interface KvCacheView {
  k: GPUBuffer[];
  v: GPUBuffer[];
  capacity: number;
  past: number;
  /** Scratch for the decode attention path (attention.ts decodePartials); without it, the forward kernel. */
  partials?: GPUBuffer;
  /** Where the decode attention writes its per-head shares of o_proj's LoRA u (attention.ts oLora); without it, a lora-gemv dispatch computes u. */
  loraShares?: GPUBuffer;
}

/**
 * Records the whole forward of the tensors `t` (written by writeBatch or by the caller) into
 * `enc`: embedding, every layer, the head. Returns the final residual tensor.
 */
export function encodeForward(enc: GPUCommandEncoder, run: ForwardRun, t: ForwardTensors, opts: ForwardOptions = {}): Tensor {
  const pass = enc.beginComputePass();
  const xL = encodeForwardPass(pass, run, t, opts);
  pass.end();
  return xL;
}

/**
 * The forward of encodeForward submitted in pieces (the embedding and first layer, then every
 * `layers` layers), so that the GPU starts on it while the CPU records the rest: a training step's
 * forward follows its update, and was otherwise recorded whole while the GPU sat idle (36-64 ms of
 * an 8B step: bench/tensor-core-notes.md, session 12).
 */
export function submitForward(device: GPUDevice, run: ForwardRun, t: ForwardTensors, opts: ForwardOptions = {}, layers = 4): Tensor {
  let enc = device.createCommandEncoder();
  let pass = enc.beginComputePass();
  const submit = () => {
    pass.end();
    device.queue.submit([enc.finish()]);
  };
  const xL = recordForward(run, t, opts, (part) => {
    if (part > 0 && (part - 1) % layers === 0) {
      submit();
      enc = device.createCommandEncoder();
      pass = enc.beginComputePass();
    }
    return pass;
  });
  submit();
  return xL;
}

/** encodeForward into a pass of the caller's (one compute pass: decode captures it, kernels.ts capture). */
export function encodeForwardPass(pass: GPUComputePassEncoder, run: ForwardRun, t: ForwardTensors, opts: ForwardOptions = {}): Tensor {
  return recordForward(run, t, opts, () => pass);
}

/** Records the forward, each part into the pass passFor gives it: -1 the embedding, 0 .. layers - 1 the layers, layers the head. */
function recordForward(run: ForwardRun, t: ForwardTensors, opts: ForwardOptions, passFor: (part: number) => GPUComputePassEncoder): Tensor {
  const { ctx } = run;
  const L = ctx.model.arch.layers;
  encodeEmbed(ctx, passFor(-1), t);
  for (let i = 0; i < L; i++) encodeLayer(passFor(i), ctx, t, i, layerInput(run, t, i), layerInput(run, t, i + 1), opts.cache);
  const xL = layerInput(run, t, L);
  encodeHead(ctx, passFor(L), run.acts, t, xL, opts);
  return xL;
}

/** The residual tensor that is layer i's input (i = layers: the final norm's input). */
export function layerInput(run: ForwardRun, t: ForwardTensors, i: number): Tensor {
  return run.acts.options.checkpoints ? t.residual[i] : t.residual[i % 2];
}

/** x0 = embed_tokens[ids] into residual[0] (f32). */
export function encodeEmbed(ctx: ForwardContext, pass: GPUComputePassEncoder, t: ForwardTensors): void {
  encodeEmbedding(ctx.kernels, pass, ctx.model.embed, t.ids, t.residual[0]);
}

/**
 * Records decoder layer `i` from xIn to xOut (both [tokens, H] f32, distinct buffers). The
 * arena's layer tensors then hold this layer's saves (ln1, q, k, v, attn, lse, h, ln2, gate, up,
 * act, the LoRA u's, the rstds): what its backward needs. With `cache`, k and v are also
 * written to the cache and attention runs over it. xOut null: the recompute before this layer's
 * backward, which needs the saves but not the output (the next layer's checkpoint already holds
 * it), so down_proj's GEMM, its LoRA up-projection and the residual add are left out (about a
 * quarter of the recompute's GEMM FLOPs); down's LoRA u is still written, its backward reads it.
 */
export function encodeLayer(
  pass: GPUComputePassEncoder,
  ctx: ForwardContext,
  t: ForwardTensors,
  i: number,
  xIn: Tensor,
  xOut: Tensor | null,
  cache?: KvCacheView,
): void {
  const { kernels, model } = ctx;
  const { arch } = model;
  const W = model.layers[i];
  const lora = ctx.lora?.layers[i];
  const { heads, kvHeads, headDim: D } = arch;
  const n = t.tokens;
  const eps = arch.rmsNormEps;
  const loraU = (name: LinearName): Tensor => {
    const u = t.u[name];
    if (!u) throw new Error('forward: the arena was planned without LoRA buffers');
    return u;
  };
  // Few rows of an NF4 base take the GEMV (as nf4-matmul.ts decides), whose epilogue adds the
  // LoRA's up-projection and a residual: two dispatches fewer per projection in decode.
  const gemvWeight = (name: LinearName): Nf4GpuWeight | null => {
    const l = W.linears[name];
    return l.kind === 'nf4' && n <= NF4_GEMV_MAX_ROWS ? l.w : null;
  };
  /** o_proj's LoRA u as per-head shares, written by the decode attention's combine (see below). */
  let oShares: Tensor | undefined;
  /** Where a long row's u goes as partial sums over K (decode: loraGemvParts), in the cache's scratch; null: whole. */
  const uParts = (x: Tensor, l: LoraWeights): Tensor | null => {
    const parts = loraGemvParts(x.shape[x.shape.length - 1]);
    const r = l.a.shape[0];
    if (!cache?.loraShares || parts < 2 || hasDropout(l) || parts * n * r * 4 > cache.loraShares.size) return null;
    return { buffer: cache.loraShares, shape: [parts, n, r], dtype: 'f32' };
  };
  /**
   * The GEMV of one projection; its LoRA's u recorded first (in parts where its K is long) unless
   * `uDone` (gemvGroup recorded it) or the attention wrote it (oShares).
   */
  const gemv = (p: GPUComputePassEncoder, name: LinearName, w: Nf4GpuWeight, x: Tensor, y: Tensor, residual?: Tensor, prologue?: GemvPrologue, uDone = false): void => {
    const l = lora?.[name];
    let u: { u: Tensor; parts?: number } | undefined;
    if (l && name === 'o_proj' && oShares) u = { u: oShares, parts: heads };
    else if (l) {
      const split = uDone ? null : uParts(x, l);
      if (split) encodeLoraUs(kernels, p, x, [{ lora: l, u: split }], prologue, split.shape[0]);
      else if (!uDone) encodeLoraU(kernels, p, x, l, loraU(name), prologue);
      u = split ? { u: split, parts: split.shape[0] } : { u: loraU(name) };
    }
    encodeNf4Gemv(kernels, p, x, w, y, { bias: W.linears[name].bias, residual, lora: l && u && { ...u, b: l.b, scale: l.scale }, prologue });
  };
  // With a KV cache (chat: no backward reads this layer's saves) the GEMVs also fold in what
  // precedes them, the norm before q/k/v and gate/up, the SwiGLU before down: a dispatch fewer
  // each, where every projection of the group takes the GEMV (K % 32 == 0, no dropout).
  const folds = (...names: LinearName[]): boolean =>
    !!cache && names.every((name) => gemvWeight(name) && linearShape(W.linears[name])[1] % 32 === 0 && !(lora?.[name] && hasDropout(lora[name])));
  const proj = (p: GPUComputePassEncoder, name: LinearName, x: Tensor, y: Tensor): void => {
    const w = gemvWeight(name);
    if (w) return gemv(p, name, w, x, y);
    const l = lora?.[name];
    encodeLinear(kernels, p, x, W.linears[name], y, l && { weights: l, u: loraU(name) });
  };
  /** out = residual + proj(x), through `tmp` and an add unless the GEMV's epilogue does it. */
  const projAdd = (p: GPUComputePassEncoder, name: LinearName, x: Tensor, tmp: Tensor, residual: Tensor, out: Tensor): void => {
    const w = gemvWeight(name);
    if (w && !W.linears[name].bias) return gemv(p, name, w, x, out, residual);
    proj(p, name, x, tmp);
    encodeAdd(kernels, p, residual, tmp, out);
  };
  /** proj for projections of one x (q/k/v, gate/up): encodeLinears, which shares x's f16 rows, unless they take the GEMV. */
  const projs = (p: GPUComputePassEncoder, group: [LinearName, Tensor][], x: Tensor): void => {
    if (group.some(([name]) => gemvWeight(name))) {
      for (const [name, y] of group) proj(p, name, x, y);
      return;
    }
    encodeLinears(kernels, p, x, group.map(([name, y]) => ({ l: W.linears[name], y, lora: lora?.[name] && { weights: lora[name]!, u: loraU(name) } })));
  };
  const heads3 = (x: Tensor, h: number): Tensor => ({ ...x, shape: [n, h, D] });

  /** GEMVs of projections of one x, their adapters' u's first in one dispatch (encodeLoraUs). */
  const gemvGroup = (p: GPUComputePassEncoder, group: [LinearName, Tensor][], x: Tensor, prologue: GemvPrologue): void => {
    const adapted = group.filter(([name]) => lora?.[name]).map(([name]) => ({ lora: lora![name]!, u: loraU(name) }));
    if (adapted.length) encodeLoraUs(kernels, p, x, adapted, prologue);
    for (const [name, y] of group) gemv(p, name, gemvWeight(name)!, x, y, undefined, prologue, true);
  };

  const qkv: [LinearName, Tensor][] = [['q_proj', t.qRaw], ['k_proj', t.kRaw], ['v_proj', t.v]];
  if (folds('q_proj', 'k_proj', 'v_proj')) {
    gemvGroup(pass, qkv, xIn, { kind: 'rmsnorm', weight: W.inputNorm, eps });
  } else {
    encodeRmsnorm(kernels, pass, xIn, W.inputNorm, t.ln1, t.rstd1, eps);
    projs(pass, qkv, t.ln1);
  }
  if (W.qNorm && W.kNorm && t.rstdQ && t.rstdK) {
    encodeRmsnorm(kernels, pass, heads3(t.qRaw, heads), W.qNorm, heads3(t.q, heads), t.rstdQ, eps);
    encodeRmsnorm(kernels, pass, heads3(t.kRaw, kvHeads), W.kNorm, heads3(t.k, kvHeads), t.rstdK, eps);
  }
  const window = arch.slidingWindow ?? 0;
  const q4 = { ...t.q, shape: [t.batch, t.seqLen, heads, D] };
  const o4 = { ...t.attn, shape: [t.batch, t.seqLen, heads, D] };
  if (cache) {
    if (t.batch !== 1) throw new Error('forward: a KV cache takes batch 1');
    const skv = cache.past + n;
    if (skv > cache.capacity) throw new Error(`forward: the KV cache holds ${cache.capacity} tokens, not ${skv}`);
    // q roped in place, k roped and v copied into the caches at their positions (past ..): one
    // dispatch. Attention then reads the whole cache with the positions: neither kernel's
    // parameters change from token to token.
    const whole = (buffer: GPUBuffer): Tensor => ({ buffer, shape: [cache.capacity, kvHeads, D], dtype: model.dtype });
    const kv3 = (x: Tensor): Tensor => heads3(x, kvHeads);
    encodeRopeAppend(kernels, pass, heads3(t.q, heads), { k: kv3(t.k), v: kv3(t.v), kCache: whole(cache.k[i]), vCache: whole(cache.v[i]) }, t.positions, model.invFreq);
    const kv = (buffer: GPUBuffer): Tensor => ({ buffer, shape: [1, cache.capacity, kvHeads, D], dtype: model.dtype });
    // o_proj's LoRA u summed per head by the decode attention's combine, for o_proj's GEMV to add
    // up: a lora-gemv dispatch fewer per layer and token.
    const oLora = lora?.o_proj;
    if (oLora && cache.loraShares && gemvWeight('o_proj') && !hasDropout(oLora) && takesDecodePath({ decodePartials: cache.partials }, n, D)) {
      const r = oLora.a.shape[0];
      if (r <= ATTENTION_DECODE_MAX_LORA_R && D % 16 === 0) oShares = { buffer: cache.loraShares, shape: [heads, n, r], dtype: 'f32' };
    }
    encodeAttention(
      kernels,
      pass,
      { q: q4, k: kv(cache.k[i]), v: kv(cache.v[i]), o: o4, lse: layerLse(t, i), decodePartials: cache.partials, positions: t.positions, oLora: oShares && { a: oLora!.a, shares: oShares } },
      { batch: 1, tq: n, skv: cache.capacity, heads, kvHeads, headDim: D, causalOffset: cache.past, window },
    );
  } else {
    encodeRope(kernels, pass, heads3(t.q, heads), t.positions, model.invFreq);
    encodeRope(kernels, pass, heads3(t.k, kvHeads), t.positions, model.invFreq);
    const kv4 = (x: Tensor): Tensor => ({ ...x, shape: [t.batch, t.seqLen, kvHeads, D] });
    encodeAttention(
      kernels,
      pass,
      // A recompute before the backward (xOut null) reads the lse its forward kept, where the arena keeps one per layer.
      { q: q4, k: kv4(t.k), v: kv4(t.v), o: o4, lse: layerLse(t, i), segmentIds: t.segments, lseKnown: !xOut && t.lse.length > 1 },
      { batch: t.batch, tq: t.seqLen, skv: t.seqLen, heads, kvHeads, headDim: D, window },
    );
  }
  projAdd(pass, 'o_proj', t.attn, t.attnOut, xIn, t.mid);
  const gateUp: [LinearName, Tensor][] = [['gate_proj', t.gate], ['up_proj', t.up]];
  if (folds('gate_proj', 'up_proj')) {
    gemvGroup(pass, gateUp, t.mid, { kind: 'rmsnorm', weight: W.postNorm, eps });
  } else {
    encodeRmsnorm(kernels, pass, t.mid, W.postNorm, t.ln2, t.rstd2, eps);
    projs(pass, gateUp, t.ln2);
  }
  if (!xOut) {
    encodeSwiglu(kernels, pass, t.gate, t.up, t.act);
    // The recompute needs down_proj's u alone, made as the forward made it (the same values for the backward's dB).
    const l = lora?.down_proj;
    if (l) encodeLinearLoraU(kernels, pass, t.act, W.linears.down_proj, { weights: l, u: loraU('down_proj') });
  } else if (folds('down_proj') && !W.linears.down_proj.bias) {
    gemv(pass, 'down_proj', gemvWeight('down_proj')!, t.gate, xOut, t.mid, { kind: 'swiglu', up: t.up });
  } else {
    encodeSwiglu(kernels, pass, t.gate, t.up, t.act);
    projAdd(pass, 'down_proj', t.act, t.down, t.mid, xOut);
  }
}

/** lnF = RMSNorm(xL); then the chunked lm_head's per-token loss and/or logits. */
export function encodeHead(
  ctx: ForwardContext,
  pass: GPUComputePassEncoder,
  acts: Activations,
  t: ForwardTensors,
  xL: Tensor,
  opts: ForwardOptions,
): void {
  const { kernels, model } = ctx;
  encodeRmsnorm(kernels, pass, xL, model.finalNorm, t.lnF, t.rstdF, model.arch.rmsNormEps);
  if (opts.loss) {
    if (!t.tokenLse || !t.tokenLoss || !acts.lmScratch) throw new Error('forward: the arena was planned without the loss');
    encodeLmHeadLoss(kernels, pass, { h: t.lnF, embed: model.lmHead, targets: t.targets, lse: t.tokenLse, loss: t.tokenLoss }, acts.lmScratch);
  }
  if (opts.logits) encodeLmHeadLogits(kernels, pass, t.lnF, model.lmHead, opts.logits.out, { firstRow: opts.logits.firstRow });
}

/** The arena's full-logits buffer as a [rows, V] tensor (rows <= the planned logitsRows). */
export function logitsTensor(acts: Activations, rows: number): Tensor {
  if (!acts.logits || rows > acts.options.logitsRows) throw new Error(`forward: the arena holds ${acts.options.logitsRows} rows of logits, not ${rows}`);
  return { buffer: acts.logits, shape: [rows, acts.arch.vocabSize], dtype: 'f32' };
}

/** Mean of the per-token losses over `trainedTokens` (the sum in float64). */
export async function readMeanLoss(device: GPUDevice, t: ForwardTensors, trainedTokens: number): Promise<number> {
  if (!t.tokenLoss) throw new Error('forward: no loss in this arena');
  const loss = await readTensor(device, t.tokenLoss);
  let sum = 0;
  for (const x of loss) sum += x;
  return trainedTokens > 0 ? sum / trainedTokens : 0;
}

export interface ForwardResult {
  /** Mean cross-entropy over the trained targets (when asked for). */
  loss?: number;
  trainedTokens: number;
  /** [batch · seqLen, V] f32 (when asked for). */
  logits?: Float32Array;
}

/** One forward of a packed batch, submitted and read back: the loss and/or the full logits. */
export async function forwardBatch(run: ForwardRun, b: PackedBatch, want: { loss?: boolean; logits?: boolean }): Promise<ForwardResult> {
  const { tensors: t, trainedTokens } = writeBatch(run, b);
  const device = run.ctx.kernels.device;
  const out = want.logits ? logitsTensor(run.acts, t.tokens) : undefined;
  submitForward(device, run, t, { loss: want.loss, logits: out ? { out, firstRow: 0 } : undefined });
  const result: ForwardResult = { trainedTokens };
  if (want.loss) result.loss = await readMeanLoss(device, t, trainedTokens);
  if (out) result.logits = await readTensor(device, out);
  return result;
}

/** Frees the arena (the model and the LoRA set belong to the caller). */
export function destroyForwardRun(run: ForwardRun): void {
  destroyActivations(run.acts);
}

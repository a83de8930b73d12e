// The backward pass of the Llama-family model, written out as llm.c's gpt2_backward is: explicit
// per-layer code over the forward's arena (activations.ts), with gradient checkpointing. The
// forward keeps each layer's input (residual[i]); before the backward of layer i its forward is
// recomputed alone (encodeLayer), which leaves exactly that layer's saves in the arena. The
// recompute stops before down_proj's GEMM: its output is layer i + 1's input, already kept.
//
//   head     dlnF = lm_head+CE backward (fused, chunked; 1 / N with N the trained tokens of the
//            whole accumulated batch)                   dx_L = RMSNorm_F backward(dlnF)
//   layer i  (dx = gradient of the layer's output, f32, updated in place to that of its input)
//            dact   = dx · W_down (+ LoRA)               dgate, dup = SwiGLU backward(dact)
//            dln2   = dgate · W_gate + dup · W_up (+ LoRA both)
//            dx    += RMSNorm_post backward(dln2)        (now the gradient of mid = x + attn_out)
//            dattn  = dx · W_o (+ LoRA)                  dq, dk, dv = attention backward(dattn)
//            dq, dk = RoPE⁻¹(dq, dk)                     Qwen3: q_norm / k_norm backward
//            dln1   = dq · W_q + dk · W_k + dv · W_v (+ LoRA each; biases are frozen)
//            dx    += RMSNorm_in backward(dln1)          (now the gradient of the layer's input)
//
// LoRA grads (dA, dB) accumulate (+=) into a LoraGradSet; the caller zeroes it once per step.
// The frozen weights get no gradient and the embedding is not trained. f32 activations only for
// now (the f16 mode needs dtype casts between the f32 residual gradient and the f16 linears).
import { encodeAttentionBackward } from '../attention-backward.ts';
import { ATTENTION_STATS_PER_ROW } from '../attention-mma.ts';
import { encodeAdd } from '../elementwise.ts';
import { layerInput, encodeLayer, type ForwardRun } from '../forward.ts';
import { layerLse, type ForwardTensors } from '../activations.ts';
import type { Kernels } from '../kernels.ts';
import type { LinearName } from '../arch.ts';
import { trackedBuffer } from '../gpu-memory.ts';
import { linearComputesLoraU, linearTakesLora, type LinearWeight } from '../linear.ts';
import { createLmHeadBackwardScratch, encodeLmHeadBackward, lmHeadBackwardChunkRows, type LmHeadBackwardScratch } from '../lmhead-backward.ts';
import { encodeLoraBackward, encodeLoraBTranspose, loraBackwardScratchBytes } from '../lora-backward.ts';
import { hasDropout } from '../lora.ts';
import { encodeMatmul } from '../matmul.ts';
import { encodeNf4MatmulBackward } from '../nf4-matmul.ts';
import { encodeRmsnormBackward } from '../rmsnorm-backward.ts';
import { encodeRope } from '../rope.ts';
import { encodeSwigluBackward } from '../swiglu-backward.ts';
import type { DType, Tensor } from '../tensor.ts';
import type { LoraGradSet } from './grads.ts';

/** The gradient buffers of one layer's backward, allocated once for the arena's capacity. */
export interface BackwardScratch {
  capacity: number;
  dtype: DType;
  /** The residual stream's gradient [tokens, H] f32. */
  dx: GPUBuffer;
  /** dln1 / dln2 / dlnF [tokens, H]. */
  dln: GPUBuffer;
  /** A second [tokens, H]: the dense path's partial dX before it is added. */
  tmp: GPUBuffer;
  /** dact [tokens, F]. */
  dact: GPUBuffer;
  dq: GPUBuffer;
  dk: GPUBuffer;
  dv: GPUBuffer;
  /** Qwen3: gradients of the projections before q_norm / k_norm. */
  dqRaw: GPUBuffer | null;
  dkRaw: GPUBuffer | null;
  /** du [tokens, r] f32 of the LoRA backward. */
  du: GPUBuffer | null;
  /** The LoRA backward's workspace (B transposed, partial sums of dA / dB): the largest linear's. */
  lora: GPUBuffer | null;
  /** Attention backward stats [tokens · heads · ATTENTION_STATS_PER_ROW] f32. */
  stats: GPUBuffer;
  lm: LmHeadBackwardScratch;
  buffers: GPUBuffer[];
}

export function createBackwardScratch(kernels: Kernels, run: ForwardRun): BackwardScratch {
  const { acts } = run;
  const { arch, dtype, capacity: n } = acts;
  if (dtype !== 'f32') throw new Error('backward: training runs on f32 activations for now (the f16 mode is not wired yet)');
  if (!acts.options.checkpoints) throw new Error('backward: the arena must keep every layer input (checkpoints)');
  if (!acts.tokenLse) throw new Error('backward: the arena must be planned with the loss');
  const { hidden: H, intermediate: F, heads, kvHeads, headDim: D } = arch;
  const buffers: GPUBuffer[] = [];
  const buf = (label: string, elems: number): GPUBuffer => {
    // Counted by the device's accountant, so a run's memory metrics include the backward's scratch.
    const b = trackedBuffer(
      kernels.device,
      { size: Math.max(4, elems * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: `grad.${label}` },
      'scratch',
    );
    buffers.push(b);
    return b;
  };
  const r = acts.options.loraR;
  const chunk = lmHeadBackwardChunkRows(kernels, n, H, run.ctx.model.embedDtype);
  const lm = createLmHeadBackwardScratch(kernels, n, chunk);
  buffers.push(lm.g);
  return {
    capacity: n,
    dtype,
    dx: buf('dx', n * H),
    dln: buf('dln', n * H),
    tmp: buf('tmp', n * H),
    dact: buf('dact', n * F),
    dq: buf('dq', n * heads * D),
    dk: buf('dk', n * kvHeads * D),
    dv: buf('dv', n * kvHeads * D),
    dqRaw: arch.qkNorm ? buf('dq_raw', n * heads * D) : null,
    dkRaw: arch.qkNorm ? buf('dk_raw', n * kvHeads * D) : null,
    du: r > 0 ? buf('du', n * r) : null,
    lora: r > 0 ? buf('lora', Math.max(...arch.linears.map((l) => loraBackwardScratchBytes({ m: n, k: l.in, n: l.out, r }))) / 4) : null,
    stats: buf('attn_stats', n * heads * ATTENTION_STATS_PER_ROW),
    lm,
    buffers,
  };
}

export function destroyBackwardScratch(s: BackwardScratch): void {
  for (const b of s.buffers) b.destroy();
  s.buffers = [];
}

/**
 * Records dx (+)= dy · W (+ du · A with `lora`) for a frozen linear (the backward of y = x · Wᵀ
 * w.r.t. x). NF4: the fused dequantizing kernel, which accumulates itself, and adds LoRA's du · A
 * where linearTakesLora. Dense: the matmul into `tmp`, then an add.
 */
export function encodeLinearBackward(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  dy: Tensor,
  l: LinearWeight,
  dx: Tensor,
  accumulate: boolean,
  tmp: Tensor,
  /** LoRA's du · A added by the GEMM; with `down` the GEMM computes du = down.scale · dy · down.dᵀ first (matmul-mma.ts). */
  lora?: { du: Tensor; a: Tensor; down?: { d: Tensor; scale: number } },
): void {
  if (l.kind === 'nf4') {
    encodeNf4MatmulBackward(kernels, pass, dy, l.w, dx, { accumulate, lora: lora && { u: lora.du, w: lora.a, scale: 1, down: lora.down } });
    return;
  }
  if (lora) throw new Error("backward: a dense base does not add LoRA's du · A");
  const [nOut, kIn] = [l.w.shape[0], l.w.shape[1]];
  const m = dy.shape[0];
  if (!accumulate) {
    encodeMatmul(kernels, pass, dy, l.w, dx, { m, n: kIn, k: nOut });
    return;
  }
  const t = { ...tmp, shape: [m, kIn] };
  encodeMatmul(kernels, pass, dy, l.w, t, { m, n: kIn, k: nOut });
  encodeAdd(kernels, pass, dx, t, dx);
}

/**
 * Records the backward of the whole model for the batch whose forward (with the loss) has just
 * been recorded into `enc` (encodeForward): the head, then every layer from the last, each
 * recomputed first. LoRA grads are added to `grads`. `normalizer`: the trained tokens of the
 * whole accumulated batch.
 */
export function encodeBackward(
  enc: GPUCommandEncoder,
  run: ForwardRun,
  t: ForwardTensors,
  s: BackwardScratch,
  grads: LoraGradSet,
  normalizer: number,
): void {
  const { ctx } = run;
  const { kernels, model } = ctx;
  const { arch } = model;
  const n = t.tokens;
  if (n > s.capacity) throw new Error(`backward: ${n} tokens, the scratch holds ${s.capacity}`);
  const { hidden: H, intermediate: F, heads, kvHeads, headDim: D } = arch;
  const dt = s.dtype;
  const view = (buffer: GPUBuffer, shape: number[], dtype: DType = dt): Tensor => ({ buffer, shape, dtype });
  const dx = view(s.dx, [n, H], 'f32');
  const dln = view(s.dln, [n, H]);
  const tmp = view(s.tmp, [n, H]);
  const L = arch.layers;

  // Head: lnF and the token lse are in the arena from the forward.
  let pass = enc.beginComputePass();
  encodeLmHeadBackward(
    kernels,
    pass,
    { h: t.lnF, embed: model.lmHead, targets: t.targets, lse: t.tokenLse!, dh: dln },
    s.lm,
    { normalizer },
  );
  encodeRmsnormBackward(kernels, pass, { x: layerInput(run, t, L), w: model.finalNorm, rstd: t.rstdF, dy: dln, dx });
  pass.end();

  for (let i = L - 1; i >= 0; i--) {
    // The forward left the last layer's saves in the arena; every other layer is recomputed.
    pass = enc.beginComputePass();
    if (i !== L - 1) encodeLayer(pass, ctx, t, i, layerInput(run, t, i), null);
    encodeLayerBackward(kernels, pass, run, t, s, grads, i, { dx, dln, tmp, view, n, H, F, heads, kvHeads, D });
    pass.end();
  }
}

interface LayerViews {
  dx: Tensor;
  dln: Tensor;
  tmp: Tensor;
  view: (buffer: GPUBuffer, shape: number[], dtype?: DType) => Tensor;
  n: number;
  H: number;
  F: number;
  heads: number;
  kvHeads: number;
  D: number;
}

function encodeLayerBackward(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  run: ForwardRun,
  t: ForwardTensors,
  s: BackwardScratch,
  grads: LoraGradSet,
  i: number,
  v: LayerViews,
): void {
  const { model } = run.ctx;
  const { arch } = model;
  const W = model.layers[i];
  const lora = run.ctx.lora?.layers[i];
  const g = grads.layers[i];
  const { dx, dln, view, n, F, heads, kvHeads, D } = v;

  /**
   * dIn (+)= dy · W (+ LoRA's share, its dA/dB accumulated) for linear `name` with input x. LoRA's
   * du · A goes into the base's GEMM where that takes it (no dropout mask to apply to it alone):
   * du, dA and dB first, then the GEMM; where the GEMM also computes du itself from its f16 rows of
   * dy (an f32 dy, N % 16 == 0: mmaTakesLoraDown), Bᵀ first, then the GEMM, then dA and dB. Else
   * the base first and lora-backward adds du · A.
   */
  const linearBack = (name: LinearName, x: Tensor, dy: Tensor, dIn: Tensor, accumulate: boolean): void => {
    const l = lora?.[name];
    if (!l) return encodeLinearBackward(kernels, pass, dy, W.linears[name], dIn, accumulate, v.tmp);
    const gl = g?.[name];
    const u = t.u[name];
    if (!gl || !u || !s.du) throw new Error(`backward: layer ${i} ${name} has LoRA weights without grads or saves`);
    const du = view(s.du, [n, l.a.shape[0]], 'f32');
    const scratch = s.lora ?? undefined;
    if (!hasDropout(l) && linearTakesLora(kernels, W.linears[name], n)) {
      const bt = linearComputesLoraU(kernels, W.linears[name], dy, l) ? encodeLoraBTranspose(kernels, pass, l, scratch) : null;
      if (bt) {
        encodeLinearBackward(kernels, pass, dy, W.linears[name], dIn, accumulate, v.tmp, { du, a: l.a, down: { d: bt, scale: l.scale } });
        encodeLoraBackward(kernels, pass, l, gl, { x, u, dy, du, scratch }, { accumulateGrads: true, duGiven: true });
        return;
      }
      encodeLoraBackward(kernels, pass, l, gl, { x, u, dy, du, scratch }, { accumulateGrads: true });
      encodeLinearBackward(kernels, pass, dy, W.linears[name], dIn, accumulate, v.tmp, { du, a: l.a });
      return;
    }
    encodeLinearBackward(kernels, pass, dy, W.linears[name], dIn, accumulate, v.tmp);
    encodeLoraBackward(kernels, pass, l, gl, { x, u, dy, du, dx: dIn, scratch }, { accumulateGrads: true, accumulateDx: true });
  };

  // MLP: x' = mid + down(silu(gate(ln2)) * up(ln2)).
  const dact = view(s.dact, [n, F]);
  linearBack('down_proj', t.act, dx, dact, false);
  encodeSwigluBackward(kernels, pass, t.gate, t.up, dact, t.gate, t.up); // in place: gate, up := dgate, dup
  linearBack('gate_proj', t.ln2, t.gate, dln, false);
  linearBack('up_proj', t.ln2, t.up, dln, true);
  encodeRmsnormBackward(kernels, pass, { x: t.mid, w: W.postNorm, rstd: t.rstd2, dy: dln, dx }, { accumulate: true });

  // Attention: mid = x + o_proj(attn).
  const dattn = view(s.dact, [n, heads * D]); // dact is free again
  linearBack('o_proj', t.attn, dx, dattn, false);
  const q4 = (x: Tensor): Tensor => ({ ...x, shape: [t.batch, t.seqLen, heads, D] });
  const kv4 = (x: Tensor): Tensor => ({ ...x, shape: [t.batch, t.seqLen, kvHeads, D] });
  const dq = view(s.dq, [n, heads * D]);
  const dk = view(s.dk, [n, kvHeads * D]);
  const dv = view(s.dv, [n, kvHeads * D]);
  encodeAttentionBackward(
    kernels,
    pass,
    {
      q: q4(t.q),
      k: kv4(t.k),
      v: kv4(t.v),
      o: q4(t.attn),
      lse: layerLse(t, i),
      segmentIds: t.segments,
      dout: q4(dattn),
      dq: q4(dq),
      dk: kv4(dk),
      dv: kv4(dv),
      stats: view(s.stats, [t.batch, heads, t.seqLen, ATTENTION_STATS_PER_ROW], 'f32'),
    },
    { batch: t.batch, tq: t.seqLen, skv: t.seqLen, heads, kvHeads, headDim: D, window: arch.slidingWindow ?? 0 },
  );
  const heads3 = (x: Tensor, h: number): Tensor => ({ ...x, shape: [n, h, D] });
  encodeRope(kernels, pass, heads3(dq, heads), t.positions, model.invFreq, { inverse: true });
  encodeRope(kernels, pass, heads3(dk, kvHeads), t.positions, model.invFreq, { inverse: true });
  let dqProj = dq;
  let dkProj = dk;
  if (arch.qkNorm) {
    if (!W.qNorm || !W.kNorm || !t.rstdQ || !t.rstdK || !s.dqRaw || !s.dkRaw) throw new Error(`backward: layer ${i} lacks q_norm/k_norm weights or saves`);
    dqProj = view(s.dqRaw, [n, heads * D]);
    dkProj = view(s.dkRaw, [n, kvHeads * D]);
    encodeRmsnormBackward(kernels, pass, { x: heads3(t.qRaw, heads), w: W.qNorm, rstd: t.rstdQ, dy: heads3(dq, heads), dx: heads3(dqProj, heads) });
    encodeRmsnormBackward(kernels, pass, { x: heads3(t.kRaw, kvHeads), w: W.kNorm, rstd: t.rstdK, dy: heads3(dk, kvHeads), dx: heads3(dkProj, kvHeads) });
  }
  linearBack('q_proj', t.ln1, dqProj, dln, false);
  linearBack('k_proj', t.ln1, dkProj, dln, true);
  linearBack('v_proj', t.ln1, dv, dln, true);
  encodeRmsnormBackward(kernels, pass, { x: layerInput(run, t, i), w: W.inputNorm, rstd: t.rstd1, dy: dln, dx }, { accumulate: true });
}

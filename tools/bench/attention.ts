// Attention and the lm_head at the training shapes (seq T, batch 1, one packed document): attention
// checked against float64 first (the tensor-core kernels where the device has them), then its
// forward and backward TFLOP/s in f32 and f16 storage, SIMT and tensor cores side by side, and what one training step spends in it (forward twice with
// checkpointing's recompute, backward once, every layer), to set beside the step time.
import { encodeAttention } from '../../src/engine/attention.ts';
import { createAttentionBackwardStats, encodeAttentionBackward } from '../../src/engine/attention-backward.ts';
import { parseModelConfig } from '../../src/engine/arch.ts';
import type { Gpu } from '../../src/engine/gpu.ts';
import { Kernels } from '../../src/engine/kernels.ts';
import { attentionMmaChecks, attentionMmaDigest, checkAttentionMma, type AttentionMmaCheck } from '../../src/engine/attention-mma-check.ts';
import { createTensor, uploadTensor, uploadU32, type DType, type Tensor } from '../../src/engine/tensor.ts';
import { randomF32 } from '../../src/util/random.ts';
import { createLmHeadScratch, destroyLmHeadScratch, encodeLmHeadLoss, lmHeadChunkRows } from '../../src/engine/lmhead.ts';
import { createLmHeadBackwardScratch, encodeLmHeadBackward, lmHeadBackwardChunkRows } from '../../src/engine/lmhead-backward.ts';
import { embedDtypeFor } from '../../src/engine/model.ts';
import { LOAD_CONFIGS } from './load.ts';
import { timePass } from './timing.ts';
import type { EngineBenchOptions } from './engine.ts';

export interface AttentionVariantResult {
  /** Storage type and kernels: 'f32 simt', 'f16 simt', 'f16 tensor cores'. */
  variant: string;
  forwardMs: number;
  backwardMs: number;
  /** Causal FLOPs: 2·T²·heads·headDim forward (q·kᵀ and p·v over half the square), 2.5x that backward. */
  forwardTflops: number;
  backwardTflops: number;
  /** layers · (2 · forward + backward): attention's time in one checkpointed training step. */
  trainStepSeconds: number;
}

export interface AttentionBenchResult {
  op: 'attention';
  shape: string;
  /** [T, heads, kvHeads, headDim]. */
  dims: number[];
  /** Side by side in one run: f32 and f16 on the SIMT kernels, f16 on the tensor cores where the device has them. */
  variants: AttentionVariantResult[];
  /** The chunked lm_head + cross-entropy over T rows (f32 h, E as training stores it): loss, backward to h. */
  lmHeadLossMs: number;
  lmHeadBackwardMs: number;
  lmHeadLossTflops: number;
  /** The backward recomputes the logits and multiplies back: 2 x the forward's FLOPs. */
  lmHeadBackwardTflops: number;
}

/** The checks of the tensor-core attention (or of the SIMT kernels in f16, on a device without subgroup matrices) made before timing. */
export interface AttentionChecksReport {
  op: 'attention-mma-checks';
  digest: string;
  checks: AttentionMmaCheck[];
}

export async function checkAttention(kernels: Kernels): Promise<AttentionChecksReport> {
  const checks: AttentionMmaCheck[] = [];
  for (const [c, dtype] of attentionMmaChecks()) {
    const r = await checkAttentionMma(kernels, c, dtype);
    console.log(`attention check ${JSON.stringify(c)} ${dtype}: ${r.ok ? 'ok' : 'FAILED'} (forward ${r.tensorCores ? 'tensor cores' : 'simt'}, backward ${r.backwardTensorCores ? 'tensor cores' : 'simt'}) o ${r.o.toExponential(2)} (${r.oRounded.toExponential(2)} against f16 inputs; from the known lse ${r.oKnown.toExponential(2)}${r.lseKept ? "" : ", lse CHANGED"}) lse ${r.lse.toExponential(2)} dq ${r.dq.toExponential(2)} dk ${r.dk.toExponential(2)} dv ${r.dv.toExponential(2)}`);
    checks.push(r);
  }
  return { op: 'attention-mma-checks', digest: attentionMmaDigest(), checks };
}

/** Forward and backward seconds at T (batch 1, one packed document) in `dtype` (q, k, v in `qkv`) on `kernels`. */
export async function timeAttention(gpu: Gpu, kernels: Kernels, dtype: DType, arch: { heads: number; kvHeads: number; headDim: number }, T: number, repeats: number, qkv: DType = dtype) {
  const { heads, kvHeads, headDim: D } = arch;
  const dev = gpu.device;
  const rand = (shape: number[], seed: number, type = dtype): Tensor => uploadTensor(dev, randomF32(shape.reduce((a, b) => a * b, 1), seed), shape, type);
  const q = rand([1, T, heads, D], 1, qkv);
  const k = rand([1, T, kvHeads, D], 2, qkv);
  const v = rand([1, T, kvHeads, D], 3, qkv);
  const dout = rand([1, T, heads, D], 4);
  const o = createTensor(dev, [1, T, heads, D], dtype);
  const lse = createTensor(dev, [1, heads, T], 'f32');
  const dq = createTensor(dev, [1, T, heads, D], dtype);
  const dk = createTensor(dev, [1, T, kvHeads, D], dtype);
  const dv = createTensor(dev, [1, T, kvHeads, D], dtype);
  const segmentIds = uploadU32(dev, new Uint32Array(T).fill(1));
  const s = { batch: 1, tq: T, skv: T, heads, kvHeads, headDim: D };
  const stats = createAttentionBackwardStats(dev, s);
  const fwd = await timePass(gpu, repeats, (pass) => encodeAttention(kernels, pass, { q, k, v, o, lse, segmentIds }, s));
  const bwd = await timePass(gpu, repeats, (pass) => encodeAttentionBackward(kernels, pass, { q, k, v, o, lse, segmentIds, dout, dq, dk, dv, stats }, s));
  for (const t of [q, k, v, dout, o, lse, dq, dk, dv, stats]) t.buffer.destroy();
  segmentIds.buffer.destroy();
  return { fwd, bwd };
}

export async function benchAttention(gpu: Gpu, kernels: Kernels, opts: EngineBenchOptions, repeats: number): Promise<AttentionBenchResult[]> {
  const results: AttentionBenchResult[] = [];
  const T = opts.seqLen;
  const simt = kernels.gpu.info.mmaF16 ? new Kernels({ ...kernels.gpu, info: { ...kernels.gpu.info, mmaF16: false } }) : kernels;
  const variants: [string, DType, Kernels, DType?][] = [['f32 simt', 'f32', simt]];
  if (gpu.info.f16) variants.push(['f16 simt', 'f16', simt]);
  // Training's: f16 q, k, v beside an f32 o and gradients (activations.ts qkvDtype).
  if (kernels.gpu.info.mmaF16) variants.push(['f32 tensor cores', 'f32', kernels], ['f16 tensor cores', 'f16', kernels], ['f16 q/k/v, f32 tensor cores', 'f32', kernels, 'f16']);
  for (const shape of opts.shapes) {
    const arch = parseModelConfig({ ...LOAD_CONFIGS[shape], ...(opts.vocab ? { vocab_size: opts.vocab } : {}) });
    const { heads, kvHeads, headDim: D, layers } = arch;
    const dev = gpu.device;
    const rand = (shape: number[], seed: number): Tensor => uploadTensor(dev, randomF32(shape.reduce((a, b) => a * b, 1), seed), shape, 'f32');
    const flops = 2 * T * T * heads * D;
    const timed: AttentionVariantResult[] = [];
    for (const [variant, dtype, on, qkv] of variants) {
      const { fwd, bwd } = await timeAttention(gpu, on, dtype, arch, T, repeats, qkv);
      const r = {
        variant,
        forwardMs: fwd * 1e3,
        backwardMs: bwd * 1e3,
        forwardTflops: flops / fwd / 1e12,
        backwardTflops: (2.5 * flops) / bwd / 1e12,
        trainStepSeconds: layers * (2 * fwd + bwd),
      };
      console.log(
        `attention ${shape} [T ${T}, H ${heads}/${kvHeads}, D ${D}] ${variant}: forward ${r.forwardMs.toFixed(2)} ms (${r.forwardTflops.toPrecision(3)} TFLOP/s), ` +
          `backward ${r.backwardMs.toFixed(2)} ms (${r.backwardTflops.toPrecision(3)} TFLOP/s); ${r.trainStepSeconds.toFixed(3)} s per training step`,
      );
      timed.push(r);
    }
    // lm_head + loss, and its backward (which recomputes each chunk's logits), at T rows.
    const V = arch.vocabSize;
    const H = arch.hidden;
    const embedDtype = embedDtypeFor(kernels);
    const h = rand([T, H], 5);
    const embed = createTensor(dev, [V, H], embedDtype); // zeros: the time does not depend on the values
    const targets = uploadU32(dev, Uint32Array.from({ length: T }, (_, i) => (i * 7919) % V));
    const lseRows = createTensor(dev, [T], 'f32');
    const loss = createTensor(dev, [T], 'f32');
    const dh = createTensor(dev, [T, H], 'f32');
    const lmScratch = createLmHeadScratch(kernels, T, lmHeadChunkRows(kernels, H, embedDtype));
    const bwScratch = createLmHeadBackwardScratch(kernels, T, lmHeadBackwardChunkRows(kernels, T, H, embedDtype));
    const lmFwd = await timePass(gpu, repeats, (pass) => encodeLmHeadLoss(kernels, pass, { h, embed, targets, lse: lseRows, loss }, lmScratch));
    const lmBwd = await timePass(gpu, repeats, (pass) => encodeLmHeadBackward(kernels, pass, { h, embed, targets, lse: lseRows, dh }, bwScratch, { normalizer: T }));
    destroyLmHeadScratch(lmScratch);
    bwScratch.g.destroy();
    for (const t of [h, embed, lseRows, loss, dh]) t.buffer.destroy();
    targets.buffer.destroy();
    const lmFlops = 2 * T * V * H;
    console.log(
      `lm_head ${shape} [T ${T}, H ${H}, V ${V}, E ${embedDtype}]: loss ${(lmFwd * 1e3).toFixed(2)} ms (${(lmFlops / lmFwd / 1e12).toPrecision(3)} TFLOP/s), ` +
        `backward ${(lmBwd * 1e3).toFixed(2)} ms (${((2 * lmFlops) / lmBwd / 1e12).toPrecision(3)} TFLOP/s)`,
    );

    results.push({
      op: 'attention',
      shape,
      dims: [T, heads, kvHeads, D],
      variants: timed,
      lmHeadLossMs: lmFwd * 1e3,
      lmHeadBackwardMs: lmBwd * 1e3,
      lmHeadLossTflops: lmFlops / lmFwd / 1e12,
      lmHeadBackwardTflops: (2 * lmFlops) / lmBwd / 1e12,
    });
  }
  return results;
}

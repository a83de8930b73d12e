// Attention and the lm_head at the training shapes (seq T, batch 1, one packed document, f32 as training runs it):
// forward and backward TFLOP/s, and what one training step spends in it (forward twice with
// checkpointing's recompute, backward once, every layer), to set beside the step time.
import { encodeAttention } from '../../src/engine/attention.ts';
import { createAttentionBackwardStats, encodeAttentionBackward } from '../../src/engine/attention-backward.ts';
import { parseModelConfig } from '../../src/engine/arch.ts';
import type { Gpu } from '../../src/engine/gpu.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import { createTensor, uploadTensor, uploadU32, type Tensor } from '../../src/engine/tensor.ts';
import { randomF32 } from '../../src/util/random.ts';
import { createLmHeadScratch, destroyLmHeadScratch, encodeLmHeadLoss, lmHeadChunkRows } from '../../src/engine/lmhead.ts';
import { createLmHeadBackwardScratch, encodeLmHeadBackward, lmHeadBackwardChunkRows } from '../../src/engine/lmhead-backward.ts';
import { embedDtypeFor } from '../../src/engine/model.ts';
import { LOAD_CONFIGS } from './load.ts';
import { timePass } from './timing.ts';
import type { EngineBenchOptions } from './engine.ts';

export interface AttentionBenchResult {
  op: 'attention';
  shape: string;
  /** [T, heads, kvHeads, headDim]. */
  dims: number[];
  forwardMs: number;
  backwardMs: number;
  /** Causal FLOPs: 2·T²·heads·headDim forward (q·kᵀ and p·v over half the square), 2.5x that backward. */
  forwardTflops: number;
  backwardTflops: number;
  /** layers · (2 · forward + backward): attention's time in one checkpointed training step. */
  trainStepSeconds: number;
  /** The chunked lm_head + cross-entropy over T rows (f32 h, E as training stores it): loss, backward to h. */
  lmHeadLossMs: number;
  lmHeadBackwardMs: number;
  lmHeadLossTflops: number;
  /** The backward recomputes the logits and multiplies back: 2 x the forward's FLOPs. */
  lmHeadBackwardTflops: number;
}

export async function benchAttention(gpu: Gpu, kernels: Kernels, opts: EngineBenchOptions, repeats: number): Promise<AttentionBenchResult[]> {
  const results: AttentionBenchResult[] = [];
  const T = opts.seqLen;
  for (const shape of opts.shapes) {
    const arch = parseModelConfig({ ...LOAD_CONFIGS[shape], ...(opts.vocab ? { vocab_size: opts.vocab } : {}) });
    const { heads, kvHeads, headDim: D, layers } = arch;
    const dev = gpu.device;
    const rand = (shape: number[], seed: number): Tensor => uploadTensor(dev, randomF32(shape.reduce((a, b) => a * b, 1), seed), shape, 'f32');
    const q = rand([1, T, heads, D], 1);
    const k = rand([1, T, kvHeads, D], 2);
    const v = rand([1, T, kvHeads, D], 3);
    const dout = rand([1, T, heads, D], 4);
    const o = createTensor(dev, [1, T, heads, D], 'f32');
    const lse = createTensor(dev, [1, heads, T], 'f32');
    const dq = createTensor(dev, [1, T, heads, D], 'f32');
    const dk = createTensor(dev, [1, T, kvHeads, D], 'f32');
    const dv = createTensor(dev, [1, T, kvHeads, D], 'f32');
    const segmentIds = uploadU32(dev, new Uint32Array(T).fill(1));
    const s = { batch: 1, tq: T, skv: T, heads, kvHeads, headDim: D };
    const stats = createAttentionBackwardStats(dev, s);
    const fwd = await timePass(gpu, repeats, (pass) => encodeAttention(kernels, pass, { q, k, v, o, lse, segmentIds }, s));
    const bwd = await timePass(gpu, repeats, (pass) => encodeAttentionBackward(kernels, pass, { q, k, v, o, lse, segmentIds, dout, dq, dk, dv, stats }, s));
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

    const flops = 2 * T * T * heads * D;
    const r: AttentionBenchResult = {
      op: 'attention',
      shape,
      dims: [T, heads, kvHeads, D],
      forwardMs: fwd * 1e3,
      backwardMs: bwd * 1e3,
      forwardTflops: flops / fwd / 1e12,
      backwardTflops: (2.5 * flops) / bwd / 1e12,
      trainStepSeconds: layers * (2 * fwd + bwd),
      lmHeadLossMs: lmFwd * 1e3,
      lmHeadBackwardMs: lmBwd * 1e3,
      lmHeadLossTflops: lmFlops / lmFwd / 1e12,
      lmHeadBackwardTflops: (2 * lmFlops) / lmBwd / 1e12,
    };
    console.log(
      `attention ${shape} [T ${T}, H ${heads}/${kvHeads}, D ${D}] f32: forward ${r.forwardMs.toFixed(2)} ms (${r.forwardTflops.toPrecision(3)} TFLOP/s), ` +
        `backward ${r.backwardMs.toFixed(2)} ms (${r.backwardTflops.toPrecision(3)} TFLOP/s); ${r.trainStepSeconds.toFixed(3)} s per training step`,
    );
    results.push(r);
    for (const t of [q, k, v, dout, o, lse, dq, dk, dv, stats]) t.buffer.destroy();
    segmentIds.buffer.destroy();
  }
  return results;
}

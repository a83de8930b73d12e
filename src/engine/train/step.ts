// One optimizer step of LoRA training (DESIGN.md data flow 3): zero the grads; for each
// micro-batch of the accumulation, forward (keeping each layer's input) + backward
// (train/backward.ts), the loss normalised over the trained tokens of the whole accumulated batch;
// then the global grad norm, and, when it is finite, clipping (max_grad_norm) and AdamW (32-bit,
// or 8-bit blockwise states) at the schedule's lr. A non-finite norm skips the update (counted
// and reported; AdamW's kernels read the norm and change nothing, so that the update is submitted
// without waiting for the CPU to read the norm); the schedule still advances, as the step was taken.
import { createAdamwState, destroyAdamwState, encodeAdamwStep, type AdamwConfig, type AdamwState } from '../adamw.ts';
import { nextTokenTargets, submitForward, writeBatch, type ForwardRun, type PackedBatch } from '../forward.ts';
import { createGradNormScratch, destroyGradNormScratch, encodeGradNorm, readGradNorm, type GradNormScratch } from '../gradnorm.ts';
import type { Kernels } from '../kernels.ts';
import { linearModulePath } from '../arch.ts';
import { setLoraDropout, type LoraSet } from '../lora-weights.ts';
import { readTensor, type Tensor } from '../tensor.ts';
import { createBackwardScratch, destroyBackwardScratch, encodeBackward, type BackwardScratch } from './backward.ts';
import { createLoraGrads, destroyLoraGrads, encodeZeroGrads, gradTensors, type LoraGradSet } from './grads.ts';
import type { LrSchedule } from './schedule.ts';

export interface TrainerOptions {
  /** The lr of scheduler step s (0-based): lrSchedule(...) or any function. */
  schedule: LrSchedule;
  /** AdamW hyperparameters besides lr (torch's defaults; weight decay 0.01). */
  adamw?: Omit<AdamwConfig, 'lr'>;
  /** 32 (default) or 8 (bnb-style blockwise states; small tensors keep 32-bit, as bnb does). */
  optimizerBits?: 8 | 32;
  /** 8-bit: tensors of fewer elements keep 32-bit states (bnb's min_8bit_size, default 4096; 0: none). */
  min8bitSize?: number;
  /** clip_grad_norm_'s max_norm; default 1.0; Infinity: the norm is measured, nothing clipped. */
  maxGradNorm?: number;
  /** PEFT's lora_dropout (default 0: none); the mask is seeded by `dropoutSeed` (default 0). */
  loraDropout?: number;
  dropoutSeed?: number;
}

export interface Param {
  /** PEFT's parameter name without the adapter suffix: "<module path>.lora_A" / ".lora_B". */
  name: string;
  param: Tensor;
  grad: Tensor;
  state: AdamwState;
}

export interface Trainer {
  kernels: Kernels;
  run: ForwardRun;
  lora: LoraSet;
  grads: LoraGradSet;
  scratch: BackwardScratch;
  params: Param[];
  norm: GradNormScratch;
  options: TrainerOptions;
  /** Steps taken (the schedule's position). */
  step: number;
  /** Updates applied (AdamW's step count: the bias correction), of the steps whose outcome is read. */
  updates: number;
  /** Steps skipped for a non-finite grad norm, in total and in a row (of those read). */
  skipped: number;
  skippedInARow: number;
  /** Steps submitted whose outcome is not read yet (submitStep: at most two), and the last one's settling. */
  inFlight: number;
  settled: Promise<unknown>;
}

export interface StepResult {
  /** Mean CE over the trained tokens of the accumulated batch (before the update). */
  loss: number;
  /** Global L2 norm of the LoRA grads before clipping. */
  gradNorm: number;
  /** The lr of this step. */
  lr: number;
  trainedTokens: number;
  /** True when the update was skipped (non-finite grad norm, or no trained token). */
  skipped: boolean;
}

/** A trainer over a forward run whose context holds `run.ctx.lora` (the trained set). */
export function createTrainer(run: ForwardRun, options: TrainerOptions): Trainer {
  const { kernels, lora } = run.ctx;
  if (!lora) throw new Error('trainer: the forward context has no LoRA set to train');
  if (run.acts.options.loraR !== lora.spec.r) throw new Error(`trainer: the arena was planned for r = ${run.acts.options.loraR}, the set has r = ${lora.spec.r}`);
  const grads = createLoraGrads(kernels.device, lora);
  const params: Param[] = [];
  const { arch } = run.ctx.model;
  for (let i = 0; i < lora.layers.length; i++) {
    for (const l of arch.linears) {
      const w = lora.layers[i][l.name];
      const g = grads.layers[i][l.name];
      if (!w || !g) continue;
      const path = linearModulePath(i, l);
      for (const [which, p, gr] of [['lora_A', w.a, g.a], ['lora_B', w.b, g.b]] as const) {
        const state = createAdamwState(kernels, p.shape[0] * p.shape[1], { bits: options.optimizerBits ?? 32, min8bitSize: options.min8bitSize });
        params.push({ name: `${path}.${which}`, param: p, grad: gr, state });
      }
    }
  }
  if (params.length === 0) throw new Error('trainer: the LoRA set adapts no linear');
  return {
    kernels,
    run,
    lora,
    grads,
    scratch: createBackwardScratch(kernels, run),
    params,
    norm: createGradNormScratch(kernels, gradTensors(grads)),
    options,
    step: 0,
    updates: 0,
    skipped: 0,
    skippedInARow: 0,
    inFlight: 0,
    settled: Promise.resolve(),
  };
}

export function destroyTrainer(tr: Trainer): void {
  destroyBackwardScratch(tr.scratch);
  destroyLoraGrads(tr.grads);
  destroyGradNormScratch(tr.norm);
  for (const p of tr.params) destroyAdamwState(p.state);
  tr.params = [];
}

/**
 * Zeroes the grads (unless `zero` is false) and accumulates those of the micro-batches, the loss
 * normalised over all their trained tokens; resolves to the mean loss and that token count.
 * Nothing here waits: every micro-batch's forward and backward is submitted before this returns
 * (each one's per-token losses copied out right after its backward, before the next one overwrites
 * them), and the promise resolves once the GPU has done them. The CPU records the next micro-batch,
 * and the step's grad norm and update, while the GPU works.
 */
export function accumulateGrads(tr: Trainer, microBatches: readonly PackedBatch[], zero = true): Promise<{ loss: number; trainedTokens: number }> {
  const device = tr.kernels.device;
  if (zero) {
    const enc = device.createCommandEncoder();
    encodeZeroGrads(enc, tr.grads);
    device.queue.submit([enc.finish()]);
  }
  const total = microBatches.reduce((s, b) => s + nextTokenTargets(b).count, 0);
  if (total === 0) return Promise.resolve({ loss: 0, trainedTokens: 0 });
  const losses: Promise<Float32Array>[] = [];
  const p = tr.options.loraDropout ?? 0;
  try {
    for (const [micro, b] of microBatches.entries()) {
      const { tensors: t, trainedTokens } = writeBatch(tr.run, b);
      if (trainedTokens === 0) continue;
      // The forward, the recompute of each layer and its backward are recorded under one draw.
      if (p > 0) setLoraDropout(tr.lora, { p, seed: tr.options.dropoutSeed ?? 0, step: tr.step, micro });
      // The forward goes to the GPU in pieces as it is recorded, so recording the backward (hundreds
      // of dispatches more) overlaps its execution rather than delaying the whole micro-batch.
      submitForward(device, tr.run, t, { loss: true });
      const bwd = device.createCommandEncoder();
      encodeBackward(bwd, tr.run, t, tr.scratch, tr.grads, total);
      device.queue.submit([bwd.finish()]);
      // Copied now, in queue order: before the next micro-batch's forward overwrites them (its
      // inputs, written by writeBatch above, likewise land after this backward has run).
      losses.push(readTensor(device, t.tokenLoss!));
    }
  } finally {
    // Dropout is for training forwards only: eval and chat see the plain adapter.
    if (p > 0) setLoraDropout(tr.lora, null);
  }
  return Promise.all(losses).then((lists) => {
    let sum = 0;
    for (const list of lists) for (const x of list) sum += x;
    return { loss: sum / total, trainedTokens: total };
  });
}

/**
 * Records and submits one optimizer step over the micro-batches of an accumulated batch before it
 * returns; the promise resolves once the GPU has run it and its loss and grad norm are read. The
 * next step may be submitted before that (one ahead, no more): the GPU then goes from one step to
 * the next without waiting for the CPU to read anything. Outcomes are read in order; AdamW takes
 * its bias correction from the GPU's count of applied updates (the step before may or may not have
 * been), so the numbers are those of steps taken one at a time. Nothing may read the trainer's
 * weights or states (a checkpoint, an eval) while a step is in flight.
 */
export function submitStep(tr: Trainer, microBatches: readonly PackedBatch[]): Promise<StepResult> {
  if (tr.inFlight >= 2) throw new Error('trainer: two steps are in flight already; await the first before submitting another');
  const { kernels } = tr;
  const device = kernels.device;
  const lr = tr.options.schedule(tr.step);
  tr.step++;
  // Nothing waits on the CPU: the micro-batches, their grad norm and the update (AdamW takes the
  // gradients times the clip coefficient the norm's pass left on the GPU, and does nothing when
  // the norm is not finite) are all submitted before the loss and the norm are read back. Both are
  // recorded before either is submitted (nothing on the CPU between the two submissions), and the
  // norm's copy goes between them, so the CPU can record the next step while AdamW runs.
  const result = accumulateGrads(tr, microBatches);
  const trains = microBatches.some((b) => nextTokenTargets(b).count > 0);
  const record = (encode: (pass: GPUComputePassEncoder) => void): GPUCommandBuffer => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    encode(pass);
    pass.end();
    return enc.finish();
  };
  // A step without a trained token leaves the grads at zero and takes no norm (whose pass would
  // count it as an applied update) and no update.
  let normRead: Promise<{ norm: number }> = Promise.resolve({ norm: 0 });
  if (trains) {
    const grads = tr.params.map((p) => p.grad);
    const norm = record((pass) => encodeGradNorm(kernels, pass, grads, tr.norm, tr.options.maxGradNorm ?? 1.0));
    const cfg: AdamwConfig = { ...tr.options.adamw, lr };
    // The earliest this update can be: one more where the step in flight turns out applied.
    const earliest = tr.updates + 1;
    const update = record((pass) => { for (const p of tr.params) encodeAdamwStep(kernels, pass, p.param, p.grad, p.state, cfg, earliest, tr.norm.result); });
    device.queue.submit([norm]);
    normRead = readGradNorm(device, tr.norm);
    device.queue.submit([update]);
  }
  tr.inFlight++;
  const before = tr.settled;
  const outcome = (async (): Promise<StepResult> => {
    try {
      const [{ loss, trainedTokens }, { norm: gradNorm }] = await Promise.all([result, normRead]);
      await before; // the counters move in the order of the steps
      if (!trains || !Number.isFinite(gradNorm)) {
        tr.skipped++;
        tr.skippedInARow++;
        return { loss, gradNorm, lr, trainedTokens, skipped: true };
      }
      tr.skippedInARow = 0;
      tr.updates++;
      return { loss, gradNorm, lr, trainedTokens, skipped: false };
    } finally {
      tr.inFlight--;
    }
  })();
  tr.settled = outcome.catch(() => undefined);
  return outcome;
}

// The training loop over packed rows: settings -> LoRA set + forward arena + trainer, then steps
// of `batchSize` rows x `gradAccum` micro-batches until maxSteps or the epochs are done, a
// metrics event per step (with GPU memory, and the eval loss on eval steps), stop on an abort
// signal, pause (checkpoint, then stop), early stopping, or after several non-finite steps in a
// row. Checkpoints (checkpoint.ts) go to a CheckpointStore every `checkpointEvery` steps and when
// the run pauses, stops or ends; `resumeFrom` continues a run from one exactly (same losses).
// Rows come from a RowSource (the worker's: the prepared dataset's IndexedDB shards; tests: an
// array), in stored order (the packer already mixed the examples), epoch after epoch. Each step is
// submitted before the last one's outcome is read (submitStep), so the GPU goes from step to step
// without waiting for the loop; not past a step whose weights the loop reads (eval, checkpoint).
import type { LinearName } from '../arch.ts';
import { createForwardRun, destroyForwardRun, type PackedBatch } from '../forward.ts';
import { gpuMemory } from '../gpu-memory.ts';
import type { Kernels } from '../kernels.ts';
import { createLora, destroyLora, type LoraSet } from '../lora-weights.ts';
import type { ModelWeights } from '../model.ts';
import type { CheckpointStore } from '../../io/checkpoint-store.ts';
import { checkpointInfoOf, restoreTrainer, saveCheckpoint, type CheckpointInfo, type CheckpointReason, type LoopPosition, type RunIdentity, type TrainCheckpoint } from './checkpoint.ts';
import { earlyStopMessage, evaluateLoss, FRESH_EARLY_STOP, recordEval, shouldStopEarly } from './eval.ts';
import { lrSchedule, type ScheduleKind } from './schedule.ts';
import { createTrainer, destroyTrainer, submitStep, type Trainer } from './step.ts';

export interface TrainSettings {
  loraR: number;
  loraAlpha: number;
  rslora: boolean;
  targets: readonly LinearName[];
  /** PEFT's lora_dropout: dropout on the LoRA path's input, in training only (default 0). */
  loraDropout?: number;
  learningRate: number;
  schedule: ScheduleKind;
  warmupSteps?: number;
  warmupRatio?: number;
  /** Rows per micro-batch. */
  batchSize: number;
  gradAccum: number;
  /** Epochs over the rows (default 1); maxSteps, when given, wins. */
  epochs?: number;
  maxSteps?: number;
  optimizer: 'adamw' | 'adamw_8bit';
  /** bnb's min_8bit_size: with adamw_8bit, tensors of fewer elements keep 32-bit states (default 4096). */
  min8bitSize?: number;
  weightDecay: number;
  maxGradNorm: number;
  /** LoRA init and the dropout masks. */
  seed: number;
  /** Stop after this many non-finite steps in a row (default 5). */
  maxSkippedInARow?: number;
  /** A checkpoint every this many steps (0 or absent: only when the run pauses, stops or ends). */
  checkpointEvery?: number;
  /** Eval loss on the validation split every this many steps (0 or absent: only at the end). */
  evalEvery?: number;
  /** Stop after this many evals in a row without a lower eval loss (0 or absent: never). */
  earlyStoppingPatience?: number;
}

/** The seed recipe's settings (issue 6), batch and length aside. */
export const DEFAULT_TRAIN_SETTINGS: TrainSettings = {
  loraR: 16,
  loraAlpha: 16,
  rslora: true,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  loraDropout: 0,
  learningRate: 3e-4,
  schedule: 'linear',
  warmupSteps: 10,
  batchSize: 8,
  gradAccum: 2,
  epochs: 1,
  optimizer: 'adamw_8bit',
  weightDecay: 0.01,
  maxGradNorm: 1,
  seed: 0,
  checkpointEvery: 50,
  evalEvery: 0,
  earlyStoppingPatience: 0,
};

/** Settings a resumed run may change: they do not enter the numbers of the steps. */
export const RESUME_MAY_CHANGE: readonly (keyof TrainSettings)[] = ['checkpointEvery', 'evalEvery', 'earlyStoppingPatience', 'maxSkippedInARow'];

/** Packed rows the loop reads by index (0 .. rows - 1), in slices of consecutive rows. */
export interface RowSource {
  rows: number;
  seqLength: number;
  read(start: number, count: number): Promise<PackedBatch>;
}

export interface StepMetrics {
  /** 1-based. */
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  trainedTokens: number;
  tokensPerSecond: number;
  skipped: boolean;
  elapsedMs: number;
  etaMs: number;
  /** The eval loss on the validation split, on eval steps (every evalEvery, and the last). */
  evalLoss?: number;
  /** Bytes of the GPU buffers the engine tracks (gpu-memory.ts) after the step, and their
   *  high-water mark since the run started. The forward arena is not tracked yet. */
  gpuMemoryBytes?: number;
  gpuMemoryPeak?: number;
  /** A checkpoint of this step was written. */
  checkpointed?: boolean;
  /** For people: this step's checkpoint could not be written (storage full, …); training goes on
   *  and the previous checkpoint is kept. */
  checkpointError?: string;
}

export type TrainStopReason = 'done' | 'aborted' | 'paused' | 'early-stopped' | 'diverged';

export interface TrainResult {
  steps: number;
  skipped: number;
  stopped: TrainStopReason;
  message?: string;
  /** The trained set (the caller owns it: chat, export, destroyLora). */
  lora: LoraSet;
  /** The newest checkpoint of the run (written by this call, or the one it resumed from). */
  checkpoint?: CheckpointInfo;
  /** The last eval loss, and the best one with its step. */
  evalLoss?: number;
  bestEvalLoss?: number;
  bestEvalStep?: number;
  runId: string;
}

export interface TrainRunOptions {
  /**
   * Stop after the current step (result 'aborted'; a checkpoint is written when there is a store).
   * The current step is the one on the GPU: the loop submits a step before it reads the last one's
   * outcome, so a stop asked at step n's metrics ends after step n + 1 (or after n where n + 1 was
   * held back: an eval or checkpoint step, the last one).
   */
  signal?: AbortSignal;
  /** Pause after the current step (as `signal`): a checkpoint, then stop (result 'paused'). Needs a store. */
  pause?: AbortSignal;
  /** Stop after this step, as `signal` would (result 'aborted'), with the schedule of the whole run. */
  stopAfter?: number;
  /** Where checkpoints go (none: no checkpoints). */
  store?: CheckpointStore;
  /** Continue this run (loadCheckpoint); the settings must be the checkpoint's (RESUME_MAY_CHANGE aside). */
  resumeFrom?: TrainCheckpoint;
  /** The validation split (absent or no rows: no eval). Rows of the train split's length. */
  evalData?: RowSource;
  /** Recorded in checkpoints; runId defaults to the checkpoint's, or a new one. */
  run?: Partial<RunIdentity>;
}

export function totalSteps(s: TrainSettings, rows: number): number {
  if (s.maxSteps !== undefined) return s.maxSteps;
  return Math.ceil(rows / (s.batchSize * s.gradAccum)) * (s.epochs ?? 1);
}

function newRunId(): string {
  const c = globalThis.crypto as Crypto | undefined;
  return c?.randomUUID ? c.randomUUID() : `run-${Date.now().toString(36)}-${Math.floor(Math.random() * 2 ** 32).toString(36)}`;
}

/** Throws unless `settings` and the data are those the checkpoint was made with. */
function checkResumable(ckpt: TrainCheckpoint, settings: TrainSettings, data: RowSource): void {
  const saved = ckpt.state.settings;
  const keys = new Set([...Object.keys(saved), ...Object.keys(settings)] as (keyof TrainSettings)[]);
  for (const k of keys) {
    if (RESUME_MAY_CHANGE.includes(k)) continue;
    if (JSON.stringify(saved[k]) !== JSON.stringify(settings[k])) {
      throw new Error(`This checkpoint was made with ${k} = ${JSON.stringify(saved[k])}, not ${JSON.stringify(settings[k])}; resume with its settings.`);
    }
  }
  const d = ckpt.state.data;
  if (d.rows !== data.rows || d.seqLength !== data.seqLength) {
    throw new Error(`The dataset changed since the checkpoint (${d.rows} rows of ${d.seqLength} tokens then, ${data.rows} of ${data.seqLength} now).`);
  }
}

/** The loop's part of a checkpoint's state. */
function positionOf(s: LoopPosition): LoopPosition {
  const { step, totalSteps, updates, skipped, skippedInARow, cursor, epoch, tokensSeen, elapsedMs, earlyStop, lastEvalLoss } = s;
  return { step, totalSteps, updates, skipped, skippedInARow, cursor, epoch, tokensSeen, elapsedMs, earlyStop: { ...earlyStop }, lastEvalLoss };
}

/**
 * Trains a fresh LoRA set (PEFT init from settings.seed) on `model`, or continues the one of
 * `options.resumeFrom`. The last argument may be just the abort signal (the older signature).
 */
export async function runTraining(
  kernels: Kernels,
  model: ModelWeights,
  data: RowSource,
  settings: TrainSettings,
  onMetrics: (m: StepMetrics) => void,
  options: TrainRunOptions | AbortSignal = {},
): Promise<TrainResult> {
  const opts: TrainRunOptions = options instanceof AbortSignal ? { signal: options } : options;
  const { store, resumeFrom, pause, signal } = opts;
  if (data.rows < 1) throw new Error('The dataset has no training rows.');
  if (pause && !store) throw new Error('Pausing needs a checkpoint store.');
  if (resumeFrom) checkResumable(resumeFrom, settings, data);
  const evalData = opts.evalData && opts.evalData.rows > 0 ? opts.evalData : null;
  if (evalData && evalData.seqLength !== data.seqLength) throw new Error(`The validation rows have ${evalData.seqLength} tokens, the train rows ${data.seqLength}.`);
  const run: RunIdentity = {
    runId: opts.run?.runId ?? resumeFrom?.state.run.runId ?? newRunId(),
    modelId: opts.run?.modelId ?? resumeFrom?.state.run.modelId ?? null,
    dataset: opts.run?.dataset ?? resumeFrom?.state.run.dataset ?? null,
  };

  const lora = createLora(kernels.device, model.arch, { r: settings.loraR, alpha: settings.loraAlpha, rslora: settings.rslora, targets: settings.targets }, settings.seed);
  const batch = Math.min(settings.batchSize, data.rows);
  const fwd = createForwardRun({ kernels, model, lora }, { batch, seqLen: data.seqLength });
  const total = totalSteps(settings, data.rows);
  let tr: Trainer | null = null;
  /** A step submitted ahead of the one being read (its outcome is awaited before anything is freed). */
  let inFlight: Promise<unknown> | null = null;
  let failed = false;
  const memory = gpuMemory(kernels.device);
  const peak = memory.openWindow();
  try {
    tr = createTrainer(fwd, {
      schedule: lrSchedule(settings.learningRate, { kind: settings.schedule, totalSteps: total, warmupSteps: settings.warmupSteps, warmupRatio: settings.warmupRatio }),
      adamw: { weightDecay: settings.weightDecay },
      optimizerBits: settings.optimizer === 'adamw_8bit' ? 8 : 32,
      min8bitSize: settings.min8bitSize,
      maxGradNorm: settings.maxGradNorm > 0 ? settings.maxGradNorm : Infinity,
      loraDropout: settings.loraDropout ?? 0,
      dropoutSeed: settings.seed,
    });
    const pos: LoopPosition = resumeFrom
      ? positionOf(resumeFrom.state)
      : { step: 0, totalSteps: total, updates: 0, skipped: 0, skippedInARow: 0, cursor: 0, epoch: 0, tokensSeen: 0, elapsedMs: 0, earlyStop: FRESH_EARLY_STOP, lastEvalLoss: null };
    if (resumeFrom) await restoreTrainer(tr, resumeFrom);
    const trainer = tr;
    const t0 = performance.now() - pos.elapsedMs;
    // The checkpoint this run stands on: a resumed run need not write its first step again.
    let checkpoint: CheckpointInfo | undefined = resumeFrom ? checkpointInfoOf(resumeFrom.state, resumeFrom.file.size) : undefined;
    const save = async (reason: CheckpointReason) => {
      if (!store) return;
      pos.step = trainer.step;
      pos.updates = trainer.updates;
      pos.skipped = trainer.skipped;
      pos.skippedInARow = trainer.skippedInARow;
      pos.elapsedMs = performance.now() - t0;
      checkpoint = await saveCheckpoint(store, trainer, {
        ...pos,
        run,
        reason,
        createdAt: Date.now(),
        settings,
        data: { rows: data.rows, seqLength: data.seqLength, evalRows: evalData?.rows ?? 0 },
        rng: { kind: 'counter-hash', seed: settings.seed, step: trainer.step },
      });
    };

    /** save(), failures turned into a message for people (the previous checkpoint stays). */
    const trySave = async (reason: CheckpointReason): Promise<string | undefined> => {
      try {
        await save(reason);
        return undefined;
      } catch (e) {
        const kept = checkpoint ? ` (the one of step ${checkpoint.step} is kept)` : '';
        return `The checkpoint of step ${trainer.step} could not be written${kept}: ${(e as Error).message || (e as Error).name}`;
      }
    };

    let stopped: TrainStopReason = 'done';
    let message: string | undefined;
    const evalEvery = settings.evalEvery ?? 0;
    const every = settings.checkpointEvery ?? 0;
    const maxSkipped = settings.maxSkippedInARow ?? 5;
    const last = Math.min(total, opts.stopAfter ?? total);
    const evalDue = (step: number) => !!evalData && ((evalEvery > 0 && step % evalEvery === 0) || step === total);
    const checkpointDue = (step: number) => !!store && every > 0 && step % every === 0 && step < total;
    /** Reads the next step's micro-batches and submits it (submitStep: the promise of its outcome). */
    const submitNext = async () => {
      const micro: PackedBatch[] = [];
      for (let m = 0; m < settings.gradAccum; m++) {
        if (pos.cursor >= data.rows) {
          pos.cursor = 0;
          pos.epoch++;
        }
        const count = Math.min(batch, data.rows - pos.cursor);
        micro.push(await data.read(pos.cursor, count));
        pos.cursor += count;
      }
      return { outcome: submitStep(trainer, micro), step: trainer.step, epoch: pos.epoch, tokens: micro.reduce((s, b) => s + b.batch * b.seqLen, 0) };
    };
    // The step after the one being read goes to the GPU first (one ahead: the GPU never waits for the
    // loop), except where the loop reads the weights after a step (eval, checkpoint), at the end, on
    // a stop asked for, and where this step's outcome could end the run (a streak of skipped steps).
    let ahead: Awaited<ReturnType<typeof submitNext>> | null = null;
    for (;;) {
      let cur = ahead;
      ahead = null;
      if (!cur) {
        if (trainer.step >= last) {
          if (last < total) stopped = 'aborted';
          break;
        }
        if (pause?.aborted) {
          stopped = 'paused';
          break;
        }
        if (signal?.aborted) {
          stopped = 'aborted';
          break;
        }
        cur = await submitNext();
      }
      const step = cur.step;
      const quiet = step < last && !evalDue(step) && !checkpointDue(step) && trainer.skippedInARow + 1 < maxSkipped;
      if (quiet && !pause?.aborted && !signal?.aborted) ahead = await submitNext();
      inFlight = ahead?.outcome ?? null;
      const r = await cur.outcome;
      pos.tokensSeen += cur.tokens;
      let evalLoss: number | undefined;
      if (evalDue(step)) {
        const e = await evaluateLoss(fwd, evalData!, batch);
        // A split without a trained token has no loss: no eval, rather than a NaN that counts against patience.
        if (e.trainedTokens > 0) {
          evalLoss = e.loss;
          pos.lastEvalLoss = evalLoss;
          pos.earlyStop = recordEval(pos.earlyStop, evalLoss, step);
        }
      }
      const patience = settings.earlyStoppingPatience ?? 0;
      const early = evalLoss !== undefined && step < total && shouldStopEarly(pos.earlyStop, patience);
      const diverged = trainer.skippedInARow >= maxSkipped;
      // Interval checkpoints; the last step's is written below, with the reason the run ended.
      const due = checkpointDue(step) && !early && !diverged;
      const checkpointError = due ? await trySave('interval') : undefined;
      const checkpointed = due && !checkpointError;
      const elapsedMs = performance.now() - t0;
      onMetrics({
        step,
        totalSteps: total,
        epoch: cur.epoch,
        loss: r.loss,
        lr: r.lr,
        gradNorm: r.gradNorm,
        trainedTokens: r.trainedTokens,
        tokensPerSecond: pos.tokensSeen / (elapsedMs / 1000),
        skipped: r.skipped,
        elapsedMs,
        etaMs: (elapsedMs / step) * (total - step),
        evalLoss,
        gpuMemoryBytes: memory.bytes,
        gpuMemoryPeak: peak.peak,
        checkpointed,
        checkpointError,
      });
      if (diverged) {
        stopped = 'diverged';
        message = `${trainer.skippedInARow} steps in a row had a non-finite loss or gradient; try a lower learning rate.`;
        break;
      }
      if (early) {
        stopped = 'early-stopped';
        message = earlyStopMessage(pos.earlyStop, patience);
        break;
      }
    }
    // Diverged runs keep their last good checkpoint: the next steps would only be skipped again.
    if (stopped !== 'diverged' && checkpoint?.step !== trainer.step) {
      // A pause exists to be resumed: without its checkpoint it fails. A stop or an end without one
      // (storage full; a stop caused by a lost device, which cannot read the GPU back) says so.
      if (stopped === 'paused') await save('pause');
      else message = [message, await trySave(stopped === 'aborted' ? 'stop' : 'end')].filter(Boolean).join(' ') || undefined;
    }
    const es = pos.earlyStop;
    return {
      steps: trainer.step,
      skipped: trainer.skipped,
      stopped,
      message,
      lora,
      checkpoint,
      evalLoss: pos.lastEvalLoss ?? undefined,
      bestEvalLoss: es.best ?? undefined,
      bestEvalStep: es.bestStep ?? undefined,
      runId: run.runId,
    };
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    await inFlight?.catch(() => undefined);
    // The caller gets no set when the run fails: free it here, once no step in flight uses it.
    if (failed) destroyLora(lora);
    peak.close();
    if (tr) destroyTrainer(tr);
    destroyForwardRun(fwd);
  }
}

/** A RowSource over rows held in memory (tests, small datasets). */
export function arrayRowSource(rows: { inputIds: ArrayLike<number>; segmentIds: ArrayLike<number>; lossMask: ArrayLike<number> }[], seqLength: number): RowSource {
  return {
    rows: rows.length,
    seqLength,
    async read(start, count) {
      const slice = rows.slice(start, start + count);
      return packRows(slice, seqLength);
    },
  };
}

/** Concatenates rows into a PackedBatch; position ids restart with each document of each row. */
export function packRows(rows: readonly { inputIds: ArrayLike<number>; segmentIds: ArrayLike<number>; lossMask: ArrayLike<number> }[], seqLength: number): PackedBatch {
  const n = rows.length * seqLength;
  const inputIds = new Uint32Array(n);
  const segmentIds = new Uint32Array(n);
  const lossMask = new Uint8Array(n);
  rows.forEach((r, i) => {
    inputIds.set(Array.from(r.inputIds), i * seqLength);
    segmentIds.set(Array.from(r.segmentIds), i * seqLength);
    lossMask.set(Array.from(r.lossMask), i * seqLength);
  });
  return { batch: rows.length, seqLen: seqLength, inputIds, segmentIds, lossMask, positionIds: rowPositions(segmentIds, seqLength) };
}

/** Position inside each token's document, restarting at every row start and document change (0 on padding). */
export function rowPositions(segmentIds: ArrayLike<number>, seqLength: number): Uint32Array {
  const pos = new Uint32Array(segmentIds.length);
  for (let i = 0; i < segmentIds.length; i++) {
    const seg = segmentIds[i];
    if (seg === 0) continue;
    pos[i] = i % seqLength !== 0 && segmentIds[i - 1] === seg ? pos[i - 1] + 1 : 0;
  }
  return pos;
}

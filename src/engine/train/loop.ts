// The training loop over packed rows: settings -> LoRA set + forward arena + trainer, then steps
// of `batchSize` rows x `gradAccum` micro-batches until maxSteps or the epochs are done, a
// metrics event per step, stop on an abort signal or after several non-finite steps in a row.
// Rows come from a RowSource (the worker's: the prepared dataset's IndexedDB shards; tests: an
// array), in stored order (the packer already mixed the examples), epoch after epoch.
import type { LinearName } from '../arch.ts';
import { createForwardRun, destroyForwardRun, type PackedBatch } from '../forward.ts';
import type { Kernels } from '../kernels.ts';
import { createLora, type LoraSet } from '../lora-weights.ts';
import type { ModelWeights } from '../model.ts';
import { lrSchedule, type ScheduleKind } from './schedule.ts';
import { createTrainer, destroyTrainer, trainStep } from './step.ts';

export interface TrainSettings {
  loraR: number;
  loraAlpha: number;
  rslora: boolean;
  targets: readonly LinearName[];
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
  weightDecay: number;
  maxGradNorm: number;
  seed: number;
  /** Stop after this many non-finite steps in a row (default 5). */
  maxSkippedInARow?: number;
}

/** The seed recipe's settings (issue 6), batch and length aside. */
export const DEFAULT_TRAIN_SETTINGS: TrainSettings = {
  loraR: 16,
  loraAlpha: 16,
  rslora: true,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
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
};

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
}

export interface TrainResult {
  steps: number;
  skipped: number;
  stopped: 'done' | 'aborted' | 'diverged';
  message?: string;
  /** The trained set (the caller owns it: chat, export, destroyLora). */
  lora: LoraSet;
}

export function totalSteps(s: TrainSettings, rows: number): number {
  if (s.maxSteps !== undefined) return s.maxSteps;
  return Math.ceil(rows / (s.batchSize * s.gradAccum)) * (s.epochs ?? 1);
}

/** Trains a fresh LoRA set (PEFT init from settings.seed) on `model`. */
export async function runTraining(
  kernels: Kernels,
  model: ModelWeights,
  data: RowSource,
  settings: TrainSettings,
  onMetrics: (m: StepMetrics) => void,
  signal?: AbortSignal,
): Promise<TrainResult> {
  if (data.rows < 1) throw new Error('The dataset has no training rows.');
  const lora = createLora(kernels.device, model.arch, { r: settings.loraR, alpha: settings.loraAlpha, rslora: settings.rslora, targets: settings.targets }, settings.seed);
  const batch = Math.min(settings.batchSize, data.rows);
  const run = createForwardRun({ kernels, model, lora }, { batch, seqLen: data.seqLength });
  const total = totalSteps(settings, data.rows);
  const tr = createTrainer(run, {
    schedule: lrSchedule(settings.learningRate, { kind: settings.schedule, totalSteps: total, warmupSteps: settings.warmupSteps, warmupRatio: settings.warmupRatio }),
    adamw: { weightDecay: settings.weightDecay },
    optimizerBits: settings.optimizer === 'adamw_8bit' ? 8 : 32,
    maxGradNorm: settings.maxGradNorm > 0 ? settings.maxGradNorm : Infinity,
  });
  const t0 = performance.now();
  let cursor = 0;
  let tokensSeen = 0;
  let epoch = 0;
  let stopped: TrainResult['stopped'] = 'done';
  let message: string | undefined;
  try {
    for (let step = 1; step <= total; step++) {
      if (signal?.aborted) {
        stopped = 'aborted';
        break;
      }
      const micro: PackedBatch[] = [];
      for (let m = 0; m < settings.gradAccum; m++) {
        if (cursor >= data.rows) {
          cursor = 0;
          epoch++;
        }
        const count = Math.min(batch, data.rows - cursor);
        micro.push(await data.read(cursor, count));
        cursor += count;
      }
      const r = await trainStep(tr, micro);
      tokensSeen += micro.reduce((s, b) => s + b.batch * b.seqLen, 0);
      const elapsedMs = performance.now() - t0;
      onMetrics({
        step,
        totalSteps: total,
        epoch,
        loss: r.loss,
        lr: r.lr,
        gradNorm: r.gradNorm,
        trainedTokens: r.trainedTokens,
        tokensPerSecond: tokensSeen / (elapsedMs / 1000),
        skipped: r.skipped,
        elapsedMs,
        etaMs: (elapsedMs / step) * (total - step),
      });
      if (tr.skippedInARow >= (settings.maxSkippedInARow ?? 5)) {
        stopped = 'diverged';
        message = `${tr.skippedInARow} steps in a row had a non-finite loss or gradient; try a lower learning rate.`;
        break;
      }
    }
    return { steps: tr.step, skipped: tr.skipped, stopped, message, lora };
  } finally {
    destroyTrainer(tr);
    destroyForwardRun(run);
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

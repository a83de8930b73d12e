// Eval loss on the validation split: forward + per-token loss only (no backward, no dropout), over
// every row, normalised as training normalises a step: the sum of the per-token losses over the
// trained tokens of the whole split. Plus early stopping (transformers' EarlyStoppingCallback with
// threshold 0: stop after `patience` evals in a row that did not improve on the best).
import { submitForward, writeBatch, type ForwardRun } from '../forward.ts';
import { readTensor } from '../tensor.ts';
import type { RowSource } from './loop.ts';

export interface EvalResult {
  /** Mean cross-entropy over the trained tokens of the split (NaN when it has none). */
  loss: number;
  trainedTokens: number;
  rows: number;
}

/**
 * The loss of `run`'s model + adapter on every row of `data`, `batch` rows per forward (at most
 * what the run's arena holds). The adapter must not be in a training draw (setLoraDropout null).
 */
export async function evaluateLoss(run: ForwardRun, data: RowSource, batch: number): Promise<EvalResult> {
  const device = run.ctx.kernels.device;
  for (const layer of run.ctx.lora?.layers ?? []) {
    for (const w of Object.values(layer)) if (w.dropout) throw new Error('eval: the adapter is in a training dropout draw');
  }
  let sum = 0;
  let tokens = 0;
  for (let start = 0; start < data.rows; start += batch) {
    const b = await data.read(start, Math.min(batch, data.rows - start));
    const { tensors: t, trainedTokens } = writeBatch(run, b);
    if (trainedTokens === 0) continue;
    submitForward(device, run, t, { loss: true });
    for (const x of await readTensor(device, t.tokenLoss!)) sum += x;
    tokens += trainedTokens;
  }
  return { loss: tokens > 0 ? sum / tokens : Number.NaN, trainedTokens: tokens, rows: data.rows };
}

/** Early stopping's running state (saved in checkpoints, so a resumed run stops where it would have). */
export interface EarlyStopState {
  best: number | null;
  bestStep: number | null;
  /** Evals since the best one. */
  sinceBest: number;
}

export const FRESH_EARLY_STOP: EarlyStopState = { best: null, bestStep: null, sinceBest: 0 };

/** The state after an eval of `loss` at `step`: a strictly lower loss is an improvement. */
export function recordEval(s: EarlyStopState, loss: number, step: number): EarlyStopState {
  if (Number.isFinite(loss) && (s.best === null || loss < s.best)) return { best: loss, bestStep: step, sinceBest: 0 };
  return { ...s, sinceBest: s.sinceBest + 1 };
}

/** Whether to stop now: `patience` evals in a row without improvement (patience 0 or absent: never). */
export function shouldStopEarly(s: EarlyStopState, patience: number | undefined): boolean {
  return !!patience && patience > 0 && s.sinceBest >= patience;
}

/** For people: why the run stopped early. */
export function earlyStopMessage(s: EarlyStopState, patience: number): string {
  const best = s.best === null ? 'none' : `${s.best.toFixed(4)} at step ${s.bestStep}`;
  return `Stopped early: the eval loss did not improve for ${patience} evaluation${patience === 1 ? '' : 's'} in a row (best ${best}). The adapter is the one of the last step, not of the best eval.`;
}

// `--resume`: the newest checkpoint in DIR/checkpoints, checked against this run's model and data,
// and the settings to continue with: the checkpoint's, with the flags over them. The training loop
// refuses any change that enters the numbers; the run's length is the exception made here: a larger
// --max-steps (or --epochs) extends the run, as transformers' Trainer does when resumed with a larger
// max_steps: the learning-rate schedule is then laid out over the new length from the next step on.
import { loadCheckpoint, type TrainCheckpoint } from '../../src/engine/train/checkpoint.ts';
import { RESUME_MAY_CHANGE, totalSteps, type TrainSettings } from '../../src/engine/train/loop.ts';
import type { CheckpointStore } from '../../src/io/checkpoint-store.ts';
import { UsageError } from './flag-values.ts';
import { trainFlagName, trainSettingsFrom } from './train-flags.ts';

export interface ResumePlan {
  checkpoint: TrainCheckpoint;
  settings: TrainSettings;
  /** For people, when the run's length changed. */
  note: string | null;
}

export async function findCheckpoint(store: CheckpointStore, where: string): Promise<TrainCheckpoint> {
  const problems: string[] = [];
  const ckpt = await loadCheckpoint(store, problems);
  if (!ckpt) throw new UsageError(`--resume: there is no checkpoint in ${where}${problems.length ? ` (${problems.join('; ')})` : ''}.`);
  return ckpt;
}

/** Throws unless the checkpoint was made with this model (its id: Hub id, folder path or demo id). */
export function checkSameModel(ckpt: TrainCheckpoint, modelId: string): void {
  const made = ckpt.state.run.modelId;
  if (made && made !== modelId) throw new UsageError(`--resume: the checkpoint was trained on ${made}, not ${modelId}; give --model ${made}.`);
}

/** Throws unless the checkpoint was made on this prepared dataset (its fingerprint). */
export function checkSameData(ckpt: TrainCheckpoint, fingerprint: string): void {
  const made = ckpt.state.run.dataset;
  if (made && made !== fingerprint) {
    throw new UsageError(`--resume: the checkpoint was trained on prepared dataset ${made.slice(0, 12)}…, and these --data and preparation flags give ${fingerprint.slice(0, 12)}…; use the ones of the first run.`);
  }
}

/** Settings a resumed run may change: those the loop lets change and the run's length, which planResume extends. */
const MAY_CHANGE: ReadonlySet<keyof TrainSettings> = new Set([...RESUME_MAY_CHANGE, 'maxSteps', 'epochs']);

/** Refuses, before any work, a flag that would change the numbers of a run half done. */
export function checkResumeSettings(ckpt: TrainCheckpoint, given: Partial<TrainSettings>): void {
  const saved = ckpt.state.settings;
  for (const key of Object.keys(given) as (keyof TrainSettings)[]) {
    if (MAY_CHANGE.has(key) || JSON.stringify(given[key]) === JSON.stringify(saved[key])) continue;
    const was = saved[key] === undefined ? 'unset' : JSON.stringify(saved[key]);
    throw new UsageError(`--resume: the run was started with ${trainFlagName(key)} ${was}, and it cannot change halfway (the steps so far depend on it); leave ${trainFlagName(key)} out.`);
  }
}

export function planResume(ckpt: TrainCheckpoint, given: Partial<TrainSettings>, rows: number): ResumePlan {
  const saved = ckpt.state.settings;
  const settings = trainSettingsFrom(saved, given);
  const lengthChanged = (given.maxSteps !== undefined && given.maxSteps !== saved.maxSteps) || (given.epochs !== undefined && given.epochs !== saved.epochs && settings.maxSteps === undefined);
  if (!lengthChanged) return { checkpoint: ckpt, settings, note: null };
  const total = totalSteps(settings, rows);
  const step = ckpt.state.step;
  if (total <= step) throw new UsageError(`--resume: the checkpoint is at step ${step}; a run of ${total} steps has nothing left to do (give a larger --max-steps).`);
  // The loop compares the checkpoint's settings with the run's: the new length goes into the
  // in-memory copy it checks against (the files are not touched), and into the recorded total.
  const lengthened: TrainCheckpoint = {
    ...ckpt,
    state: { ...ckpt.state, totalSteps: total, settings: { ...saved, maxSteps: settings.maxSteps, epochs: settings.epochs } },
  };
  const before = ckpt.state.totalSteps;
  return {
    checkpoint: lengthened,
    settings,
    note: `Continuing from step ${step} in a run now ${total} steps long (it was ${before}): the learning-rate schedule is laid out over ${total} steps from step ${step + 1} on.`,
  };
}

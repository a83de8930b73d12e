// A training run as the UI shows it: the settings form (the seed recipe from the trainer worker,
// plus what a person changed, kept in IndexedDB), the status, every step's metrics, a log of
// skipped steps, checkpoint errors, warnings and how the run ended, and the newest checkpoint the
// trainer worker holds (what Resume continues). Metrics arrive by comlink callback once per step;
// they are queued and put into the store at most once per animation frame, so a fast run never
// floods React. The charts' history is saved per run id at each checkpoint (run-history.ts).
import { create } from 'zustand';
import { errorMessage, openTrainBatches, trainer, type CheckpointInfo, type StepMetrics, type TrainSettings, type TrainSummary } from '../client/index.ts';
import { useModelStore } from './model.ts';
import { debouncedSaver, loadPersisted } from './persist.ts';
import { historyUpTo, loadRunHistory, saveRunHistory, deleteRunHistory, type RunLogEntry } from './run-history.ts';

export type { CheckpointInfo, StepMetrics, TrainSettings, TrainSummary, RunLogEntry };

/** idle: no run in this page (maybe a stored checkpoint's history on show); paused: this page's
 *  run paused (Resume goes on); done: it ended otherwise (see summary.stopped). */
export type RunStatus = 'idle' | 'running' | 'pausing' | 'stopping' | 'paused' | 'done' | 'error';

/** Which limit ends the run: epochs over the data, or a fixed number of optimizer steps. */
export type RunLength = 'epochs' | 'maxSteps';
/** Warmup as a number of steps, or as a fraction of the run. */
export type WarmupKind = 'steps' | 'ratio';

interface RunState {
  /** The seed recipe, from the trainer worker; null until it answered. */
  defaults: TrainSettings | null;
  defaultsError: string | null;
  /** What a person changed (over `defaults`). */
  overrides: Partial<TrainSettings>;
  length: RunLength;
  warmup: WarmupKind;

  status: RunStatus;
  /** The run the charts show; null until its first checkpoint names it. */
  runId: string | null;
  step: number;
  totalSteps: number;
  /** Every step's metrics (the charts downsample for drawing). */
  metrics: StepMetrics[];
  log: RunLogEntry[];
  summary: TrainSummary | null;
  /** The first step the current train() / resumeTraining() call reported (a resume from the
   *  checkpoint of step C reports C + 1 first); null before it reported one. */
  firstStepOfCall: number | null;
  /** The settings of the run on show (a resumed run's are its checkpoint's, not the form's). */
  runSettings: TrainSettings | null;
  /** The step of the newest checkpoint of the run on show. */
  checkpointStep: number | null;
  /** Training time of the run (resumes included), seconds; null while running. */
  seconds: number | null;
  /** A trained LoRA adapter exists in the trainer worker (what Export and Chat need). */
  hasAdapter: boolean;
  error: string | null;

  /** The newest checkpoint stored by the trainer worker; null: none. */
  checkpoint: CheckpointInfo | null;
  /** checkpointInfo() has answered at least once. */
  checkpointChecked: boolean;
  checkpointProblem: string | null;

  loadDefaults(): Promise<void>;
  setSetting<K extends keyof TrainSettings>(key: K, value: TrainSettings[K]): void;
  setLength(length: RunLength): void;
  setWarmup(kind: WarmupKind): void;
  resetSettings(): void;
  /** Trains a new run on the prepared dataset with this fingerprint (it replaces the stored checkpoint). */
  start(dataset: string): Promise<void>;
  /** Pauses after the current step; a checkpoint is written, Resume continues. */
  pause(): Promise<void>;
  /** Continues the stored checkpoint's run (its settings and dataset) on the loaded model. */
  resume(): Promise<void>;
  stop(): Promise<void>;
  /** Asks the trainer worker for its newest checkpoint; on a fresh page, shows that run's history. */
  refreshCheckpoint(): Promise<void>;
  discardCheckpoint(): Promise<void>;
}

const SETTINGS_KEY = 'train.settings.v1';
/** Where earlier versions kept the settings. */
const LEGACY_SETTINGS_KEY = 'webtune.train.settings.v1';

interface Saved {
  overrides: Partial<TrainSettings>;
  length: RunLength;
  warmup: WarmupKind;
}

/** Set once a person edits the form: settings read later from storage must not undo that. */
let settingsTouched = false;
const saveSettings = debouncedSaver<Saved>(SETTINGS_KEY, 200);
const savedOf = (s: Pick<RunState, 'overrides' | 'length' | 'warmup'>): Saved => ({ overrides: s.overrides, length: s.length, warmup: s.warmup });

/** The settings a run will use: the recipe, the changes, the chosen run length and warmup kind. */
export function effectiveSettings(s: Pick<RunState, 'defaults' | 'overrides' | 'length' | 'warmup'>): TrainSettings | null {
  if (!s.defaults) return null;
  const merged: TrainSettings = { ...s.defaults, ...s.overrides };
  if (s.length === 'epochs') delete merged.maxSteps;
  else merged.maxSteps ??= 100;
  // warmupSteps wins over warmupRatio in the schedule, and the worker fills absent keys from the
  // recipe (which has warmupSteps): the unused one is sent as undefined, not left out.
  if (s.warmup === 'ratio') {
    merged.warmupSteps = undefined;
    merged.warmupRatio ??= 0.03;
  } else {
    merged.warmupRatio = undefined;
    merged.warmupSteps ??= 0;
  }
  return merged;
}

/** Steps a run of `s` takes over `rows` packed rows (the loop's totalSteps). */
export function plannedSteps(s: TrainSettings, rows: number): number {
  if (s.maxSteps !== undefined) return s.maxSteps;
  return Math.ceil(rows / (s.batchSize * s.gradAccum)) * (s.epochs ?? 1);
}

/** Steps that arrived since the last flush, and the call they belong to. */
let pending: StepMetrics[] = [];
let frame: number | null = null;
let timer: ReturnType<typeof setTimeout> | null = null;
/** Bumped by each train/resume call: callbacks of an older call are ignored. */
let generation = 0;

function logFor(m: StepMetrics): RunLogEntry[] {
  const out: RunLogEntry[] = [];
  if (m.skipped) out.push({ step: m.step, tone: 'warn', text: `Step ${m.step} skipped: the loss or the gradient norm was not finite (the update was not applied).` });
  else if (m.gradNorm > 1e3) out.push({ step: m.step, tone: 'warn', text: `Step ${m.step}: gradient norm ${m.gradNorm.toFixed(1)} is very large; a lower learning rate may help.` });
  if (m.checkpointError) out.push({ step: m.step, tone: 'warn', text: `${m.checkpointError} Training goes on; free some browser storage so that the next checkpoint can be written.` });
  return out;
}

const fmtLoss = (x: number): string => x.toFixed(4);

/** How the run ended, for the log. */
function endOfRunLog(s: TrainSummary, total: number): RunLogEntry[] {
  const ck = s.checkpoint;
  const skipped = s.skipped > 0 ? ` (${s.skipped} skipped)` : '';
  const best = s.bestEvalLoss !== undefined && s.bestEvalStep !== undefined ? ` Best eval loss ${fmtLoss(s.bestEvalLoss)} at step ${s.bestEvalStep}.` : '';
  const out: RunLogEntry[] = [];
  switch (s.stopped) {
    case 'done':
      out.push({ step: null, tone: 'info', text: `Finished: ${s.steps} steps${skipped}.${best}` });
      break;
    case 'paused':
      out.push({ step: null, tone: 'info', text: `Paused after step ${s.steps} of ${total}; its checkpoint is saved. Resume continues from step ${s.steps + 1}.` });
      break;
    case 'aborted': {
      const kept = ck && ck.step < ck.totalSteps ? ` The checkpoint of step ${ck.step} is kept: Resume continues from step ${ck.step + 1}.` : '';
      out.push({ step: null, tone: 'info', text: `Stopped after step ${s.steps} of ${total}.${kept}` });
      break;
    }
    case 'early-stopped':
      out.push({ step: null, tone: 'info', text: s.message ?? `Stopped early after step ${s.steps}: the eval loss stopped improving.${best}` });
      break;
    case 'diverged':
      out.push({ step: null, tone: 'error', text: `Diverged after step ${s.steps}: ${s.message ?? 'the loss was not finite for several steps in a row; try a lower learning rate.'}` });
      break;
  }
  // Other messages (a checkpoint that could not be written at the end) are warnings of their own.
  if (s.message && s.stopped !== 'early-stopped' && s.stopped !== 'diverged') out.push({ step: null, tone: 'warn', text: s.message });
  return out;
}

/** A checkpoint of `step` was written during the run: save the charts up to it, under its run id
 *  (learned from checkpointInfo() the first time: train() does not report it). */
async function rememberCheckpoint(mine: number, step: number): Promise<void> {
  let runId = useRunStore.getState().runId;
  if (!runId) {
    const info = await trainer.checkpointInfo().catch(() => null);
    // The newest checkpoint is this run's: a run's first checkpoint replaces the older runs'.
    if (!info || mine !== generation) return;
    runId = info.runId;
    useRunStore.setState({ runId });
  }
  const s = useRunStore.getState();
  await saveRunHistory(runId, s.metrics, s.log, step);
}

function flush(): void {
  if (frame !== null) cancelAnimationFrame(frame);
  if (timer !== null) clearTimeout(timer);
  frame = null;
  timer = null;
  if (pending.length === 0) return;
  const batch = pending;
  pending = [];
  const last = batch[batch.length - 1];
  const saved = batch.filter((m) => m.checkpointed).pop();
  useRunStore.setState((s) => ({
    metrics: s.metrics.concat(batch),
    log: s.log.concat(batch.flatMap(logFor)),
    step: last.step,
    totalSteps: last.totalSteps,
    firstStepOfCall: s.firstStepOfCall ?? batch[0].step,
    checkpointStep: saved ? saved.step : s.checkpointStep,
  }));
  if (saved) void rememberCheckpoint(generation, saved.step);
}

function queue(m: StepMetrics): void {
  pending.push(m);
  // An animation frame normally; the timer when frames stop (a hidden tab), so that checkpoints'
  // histories are still saved.
  frame ??= requestAnimationFrame(flush);
  timer ??= setTimeout(flush, 1000);
}

/** Runs one train / resume call of the worker and records how it ended. */
async function drive(call: (onMetrics: (m: StepMetrics) => void) => Promise<TrainSummary>): Promise<void> {
  const mine = ++generation;
  pending = [];
  const t0 = performance.now();
  const set = useRunStore.setState;
  const get = useRunStore.getState;
  const trainingSeconds = (): number => {
    const m = get().metrics;
    return m.length > 0 ? m[m.length - 1].elapsedMs / 1000 : (performance.now() - t0) / 1000;
  };
  try {
    const summary = await call((m) => {
      if (mine === generation) queue(m);
    });
    if (mine !== generation) return;
    flush();
    const ck = summary.checkpoint;
    // Resuming a finished run trains no step: it only puts the adapter back.
    const restored = summary.stopped === 'done' && get().firstStepOfCall === null && summary.steps > 0;
    const ending: RunLogEntry[] = restored
      ? [{ step: null, tone: 'info', text: `The adapter of step ${summary.steps} is back in the trainer worker (restored from its checkpoint).` }]
      : endOfRunLog(summary, get().totalSteps);
    set((st) => ({
      status: summary.stopped === 'paused' ? 'paused' : 'done',
      summary,
      hasAdapter: true,
      seconds: trainingSeconds(),
      log: st.log.concat(ending),
      runId: ck?.runId ?? st.runId,
      checkpointStep: ck?.step ?? st.checkpointStep,
    }));
    if (ck) await saveRunHistory(ck.runId, get().metrics, get().log, ck.step);
  } catch (e) {
    if (mine !== generation) return;
    flush();
    set({ status: 'error', error: errorMessage(e), seconds: trainingSeconds() });
  }
  await get().refreshCheckpoint();
}

const busy = (s: RunStatus): boolean => s === 'running' || s === 'pausing' || s === 'stopping';

export const useRunStore = create<RunState>()((set, get) => ({
  defaults: null,
  defaultsError: null,
  overrides: {},
  length: 'epochs',
  warmup: 'steps',
  status: 'idle',
  runId: null,
  step: 0,
  totalSteps: 0,
  metrics: [],
  log: [],
  summary: null,
  firstStepOfCall: null,
  runSettings: null,
  checkpointStep: null,
  seconds: null,
  hasAdapter: false,
  error: null,
  checkpoint: null,
  checkpointChecked: false,
  checkpointProblem: null,

  async loadDefaults() {
    if (get().defaults) return;
    try {
      set({ defaults: await trainer.trainDefaults(), defaultsError: null });
    } catch (e) {
      set({ defaultsError: `The training defaults could not be read from the trainer worker: ${errorMessage(e)}. Reload the page; if it stays, see the Model tab's diagnostics.` });
    }
  },

  setSetting(key, value) {
    settingsTouched = true;
    set({ overrides: { ...get().overrides, [key]: value } });
    saveSettings(savedOf(get()));
  },

  setLength(length) {
    settingsTouched = true;
    set({ length });
    saveSettings(savedOf(get()));
  },

  setWarmup(warmup) {
    settingsTouched = true;
    set({ warmup });
    saveSettings(savedOf(get()));
  },

  resetSettings() {
    settingsTouched = true;
    set({ overrides: {}, length: 'epochs', warmup: 'steps' });
    saveSettings(savedOf(get()));
  },

  async start(dataset) {
    const s = get();
    if (busy(s.status)) return;
    const settings = effectiveSettings(s);
    if (!settings) {
      set({ status: 'error', error: 'The training defaults are not loaded yet; wait a moment and try again.' });
      return;
    }
    set({
      status: 'running',
      runId: null,
      step: 0,
      totalSteps: settings.maxSteps ?? 0,
      metrics: [],
      log: [],
      summary: null,
      firstStepOfCall: null,
      runSettings: settings,
      checkpointStep: null,
      seconds: null,
      error: null,
    });
    await drive(async (cb) => trainer.train(dataset, settings, cb, await openTrainBatches(dataset)));
  },

  async pause() {
    if (get().status !== 'running') return;
    set({ status: 'pausing' });
    try {
      await trainer.pauseTraining();
    } catch (e) {
      set({ status: 'running', error: `The run could not be paused: ${errorMessage(e)}. Stop it instead, or try again.` });
    }
  },

  async resume() {
    const s = get();
    if (busy(s.status)) return;
    const info = s.checkpoint;
    if (!info) {
      set({ error: 'There is no checkpoint to resume: start a new run with Train.' });
      return;
    }
    const model = useModelStore.getState().model;
    if (info.modelId && model?.id !== info.modelId) {
      set({ error: `This checkpoint was trained on ${info.modelId}: load that model first (Model tab), then resume.` });
      return;
    }
    // The charts go on from the checkpoint: steps after it are trained again.
    const shown = s.runId === info.runId && s.metrics.length > 0 ? historyUpTo(s.metrics, s.log, info.step) : ((await loadRunHistory(info.runId, info.step)) ?? { metrics: [], log: [] });
    if (busy(get().status)) return;
    set({
      status: 'running',
      runId: info.runId,
      metrics: shown.metrics,
      log: shown.log,
      step: info.step,
      totalSteps: info.totalSteps,
      summary: null,
      firstStepOfCall: null,
      runSettings: info.settings,
      checkpointStep: info.step,
      seconds: null,
      error: null,
    });
    const dataset = info.dataset;
    if (!dataset) {
      set({ status: 'idle', error: 'This checkpoint does not say which dataset it was trained on: start a new run with Train.' });
      return;
    }
    await drive(async (cb) => trainer.resumeTraining(cb, await openTrainBatches(dataset)));
  },

  async stop() {
    const st = get().status;
    if (st !== 'running' && st !== 'pausing') return;
    set({ status: 'stopping' });
    try {
      await trainer.stopTraining();
    } catch (e) {
      set({ status: 'error', error: `The run could not be stopped: ${errorMessage(e)}. Reload the page to end it; its last checkpoint stays.` });
    }
  },

  async refreshCheckpoint() {
    let info: CheckpointInfo | null;
    try {
      info = await trainer.checkpointInfo();
    } catch (e) {
      set({ checkpointChecked: true, checkpointProblem: `The stored checkpoint could not be read: ${errorMessage(e)}. Training a new run replaces it.` });
      return;
    }
    set({ checkpoint: info, checkpointChecked: true, checkpointProblem: null });
    // A fresh page: show what the stored run did so far, so that Resume continues its charts.
    if (!info || get().status !== 'idle' || get().metrics.length > 0) return;
    const h = await loadRunHistory(info.runId, info.step);
    if (get().status !== 'idle' || get().metrics.length > 0) return;
    set({ runId: info.runId, metrics: h?.metrics ?? [], log: h?.log ?? [], step: info.step, totalSteps: info.totalSteps, checkpointStep: info.step, runSettings: info.settings });
  },

  async discardCheckpoint() {
    const s = get();
    if (busy(s.status)) return;
    try {
      await trainer.discardCheckpoint();
    } catch (e) {
      set({ error: `The checkpoint could not be deleted: ${errorMessage(e)}.` });
      return;
    }
    await deleteRunHistory();
    if (s.status === 'idle') set({ runId: null, metrics: [], log: [], step: 0, totalSteps: 0, checkpointStep: null, runSettings: null });
    else if (s.status === 'paused') set({ status: 'done' });
    set({ checkpoint: null, checkpointStep: null });
  },
}));

void loadPersisted<Partial<Saved>>(SETTINGS_KEY, LEGACY_SETTINGS_KEY).then((v) => {
  if (settingsTouched || !v || typeof v !== 'object') return;
  useRunStore.setState({
    overrides: typeof v.overrides === 'object' && v.overrides ? v.overrides : {},
    length: v.length === 'maxSteps' ? 'maxSteps' : 'epochs',
    warmup: v.warmup === 'ratio' ? 'ratio' : 'steps',
  });
});

// The adapter is made for the model's shapes: the trainer worker drops it when the model changes.
useModelStore.subscribe((s, prev) => {
  if (s.model !== prev.model && useRunStore.getState().hasAdapter) useRunStore.setState({ hasAdapter: false });
});

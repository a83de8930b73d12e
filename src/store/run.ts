// A training run as the UI shows it: the settings form (the seed recipe from the trainer worker,
// plus what a person changed), the status, every step's metrics, a log of skipped steps and
// warnings, and the summary. Metrics arrive by comlink callback once per step; they are queued and
// put into the store at most once per animation frame, so a fast run never floods React.
import { create } from 'zustand';
import { errorMessage, openTrainBatches, trainer, type StepMetrics, type TrainSettings, type TrainSummary } from '../client/index.ts';
import { useModelStore } from './model.ts';

export type { StepMetrics, TrainSettings, TrainSummary };

export type RunStatus = 'idle' | 'running' | 'stopping' | 'done' | 'error';

export interface RunLogEntry {
  /** The step it is about; null for the run as a whole. */
  step: number | null;
  tone: 'warn' | 'error' | 'info';
  text: string;
}

/** Which limit ends the run: epochs over the data, or a fixed number of optimizer steps. */
export type RunLength = 'epochs' | 'maxSteps';

interface RunState {
  /** The seed recipe, from the trainer worker; null until it answered. */
  defaults: TrainSettings | null;
  defaultsError: string | null;
  /** What a person changed (over `defaults`); kept in localStorage. */
  overrides: Partial<TrainSettings>;
  length: RunLength;

  status: RunStatus;
  step: number;
  totalSteps: number;
  /** Every step's metrics (the charts downsample for drawing). */
  metrics: StepMetrics[];
  log: RunLogEntry[];
  summary: TrainSummary | null;
  /** Wall time of the whole run (worker call), seconds; null while running. */
  seconds: number | null;
  /** A trained LoRA adapter exists in the trainer worker (what Export and Chat need). */
  hasAdapter: boolean;
  error: string | null;

  loadDefaults(): Promise<void>;
  setSetting<K extends keyof TrainSettings>(key: K, value: TrainSettings[K]): void;
  setLength(length: RunLength): void;
  resetSettings(): void;
  /** Trains on the prepared dataset with this fingerprint. */
  start(dataset: string): Promise<void>;
  stop(): Promise<void>;
}

const SETTINGS_KEY = 'webtune.train.settings.v1';

interface Saved {
  overrides: Partial<TrainSettings>;
  length: RunLength;
}

function loadSaved(): Saved {
  try {
    const raw = localStorage.getItem(SETTINGS_KEY);
    if (raw) {
      const v = JSON.parse(raw) as Partial<Saved>;
      return { overrides: typeof v.overrides === 'object' && v.overrides ? v.overrides : {}, length: v.length === 'maxSteps' ? 'maxSteps' : 'epochs' };
    }
  } catch {
    // unreadable or no storage: start from the recipe
  }
  return { overrides: {}, length: 'epochs' };
}

function save(s: Saved): void {
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(s));
  } catch {
    // private mode or full storage: settings last for this page only
  }
}

/** The settings a run will use: the recipe, the changes, and the chosen run length. */
export function effectiveSettings(s: Pick<RunState, 'defaults' | 'overrides' | 'length'>): TrainSettings | null {
  if (!s.defaults) return null;
  const merged: TrainSettings = { ...s.defaults, ...s.overrides };
  if (s.length === 'epochs') delete merged.maxSteps;
  else merged.maxSteps ??= 100;
  return merged;
}

const saved = loadSaved();

/** Steps that arrived since the last frame. */
let pending: StepMetrics[] = [];
let frame: number | null = null;

function logFor(m: StepMetrics): RunLogEntry[] {
  const out: RunLogEntry[] = [];
  if (m.skipped) out.push({ step: m.step, tone: 'warn', text: `Step ${m.step} skipped: the loss or the gradient norm was not finite (the update was not applied).` });
  else if (m.gradNorm > 1e3) out.push({ step: m.step, tone: 'warn', text: `Step ${m.step}: gradient norm ${m.gradNorm.toFixed(1)} is very large; a lower learning rate may help.` });
  return out;
}

function flush(): void {
  if (frame !== null) {
    cancelAnimationFrame(frame);
    frame = null;
  }
  if (pending.length === 0) return;
  const batch = pending;
  pending = [];
  const last = batch[batch.length - 1];
  useRunStore.setState((s) => ({
    metrics: s.metrics.concat(batch),
    log: s.log.concat(batch.flatMap(logFor)),
    step: last.step,
    totalSteps: last.totalSteps,
  }));
}

function queue(m: StepMetrics): void {
  pending.push(m);
  frame ??= requestAnimationFrame(() => {
    frame = null;
    flush();
  });
}

export const useRunStore = create<RunState>()((set, get) => ({
  defaults: null,
  defaultsError: null,
  overrides: saved.overrides,
  length: saved.length,
  status: 'idle',
  step: 0,
  totalSteps: 0,
  metrics: [],
  log: [],
  summary: null,
  seconds: null,
  hasAdapter: false,
  error: null,

  async loadDefaults() {
    if (get().defaults) return;
    try {
      set({ defaults: await trainer.trainDefaults(), defaultsError: null });
    } catch (e) {
      set({ defaultsError: `The training defaults could not be read from the trainer worker: ${errorMessage(e)}` });
    }
  },

  setSetting(key, value) {
    const overrides = { ...get().overrides, [key]: value };
    set({ overrides });
    save({ overrides, length: get().length });
  },

  setLength(length) {
    set({ length });
    save({ overrides: get().overrides, length });
  },

  resetSettings() {
    set({ overrides: {}, length: 'epochs' });
    save({ overrides: {}, length: 'epochs' });
  },

  async start(dataset) {
    const s = get();
    if (s.status === 'running' || s.status === 'stopping') return;
    const settings = effectiveSettings(s);
    if (!settings) {
      set({ status: 'error', error: 'The training defaults are not loaded yet; wait a moment and try again.' });
      return;
    }
    pending = [];
    set({ status: 'running', step: 0, totalSteps: settings.maxSteps ?? 0, metrics: [], log: [], summary: null, seconds: null, error: null });
    const t0 = performance.now();
    try {
      const summary = await trainer.train(dataset, settings, queue, await openTrainBatches(dataset));
      flush();
      const log: RunLogEntry[] = [];
      if (summary.stopped === 'aborted') log.push({ step: null, tone: 'info', text: `Stopped after ${summary.steps} steps.` });
      if (summary.stopped === 'diverged') log.push({ step: null, tone: 'error', text: summary.message ?? 'Training diverged: try a lower learning rate.' });
      else if (summary.message) log.push({ step: null, tone: 'info', text: summary.message });
      set((st) => ({ status: 'done', summary, hasAdapter: true, seconds: (performance.now() - t0) / 1000, log: st.log.concat(log) }));
    } catch (e) {
      flush();
      set({ status: 'error', error: errorMessage(e), seconds: (performance.now() - t0) / 1000 });
    }
  },

  async stop() {
    if (get().status !== 'running') return;
    set({ status: 'stopping' });
    try {
      await trainer.stopTraining();
    } catch (e) {
      set({ status: 'error', error: `The run could not be stopped: ${errorMessage(e)}` });
    }
  },
}));

// The adapter is made for the model's shapes: the trainer worker drops it when the model changes.
useModelStore.subscribe((s, prev) => {
  if (s.model !== prev.model && useRunStore.getState().hasAdapter) useRunStore.setState({ hasAdapter: false });
});

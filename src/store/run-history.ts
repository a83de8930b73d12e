// The charts and log of the newest training run, kept per run id in IndexedDB (persist.ts), so
// that after a reload the Train tab shows what the run did before, and a resumed run's charts go
// on from there. Saved when a checkpoint is written: a resume starts from a checkpoint, so steps
// after the newest one would be trained again and are not kept. Only one run is kept.
import type { StepMetrics } from '../client/index.ts';
import { deletePersisted, deletePersistedPrefix, loadPersisted, savePersisted } from './persist.ts';

export interface RunLogEntry {
  /** The step it is about; null for the run as a whole. */
  step: number | null;
  tone: 'warn' | 'error' | 'info';
  text: string;
}

export interface RunHistory {
  runId: string;
  /** Metrics of steps 1 .. the checkpoint's step, in order. */
  metrics: StepMetrics[];
  log: RunLogEntry[];
  savedAt: number;
}

const PREFIX = 'run-history.';

/** What a checkpoint of `step` keeps: its steps and the log about them (and about the run). */
export function historyUpTo(metrics: readonly StepMetrics[], log: readonly RunLogEntry[], step: number): Pick<RunHistory, 'metrics' | 'log'> {
  return {
    metrics: metrics.filter((m) => m.step <= step),
    log: log.filter((e) => e.step === null || e.step <= step),
  };
}

/** Writes the run's history and forgets older runs'. Never throws (see persist.ts). */
export async function saveRunHistory(runId: string, metrics: readonly StepMetrics[], log: readonly RunLogEntry[], step: number): Promise<void> {
  const h: RunHistory = { runId, ...historyUpTo(metrics, log, step), savedAt: Date.now() };
  if (await savePersisted(PREFIX + runId, h)) await deletePersistedPrefix(PREFIX, PREFIX + runId);
}

/** The stored history of a run, cut at `step` (the checkpoint a resume starts from). */
export async function loadRunHistory(runId: string, step: number): Promise<RunHistory | null> {
  const h = await loadPersisted<RunHistory>(PREFIX + runId);
  if (!h || h.runId !== runId || !Array.isArray(h.metrics)) return null;
  return { ...h, ...historyUpTo(h.metrics, Array.isArray(h.log) ? h.log : [], step) };
}

export async function deleteRunHistory(runId?: string): Promise<void> {
  if (runId) await deletePersisted(PREFIX + runId);
  else await deletePersistedPrefix(PREFIX);
}

// What a run is doing and did: progress with elapsed time and ETA, GPU memory, how it ended, and
// the log of skipped steps, checkpoint errors and warnings.
import { useMemo } from 'react';
import { formatBytes, formatDuration } from '../../util/format.ts';
import { formatCount } from '../format.ts';
import { useRunStore, type RunStatus, type TrainSummary } from '../../store/run.ts';

const fixed = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));

const STATUS_WORDS: Partial<Record<RunStatus, string>> = {
  pausing: ' · pausing after this step (writing a checkpoint)…',
  stopping: ' · stopping after this step…',
  paused: ' · paused',
};

/** Step / total, elapsed, ETA, tokens/s, the newest checkpoint. */
export function RunProgress() {
  const status = useRunStore((s) => s.status);
  const step = useRunStore((s) => s.step);
  const total = useRunStore((s) => s.totalSteps);
  const firstStep = useRunStore((s) => s.firstStepOfCall);
  const checkpointStep = useRunStore((s) => s.checkpointStep);
  const last = useRunStore((s) => (s.metrics.length > 0 ? s.metrics[s.metrics.length - 1] : null));
  if (status === 'idle' && step === 0) return null;
  const live = status === 'running' || status === 'pausing' || status === 'stopping';
  const pct = total > 0 ? Math.round((100 * step) / total) : 0;
  return (
    <div
      className="train-progress"
      data-testid="train-progress"
      data-step={step}
      data-total={total}
      data-status={status}
      data-first-step={firstStep ?? ''}
      data-checkpoint-step={checkpointStep ?? ''}
    >
      <progress max={Math.max(1, total)} value={step} aria-label={`Training progress: step ${step} of ${total || 'unknown'}`} />
      <span className="small" aria-live="off">
        <strong>
          Step {step} / {total || '…'}
        </strong>{' '}
        ({pct}%)
        {last && (
          <>
            {' · '}epoch {last.epoch + 1} · {formatDuration(last.elapsedMs / 1000)} elapsed
            {live && step < total && <> · about {formatDuration(last.etaMs / 1000)} left</>} · {formatCount(Math.round(last.tokensPerSecond))} tokens/s
          </>
        )}
        {checkpointStep !== null && <> · last checkpoint: step {checkpointStep}</>}
        {STATUS_WORDS[status] ?? ''}
      </span>
      <GpuMemoryLine />
    </div>
  );
}

/** GPU buffers the engine tracks after the newest step, and the highest seen in this run. */
function GpuMemoryLine() {
  const metrics = useRunStore((s) => s.metrics);
  const mem = useMemo(() => {
    let now: number | undefined;
    let peak = 0;
    for (const m of metrics) {
      if (m.gpuMemoryBytes !== undefined) now = m.gpuMemoryBytes;
      peak = Math.max(peak, m.gpuMemoryPeak ?? 0, m.gpuMemoryBytes ?? 0);
    }
    return now === undefined ? null : { now, peak };
  }, [metrics]);
  if (!mem) return null;
  return (
    <span className="small muted" data-testid="train-gpu-memory" data-bytes={mem.now} data-peak={mem.peak}>
      GPU memory: {formatBytes(mem.now)} in use · peak {formatBytes(mem.peak)} (every buffer of the model, adapter, optimizer,
      activations and scratch)
    </span>
  );
}

const HOW: Record<TrainSummary['stopped'], string> = {
  done: 'Done',
  aborted: 'Stopped',
  paused: 'Paused',
  'early-stopped': 'Stopped early',
  diverged: 'Diverged',
};

function tone(s: TrainSummary): 'ok' | 'warn' | 'error' | 'info' {
  if (s.stopped === 'diverged') return 'error';
  if (s.stopped === 'done' || s.stopped === 'early-stopped') return 'ok';
  return 'info';
}

/** How the run ended: steps, time, first and last loss, best eval loss, what to do next. */
export function RunSummary() {
  const summary = useRunStore((s) => s.summary);
  const seconds = useRunStore((s) => s.seconds);
  const metrics = useRunStore((s) => s.metrics);
  const total = useRunStore((s) => s.totalSteps);
  const { first, final } = useMemo(() => {
    const finite = metrics.filter((m) => !m.skipped && Number.isFinite(m.loss));
    return { first: finite[0]?.loss, final: finite[finite.length - 1]?.loss };
  }, [metrics]);
  if (!summary) return null;
  const paused = summary.stopped === 'paused';
  return (
    <div
      className={`notice notice-${tone(summary)}`}
      data-testid="train-summary"
      data-stopped={summary.stopped}
      data-steps={summary.steps}
      data-skipped={summary.skipped}
      data-first-loss={first ?? ''}
      data-final-loss={final ?? ''}
      data-seconds={seconds ?? ''}
      data-checkpoint-step={summary.checkpoint?.step ?? ''}
      data-best-eval-loss={summary.bestEvalLoss ?? ''}
      data-best-eval-step={summary.bestEvalStep ?? ''}
      role="status"
    >
      {HOW[summary.stopped]}: {summary.steps}
      {paused || summary.stopped === 'aborted' ? ` of ${total}` : ''} steps{summary.skipped > 0 ? ` (${summary.skipped} skipped)` : ''} in{' '}
      {seconds !== null ? formatDuration(seconds) : '—'}
      {final !== undefined && first !== undefined && (
        <>
          {' '}· loss {fixed(first)} → <strong>{fixed(final)}</strong>
        </>
      )}
      {summary.evalLoss !== undefined && <> · eval loss {fixed(summary.evalLoss)}</>}
      {summary.bestEvalLoss !== undefined && summary.bestEvalStep !== undefined && (
        <>
          {' '}
          (best {fixed(summary.bestEvalLoss)} at step {summary.bestEvalStep})
        </>
      )}
      .{summary.stopped === 'diverged' && summary.message && <> {summary.message}</>}
      {summary.stopped === 'early-stopped' && summary.message && <> {summary.message}</>}{' '}
      {paused ? 'Resume continues from the checkpoint. ' : ''}
      The adapter is in the trainer worker: try it in the <a href="#chat">Chat tab</a> or save it from the <a href="#export">Export tab</a>.
    </div>
  );
}

/** Entries shown at most: the newest; a run of thousands of skipped steps stays light to draw. */
const LOG_SHOWN = 200;

export function RunLog() {
  const log = useRunStore((s) => s.log);
  if (log.length === 0) return null;
  const hidden = Math.max(0, log.length - LOG_SHOWN);
  const warnings = log.filter((e) => e.tone !== 'info').length;
  return (
    <details open data-testid="train-log" data-count={log.length} data-warnings={warnings}>
      <summary>
        Run log ({log.length}
        {warnings > 0 ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : ''})
      </summary>
      {hidden > 0 && <p className="muted small">{hidden} earlier entries are not shown.</p>}
      <ul className="train-log">
        {log.slice(hidden).map((e, i) => (
          <li key={hidden + i} className={`tone-${e.tone}`} data-tone={e.tone}>
            {e.text}
          </li>
        ))}
      </ul>
    </details>
  );
}

import { useCallback, useState } from 'react';
import { formatDuration } from '../../util/format.ts';
import { formatCount, formatSci } from '../format.ts';
import { useRunStore, type StepMetrics } from '../../store/run.ts';
import { MetricChart } from './MetricChart.tsx';

const pickLoss = (m: StepMetrics) => m.loss;
const pickLr = (m: StepMetrics) => m.lr;
const pickGrad = (m: StepMetrics) => m.gradNorm;
const pickTps = (m: StepMetrics) => m.tokensPerSecond;
const fixed = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));

/** Step / total, elapsed, ETA, tokens/s. */
export function RunProgress() {
  const status = useRunStore((s) => s.status);
  const step = useRunStore((s) => s.step);
  const total = useRunStore((s) => s.totalSteps);
  const last = useRunStore((s) => (s.metrics.length > 0 ? s.metrics[s.metrics.length - 1] : null));
  if (status === 'idle') return null;
  return (
    <div className="train-progress" data-testid="train-progress" data-step={step} data-total={total} data-status={status}>
      <progress max={Math.max(1, total)} value={step} aria-label="Training progress" />
      <span className="small">
        Step {step} / {total || '…'}
        {last && (
          <>
            {' · '}epoch {last.epoch + 1} · {formatDuration(last.elapsedMs / 1000)} elapsed
            {status === 'running' && <> · {formatDuration(last.etaMs / 1000)} left</>} · {formatCount(Math.round(last.tokensPerSecond))} tokens/s
          </>
        )}
        {status === 'stopping' && ' · stopping after this step…'}
      </span>
    </div>
  );
}

export function RunCharts() {
  const metrics = useRunStore((s) => s.metrics);
  const [smooth, setSmooth] = useState(false);
  const toggle = useCallback(() => setSmooth((x) => !x), []);
  if (metrics.length === 0) return null;
  return (
    <div>
      <label className="switch">
        <input type="checkbox" data-testid="train-smooth" checked={smooth} onChange={toggle} /> Smooth (EMA 0.9; the raw values stay faint behind)
      </label>
      <div className="train-charts">
        <MetricChart testId="chart-loss" title="Loss" metrics={metrics} pick={pickLoss} smooth={smooth} format={fixed} />
        <MetricChart testId="chart-lr" title="Learning rate" metrics={metrics} pick={pickLr} smooth={false} format={formatSci} skipSkipped={false} />
        <MetricChart testId="chart-grad-norm" title="Gradient norm" metrics={metrics} pick={pickGrad} smooth={smooth} format={fixed} />
        <MetricChart testId="chart-tokens" title="Tokens/s" metrics={metrics} pick={pickTps} smooth={smooth} format={fixed} skipSkipped={false} />
      </div>
    </div>
  );
}

export function RunLog() {
  const log = useRunStore((s) => s.log);
  if (log.length === 0) return null;
  return (
    <details open data-testid="train-log" data-count={log.length}>
      <summary>Warnings and skipped steps ({log.length})</summary>
      <ul className="train-log">
        {log.map((e, i) => (
          <li key={i} className={`tone-${e.tone}`}>
            {e.text}
          </li>
        ))}
      </ul>
    </details>
  );
}

export function RunSummary() {
  const summary = useRunStore((s) => s.summary);
  const seconds = useRunStore((s) => s.seconds);
  const metrics = useRunStore((s) => s.metrics);
  if (!summary) return null;
  const finite = metrics.filter((m) => !m.skipped && Number.isFinite(m.loss));
  const first = finite[0]?.loss;
  const final = finite[finite.length - 1]?.loss;
  const how = summary.stopped === 'done' ? 'Done' : summary.stopped === 'aborted' ? 'Stopped' : 'Diverged';
  return (
    <p
      className={`notice notice-${summary.stopped === 'diverged' ? 'error' : 'ok'}`}
      data-testid="train-summary"
      data-stopped={summary.stopped}
      data-steps={summary.steps}
      data-skipped={summary.skipped}
      data-first-loss={first ?? ''}
      data-final-loss={final ?? ''}
      data-seconds={seconds ?? ''}
    >
      {how}: {summary.steps} steps{summary.skipped > 0 ? ` (${summary.skipped} skipped)` : ''} in {seconds !== null ? formatDuration(seconds) : '—'}
      {final !== undefined && first !== undefined && (
        <>
          {' '}· loss {fixed(first)} → <strong>{fixed(final)}</strong>
        </>
      )}
      . The adapter is in the trainer worker: try it in the <a href="#chat">Chat tab</a> or save it from the <a href="#export">Export tab</a>.
    </p>
  );
}

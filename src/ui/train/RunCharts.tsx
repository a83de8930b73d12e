// The run's live charts: train loss with the eval loss on the same step axis, learning rate,
// gradient norm and tokens/s. The store keeps every step; MetricChart downsamples for drawing.
import { useMemo, useState } from 'react';
import { formatSci } from '../format.ts';
import { useRunStore, type StepMetrics } from '../../store/run.ts';
import { MetricChart } from './MetricChart.tsx';
import type { Point } from './series.ts';

const fixed = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));

/** One metric per step; skipped steps have no meaningful loss or gradient norm. */
function seriesOf(metrics: readonly StepMetrics[], pick: (m: StepMetrics) => number | undefined, skipSkipped: boolean): Point[] {
  const out: Point[] = [];
  for (const m of metrics) {
    const v = pick(m);
    if (v === undefined) continue;
    out.push({ step: m.step, value: skipSkipped && m.skipped ? Number.NaN : v });
  }
  return out;
}

export function RunCharts() {
  const metrics = useRunStore((s) => s.metrics);
  const [smooth, setSmooth] = useState(false);
  const series = useMemo(
    () => ({
      loss: seriesOf(metrics, (m) => m.loss, true),
      evalLoss: seriesOf(metrics, (m) => m.evalLoss, false),
      lr: seriesOf(metrics, (m) => m.lr, false),
      grad: seriesOf(metrics, (m) => m.gradNorm, true),
      tps: seriesOf(metrics, (m) => m.tokensPerSecond, false),
    }),
    [metrics],
  );
  const overlay = useMemo(() => ({ label: 'Eval loss', points: series.evalLoss }), [series.evalLoss]);
  if (metrics.length === 0) return null;
  return (
    <div className="train-charts-wrap">
      <label className="switch">
        <input type="checkbox" data-testid="train-smooth" checked={smooth} onChange={() => setSmooth((x) => !x)} /> Smooth the curves (EMA 0.9; the raw values stay faint behind)
      </label>
      <div className="train-charts">
        <MetricChart testId="chart-loss" title="Loss" points={series.loss} overlay={overlay} smooth={smooth} format={fixed} />
        <MetricChart testId="chart-lr" title="Learning rate" points={series.lr} smooth={false} format={formatSci} />
        <MetricChart testId="chart-grad-norm" title="Gradient norm" points={series.grad} smooth={smooth} format={fixed} />
        <MetricChart testId="chart-tokens" title="Tokens/s" points={series.tps} smooth={smooth} format={fixed} />
      </div>
    </div>
  );
}

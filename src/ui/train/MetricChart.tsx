import { useMemo } from 'react';
import { CartesianGrid, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { StepMetrics } from '../../store/run.ts';
import { downsample, ema, type Point } from './series.ts';

/** Points drawn per chart: enough for the shape, few enough that thousands of steps stay smooth. */
export const MAX_DRAWN = 300;
/** Dots mark each step while there are few of them. */
const DOTS_UP_TO = 60;

export interface MetricChartProps {
  testId: string;
  title: string;
  metrics: readonly StepMetrics[];
  pick: (m: StepMetrics) => number;
  smooth: boolean;
  format: (v: number) => string;
  /** Skipped steps carry no meaningful value for this metric. */
  skipSkipped?: boolean;
}

/** One metric over steps. data-points: steps in the store; data-drawn: points drawn. */
export function MetricChart({ testId, title, metrics, pick, smooth, format, skipSkipped = true }: MetricChartProps) {
  const data = useMemo(() => {
    const raw: Point[] = [];
    for (const m of metrics) raw.push({ step: m.step, value: skipSkipped && m.skipped ? NaN : pick(m) });
    return downsample(smooth ? ema(raw, 0.9) : raw, MAX_DRAWN);
  }, [metrics, pick, smooth, skipSkipped]);
  const last = data.length > 0 ? data[data.length - 1] : null;
  const dots = data.length <= DOTS_UP_TO;

  return (
    <figure className="train-chart" data-testid={testId} data-points={metrics.length} data-drawn={data.length} aria-label={`${title} per step`}>
      <figcaption>
        <strong>{title}</strong>
        <span className="muted small">{last ? ` ${format(last.value)} at step ${last.step}` : ' —'}</span>
      </figcaption>
      <ResponsiveContainer width="100%" height={180}>
        <LineChart data={data} margin={{ top: 6, right: 12, bottom: 4, left: 0 }}>
          <CartesianGrid strokeDasharray="3 3" vertical={false} />
          <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} allowDecimals={false} tick={{ fontSize: 11 }} />
          <YAxis tick={{ fontSize: 11 }} width={56} domain={['auto', 'auto']} tickFormatter={(v: number) => format(v)} />
          <Tooltip formatter={(v) => [typeof v === 'number' ? format(v) : String(v), title]} labelFormatter={(l) => `step ${l}`} />
          {smooth && <Line type="linear" dataKey="raw" stroke="var(--muted)" strokeOpacity={0.4} dot={false} isAnimationActive={false} />}
          <Line type="linear" dataKey="value" stroke="var(--accent)" strokeWidth={2} dot={dots ? { r: 2 } : false} isAnimationActive={false} connectNulls />
        </LineChart>
      </ResponsiveContainer>
    </figure>
  );
}

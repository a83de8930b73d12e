import { useMemo } from 'react';
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { downsample, ema, mergeSeries, type Point } from './series.ts';

/** Points drawn per series: enough for the shape, few enough that thousands of steps stay smooth. */
export const MAX_DRAWN = 300;
/** Dots mark each step while there are few of them. */
const DOTS_UP_TO = 60;

export interface MetricChartProps {
  testId: string;
  title: string;
  /** One value per step, all of them (NaN: no value at that step). */
  points: readonly Point[];
  /** A second series on the same step axis, never smoothed (the eval loss). */
  overlay?: { label: string; points: readonly Point[] };
  smooth: boolean;
  format: (v: number) => string;
}

const finite = (p: Point): boolean => Number.isFinite(p.value);

/** One metric over steps. data-points: steps given; data-drawn: train points drawn; data-overlay-points: overlay points given. */
export function MetricChart({ testId, title, points, overlay, smooth, format }: MetricChartProps) {
  const overlayPoints = overlay?.points;
  const rows = useMemo(() => {
    const main = downsample(smooth ? ema(points, 0.9) : points, MAX_DRAWN).filter(finite);
    const extra = overlayPoints ? downsample(overlayPoints.filter(finite), MAX_DRAWN) : [];
    return { main, extra, merged: mergeSeries(main, extra) };
  }, [points, overlayPoints, smooth]);
  const last = rows.main.length > 0 ? rows.main[rows.main.length - 1] : null;
  const lastOverlay = rows.extra.length > 0 ? rows.extra[rows.extra.length - 1] : null;
  const dots = rows.main.length <= DOTS_UP_TO;
  const showOverlay = overlay !== undefined && rows.extra.length > 0;

  return (
    <figure
      className="train-chart"
      data-testid={testId}
      data-points={points.length}
      data-drawn={rows.main.length}
      data-first-step={points.length > 0 ? points[0].step : ''}
      data-last-step={points.length > 0 ? points[points.length - 1].step : ''}
      data-overlay-points={overlayPoints ? overlayPoints.filter(finite).length : undefined}
      aria-label={`${title} per step`}
    >
      <figcaption>
        <strong>{title}</strong>
        <span className="muted small">
          {last ? ` ${format(last.value)} at step ${last.step}` : ' —'}
          {overlay && lastOverlay && ` · ${overlay.label.toLowerCase()} ${format(lastOverlay.value)} at step ${lastOverlay.step}`}
        </span>
      </figcaption>
      <ResponsiveContainer width="100%" height={180}>
        <LineChart data={rows.merged} margin={{ top: 6, right: 12, bottom: 4, left: 0 }}>
          <CartesianGrid strokeDasharray="3 3" vertical={false} stroke="var(--border)" />
          <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} allowDecimals={false} tick={{ fontSize: 11, fill: 'var(--muted)' }} stroke="var(--border)" />
          <YAxis tick={{ fontSize: 11, fill: 'var(--muted)' }} width={56} domain={['auto', 'auto']} tickFormatter={(v: number) => format(v)} stroke="var(--border)" />
          <Tooltip
            formatter={(v, name) => [typeof v === 'number' ? format(v) : String(v), name]}
            labelFormatter={(l) => `step ${l}`}
            contentStyle={{ background: 'var(--surface)', border: '1px solid var(--border)', color: 'var(--text)' }}
          />
          {showOverlay && <Legend verticalAlign="top" height={20} iconSize={10} wrapperStyle={{ fontSize: 12 }} />}
          {smooth && <Line name="raw" type="linear" dataKey="raw" stroke="var(--muted)" strokeOpacity={0.4} dot={false} isAnimationActive={false} connectNulls legendType="none" />}
          <Line name={showOverlay ? 'train' : title} type="linear" dataKey="value" stroke="var(--accent)" strokeWidth={2} dot={dots ? { r: 2 } : false} isAnimationActive={false} connectNulls />
          {showOverlay && (
            <Line
              name={overlay.label}
              className="chart-overlay"
              type="linear"
              dataKey="overlay"
              stroke="var(--chart-2)"
              strokeWidth={2}
              dot={{ r: 3, fill: 'var(--chart-2)', className: 'chart-overlay-dot' }}
              isAnimationActive={false}
              connectNulls
            />
          )}
        </LineChart>
      </ResponsiveContainer>
    </figure>
  );
}

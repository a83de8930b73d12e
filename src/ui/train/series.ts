// Chart series from the run's metrics: an optional EMA (TensorBoard-style, debiased), then
// downsampling to a bounded number of points for drawing. The store keeps every step.

export interface Point {
  step: number;
  value: number;
  /** The raw value, when `value` is smoothed. */
  raw?: number;
}

/** Exponential moving average with bias correction, so the first points are not pulled to 0.
 *  Non-finite values (skipped steps) are passed through without touching the average. */
export function ema(points: readonly Point[], weight: number): Point[] {
  let acc = 0;
  let n = 0;
  return points.map((p) => {
    if (!Number.isFinite(p.value)) return { step: p.step, value: p.value, raw: p.value };
    acc = acc * weight + (1 - weight) * p.value;
    n++;
    return { step: p.step, value: acc / (1 - weight ** n), raw: p.value };
  });
}

/** At most `max` points: each bucket of consecutive steps becomes its mean, drawn at its last
 *  step; the very last point is always kept exactly (the latest value is what people read). */
export function downsample(points: readonly Point[], max: number): Point[] {
  if (points.length <= max) return points.slice();
  const size = Math.ceil(points.length / max);
  const out: Point[] = [];
  for (let start = 0; start < points.length; start += size) {
    const end = Math.min(points.length, start + size);
    let sum = 0;
    let rawSum = 0;
    let count = 0;
    for (let i = start; i < end; i++) {
      const p = points[i];
      if (!Number.isFinite(p.value)) continue;
      sum += p.value;
      rawSum += p.raw ?? p.value;
      count++;
    }
    if (count === 0) continue;
    const last = points[end - 1];
    out.push({ step: last.step, value: sum / count, raw: points[start].raw === undefined ? undefined : rawSum / count });
  }
  const last = points[points.length - 1];
  if (Number.isFinite(last.value)) out[out.length - 1] = { ...last };
  return out;
}

/** A row of a chart: the train series (maybe smoothed, with its raw value) and the overlay (eval). */
export interface ChartRow {
  step: number;
  value?: number;
  raw?: number;
  overlay?: number;
}

/** Both series on one step axis, in step order; a step present in both gives one row. */
export function mergeSeries(main: readonly Point[], overlay: readonly Point[]): ChartRow[] {
  const rows = new Map<number, ChartRow>();
  for (const p of main) rows.set(p.step, { step: p.step, value: p.value, raw: p.raw });
  for (const p of overlay) {
    const row = rows.get(p.step);
    if (row) row.overlay = p.value;
    else rows.set(p.step, { step: p.step, overlay: p.value });
  }
  return [...rows.values()].sort((a, b) => a.step - b.step);
}

import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { LengthHistogram as Histogram } from '../../data/index.ts';

/** Example lengths in tokens (before truncation); the last bar counts those over the max. */
export function LengthHistogram({ histogram, maxSeqLength }: { histogram: Histogram; maxSeqLength: number }) {
  const bars = displayBins(histogram, maxSeqLength);
  if (histogram.overflow > 0) bars.push({ label: `> ${maxSeqLength}`, count: histogram.overflow });
  return (
    <figure className="histogram" data-testid="length-histogram" aria-label="Histogram of example lengths in tokens">
      <ResponsiveContainer width="100%" height={200}>
        <BarChart data={bars} margin={{ top: 8, right: 8, bottom: 8, left: 0 }}>
          <CartesianGrid strokeDasharray="3 3" vertical={false} />
          <XAxis dataKey="label" tick={{ fontSize: 11 }} interval="preserveStartEnd" />
          <YAxis allowDecimals={false} tick={{ fontSize: 11 }} width={40} />
          <Tooltip formatter={(v) => [v, 'examples']} labelFormatter={(l) => `${l} tokens`} />
          <Bar dataKey="count" fill="var(--accent)" isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
      <figcaption className="muted small">Example lengths in tokens (before truncation)</figcaption>
    </figure>
  );
}

const MAX_BARS = 32;

/** Bins up to the longest example, merged to at most MAX_BARS bars. */
function displayBins(h: Histogram, maxSeqLength: number): { label: string; count: number }[] {
  let last = h.counts.length - 1;
  while (last > 0 && h.counts[last] === 0) last--;
  const used = h.overflow > 0 ? h.counts.length : last + 1;
  const merge = Math.max(1, Math.ceil(used / MAX_BARS));
  const width = h.binWidth * merge;
  const bars: { label: string; count: number }[] = [];
  for (let b = 0; b * merge < used; b++) {
    let count = 0;
    for (let k = b * merge; k < Math.min(used, (b + 1) * merge); k++) count += h.counts[k];
    bars.push({ label: `${b * width + 1}–${Math.min((b + 1) * width, maxSeqLength)}`, count });
  }
  return bars;
}

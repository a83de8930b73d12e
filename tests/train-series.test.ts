// The Train tab's chart series (src/ui/train/series.ts): thousands of steps become a bounded
// number of drawn points that keep the shape and the latest value; eval points share the step axis.
import { describe, expect, it } from 'vitest';
import { downsample, ema, mergeSeries, type Point } from '../src/ui/train/series.ts';

const steps = (n: number, f: (i: number) => number): Point[] => Array.from({ length: n }, (_, i) => ({ step: i + 1, value: f(i + 1) }));

describe('train chart series', () => {
  it('downsamples 10,000 steps to at most 300 points, keeping the last one exactly and the mean of each bucket', () => {
    const pts = steps(10_000, (s) => 10 / Math.sqrt(s));
    const t0 = performance.now();
    const out = downsample(ema(pts, 0.9), 300);
    const ms = performance.now() - t0;
    expect(out.length).toBeLessThanOrEqual(300);
    expect(out.length).toBeGreaterThan(250);
    expect(out[out.length - 1].step).toBe(10_000);
    expect(out.map((p) => p.step)).toEqual([...out.map((p) => p.step)].sort((a, b) => a - b));
    // A falling curve stays falling after bucketing.
    for (let i = 1; i < out.length; i++) expect(out[i].value).toBeLessThanOrEqual(out[i - 1].value);
    const raw = downsample(pts, 300);
    const size = Math.ceil(10_000 / 300);
    const firstBucket = pts.slice(0, size).reduce((s, p) => s + p.value, 0) / size;
    expect(raw[0].value).toBeCloseTo(firstBucket, 12);
    expect(raw[0].step).toBe(size);
    expect(ms).toBeLessThan(200);
  });

  it('skipped steps (NaN) neither enter a bucket mean nor the EMA', () => {
    const pts = steps(6, (s) => (s === 3 ? Number.NaN : 1));
    const smooth = ema(pts, 0.5);
    expect(smooth.filter((p) => Number.isFinite(p.value)).every((p) => Math.abs(p.value - 1) < 1e-12)).toBe(true);
    expect(Number.isNaN(smooth[2].value)).toBe(true);
    expect(downsample(pts, 3).map((p) => p.value)).toEqual([1, 1, 1]);
  });

  it('merges eval points into the train rows on one step axis', () => {
    const rows = mergeSeries(
      [
        { step: 1, value: 3 },
        { step: 3, value: 2 },
      ],
      [
        { step: 2, value: 2.5 },
        { step: 3, value: 2.2 },
      ],
    );
    expect(rows).toEqual([
      { step: 1, value: 3, raw: undefined },
      { step: 2, overlay: 2.5 },
      { step: 3, value: 2, raw: undefined, overlay: 2.2 },
    ]);
  });
});

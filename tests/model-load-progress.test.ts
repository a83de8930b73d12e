// Load progress events: throttled to 10 a second, but the latest state always arrives (a download
// that pauses mid-way must not leave the UI showing stale bytes), with rate and ETA.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LoadTracker, type LoadProgress } from '../src/engine/load-progress.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe('LoadTracker', () => {
  it('throttles, then sends the last state of a burst', () => {
    vi.useFakeTimers();
    let now = 0;
    const events: LoadProgress[] = [];
    const t = new LoadTracker((p) => events.push(p), () => now);
    t.bytesTotal = 1000;
    t.file = 'model.safetensors';
    t.bytesDone = 100;
    t.weights('Quantizing');
    t.bytesDone = 250;
    now = 20;
    t.weights('Quantizing');
    expect(events.map((e) => e.bytesDone)).toEqual([100]);
    now = 100;
    vi.advanceTimersByTime(100);
    expect(events.map((e) => e.bytesDone)).toEqual([100, 250]);
    expect(events[1].phase).toBe('download');
    expect(events[1].bytesPerSecond).toBeCloseTo(1500, 0); // 150 bytes in 0.1 s
    expect(events[1].etaSeconds).toBeCloseTo(750 / 1500, 3);
    expect(events[1].message).toMatch(/^Downloading model\.safetensors: 250 B of 1000 B \(0 of 0 tensors ready\) at 0\.0 MB\/s/);
  });

  it('a phase change is sent at once; stop() drops a pending event', () => {
    vi.useFakeTimers();
    const events: LoadProgress[] = [];
    const t = new LoadTracker((p) => events.push(p), () => 0);
    t.step('config', 'Reading…');
    t.step('tokenizer', 'Tokenizer…');
    t.tensor = 'model.norm.weight';
    t.weights('Uploading');
    t.tensorsDone = 1;
    t.weights('Uploading');
    t.stop();
    vi.advanceTimersByTime(1000);
    expect(events.map((e) => e.phase)).toEqual(['config', 'tokenizer', 'quantize']);
    expect(events[2].message).toBe('Uploading model.norm.weight (0 of 0 tensors)');
  });
});

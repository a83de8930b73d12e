// Progress of a model load as one event type the UI can draw: phase, bytes, rate, ETA, tensor.
// Throttled here (events cross to the UI thread), with phase changes and the last event always sent.
import { formatBytes, formatDuration } from '../util/format.ts';

export type LoadPhase = 'config' | 'tokenizer' | 'download' | 'quantize' | 'done';

export interface LoadProgress {
  phase: LoadPhase;
  /** One line for people. */
  message: string;
  /** Weight bytes this load has to download, and how many arrived (cached bytes are not counted). */
  bytesTotal: number;
  bytesDone: number;
  /** Weight bytes served by the browser cache. */
  cachedBytes: number;
  /** Download rate while downloading, else the rate tensors are processed at (bytes of checkpoint). */
  bytesPerSecond: number;
  etaSeconds: number | null;
  tensorsDone: number;
  tensorsTotal: number;
  /** The tensor being quantized or uploaded (HF name). */
  tensor: string | null;
  /** The weight file being downloaded. */
  file: string | null;
}

const INTERVAL_MS = 100;
const WINDOW_MS = 3000;

/** Bytes per second over the last few seconds. */
class Meter {
  private samples: { t: number; v: number }[] = [];
  rate(v: number, now: number): number {
    this.samples.push({ t: now, v });
    while (this.samples.length > 2 && now - this.samples[0].t > WINDOW_MS) this.samples.shift();
    const first = this.samples[0];
    const dt = (now - first.t) / 1000;
    return dt > 0 ? (v - first.v) / dt : 0;
  }
}

export class LoadTracker {
  phase: LoadPhase = 'config';
  message = '';
  bytesTotal = 0;
  bytesDone = 0;
  cachedBytes = 0;
  tensorsDone = 0;
  tensorsTotal = 0;
  tensor: string | null = null;
  file: string | null = null;
  /** Checkpoint bytes of the tensors to process, and of those done (for the ETA from cache). */
  weightBytes = 0;
  processedBytes = 0;
  private readonly download = new Meter();
  private readonly process = new Meter();
  private last = -Infinity;
  private lastPhase: LoadPhase | null = null;
  /** A throttled event is sent later, so the last state always reaches the UI. */
  private trailing: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly onProgress?: (p: LoadProgress) => void,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Sets the phase and its message, and reports at once. */
  step(phase: LoadPhase, message: string): void {
    this.phase = phase;
    this.message = message;
    this.report(true);
  }

  /** The weights stage: downloading while bytes are missing, then processing. */
  weights(verb: string): void {
    const t = this.now();
    const downloading = this.bytesDone < this.bytesTotal;
    this.phase = downloading ? 'download' : 'quantize';
    const tensors = `${this.tensorsDone} of ${this.tensorsTotal} tensors`;
    this.message = downloading
      ? `Downloading ${this.file ?? 'weights'}: ${formatBytes(this.bytesDone)} of ${formatBytes(this.bytesTotal)} (${tensors} ready)`
      : `${verb} ${this.tensor ?? ''} (${tensors})`;
    this.report(false, t);
  }

  snapshot(t = this.now()): LoadProgress {
    const downloading = this.phase === 'download';
    const rate = downloading ? this.download.rate(this.bytesDone, t) : this.process.rate(this.processedBytes, t);
    const left = downloading ? this.bytesTotal - this.bytesDone : this.weightBytes - this.processedBytes;
    const eta = this.phase === 'download' || this.phase === 'quantize' ? (left <= 0 ? 0 : rate > 0 ? left / rate : null) : null;
    const tail = eta !== null && eta > 0 ? `, ${formatDuration(eta)} left` : '';
    const speed = downloading && rate > 0 ? ` at ${(rate / 1e6).toFixed(1)} MB/s` : '';
    return {
      phase: this.phase,
      message: this.message + speed + tail,
      bytesTotal: this.bytesTotal,
      bytesDone: this.bytesDone,
      cachedBytes: this.cachedBytes,
      bytesPerSecond: rate,
      etaSeconds: eta,
      tensorsDone: this.tensorsDone,
      tensorsTotal: this.tensorsTotal,
      tensor: this.tensor,
      file: this.file,
    };
  }

  /** Drops a pending throttled event (the load ended). */
  stop(): void {
    if (this.trailing !== null) clearTimeout(this.trailing);
    this.trailing = null;
  }

  private report(force: boolean, t = this.now()): void {
    if (!this.onProgress) return;
    const changed = this.phase !== this.lastPhase;
    if (!force && !changed && t - this.last < INTERVAL_MS) {
      this.trailing ??= setTimeout(() => {
        this.trailing = null;
        this.report(true);
      }, INTERVAL_MS - (t - this.last));
      return;
    }
    this.stop();
    this.last = t;
    this.lastPhase = this.phase;
    // A listener that went away (a closed page) must not stop the load; a comlink callback
    // returns a promise that then rejects.
    try {
      void Promise.resolve(this.onProgress(this.snapshot(t)) as unknown).catch(() => undefined);
    } catch {
      // ignored, as above
    }
  }
}

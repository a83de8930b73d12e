// Progress of an export as people read it: bytes written of the total, MB/s over the last few
// seconds (a whole-run average hides a stall, one chunk's rate jumps around), and the ETA that
// rate gives. Reported at most every `intervalMs`, plus once at each phase change and at the end.

export type ExportPhase = 'preparing' | 'writing' | 'finishing' | 'done';

export interface ExportProgress {
  phase: ExportPhase;
  /** The file being written (its name inside the export). */
  file: string | null;
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  /** Bytes the export will write; an estimate for a zip of text files (deflated). */
  bytesTotal: number;
  /** Over the last few seconds; 0 until there is a rate to tell. */
  bytesPerSecond: number;
  /** null while unknown. */
  etaSeconds: number | null;
  elapsedSeconds: number;
}

const WINDOW_MS = 4000;

export class ExportProgressMeter {
  private readonly started = performance.now();
  private lastReport = -Infinity;
  /** (time, bytesDone) samples inside the rate window. */
  private samples: [number, number][] = [];
  private state: ExportProgress;

  constructor(
    bytesTotal: number,
    filesTotal: number,
    private readonly report?: (p: ExportProgress) => void,
    private readonly intervalMs = 250,
  ) {
    this.state = { phase: 'preparing', file: null, filesDone: 0, filesTotal, bytesDone: 0, bytesTotal, bytesPerSecond: 0, etaSeconds: null, elapsedSeconds: 0 };
  }

  get snapshot(): ExportProgress {
    return { ...this.state };
  }

  phase(phase: ExportPhase, file: string | null = this.state.file): void {
    this.state.phase = phase;
    this.state.file = file;
    this.emit(true);
  }

  fileDone(): void {
    this.state.filesDone++;
    this.emit(true);
  }

  bytes(n: number): void {
    this.state.bytesDone += n;
    // A zip's text members deflate, so the estimate can only be too high; never show more than 100%.
    if (this.state.bytesDone > this.state.bytesTotal) this.state.bytesTotal = this.state.bytesDone;
    this.emit(false);
  }

  private emit(force: boolean): void {
    const now = performance.now();
    this.samples.push([now, this.state.bytesDone]);
    while (this.samples.length > 2 && now - this.samples[1][0] > WINDOW_MS) this.samples.shift();
    if (!force && now - this.lastReport < this.intervalMs) return;
    this.lastReport = now;
    const [t0, b0] = this.samples[0];
    const dt = (now - t0) / 1000;
    const rate = dt >= 0.2 ? (this.state.bytesDone - b0) / dt : 0;
    this.state.bytesPerSecond = rate;
    const left = this.state.bytesTotal - this.state.bytesDone;
    this.state.etaSeconds = this.state.phase === 'done' ? 0 : rate > 0 ? left / rate : null;
    this.state.elapsedSeconds = (now - this.started) / 1000;
    this.report?.({ ...this.state });
  }
}

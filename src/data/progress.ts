// Progress of a preparation as the UI shows it: counts, rates and an ETA, at most a few reports
// a second (each one crosses to the UI thread).

import type { RecordSource } from './record-source.ts';

export type PreparePhase = 'loading tokenizer' | 'detecting' | 'reading' | 'done' | 'cached';

export interface PrepareProgress {
  phase: PreparePhase;
  fingerprint: string | null;
  /** Records looked at so far (kept + skipped), including those of shards stored by an earlier run. */
  recordsRead: number;
  examples: number;
  skipped: number;
  tokens: number;
  trainedTokens: number;
  /** Packed rows stored (both splits). */
  rows: number;
  shards: number;
  /** Shards that were already stored when this run started (a resume). */
  resumedShards: number;
  bytesRead: number;
  totalBytes: number | null;
  totalRecords: number | null;
  /** Over this run. */
  recordsPerSecond: number;
  tokensPerSecond: number;
  etaSeconds: number | null;
  /** 0..1 when the source's size or row count is known. */
  fraction: number | null;
  elapsedSeconds: number;
}

export interface Counters {
  examples: number;
  skipped: number;
  tokens: number;
  trainedTokens: number;
  rows: number;
  shards: number;
  /** Source units consumed (for the fraction of row-counted sources). */
  units: number;
}

export function idleProgress(phase: PreparePhase): PrepareProgress {
  return {
    phase,
    fingerprint: null,
    recordsRead: 0,
    examples: 0,
    skipped: 0,
    tokens: 0,
    trainedTokens: 0,
    rows: 0,
    shards: 0,
    resumedShards: 0,
    bytesRead: 0,
    totalBytes: null,
    totalRecords: null,
    recordsPerSecond: 0,
    tokensPerSecond: 0,
    etaSeconds: null,
    fraction: null,
    elapsedSeconds: 0,
  };
}

export class ProgressMeter {
  private readonly t0: number;
  private last = -Infinity;
  private start: { records: number; tokens: number; fraction: number | null } | null = null;
  fingerprint: string | null = null;
  resumedShards = 0;

  constructor(
    private readonly source: RecordSource,
    private readonly report: ((p: PrepareProgress) => unknown) | undefined,
    private readonly intervalMs: number,
    private readonly now: () => number,
  ) {
    this.t0 = now();
  }

  /** Marks where this run's rates start counting from (after a resume's restored counts). */
  begin(c: Counters): void {
    this.start = { records: c.examples + c.skipped, tokens: c.tokens, fraction: this.fraction(c) };
  }

  /** Reports at most once per interval; `counters` is only evaluated then. */
  tick(phase: PreparePhase, counters: () => Counters, force = false): void {
    if (!this.report) return;
    const t = this.now();
    if (!force && t - this.last < this.intervalMs) return;
    this.last = t;
    void this.report(this.snapshot(phase, counters()));
  }

  /** Reports now and waits until the report has been handled (a checkpoint the UI can act on). */
  async checkpoint(phase: PreparePhase, c: Counters): Promise<void> {
    if (!this.report) return;
    this.last = this.now();
    await this.report(this.snapshot(phase, c));
  }

  snapshot(phase: PreparePhase, c: Counters): PrepareProgress {
    const elapsed = (this.now() - this.t0) / 1000;
    const records = c.examples + c.skipped;
    const start = this.start ?? { records, tokens: c.tokens, fraction: null };
    const fraction = phase === 'done' || phase === 'cached' ? 1 : this.fraction(c);
    const rate = (n: number) => (elapsed > 0 ? n / elapsed : 0);
    let eta: number | null = null;
    if (phase === 'done' || phase === 'cached') eta = 0;
    else if (fraction !== null && elapsed > 0) {
      const done = fraction - (start.fraction ?? 0);
      if (done > 0) eta = (elapsed * (1 - fraction)) / done;
    }
    return {
      phase,
      fingerprint: this.fingerprint,
      recordsRead: records,
      examples: c.examples,
      skipped: c.skipped,
      tokens: c.tokens,
      trainedTokens: c.trainedTokens,
      rows: c.rows,
      shards: c.shards,
      resumedShards: this.resumedShards,
      bytesRead: this.source.bytesRead(),
      totalBytes: this.source.info.totalBytes,
      totalRecords: this.source.info.totalRecords,
      recordsPerSecond: rate(records - start.records),
      tokensPerSecond: rate(c.tokens - start.tokens),
      etaSeconds: eta,
      fraction,
      elapsedSeconds: elapsed,
    };
  }

  private fraction(c: Counters): number | null {
    const { totalRecords, totalBytes } = this.source.info;
    if (totalRecords !== null && totalRecords > 0) return Math.min(1, c.units / totalRecords);
    if (totalBytes !== null && totalBytes > 0) return Math.min(1, this.source.bytesRead() / totalBytes);
    return null;
  }
}

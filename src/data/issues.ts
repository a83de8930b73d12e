// Counting of skipped records by reason, with the first few examples kept for display.

export interface IssueExample {
  where: string;
  reason: string;
  detail?: string;
}

/** Plain-data form, safe to post from a worker. */
export interface IssueSummary {
  total: number;
  byReason: Record<string, number>;
  examples: IssueExample[];
}

/** Where readers report a skipped record (an IssueLog, or something that forwards to one). */
export interface IssueSink {
  add(reason: string, where: string, detail?: string): void;
}

export class IssueLog implements IssueSink {
  total = 0;
  readonly byReason = new Map<string, number>();
  readonly examples: IssueExample[] = [];

  constructor(readonly maxExamples = 20) {}

  /** A log that continues from a saved summary (resuming a preparation). */
  static fromSummary(summary: IssueSummary, maxExamples = 20): IssueLog {
    const log = new IssueLog(maxExamples);
    log.total = summary.total;
    for (const [reason, n] of Object.entries(summary.byReason)) log.byReason.set(reason, n);
    log.examples.push(...summary.examples.slice(0, maxExamples).map((e) => ({ ...e })));
    return log;
  }

  /** `reason` is a short category used for counting; `detail` is the specific message. */
  add(reason: string, where: string, detail?: string): void {
    this.total++;
    this.byReason.set(reason, (this.byReason.get(reason) ?? 0) + 1);
    if (this.examples.length < this.maxExamples) {
      const ex: IssueExample = { where, reason };
      if (detail !== undefined) ex.detail = shorten(detail, 160);
      this.examples.push(ex);
    }
  }

  count(reason: string): number {
    return this.byReason.get(reason) ?? 0;
  }

  summary(): IssueSummary {
    return { total: this.total, byReason: Object.fromEntries(this.byReason), examples: [...this.examples] };
  }
}

export function shorten(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max - 1) + '…';
}

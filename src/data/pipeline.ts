// records -> normalised examples -> tokens with loss masks, counting every skipped record.
//
// Records are read into batches that a TokenizeExecutor tokenizes, in this thread or in workers
// while reading goes on. Whatever finishes first, batches are consumed in the order they were
// read, and so are the skips: the reader's own (bad lines) are held with the batch being read
// when they happen, and logged when that batch is consumed. The issue log, the statistics and
// every example's place therefore come out exactly as when each record is tokenized as it is read.

import { normalizeRecord } from './formats.ts';
import type { FormatMapping } from './formats.ts';
import type { IssueLog, IssueSink } from './issues.ts';
import type { TokenStatsAccumulator } from './stats.ts';
import { inlineExecutor } from './tokenize-batch.ts';
import type { TokenizeExecutor } from './tokenize-batch.ts';
import type { TokenizeContext, TokenizeOptions, TokenizeResult } from './tokenize.ts';
import type { Example, Outcome, ReadPosition, SourceRecord, TokenizedExample } from './types.ts';

export interface PrepareContext extends TokenizeContext {
  mapping: FormatMapping;
  options: TokenizeOptions;
  issues: IssueLog;
  stats: TokenStatsAccumulator;
  /** Default: one example at a time in this thread. */
  executor?: TokenizeExecutor;
}

/** Starts reading; the reader reports its skipped records to `issues`. */
export type StartRead = (issues: IssueSink) => AsyncIterable<SourceRecord>;

export interface PlacedExample {
  example: TokenizedExample;
  /** The reader's position (ReadPosition.units) when it yielded this example's record. */
  unit: number;
}

type Entry = { issue: true; reason: string; where: string; detail?: string } | { issue: false; where: string; unit: number };

interface Batch {
  entries: Entry[];
  examples: Example[];
}

interface Sent {
  batch: Batch;
  results: Promise<Outcome<TokenizeResult>[]>;
}

export async function* tokenizeRecords(read: StartRead, ctx: PrepareContext, position?: ReadPosition): AsyncGenerator<PlacedExample> {
  const executor = ctx.executor ?? inlineExecutor(ctx, ctx.options);
  let open: Batch = { entries: [], examples: [] };
  const held: IssueSink = { add: (reason, where, detail) => open.entries.push({ issue: true, reason, where, detail }) };
  const sent: Sent[] = [];

  const send = (): void => {
    const results = open.examples.length > 0 ? Promise.resolve(executor.tokenize(open.examples)) : Promise.resolve([]);
    results.catch(() => undefined); // awaited in turn; a failure before then is not "unhandled"
    sent.push({ batch: open, results });
    open = { entries: [], examples: [] };
  };

  function* consume(batch: Batch, results: Outcome<TokenizeResult>[]): Generator<PlacedExample> {
    let k = 0;
    for (const e of batch.entries) {
      if (e.issue) {
        ctx.issues.add(e.reason, e.where, e.detail);
        continue;
      }
      const r = results[k++];
      if (!r.ok) {
        ctx.issues.add(r.reason, e.where, r.detail);
        continue;
      }
      ctx.stats.add(r.value);
      yield { example: r.value.example, unit: e.unit };
    }
  }

  for await (const rec of read(held)) {
    const normal = normalizeRecord(rec.value, ctx.mapping);
    if (!normal.ok) {
      open.entries.push({ issue: true, reason: normal.reason, where: rec.where, detail: normal.detail });
      continue;
    }
    open.entries.push({ issue: false, where: rec.where, unit: position?.units ?? 0 });
    open.examples.push(normal.value);
    if (open.examples.length < executor.batchExamples) continue;
    send();
    while (sent.length >= executor.inFlight) {
      const s = sent.shift()!;
      yield* consume(s.batch, await s.results);
    }
  }
  if (open.entries.length > 0) send();
  while (sent.length > 0) {
    const s = sent.shift()!;
    yield* consume(s.batch, await s.results);
  }
}

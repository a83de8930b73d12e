// records -> normalised examples -> tokens with loss masks, counting every skipped record.

import { normalizeRecord } from './formats.ts';
import type { FormatMapping } from './formats.ts';
import type { IssueLog } from './issues.ts';
import type { TokenStatsAccumulator } from './stats.ts';
import { tokenizeExample } from './tokenize.ts';
import type { TokenizeContext, TokenizeOptions } from './tokenize.ts';
import type { SourceRecord, TokenizedExample } from './types.ts';

export interface PrepareContext extends TokenizeContext {
  mapping: FormatMapping;
  options: TokenizeOptions;
  issues: IssueLog;
  stats: TokenStatsAccumulator;
}

export async function* tokenizeRecords(records: AsyncIterable<SourceRecord>, ctx: PrepareContext): AsyncGenerator<TokenizedExample> {
  for await (const rec of records) {
    const normal = normalizeRecord(rec.value, ctx.mapping);
    if (!normal.ok) {
      ctx.issues.add(normal.reason, rec.where, normal.detail);
      continue;
    }
    const tokenized = tokenizeExample(normal.value, ctx, ctx.options);
    if (!tokenized.ok) {
      ctx.issues.add(tokenized.reason, rec.where, tokenized.detail);
      continue;
    }
    ctx.stats.add(tokenized.value);
    yield tokenized.value.example;
  }
}

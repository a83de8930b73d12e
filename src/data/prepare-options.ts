// What a person chooses when preparing a dataset, with the studio's defaults (Unsloth's Llama 3.1
// tutorial: ChatML, responses only, 2048 tokens, packing, seed 0) and range checks.

import { DataError } from './errors.ts';
import type { FormatMapping } from './formats.ts';
import type { TemplateId } from './templates.ts';

export interface PrepareOptions {
  /** Column/role mapping; null or absent: detected from the first records. */
  mapping?: FormatMapping | null;
  template: TemplateId;
  /** Jinja for template 'custom'. */
  templateSource?: string;
  trainOnResponsesOnly: boolean;
  maxSeqLength: number;
  /** Examples longer than maxSeqLength are cut ('truncate') or skipped ('drop'). */
  overflow: 'truncate' | 'drop';
  packing: boolean;
  /** Share of records (0 to 0.5) set aside for validation, chosen by a seeded hash of their position. */
  validationFraction: number;
  seed: number;
  /** Tokens per shard (default 2^21: about 14 MiB stored). Smaller shards resume at finer steps. */
  shardTokens?: number;
}

export const DEFAULT_SHARD_TOKENS = 1 << 21;

export const DEFAULT_PREPARE_OPTIONS: Readonly<PrepareOptions> = Object.freeze({
  mapping: null,
  template: 'chatml',
  trainOnResponsesOnly: true,
  maxSeqLength: 2048,
  overflow: 'truncate',
  packing: true,
  validationFraction: 0,
  seed: 0,
});

export function checkOptions(o: PrepareOptions): void {
  const bad = (m: string): never => {
    throw new DataError('options', m);
  };
  if (!Number.isInteger(o.maxSeqLength) || o.maxSeqLength < 16 || o.maxSeqLength > 131072) {
    bad(`Max length must be a whole number from 16 to 131072 tokens (got ${o.maxSeqLength}).`);
  }
  if (!(o.validationFraction >= 0 && o.validationFraction <= 0.5)) {
    bad(`The validation split must be between 0 and 50% (got ${o.validationFraction * 100}%).`);
  }
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) bad(`The seed must be a whole number from 0 to 4294967295 (got ${o.seed}).`);
  if (o.shardTokens !== undefined && !(Number.isInteger(o.shardTokens) && o.shardTokens >= 1)) bad('shardTokens must be a positive whole number.');
  if (o.template === 'custom' && !o.templateSource) bad('The custom template needs its Jinja source.');
}

// Dataset statistics shown before training: token lengths, trained tokens, skipped records.

import type { IssueSummary } from './issues.ts';
import type { PackStats } from './pack.ts';
import type { TokenizeResult } from './tokenize.ts';

export interface LengthHistogram {
  /** Bin k counts examples with length in [k*binWidth + 1, (k+1)*binWidth]. */
  binWidth: number;
  counts: number[];
  /** Examples longer than max_seq_length (before truncation). */
  overflow: number;
}

export interface TokenStats {
  examples: number;
  /** Tokens kept (after truncation). */
  tokens: number;
  /** Tokens with labels_mask = 1. */
  trainedTokens: number;
  truncated: number;
  misalignedBoundaries: number;
  /** Lengths before truncation. */
  minLength: number;
  maxLength: number;
  meanLength: number;
  histogram: LengthHistogram;
}

export interface DataStats {
  tokens: TokenStats;
  skipped: IssueSummary;
  packing?: PackStats;
}

export class TokenStatsAccumulator {
  private examples = 0;
  private tokens = 0;
  private trained = 0;
  private truncated = 0;
  private misaligned = 0;
  private min = Infinity;
  private max = 0;
  private lengthSum = 0;
  private overflow = 0;
  private readonly counts: number[];
  private readonly binWidth: number;

  constructor(private readonly maxSeqLength: number, bins = 32) {
    this.binWidth = Math.max(1, Math.ceil(maxSeqLength / bins));
    this.counts = new Array<number>(Math.ceil(maxSeqLength / this.binWidth)).fill(0);
  }

  add(result: TokenizeResult): void {
    const { example, fullLength } = result;
    this.examples++;
    this.tokens += example.input_ids.length;
    for (let i = 0; i < example.labels_mask.length; i++) this.trained += example.labels_mask[i];
    if (example.truncated) this.truncated++;
    this.misaligned += result.misalignedBoundaries;
    this.min = Math.min(this.min, fullLength);
    this.max = Math.max(this.max, fullLength);
    this.lengthSum += fullLength;
    if (fullLength > this.maxSeqLength) this.overflow++;
    else this.counts[Math.max(0, Math.ceil(fullLength / this.binWidth) - 1)]++;
  }

  summary(): TokenStats {
    return {
      examples: this.examples,
      tokens: this.tokens,
      trainedTokens: this.trained,
      truncated: this.truncated,
      misalignedBoundaries: this.misaligned,
      minLength: this.examples === 0 ? 0 : this.min,
      maxLength: this.max,
      meanLength: this.examples === 0 ? 0 : this.lengthSum / this.examples,
      histogram: { binWidth: this.binWidth, counts: [...this.counts], overflow: this.overflow },
    };
  }
}

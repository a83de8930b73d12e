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

/** Everything a TokenStatsAccumulator holds, as plain data (saved with a resume cursor). */
export interface TokenStatsState {
  maxSeqLength: number;
  binWidth: number;
  counts: number[];
  examples: number;
  tokens: number;
  trained: number;
  truncated: number;
  misaligned: number;
  min: number;
  max: number;
  lengthSum: number;
  overflow: number;
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
  private counts: number[];
  private binWidth: number;

  constructor(private readonly maxSeqLength: number, bins = 32) {
    this.binWidth = Math.max(1, Math.ceil(maxSeqLength / bins));
    this.counts = new Array<number>(Math.ceil(maxSeqLength / this.binWidth)).fill(0);
  }

  state(): TokenStatsState {
    return {
      maxSeqLength: this.maxSeqLength,
      binWidth: this.binWidth,
      counts: [...this.counts],
      examples: this.examples,
      tokens: this.tokens,
      trained: this.trained,
      truncated: this.truncated,
      misaligned: this.misaligned,
      min: this.min,
      max: this.max,
      lengthSum: this.lengthSum,
      overflow: this.overflow,
    };
  }

  static restore(s: TokenStatsState): TokenStatsAccumulator {
    const acc = new TokenStatsAccumulator(s.maxSeqLength);
    acc.binWidth = s.binWidth;
    acc.counts = [...s.counts];
    acc.examples = s.examples;
    acc.tokens = s.tokens;
    acc.trained = s.trained;
    acc.truncated = s.truncated;
    acc.misaligned = s.misaligned;
    acc.min = s.min;
    acc.max = s.max;
    acc.lengthSum = s.lengthSum;
    acc.overflow = s.overflow;
    return acc;
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

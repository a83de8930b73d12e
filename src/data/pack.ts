// Packing tokenized examples into fixed-length rows of max_seq_length.
//
// Each row carries segment_ids (1..n for its documents, 0 for padding) and position_ids that
// restart at 0 for every document, so the trainer's attention mask keeps documents apart and RoPE
// sees each document from position 0. Packing is first-fit over a bounded set of open rows (so it
// streams); without packing every example gets its own padded row. Padding is never trained.

import { seededPermutation } from '../util/random.ts';

export interface PackInput {
  input_ids: Int32Array;
  labels_mask: Uint8Array;
}

export interface PackedRow {
  input_ids: Int32Array;
  labels_mask: Uint8Array;
  /** 1..n: which document of the row a token belongs to; 0: padding. */
  segment_ids: Int32Array;
  /** Position inside the token's document (0 on padding). */
  position_ids: Int32Array;
  /** Example index of each segment, in segment order (segment k+1 is docs[k]). */
  docs: number[];
  /** Non-padding tokens. */
  tokens: number;
}

export interface PackOptions {
  maxSeqLength: number;
  /** false: one example per row, padded. */
  packing: boolean;
  padId: number;
  /** Rows kept open for first-fit before the fullest is emitted (default 256). */
  maxOpenRows?: number;
}

export interface PackStats {
  rows: number;
  documents: number;
  /** Non-padding tokens. */
  tokens: number;
  trainedTokens: number;
  /** rows * maxSeqLength. */
  capacity: number;
  /** tokens / capacity: the fraction of row slots holding real tokens. */
  efficiency: number;
}

interface OpenRow {
  parts: { index: number; ex: PackInput }[];
  used: number;
}

export class RowPacker {
  private open: OpenRow[] = [];
  private readonly maxOpen: number;

  constructor(private readonly options: PackOptions) {
    if (!(options.maxSeqLength > 0)) throw new RangeError('maxSeqLength must be positive');
    this.maxOpen = Math.max(1, options.maxOpenRows ?? 256);
  }

  /** Adds example `index`; returns the rows completed by this call (often none). */
  add(index: number, ex: PackInput): PackedRow[] {
    const len = ex.input_ids.length;
    const L = this.options.maxSeqLength;
    if (len === 0) return [];
    if (len > L) throw new RangeError(`example ${index} has ${len} tokens > maxSeqLength ${L}; truncate or drop it first`);
    if (ex.labels_mask.length !== len) throw new RangeError(`example ${index}: labels_mask length differs from input_ids`);
    if (!this.options.packing) return [this.build([{ index, ex }])];

    const done: PackedRow[] = [];
    let row = this.open.find((r) => r.used + len <= L);
    if (!row) {
      row = { parts: [], used: 0 };
      this.open.push(row);
    }
    row.parts.push({ index, ex });
    row.used += len;
    if (row.used === L) {
      this.open.splice(this.open.indexOf(row), 1);
      done.push(this.build(row.parts));
    } else if (this.open.length > this.maxOpen) {
      let fullest = 0;
      for (let i = 1; i < this.open.length; i++) if (this.open[i].used > this.open[fullest].used) fullest = i;
      done.push(this.build(this.open.splice(fullest, 1)[0].parts));
    }
    return done;
  }

  /** Emits every row still open, oldest first. */
  finish(): PackedRow[] {
    const rows = this.open.map((r) => this.build(r.parts));
    this.open = [];
    return rows;
  }

  private build(parts: { index: number; ex: PackInput }[]): PackedRow {
    const L = this.options.maxSeqLength;
    const input_ids = new Int32Array(L).fill(this.options.padId);
    const labels_mask = new Uint8Array(L);
    const segment_ids = new Int32Array(L);
    const position_ids = new Int32Array(L);
    let at = 0;
    parts.forEach(({ ex }, k) => {
      const n = ex.input_ids.length;
      input_ids.set(ex.input_ids, at);
      labels_mask.set(ex.labels_mask, at);
      labels_mask[at] = 0; // a document's first token is never predicted from the previous document
      segment_ids.fill(k + 1, at, at + n);
      for (let p = 0; p < n; p++) position_ids[at + p] = p;
      at += n;
    });
    return { input_ids, labels_mask, segment_ids, position_ids, docs: parts.map((p) => p.index), tokens: at };
  }
}

/** Packs a whole list: examples in a seeded random order (or as given), then first-fit. */
export function packExamples(
  examples: readonly PackInput[],
  options: PackOptions & { seed: number; shuffle?: boolean },
): { rows: PackedRow[]; stats: PackStats } {
  const order = options.shuffle === false ? examples.map((_, i) => i) : seededPermutation(examples.length, options.seed);
  const packer = new RowPacker(options);
  const rows: PackedRow[] = [];
  for (const i of order) rows.push(...packer.add(i, examples[i]));
  rows.push(...packer.finish());
  return { rows, stats: packStats(rows, options.maxSeqLength) };
}

export function packStats(rows: readonly PackedRow[], maxSeqLength: number): PackStats {
  let tokens = 0;
  let trainedTokens = 0;
  let documents = 0;
  for (const r of rows) {
    tokens += r.tokens;
    documents += r.docs.length;
    for (let i = 0; i < r.labels_mask.length; i++) trainedTokens += r.labels_mask[i];
  }
  const capacity = rows.length * maxSeqLength;
  return { rows: rows.length, documents, tokens, trainedTokens, capacity, efficiency: capacity === 0 ? 0 : tokens / capacity };
}

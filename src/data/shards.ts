// Packed rows <-> the flat typed arrays stored per shard. Position ids are not stored: they
// restart at 0 with every segment, so they are rebuilt from the segment ids on read.

import type { PackedRow } from './pack.ts';

export type SplitName = 'train' | 'validation';

/** `rows` rows of `seqLength` tokens, row-major. */
export interface ShardBlock {
  rows: number;
  seqLength: number;
  input_ids: Int32Array;
  labels_mask: Uint8Array;
  /** 1..n per document of a row, 0 on padding; Uint16 while a row cannot hold 65536 documents. */
  segment_ids: Uint16Array | Int32Array;
  /** Non-padding tokens. */
  tokens: number;
  trainedTokens: number;
}

/** A shard as the trainer reads it. */
export interface PreparedShard extends ShardBlock {
  index: number;
  split: SplitName;
  /** Position inside each token's document (0 on padding). */
  position_ids: Int32Array;
}

export function encodeRows(rows: readonly PackedRow[], seqLength: number): ShardBlock {
  const n = rows.length * seqLength;
  const input_ids = new Int32Array(n);
  const labels_mask = new Uint8Array(n);
  const segment_ids = seqLength < 65536 ? new Uint16Array(n) : new Int32Array(n);
  let tokens = 0;
  let trainedTokens = 0;
  rows.forEach((row, r) => {
    if (row.input_ids.length !== seqLength) throw new RangeError(`row ${r} has ${row.input_ids.length} tokens, expected ${seqLength}`);
    const at = r * seqLength;
    input_ids.set(row.input_ids, at);
    labels_mask.set(row.labels_mask, at);
    segment_ids.set(row.segment_ids, at);
    tokens += row.tokens;
    for (let i = 0; i < seqLength; i++) trainedTokens += row.labels_mask[i];
  });
  return { rows: rows.length, seqLength, input_ids, labels_mask, segment_ids, tokens, trainedTokens };
}

export function emptyBlock(seqLength: number): ShardBlock {
  return encodeRows([], seqLength);
}

/** Byte size of a block's arrays (what it costs in IndexedDB, roughly). */
export function blockBytes(b: ShardBlock): number {
  return b.input_ids.byteLength + b.labels_mask.byteLength + b.segment_ids.byteLength;
}

export function positionIds(b: Pick<ShardBlock, 'segment_ids' | 'seqLength'>): Int32Array {
  const seg = b.segment_ids;
  const pos = new Int32Array(seg.length);
  let p = 0;
  for (let i = 0; i < seg.length; i++) {
    if (seg[i] === 0) {
      p = 0; // padding
      continue;
    }
    // A new row restarts at 0 even when its first document has the same id as the row before's last.
    const rowStart = i % b.seqLength === 0;
    p = !rowStart && seg[i - 1] === seg[i] ? p + 1 : 0;
    pos[i] = p;
  }
  return pos;
}

/** Views of row `r` (no copies). */
export function shardRow(s: PreparedShard, r: number) {
  const a = r * s.seqLength;
  const b = a + s.seqLength;
  return {
    input_ids: s.input_ids.subarray(a, b),
    labels_mask: s.labels_mask.subarray(a, b),
    segment_ids: s.segment_ids.subarray(a, b),
    position_ids: s.position_ids.subarray(a, b),
  };
}

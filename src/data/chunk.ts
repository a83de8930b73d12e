// One chunk of consecutive source records -> one shard. A chunk is shuffled, split into train and
// validation, and packed on its own, so a shard depends only on its records and the options:
// that is what lets a preparation resume at any shard boundary and still produce the same bytes.

import { RowPacker } from './pack.ts';
import type { PackStats } from './pack.ts';
import { blockBytes, encodeRows } from './shards.ts';
import type { ShardBlock } from './shards.ts';
import type { TokenizedExample } from './types.ts';
import { seededPermutation } from '../util/random.ts';

export interface ChunkExample {
  example: TokenizedExample;
  /** Source position of its record (line, item or row number): decides its split. */
  unit: number;
}

export interface ChunkOptions {
  seed: number;
  chunkIndex: number;
  validationFraction: number;
  maxSeqLength: number;
  packing: boolean;
  padId: number;
}

export interface BuiltChunk {
  train: ShardBlock;
  validation: ShardBlock;
  trainStats: PackStats;
  validationStats: PackStats;
  bytes: number;
}

/** 32-bit mix of two integers (murmur3's finaliser over a combined word). */
export function mixSeed(a: number, b: number): number {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ (b >>> 0)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Whether the record at `unit` belongs to the validation split (stable across chunkings). */
export function isValidation(seed: number, unit: number, fraction: number): boolean {
  if (fraction <= 0) return false;
  return mixSeed(seed ^ 0x5bd1e995, unit) / 4294967296 < fraction;
}

export function buildChunk(examples: readonly ChunkExample[], o: ChunkOptions): BuiltChunk {
  const train: TokenizedExample[] = [];
  const validation: TokenizedExample[] = [];
  for (const e of examples) (isValidation(o.seed, e.unit, o.validationFraction) ? validation : train).push(e.example);
  const seed = mixSeed(o.seed, o.chunkIndex);
  const t = packSplit(train, seed, o);
  const v = packSplit(validation, seed ^ 1, o);
  return { train: t.block, validation: v.block, trainStats: t.stats, validationStats: v.stats, bytes: blockBytes(t.block) + blockBytes(v.block) };
}

function packSplit(examples: TokenizedExample[], seed: number, o: ChunkOptions): { block: ShardBlock; stats: PackStats } {
  // Every row of the chunk stays open: first-fit over all of them packs tightly, and a chunk is
  // small enough (a few million tokens) for that to be cheap.
  const packer = new RowPacker({ maxSeqLength: o.maxSeqLength, packing: o.packing, padId: o.padId, maxOpenRows: 1 << 20 });
  const rows = [];
  for (const i of seededPermutation(examples.length, seed)) rows.push(...packer.add(i, examples[i]));
  rows.push(...packer.finish());
  const block = encodeRows(rows, o.maxSeqLength);
  let documents = 0;
  for (const r of rows) documents += r.docs.length;
  const capacity = rows.length * o.maxSeqLength;
  const stats: PackStats = {
    rows: rows.length,
    documents,
    tokens: block.tokens,
    trainedTokens: block.trainedTokens,
    capacity,
    efficiency: capacity === 0 ? 0 : block.tokens / capacity,
  };
  return { block, stats };
}

export function emptyPackStats(): PackStats {
  return { rows: 0, documents: 0, tokens: 0, trainedTokens: 0, capacity: 0, efficiency: 0 };
}

export function addPackStats(a: PackStats, b: PackStats): PackStats {
  const capacity = a.capacity + b.capacity;
  const tokens = a.tokens + b.tokens;
  return {
    rows: a.rows + b.rows,
    documents: a.documents + b.documents,
    tokens,
    trainedTokens: a.trainedTokens + b.trainedTokens,
    capacity,
    efficiency: capacity === 0 ? 0 : tokens / capacity,
  };
}

import { describe, expect, it } from 'vitest';
import { packExamples, packStats, RowPacker } from '../src/data/pack.ts';
import type { PackedRow, PackInput } from '../src/data/pack.ts';
import { rng as seededRandom, seededPermutation, shuffleInPlace } from '../src/util/random.ts';

const PAD = -7; // distinct from every example token below

function example(len: number, tag: number): PackInput {
  const input_ids = Int32Array.from({ length: len }, (_, i) => tag * 10000 + i);
  const labels_mask = Uint8Array.from({ length: len }, (_, i) => (i === 0 ? 0 : (i + tag) % 3 === 0 ? 0 : 1));
  return { input_ids, labels_mask };
}

function randomExamples(n: number, maxLen: number, seed: number): PackInput[] {
  const rnd = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => example(1 + Math.floor(rnd() * maxLen), i + 1));
}

/** Checks every row invariant and that each example appears exactly once, intact. */
function checkRows(rows: PackedRow[], examples: PackInput[], L: number): void {
  const seen = new Array<number>(examples.length).fill(0);
  for (const [r, row] of rows.entries()) {
    for (const a of [row.input_ids, row.labels_mask, row.segment_ids, row.position_ids]) expect(a.length).toBe(L);
    let at = 0;
    row.docs.forEach((doc, k) => {
      const ex = examples[doc];
      const n = ex.input_ids.length;
      expect(at + n, `row ${r} overflows`).toBeLessThanOrEqual(L);
      expect(Array.from(row.input_ids.slice(at, at + n))).toEqual(Array.from(ex.input_ids));
      expect(Array.from(row.segment_ids.slice(at, at + n))).toEqual(new Array(n).fill(k + 1));
      expect(Array.from(row.position_ids.slice(at, at + n))).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(Array.from(row.labels_mask.slice(at, at + n))).toEqual([0, ...Array.from(ex.labels_mask.slice(1))]);
      seen[doc]++;
      at += n;
    });
    expect(row.tokens).toBe(at);
    // Padding: only at the end, never trained, segment 0, position 0, pad id.
    for (let i = at; i < L; i++) {
      expect(row.segment_ids[i]).toBe(0);
      expect(row.position_ids[i]).toBe(0);
      expect(row.labels_mask[i]).toBe(0);
      expect(row.input_ids[i]).toBe(PAD);
    }
  }
  expect(seen.every((c) => c === 1)).toBe(true);
}

describe('packing', () => {
  it('first-fit on a hand-made set: rows, docs and efficiency', () => {
    const L = 8;
    const ex = [5, 3, 4, 4, 2, 6].map((n, i) => example(n, i + 1));
    const { rows, stats } = packExamples(ex, { maxSeqLength: L, packing: true, padId: PAD, seed: 0, shuffle: false });
    expect(rows.map((r) => r.docs)).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
    expect(stats).toMatchObject({ rows: 3, documents: 6, tokens: 24, capacity: 24, efficiency: 1 });
    checkRows(rows, ex, L);

    const loose = [6, 6, 6].map((n, i) => example(n, i + 1));
    const p = packExamples(loose, { maxSeqLength: L, packing: true, padId: PAD, seed: 0, shuffle: false });
    expect(p.stats.rows).toBe(3);
    expect(p.stats.efficiency).toBeCloseTo(18 / 24, 12);
    // First-fit puts a later small example into an earlier row with room.
    const ff = [6, 6, 2, 2].map((n, i) => example(n, i + 1));
    expect(packExamples(ff, { maxSeqLength: L, packing: true, padId: PAD, seed: 0, shuffle: false }).rows.map((r) => r.docs)).toEqual([
      [0, 2],
      [1, 3],
    ]);
  });

  it('invariants on 500 random examples: no row over max, every token once, segments/positions right', () => {
    const L = 64;
    const ex = randomExamples(500, L, 11);
    const { rows, stats } = packExamples(ex, { maxSeqLength: L, packing: true, padId: PAD, seed: 3 });
    checkRows(rows, ex, L);
    const total = ex.reduce((s, e) => s + e.input_ids.length, 0);
    expect(stats.tokens).toBe(total);
    expect(stats.documents).toBe(500);
    expect(stats.capacity).toBe(rows.length * L);
    expect(stats.efficiency).toBeCloseTo(total / (rows.length * L), 12);
    expect(stats.efficiency).toBeGreaterThan(0.9); // uniform 1..64 lengths pack tightly
    const trained = ex.reduce((s, e) => s + e.labels_mask.slice(1).reduce((a, b) => a + b, 0), 0);
    expect(stats.trainedTokens).toBe(trained);
  });

  it('without packing: one example per row, padded; efficiency = mean length / max', () => {
    const L = 64;
    const ex = randomExamples(50, L, 5);
    const { rows, stats } = packExamples(ex, { maxSeqLength: L, packing: false, padId: PAD, seed: 1 });
    expect(rows).toHaveLength(50);
    expect(rows.every((r) => r.docs.length === 1)).toBe(true);
    checkRows(rows, ex, L);
    const total = ex.reduce((s, e) => s + e.input_ids.length, 0);
    expect(stats.efficiency).toBeCloseTo(total / (50 * L), 12);
    const packed = packExamples(ex, { maxSeqLength: L, packing: true, padId: PAD, seed: 1 });
    expect(packed.stats.rows).toBeLessThan(rows.length);
    expect(packed.stats.efficiency).toBeGreaterThan(stats.efficiency);
  });

  it('is deterministic given a seed, and the seed changes the order', () => {
    const ex = randomExamples(200, 32, 9);
    const opts = { maxSeqLength: 32, packing: true, padId: PAD };
    const a = packExamples(ex, { ...opts, seed: 42 });
    const b = packExamples(ex, { ...opts, seed: 42 });
    const c = packExamples(ex, { ...opts, seed: 43 });
    expect(b.rows.map((r) => r.docs)).toEqual(a.rows.map((r) => r.docs));
    expect(b.rows.map((r) => Array.from(r.input_ids))).toEqual(a.rows.map((r) => Array.from(r.input_ids)));
    expect(c.rows.map((r) => r.docs)).not.toEqual(a.rows.map((r) => r.docs));
    checkRows(c.rows, ex, 32);
  });

  it('streams with a bounded number of open rows', () => {
    const L = 32;
    const ex = randomExamples(300, L, 2);
    for (const maxOpenRows of [1, 4]) {
      const packer = new RowPacker({ maxSeqLength: L, packing: true, padId: PAD, maxOpenRows });
      const rows: PackedRow[] = [];
      ex.forEach((e, i) => {
        rows.push(...packer.add(i, e));
        // Rows emitted so far plus at most maxOpenRows open ones hold everything added.
        const emittedDocs = rows.reduce((s, r) => s + r.docs.length, 0);
        expect(i + 1 - emittedDocs).toBeLessThanOrEqual(maxOpenRows * L);
      });
      rows.push(...packer.finish());
      checkRows(rows, ex, L);
      expect(packStats(rows, L).documents).toBe(300);
    }
  });

  it('refuses an example longer than max_seq_length', () => {
    const packer = new RowPacker({ maxSeqLength: 4, packing: true, padId: PAD });
    expect(() => packer.add(0, example(5, 1))).toThrow(RangeError);
  });
});

describe('seeded shuffle', () => {
  it('is a permutation, reproducible, and differs across seeds', () => {
    const p = seededPermutation(1000, 0);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(seededPermutation(1000, 0)).toEqual(p);
    expect(seededPermutation(1000, 1)).not.toEqual(p);
    expect(p.slice(0, 10)).not.toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  it('draws are roughly uniform (chi-square over 10 bins, 10k draws)', () => {
    const r = seededRandom(123);
    const bins = new Array<number>(10).fill(0);
    for (let i = 0; i < 10000; i++) bins[Math.floor(r() * 10)]++;
    const chi2 = bins.reduce((s, b) => s + (b - 1000) ** 2 / 1000, 0);
    expect(chi2).toBeLessThan(27.9); // p = 0.001 for 9 degrees of freedom
    expect(shuffleInPlace([1], r)).toEqual([1]);
  });
});

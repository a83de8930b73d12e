// The GEMM ablation bench (tools/bench/mma-ablate.ts) edits the chosen shaders by pattern; an edit that
// no longer finds its pattern would time the unedited kernel under another name. It throws instead:
// this checks that every edit still applies to each shader the bench times, and takes out what it says.
import { describe, expect, it } from 'vitest';
import { EDITS, NF4_EDITS } from '../tools/bench/mma-ablate.ts';
import { chooseMma, fetchAfterFirstStep, mmaSource, stagesPerRound, stageTurns, storesBFirst } from '../src/engine/matmul-mma.ts';

// The edits were written for shares of four (8-byte loads): a dense b's products are checked in that
// form (the bench's `narrow`), and the engine's shares of eight below for the edits that apply to them.
const variants = {
  'dense-f16': { kind: 'dense', transB: true, vec: true, wide: false, scaled: false, lora: 0, vecOut: true },
  'dense-lmhead': { kind: 'dense', transB: true, vec: true, wide: false, scaled: true, lora: 0, vecOut: true },
  'dense-f16-n': { kind: 'dense', transB: false, vec: true, wide: false, scaled: false, lora: 0, vecOut: true },
  'dense-lmhead-dy': { kind: 'dense', transB: false, vec: true, wide: false, scaled: true, lora: 0, vecOut: true },
  'nf4-forward': { kind: 'nf4', transB: true, vec: true, wide: false, scaled: true, lora: 0, vecOut: true },
  'nf4-backward': { kind: 'nf4', transB: false, vec: true, wide: false, scaled: true, lora: 0, vecOut: true },
} as const;
const shaders = Object.fromEntries(
  Object.entries(variants).map(([what, variant]) => {
    const { tiling } = chooseMma(variant.kind, Infinity, Infinity, variant.transB);
    return [what, { tiling, variant, source: mmaSource(variant, tiling) }];
  }),
);
const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

describe('mma ablate edits', () => {
  for (const [what, { tiling, variant, source }] of Object.entries(shaders)) {
    it(`apply to ${what}`, () => {
      const products = count(source, /subgroupMatrixMultiplyAccumulate/g);
      const one = EDITS['one-product'](source);
      expect(count(one, /subgroupMatrixMultiplyAccumulate/g)).toBe(products / (tiling.tm * tiling.tn)); // acc0_0's alone
      expect(EDITS['no-store'](source)).toMatch(/if \(more && p\.accumulate == 7u\) \{\s*store_[ab]/);
      const noFetch = EDITS['no-fetch'](source);
      expect(source).toMatch(/fn fetch_a_in[^\n]*fetch_a_share_in/);
      expect(noFetch).not.toMatch(/fn fetch_a_in[^\n]*fetch_a_share_in/);
      expect(count(noFetch, /words\[/g)).toBe(count(source, /words\[/g) ? 1 : 0); // the checked fetch_b keeps its load
      expect(count(source, /workgroupBarrier/g) - count(EDITS['no-barrier'](source), /workgroupBarrier/g)).toBe(2);
      // A dense B's kernel stores in element order already (elementOrderStores): the edit finds nothing to change.
      if (variant.kind === 'dense') expect(() => EDITS['element-order'](source)).toThrow(/not found/);
      const inOrder = variant.kind === 'dense' ? source : EDITS['element-order'](source);
      expect(count(inOrder, /const [AB]_ROT = 5u;/g)).toBe(2);
      expect(inOrder).toContain('const A_SPREAD = 1u;');
      const order = /const (A_SPREAD|[AB]_ROT) = \du;/g;
      expect(inOrder.replace(order, '')).toBe(source.replace(order, ''));
      const layout = (x: string) => [...x.matchAll(/subgroup_matrix_right<f16, 16, 16>, (row|col)_major>/g)].map((m) => m[1]);
      const swapped = layout(EDITS['b-other-layout'](source));
      expect(swapped.length).toBeGreaterThan(0);
      expect(swapped).toEqual(layout(source).map((l) => (l === 'row' ? 'col' : 'row')));
      expect(EDITS['no-b-fetch'](EDITS['no-a-fetch'](source))).toBe(noFetch);
      expect(count(EDITS['no-a-store'](source), /if \(p\.accumulate == 7u\) \{ store_a/g)).toBe(count(source, /store_a\(a_slot/g));
      expect(count(EDITS['no-b-store'](source), /if \(p\.accumulate == 7u\) \{ store_b/g)).toBe(count(source, /store_b\(tid, \d/g));
      // The reorderings keep every line, in another order.
      const lines = (x: string) => x.split('\n').sort();
      expect(() => EDITS['fetch-late'](EDITS['fetch-late'](source))).toThrow(/already/);
      const ownFetch = fetchAfterFirstStep(variant) ? 'fetch-mid' : 'fetch-early';
      expect(() => EDITS[ownFetch](source)).toThrow(/already/);
      const fetches = ['fetch-early', 'fetch-mid', 'fetch-late'].filter((e) => e !== ownFetch);
      for (const e of ['fetch-b-first', 'stores-swapped', 'stores-b-mid', 'stores-interleaved', 'stores-reversed', ...fetches, 'lazy-left']) {
        expect(EDITS[e](source)).not.toBe(source);
        expect(lines(EDITS[e](source))).toEqual(lines(source));
      }
      // The fetch's block sits before the first multiply step or after it, as fetchAfterFirstStep says.
      const loop = source.slice(source.indexOf('for (var t = 0u'));
      expect(loop.indexOf('if (more) {\n      let k0') < loop.indexOf('subgroupMatrixLoad')).toBe(!fetchAfterFirstStep(variant));
      // The kernel's own order (B first for x·Wᵀ from NF4), which the swap undoes.
      const firstStore = (x: string) => /store_(a|b)\((?:a_slot\(tid|tid), 0u/.exec(x.slice(x.indexOf('for (var t = 0u')))?.[1];
      expect(firstStore(source)).toBe(storesBFirst(variant) ? 'b' : 'a');
      expect(firstStore(EDITS['stores-swapped'](source))).toBe(storesBFirst(variant) ? 'a' : 'b');
      expect(EDITS['stores-swapped'](EDITS['stores-swapped'](source))).toBe(source);
      expect(EDITS['order-g2'](source)).toContain('let row0 = (grp * 2u + within % rows) * BM;');
      expect(EDITS['no-output'](source)).toContain('if (row < p.m && col < p.nc && p.accumulate == 7u) { store_out');
      // The epilogue's barriers go (two a round: a round stages one or two result matrices), the k loop's stay.
      // (A round in turns, stageTurns, is one round of each turn.)
      const rounds = count(source, /subgroupMatrixStore<row_major>\(&stage\[sg(?: % \d+u)?\], 0u/g);
      expect(rounds * stagesPerRound(variant, tiling)).toBe(tiling.tm * tiling.tn * stageTurns(variant, tiling));
      expect(count(source, /workgroupBarrier/g) - count(EDITS['epilogue-no-barrier'](source), /workgroupBarrier/g)).toBe(2 * rounds);
      // The stores' clamped form (the kernels take the bounded one).
      const clamped = EDITS['clamped-stores'](source);
      expect(source).toContain('let sw = (lane >> A_ROT) % 2u;');
      expect(clamped).toContain('let sw = (lane >> A_ROT) & 1u;');
      expect(clamped).toContain(variant.kind === 'dense' ? 'let at = b_at(b_slot(tid, i));' : 'let o = at.y;');
      expect(() => EDITS['clamped-stores'](clamped)).toThrow();
      // The epilogue's stage reads (and a scaled variant's row scales) bounded by constants.
      const bounded = EDITS['bounded-epilogue'](source);
      expect(count(bounded, /stage\[sg % \(THREADS \/ 32u\)\]/g)).toBe(5); // write_stage's read, write_stage4's four
      expect(count(bounded, /a_scale\[rb % BM\]/g)).toBe(variant.scaled ? 2 : 0);
      // The loop forms: one header replaced, the body as it was.
      for (const e of ['const-loop', 'down-loop', 'neg-loop']) {
        const looped = EDITS[e](source);
        expect(looped).not.toContain('for (var t = 0u; t < tiles; t++)');
        expect(count(looped, /\n\s*for \(var t\w? = /g)).toBe(count(source, /\n\s*for \(var t\w? = /g));
      }
      // Inlined stores: no calls left of the helpers they replace, four tile stores a share.
      const inlined = EDITS['inline-stores'](source);
      const dense = variant.kind === 'dense';
      expect(count(inlined, /store_a\(a_slot/g)).toBe(0);
      expect(count(inlined, /store_b\(tid, \d/g)).toBe(dense ? 0 : count(source, /store_b\(tid, \d/g));
      const inlinedShares = count(source, /store_a\(a_slot/g) + (dense ? count(source, /store_b\(tid, \d/g) : 0);
      expect(count(inlined, /tile_[ab]\[blk\]\[o[01](?: \+ 1u)?\] = w\./g) - count(source, /tile_[ab]\[blk\]\[o[01](?: \+ 1u)?\] = w\./g)).toBe(4 * inlinedShares);
      if (dense) expect(() => NF4_EDITS['no-table'](source)).toThrow(/not found/);
      else {
        expect(NF4_EDITS['no-table'](source)).not.toMatch(/subgroupShuffle\(nf4_code_lane/);
        // The checked fetch_b keeps its absmax load; the one inside blocks loads none.
        expect(count(NF4_EDITS['no-absmax'](source), /absmax\[/g)).toBe(count(source, /absmax\[/g) - 1);
        expect(NF4_EDITS['b-tiled-fetch'](source)).toContain('select((k0 + s.x) * p.wc + col0 + s.y, k0 * p.nc + (col0 + s.x) * BK + s.y, TRANS_B)');
        // Every result matrix goes straight to out; nothing is staged.
        const direct = NF4_EDITS['direct-out'](source);
        expect(count(direct, /subgroupMatrixStore<row_major>\(&out, /g)).toBe(rounds);
        expect(direct).not.toMatch(/&stage\[sg\], \d|write_stage4?\(sg, \d/);
      }
    });
  }
});

describe('mma ablate edits of session 20 (operands from device memory, deeper fetches, halves, buffer views)', () => {
  for (const [what, { tiling, variant, source }] of Object.entries(shaders)) {
    const loop = (x: string) => x.slice(x.indexOf('for (var t = 0u'));
    const loads = (x: string, from: string) => count(x, new RegExp(`subgroupMatrixLoad<[^>]*>, (?:row|col)_major>\\(&${from}[,\\[]`, 'g'));
    const steps = tiling.bk / 16;
    it(`apply to ${what}`, () => {
      // a's left matrices from device memory: none from the tile in the k loop, its shares neither fetched nor stored there.
      for (const [name, ahead] of [['a-direct', false], ['a-direct-ahead', true]] as const) {
        const direct = EDITS[name](source);
        expect(loads(loop(direct), 'tile_a')).toBe(0);
        expect(loads(direct, 'a')).toBe(tiling.tm * steps * (ahead ? 2 : 1)); // -ahead: the prologue's first loads too
        expect(loop(direct)).not.toMatch(/store_a\(a_slot|na\d+ = fetch_a/);
        expect(direct).toContain('var<storage, read> a: array<f16>;');
      }
      const denseT = variant.kind === 'dense' && variant.transB;
      if (denseT) {
        const direct = EDITS['b-direct'](source);
        expect(loads(loop(direct), 'tile_b')).toBe(0);
        expect(loop(direct)).not.toMatch(/store_b\(tid|nb\d+ = fetch_b/);
      } else expect(() => EDITS['b-direct'](source)).toThrow(/transB/);
      // Two k steps ahead: the second set declared and fetched for t + 2, the first stored; unrolled: t1's body with the sets swapped.
      const ahead = EDITS['fetch-ahead2'](source);
      expect(count(ahead, /\bvar m[ab]\d+: /g)).toBe(count(source, /\bvar n[ab]\d+: /g));
      expect(loop(ahead)).toContain('let k0 = (t + 2u) * BK;');
      expect(loop(ahead)).toMatch(/na0 = ma0;/);
      const unrolled = EDITS['fetch-ahead2-unrolled'](source);
      expect(unrolled).toContain('for (var t = 0u; t < tiles; t += 2u) {');
      expect(loop(unrolled)).toContain('let k0 = (t1 + 2u) * BK;');
      expect(count(loop(unrolled), /store_a\(a_slot\(tid, 0u\), ma0/g)).toBe(1);
      expect(count(loop(unrolled), /subgroupMatrixMultiplyAccumulate/g)).toBe(2 * count(loop(source), /subgroupMatrixMultiplyAccumulate/g));
      // Halves: the second half of one tile's interior shares copies the first.
      const half = EDITS['half-a-fetch'](source);
      expect(count(half, /na\d+ = fetch_a_in\(/g)).toBe(count(source, /na\d+ = fetch_a_in\(/g) / 2);
      expect(count(EDITS['half-stores'](source), /tile_[ab]\[blk\]\[o[01] \+ 1u\]/g)).toBe(0);
      // Buffer views: the tile an untyped buffer, each share one vec2<u32> store.
      const view = EDITS['view-a-stores'](source);
      expect(view).toMatch(/var<workgroup> tile_a_mem: buffer<\d+>;/);
      expect(view).toContain('words[(blk * (TM * 16u * SA) + o) / 4u] = bitcast<vec2<u32>>(v);');
      expect(view).not.toMatch(/tile_a\[blk\]\[o[01]/);
      if (variant.kind === 'dense') expect(EDITS['view-b-stores'](source)).toContain('words[(blk * (B_SUB) + o) / 4u] = bitcast<vec2<u32>>(v);');
      else expect(() => EDITS['view-b-stores'](source)).toThrow(/dense/);
    });
  }
});

describe("mma ablate edits on a dense b's shares of eight (the engine's form: wideShares)", () => {
  for (const transB of [true, false]) {
    const variant = { kind: 'dense', transB, vec: true, wide: true, scaled: true, lora: 0, vecOut: true } as const;
    const { tiling } = chooseMma('dense', Infinity, Infinity, transB);
    const source = mmaSource(variant, tiling);
    it(`apply to ${transB ? 'x·Bᵀ' : 'a·B'}`, () => {
      expect(source).toContain('const PER = 8u;');
      const products = count(source, /subgroupMatrixMultiplyAccumulate/g);
      expect(count(EDITS['one-product'](source), /subgroupMatrixMultiplyAccumulate/g)).toBe(products / (tiling.tm * tiling.tn));
      expect(EDITS['no-fetch'](source)).toContain('-> Share { return Share(r & 7u, k & 15u, 0x3c003c00u, 0x38003800u); }');
      expect(count(source, /workgroupBarrier/g) - count(EDITS['no-barrier'](source), /workgroupBarrier/g)).toBe(2);
      // The loop bounded by a constant (constKLoop): const-loop has nothing to do, tiles-loop restores the template's.
      expect(() => EDITS['const-loop'](source)).toThrow(/already/);
      const tiles = EDITS['tiles-loop'](source);
      expect(tiles).toContain('for (var t = 0u; t < tiles; t++) {');
      expect(tiles).not.toContain('0xffffffffu');
      // The k loop's forms the session compared on it.
      const lines = (x: string) => x.split('\n').sort();
      for (const e of ['fetch-mid', 'fetch-late', 'lazy-left']) expect(lines(EDITS[e](source))).toEqual(lines(source));
      const ahead = EDITS['fetch-ahead2'](source);
      expect(ahead).toContain('let k0 = (t + 2u) * BK;');
      expect(ahead).toContain('if (t >= tiles) { break; }');
      // x·Bᵀ's spread rows (spreadRows) undone, and its halves' order swapped by lane.
      if (transB) {
        const inOrder = EDITS['rows-in-order'](source);
        expect(inOrder).not.toContain('spread_rows(tid');
        expect(count(inOrder, /let f = tid \+ i \* THREADS;/g)).toBe(3);
        const swapped = EDITS['swap-halves'](source);
        expect(count(swapped, /\[blk\]\[o1 \+ 3u\] = second\.w;/g)).toBe(2);
        expect(count(swapped, /\[blk\]\[o \+ \du\] = /g)).toBe(0);
      } else {
        expect(() => EDITS['rows-in-order'](source)).toThrow(/not found/);
        expect(() => EDITS['swap-halves'](source)).toThrow(/spread rows/);
      }
    });
  }
});

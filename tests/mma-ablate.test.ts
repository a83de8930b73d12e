// The GEMM ablation bench (tools/bench/mma-ablate.ts) edits the chosen shaders by pattern; an edit that
// no longer finds its pattern would time the unedited kernel under another name. It throws instead:
// this checks that every edit still applies to each shader the bench times, and takes out what it says.
import { describe, expect, it } from 'vitest';
import { EDITS, NF4_EDITS } from '../tools/bench/mma-ablate.ts';
import { chooseMma, mmaSource } from '../src/engine/matmul-mma.ts';

const shaders = {
  'dense-f16': { ...chooseMma('dense'), source: mmaSource({ kind: 'dense', transB: true, vec: true, scaled: false, lora: 0, vecOut: true }, chooseMma('dense').tiling) },
  'nf4-forward': { ...chooseMma('nf4'), source: mmaSource({ kind: 'nf4', transB: true, vec: true, scaled: true, lora: 0, vecOut: true }, chooseMma('nf4').tiling) },
  'nf4-backward': { ...chooseMma('nf4'), source: mmaSource({ kind: 'nf4', transB: false, vec: true, scaled: true, lora: 0, vecOut: true }, chooseMma('nf4').tiling) },
};
const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

describe('mma ablate edits', () => {
  for (const [what, { tiling, source }] of Object.entries(shaders)) {
    it(`apply to ${what}`, () => {
      const products = count(source, /subgroupMatrixMultiplyAccumulate/g);
      const one = EDITS['one-product'](source);
      expect(count(one, /subgroupMatrixMultiplyAccumulate/g)).toBe(products / (tiling.tm * tiling.tn)); // acc0_0's alone
      expect(EDITS['no-store'](source)).toContain('if (more && p.accumulate == 7u)');
      const noFetch = EDITS['no-fetch'](source);
      expect(noFetch).not.toMatch(/fn fetch_a_in[^\n]*fetch_a4_in/);
      expect(count(noFetch, /words\[/g)).toBe(count(source, /words\[/g) ? 1 : 0); // the checked fetch_b keeps its load
      expect(count(source, /workgroupBarrier/g) - count(EDITS['no-barrier'](source), /workgroupBarrier/g)).toBe(2);
      const inOrder = EDITS['element-order'](source);
      expect(count(inOrder, /const [AB]_ROT = 5u;/g)).toBe(2);
      expect(inOrder).toContain('const A_SPREAD = 1u;');
      const order = /const (A_SPREAD|[AB]_ROT) = \du;/g;
      expect(inOrder.replace(order, '')).toBe(source.replace(order, ''));
      const layout = (x: string) => [...x.matchAll(/subgroup_matrix_right<f16, 16, 16>, (row|col)_major>/g)].map((m) => m[1]);
      const swapped = layout(EDITS['b-other-layout'](source));
      expect(swapped.length).toBeGreaterThan(0);
      expect(swapped).toEqual(layout(source).map((l) => (l === 'row' ? 'col' : 'row')));
      expect(EDITS['no-output'](source)).toContain('if (row < p.m && col < p.nc && p.accumulate == 7u) { store_out');
      if (what === 'dense-f16') expect(() => NF4_EDITS['no-table'](source)).toThrow(/not found/);
      else {
        expect(NF4_EDITS['no-table'](source)).not.toMatch(/subgroupShuffle\(nf4_code_lane/);
        // The checked fetch_b keeps its absmax load; the one inside blocks loads none.
        expect(count(NF4_EDITS['no-absmax'](source), /absmax\[/g)).toBe(count(source, /absmax\[/g) - 1);
      }
    });
  }
});

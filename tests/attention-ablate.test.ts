// The attention ablation (tools/bench/attention-ablate.ts) stands edited shaders in for the engine's
// under the same kernel names, which Kernels.get allows only for sources of the same length: every
// edit must be a permutation of the shader's lines, and must find what it moves.
import { describe, expect, it } from 'vitest';
import { ATTENTION_EDITS } from '../tools/bench/attention-ablate.ts';
import { attentionMmaBackwardSource, attentionMmaSource } from '../src/engine/attention-mma.ts';

const sources = { forward: attentionMmaSource(128, 'f32', 'f16'), backward: attentionMmaBackwardSource(128, 'f32', 'f16') };
const lines = (s: string) => s.split('\n').sort();
const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

// The clamped forms rewrite index lines (and drop the comments to keep the length).
const rewrites = ['fwd-clamped', 'bwd-clamped', 'clamped'];

describe('attention ablate edits', () => {
  for (const [name, edit] of Object.entries(ATTENTION_EDITS).filter(([n]) => !rewrites.includes(n))) {
    it(`${name} permutes the lines it moves`, () => {
      for (const which of ['forward', 'backward'] as const) {
        const e = edit[which];
        if (!e) continue;
        const out = e(sources[which]);
        expect(out).not.toBe(sources[which]);
        expect(out.length).toBe(sources[which].length);
        expect(lines(out)).toEqual(lines(sources[which]));
      }
    });
  }
  it('dkv-fetch-late puts the fetches after the scores', () => {
    const out = ATTENTION_EDITS['dkv-fetch-late'].backward!(sources.backward);
    const loop = out.slice(out.indexOf('for (var it = 0u; it < total; it++)'));
    expect(loop.indexOf('var st = ')).toBeLessThan(loop.indexOf('yq0 = dkv_fetch_q'));
  });
  it.each(rewrites)('%s puts back the indices robustness clamps, at the same length', (name) => {
    for (const which of ['forward', 'backward'] as const) {
      const e = ATTENTION_EDITS[name][which];
      if (!e) continue;
      const out = e(sources[which]);
      expect(out.length).toBe(sources[which].length);
      expect(out).not.toContain('//');
      expect(out).not.toMatch(/\(\(c \/ 4u\) % \(/); // every bounded c gone
      expect(count(out, /\[[^\]]*\]\[at(?: \+ [123]u)?\] = /g)).toBe(count(sources[which], /\[[^\]]*\]\[at(?: \+ [123]u)?\] = /g));
    }
  });
});

// The bounded index forms (the shaders') against the plain ones, evaluated over every invocation and
// share: the same element, and inside the array without a clamp.
describe("the attention tiles' bounded indices", () => {
  const V4 = 128 / 4;
  const SK = 128 + 8;
  it('store_tile (forward) and store_kvt (backward dq): the same row block and offset', () => {
    for (let f = 0; f < 64 * V4; f++) {
      const [row, col] = [Math.floor(f / V4), f % V4];
      const r = Math.floor(f / V4) % 64;
      expect([Math.floor(r / 16), (r % 16) * SK + (f % V4) * 4]).toEqual([Math.floor(row / 16), (row % 16) * SK + col * 4]);
      expect((r % 16) * SK + (f % V4) * 4 + 3).toBeLessThan(16 * SK);
    }
  });
  it("a lane's c (4 * hb + 8 * e) as ((c / 4) % (n / 4)) * 4", () => {
    for (const n of [32, 64]) for (let c = 0; c < n; c += 4) expect(Math.floor(c / 4) % (n / 4) * 4).toBe(c);
  });
  it('store_blk (backward dkv): the same block and offset for 32-row q / dO tiles and 64-row k / v', () => {
    const [DH, SKH] = [64, 72];
    for (const [base, rows] of [[0, 32], [4, 32], [0, 64]]) {
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < V4; c++) {
          const col = c * 4;
          const plainBi = base + Math.floor(r / 16) * 2 + Math.floor(col / DH);
          const bi = (base + Math.floor((r % 64) / 16) * 2 + Math.floor(((c % V4) * 4) / DH)) % 8;
          expect(bi).toBe(plainBi);
          expect((r % 16) * SKH + (col % DH) + 3).toBeLessThan(16 * SKH);
        }
      }
    }
  });
});

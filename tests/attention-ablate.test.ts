// The attention ablation (tools/bench/attention-ablate.ts) stands edited shaders in for the engine's
// under the same kernel names, which Kernels.get allows only for sources of the same length: every
// edit must be a permutation of the shader's lines, and must find what it moves.
import { describe, expect, it } from 'vitest';
import { ATTENTION_EDITS } from '../tools/bench/attention-ablate.ts';
import { attentionMmaBackwardSource, attentionMmaSource } from '../src/engine/attention-mma.ts';

const sources = { forward: attentionMmaSource(128, 'f32', 'f16'), backward: attentionMmaBackwardSource(128, 'f32', 'f16') };
const lines = (s: string) => s.split('\n').sort();

describe('attention ablate edits', () => {
  for (const [name, edit] of Object.entries(ATTENTION_EDITS)) {
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
});

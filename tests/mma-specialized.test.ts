// The warp-specialized GEMM prototype (tools/bench/mma-specialized.ts) is timed only on the H200 (no
// subgroup matrices here); this checks what its generated source must hold for the timing to mean
// anything: every product of the block written out, every share fetched and stored once a k step,
// the workgroup memory under the engine's limit, and the barriers outside the roles' branches.
import { describe, expect, it } from 'vitest';
import { SPECIALIZED, specializedSource } from '../tools/bench/mma-specialized.ts';
import { MMA_WORKGROUP_BYTES } from '../src/engine/matmul-mma.ts';

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

describe('mma specialized prototype', () => {
  for (const [name, l] of Object.entries(SPECIALIZED)) {
    it(`generates ${name}`, () => {
      const s = specializedSource(l, 4096);
      const loop = s.slice(s.indexOf('for (var t = 0u'), s.indexOf('if (consumer && sg / SLOTS'));
      expect(count(loop, /subgroupMatrixMultiplyAccumulate/g)).toBe(l.tm * l.tn * (l.bk / 16));
      const [bm, bn] = [l.sgr * l.tm * 16, l.sgc * l.tn * 16];
      const threads = l.producers * 32;
      expect(count(loop, /put_a\(/g) * threads * 4).toBe(bm * l.bk);
      expect(count(loop, /put_b\(/g) * threads * 4).toBe(bn * l.bk);
      expect(count(loop, /\bsa\d+ = a\[/g)).toBe(count(loop, /put_a\(/g));
      // one barrier a k step, at the loop's own level (not inside either role's branch)
      expect(count(loop, /workgroupBarrier/g)).toBe(1);
      expect(loop).toMatch(/\n {4}workgroupBarrier\(\);\n {2}\}/);
      const sa = l.bk + 8;
      const slots = Math.min(l.sgr * l.sgc, 4);
      expect(2 * (bm + bn) * sa * 2 + slots * 1024).toBeLessThanOrEqual(MMA_WORKGROUP_BYTES);
      expect(s).toContain(`@workgroup_size(${(l.sgr * l.sgc + l.producers) * 32})`);
    });
  }
  it('refuses a layout whose tiles do not divide among the producers', () => {
    expect(() => specializedSource({ tm: 4, tn: 4, sgr: 2, sgc: 2, producers: 3, bk: 32 }, 4096)).toThrow(/divide/);
  });
});

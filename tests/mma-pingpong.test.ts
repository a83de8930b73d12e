// The ping-pong GEMM prototype (tools/bench/mma-pingpong.ts), the L2 probe (tools/bench/l2-probe.ts)
// and the residency probe (tools/bench/residency-probe.ts) are timed only on the H200 (the prototype's results are checked there against float64); this checks
// what their generated sources must hold for the timings to mean anything.
import { describe, expect, it } from 'vitest';
import { DOUBLE, doubleSource, PING_PONG, pingPongSource } from '../tools/bench/mma-pingpong.ts';
import { PROBES, probeSource } from '../tools/bench/l2-probe.ts';
import { parseProbe, PROBES as RESIDENCY_PROBES, probeSource as residencySource } from '../tools/bench/residency-probe.ts';

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;
/** Bytes of the shader's workgroup arrays (array<array<f16 | f32, N[u * SA]>, M>). */
const workgroupBytes = (s: string) => {
  const sa = Number(/const SA = (\d+)u;/.exec(s)![1]);
  return [...s.matchAll(/var<workgroup> \w+: array<array<(f16|f32), (\d+)u( \* SA)?>, (\d+)u>;/g)].reduce(
    (sum, [, type, n, bySa, m]) => sum + (type === 'f16' ? 2 : 4) * Number(n) * (bySa ? sa : 1) * Number(m),
    0,
  );
};

describe('mma ping-pong prototype', () => {
  for (const [name, l] of Object.entries(PING_PONG)) {
    it(`generates ${name}`, () => {
      const s = pingPongSource(l, 4096);
      const loop = s.slice(s.indexOf('for (var t = 0u'), s.indexOf('// the epilogue'));
      // two k steps a trip, each two intervals: one group multiplies (2 x 16 products of 16x16), the other stages
      expect(count(loop, /subgroupMatrixMultiplyAccumulate/g)).toBe(l.without === 'products' ? 0 : 4 * 32);
      const staged = l.without === 'staging' ? 0 : 4;
      expect(count(loop, /store_a\(/g)).toBe(staged * 4);
      expect(count(loop, /store_b\(/g)).toBe(staged * 2);
      expect(count(loop, /\b[nm]a\d+ = a\[/g)).toBe(staged * 4);
      // a barrier after each interval, at the loop's own level (not inside either role's branch)
      expect(count(loop, /workgroupBarrier/g)).toBe(4);
      expect(count(loop, /\n {4}workgroupBarrier\(\);/g)).toBe(4);
      // B's buffers: step j's products read buffer j % 2, its staging writes the other
      if (!l.without) expect(loop).toMatch(/&tile_b\[0u \+ wc\][\s\S]*store_b\(3u[\s\S]*&tile_b\[2u \+ wc\]/);
      // workgroup memory: A 2 x 128 x 40, B 2 x 128 x 40 f16, stage 8 x 1 KB: the 48 KB the H200's Vulkan allows
      expect(count(s, /var<workgroup>/g)).toBe(3);
      expect(workgroupBytes(s)).toBe(49152);
      expect(s).toContain('@workgroup_size(256)');
      expect(count(s, /\bvar m[ab]\d+: /g)).toBe(l.ownShares ? 6 : 0);
    });
  }
  it('refuses a size that is not whole blocks', () => {
    expect(() => pingPongSource(PING_PONG['pp-256x128-k32'], 1000)).toThrow(/multiple of 256/);
  });
});

describe('mma double-buffer prototype', () => {
  for (const [name, l] of Object.entries(DOUBLE)) {
    it(`generates ${name}`, () => {
      const s = doubleSource(l, 4096);
      const loop = s.slice(s.indexOf('for (var t = 0u'), s.indexOf('// the epilogue'));
      const threads = 64 * (128 / (16 * l.tm));
      const shares = 512 / threads; // a tile's 128 rows x 4 shares of eight
      // two k steps a trip, one barrier each; every step stores its shares of A and B into the other buffer and fetches as many
      expect(count(loop, /subgroupMatrixMultiplyAccumulate/g)).toBe(2 * 2 * 4 * l.tm);
      expect(count(loop, /workgroupBarrier/g)).toBe(2);
      expect(count(loop, /store_a\(1u,/g)).toBe(shares);
      expect(count(loop, /store_a\(0u,/g)).toBe(shares);
      expect(count(loop, /store_b\(/g)).toBe(2 * shares);
      expect(count(loop, /\b[nm]a\d+ = a\[/g)).toBe(2 * shares);
      // step j reads buffer 0 after storing into buffer 1, step j + 1 the other way round
      const first = loop.slice(0, loop.indexOf('workgroupBarrier'));
      expect(first.indexOf('store_a(1u,')).toBeLessThan(first.indexOf('&tile_a[0u + wr]'));
      expect(first).not.toMatch(/&tile_a\[[1-9]\du \+ wr\]|&tile_a\[[1-9]u \+ wr\]/);
      // both tiles twice (128 rows of 40 f16 each) and 1 KB of stage a subgroup: 44 KB (four subgroups: two workgroups a SM) or 48 KB
      expect(count(s, /var<workgroup>/g)).toBe(3);
      expect(workgroupBytes(s)).toBe(40960 + (threads / 32) * 1024);
      expect(s).toContain(`@workgroup_size(${threads})`);
      expect(count(s, /\bvar m[ab]\d+: /g)).toBe(l.fetchFirst ? 2 * shares : 0);
    });
  }
});

describe('L2 probe', () => {
  for (const [name, p] of Object.entries(PROBES)) {
    const words = p.threads * p.perSm * 132 * p.unroll;
    const buffer = (p.mib << 20) / 16;
    it(`${name}: one round's loads read ${Math.min(words, buffer) * 16} distinct bytes (the buffer: ${p.mib} MiB) in runs of ${p.run}`, () => {
      const s = probeSource(p);
      const fn = /fn at\(s: u32, warp: u32, lane: u32\) -> u32 \{\n([\s\S]*?)\n\}/.exec(s)![1];
      const warps = Number(/const WARPS = (\d+)u;/.exec(s)![1]);
      const at = new Function('s', 'warp', 'lane', 'WARPS', fn.replace(/\blet\b/g, 'const').replace(/(\d+)u\b/g, '$1').replace(/(\w+) \/ (\w+)/g, 'Math.floor($1 / $2)')) as (...x: number[]) => number;
      const seen = new Set<number>();
      for (let u = 0; u < p.unroll; u++) {
        for (let warp = 0; warp < warps; warp++) {
          const words = Array.from({ length: 32 }, (_, lane) => at(u, warp, lane, warps));
          for (const w of words) seen.add(w);
          // a warp's load: runs of p.run bytes, each 16-byte aligned and contiguous
          const runs = new Set(words.map((w) => Math.floor(w / (p.run / 16))));
          expect(runs.size).toBe(32 / (p.run / 16));
        }
      }
      // every word of the buffer once, or (a round larger than the buffer) all of it
      expect(seen.size).toBe(Math.min(words, buffer));
      for (const w of seen) if (w < 0 || w >= buffer) expect(w).toBeLessThan(buffer);
    });
  }
});

describe('residency probe', () => {
  it('reads its probes from their names and says what a name must look like', () => {
    expect(parseProbe('w128-20k-r200')).toEqual({ threads: 128, kib: 20, regs: 200 });
    expect(parseProbe('w256-47k')).toEqual({ threads: 256, kib: 47, regs: 8 });
    for (const bad of ['w128', '128-20k', 'w128-20kb', 'w128-20k-r', 'x']) expect(() => parseProbe(bad)).toThrow(/w\{threads\}-\{KiB\}k/);
    expect(RESIDENCY_PROBES.map(parseProbe).length).toBe(RESIDENCY_PROBES.length);
  });
  it.each(['w128-20k-r200', 'w256-47k', 'w32-1k'])('%s: declares its workgroup memory, size and live values, and counts each workgroup in and out once', (name) => {
    const p = parseProbe(name);
    const s = residencySource(p);
    expect(s).toContain(`var<workgroup> pad: array<vec4<u32>, ${(p.kib * 1024) / 16}>;`);
    expect(s).toContain(`@workgroup_size(${p.threads})`);
    expect(count(s, /\bvar r\d+ = /g)).toBe(p.regs);
    expect(count(s, /r\d+ = fma\(/g)).toBe(p.regs);
    // every live value reaches the output, so the driver cannot drop it
    const out = /out\[[^\n]*\] = ([^;]*);/.exec(s)![1];
    expect(count(out, /\br\d+\b/g)).toBe(p.regs);
    expect(count(s, /atomicAdd\(&counts\[0\], 1u\)/g)).toBe(1);
    expect(count(s, /atomicSub\(&counts\[0\], 1u\)/g)).toBe(1);
    expect(s.indexOf('atomicAdd')).toBeLessThan(s.indexOf('atomicLoad'));
    expect(s.indexOf('atomicLoad')).toBeLessThan(s.indexOf('atomicSub'));
  });
});

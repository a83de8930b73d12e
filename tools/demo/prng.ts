// A small seeded PRNG for the demo generator: mulberry32 (32-bit state, Math.imul only), so the
// same seed gives the same bytes on every machine and every JS engine.

export interface Rng {
  /** Uniform 32-bit unsigned integer. */
  u32(): number;
  /** Uniform in [0, 1), with 32 random bits. */
  float(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  /** A new array with the items in a random order (Fisher-Yates). */
  shuffled<T>(items: readonly T[]): T[];
  /**
   * Approximately normal, mean 0, std 1: the sum of 12 uniforms minus 6 (Irwin-Hall). Exact
   * arithmetic (no Math.log/cos), so the bytes never depend on the platform's libm.
   */
  normal(): number;
}

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  const u32 = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const float = (): number => u32() / 4294967296;
  const int = (n: number): number => Math.floor(float() * n);
  return {
    u32,
    float,
    int,
    pick: (items) => items[int(items.length)],
    shuffled: (items) => {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i--) {
        const j = int(i + 1);
        [out[i], out[j]] = [out[j], out[i]];
      }
      return out;
    },
    normal: () => {
      let s = 0;
      for (let i = 0; i < 12; i++) s += u32(); // integers: the sum is exact
      return s / 4294967296 - 6;
    },
  };
}

// The demo generator's randomness: the project's seeded PRNG (src/util/random.ts) with the
// helpers the generator needs; integer-only arithmetic, so the bytes are the same everywhere.
import { rng } from '../../src/util/random.ts';

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
  const next = rng(seed);
  const u32 = (): number => next() * 4294967296; // exact: rng() is a u32 divided by 2^32
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

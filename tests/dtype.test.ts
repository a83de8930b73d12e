import { describe, expect, it } from 'vitest';
import {
  bf16ArrayToF32,
  bf16BitsToF32,
  bytesToF32LE,
  bytesToU16LE,
  f16ArrayToF32,
  f16BitsToF32,
  f32ArrayToBf16,
  f32ArrayToF16,
  f32Bits,
  f32FromBits,
  f32ToBf16Bits,
  f32ToBytesLE,
  f32ToF16Bits,
  u16ToBytesLE,
} from '../src/io/dtype.ts';

// Deterministic 32-bit generator for the randomized checks.
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

/** Reference f32 -> f16 by search over all f16 values, in f64 arithmetic. */
const F16_POS: number[] = [];
for (let h = 0; h <= 0x7bff; h++) F16_POS.push(f16Value(h));
function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
function refF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // 65504 + half an ulp (16): the tie goes to even = Inf
  let lo = 0;
  let hi = F16_POS.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (F16_POS[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  if (F16_POS[lo] === a || lo === F16_POS.length - 1) return sign | lo;
  const dLo = a - F16_POS[lo];
  const dHi = F16_POS[lo + 1] - a;
  if (dLo < dHi) return sign | lo;
  if (dHi < dLo) return sign | (lo + 1);
  return sign | (lo % 2 === 0 ? lo : lo + 1);
}

function refBf16(x: number): number {
  const bits = f32Bits(x);
  if (Number.isNaN(x)) return -1;
  const t = bits >>> 16;
  const lo = bf16BitsToF32(t);
  const hiBits = t + 1;
  const a = Math.fround(x);
  // Next bf16 away from zero, in f64 so that past the largest finite it is 2^128, not Inf
  // (a tie there goes to the even pattern, which is Inf).
  const e = (t >>> 7) & 0xff;
  const ulp = 2 ** (Math.max(e, 1) - 127 - 7);
  const hi = lo + (a < 0 ? -ulp : ulp);
  if (a === lo) return t;
  const dLo = Math.abs(a - lo);
  const dHi = Math.abs(hi - a);
  if (dLo < dHi) return t;
  if (dHi < dLo) return hiBits & 0xffff;
  return t % 2 === 0 ? t : hiBits & 0xffff;
}

describe('f16', () => {
  it('converts known values', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00],
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // exactly half of it: ties to even (0)
      [2 ** -25 * 1.0000001, 0x0001],
      [3 * 2 ** -25, 0x0002], // 1.5 ulp: ties to even (2)
      [2 ** -26, 0x0000],
      [0.1, 0x2e66],
      [0.333251953125, 0x3555],
      [1 + 2 ** -11, 0x3c00], // halfway between 1 and next: even (1)
      [1 + 3 * 2 ** -11, 0x3c02], // halfway between 0x3c01 and 0x3c02: even (0x3c02)
      [2 ** -14 - 2 ** -25, 0x0400], // top subnormal rounds up into the smallest normal
    ];
    for (const [x, h] of cases) {
      expect(f32ToF16Bits(x), `f32ToF16Bits(${x})`).toBe(h);
    }
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(Number.isNaN(f16BitsToF32(0x7e00))).toBe(true);
    expect(Number.isNaN(f16BitsToF32(0x7c01))).toBe(true);
  });

  it('NaN stays NaN, with sign and quiet bit', () => {
    expect(f32ToF16Bits(NaN) & 0x7e00).toBe(0x7e00);
    expect(f32ToF16Bits(f32FromBits(0xffc00000))).toBe(0xfe00);
    // A signalling NaN whose payload is only in the low bits must not become Inf.
    const h = f32ToF16Bits(f32FromBits(0x7f800001));
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x3ff).not.toBe(0);
  });

  it('every f16 value survives f16 -> f32 -> f16, scalar and array', () => {
    const all = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    const f = f16ArrayToF32(all);
    const back = f32ArrayToF16(f);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (Number.isNaN(f[h]) !== isNaN) throw new Error(`NaN-ness of ${h.toString(16)}`);
      if (isNaN) continue;
      if (f[h] !== f16Value(h) || f16BitsToF32(h) !== f[h]) throw new Error(`decode of ${h.toString(16)}`);
      if (back[h] !== h) throw new Error(`array round trip of ${h.toString(16)} gave ${back[h].toString(16)}`);
      if (f32ToF16Bits(f[h]) !== h) throw new Error(`scalar round trip of ${h.toString(16)}`);
    }
  });

  it('rounds to nearest even like an exhaustive search (random f32 near the f16 range)', () => {
    const next = lcg(12345);
    const xs = new Float32Array(200_000);
    for (let i = 0; i < xs.length; i++) {
      // Exponents from 2^-27 to 2^17: covers zero-underflow, subnormals, normals and overflow.
      const exp = 100 + (next() % 45);
      const bits = ((next() & 0x80000000) | (exp << 23) | (next() & 0x7fffff)) >>> 0;
      xs[i] = f32FromBits(bits);
    }
    // Exact halfway points between neighbouring f16 values are the hard cases: add them.
    const halves: number[] = [];
    for (let h = 0; h < 0x7bff; h += 7) halves.push((F16_POS[h] + F16_POS[h + 1]) / 2);
    const all = new Float32Array([...xs, ...halves, ...halves.map((v) => -v)]);
    const got = f32ArrayToF16(all);
    for (let i = 0; i < all.length; i++) {
      const want = refF16(all[i]);
      if (got[i] !== want || f32ToF16Bits(all[i]) !== want) {
        throw new Error(`x=${all[i]}: got ${got[i].toString(16)} want ${want.toString(16)}`);
      }
    }
  });

  it('array versions accept an output array and check its length', () => {
    const out = new Uint16Array(3);
    expect(f32ArrayToF16(new Float32Array([1, 2, 3]), out)).toBe(out);
    expect([...out]).toEqual([0x3c00, 0x4000, 0x4200]);
    expect(() => f32ArrayToF16(new Float32Array(2), out)).toThrow(RangeError);
    // A view at a non-zero offset of a larger buffer.
    const big = new Float32Array([9, 1, 0.5, 9]);
    expect([...f32ArrayToF16(big.subarray(1, 3))]).toEqual([0x3c00, 0x3800]);
  });
});

describe('bf16', () => {
  it('converts known values', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3f80],
      [-2, 0xc000],
      [Math.PI, 0x4049],
      [0.1, 0x3dcd],
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
      [3.3895313892515355e38, 0x7f7f], // largest finite bf16
      [f32FromBits(0x7f7fffff), 0x7f80], // largest f32 rounds up to Inf
      [f32FromBits(0x3f808000), 0x3f80], // tie, even below
      [f32FromBits(0x3f818000), 0x3f82], // tie, even above
      [f32FromBits(0x3f808001), 0x3f81],
      [f32FromBits(0x00000001), 0x0000], // smallest f32 subnormal
      [f32FromBits(0x00008000), 0x0000], // tie to even (0)
      [f32FromBits(0x00018000), 0x0002], // tie to even (2)
      [f32FromBits(0x007fffff), 0x0080], // largest subnormal rounds up to the smallest normal
    ];
    for (const [x, b] of cases) expect(f32ToBf16Bits(x), `f32ToBf16Bits(${x})`).toBe(b);
    expect(bf16BitsToF32(0x3f80)).toBe(1);
    expect(bf16BitsToF32(0xc000)).toBe(-2);
    expect(bf16BitsToF32(0x0001)).toBe(f32FromBits(0x00010000));
    expect(Number.isNaN(bf16BitsToF32(0x7fc0))).toBe(true);
  });

  it('NaN stays NaN (quiet, sign kept)', () => {
    expect(f32ToBf16Bits(NaN) & 0x7fc0).toBe(0x7fc0);
    const b = f32ToBf16Bits(f32FromBits(0xff800001)); // payload only in the dropped half
    expect(b & 0xff80).toBe(0xff80);
    expect(b & 0x7f).not.toBe(0);
    const arr = f32ArrayToBf16(new Float32Array([f32FromBits(0x7f800001), f32FromBits(0xffc00000)]));
    expect(Number.isNaN(bf16BitsToF32(arr[0]))).toBe(true);
    expect(arr[1]).toBe(0xffc0);
  });

  it('every bf16 value survives bf16 -> f32 -> bf16', () => {
    const all = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    const f = bf16ArrayToF32(all);
    const back = f32ArrayToBf16(f);
    for (let b = 0; b < 65536; b++) {
      const isNaN = (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
      if (Number.isNaN(f[b]) !== isNaN) throw new Error(`NaN-ness of ${b.toString(16)}`);
      if (isNaN) continue;
      if (f32Bits(f[b]) !== (b << 16) >>> 0) throw new Error(`decode of ${b.toString(16)}`);
      if (back[b] !== b || f32ToBf16Bits(f[b]) !== b) throw new Error(`round trip of ${b.toString(16)}`);
      if (bf16BitsToF32(b) !== f[b]) throw new Error(`scalar decode of ${b.toString(16)}`);
    }
  });

  it('rounds to nearest even like a neighbour search (random f32)', () => {
    const next = lcg(777);
    const xs = new Float32Array(200_000);
    for (let i = 0; i < xs.length; i++) {
      let bits = next();
      if (((bits >>> 23) & 0xff) === 0xff) bits &= 0xff7fffff; // no NaN/Inf here
      if (i % 4 === 0) bits = (bits & 0xffff0000) | 0x8000; // exact ties
      xs[i] = f32FromBits(bits >>> 0);
    }
    const got = f32ArrayToBf16(xs);
    for (let i = 0; i < xs.length; i++) {
      const want = refBf16(xs[i]);
      if (got[i] !== want || f32ToBf16Bits(xs[i]) !== want) {
        throw new Error(`x=${xs[i]}: got ${got[i].toString(16)} want ${want.toString(16)}`);
      }
    }
  });
});

describe('little-endian byte helpers', () => {
  it('u16 and f32 to and from bytes, unaligned input included', () => {
    const u = new Uint16Array([0x0102, 0xa0b0]);
    expect([...u16ToBytesLE(u)]).toEqual([0x02, 0x01, 0xb0, 0xa0]);
    const unaligned = new Uint8Array([0xff, 0x02, 0x01, 0xb0, 0xa0]).subarray(1);
    expect([...bytesToU16LE(unaligned)]).toEqual([0x0102, 0xa0b0]);
    const f = new Float32Array([1, -2.5]);
    const fb = f32ToBytesLE(f);
    expect([...fb]).toEqual([0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0]);
    const fbu = new Uint8Array(9);
    fbu.set(fb, 1);
    expect([...bytesToF32LE(fbu.subarray(1))]).toEqual([1, -2.5]);
    expect(() => bytesToU16LE(new Uint8Array(3))).toThrow(RangeError);
    expect(() => bytesToF32LE(new Uint8Array(6))).toThrow(RangeError);
  });
});

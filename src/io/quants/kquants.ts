// The k-quants: 256-element super-blocks (specs/formats.md §2.3-2.7; ggml quantize_row_q{2..6}_K_ref
// and dequantize_row_q{2..6}_K). Without an importance matrix llama-quantize calls exactly these
// reference functions; every float operation below is rounded to float32 in C's order, so the bytes
// equal ggml's (tests/quants-ref.test.ts compares against bytes made by ggml).

import { GGMLType, QK_K } from './ggml-types.ts';
import { checkDequantizeArgs, checkQuantizeArgs, getF16, putF16 } from './common.ts';
import type { QuantFormat } from './common.ts';

// Local, not imported: hot loops call it millions of times, and a module binding can cost a
// property load per call under some module loaders (vitest's runner: about 10x slower).
const fr = Math.fround;

const GROUP_MAX_EPS = fr(1e-15);
/** Scratch for makeQkx2Quants (single-threaded JS: one buffer serves every call). */
const XM = new Float32Array(32);
const F01 = fr(0.1);

// ---------------------------------------------------------------------------------------------
// Helpers (ggml-quants.c)

const bitsF32 = new Float32Array(1);
const bitsU32 = new Uint32Array(bitsF32.buffer);

/** ggml `nearest_int` including its behaviour past |f| > 4194303 (the bit trick, not a clamp). */
function nearestInt(f: number): number {
  const v = fr(f + 12582912);
  if (f <= 4194303 && f >= -4194303) return v - 12582912;
  bitsF32[0] = v;
  return (bitsU32[0] & 0x7fffff) - 0x400000;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/**
 * make_qkx2_quants: a scale and a min for x[xo..xo+n) with levels 0..nmax, searched over
 * nstep+1 candidate scales with weighted least squares. Writes the levels to L[lo..lo+n) and
 * -min (>= 0) to out[0]; returns the scale.
 */
function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  xo: number,
  weights: Float32Array,
  L: Uint8Array,
  lo: number,
  Laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
  useMad: boolean,
  out: Float32Array,
): number {
  let min = x[xo];
  let max = x[xo];
  let sumW = weights[0];
  let sumX = fr(sumW * x[xo]);
  for (let i = 1; i < n; i++) {
    const v = x[xo + i];
    if (v < min) min = v;
    if (v > max) max = v;
    const w = weights[i];
    sumW = fr(sumW + w);
    sumX = fr(sumX + fr(w * v));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    out[0] = -min;
    return 0;
  }
  // `min` changes when a better candidate is found, and later candidates start from it (as in C).
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i];
    const l = clamp(nearestInt(fr(iscale * fr(v - min))), 0, nmax);
    L[lo + i] = l;
    let diff = fr(fr(fr(scale * l) + min) - v);
    diff = useMad ? Math.abs(diff) : fr(diff * diff);
    bestError = fr(bestError + fr(weights[i] * diff));
  }
  if (nstep < 1) {
    out[0] = -min;
    return scale;
  }
  // x - min for the current min (recomputed when a candidate moves it).
  const xm = XM;
  for (let i = 0; i < n; i++) xm[i] = x[xo + i] - min;
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const v = x[xo + i];
      const l = clamp(nearestInt(fr(iscale * xm[i])), 0, nmax);
      Laux[i] = l;
      const wl = fr(weights[i] * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * v));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        let diff = fr(fr(fr(thisScale * Laux[i]) + thisMin) - x[xo + i]);
        diff = useMad ? Math.abs(diff) : fr(diff * diff);
        curError = fr(curError + fr(weights[i] * diff));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i];
        bestError = curError;
        scale = thisScale;
        min = thisMin;
        for (let i = 0; i < n; i++) xm[i] = x[xo + i] - min;
      }
    }
  }
  out[0] = -min;
  return scale;
}

/**
 * make_qx_quants with rmse_type 1 and no importance weights (weights x²): a signed scale for
 * levels -nmax..nmax-1, refined over 18 candidate scales. Writes levels + nmax to L; returns the scale.
 */
function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, L: Uint8Array, lo: number): number {
  let amax = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i];
    const a = Math.abs(v);
    if (a > amax) {
      amax = a;
      max = v;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  let iscale = fr(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i];
    const l = clamp(nearestInt(fr(iscale * v)), -nmax, nmax - 1);
    L[lo + i] = l + nmax;
    const w = fr(v * v);
    sumlx = fr(sumlx + fr(fr(w * v) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  let scale = suml2 !== 0 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(F01 * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const v = x[xo + i];
      const l = clamp(nearestInt(fr(iscale * v)), -nmax, nmax - 1);
      const w = fr(v * v);
      sumlx = fr(sumlx + fr(fr(w * v) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) {
        L[lo + i] = nmax + clamp(nearestInt(fr(iscale * x[xo + i])), -nmax, nmax - 1);
      }
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

/**
 * make_q3_quants with do_rmse: a signed scale for levels -nmax..nmax-1, then up to 5 passes that
 * move single levels while the weighted (x²) fit improves. Writes levels + nmax to L.
 */
function makeQ3Quants(n: number, nmax: number, x: Float32Array, xo: number, L: Int8Array, lo: number): number {
  let amax = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i];
    const a = Math.abs(v);
    if (a > amax) {
      amax = a;
      max = v;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  const iscale = fr(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i];
    const l = clamp(nearestInt(fr(iscale * v)), -nmax, nmax - 1);
    L[lo + i] = l;
    const w = fr(v * v);
    sumlx = fr(sumlx + fr(fr(w * v) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const v = x[xo + i];
      const w = fr(v * v);
      const li = L[lo + i];
      let slx = fr(sumlx - fr(fr(w * v) * li));
      if (slx > 0) {
        let sl2 = fr(suml2 - fr(fr(w * li) * li));
        const newL = clamp(nearestInt(fr(fr(v * sl2) / slx)), -nmax, nmax - 1);
        if (newL !== li) {
          slx = fr(slx + fr(fr(w * v) * newL));
          sl2 = fr(sl2 + fr(fr(w * newL) * newL));
          if (sl2 > 0 && fr(fr(slx * slx) * suml2) > fr(fr(sumlx * sumlx) * sl2)) {
            L[lo + i] = newL;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (changed === 0) break;
  }
  for (let i = 0; i < n; i++) L[lo + i] += nmax;
  return suml2 > 0 ? fr(sumlx / suml2) : 0;
}

/** The 6-bit scale and min of sub-block j from the 12 packed bytes at `off` (Q4_K, Q5_K). */
function scaleMinK4(j: number, q: Uint8Array, off: number, out: Uint8Array): void {
  if (j < 4) {
    out[0] = q[off + j] & 63;
    out[1] = q[off + j + 4] & 63;
  } else {
    out[0] = (q[off + j + 4] & 0xf) | ((q[off + j - 4] >> 6) << 4);
    out[1] = (q[off + j + 4] >> 4) | ((q[off + j] >> 6) << 4);
  }
}

/** Packs 8 six-bit scales and mins into the 12 bytes at `off` (Q4_K, Q5_K). */
function packScaleMinK4(ls: Uint8Array, lm: Uint8Array, q: Uint8Array, off: number): void {
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      q[off + j] = ls[j];
      q[off + j + 4] = lm[j];
    } else {
      q[off + j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
      q[off + j - 4] |= (ls[j] >> 4) << 6;
      q[off + j] |= (lm[j] >> 4) << 6;
    }
  }
}

/** Q3_K's 6-bit group scale g (0..15) from the 12 packed bytes at `off`, minus 32. */
function q3Scale(q: Uint8Array, off: number, g: number): number {
  const low = g < 8 ? q[off + g] & 0xf : q[off + g - 8] >> 4;
  return (low | (((q[off + 8 + (g % 4)] >> (2 * (g >> 2))) & 3) << 4)) - 32;
}

/** Per-call scratch (the quantizers are re-entrant: nothing is shared between calls). */
class Scratch {
  readonly L = new Uint8Array(QK_K);
  readonly Ls = new Int8Array(QK_K);
  readonly Laux = new Uint8Array(32);
  readonly weights = new Float32Array(32);
  readonly scales = new Float32Array(16);
  readonly mins = new Float32Array(16);
  readonly one = new Float32Array(1);
  readonly ls = new Uint8Array(8);
  readonly lm = new Uint8Array(8);
  readonly sm = new Uint8Array(2);
}

// ---------------------------------------------------------------------------------------------
// Q4_K / Q5_K: { f16 d; f16 dmin; u8 scales[12]; [u8 qh[32];] u8 qs[128] }

function quantizeQ45K(x: Float32Array, xo: number, out: Uint8Array, oo: number, s: Scratch, five: boolean): void {
  const nmax = five ? 31 : 15;
  const { L, weights, scales, mins, ls, lm, sm } = s;
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    const so = xo + 32 * j;
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(x[so + l] * x[so + l]));
    const avX = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = fr(avX + Math.abs(x[so + l]));
    scales[j] = five
      ? makeQkx2Quants(32, 31, x, so, weights, L, 32 * j, s.Laux, -0.5, F01, 15, false, s.one)
      : makeQkx2Quants(32, 15, x, so, weights, L, 32 * j, s.Laux, -1, F01, 20, false, s.one);
    mins[j] = s.one[0];
    if (scales[j] > maxScale) maxScale = scales[j];
    if (mins[j] > maxMin) maxMin = mins[j];
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  for (let j = 0; j < 8; j++) {
    ls[j] = Math.min(63, nearestInt(fr(invScale * scales[j])) & 0xff);
    lm[j] = Math.min(63, nearestInt(fr(invMin * mins[j])) & 0xff);
  }
  packScaleMinK4(ls, lm, out, oo + 4);
  const d = putF16(out, oo, fr(maxScale / 63));
  const dmin = putF16(out, oo + 2, fr(maxMin / 63));
  for (let j = 0; j < 8; j++) {
    scaleMinK4(j, out, oo + 4, sm);
    const dj = fr(d * sm[0]);
    if (dj === 0) continue;
    const dm = fr(dmin * sm[1]);
    for (let ii = 0; ii < 32; ii++) {
      L[32 * j + ii] = clamp(nearestInt(fr(fr(x[xo + 32 * j + ii] + dm) / dj)), 0, nmax);
    }
  }
  if (!five) {
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) out[oo + 16 + 32 * c + l] = L[64 * c + l] | (L[64 * c + 32 + l] << 4);
    }
    return;
  }
  const qh = oo + 16;
  const ql = oo + 48;
  out.fill(0, qh, qh + 32);
  for (let c = 0; c < 4; c++) {
    const m1 = 1 << (2 * c);
    const m2 = 2 << (2 * c);
    for (let j = 0; j < 32; j++) {
      let l1 = L[64 * c + j];
      if (l1 > 15) {
        l1 -= 16;
        out[qh + j] |= m1;
      }
      let l2 = L[64 * c + 32 + j];
      if (l2 > 15) {
        l2 -= 16;
        out[qh + j] |= m2;
      }
      out[ql + 32 * c + j] = l1 | (l2 << 4);
    }
  }
}

function dequantizeQ45K(src: Uint8Array, io: number, y: Float32Array, yo: number, sm: Uint8Array, five: boolean): void {
  const d = getF16(src, io);
  const min = getF16(src, io + 2);
  const qh = io + 16;
  const ql = five ? io + 48 : io + 16;
  for (let c = 0; c < 4; c++) {
    scaleMinK4(2 * c, src, io + 4, sm);
    const d1 = fr(d * sm[0]);
    const m1 = fr(min * sm[1]);
    scaleMinK4(2 * c + 1, src, io + 4, sm);
    const d2 = fr(d * sm[0]);
    const m2 = fr(min * sm[1]);
    const u1 = 1 << (2 * c);
    const u2 = 2 << (2 * c);
    for (let l = 0; l < 32; l++) {
      const q = src[ql + 32 * c + l];
      const h1 = five && (src[qh + l] & u1) !== 0 ? 16 : 0;
      const h2 = five && (src[qh + l] & u2) !== 0 ? 16 : 0;
      y[yo + 64 * c + l] = fr(fr(d1 * ((q & 0xf) + h1)) - m1);
      y[yo + 64 * c + 32 + l] = fr(fr(d2 * ((q >> 4) + h2)) - m2);
    }
  }
}

function superBlockFormat(
  name: string,
  type: number,
  typeSize: number,
  quantizeBlock: (x: Float32Array, xo: number, out: Uint8Array, oo: number, s: Scratch) => void,
  dequantizeBlock: (src: Uint8Array, io: number, y: Float32Array, yo: number, sm: Uint8Array) => void,
): QuantFormat {
  return {
    type,
    name,
    blockSize: QK_K,
    typeSize,
    quantize(src, dst) {
      const out = checkQuantizeArgs(name, QK_K, typeSize, src, dst);
      const s = new Scratch();
      for (let xo = 0, oo = 0; xo < src.length; xo += QK_K, oo += typeSize) quantizeBlock(src, xo, out, oo, s);
      return out;
    },
    dequantize(src, dst) {
      const y = checkDequantizeArgs(name, QK_K, typeSize, src, dst);
      const sm = new Uint8Array(2);
      for (let io = 0, yo = 0; io < src.length; io += typeSize, yo += QK_K) dequantizeBlock(src, io, y, yo, sm);
      return y;
    },
  };
}

export const Q4_K: QuantFormat = superBlockFormat(
  'Q4_K',
  GGMLType.Q4_K,
  144,
  (x, xo, out, oo, s) => quantizeQ45K(x, xo, out, oo, s, false),
  (src, io, y, yo, sm) => dequantizeQ45K(src, io, y, yo, sm, false),
);

export const Q5_K: QuantFormat = superBlockFormat(
  'Q5_K',
  GGMLType.Q5_K,
  176,
  (x, xo, out, oo, s) => quantizeQ45K(x, xo, out, oo, s, true),
  (src, io, y, yo, sm) => dequantizeQ45K(src, io, y, yo, sm, true),
);

// ---------------------------------------------------------------------------------------------
// Q6_K: { u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d }

function quantizeQ6K(x: Float32Array, xo: number, out: Uint8Array, oo: number, s: Scratch): void {
  const { L, scales } = s;
  let maxScale = 0;
  let maxAbsScale = 0;
  for (let g = 0; g < 16; g++) {
    const scale = makeQxQuants(16, 32, x, xo + 16 * g, L, 16 * g);
    scales[g] = scale;
    const a = Math.abs(scale);
    if (a > maxAbsScale) {
      maxAbsScale = a;
      maxScale = scale;
    }
  }
  if (maxAbsScale < GROUP_MAX_EPS) {
    out.fill(0, oo, oo + 210);
    return;
  }
  const iscale = fr(-128 / maxScale);
  const d = putF16(out, oo + 208, fr(1 / iscale));
  for (let g = 0; g < 16; g++) out[oo + 192 + g] = Math.min(127, nearestInt(fr(iscale * scales[g]))) & 0xff;
  for (let g = 0; g < 16; g++) {
    const dg = fr(d * ((out[oo + 192 + g] << 24) >> 24));
    if (dg === 0) continue;
    for (let ii = 0; ii < 16; ii++) {
      L[16 * g + ii] = clamp(nearestInt(fr(x[xo + 16 * g + ii] / dg)), -32, 31) + 32;
    }
  }
  for (let h = 0; h < 2; h++) {
    const j = 128 * h;
    const ql = oo + 64 * h;
    const qh = oo + 128 + 32 * h;
    for (let l = 0; l < 32; l++) {
      const a = L[j + l];
      const b = L[j + l + 32];
      const c = L[j + l + 64];
      const e = L[j + l + 96];
      out[ql + l] = (a & 0xf) | ((c & 0xf) << 4);
      out[ql + l + 32] = (b & 0xf) | ((e & 0xf) << 4);
      out[qh + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
    }
  }
}

function dequantizeQ6K(src: Uint8Array, io: number, y: Float32Array, yo: number): void {
  const d = getF16(src, io + 208);
  for (let h = 0; h < 2; h++) {
    const ql = io + 64 * h;
    const qh = io + 128 + 32 * h;
    const sc = io + 192 + 8 * h;
    const yh = yo + 128 * h;
    for (let l = 0; l < 32; l++) {
      const is = l >> 4;
      const hb = src[qh + l];
      const q1 = ((src[ql + l] & 0xf) | ((hb & 3) << 4)) - 32;
      const q2 = ((src[ql + l + 32] & 0xf) | (((hb >> 2) & 3) << 4)) - 32;
      const q3 = ((src[ql + l] >> 4) | (((hb >> 4) & 3) << 4)) - 32;
      const q4 = ((src[ql + l + 32] >> 4) | (((hb >> 6) & 3) << 4)) - 32;
      y[yh + l] = fr(fr(d * i8(src[sc + is])) * q1);
      y[yh + l + 32] = fr(fr(d * i8(src[sc + is + 2])) * q2);
      y[yh + l + 64] = fr(fr(d * i8(src[sc + is + 4])) * q3);
      y[yh + l + 96] = fr(fr(d * i8(src[sc + is + 6])) * q4);
    }
  }
}

export const Q6_K: QuantFormat = superBlockFormat('Q6_K', GGMLType.Q6_K, 210, quantizeQ6K, (src, io, y, yo) => dequantizeQ6K(src, io, y, yo));

// ---------------------------------------------------------------------------------------------
// Q3_K: { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d }

function quantizeQ3K(x: Float32Array, xo: number, out: Uint8Array, oo: number, s: Scratch): void {
  const L = s.Ls;
  const { scales } = s;
  const so = oo + 96;
  let maxScale = 0;
  let amax = 0;
  for (let g = 0; g < 16; g++) {
    scales[g] = makeQ3Quants(16, 4, x, xo + 16 * g, L, 16 * g);
    const a = Math.abs(scales[g]);
    if (a > amax) {
      amax = a;
      maxScale = scales[g];
    }
  }
  out.fill(0, so, so + 12);
  let d = 0;
  if (maxScale !== 0) {
    const iscale = fr(-32 / maxScale);
    for (let g = 0; g < 16; g++) {
      let l = (nearestInt(fr(iscale * scales[g])) << 24) >> 24;
      l = clamp(l, -32, 31) + 32;
      if (g < 8) out[so + g] = l & 0xf;
      else out[so + g - 8] |= (l & 0xf) << 4;
      out[so + 8 + (g % 4)] |= (l >> 4) << (2 * (g >> 2));
    }
    d = putF16(out, oo + 108, fr(1 / iscale));
  } else {
    d = putF16(out, oo + 108, 0);
  }
  for (let g = 0; g < 16; g++) {
    const dg = fr(d * q3Scale(out, so, g));
    if (dg === 0) continue;
    for (let ii = 0; ii < 16; ii++) {
      L[16 * g + ii] = clamp(nearestInt(fr(x[xo + 16 * g + ii] / dg)), -4, 3) + 4;
    }
  }
  out.fill(0, oo, oo + 32);
  for (let j = 0; j < QK_K; j++) {
    if (L[j] > 3) {
      out[oo + (j & 31)] |= 1 << (j >> 5);
      L[j] -= 4;
    }
  }
  packTwoBit(L, out, oo + 32);
}

/** Low 2 bits of 256 levels: qs[n/4 + l] = L[n+l] | L[n+l+32]<<2 | L[n+l+64]<<4 | L[n+l+96]<<6. */
function packTwoBit(L: Uint8Array | Int8Array, out: Uint8Array, qo: number): void {
  for (let n = 0; n < QK_K; n += 128) {
    for (let l = 0; l < 32; l++) {
      out[qo + n / 4 + l] = (L[n + l] | (L[n + l + 32] << 2) | (L[n + l + 64] << 4) | (L[n + l + 96] << 6)) & 0xff;
    }
  }
}

function dequantizeQ3K(src: Uint8Array, io: number, y: Float32Array, yo: number): void {
  const dAll = getF16(src, io + 108);
  for (let n = 0; n < QK_K; n += 128) {
    const q = io + 32 + n / 4;
    for (let j = 0; j < 4; j++) {
      const m = 1 << ((n >> 5) + j);
      for (let half = 0; half < 2; half++) {
        const dl = fr(dAll * q3Scale(src, io + 96, n / 16 + 2 * j + half));
        for (let l = 16 * half; l < 16 * half + 16; l++) {
          const lo = (src[q + l] >> (2 * j)) & 3;
          const hi = (src[io + l] & m) !== 0 ? 0 : 4;
          y[yo + n + 32 * j + l] = fr(dl * (lo - hi));
        }
      }
    }
  }
}

export const Q3_K: QuantFormat = superBlockFormat('Q3_K', GGMLType.Q3_K, 110, quantizeQ3K, (src, io, y, yo) => dequantizeQ3K(src, io, y, yo));

// ---------------------------------------------------------------------------------------------
// Q2_K: { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin }

function quantizeQ2K(x: Float32Array, xo: number, out: Uint8Array, oo: number, s: Scratch): void {
  const { L, weights, scales, mins } = s;
  let maxScale = 0;
  let maxMin = 0;
  for (let g = 0; g < 16; g++) {
    for (let l = 0; l < 16; l++) weights[l] = Math.abs(x[xo + 16 * g + l]);
    scales[g] = makeQkx2Quants(16, 3, x, xo + 16 * g, weights, L, 16 * g, s.Laux, -0.5, F01, 15, true, s.one);
    mins[g] = s.one[0];
    if (scales[g] > maxScale) maxScale = scales[g];
    if (mins[g] > maxMin) maxMin = mins[g];
  }
  let d: number;
  if (maxScale > 0) {
    const iscale = fr(15 / maxScale);
    for (let g = 0; g < 16; g++) out[oo + g] = nearestInt(fr(iscale * scales[g])) & 0xff;
    d = putF16(out, oo + 80, fr(maxScale / 15));
  } else {
    out.fill(0, oo, oo + 16);
    d = putF16(out, oo + 80, 0);
  }
  let dmin: number;
  if (maxMin > 0) {
    const iscale = fr(15 / maxMin);
    for (let g = 0; g < 16; g++) out[oo + g] |= (nearestInt(fr(iscale * mins[g])) << 4) & 0xff;
    dmin = putF16(out, oo + 82, fr(maxMin / 15));
  } else {
    dmin = putF16(out, oo + 82, 0);
  }
  for (let g = 0; g < 16; g++) {
    const dg = fr(d * (out[oo + g] & 0xf));
    if (dg === 0) continue;
    const dm = fr(dmin * (out[oo + g] >> 4));
    for (let ii = 0; ii < 16; ii++) {
      L[16 * g + ii] = clamp(nearestInt(fr(fr(x[xo + 16 * g + ii] + dm) / dg)), 0, 3);
    }
  }
  packTwoBit(L, out, oo + 16);
}

function dequantizeQ2K(src: Uint8Array, io: number, y: Float32Array, yo: number): void {
  const d = getF16(src, io + 80);
  const min = getF16(src, io + 82);
  for (let n = 0; n < QK_K; n += 128) {
    const q = io + 16 + n / 4;
    for (let j = 0; j < 4; j++) {
      for (let half = 0; half < 2; half++) {
        const sc = src[io + n / 16 + 2 * j + half];
        const dl = fr(d * (sc & 0xf));
        const ml = fr(min * (sc >> 4));
        for (let l = 16 * half; l < 16 * half + 16; l++) {
          y[yo + n + 32 * j + l] = fr(fr(dl * ((src[q + l] >> (2 * j)) & 3)) - ml);
        }
      }
    }
  }
}

export const Q2_K: QuantFormat = superBlockFormat('Q2_K', GGMLType.Q2_K, 84, quantizeQ2K, (src, io, y, yo) => dequantizeQ2K(src, io, y, yo));

function i8(b: number): number {
  return (b << 24) >> 24;
}

/** The scale searches, for tests. */
export const kquantInternals = { nearestInt, makeQkx2Quants, makeQxQuants, makeQ3Quants };

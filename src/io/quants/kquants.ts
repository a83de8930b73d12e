// The k-quants: 256-element super-blocks (specs/formats.md §2.3-2.7; ggml quantize_row_q{2..6}_K_ref
// and dequantize_row_q{2..6}_K). Without an importance matrix llama-quantize calls exactly these
// reference functions; every float operation below is rounded to float32 in C's order, so the bytes
// equal ggml's (tests/quants-ref.test.ts compares against bytes made by ggml, and
// tests/quants-identity.test.ts pins the bytes of every type).
//
// Speed (an export quantizes billions of weights): the scale searches try 16-21 candidate scales
// per group, and Math.fround costs two conversions, so the searches skip work whose result is
// known without changing any result: levels are re-evaluated only for elements near a rounding
// threshold, a candidate with the previous candidate's levels is skipped (its outcome depends
// only on its levels), the f32 sums restart from the first element whose level changed, and
// make_qkx2_quants' error sum is computed only when a rigorous lower bound cannot rule the
// candidate out. Scratch is typed arrays at module level (calls never overlap on one thread).

import { GGMLType, QK_K } from './ggml-types.ts';
import { checkDequantizeArgs, checkQuantizeArgs, getF16, putF16 } from './common.ts';
import type { QuantFormat } from './common.ts';

// Local, not imported: hot loops call it millions of times, and a module binding can cost a
// property load per call under some module loaders (vitest's runner: about 10x slower).
const fr = Math.fround;

const GROUP_MAX_EPS = fr(1e-15);
const F01 = fr(0.1);
/** 1.5·2^52: for |t| < 2^51, (t + M52) - M52 is t rounded to an integer, ties to even, in f64.
 * For an f32 t with |t| <= 4194303 that is exactly nearestInt(t) (the f64 sum is exact or, for
 * tiny t, far from a tie), without nearestInt's two conversions. */
const M52 = 6755399441055744;
/** Below (level + 0.5 - LEVEL_MARGIN) a product keeps its level: fround moves values under 64 by
 * at most 2^-19, so such a product cannot round up to the next level. */
const LEVEL_MARGIN = 2 ** -14;

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

/** The numerators of make_qkx2_quants' candidate scales: (rmin + rdelta·is) + nmax, in f32. */
function candidateNumerators(nmax: number, rmin: number, rdelta: number, nstep: number): Float64Array {
  const k = new Float64Array(nstep + 1);
  for (let is = 0; is <= nstep; is++) k[is] = fr(fr(rmin + fr(rdelta * is)) + nmax);
  return k;
}
const K_Q4 = candidateNumerators(15, -1, F01, 20);
const K_Q5 = candidateNumerators(31, -0.5, F01, 15);
const K_Q2 = candidateNumerators(3, -0.5, F01, 15);

// make_qkx2_quants scratch (groups of at most 32).
/** The group's weights, filled by the caller. */
const QW = new Float64Array(32);
const QX = new Float64Array(32);
/** w·x (exact in f64). */
const QWX = new Float64Array(32);
/** fr(x - min) for the current min. */
const QXM = new Float64Array(32);
/** Levels of the last candidate evaluated. */
const QLV = new Int32Array(32);
/** The level each element's cached terms (QT) were computed for; -1: none. */
const QTL = new Int32Array(32);
/** Per element: fr(w·l), fr(fr(w·l)·l), fr(fr(w·l)·x). */
const QT = new Float64Array(96);
/** The three f32 sums over elements 0..i-1 of the last candidate (at 3i). */
const QP = new Float64Array(99);
/** Per element: its level stays while iscale·xm < QTHR (see LEVEL_MARGIN). */
const QTHR = new Float64Array(32);
/** make_qkx2_quants' second result, -min. */
let qkx2Min = 0;

const U = 2 ** -24;
/** Absolute slack for f32 underflow (each rounding near 0 is off by at most 2^-150). */
const ETA = 2 ** -140;

/**
 * make_qkx2_quants: a scale and a min for x[xo..xo+n) with levels 0..nmax, searched over the
 * candidate scales K[is] / (max - min) with weighted least squares. Weights are in w[0..n).
 * Writes the levels to L[lo..lo+n) and -min (>= 0) to qkx2Min; returns the scale.
 */
function makeQkx2Quants(n: number, nmax: number, x: Float32Array, xo: number, w: Float64Array, L: Uint8Array, lo: number, K: Float64Array, useMad: boolean): number {
  const xs = QX;
  const wx = QWX;
  const xm = QXM;
  const lv = QLV;
  const tl = QTL;
  const tt = QT;
  const pp = QP;
  const thr = QTHR;
  const nstep = K.length - 1;
  let min = x[xo];
  let max = min;
  let sumW = w[0];
  let sumX = fr(sumW * min);
  xs[0] = min;
  wx[0] = sumW * min;
  // f64 sums Σw, Σw·x, Σw·x² for the pruning bounds (products exact or nearly).
  let a0 = sumW;
  let b0 = sumW * min;
  let c0 = sumW * min * min;
  for (let i = 1; i < n; i++) {
    const v = x[xo + i];
    const wi = w[i];
    xs[i] = v;
    wx[i] = wi * v;
    if (v < min) min = v;
    if (v > max) max = v;
    sumW = fr(sumW + wi);
    sumX = fr(sumX + fr(wi * v));
    a0 += wi;
    b0 += wi * v;
    c0 += wi * v * v;
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    qkx2Min = -min;
    return 0;
  }
  // `min` changes when a better candidate is found, and later candidates start from it (as in C).
  let range = fr(max - min);
  let iscale = fr(nmax / range);
  let scale = fr(1 / iscale);
  let bestError = 0;
  let xmMin = Infinity;
  for (let i = 0; i < n; i++) {
    const v = xs[i];
    const m = fr(v - min);
    xm[i] = m;
    if (m < xmMin) xmMin = m;
    const t = fr(iscale * m);
    let l = t + M52 - M52;
    if (!(t <= 4194303 && t >= -4194303)) l = nearestInt(t);
    l = l < 0 ? 0 : l > nmax ? nmax : l;
    L[lo + i] = l;
    let diff = fr(fr(fr(scale * l) + min) - v);
    diff = useMad ? Math.abs(diff) : fr(diff * diff);
    bestError = fr(bestError + fr(w[i] * diff));
  }
  if (nstep < 1) {
    qkx2Min = -min;
    return scale;
  }
  const canPrune = !useMad && a0 > 1e-20 && c0 > 1e-30 && a0 < 1e30 && c0 < 1e200 && Number.isFinite(b0);
  const sqA0C = Math.sqrt(a0 * c0);
  if (canPrune) setPruneGroup(a0, b0, c0, sqA0C, nmax);
  for (let i = 0; i < n; i++) {
    lv[i] = -1;
    tl[i] = -1;
  }
  pp[0] = 0;
  pp[1] = 0;
  pp[2] = 0;
  let fresh = false; // xm to be recomputed (min moved)
  let full = true; // every level to be computed (first candidate, or min moved)
  let dirty = 0; // the f32 sums in pp are stale from this element on
  // Σw·l, Σw·l², Σw·x·l of the current levels in f64 (exact terms; rounding bounded in preCannotBeat).
  let a1 = 0;
  let a2 = 0;
  let b1 = 0;
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(K[is] / range);
    // Levels. Within one min, iscale only grows, so an element with xm >= 0 keeps its level while
    // iscale·xm stays under its threshold, and one with xm < 0 stays at 0 (while the product is
    // within nearest_int's range).
    let first = n; // first element whose level differs from the last candidate's
    if (full || !(iscale * xmMin > -4194303)) {
      if (fresh) {
        xmMin = Infinity;
        for (let i = 0; i < n; i++) {
          const m = fr(xs[i] - min);
          xm[i] = m;
          if (m < xmMin) xmMin = m;
        }
        fresh = false;
      }
      full = false;
      a1 = 0;
      a2 = 0;
      b1 = 0;
      for (let i = n - 1; i >= 0; i--) {
        const t = fr(iscale * xm[i]);
        let l = t + M52 - M52;
        if (!(t <= 4194303 && t >= -4194303)) l = nearestInt(t);
        l = l < 0 ? 0 : l > nmax ? nmax : l;
        thr[i] = l === nmax ? Infinity : l + 0.5 - LEVEL_MARGIN;
        if (l !== lv[i]) {
          lv[i] = l;
          first = i;
        }
        const wl = w[i] * l;
        a1 += wl;
        a2 += wl * l;
        b1 += wx[i] * l;
      }
    } else {
      for (let i = n - 1; i >= 0; i--) {
        const p = iscale * xm[i]; // exact in f64: fr(p) is C's float product
        if (p >= thr[i]) {
          const t = fr(p);
          let l = t + M52 - M52;
          if (!(t <= 4194303 && t >= -4194303)) l = nearestInt(t);
          l = l < 0 ? 0 : l > nmax ? nmax : l;
          thr[i] = l === nmax ? Infinity : l + 0.5 - LEVEL_MARGIN;
          const old = lv[i];
          if (l !== old) {
            lv[i] = l;
            first = i;
            const dl = l - old;
            a1 += w[i] * dl;
            a2 += w[i] * (l * l - old * old);
            b1 += wx[i] * dl;
          }
        }
      }
    }
    // The last candidate's levels: the same sums, scale and error, so the same (no) change.
    if (first === n) continue;
    if (first < dirty) dirty = first;
    if (canPrune && preCannotBeat(a1, a2, b1, bestError)) continue;
    // Σw·l, Σw·l², Σw·l·x in f32, element order, from the first stale element on.
    let o = 3 * dirty;
    let sumL = pp[o];
    let sumL2 = pp[o + 1];
    let sumXL = pp[o + 2];
    for (let i = dirty; i < n; i++, o += 3) {
      const l = lv[i];
      if (l !== tl[i]) {
        tl[i] = l;
        const wl = fr(w[i] * l);
        tt[o] = wl;
        tt[o + 1] = fr(wl * l);
        tt[o + 2] = fr(wl * xs[i]);
      }
      sumL = fr(sumL + tt[o]);
      sumL2 = fr(sumL2 + tt[o + 1]);
      sumXL = fr(sumXL + tt[o + 2]);
      pp[o + 3] = sumL;
      pp[o + 4] = sumL2;
      pp[o + 5] = sumXL;
    }
    dirty = n;
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (!(D > 0)) continue;
    let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
    let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
    if (thisMin > 0) {
      thisMin = 0;
      thisScale = fr(sumXL / sumL2);
    }
    if (canPrune && errorCannotBeat(thisScale, thisMin, sumL, sumL2, sumXL, a0, b0, c0, sqA0C, bestError)) continue;
    let curError = 0;
    if (useMad) {
      for (let i = 0; i < n; i++) curError = fr(curError + fr(w[i] * Math.abs(fr(fr(fr(thisScale * lv[i]) + thisMin) - xs[i]))));
    } else {
      for (let i = 0; i < n; i++) {
        const diff = fr(fr(fr(thisScale * lv[i]) + thisMin) - xs[i]);
        curError = fr(curError + fr(w[i] * fr(diff * diff)));
      }
    }
    if (curError < bestError) {
      for (let i = 0; i < n; i++) L[lo + i] = lv[i];
      bestError = curError;
      scale = thisScale;
      if (thisMin !== min) {
        range = fr(max - thisMin);
        fresh = true;
        full = true;
      }
      min = thisMin;
    }
  }
  qkx2Min = -min;
  return scale;
}

const E40 = 2 ** -40;

// preCannotBeat's per-group constants (set by makeQkx2Quants before the candidates).
let pA0 = 0;
let pB0 = 0;
let pC0 = 0;
let pNmax = 0;
/** Largest possible a1 (a2 <= pS1·nmax). */
let pS1 = 0;
/** Bounds on the f64 errors of N and det (see below). */
let pDN = 0;
let pDDet = 0;
/** Bounds on |f32 ΣXL - b1| and |f32 ΣX - b0|. */
let pEB1 = 0;
let pEB0 = 0;
let pRootA0 = 0;

function setPruneGroup(a0: number, b0: number, c0: number, sqA0C: number, nmax: number): void {
  pA0 = a0;
  pB0 = b0;
  pC0 = c0;
  pNmax = nmax;
  pS1 = a0 * nmax;
  pDN = 32 * E40 * pS1 * pS1 * c0;
  pDDet = 16 * E40 * pS1 * pS1;
  pEB1 = 1.01 * (E40 + 40 * U) * nmax * sqA0C;
  pEB0 = (E40 + 40 * U) * sqA0C;
  pRootA0 = Math.sqrt(a0);
}

/**
 * True when a make_qkx2_quants candidate with these levels certainly has an f32 error sum >= best,
 * before its f32 sums are computed, from f64 sums a1 = Σw·l, a2 = Σw·l², b1 = Σw·x·l (each term
 * exact, at most ~700 roundings: within 2^-40 of its largest possible magnitude) and the group's
 * a0 = Σw, b0 = Σw·x, c0 = Σw·x² (n <= 32, weights >= 0, u = 2^-24):
 * - the candidate's (s, m) are some f32 values, so its exact error E(s, m) is at least the
 *   least-squares minimum E* = c0 - (a2·b0² - 2·a1·b0·b1 + a0·b1²)/det, det = a0·a2 - a1²;
 *   N = a2·b0² - ... and det are within 32·2^-40·S1²·c0 and 16·2^-40·S1² (S1 = a0·nmax);
 * - the f32 sums are within 36u of their exact values (relative to Σ|terms|; Σ|w·l·x| <=
 *   sqrt(a2·c0) <= nmax·sqrt(a0·c0)), so the f32 D is within 150u·a0·a2 of det: with
 *   det > 300u·a0·a2 (and det's f64 error under 1% of it), D >= 0.48·det, which bounds |s| and |m|
 *   (the f32 numerators by their terms' magnitudes, and s = ΣXL/ΣL2 <= ΣXL·a0/det when m is
 *   clamped to 0);
 * - each f32 diff is within 1.01u·(|d| + R) + 3·2^-150 of d, R = 2·nmax·|s| + |m|, so (as in
 *   errorCannotBeat) the f32 error is >= (1 - 40u)((1 - 2.02u)E - k·sqrt(E)) - slack,
 *   k = (2.02u·R + 6·2^-150)·sqrt(a0), which grows with E once sqrt(E) > k.
 */
function preCannotBeat(a1: number, a2: number, b1: number, best: number): boolean {
  const a0 = pA0;
  const b0 = pB0;
  const s1 = pS1;
  const det = a0 * a2 - a1 * a1;
  // Well conditioned, and levels not all ~0 (so a1, a2 dwarf their rounding).
  if (!(det > 300 * U * a0 * a2) || !(a1 > 1e-6 * s1) || !(a2 > 1e-6 * s1) || !(a2 > 1e-20) || !(pDDet < 0.01 * det)) return false;
  const inv = 1 / det;
  const ab0 = Math.abs(b0) + pEB0;
  const ab1 = Math.abs(b1) + pEB1;
  const Q = (a2 * b0 * b0 - 2 * a1 * b0 * b1 + a0 * b1 * b1) * inv;
  const aQ = Math.abs(Q);
  const eLo = pC0 - Q - 1.02 * (pDN + aQ * pDDet) * inv - E40 * (pC0 + aQ);
  if (!(eLo > 0)) return false;
  // Bounds on the f32 scale and min the candidate would get.
  const ts1 = 2.1 * 1.01 * (a0 * ab1 + 1.01 * ab0 * a1) * inv; // f32 D >= 0.48·det
  const ts2 = 1.03 * ab1 * a0 * inv;
  const R = 2 * pNmax * (ts1 > ts2 ? ts1 : ts2) + 2.1 * 1.0201 * (a2 * ab0 + a1 * ab1) * inv;
  const k = (2.02 * U * R + 6 * ETA) * pRootA0;
  const rootE = Math.sqrt(eLo);
  if (!(rootE > k)) return false;
  const lower = (1 - 40 * U) * ((1 - 2.02 * U) * eLo - k * rootE) - ETA * (a0 + 64);
  return lower >= best * (1 + E40);
}

/**
 * True when make_qkx2_quants' f32 error sum Σ w·(s·l + m - x)² for this candidate is certainly
 * >= best (so it is not taken), from the f32 sums sL = Σw·l, sL2 = Σw·l², sXL = Σw·l·x and the
 * f64 sums a0 = Σw, b0 = Σw·x, c0 = Σw·x² (weights >= 0, n <= 32, u = 2^-24):
 * - the exact E = s²A2 + 2sm·A1 + m²A0 - 2s·B1 - 2m·B0 + C, with A1, A2, B1 the f32 sums, each
 *   within 36u of Σ|terms| (Σ|w·l·x| <= sqrt(A2·C)), plus f64 rounding and underflow slack;
 * - each f32 diff is within u·(|d| + 2|s|l + |m|) of the exact d (three roundings), so
 *   Σw·diff² >= E - 2.02u·(E + sqrt(E)·G), G² = 4s²A2 + 4|sm|A1 + m²A0 (Cauchy-Schwarz);
 * - squaring, weighting and summing 32 non-negative terms lose at most a factor (1 - 34u).
 * The constants below are looser than these. Non-finite values never prune (NaN compares false).
 */
function errorCannotBeat(s: number, m: number, sL: number, sL2: number, sXL: number, a0: number, b0: number, c0: number, sqA0C: number, best: number): boolean {
  const as = Math.abs(s);
  const am = Math.abs(m);
  const q2 = s * s * sL2;
  const q1 = 2 * as * am * sL;
  const qx = 2 * as * Math.sqrt(sL2 * c0);
  const E = s * s * sL2 + 2 * s * m * sL + m * m * a0 - 2 * s * sXL - 2 * m * b0 + c0;
  const T = q2 + q1 + m * m * a0 + qx + 2 * am * sqA0C + c0;
  const errE = 64 * 1.01 * U * (q2 + q1 + qx) + 1e-12 * T + ETA * (1 + s * s + 2 * as * am + 2 * as);
  const eLo = E - errE;
  if (!(eLo > 0)) return false;
  const eHi = E + errE;
  const G = 1.01 * Math.sqrt(4 * q2 + 2 * q1 + m * m * a0);
  const lower = (1 - 64 * U) * ((1 - 8 * U) * eLo - 8 * U * Math.sqrt(eHi) * G - 16 * ETA * Math.sqrt(eHi * a0)) - 200 * ETA * (1 + a0);
  return lower >= best;
}

// make_qx_quants scratch (Q6_K: groups of 16, nmax 32).
const XW = new Float64Array(16); // fr(x²)
const XWX = new Float64Array(16); // fr(fr(x²)·x)
const XAX = new Float64Array(16); // |x|
const XLV = new Int32Array(16);
const XTL = new Int32Array(16);
const XT = new Float64Array(32); // per element: fr(fr(x²·x)·l), fr(fr(x²·l)·l)
const XP = new Float64Array(34);
/** The 18 candidate scales of a group, and their magnitudes (non-decreasing). */
const XC = new Float64Array(18);
const XAC = new Float64Array(18);
/** Elements whose level may change at candidate j: a list from XHEAD[j] through XNEXT. */
const XHEAD = new Int32Array(18);
const XNEXT = new Int32Array(16);
/** -(nmax + 0.1·is) in f32 for is = -9..-1, 1..9, nmax = 32. */
const K_Q6 = (() => {
  const k = new Float64Array(18);
  for (let j = 0; j < 18; j++) {
    const is = j < 9 ? j - 9 : j - 8;
    k[j] = -fr(32 + fr(F01 * is));
  }
  return k;
})();

/**
 * make_qx_quants with rmse_type 1 and no importance weights (weights x²), n = 16, nmax = 32: a
 * signed scale for levels -32..31, refined over 18 candidate scales. Writes levels + 32 to L;
 * returns the scale.
 */
function makeQxQuants(x: Float32Array, xo: number, L: Uint8Array, lo: number): number {
  const n = 16;
  const nmax = 32;
  const ww = XW;
  const wx = XWX;
  const ax = XAX;
  const lv = XLV;
  const tl = XTL;
  const tt = XT;
  const pp = XP;
  const cs = XC;
  const acs = XAC;
  const head = XHEAD;
  const next = XNEXT;
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
  // The first candidate (iscale = -nmax/max), from scratch; its levels and sums seed the others.
  let iscale = fr(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  pp[0] = 0;
  pp[1] = 0;
  for (let i = 0, o = 0; i < n; i++, o += 2) {
    const v = x[xo + i];
    const w = fr(v * v);
    const wv = fr(w * v);
    ww[i] = w;
    wx[i] = wv;
    ax[i] = Math.abs(v);
    const t = fr(iscale * v);
    let l = t + M52 - M52;
    if (!(t <= 4194303 && t >= -4194303)) l = nearestInt(t);
    l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
    L[lo + i] = l + nmax;
    lv[i] = l;
    tl[i] = l;
    tt[o] = fr(wv * l);
    tt[o + 1] = fr(fr(w * l) * l);
    sumlx = fr(sumlx + tt[o]);
    suml2 = fr(suml2 + tt[o + 1]);
    pp[o + 2] = sumlx;
    pp[o + 3] = suml2;
  }
  let scale = suml2 !== 0 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  // f64 sums of the current levels for the pruning bound: Σwv·l, Σw·l², Σ|wv·l| (exact terms).
  let tx = 0;
  let t2 = 0;
  let txa = 0;
  let sumAbsWx = 0;
  let sumW = 0;
  for (let i = 0; i < n; i++) {
    const l = lv[i];
    tx += wx[i] * l;
    t2 += ww[i] * l * l;
    txa += Math.abs(wx[i] * l);
    sumAbsWx += Math.abs(wx[i]);
    sumW += ww[i];
  }
  // Prune only away from f32 underflow and overflow (w = x² and x³ stay normal floats).
  const canPrune = amax >= 1e-6 && amax <= 1e9;
  // Bounds on the f64 sums' rounding (a few hundred roundings of sums of at most these).
  const eTx = E40 * 32 * sumAbsWx;
  const eT2 = E40 * 1024 * sumW;
  let dirty = n; // the f32 sums in pp are stale from this element on
  // Candidates is = -9..-1, 1..9 (j = 0..17): |iscale| never shrinks, so |iscale·x| only grows and
  // a level only moves away from 0, once |iscale·x| reaches its threshold. Candidate 0 evaluates
  // every element; later ones only those whose threshold they reach (each element waits in the
  // list of the first candidate that reaches it).
  for (let j = 0; j < 18; j++) {
    const c = fr(K_Q6[j] / max);
    cs[j] = c;
    acs[j] = Math.abs(c);
    head[j] = -1;
  }
  for (let j = 0; j < 18; j++) {
    iscale = cs[j];
    let first = n;
    let i = j === 0 ? n - 1 : head[j];
    while (i >= 0) {
      const following = j === 0 ? i - 1 : next[i];
      const t = fr(iscale * x[xo + i]);
      let l = t + M52 - M52;
      if (!(t <= 4194303 && t >= -4194303)) l = nearestInt(t);
      l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
      const old = lv[i];
      if (l !== old) {
        lv[i] = l;
        if (i < first) first = i;
        tx += wx[i] * (l - old);
        t2 += ww[i] * (l * l - old * old);
        txa += Math.abs(wx[i]) * (Math.abs(l) - Math.abs(old));
      }
      // Queue the element for the first later candidate whose |iscale·x| reaches the level's
      // threshold, if one does (lists of later candidates only: this one is not disturbed).
      if (l !== -nmax && l !== nmax - 1) {
        const th = Math.abs(l) + 0.5 - LEVEL_MARGIN;
        const a = ax[i];
        if (acs[17] * a >= th) {
          let k = j + 1;
          let hi = 17;
          while (k < hi) {
            const mid = (k + hi) >> 1;
            if (acs[mid] * a >= th) hi = mid;
            else k = mid + 1;
          }
          next[i] = head[k];
          head[k] = i;
        }
      }
      i = following;
    }
    // The last candidate's levels: the same sums, so the same (no) change.
    if (first === n) continue;
    if (first < dirty) dirty = first;
    // Not taken when ΣXL² < best·ΣL2 for the f32 sums whatever their rounding (then rounding the
    // two products, a monotone map, cannot order them the other way): each f32 sum is within 36u
    // of its exact value relative to Σ|terms|, plus underflow slack.
    if (canPrune && best > 0) {
      const hi = Math.abs(tx) + 36 * U * txa + eTx + 64 * ETA;
      const lo2 = t2 * (1 - 36 * U) - eT2 - 64 * ETA;
      if (hi * hi * (1 + 2 * U) < best * lo2 * (1 - 2 * U)) continue;
    }
    let o = 2 * dirty;
    sumlx = pp[o];
    suml2 = pp[o + 1];
    for (let e = dirty; e < n; e++, o += 2) {
      const l = lv[e];
      if (l !== tl[e]) {
        tl[e] = l;
        tt[o] = fr(wx[e] * l);
        tt[o + 1] = fr(fr(ww[e] * l) * l);
      }
      sumlx = fr(sumlx + tt[o]);
      suml2 = fr(suml2 + tt[o + 1]);
      pp[o + 2] = sumlx;
      pp[o + 3] = suml2;
    }
    dirty = n;
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let e = 0; e < n; e++) L[lo + e] = nmax + lv[e];
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

// make_q3_quants scratch (groups of 16).
const Q3W = new Float64Array(16); // fr(x²)
const Q3WX = new Float64Array(16); // fr(fr(x²)·x)

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
  const ww = Q3W;
  const wx = Q3WX;
  const iscale = fr(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i];
    const t = fr(iscale * v);
    let l = t + M52 - M52;
    if (!(t <= 4194303 && t >= -4194303)) l = nearestInt(t);
    l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
    L[lo + i] = l;
    const w = fr(v * v);
    const wv = fr(w * v);
    ww[i] = w;
    wx[i] = wv;
    sumlx = fr(sumlx + fr(wv * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const w = ww[i];
      const wv = wx[i];
      const li = L[lo + i];
      let slx = fr(sumlx - fr(wv * li));
      if (slx > 0) {
        let sl2 = fr(suml2 - fr(fr(w * li) * li));
        const t = fr(fr(x[xo + i] * sl2) / slx);
        let newL = t + M52 - M52;
        if (!(t <= 4194303 && t >= -4194303)) newL = nearestInt(t);
        newL = newL < -nmax ? -nmax : newL > nmax - 1 ? nmax - 1 : newL;
        if (newL !== li) {
          slx = fr(slx + fr(wv * newL));
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

// Super-block scratch.
const SB_L = new Uint8Array(QK_K);
const SB_LS = new Int8Array(QK_K);
const SB_SCALES = new Float64Array(16);
const SB_MINS = new Float64Array(16);
const SB_LSC = new Uint8Array(8);
const SB_LMN = new Uint8Array(8);
const SB_SUMX2 = new Float64Array(8);

// ---------------------------------------------------------------------------------------------
// Q4_K / Q5_K: { f16 d; f16 dmin; u8 scales[12]; [u8 qh[32];] u8 qs[128] }

function quantizeQ45K(x: Float32Array, xo: number, out: Uint8Array, oo: number, five: boolean): void {
  const nmax = five ? 31 : 15;
  const K = five ? K_Q5 : K_Q4;
  const L = SB_L;
  const weights = QW;
  const scales = SB_SCALES;
  const mins = SB_MINS;
  const ls = SB_LSC;
  const lm = SB_LMN;
  let maxScale = 0;
  let maxMin = 0;
  // Σx² of the 8 sub-blocks side by side: eight independent f32 sums instead of one after another
  // (each rounded add waits for the last).
  let q0 = 0;
  let q1 = 0;
  let q2 = 0;
  let q3 = 0;
  let q4 = 0;
  let q5 = 0;
  let q6 = 0;
  let q7 = 0;
  for (let l = xo; l < xo + 32; l++) {
    const v0 = x[l];
    const v1 = x[l + 32];
    const v2 = x[l + 64];
    const v3 = x[l + 96];
    const v4 = x[l + 128];
    const v5 = x[l + 160];
    const v6 = x[l + 192];
    const v7 = x[l + 224];
    q0 = fr(q0 + fr(v0 * v0));
    q1 = fr(q1 + fr(v1 * v1));
    q2 = fr(q2 + fr(v2 * v2));
    q3 = fr(q3 + fr(v3 * v3));
    q4 = fr(q4 + fr(v4 * v4));
    q5 = fr(q5 + fr(v5 * v5));
    q6 = fr(q6 + fr(v6 * v6));
    q7 = fr(q7 + fr(v7 * v7));
  }
  const sumX2 = SB_SUMX2;
  sumX2[0] = q0;
  sumX2[1] = q1;
  sumX2[2] = q2;
  sumX2[3] = q3;
  sumX2[4] = q4;
  sumX2[5] = q5;
  sumX2[6] = q6;
  sumX2[7] = q7;
  for (let j = 0; j < 8; j++) {
    const so = xo + 32 * j;
    const avX = fr(Math.sqrt(fr(sumX2[j] / 32)));
    for (let l = 0; l < 32; l++) weights[l] = fr(avX + Math.abs(x[so + l]));
    const sc = makeQkx2Quants(32, nmax, x, so, weights, L, 32 * j, K, false);
    const mn = qkx2Min;
    scales[j] = sc;
    mins[j] = mn;
    if (sc > maxScale) maxScale = sc;
    if (mn > maxMin) maxMin = mn;
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
    // ls/lm (< 64) are exactly what the packed bytes give back.
    const dj = fr(d * ls[j]);
    if (dj === 0) continue;
    const dm = fr(dmin * lm[j]);
    const so = xo + 32 * j;
    for (let ii = 0; ii < 32; ii++) {
      const t = fr(fr(x[so + ii] + dm) / dj);
      let l = t + M52 - M52;
      if (!(t <= 4194303 && t >= -4194303)) l = nearestInt(t);
      L[32 * j + ii] = l < 0 ? 0 : l > nmax ? nmax : l;
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

// ---------------------------------------------------------------------------------------------
// Q6_K: { u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d }

function quantizeQ6K(x: Float32Array, xo: number, out: Uint8Array, oo: number): void {
  const L = SB_L;
  const scales = SB_SCALES;
  let maxScale = 0;
  let maxAbsScale = 0;
  for (let g = 0; g < 16; g++) {
    const scale = makeQxQuants(x, xo + 16 * g, L, 16 * g);
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
    const go = xo + 16 * g;
    for (let ii = 0; ii < 16; ii++) {
      const t = fr(x[go + ii] / dg);
      let l = t + M52 - M52;
      if (!(t <= 4194303 && t >= -4194303)) l = nearestInt(t);
      L[16 * g + ii] = (l < -32 ? -32 : l > 31 ? 31 : l) + 32;
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

// ---------------------------------------------------------------------------------------------
// Q3_K: { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d }

function quantizeQ3K(x: Float32Array, xo: number, out: Uint8Array, oo: number): void {
  const L = SB_LS;
  const scales = SB_SCALES;
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
      l = l < -32 ? -32 : l > 31 ? 31 : l;
      l += 32;
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
    const go = xo + 16 * g;
    for (let ii = 0; ii < 16; ii++) {
      const t = fr(x[go + ii] / dg);
      let l = t + M52 - M52;
      if (!(t <= 4194303 && t >= -4194303)) l = nearestInt(t);
      L[16 * g + ii] = (l < -4 ? -4 : l > 3 ? 3 : l) + 4;
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

// ---------------------------------------------------------------------------------------------
// Q2_K: { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin }

function quantizeQ2K(x: Float32Array, xo: number, out: Uint8Array, oo: number): void {
  const L = SB_L;
  const weights = QW;
  const scales = SB_SCALES;
  const mins = SB_MINS;
  let maxScale = 0;
  let maxMin = 0;
  for (let g = 0; g < 16; g++) {
    const go = xo + 16 * g;
    for (let l = 0; l < 16; l++) weights[l] = Math.abs(x[go + l]);
    const sc = makeQkx2Quants(16, 3, x, go, weights, L, 16 * g, K_Q2, true);
    const mn = qkx2Min;
    scales[g] = sc;
    mins[g] = mn;
    if (sc > maxScale) maxScale = sc;
    if (mn > maxMin) maxMin = mn;
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
    const go = xo + 16 * g;
    for (let ii = 0; ii < 16; ii++) {
      const t = fr(fr(x[go + ii] + dm) / dg);
      let l = t + M52 - M52;
      if (!(t <= 4194303 && t >= -4194303)) l = nearestInt(t);
      L[16 * g + ii] = l < 0 ? 0 : l > 3 ? 3 : l;
    }
  }
  packTwoBit(L, out, oo + 16);
}

// ---------------------------------------------------------------------------------------------
// Dequantizers

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

function i8(b: number): number {
  return (b << 24) >> 24;
}

function superBlockFormat(
  name: string,
  type: number,
  typeSize: number,
  quantizeRow: (src: Float32Array, out: Uint8Array) => void,
  dequantizeBlock: (src: Uint8Array, io: number, y: Float32Array, yo: number, sm: Uint8Array) => void,
): QuantFormat {
  return {
    type,
    name,
    blockSize: QK_K,
    typeSize,
    quantize(src, dst) {
      const out = checkQuantizeArgs(name, QK_K, typeSize, src, dst);
      quantizeRow(src, out);
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

// One loop per type, so that each block call site sees one function.
export const Q4_K: QuantFormat = superBlockFormat(
  'Q4_K',
  GGMLType.Q4_K,
  144,
  (x, out) => {
    for (let xo = 0, oo = 0; xo < x.length; xo += QK_K, oo += 144) quantizeQ45K(x, xo, out, oo, false);
  },
  (src, io, y, yo, sm) => dequantizeQ45K(src, io, y, yo, sm, false),
);

export const Q5_K: QuantFormat = superBlockFormat(
  'Q5_K',
  GGMLType.Q5_K,
  176,
  (x, out) => {
    for (let xo = 0, oo = 0; xo < x.length; xo += QK_K, oo += 176) quantizeQ45K(x, xo, out, oo, true);
  },
  (src, io, y, yo, sm) => dequantizeQ45K(src, io, y, yo, sm, true),
);

export const Q6_K: QuantFormat = superBlockFormat(
  'Q6_K',
  GGMLType.Q6_K,
  210,
  (x, out) => {
    for (let xo = 0, oo = 0; xo < x.length; xo += QK_K, oo += 210) quantizeQ6K(x, xo, out, oo);
  },
  (src, io, y, yo) => dequantizeQ6K(src, io, y, yo),
);

export const Q3_K: QuantFormat = superBlockFormat(
  'Q3_K',
  GGMLType.Q3_K,
  110,
  (x, out) => {
    for (let xo = 0, oo = 0; xo < x.length; xo += QK_K, oo += 110) quantizeQ3K(x, xo, out, oo);
  },
  (src, io, y, yo) => dequantizeQ3K(src, io, y, yo),
);

export const Q2_K: QuantFormat = superBlockFormat(
  'Q2_K',
  GGMLType.Q2_K,
  84,
  (x, out) => {
    for (let xo = 0, oo = 0; xo < x.length; xo += QK_K, oo += 84) quantizeQ2K(x, xo, out, oo);
  },
  (src, io, y, yo) => dequantizeQ2K(src, io, y, yo),
);

/** For tests. */
export const kquantInternals = { nearestInt };

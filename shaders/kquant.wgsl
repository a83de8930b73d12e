// ggml's reference quantizers Q4_K, Q5_K, Q6_K and Q8_0 on the GPU, for GGUF export. The CPU
// versions (src/io/quants/kquants.ts, legacy.ts) give ggml's bytes; these follow the same C code
// operation for operation, so that they give the same bytes too (src/engine/kquant-gpu.ts says how
// close they come, and what happens to the blocks they cannot do).
//
// Two passes for the k-quants (one invocation per unit of work each, no barriers):
//   *_search  one 32-element sub-block (Q4_K/Q5_K: make_qkx2_quants) or 16-element group (Q6_K:
//             make_qx_quants): its scale (and min), and the scale and min its levels came from, so
//             that the pack pass can recompute those levels where ggml keeps them (a sub-block
//             whose 6/8-bit scale rounds to 0)
//   *_pack    one super-block (Q4_K, Q5_K) or two (Q6_K: 210 bytes, two make whole words): the
//             super-block scales, the final levels, the block bytes
// Q8_0 is one pass, two 32-blocks (68 bytes) per invocation.
//
// Bytes come out as little-endian u32 words, blocks back to back as in the file. After the block
// words, `flags_at` onwards: one word per pack invocation, 1 when one of its blocks holds a value
// outside what this code reproduces exactly — a non-finite or subnormal value, or a group whose
// largest |x| is not 0 and under 2^-20 or at least 2^16 (where products would underflow to
// subnormals, which a GPU may flush to zero, or overflow) — and the host quantizes those blocks on
// the CPU instead.
//
// Exactness. WGSL rounds +, -, * correctly, but a compiler may fuse a product into the add that
// follows (an FMA rounds once where ggml rounds twice), its division is only within 2.5 ULP, sqrt
// is loose too, and f32 -> f16 may round either way. So: every product that feeds an add or a
// subtract goes through nf(), which XORs its bits with a uniform that is 0 at run time (a compiler
// cannot fuse through it); division and square root are done on the integer significands
// (div_rn, sqrt_rn: correctly rounded, as C's); f16 conversions work on bit patterns; nearest_int
// is round-half-even (round()) inside ±4194303, as ggml's bit trick is there.

struct Params { groups: u32, units: u32, flags_at: u32, zero: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> sm: array<u32>;
@group(0) @binding(2) var<storage, read_write> words: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

// Q4_K / Q5_K search: levels 0..NMAX, candidates (RMIN + RDELTA*is) + NMAX for is = 0..NSTEP.
override NMAX: f32 = 15.0;
override RMIN: f32 = -1.0;
override NSTEP: u32 = 20u;
// Q4_K / Q5_K pack: Q5_K's layout (qh + ql) instead of Q4_K's (qs).
override FIVE: bool = false;

const WG = 64u;
const GROUP_MAX_EPS = 1e-15;
/** Bits of 2^-20 and 2^16: a group with its largest |x| outside [2^-20, 2^16) (and not 0) goes to the CPU. */
const TINY_BITS = 0x35800000u;
const HUGE_BITS = 0x47800000u;

fn flat_index(wg: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wg.y * nwg.x + wg.x) * WG + lid.x;
}

/** v unchanged, opaque to the compiler: stops it fusing the product v into a following add. */
fn nf(v: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(v) ^ p.zero);
}

/** Whether a (finite, normal) f32 is safe for the integer paths: exponent field 1..254. */
fn is_normal(b: u32) -> bool {
  let e = (b >> 23u) & 0xffu;
  return e != 0u && e != 255u;
}

/**
 * a / b correctly rounded (ties to even), from the 24-bit significands by long division. Zero,
 * subnormal or non-finite operands, and results outside the normal range, take the GPU's own
 * division (the blocks sent here never need them: see the header).
 */
fn div_rn(a: f32, b: f32) -> f32 {
  let ab = bitcast<u32>(a);
  let bb = bitcast<u32>(b);
  let sign = (ab ^ bb) & 0x80000000u;
  if ((ab & 0x7fffffffu) == 0u && is_normal(bb)) { return bitcast<f32>(sign); }
  if (!is_normal(ab) || !is_normal(bb)) { return a / b; }
  let ma = (ab & 0x7fffffu) | 0x800000u;
  let mb = (bb & 0x7fffffu) | 0x800000u;
  var e = i32((ab >> 23u) & 0xffu) - i32((bb >> 23u) & 0xffu) + 127;
  var rem = ma;
  if (ma < mb) {
    rem = ma << 1u;
    e -= 1;
  }
  // rem in [mb, 2mb): 24 quotient bits, the first one 1.
  var q = 0u;
  for (var i = 0u; i < 24u; i++) {
    q = q << 1u;
    if (rem >= mb) {
      rem -= mb;
      q |= 1u;
    }
    rem = rem << 1u;
  }
  // rem is now twice the remainder: above mb rounds up, equal is a tie.
  if (rem > mb || (rem == mb && (q & 1u) == 1u)) { q += 1u; }
  if (e < 1 || e > 254) { return a / b; }
  // q = 2^24 after rounding carries into the exponent.
  return bitcast<f32>(sign | ((u32(e - 1) << 23u) + q));
}

/** sqrt(v) correctly rounded, v >= 0, by the digit-by-digit integer square root; 0 and non-normal v take the GPU's. */
fn sqrt_rn(v: f32) -> f32 {
  let b = bitcast<u32>(v);
  if (!is_normal(b) || (b & 0x80000000u) != 0u) { return sqrt(v); }
  let m = (b & 0x7fffffu) | 0x800000u;
  let e = i32((b >> 23u) & 0xffu) - 127;
  // v = m * 2^(e-23); the radicand R = m * 2^23 (e even) or m * 2^24 (e odd) has a 24-bit root.
  let odd = (e & 1) != 0;
  let half = (e - select(0, 1, odd)) / 2;
  let shift = select(23u, 24u, odd);
  let hi = m >> (32u - shift);
  let lo = m << shift;
  var rem = 0u;
  var root = 0u;
  for (var i = 0u; i < 24u; i++) {
    let pos = 46u - 2u * i;
    var two: u32;
    if (pos >= 32u) { two = (hi >> (pos - 32u)) & 3u; } else { two = (lo >> pos) & 3u; }
    rem = (rem << 2u) | two;
    let trial = (root << 2u) | 1u;
    root = root << 1u;
    if (rem >= trial) {
      rem -= trial;
      root |= 1u;
    }
  }
  // R - root^2 > root: R is above (root + 1/2)^2 (never equal: that is not an integer).
  if (rem > root) { root += 1u; }
  return bitcast<f32>((u32(half + 126) << 23u) + root);
}

/** ggml nearest_int: round half to even within ±4194303, its bit trick outside. */
fn nearest_int(f: f32) -> i32 {
  if (abs(f) <= 4194303.0) { return i32(round(f)); }
  return i32(bitcast<u32>(nf(f) + 12582912.0) & 0x7fffffu) - 0x400000;
}

/** f32 -> f16 bits, round to nearest even (src/io/dtype.ts f16FromF32Bits). */
fn f16_bits(v: f32) -> u32 {
  let bits = bitcast<u32>(v);
  let sign = (bits >> 16u) & 0x8000u;
  let exp = i32((bits >> 23u) & 0xffu);
  let mant = bits & 0x7fffffu;
  if (exp == 255) { return select(sign | 0x7e00u | (mant >> 13u), sign | 0x7c00u, mant == 0u); }
  let e = exp - 127 + 15;
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    let m = mant | 0x800000u;
    let shift = u32(14 - e);
    let halfway = 1u << (shift - 1u);
    let rem = m & ((1u << shift) - 1u);
    var r = m >> shift;
    if (rem > halfway || (rem == halfway && (r & 1u) == 1u)) { r += 1u; }
    return sign | r;
  }
  var r = (u32(e) << 10u) | (mant >> 13u);
  let rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u) == 1u)) { r += 1u; }
  return sign | r;
}

/** f16 bits -> its value (exact). */
fn f16_value(h: u32) -> f32 {
  let sign = (h & 0x8000u) << 16u;
  let exp = (h >> 10u) & 0x1fu;
  var mant = h & 0x3ffu;
  if (exp == 31u) { return bitcast<f32>(sign | 0x7f800000u | (mant << 13u)); }
  if (exp == 0u) {
    if (mant == 0u) { return bitcast<f32>(sign); }
    var e = 127u - 14u;
    while ((mant & 0x400u) == 0u) {
      mant = mant << 1u;
      e -= 1u;
    }
    return bitcast<f32>(sign | (e << 23u) | ((mant & 0x3ffu) << 13u));
  }
  return bitcast<f32>(sign | ((exp + 112u) << 23u) | (mant << 13u));
}

/** 1 when elements [o, o + n) hold a group (of `group`) that the GPU path does not take (see the header). */
fn needs_cpu(o: u32, n: u32, group: u32) -> u32 {
  for (var g = 0u; g < n; g += group) {
    var amax = 0u;
    for (var i = 0u; i < group; i++) {
      let a = bitcast<u32>(x[o + g + i]) & 0x7fffffffu;
      if (a != 0u && a < 0x800000u) { return 1u; } // a subnormal, which the GPU may read as 0
      amax = max(amax, a);
    }
    if ((amax != 0u && amax < TINY_BITS) || amax >= HUGE_BITS) { return 1u; }
  }
  return 0u;
}

// ---------------------------------------------------------------------------------------------
// Output bytes: a pack invocation builds its words here, then stores them.

var<private> ob: array<u32, 105>;

fn ob_clear(n: u32) {
  for (var i = 0u; i < n; i++) { ob[i] = 0u; }
}

/** ORs byte value v into byte k of the invocation's output. */
fn put(k: u32, v: u32) {
  ob[k >> 2u] |= (v & 0xffu) << (8u * (k & 3u));
}

fn put_f16(k: u32, h: u32) {
  put(k, h);
  put(k + 1u, h >> 8u);
}

fn ob_store(at: u32, n: u32) {
  for (var i = 0u; i < n; i++) { words[at + i] = ob[i]; }
}

// ---------------------------------------------------------------------------------------------
// Q4_K / Q5_K: make_qkx2_quants per 32-element sub-block (sm: 4 words per sub-block)

/** clamp(nearest_int(iscale * (v - mn)), 0, nmax) as a float. */
fn level_k(iscale: f32, v: f32, mn: f32) -> f32 {
  return f32(clamp(nearest_int(iscale * (v - mn)), 0, i32(NMAX)));
}

@compute @workgroup_size(WG)
fn qkx2_search(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = flat_index(wg, nwg, lid);
  if (g >= p.groups) { return; }
  let o = g * 32u;
  // quantize_row_q{4,5}_K_ref: weights av_x + |x|, av_x = sqrt(Σx²/32) (dividing by 32 is exact).
  var sum_x2 = 0.0;
  for (var i = 0u; i < 32u; i++) {
    let v = x[o + i];
    sum_x2 = sum_x2 + nf(v * v);
  }
  let av_x = sqrt_rn(sum_x2 * 0.03125);
  // make_qkx2_quants(32, nmax, x, weights, L, &min, Laux, rmin, 0.1, nstep, false)
  let x0 = x[o];
  var mn = x0;
  var mx = x0;
  var sum_w = av_x + abs(x0);
  var sum_x = nf(sum_w * x0);
  for (var i = 1u; i < 32u; i++) {
    let v = x[o + i];
    if (v < mn) { mn = v; }
    if (v > mx) { mx = v; }
    let w = av_x + abs(v);
    sum_w = sum_w + w;
    sum_x = sum_x + nf(w * v);
  }
  if (mn > 0.0) { mn = 0.0; }
  if (mx == mn) {
    // All levels 0 (a zero iscale gives them back), min -mn.
    sm[4u * g] = 0u;
    sm[4u * g + 1u] = bitcast<u32>(-mn);
    sm[4u * g + 2u] = 0u;
    sm[4u * g + 3u] = 0u;
    return;
  }
  var iscale = div_rn(NMAX, mx - mn);
  var scale = div_rn(1.0, iscale);
  var best = 0.0;
  for (var i = 0u; i < 32u; i++) {
    let v = x[o + i];
    let diff = (nf(scale * level_k(iscale, v, mn)) + mn) - v;
    best = best + nf((av_x + abs(v)) * (diff * diff));
  }
  // The levels kept so far are those of (liscale, lmin).
  var liscale = iscale;
  var lmin = mn;
  for (var is = 0u; is <= NSTEP; is++) {
    iscale = div_rn((RMIN + nf(0.1 * f32(is))) + NMAX, mx - mn);
    var sl = 0.0;
    var sl2 = 0.0;
    var sxl = 0.0;
    for (var i = 0u; i < 32u; i++) {
      let v = x[o + i];
      let l = level_k(iscale, v, mn);
      let wl = nf((av_x + abs(v)) * l);
      sl = sl + wl;
      sl2 = sl2 + nf(wl * l);
      sxl = sxl + nf(wl * v);
    }
    let D = nf(sum_w * sl2) - nf(sl * sl);
    if (D > 0.0) {
      var ts = div_rn(nf(sum_w * sxl) - nf(sum_x * sl), D);
      var tm = div_rn(nf(sl2 * sum_x) - nf(sl * sxl), D);
      if (tm > 0.0) {
        tm = 0.0;
        ts = div_rn(sxl, sl2);
      }
      var cur = 0.0;
      for (var i = 0u; i < 32u; i++) {
        let v = x[o + i];
        let diff = (nf(ts * level_k(iscale, v, mn)) + tm) - v;
        cur = cur + nf((av_x + abs(v)) * (diff * diff));
      }
      if (cur < best) {
        best = cur;
        scale = ts;
        liscale = iscale;
        lmin = mn;
        mn = tm;
      }
    }
  }
  sm[4u * g] = bitcast<u32>(scale);
  sm[4u * g + 1u] = bitcast<u32>(-mn);
  sm[4u * g + 2u] = bitcast<u32>(liscale);
  sm[4u * g + 3u] = bitcast<u32>(lmin);
}

@compute @workgroup_size(WG)
fn qkx2_pack(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = flat_index(wg, nwg, lid);
  if (b >= p.units) { return; }
  let o = b * 256u;
  let so = b * 32u; // 8 sub-blocks x 4 words
  let nw = select(36u, 44u, FIVE);
  words[p.flags_at + b] = needs_cpu(o, 256u, 32u);
  var scales: array<f32, 8>;
  var mins: array<f32, 8>;
  var max_scale = 0.0;
  var max_min = 0.0;
  for (var j = 0u; j < 8u; j++) {
    scales[j] = bitcast<f32>(sm[so + 4u * j]);
    mins[j] = bitcast<f32>(sm[so + 4u * j + 1u]);
    if (scales[j] > max_scale) { max_scale = scales[j]; }
    if (mins[j] > max_min) { max_min = mins[j]; }
  }
  let inv_scale = select(0.0, div_rn(63.0, max_scale), max_scale > 0.0);
  let inv_min = select(0.0, div_rn(63.0, max_min), max_min > 0.0);
  var ls: array<u32, 8>;
  var lm: array<u32, 8>;
  ob_clear(nw);
  for (var j = 0u; j < 8u; j++) {
    // uint8_t, then MIN(63, ·)
    ls[j] = min(63u, u32(nearest_int(inv_scale * scales[j])) & 0xffu);
    lm[j] = min(63u, u32(nearest_int(inv_min * mins[j])) & 0xffu);
    if (j < 4u) {
      put(4u + j, ls[j]);
      put(8u + j, lm[j]);
    } else {
      put(8u + j, (ls[j] & 0xfu) | ((lm[j] & 0xfu) << 4u));
      put(j, (ls[j] >> 4u) << 6u);
      put(4u + j, (lm[j] >> 4u) << 6u);
    }
  }
  let dh = f16_bits(div_rn(max_scale, 63.0));
  let mh = f16_bits(div_rn(max_min, 63.0));
  put_f16(0u, dh);
  put_f16(2u, mh);
  let d = f16_value(dh);
  let dmin = f16_value(mh);
  for (var j = 0u; j < 8u; j++) {
    let dj = d * f32(ls[j]);
    let dm = nf(dmin * f32(lm[j]));
    let lis = bitcast<f32>(sm[so + 4u * j + 2u]);
    let lmn = bitcast<f32>(sm[so + 4u * j + 3u]);
    for (var i = 0u; i < 32u; i++) {
      let v = x[o + 32u * j + i];
      var l: u32;
      // A zero scale keeps make_qkx2_quants' levels (ggml: `if (!d) continue;`).
      if (dj == 0.0) { l = u32(level_k(lis, v, lmn)); } else { l = u32(clamp(nearest_int(div_rn(v + dm, dj)), 0, i32(NMAX))); }
      // Element 64c + i (c = j/2) shares byte i of chunk c with 64c + 32 + i: low nibble, high nibble.
      let c = j >> 1u;
      let hi = (j & 1u) * 4u;
      if (FIVE) {
        if (l > 15u) { put(16u + i, 1u << (2u * c + (j & 1u))); }
        put(48u + 32u * c + i, (l & 0xfu) << hi);
      } else {
        put(16u + 32u * c + i, l << hi);
      }
    }
  }
  ob_store(b * nw, nw);
}

// ---------------------------------------------------------------------------------------------
// Q6_K: make_qx_quants(16, 32, x, L, 1, NULL) per 16-element group (sm: 2 words per group)

/** The level (-32..31) make_qx_quants gives x for this iscale. */
fn level6(iscale: f32, v: f32) -> i32 {
  return clamp(nearest_int(iscale * v), -32, 31);
}

/** liscale's bits when a group's levels are all stored as 0 (below GROUP_MAX_EPS: `L[i] = 0`, not level 0). */
const ZERO_GROUP = 0x7fc00000u;

@compute @workgroup_size(WG)
fn q6k_search(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = flat_index(wg, nwg, lid);
  if (g >= p.groups) { return; }
  let o = g * 16u;
  var amax = 0.0;
  var mx = 0.0;
  for (var i = 0u; i < 16u; i++) {
    let v = x[o + i];
    if (abs(v) > amax) {
      amax = abs(v);
      mx = v;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    sm[2u * g] = 0u;
    sm[2u * g + 1u] = ZERO_GROUP;
    return;
  }
  var iscale = div_rn(-32.0, mx);
  var sumlx = 0.0;
  var suml2 = 0.0;
  for (var i = 0u; i < 16u; i++) {
    let v = x[o + i];
    let l = f32(level6(iscale, v));
    let w = v * v;
    sumlx = sumlx + nf((w * v) * l);
    suml2 = suml2 + nf((w * l) * l);
  }
  var scale = select(0.0, div_rn(sumlx, suml2), suml2 != 0.0);
  var best = scale * sumlx;
  var liscale = iscale;
  for (var k = 0; k < 19; k++) {
    let is = k - 9;
    if (is == 0) { continue; }
    iscale = div_rn(-(32.0 + nf(0.1 * f32(is))), mx);
    sumlx = 0.0;
    suml2 = 0.0;
    for (var i = 0u; i < 16u; i++) {
      let v = x[o + i];
      let l = f32(level6(iscale, v));
      let w = v * v;
      sumlx = sumlx + nf((w * v) * l);
      suml2 = suml2 + nf((w * l) * l);
    }
    if (suml2 > 0.0 && sumlx * sumlx > best * suml2) {
      scale = div_rn(sumlx, suml2);
      best = scale * sumlx;
      liscale = iscale;
    }
  }
  sm[2u * g] = bitcast<u32>(scale);
  sm[2u * g + 1u] = bitcast<u32>(liscale);
}

/** Q6_K super-block s of the chunk into bytes [at, at + 210) of ob. */
fn q6k_block(s: u32, at: u32) {
  let o = s * 256u;
  let so = s * 32u; // 16 groups x 2 words
  var max_scale = 0.0;
  var max_abs = 0.0;
  for (var g = 0u; g < 16u; g++) {
    let sc = bitcast<f32>(sm[so + 2u * g]);
    if (abs(sc) > max_abs) {
      max_abs = abs(sc);
      max_scale = sc;
    }
  }
  if (max_abs < GROUP_MAX_EPS) { return; } // all 210 bytes 0
  let iscale = div_rn(-128.0, max_scale);
  let dh = f16_bits(div_rn(1.0, iscale));
  put_f16(at + 208u, dh);
  let d = f16_value(dh);
  var dg: array<f32, 16>;
  for (var g = 0u; g < 16u; g++) {
    let q = u32(min(127, nearest_int(iscale * bitcast<f32>(sm[so + 2u * g])))) & 0xffu;
    put(at + 192u + g, q);
    dg[g] = d * f32((i32(q) << 24u) >> 24u);
  }
  // L (0..63) of element e, then the bit planes: ql low nibbles, qh high two bits.
  for (var h = 0u; h < 2u; h++) {
    for (var l = 0u; l < 32u; l++) {
      var q: array<u32, 4>;
      for (var k = 0u; k < 4u; k++) {
        let e = 128u * h + 32u * k + l;
        let g = e >> 4u;
        let v = x[o + e];
        if (dg[g] != 0.0) {
          q[k] = u32(clamp(nearest_int(div_rn(v, dg[g])), -32, 31) + 32);
        } else {
          // ggml keeps make_qx_quants' levels (`if (!d) continue;`).
          let lis = sm[so + 2u * g + 1u];
          q[k] = select(u32(level6(bitcast<f32>(lis), v) + 32), 0u, lis == ZERO_GROUP);
        }
      }
      put(at + 64u * h + l, (q[0] & 0xfu) | ((q[2] & 0xfu) << 4u));
      put(at + 64u * h + l + 32u, (q[1] & 0xfu) | ((q[3] & 0xfu) << 4u));
      put(at + 128u + 32u * h + l, (q[0] >> 4u) | ((q[1] >> 4u) << 2u) | ((q[2] >> 4u) << 4u) | ((q[3] >> 4u) << 6u));
    }
  }
}

@compute @workgroup_size(WG)
fn q6k_pack(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let u = flat_index(wg, nwg, lid);
  if (u >= p.units) { return; }
  // Super-blocks 2u and 2u + 1 (the last unit of an odd count has one).
  let blocks = p.groups / 16u;
  let two = 2u * u + 1u < blocks;
  words[p.flags_at + u] = needs_cpu(512u * u, select(256u, 512u, two), 16u);
  ob_clear(105u);
  q6k_block(2u * u, 0u);
  if (two) { q6k_block(2u * u + 1u, 210u); }
  ob_store(105u * u, 105u);
}

// ---------------------------------------------------------------------------------------------
// Q8_0: { f16 d; int8 qs[32] }, two blocks (17 words) per invocation; p.groups = blocks

fn q8_block(s: u32, at: u32) {
  let o = s * 32u;
  var amax = 0.0;
  for (var i = 0u; i < 32u; i++) { amax = max(amax, abs(x[o + i])); }
  let d = div_rn(amax, 127.0);
  let id = select(0.0, div_rn(1.0, d), d != 0.0);
  put_f16(at, f16_bits(d));
  for (var i = 0u; i < 32u; i++) {
    // roundf: half away from zero (v - trunc(v) is exact).
    let v = nf(x[o + i] * id);
    let t = trunc(v);
    let r = select(t, t + sign(v), abs(v - t) >= 0.5);
    put(at + 2u + i, u32(i32(r)) & 0xffu);
  }
}

@compute @workgroup_size(WG)
fn q8_0_pack(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let u = flat_index(wg, nwg, lid);
  if (u >= p.units) { return; }
  let two = 2u * u + 1u < p.groups;
  words[p.flags_at + u] = needs_cpu(64u * u, select(32u, 64u, two), 32u);
  ob_clear(17u);
  q8_block(2u * u, 0u);
  if (two) { q8_block(2u * u + 1u, 34u); }
  ob_store(17u * u, 17u);
}

// NF4 (bitsandbytes) quantize and dequantize, bit-identical to the CPU reference src/io/nf4.ts
// (which documents the format and bnb's exact behaviour, special values included).
//   quantize:   values (T) -> words (bnb's packed bytes, 4 per u32, little-endian) + absmax (f32)
//   dequantize: words + absmax -> values (T)
// The helpers NF4_CODE, nf4_shift and nf4_dequant come from NF4_WGSL in src/engine/nf4.ts, which
// the wrapper puts ahead of this source (and a fused NF4 matmul can put ahead of its own).
//
// Blocks run over the row-major flattened tensor. A dispatch may cover a chunk of it (weights
// streamed in pieces): `values` then holds only the chunk's elements, and `first_block` (the
// chunk's first block in the whole tensor; chunks start on block boundaries) places its words and
// absmax in the whole tensor's arrays. n = elements in the chunk, count = blocks (quantize) or
// words (dequantize) to do.
//
// Exactness: nothing here depends on the GPU's division or its handling of NaN/Inf/subnormals
// (WGSL leaves those loose): the reciprocal is computed with integer arithmetic, specials and
// flush-to-zero are decided on bit patterns, and the one float operation, x * r, is correctly
// rounded in WGSL for finite values. A NaN product cannot occur: those cases are decided first.

struct Params { n: u32, blocksize: u32, count: u32, first_block: u32 }

@group(0) @binding(0) var<storage, read_write> words: array<u32>;
@group(0) @binding(1) var<storage, read_write> absmax: array<f32>;
@group(0) @binding(2) var<storage, read_write> values: array<T>;
@group(0) @binding(3) var<uniform> p: Params;

const WG = 64u;

fn flat_index(wg: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wg.y * nwg.x + wg.x) * WG + lid.x;
}

// bnb's decision thresholds as f32 bit patterns, ascending: code = #{ i : s > t[i] }.
const NF4_THRESHOLD_BITS = array<u32, 15>(
  0xbf591cd9u, 0xbf1c5270u, 0xbeeb8480u, 0xbeadea76u, 0xbe703cecu, 0xbe0d38bcu, 0xbd3a7871u, 0x3d22faffu,
  0x3df64863u, 0x3e5067e0u, 0x3e9582d4u, 0x3ec753f9u, 0x3f006d03u, 0x3f248dafu, 0x3f5c89d9u);

/** f32 bits with a subnormal flushed to a zero of the same sign (bnb's kernels run with -ftz). */
fn ftz_bits(b: u32) -> u32 {
  return select(b, b & 0x80000000u, (b & 0x7f800000u) == 0u);
}

/**
 * Bits of the correctly rounded f32 1/a, a given by its bits (not NaN), with a subnormal result
 * flushed to zero: ±0 -> ±Inf, ±Inf -> ±0. For a normal a = M * 2^(e-150) (M the 24-bit
 * significand), 1/a = (2^47 / M) * 2^(103-e): a 24-step long division gives q = floor(2^47 / M),
 * rounded up when the remainder exceeds M/2 (never exactly half unless M is a power of two, handled
 * apart); ((252 - e) << 23) + q then carries q's leading bit into the exponent.
 */
fn nf4_reciprocal_bits(a: u32) -> u32 {
  let sign = a & 0x80000000u;
  let e = (a >> 23u) & 0xffu;
  let mant = a & 0x7fffffu;
  if (e == 0u) { return sign | 0x7f800000u; }
  if (e == 255u) { return sign; }
  if (mant == 0u) {
    if (e >= 254u) { return sign; }
    return sign | ((254u - e) << 23u);
  }
  if (e >= 253u) { return sign; }
  let m = mant | 0x800000u;
  var rem = 0x800000u;
  var q = 0u;
  for (var i = 0u; i < 24u; i++) {
    rem = rem << 1u;
    q = q << 1u;
    if (rem >= m) {
      rem -= m;
      q |= 1u;
    }
  }
  if (2u * rem > m) { q += 1u; }
  return sign | (((252u - e) << 23u) + q);
}

/** The NF4 code of element bits `x` (already FTZ'd) in a block whose reciprocal has bits `r`. */
fn nf4_encode(x: u32, r: u32) -> u32 {
  let xa = x & 0x7fffffffu;
  let ra = r & 0x7fffffffu;
  if (xa > 0x7f800000u) { return 0u; }              // NaN fails every comparison
  if (ra == 0x7f800000u) { return 0u; }             // zero block: 0 * Inf = NaN
  if (ra == 0u) { return select(7u, 0u, xa == 0x7f800000u); } // finite * 0 = ±0 -> 7; Inf * 0 = NaN
  let s = bitcast<f32>(x) * bitcast<f32>(r);
  var code = 0u;
  for (var i = 0u; i < 15u; i++) { code += select(0u, 1u, s > bitcast<f32>(NF4_THRESHOLD_BITS[i])); }
  return code;
}

/** FTZ'd f32 bits of values[i]; f16 widens exactly to a normal f32. */
fn value_bits(i: u32) -> u32 {
  return ftz_bits(bitcast<u32>(f32(values[i])));
}

// One invocation per block: its absmax, then its codes, eight to a word.
@compute @workgroup_size(WG)
fn quantize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = flat_index(wg, nwg, lid);
  if (b >= p.count) { return; }
  let start = b * p.blocksize;
  let end = min(start + p.blocksize, p.n);
  // max |x| on the bit patterns (monotonic for non-NaN); NaN ignored as fmaxf does; a partial
  // block's zero padding takes part; nothing but NaN leaves fmaxf's start value -FLT_MAX.
  var m = 0u;
  var found = end - start < p.blocksize;
  for (var i = start; i < end; i++) {
    let a = value_bits(i) & 0x7fffffffu;
    if (a <= 0x7f800000u) {
      m = max(m, a);
      found = true;
    }
  }
  let amax = select(0xff7fffffu, m, found);
  absmax[p.first_block + b] = bitcast<f32>(amax);
  let r = nf4_reciprocal_bits(amax);
  // Nibbles of real elements; the padding element sharing the last byte of an odd n is a 0.0;
  // bytes past the tensor's (n + 1) / 2 stay 0.
  let word0 = (p.first_block * p.blocksize) / 8u + b * (p.blocksize / 8u);
  let nibbles = select(end, end + 1u, end == p.n && (p.n & 1u) == 1u);
  for (var w = 0u; start + w * 8u < nibbles; w++) {
    var word = 0u;
    for (var j = 0u; j < 8u; j++) {
      let e = start + w * 8u + j;
      if (e < nibbles) {
        let x = select(0u, value_bits(min(e, p.n - 1u)), e < end);
        word |= nf4_encode(x, r) << nf4_shift(j);
      }
    }
    words[word0 + w] = word;
  }
}

// One invocation per word: eight values.
@compute @workgroup_size(WG)
fn dequantize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  nf4_table_init(lid.x);
  let w = flat_index(wg, nwg, lid);
  if (w >= p.count) { return; }
  let word = words[(p.first_block * p.blocksize) / 8u + w];
  let a = absmax[p.first_block + (w * 8u) / p.blocksize];
  for (var j = 0u; j < 8u; j++) {
    let e = w * 8u + j;
    if (e < p.n) { values[e] = T(nf4_dequant(word, nf4_shift(j), a)); }
  }
}

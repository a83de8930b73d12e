// 16-bit float checkpoint words -> f32 (or f16) on the GPU, bit-exact with the CPU conversions of
// src/io/dtype.ts (bf16ArrayToF32, f16ArrayToF32, f32ArrayToF16): the loader uploads a tensor's raw
// bytes and converts here instead of on the CPU.
//   bf16_to_f32: bf16 -> f32, the bits shifted up (exact, NaN payloads kept)
//   f16_to_f32:  f16 -> f32, exact (subnormals normalised, Inf/NaN payloads kept)
//   bf16_to_f16: bf16 -> f32 -> f16, round to nearest even (as f32ArrayToF16)
// Integer arithmetic only: no f16 type (works without shader-f16) and nothing left to the GPU's
// loose float rules (WGSL lets implementations flush subnormals and pick NaN bits).
//
// `src` holds the raw little-endian bytes as u32 words, two values each (element 2i in the low
// half of word i). `dst` is u32 too: f32 bits one per word, or f16 bits two per word like `src`.
// n = elements; one invocation per source word. A word past n / 2 of an odd n writes only its
// low element (f32 out) or a 0 high half (f16 out, as the CPU path pads).

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG = 256u;

fn flat_index(wg: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wg.y * nwg.x + wg.x) * WG + lid.x;
}

/** f16 bits (low 16 of h) -> f32 bits, exact. */
fn f16_bits_to_f32(h: u32) -> u32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0x1fu) { return sign | 0x7f800000u | (m << 13u); }
  if (e == 0u) {
    if (m == 0u) { return sign; }
    // m * 2^-24 with m's leading one at bit q (0..9): exponent q - 24, the bits below it the fraction.
    let q = firstLeadingBit(m);
    return sign | ((q + 103u) << 23u) | ((m << (23u - q)) & 0x7fffffu);
  }
  return sign | ((e + 112u) << 23u) | (m << 13u);
}

/** f32 bits -> f16 bits, round to nearest even; NaN stays a quiet NaN with its top payload bits. */
fn f32_bits_to_f16(b: u32) -> u32 {
  let sign = (b >> 16u) & 0x8000u;
  let exp = (b >> 23u) & 0xffu;
  let mant = b & 0x7fffffu;
  if (exp == 0xffu) { return select(sign | 0x7e00u | (mant >> 13u), sign | 0x7c00u, mant == 0u); }
  // The f16 exponent is exp - 112.
  if (exp >= 143u) { return sign | 0x7c00u; }
  if (exp <= 112u) {
    // Subnormal or zero; below half the smallest subnormal rounds to 0.
    if (exp < 102u) { return sign; }
    let m = mant | 0x800000u;
    let shift = 126u - exp; // 14..24
    let half = 1u << (shift - 1u);
    let rem = m & ((1u << shift) - 1u);
    var r = m >> shift;
    if (rem > half || (rem == half && (r & 1u) == 1u)) { r += 1u; } // may carry into the smallest normal
    return sign | r;
  }
  var r = ((exp - 112u) << 10u) | (mant >> 13u);
  let rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u) == 1u)) { r += 1u; } // may carry up to Inf: correct
  return sign | r;
}

@compute @workgroup_size(WG)
fn bf16_to_f32(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_index(wg, nwg, lid);
  if (2u * i >= p.n) { return; }
  let w = src[i];
  dst[2u * i] = w << 16u;
  if (2u * i + 1u < p.n) { dst[2u * i + 1u] = w & 0xffff0000u; }
}

@compute @workgroup_size(WG)
fn f16_to_f32(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_index(wg, nwg, lid);
  if (2u * i >= p.n) { return; }
  let w = src[i];
  dst[2u * i] = f16_bits_to_f32(w & 0xffffu);
  if (2u * i + 1u < p.n) { dst[2u * i + 1u] = f16_bits_to_f32(w >> 16u); }
}

@compute @workgroup_size(WG)
fn bf16_to_f16(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_index(wg, nwg, lid);
  if (2u * i >= p.n) { return; }
  let w = src[i];
  let lo = f32_bits_to_f16(w << 16u);
  let hi = select(0u, f32_bits_to_f16(w & 0xffff0000u), 2u * i + 1u < p.n);
  dst[i] = lo | (hi << 16u);
}

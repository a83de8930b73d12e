// Rotary position embedding, in place, on x [tokens, heads, head_dim], transformers' rotate_half
// convention: dimension d < half is paired with d + half (not interleaved), both rotated by
//   angle = f32(position[t]) * inv_freq[d]          (f32 product, rounded, as transformers does)
//   x[d]      = x[d] cos - x[d + half] sin
//   x[d+half] = x[d + half] cos + x[d] sin
// `sign` = -1 rotates by -angle instead: the inverse, i.e. the backward pass (dx = Rᵀ dy).
// One invocation per (token, head, d < half). Math in f32; `T` = storage type (set by the loader).
//
// cos/sin are computed here, not with the built-ins: WGSL promises the built-ins only inside
// [-π, π], and PyTorch reduces any angle exactly. Measured on an H200 (Dawn, Vulkan) against the
// float64 rotation, the built-ins were off by 1.9e-2 for positions < 2048 and by 1.2 (wrong) up
// to 131071; this code by 2e-7 in both. Here the angle is reduced by π/2 exactly (Cody-Waite: π/2
// split into pieces of 7 significant bits, so k · piece is exact for |k| < 2^17, i.e.
// |angle| < 205887, beyond Llama 3's 131072 positions) and cos/sin of the remainder
// (|r| <= π/4) are Taylor polynomials whose truncation error (< 2e-9) is far below f32 rounding.
// Result: a few ulp of cos/sin of the rounded f32 angle, whatever the position.

//
// `append` (chat decode with a KV cache) does a layer's q, k and v in one dispatch: q in place as
// `main` does, k rotated into the K cache and v copied into the V cache, token t at cache row
// positions[t] (rows past `capacity` are not written): the rotation, two copies and the pass break
// they needed, in one, with parameters that stay the same from token to token.

struct Params { pairs: u32, heads: u32, half: u32, sign: f32, kv_heads: u32, kv_pairs: u32, capacity: u32 }

@group(0) @binding(0) var<storage, read_write> x: array<T>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> k: array<T>;
@group(0) @binding(5) var<storage, read> v: array<T>;
@group(0) @binding(6) var<storage, read_write> k_cache: array<T>;
@group(0) @binding(7) var<storage, read_write> v_cache: array<T>;

const WG = 256u;

// π/2 = P1 + P2 + P3 + P4 (P1..P3 have 7 significant bits; P4 is the f32 nearest the rest).
const P1 = 1.5625;
const P2 = 0.0081787109375;
const P3 = 0.00011730194091796875;
const P4 = 3.1391647326017846e-7;
const TWO_OVER_PI = 0.6366197723675814;

/** vec2(cos(a), sin(a)) for an f32 angle a. */
fn cos_sin(a: f32) -> vec2f {
  let k = round(a * TWO_OVER_PI);
  var r = a - k * P1; // exact (Sterbenz), as are the next two steps
  r -= k * P2;
  r -= k * P3;
  r -= k * P4;
  let r2 = r * r;
  let s = r + r * r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0))));
  let c = 1.0 - 0.5 * r2 + r2 * r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0))));
  switch (i32(k) & 3) {
    case 0: { return vec2f(c, s); }
    case 1: { return vec2f(-s, c); }
    case 2: { return vec2f(-c, -s); }
    default: { return vec2f(s, -c); }
  }
}

/** Pair i of a [tokens, heads, 2 half] tensor: its two element indices, token and rotation's cos/sin. */
struct Pair { i1: u32, i2: u32, t: u32, cs: vec2f }

fn pair(i: u32, heads: u32) -> Pair {
  let row = i / p.half; // token · heads + head
  let d = i - row * p.half;
  let t = row / heads;
  // The product by sign (±1, exact) also makes the rounded angle a value of its own, so that no
  // compiler fuses position · inv_freq into the reduction's first subtraction (an fma would skip
  // the rounding transformers does).
  let angle = (f32(positions[t]) * inv_freq[d]) * p.sign;
  let i1 = row * 2u * p.half + d;
  return Pair(i1, i1 + p.half, t, cos_sin(angle));
}

/** (x1, x2) rotated by cs. */
fn rotate(x1: f32, x2: f32, cs: vec2f) -> vec2f {
  return vec2f(x1 * cs.x - x2 * cs.y, x2 * cs.x + x1 * cs.y);
}

fn flat(wg: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wg.y * nwg.x + wg.x) * WG + lid.x;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wg, nwg, lid);
  if (i >= p.pairs) { return; }
  let q = pair(i, p.heads);
  let y = rotate(f32(x[q.i1]), f32(x[q.i2]), q.cs);
  x[q.i1] = T(y.x);
  x[q.i2] = T(y.y);
}

@compute @workgroup_size(WG)
fn append(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wg, nwg, lid);
  if (i < p.pairs) {
    let q = pair(i, p.heads);
    let y = rotate(f32(x[q.i1]), f32(x[q.i2]), q.cs);
    x[q.i1] = T(y.x);
    x[q.i2] = T(y.y);
  } else if (i < p.pairs + p.kv_pairs) {
    let c = pair(i - p.pairs, p.kv_heads);
    let row = positions[c.t];
    if (row < p.capacity) {
      let y = rotate(f32(k[c.i1]), f32(k[c.i2]), c.cs);
      let shift = (row - c.t) * p.kv_heads * 2u * p.half; // token t's row -> cache row `row`
      k_cache[c.i1 + shift] = T(y.x);
      k_cache[c.i2 + shift] = T(y.y);
    }
  } else if (i < p.pairs + 2u * p.kv_pairs) {
    // v as [pairs, 2]: two consecutive values per invocation.
    let e = 2u * (i - p.pairs - p.kv_pairs);
    let width = p.kv_heads * 2u * p.half;
    let t = e / width;
    let row = positions[t];
    if (row < p.capacity) {
      let at = e + (row - t) * width;
      v_cache[at] = v[e];
      v_cache[at + 1u] = v[e + 1u];
    }
  }
}

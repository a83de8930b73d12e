// Causal grouped-query attention forward, flash-attention style: scores are never materialised.
//   q [B, Tq, Hq, D], k/v [B, S, Hkv, D], o [B, Tq, Hq, D] in the storage type `T` (set by the
//   loader), lse [B, Hq, Tq] in f32, seg [B, S] u32 (bound always; read only when use_segments).
// Query i sits at absolute position pos = causal_offset + i (training: offset 0, S = Tq; decode
// with a KV cache: offset S - Tq). It attends key j when
//   j <= pos                                   (causal)
//   pos - j < window         (window > 0 only: sliding window, Mistral)
//   seg[j] == seg[pos] != 0  (use_segments only: packed rows; segment 0 is padding)
// A query with no allowed key (a padding query, segment 0) gets o = 0 and lse = 0: finite, so no
// NaN ever leaves the kernel; the backward pass masks these rows with the same rule.
// GQA: query head h reads kv head h / (Hq / Hkv).
//
// Tiling: one workgroup per (block of BR = 64 query rows, query head, batch row); one invocation
// per query row, holding its scaled q row and its output accumulator (vec4s) in registers:
// register-blocked, no reductions across invocations, two barriers per key tile. The workgroup
// walks its key range in tiles of bc keys, staged (as T) with their segment ids in workgroup
// memory; per tile each invocation computes its bc scores, then the online-softmax update:
// running max m and sum l in f32, in base 2 (q is pre-multiplied by scale · log2 e, so exp2 is
// the only transcendental). The workgroup's key range is the union of its rows' ranges: causal
// (keys after the block's last row are never loaded), window, and for packed rows each row's
// segment start (the first key with its segment id), so tiles wholly before a document are
// skipped; inside that range an invocation skips the arithmetic of tiles outside its own row's.
//
// The head dim D (any value up to 128; the last vec4 is zero-padded) and hence bc = TILE4 / D4
// are run-time values, so one pipeline per storage type serves every model. Loops over compile-
// time trip counts made lavapipe (LLVM) unroll them and compile for minutes; with run-time
// bounds it compiles like the matmul. TILE4 (vec4 slots per K or V tile) is an override the
// wrapper sizes to the device's workgroup memory.
//
// Performance (H200, Dawn/Vulkan, Llama 3.1 8B shapes: Hq 32, Hkv 8, D 128, T 2048, causal):
// f32 1.0-1.1 TFLOP/s, f16 storage 1.5-1.8; compile-time D changes that by ~5%. Bound by
// workgroup-memory reads (one per FMA: every invocation reads each K/V value) and one row per
// invocation. Decode (T = 1, S = 2048) takes ~7.5 ms: one invocation per head walks all keys.
// Next steps: several rows per invocation or subgroup-matrix tiles for q·kᵀ and p·v; for
// decode, split the keys across invocations/workgroups (flash-decoding) and put the query
// heads of a GQA group into one workgroup.

struct Params {
  tq: u32,
  skv: u32,
  heads: u32,
  kv_heads: u32,
  head_dim: u32,
  causal_offset: u32,
  window: u32,
  use_segments: u32,
  scale_log2: f32, // scale · log2(e)
}

@group(0) @binding(0) var<storage, read> q: array<T>;
@group(0) @binding(1) var<storage, read> k: array<T>;
@group(0) @binding(2) var<storage, read> v: array<T>;
@group(0) @binding(3) var<storage, read> seg: array<u32>;
@group(0) @binding(4) var<storage, read_write> o: array<T>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

override TILE4: u32 = 480u; // vec4 slots of each of the K and V tiles

const BR = 64u; // query rows per workgroup, one invocation each
const MAX_D4 = 32u; // head dim <= 128
const MAX_BC = 32u; // keys per tile <= 32: a tile's mask is one u32
const LN2 = 0.6931471805599453;
const NEG = -3.0e38; // "minus infinity", kept finite: WGSL does not promise infinities

var<workgroup> k_tile: array<vec4<T>, TILE4>; // [bc][D4]
var<workgroup> v_tile: array<vec4<T>, TILE4>;
var<workgroup> seg_tile: array<u32, MAX_BC>;
// The workgroup's key range [lo, hi), gathered with atomics (workgroup memory starts zeroed,
// so lo is kept as its complement and both are maxima), then published uniformly.
var<workgroup> range_hi: atomic<u32>;
var<workgroup> range_lo_not: atomic<u32>;
var<workgroup> range: vec2u;

/** Values d .. d+3 of the row at `base` of q (which = 0), k (1) or v (2), as f32; zeros past D. */
fn load4(which: u32, base: u32, d: u32) -> vec4f {
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) {
    if (d + c < p.head_dim) {
      let at = base + d + c;
      switch (which) {
        case 0u: { r[c] = f32(q[at]); }
        case 1u: { r[c] = f32(k[at]); }
        default: { r[c] = f32(v[at]); }
      }
    }
  }
  return r;
}

@compute @workgroup_size(BR)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let h = wg.y;
  let i = wg.x * BR + lid;
  let kvh = h / (p.heads / p.kv_heads);
  let dim = p.head_dim;
  let d4n = (dim + 3u) / 4u;
  let bc = min(MAX_BC, TILE4 / d4n); // the wrapper checks bc >= 1
  let row_ok = i < p.tq;
  let pos = p.causal_offset + i;
  let seg_base = b * p.skv;

  // This row's segment and key range [lo, hi).
  var my_seg = 1u;
  if (row_ok && p.use_segments != 0u) { my_seg = seg[seg_base + pos]; }
  let has_keys = row_ok && my_seg != 0u;
  var lo = 0u;
  let hi = pos + 1u;
  if (p.window != 0u && hi > p.window) { lo = hi - p.window; }
  if (has_keys && p.use_segments != 0u) {
    // The first key of this row's segment (at worst pos itself): exact for any segment layout.
    var j = lo;
    while (j < pos && seg[seg_base + j] != my_seg) { j++; }
    lo = j;
  }
  if (has_keys) {
    atomicMax(&range_hi, hi);
    atomicMax(&range_lo_not, ~lo);
  }
  workgroupBarrier();
  if (lid == 0u) { range = vec2u(~atomicLoad(&range_lo_not), atomicLoad(&range_hi)); }
  let wg_range = workgroupUniformLoad(&range); // empty (lo = 2^32 - 1, hi = 0) if no row has keys

  var qr: array<vec4f, MAX_D4>;
  var acc: array<vec4f, MAX_D4>;
  let q_base = ((b * p.tq + i) * p.heads + h) * dim;
  if (has_keys) {
    for (var d4 = 0u; d4 < d4n; d4++) { qr[d4] = load4(0u, q_base, d4 * 4u) * p.scale_log2; }
  }
  var m = NEG; // running max of the scores seen (base-2 units)
  var l = 0.0; // running sum of exp2(score - m)
  var s: array<f32, MAX_BC>;

  for (var j0 = wg_range.x; j0 < wg_range.y; j0 += bc) {
    let nk = min(bc, wg_range.y - j0);
    // Stage the tile; slots past nk are zeroed so no stale value meets a zero weight.
    for (var t = lid; t < bc * d4n; t += BR) {
      let jj = t / d4n;
      var kt = vec4f(0.0);
      var vt = vec4f(0.0);
      if (jj < nk) {
        let base = ((b * p.skv + j0 + jj) * p.kv_heads + kvh) * dim;
        let d = (t - jj * d4n) * 4u;
        kt = load4(1u, base, d);
        vt = load4(2u, base, d);
      }
      k_tile[t] = vec4<T>(kt);
      v_tile[t] = vec4<T>(vt);
    }
    if (p.use_segments != 0u && lid < nk) { seg_tile[lid] = seg[seg_base + j0 + lid]; }
    workgroupBarrier();

    if (has_keys && j0 < hi && j0 + nk > lo) {
      // Scores of this tile, their mask and the new running max. Masked keys are computed and
      // dropped (select, not a branch: straight-line code is what CPU drivers compile well).
      var mask = 0u;
      var m_new = m;
      for (var jj = 0u; jj < bc; jj++) {
        let j = j0 + jj;
        var ok = jj < nk && j >= lo && j < hi;
        if (p.use_segments != 0u) { ok = ok && seg_tile[jj] == my_seg; }
        var x = 0.0;
        for (var d4 = 0u; d4 < d4n; d4++) { x += dot(qr[d4], vec4f(k_tile[jj * d4n + d4])); }
        x = select(NEG, x, ok);
        m_new = max(m_new, x);
        mask |= select(0u, 1u << jj, ok);
        s[jj] = x;
      }
      // Rescale what was accumulated under the old max (alpha = 0 at the first allowed key,
      // 1 when this tile has none), then add this tile's weights and values.
      let alpha = exp2(m - m_new);
      l *= alpha;
      for (var d4 = 0u; d4 < d4n; d4++) { acc[d4] *= alpha; }
      for (var jj = 0u; jj < bc; jj++) {
        let w = select(0.0, exp2(s[jj] - m_new), (mask & (1u << jj)) != 0u);
        l += w;
        for (var d4 = 0u; d4 < d4n; d4++) { acc[d4] = fma(vec4f(w), vec4f(v_tile[jj * d4n + d4]), acc[d4]); }
      }
      m = m_new;
    }
    workgroupBarrier();
  }

  if (row_ok) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < dim; d++) { o[q_base + d] = T(acc[d / 4u][d % 4u] * inv); }
    lse[(b * p.heads + h) * p.tq + i] = select(0.0, (m + log2(l)) * LN2, l > 0.0);
  }
}

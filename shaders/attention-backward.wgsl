// Causal grouped-query attention backward, flash-attention style (forward: shaders/attention.wgsl,
// whose masks, layouts and conventions this follows exactly). Given dO and the forward's o and
// lse, recomputes the probabilities tile by tile from q, k and lse; no [T x S] tensor exists.
//   q, dO, dq [B, Tq, Hq, D], k, v, dk, dv [B, S, Hkv, D] in the storage type `T` (set by the
//   loader); o [B, Tq, Hq, D] T; lse [B, Hq, Tq] f32 (natural log); seg [B, S] u32 (read only
//   when use_segments); stats [B, Hq, Tq, 2] f32 scratch: (lse · log2 e, D_i).
// Math, per (b, query head h, query i at position pos = causal_offset + i) and allowed key j
// (j <= pos, pos - j < window if window > 0, seg[j] == seg[pos] != 0 if use_segments):
//   p_ij = exp(scale q_i·k_j - lse_i)      D_i = dO_i · o_i      dp_ij = dO_i · v_j
//   ds_ij = p_ij (dp_ij - D_i)
//   dq_i = scale Σ_j ds_ij k_j     dk_j = scale Σ_(h in group, i) ds_ij q_i     dv_j = Σ p_ij dO_i
// Scores are kept in base 2 (one operand pre-multiplied by scale · log2 e; lse · log2 e in
// stats), so exp2 is the only transcendental, as in the forward. Padding queries (segment 0)
// and keys no query attends get zero gradients; their o = 0 and lse = 0 are never used.
//
// Entry points (each binds only its own buffers; the wrapper binds them by number):
//   delta  one invocation per (b, h, i): stats = (lse · log2 e, Σ_d dO · o). [rows / 64] (2-D).
//   dq     one workgroup per (block of BR = 64 queries, query head, batch row), one invocation
//          per query: its scaled q, dO and dq accumulator in registers; walks the block's key
//          range (causal, window, each row's segment start; as the forward) in tiles of bc keys
//          staged with their segment ids in workgroup memory. The forward's structure with dq
//          in place of o.
//   dkv    one workgroup per (block of BR = 64 keys, kv head, batch row), one invocation per
//          key: its scaled k, v and the dk, dv accumulators in registers; walks, for each query
//          head of the GQA group in turn, the block's query range (from the block's first key to
//          its last key's last query: causal, window, each key's segment end) in tiles of bc
//          queries whose q, dO, stats and segment ids are staged in workgroup memory. dk and dv
//          of a kv head sum over its group here: no atomics, no second pass.
// The probabilities are recomputed in both dq and dkv (FlashAttention-2 computes dq inside the
// key loop with atomic adds; WGSL has no float atomics).
// Head dim (up to 128, the last vec4 zero-padded) and bc = TILE4 / D4 are run-time values (one
// pipeline per storage type), for the compile-time reasons the forward's header gives.

struct Params {
  rows: u32,         // delta: batch · heads · tq
  tq: u32,
  skv: u32,
  heads: u32,
  kv_heads: u32,
  head_dim: u32,
  causal_offset: u32,
  window: u32,
  use_segments: u32,
  scale_log2: f32,   // scale · log2(e)
  scale: f32,
}

@group(0) @binding(0) var<storage, read> q: array<T>;
@group(0) @binding(1) var<storage, read> k: array<T>;
@group(0) @binding(2) var<storage, read> v: array<T>;
@group(0) @binding(3) var<storage, read> seg: array<u32>;
@group(0) @binding(4) var<storage, read> dout: array<T>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> dq: array<T>;
@group(0) @binding(7) var<storage, read_write> dk: array<T>;
@group(0) @binding(8) var<storage, read_write> dv: array<T>;
@group(0) @binding(9) var<storage, read> o: array<T>;
@group(0) @binding(10) var<storage, read> lse: array<f32>;
@group(0) @binding(11) var<uniform> p: Params;

override TILE4: u32 = 480u; // vec4 slots of each of the two staged tiles

const BR = 64u; // rows (queries in dq, keys in dkv) per workgroup, one invocation each
const MAX_D4 = 32u; // head dim <= 128
const MAX_BC = 32u; // rows per staged tile
const LOG2E = 1.4426950408889634;

var<workgroup> tile_a: array<vec4<T>, TILE4>; // dq: k [bc][D4]; dkv: q
var<workgroup> tile_b: array<vec4<T>, TILE4>; // dq: v;          dkv: dO
var<workgroup> seg_tile: array<u32, MAX_BC>;
var<workgroup> st_tile: array<vec2f, MAX_BC>; // dkv: (lse · log2 e, D) of the staged queries
// The workgroup's range [lo, hi) of keys (dq) or queries (dkv), gathered with atomics (zeroed
// at the start, so lo is kept as its complement and both are maxima), then published uniformly.
var<workgroup> range_hi: atomic<u32>;
var<workgroup> range_lo_not: atomic<u32>;
var<workgroup> range: vec2u;

/** Values d .. d+3 of the row at `base` of q (which = 0), k (1), v (2) or dO (3) as f32; zeros past D. */
fn load4(which: u32, base: u32, d: u32) -> vec4f {
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) {
    if (d + c < p.head_dim) {
      let at = base + d + c;
      switch (which) {
        case 0u: { r[c] = f32(q[at]); }
        case 1u: { r[c] = f32(k[at]); }
        case 2u: { r[c] = f32(v[at]); }
        default: { r[c] = f32(dout[at]); }
      }
    }
  }
  return r;
}

/** Publishes the union of the invocations' ranges (has = this invocation has one) to all. */
fn workgroup_range(has: bool, lo: u32, hi: u32, lid: u32) -> vec2u {
  if (has) {
    atomicMax(&range_hi, hi);
    atomicMax(&range_lo_not, ~lo);
  }
  workgroupBarrier();
  if (lid == 0u) { range = vec2u(~atomicLoad(&range_lo_not), atomicLoad(&range_hi)); }
  return workgroupUniformLoad(&range); // empty (lo = 2^32 - 1, hi = 0) if no invocation has one
}

@compute @workgroup_size(64)
fn delta(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = (wg.y * nwg.x + wg.x) * 64u + lid; // = (b · heads + h) · tq + i
  if (idx >= p.rows) { return; }
  let i = idx % p.tq;
  let bh = idx / p.tq;
  let h = bh % p.heads;
  let b = bh / p.heads;
  let base = ((b * p.tq + i) * p.heads + h) * p.head_dim;
  var s = 0.0;
  for (var d = 0u; d < p.head_dim; d++) { s = fma(f32(dout[base + d]), f32(o[base + d]), s); }
  stats[2u * idx] = lse[idx] * LOG2E;
  stats[2u * idx + 1u] = s;
}

@compute @workgroup_size(BR)
fn dq_main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
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

  // This query's segment and key range [lo, hi), as the forward computes them.
  var my_seg = 1u;
  if (row_ok && p.use_segments != 0u) { my_seg = seg[seg_base + pos]; }
  let has_keys = row_ok && my_seg != 0u;
  var lo = 0u;
  let hi = pos + 1u;
  if (p.window != 0u && hi > p.window) { lo = hi - p.window; }
  if (has_keys && p.use_segments != 0u) {
    var j = lo;
    while (j < pos && seg[seg_base + j] != my_seg) { j++; }
    lo = j;
  }
  let wg_range = workgroup_range(has_keys, lo, hi, lid);

  var qr: array<vec4f, MAX_D4>;  // q · scale · log2 e
  var dor: array<vec4f, MAX_D4>; // dO
  var acc: array<vec4f, MAX_D4>; // Σ_j ds_ij k_j
  let row_base = ((b * p.tq + i) * p.heads + h) * dim;
  var lse2 = 0.0;
  var di = 0.0;
  if (has_keys) {
    for (var d4 = 0u; d4 < d4n; d4++) {
      qr[d4] = load4(0u, row_base, d4 * 4u) * p.scale_log2;
      dor[d4] = load4(3u, row_base, d4 * 4u);
    }
    let st = ((b * p.heads + h) * p.tq + i) * 2u;
    lse2 = stats[st];
    di = stats[st + 1u];
  }

  for (var j0 = wg_range.x; j0 < wg_range.y; j0 += bc) {
    let nk = min(bc, wg_range.y - j0);
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
      tile_a[t] = vec4<T>(kt);
      tile_b[t] = vec4<T>(vt);
    }
    if (p.use_segments != 0u && lid < nk) { seg_tile[lid] = seg[seg_base + j0 + lid]; }
    workgroupBarrier();

    if (has_keys && j0 < hi && j0 + nk > lo) {
      for (var jj = 0u; jj < nk; jj++) {
        let j = j0 + jj;
        var ok = j >= lo && j < hi;
        if (p.use_segments != 0u) { ok = ok && seg_tile[jj] == my_seg; }
        var s = 0.0;
        var dp = 0.0;
        for (var d4 = 0u; d4 < d4n; d4++) {
          s += dot(qr[d4], vec4f(tile_a[jj * d4n + d4]));
          dp += dot(dor[d4], vec4f(tile_b[jj * d4n + d4]));
        }
        // Masked keys: computed and dropped (select, not a branch, before exp2 can overflow).
        let ds = select(0.0, exp2(select(0.0, s - lse2, ok)) * (dp - di), ok);
        for (var d4 = 0u; d4 < d4n; d4++) { acc[d4] = fma(vec4f(ds), vec4f(tile_a[jj * d4n + d4]), acc[d4]); }
      }
    }
    workgroupBarrier();
  }

  if (row_ok) {
    for (var d = 0u; d < dim; d++) { dq[row_base + d] = T(acc[d / 4u][d % 4u] * p.scale); }
  }
}

@compute @workgroup_size(BR)
fn dkv_main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let kvh = wg.y;
  let j = wg.x * BR + lid;
  let group = p.heads / p.kv_heads;
  let dim = p.head_dim;
  let d4n = (dim + 3u) / 4u;
  let bc = min(MAX_BC, TILE4 / d4n);
  let key_ok = j < p.skv;
  let seg_base = b * p.skv;

  // Positions [plo, phi) of the queries that may attend key j: causal (pos >= j), the window
  // (pos < j + window), the last query of this key's segment (scanning back from the end: exact
  // for any layout of segment ids). Then as query indices i = pos - causal_offset.
  var my_seg = 1u;
  if (key_ok && p.use_segments != 0u) { my_seg = seg[seg_base + j]; }
  let plo = max(j, p.causal_offset);
  var phi = p.causal_offset + p.tq;
  if (p.window != 0u) { phi = min(phi, j + p.window); }
  if (key_ok && my_seg != 0u && p.use_segments != 0u) {
    while (phi > plo && seg[seg_base + phi - 1u] != my_seg) { phi--; }
  }
  let has_queries = key_ok && my_seg != 0u && phi > plo;
  var ilo = 0u;
  var ihi = 0u;
  if (has_queries) {
    ilo = plo - p.causal_offset;
    ihi = phi - p.causal_offset;
  }
  let wg_range = workgroup_range(has_queries, ilo, ihi, lid);

  var kr: array<vec4f, MAX_D4>;  // k · scale · log2 e
  var vr: array<vec4f, MAX_D4>;
  var dka: array<vec4f, MAX_D4>; // Σ ds_ij q_i
  var dva: array<vec4f, MAX_D4>; // Σ p_ij dO_i
  let kv_base = ((b * p.skv + j) * p.kv_heads + kvh) * dim;
  if (has_queries) {
    for (var d4 = 0u; d4 < d4n; d4++) {
      kr[d4] = load4(1u, kv_base, d4 * 4u) * p.scale_log2;
      vr[d4] = load4(2u, kv_base, d4 * 4u);
    }
  }

  for (var hh = 0u; hh < group; hh++) {
    let h = kvh * group + hh;
    for (var i0 = wg_range.x; i0 < wg_range.y; i0 += bc) {
      let nq = min(bc, wg_range.y - i0);
      for (var t = lid; t < bc * d4n; t += BR) {
        let ii = t / d4n;
        var qt = vec4f(0.0);
        var dt = vec4f(0.0);
        if (ii < nq) {
          let base = ((b * p.tq + i0 + ii) * p.heads + h) * dim;
          let d = (t - ii * d4n) * 4u;
          qt = load4(0u, base, d);
          dt = load4(3u, base, d);
        }
        tile_a[t] = vec4<T>(qt);
        tile_b[t] = vec4<T>(dt);
      }
      if (lid < nq) {
        let st = ((b * p.heads + h) * p.tq + i0 + lid) * 2u;
        st_tile[lid] = vec2f(stats[st], stats[st + 1u]);
        if (p.use_segments != 0u) { seg_tile[lid] = seg[seg_base + p.causal_offset + i0 + lid]; }
      }
      workgroupBarrier();

      if (has_queries && i0 < ihi && i0 + nq > ilo) {
        for (var ii = 0u; ii < nq; ii++) {
          let i = i0 + ii;
          var ok = i >= ilo && i < ihi;
          if (p.use_segments != 0u) { ok = ok && seg_tile[ii] == my_seg; }
          var s = 0.0;
          var dp = 0.0;
          for (var d4 = 0u; d4 < d4n; d4++) {
            s += dot(vec4f(tile_a[ii * d4n + d4]), kr[d4]);
            dp += dot(vec4f(tile_b[ii * d4n + d4]), vr[d4]);
          }
          let st = st_tile[ii];
          let pr = select(0.0, exp2(select(0.0, s - st.x, ok)), ok);
          let ds = pr * (dp - st.y);
          for (var d4 = 0u; d4 < d4n; d4++) {
            dva[d4] = fma(vec4f(pr), vec4f(tile_b[ii * d4n + d4]), dva[d4]);
            dka[d4] = fma(vec4f(ds), vec4f(tile_a[ii * d4n + d4]), dka[d4]);
          }
        }
      }
      workgroupBarrier();
    }
  }

  if (key_ok) {
    for (var d = 0u; d < dim; d++) {
      dk[kv_base + d] = T(dka[d / 4u][d % 4u] * p.scale);
      dv[kv_base + d] = T(dva[d / 4u][d % 4u]);
    }
  }
}

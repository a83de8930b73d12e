// Causal grouped-query attention backward, flash-attention style (forward: shaders/attention.wgsl,
// whose masks, layouts and conventions this follows exactly). Given dO and the forward's o and
// lse, recomputes the probabilities tile by tile from q, k and lse; no [T x S] tensor exists.
//   q, dO, dq [B, Tq, Hq, D], k, v, dk, dv [B, S, Hkv, D] in the storage type `T` (set by the
//   loader); o [B, Tq, Hq, D] T; lse [B, Hq, Tq] f32 (natural log); seg [B, S] u32 (read only
//   when use_segments); stats f32 scratch: (lse · log2 e, D_i) per row [B, Hq, Tq] (the first 2 · rows
//   floats of the [B, Hq, Tq, 3] buffer; the tensor-core kernels keep max |dO_i| after them).
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
//   grads  dq, dk and dv in one dispatch (9 storage buffers): a flat workgroup index over a 2-D
//          grid picks a dkv workgroup (the first kvHeads · key blocks, longest first) or a dq one
//          (the rest, longest first); the batch row in z. The many short dq workgroups fill the
//          GPU while the few long dkv ones finish: dispatched alone, the dkv workgroups of the
//          first key blocks (each walks the queries of a whole GQA group) would run nearly alone.
//   dq_main, dkv_main  the same two as dispatches of their own, for devices with 8 storage
//          buffers a stage and for the 16 KiB variant: grids [heads, query blocks, batch] and
//          [kv heads, key blocks, batch].
// dq: one workgroup of 256 per (block of 64 queries, query head, batch row), the forward's
//   structure: it walks the block's key range (causal, window, each row's segment start) in tiles
//   of 64 keys. Invocation (tx, ty) = (tid % 16, tid / 16) owns rows ty·4 + 0..3: s = q·kᵀ and
//   dp = dO·vᵀ for keys tx·4 + 0..3 (4x4 register blocks, computed together in steps of DK = 4
//   head-dim values: per d, 4 vec4 workgroup reads feed 32 FMAs), then ds, written to workgroup
//   memory key-major, and dq += ds·k for columns tx·4 + 0..3 (and 64 + tx·4 + 0..3 when NV = 2)
//   with k streamed in rows (per row 1 + NV vec4 reads feed 16 · NV FMAs).
// dkv: one workgroup of 256 per (block of 64 keys, kv head, batch row): for each query head of the
//   GQA group in turn, it walks the block's query range (from the block's first key to its last
//   key's last query: causal, window, each key's segment end) in tiles of 64 queries. The same
//   blocks with keys as rows and queries as columns: sᵀ and dpᵀ, then pᵀ to workgroup memory and
//   dv += pᵀ·dO (dO streamed in rows), then dsᵀ and dk += dsᵀ·q (q streamed). dk and dv of a kv
//   head sum over its group here: no atomics, no second pass.
// The probabilities are recomputed in both dq and dkv (FlashAttention-2 computes dq inside the
// key loop with atomic adds; WGSL has no float atomics).
// Staging, slots and variants as in the forward (see its header): every loop iteration ("slot")
// ends with the loop's only barrier; with NBUF = 2 a slot computes one step from one staging
// buffer while its global loads for the next land in the other (dkv adds a slot per tile that
// swaps pᵀ for dsᵀ); NBUF = 1 (PK = 16, for 16 KiB of workgroup memory: 9.8 KiB) takes two
// slots a step and writes the weights a quarter tile at a time. The head dim (any value up to
// 128) is a run-time value; NV = 1 (head dim <= 64) or 2 picks the register blocks. The rows of
// a streamed product run two an iteration to a run-time bound (lavapipe compiles every workgroup
// read as a branchy sequence of its own). Compile time on lavapipe, CPU seconds: grads 4.5-6,
// dq_main 1.7, dkv_main 2.7, delta 0.1 (the previous dq and dkv: 1.2, 1.4).
//
// Performance (H200, Dawn/Vulkan, f32, T 2048, causal, FLOPs counted as 2.5x the forward's): the
// previous kernels (one invocation per row, arrays in local memory) measured 0.83 TFLOP/s.
// Prediction: 6-11 TFLOP/s counted. Reasoning: dq and dkv run 3 and 4 matmul-like products a
// tile, 7 for the 5 counted (recomputing s and dp costs 40%), at about the forward's density
// (~70% of issue slots FMAs: no row-max exchange, but a slot's step carries 128 FMAs in s/dp and
// 256 in the streamed products against ~50 instructions of slot logic and staging); dkv holds
// ~100 f32 of accumulators and weights an invocation (NV = 2), so it fits 1-2 workgroups an SM
// where the forward fits 2-3. One dispatch for dq and dkv keeps the SMs busy while the dkv
// workgroups of the first key blocks (twice the average work) finish. Not measured yet.

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
  four: u32, // 4, as a run-time value: the bound of loops that no compiler should unroll
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

override NV: u32 = 2u; // vec4 output columns per invocation and row: head dim <= 64 · NV
override PK: u32 = 64u; // columns of ds (or p) in workgroup memory at once: 64 (a tile), or 16 with NBUF = 1
override NBUF: u32 = 2u; // staging buffers (1: two slots a step)
override PT_SLOTS: u32 = PK * 16u; // [PK columns][64 rows / 4]
override STAGE_SLOTS: u32 = NBUF * 256u;
override VK: u32 = 16u / NV; // rows streamed per step of the ds·k, p·dO and ds·q products

const BR = 64u; // rows (queries in dq, keys in dkv) per workgroup
const BC = 64u; // columns (keys in dq, queries in dkv) per tile
const DK = 4u; // head-dim values per s/dp step
const RV = 256u; // vec4 slots per staging buffer: one per invocation
const NONE = 0xffffffffu;
const LOG2E = 1.4426950408889634;

// An s/dp step: four [DK][16] arrays (4 rows a vec4): the block's two tensors, then the tile's
// (dq: q, dO, k, v; dkv: k, v, q, dO). A streaming step: [VK rows][16 · NV].
var<workgroup> stage: array<vec4f, STAGE_SLOTS>;
var<workgroup> pt: array<vec4f, PT_SLOTS>;
// Per block row: its range [lo, hi) of columns (empty for rows without any) and segment id.
var<workgroup> rows: array<vec4u, 64>;
// The tile's columns: segment ids; dkv: lse · log2 e and D of its queries.
var<workgroup> col_seg: array<u32, 64>;
var<workgroup> col_lse: array<f32, 64>;
var<workgroup> col_d: array<f32, 64>;
// The workgroup's range [lo, hi) of keys (dq) or queries (dkv), gathered with atomics (zeroed
// at the start, so lo is kept as its complement and both are maxima), then published uniformly.
var<workgroup> range_hi: atomic<u32>;
var<workgroup> range_lo_not: atomic<u32>;
var<workgroup> range: vec2u;

/** A 4x4 register block: r{i} = row i, four columns. */
struct Block {
  r0: vec4f,
  r1: vec4f,
  r2: vec4f,
  r3: vec4f,
}

/** Publishes the union of the invocations' ranges (has = this invocation has one) to all. */
fn workgroup_range(has: bool, lo: u32, hi: u32, tid: u32) -> vec2u {
  if (has) {
    atomicMax(&range_hi, hi);
    atomicMax(&range_lo_not, ~lo);
  }
  workgroupBarrier();
  if (tid == 0u) { range = vec2u(~atomicLoad(&range_lo_not), atomicLoad(&range_hi)); }
  return workgroupUniformLoad(&range); // empty (lo = 2^32 - 1, hi = 0) if no invocation has one
}

/** Element `at` of q (which = 0), k (1), v (2) or dO (3) as f32 when ok, else 0. */
fn ld(which: u32, at: u32, ok: bool) -> f32 {
  var x = 0.0;
  if (ok) {
    switch (which) {
      case 0u: { x = f32(q[at]); }
      case 1u: { x = f32(k[at]); }
      case 2u: { x = f32(v[at]); }
      default: { x = f32(dout[at]); }
    }
  }
  return x;
}

/**
 * Four values of q (which = 0), k (1), v (2) or dO (3) for head h / kv head kvh of batch row b:
 * rows row .. row+3 at head-dim value d (by_rows), or values d .. d+3 of row `row`; zeros past
 * the tensor's rows or the head dim. Written out, not a loop: the four loads are in flight at once.
 */
fn load4(which: u32, by_rows: bool, row: u32, d: u32, b: u32, h: u32, kvh: u32) -> vec4f {
  let dim = p.head_dim;
  let is_q = which == 0u || which == 3u;
  let n = select(p.skv, p.tq, is_q);
  let stride = select(p.kv_heads, p.heads, is_q) * dim;
  let at = select((b * p.skv + row) * stride + kvh * dim, (b * p.tq + row) * stride + h * dim, is_q) + d;
  let inc = select(1u, stride, by_rows);
  let r = vec4u(row) + select(vec4u(0u), vec4u(0u, 1u, 2u, 3u), by_rows);
  let c = vec4u(d) + select(vec4u(0u, 1u, 2u, 3u), vec4u(0u), by_rows);
  let ok = (r < vec4u(n)) & (c < vec4u(dim));
  return vec4f(ld(which, at, ok.x), ld(which, at + inc, ok.y), ld(which, at + 2u * inc, ok.z), ld(which, at + 3u * inc, ok.w));
}

/** The segment id of key position j (0 past skv). */
fn ld_seg(j: u32, seg_base: u32) -> u32 {
  var x = 0u;
  if (j < p.skv) { x = seg[seg_base + j]; }
  return x;
}

/** Rows ty·4 + 0..3 of the block: (lo, hi, segment) as three vec4s. */
fn my_rows(ty: u32) -> array<vec4u, 3> {
  var lo4 = vec4u(0u);
  var hi4 = vec4u(0u);
  var seg4 = vec4u(0u);
  for (var r = 0u; r < p.four; r++) {
    let x = rows[ty * 4u + r];
    let at = vec4u(0u, 1u, 2u, 3u) == vec4u(r);
    lo4 = select(lo4, vec4u(x.x), at);
    hi4 = select(hi4, vec4u(x.y), at);
    seg4 = select(seg4, vec4u(x.z), at);
  }
  return array<vec4u, 3>(lo4, hi4, seg4);
}

/** Columns tx·4 + 0..3 of the tile: segment ids, and (dkv) lse · log2 e and D. */
fn my_cols(tx: u32) -> array<vec4f, 3> {
  var sg = vec4u(0u);
  var ls = vec4f(0.0);
  var dd = vec4f(0.0);
  for (var c = 0u; c < p.four; c++) {
    let at = vec4u(0u, 1u, 2u, 3u) == vec4u(c);
    sg = select(sg, vec4u(col_seg[tx * 4u + c]), at);
    ls = select(ls, vec4f(col_lse[tx * 4u + c]), at);
    dd = select(dd, vec4f(col_d[tx * 4u + c]), at);
  }
  return array<vec4f, 3>(bitcast<vec4f>(sg), ls, dd);
}

/** Which entries of a row are allowed: columns cv in the row's range [lo, hi) and of its segment. */
fn allowed(cv: vec4u, lo: u32, hi: u32, sg: u32, cs: vec4u) -> vec4<bool> {
  return (cv >= vec4u(lo)) & (cv < vec4u(hi)) & ((cs == vec4u(sg)) | vec4<bool>(p.use_segments == 0u));
}

/** s += a·bᵀ and dp += c·eᵀ over the DK head-dim values staged at `buf` ([a][c][b][e], rows of a and c at ty, of b and e at tx). */
fn sd_step(s: ptr<function, Block>, dp: ptr<function, Block>, buf: u32, tx: u32, ty: u32) {
  for (var dd = 0u; dd < DK; dd++) {
    let a = stage[buf + dd * 16u + ty];
    let c = stage[buf + 64u + dd * 16u + ty];
    let bb = stage[buf + 128u + dd * 16u + tx];
    let e = stage[buf + 192u + dd * 16u + tx];
    (*s).r0 = fma(vec4f(a.x), bb, (*s).r0);
    (*s).r1 = fma(vec4f(a.y), bb, (*s).r1);
    (*s).r2 = fma(vec4f(a.z), bb, (*s).r2);
    (*s).r3 = fma(vec4f(a.w), bb, (*s).r3);
    (*dp).r0 = fma(vec4f(c.x), e, (*dp).r0);
    (*dp).r1 = fma(vec4f(c.y), e, (*dp).r1);
    (*dp).r2 = fma(vec4f(c.z), e, (*dp).r2);
    (*dp).r3 = fma(vec4f(c.w), e, (*dp).r3);
  }
}

/** acc += w·x for row kk of the VK rows of x staged at `buf`, whose weights start at column `poff` of pt. */
fn stream_row(xa: ptr<function, Block>, xb: ptr<function, Block>, buf: u32, poff: u32, kk: u32, tx: u32, ty: u32) {
  let w = pt[(poff + kk) * 16u + ty];
  let va = stage[buf + kk * 16u * NV + tx];
  (*xa).r0 = fma(vec4f(w.x), va, (*xa).r0);
  (*xa).r1 = fma(vec4f(w.y), va, (*xa).r1);
  (*xa).r2 = fma(vec4f(w.z), va, (*xa).r2);
  (*xa).r3 = fma(vec4f(w.w), va, (*xa).r3);
  if (NV == 2u) {
    let vb = stage[buf + kk * 32u + 16u + tx];
    (*xb).r0 = fma(vec4f(w.x), vb, (*xb).r0);
    (*xb).r1 = fma(vec4f(w.y), vb, (*xb).r1);
    (*xb).r2 = fma(vec4f(w.z), vb, (*xb).r2);
    (*xb).r3 = fma(vec4f(w.w), vb, (*xb).r3);
  }
}

/**
 * acc += w·x over the VK rows staged at `buf`: two rows an iteration, to a run-time bound (4 or 8
 * iterations: unrolled further, the rows' workgroup reads would cost lavapipe seconds of compile
 * time; GPU compilers unroll such loops partially by themselves).
 */
fn stream_step(xa: ptr<function, Block>, xb: ptr<function, Block>, buf: u32, poff: u32, tx: u32, ty: u32) {
  for (var k2 = 0u; k2 < VK * p.four / 8u; k2++) {
    stream_row(xa, xb, buf, poff, 2u * k2, tx, ty);
    stream_row(xa, xb, buf, poff, 2u * k2 + 1u, tx, ty);
  }
}

/** Writes columns quarter · PK .. + PK of a block (this invocation's columns tx·4 + 0..3, if there) to pt, column-major. */
fn fill(x: Block, quarter: u32, tx: u32, ty: u32) {
  if ((tx * 4u) / PK == quarter) {
    let at = (tx * 4u - quarter * PK) * 16u + ty;
    for (var c = 0u; c < p.four; c++) { pt[at + c * 16u] = vec4f(x.r0[c], x.r1[c], x.r2[c], x.r3[c]); }
  }
}

/** Row r (0-3) of a block. */
fn pick(x: Block, r: u32) -> vec4f {
  return select(select(select(x.r0, x.r1, r == 1u), x.r2, r == 2u), x.r3, r == 3u);
}

/** Rows ty·4 + 0..3 of dq (those below tq): columns tx·4 + 0..3 of xa, and 64 + those of xb (NV = 2), times scale. */
fn write_dq(xa: Block, xb: Block, row0: u32, b: u32, h: u32, tx: u32) {
  let dim = p.head_dim;
  for (var e = 0u; e < p.four * NV; e++) {
    let r = e % 4u;
    let c0 = (e / 4u) * 64u + tx * 4u;
    if (row0 + r < p.tq) {
      let x = select(pick(xa, r), pick(xb, r), e >= 4u) * p.scale;
      let at = ((b * p.tq + row0 + r) * p.heads + h) * dim + c0;
      for (var c = 0u; c < min(p.four, dim - min(c0, dim)); c++) { dq[at + c] = T(x[c]); }
    }
  }
}

/** Rows ty·4 + 0..3 of dk (times scale) and dv (those below skv), as write_dq. */
fn write_dkv(ka: Block, kb: Block, va: Block, vb: Block, row0: u32, b: u32, kvh: u32, tx: u32) {
  let dim = p.head_dim;
  for (var e = 0u; e < p.four * NV; e++) {
    let r = e % 4u;
    let c0 = (e / 4u) * 64u + tx * 4u;
    if (row0 + r < p.skv) {
      let xk = select(pick(ka, r), pick(kb, r), e >= 4u) * p.scale;
      let xv = select(pick(va, r), pick(vb, r), e >= 4u);
      let at = ((b * p.skv + row0 + r) * p.kv_heads + kvh) * dim + c0;
      for (var c = 0u; c < min(p.four, dim - min(c0, dim)); c++) {
        dk[at + c] = T(xk[c]);
        dv[at + c] = T(xv[c]);
      }
    }
  }
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

/**
 * dq, dk and dv in one dispatch: the flat workgroup index f picks a dkv workgroup (the first
 * kv_heads · key blocks, longest first) or a dq one (then, longest first). One dispatch, so the
 * many short dq workgroups fill the GPU while the few long dkv ones (a kv head's key block walks
 * the queries of its whole GQA group) finish: apart, the dkv dispatch would run its longest
 * workgroups nearly alone.
 */
@compute @workgroup_size(256)
fn grads(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let f = wg.y * nwg.x + wg.x;
  let n_kv = (p.skv + BR - 1u) / BR * p.kv_heads;
  let nqb = (p.tq + BR - 1u) / BR;
  if (f < n_kv) {
    dkv_tiles(f % p.kv_heads, (f / p.kv_heads) * BR, wg.z, tid); // the first key blocks have the most queries
  } else if (f < n_kv + nqb * p.heads) {
    let g = f - n_kv;
    dq_tiles(g % p.heads, (nqb - 1u - g / p.heads) * BR, wg.z, tid); // the last query blocks have the most keys
  }
}

/** dq alone (for devices with fewer than 9 storage buffers a stage): grid [heads, query blocks, batch]. */
@compute @workgroup_size(256)
fn dq_main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  dq_tiles(wg.x, (nwg.y - 1u - wg.y) * BR, wg.z, tid);
}

/** dk and dv alone: grid [kv heads, key blocks, batch]. */
@compute @workgroup_size(256)
fn dkv_main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  dkv_tiles(wg.x, wg.y * BR, wg.z, tid);
}

/** dq of queries q0 .. q0 + 63 of head h, batch row b. */
fn dq_tiles(h: u32, q0: u32, b: u32, tid: u32) {
  let kvh = h / (p.heads / p.kv_heads);
  let tx = tid % 16u;
  let ty = tid / 16u;
  let seg_base = b * p.skv;
  let use_seg = p.use_segments != 0u;

  // Query q0 + tid's segment and key range [lo, hi), as the forward computes them.
  var has = false;
  var lo = 0u;
  var hi = 0u;
  if (tid < BR) {
    let i = q0 + tid;
    var sg = 0u;
    if (i < p.tq) {
      let pos = p.causal_offset + i;
      sg = 1u;
      if (use_seg) { sg = seg[seg_base + pos]; }
      if (sg != 0u) {
        has = true;
        hi = pos + 1u;
        if (p.window != 0u && hi > p.window) { lo = hi - p.window; }
        if (use_seg) {
          var j = lo;
          while (j < pos && seg[seg_base + j] != sg) { j++; }
          lo = j;
        }
      }
    }
    rows[tid] = select(vec4u(0u), vec4u(lo, hi, sg, 0u), has);
  }
  let wr = workgroup_range(has, lo, hi, tid);

  // This invocation's rows: lse · log2 e and D.
  var lse4 = vec4f(0.0);
  var d4 = vec4f(0.0);
  for (var r = 0u; r < p.four; r++) {
    let i = q0 + ty * 4u + r;
    if (i < p.tq) {
      let st = ((b * p.heads + h) * p.tq + i) * 2u;
      let at = vec4u(0u, 1u, 2u, 3u) == vec4u(r);
      lse4 = select(lse4, vec4f(stats[st]), at);
      d4 = select(d4, vec4f(stats[st + 1u]), at);
    }
  }

  let nd = (p.head_dim + DK - 1u) / DK; // s/dp steps per tile
  let spt = nd + BC / VK; // steps per tile: s/dp, then ds·k
  var tiles = 0u;
  if (wr.y > wr.x) { tiles = (wr.y - wr.x + BC - 1u) / BC; }
  // Slots: NBUF = 2, a step each (computing it, staging the next); ds goes to pt in the slot of
  // the last s/dp step. NBUF = 1, two a step (computing, then staging the next with the quarter
  // of ds it reads).
  let slots = select(2u * spt, spt, NBUF == 2u);
  var total = 0u;
  if (tiles > 0u) { total = 1u + tiles * slots; }

  var s = Block(); // scores (base 2), then ds, of rows ty·4 + i and keys tx·4 + 0..3
  var dp = Block();
  var xa = Block(); // Σ ds k: columns tx·4 + 0..3
  var xb = Block(); // columns 64 + tx·4 + 0..3 (NV = 2)

  var t = 0u;
  var sl = NONE; // slot within the tile (NONE: the first slot, which stages step 0)
  for (var gs = 0u; gs < total; gs++) {
    var cmp = NONE; // step computed
    var sto = 0u; // step staged (spt: step 0 of the next tile)
    var fq = NONE; // quarter of ds written to pt
    if (sl != NONE) {
      sto = NONE;
      if (NBUF == 2u) {
        cmp = sl;
        sto = sl + 1u;
        if (sl == nd - 1u) { fq = 0u; }
      } else {
        let g = sl / 2u;
        if (sl % 2u == 0u) {
          cmp = g;
        } else {
          sto = g + 1u;
          if (g + 1u >= nd && g + 1u < spt && ((g + 1u - nd) * VK) % PK == 0u) { fq = (g + 1u - nd) * VK / PK; }
        }
      }
    }
    var sto_t = t;
    if (sto == spt) {
      sto_t = t + 1u;
      sto = 0u;
    }
    let staging = sto != NONE && sto_t < tiles;
    let j0 = wr.x + t * BC;
    let sto_j0 = wr.x + sto_t * BC;

    var u = vec4f(0.0);
    var sk = 0u;
    if (staging) {
      if (sto < nd) {
        // q (scaled), dO, k, v: one head-dim value of four rows.
        let which = (0x2130u >> ((tid / 64u) * 4u)) & 15u; // parts 0..3: q, dO, k, v
        let row = select(sto_j0, q0, tid < 128u) + (tid % 16u) * 4u;
        u = load4(which, true, row, sto * DK + (tid % 64u) / 16u, b, h, kvh) * select(1.0, p.scale_log2, which == 0u);
        if (sto == 0u && use_seg && tid < BC) { sk = ld_seg(sto_j0 + tid, seg_base); }
      } else {
        u = load4(1u, false, sto_j0 + (sto - nd) * VK + tid / (16u * NV), (tid % (16u * NV)) * 4u, b, h, kvh);
      }
    }

    if (cmp != NONE) {
      let buf = select(0u, ((t * spt + cmp) % 2u) * RV, NBUF == 2u);
      if (cmp < nd) {
        if (cmp == 0u) {
          s = Block();
          dp = Block();
        }
        sd_step(&s, &dp, buf, tx, ty);
      } else {
        stream_step(&xa, &xb, buf, ((cmp - nd) * VK) % PK, tx, ty);
      }
    }

    if (fq == 0u) {
      // ds = p (dp - D), p = exp2(s - lse) where allowed, else 0.
      let jv = vec4u(j0 + tx * 4u) + vec4u(0u, 1u, 2u, 3u);
      let ks = bitcast<vec4u>(my_cols(tx)[0]);
      let rr = my_rows(ty);
      s.r0 = select(vec4f(0.0), exp2(s.r0 - lse4.x) * (dp.r0 - d4.x), allowed(jv, rr[0].x, rr[1].x, rr[2].x, ks));
      s.r1 = select(vec4f(0.0), exp2(s.r1 - lse4.y) * (dp.r1 - d4.y), allowed(jv, rr[0].y, rr[1].y, rr[2].y, ks));
      s.r2 = select(vec4f(0.0), exp2(s.r2 - lse4.z) * (dp.r2 - d4.z), allowed(jv, rr[0].z, rr[1].z, rr[2].z, ks));
      s.r3 = select(vec4f(0.0), exp2(s.r3 - lse4.w) * (dp.r3 - d4.w), allowed(jv, rr[0].w, rr[1].w, rr[2].w, ks));
    }
    if (fq != NONE) { fill(s, fq, tx, ty); }

    if (staging) {
      stage[select(0u, ((sto_t * spt + sto) % 2u) * RV, NBUF == 2u) + tid] = u;
      if (sto == 0u && tid < BC) { col_seg[tid] = sk; }
    }
    workgroupBarrier();
    sl++; // NONE + 1 = 0
    if (sl == slots) {
      sl = 0u;
      t++;
    }
  }

  write_dq(xa, xb, q0 + ty * 4u, b, h, tx);
}

/** dk and dv of keys j0 .. j0 + 63 of kv head kvh, batch row b, summed over the heads of its group. */
fn dkv_tiles(kvh: u32, j0: u32, b: u32, tid: u32) {
  let group = p.heads / p.kv_heads;
  let tx = tid % 16u;
  let ty = tid / 16u;
  let seg_base = b * p.skv;
  let use_seg = p.use_segments != 0u;

  // Key j0 + tid's queries [lo, hi) (as query indices): positions from max(j, offset) (causal)
  // to the window's end and the last query of the key's segment (scanning back from the end:
  // exact for any layout of segment ids).
  var has = false;
  var lo = 0u;
  var hi = 0u;
  if (tid < BR) {
    let j = j0 + tid;
    var sg = 0u;
    if (j < p.skv) {
      sg = 1u;
      if (use_seg) { sg = seg[seg_base + j]; }
      let plo = max(j, p.causal_offset);
      var phi = p.causal_offset + p.tq;
      if (p.window != 0u) { phi = min(phi, j + p.window); }
      if (sg != 0u && use_seg) {
        while (phi > plo && seg[seg_base + phi - 1u] != sg) { phi--; }
      }
      if (sg != 0u && phi > plo) {
        has = true;
        lo = plo - p.causal_offset;
        hi = phi - p.causal_offset;
      }
    }
    rows[tid] = select(vec4u(0u), vec4u(lo, hi, sg, 0u), has);
  }
  let wr = workgroup_range(has, lo, hi, tid);

  let nd = (p.head_dim + DK - 1u) / DK; // s/dp steps per tile
  let nr = BC / VK; // streaming steps per product
  let spt = nd + 2u * nr; // steps per tile: s/dp, p·dO, ds·q
  var qtiles = 0u;
  if (wr.y > wr.x) { qtiles = (wr.y - wr.x + BC - 1u) / BC; }
  let tiles = group * qtiles; // (query head of the group, query tile)
  // Slots as in dq_tiles, pᵀ playing ds's part; dsᵀ replaces it in pt before the ds·q steps: with
  // NBUF = 2 in a slot of its own after the p·dO steps (no math, nothing staged), with NBUF = 1
  // a quarter at a time with the staging of the step that reads it.
  let slots = select(2u * spt, spt + 1u, NBUF == 2u);
  var total = 0u;
  if (tiles > 0u) { total = 1u + tiles * slots; }

  var s = Block(); // scores sᵀ (base 2), then pᵀ, of keys ty·4 + i and queries tx·4 + 0..3
  var dp = Block(); // dpᵀ, then dsᵀ
  var ka = Block(); // Σ ds q: columns tx·4 + 0..3
  var kb = Block(); // columns 64 + tx·4 + 0..3 (NV = 2)
  var va = Block(); // Σ p dO
  var vb = Block();

  var t = 0u; // tile: query head hh of the group, query tile qt
  var hh = 0u;
  var qt = 0u;
  var sl = NONE;
  for (var gs = 0u; gs < total; gs++) {
    var cmp = NONE; // step computed
    var sto = 0u; // step staged (spt: step 0 of the next tile)
    var fq = NONE; // quarter written to pt: 0 .. 64 / PK - 1 of pᵀ, then of dsᵀ
    if (sl != NONE) {
      sto = NONE;
      if (NBUF == 2u) {
        if (sl < nd + nr) {
          cmp = sl;
          sto = sl + 1u;
          if (sl == nd - 1u) { fq = 0u; }
        } else if (sl == nd + nr) {
          fq = 1u;
        } else {
          cmp = sl - 1u;
          sto = sl;
        }
      } else {
        let g = sl / 2u;
        if (sl % 2u == 0u) {
          cmp = g;
        } else {
          sto = g + 1u;
          let r = g + 1u - nd; // streaming step staged
          if (g + 1u >= nd && g + 1u < spt && ((r % nr) * VK) % PK == 0u) { fq = (r / nr) * (BC / PK) + (r % nr) * VK / PK; }
        }
      }
    }
    var sto_t = t;
    var sto_hh = hh;
    var sto_qt = qt;
    if (sto == spt) {
      sto_t = t + 1u;
      sto = 0u;
      sto_qt = qt + 1u;
      if (sto_qt == qtiles) {
        sto_qt = 0u;
        sto_hh = hh + 1u;
      }
    }
    let staging = sto != NONE && sto_t < tiles;
    let i0 = wr.x + qt * BC;
    let sto_h = kvh * group + sto_hh;
    let sto_i0 = wr.x + sto_qt * BC;

    var u = vec4f(0.0);
    var cs = 0u;
    var cl = 0.0;
    var cd = 0.0;
    if (staging) {
      if (sto < nd) {
        // k (scaled), v, q, dO: one head-dim value of four rows.
        let which = (0x3021u >> ((tid / 64u) * 4u)) & 15u; // parts 0..3: k, v, q, dO
        let row = select(sto_i0, j0, tid < 128u) + (tid % 16u) * 4u;
        u = load4(which, true, row, sto * DK + (tid % 64u) / 16u, b, sto_h, kvh) * select(1.0, p.scale_log2, which == 1u);
        let i = sto_i0 + tid;
        if (sto == 0u && tid < BC && i < p.tq) {
          // The tile's queries: segment ids, lse · log2 e, D.
          let st = ((b * p.heads + sto_h) * p.tq + i) * 2u;
          cl = stats[st];
          cd = stats[st + 1u];
          if (use_seg) { cs = seg[seg_base + p.causal_offset + i]; }
        }
      } else {
        let r = sto - nd;
        let which = select(0u, 3u, r < nr); // dO, then q
        u = load4(which, false, sto_i0 + (r % nr) * VK + tid / (16u * NV), (tid % (16u * NV)) * 4u, b, sto_h, kvh);
      }
    }

    if (cmp != NONE) {
      let buf = select(0u, ((t * spt + cmp) % 2u) * RV, NBUF == 2u);
      if (cmp < nd) {
        if (cmp == 0u) {
          s = Block();
          dp = Block();
        }
        sd_step(&s, &dp, buf, tx, ty);
      } else if (cmp < nd + nr) {
        stream_step(&va, &vb, buf, ((cmp - nd) * VK) % PK, tx, ty);
      } else {
        stream_step(&ka, &kb, buf, ((cmp - nd - nr) * VK) % PK, tx, ty);
      }
    }

    if (fq == 0u) {
      // pᵀ = exp2(sᵀ - lse) where allowed, else 0; dsᵀ = pᵀ (dpᵀ - D).
      let iv = vec4u(i0 + tx * 4u) + vec4u(0u, 1u, 2u, 3u);
      let cols = my_cols(tx);
      let qs = bitcast<vec4u>(cols[0]);
      let ql = cols[1];
      let qd = cols[2];
      let rr = my_rows(ty);
      s.r0 = select(vec4f(0.0), exp2(s.r0 - ql), allowed(iv, rr[0].x, rr[1].x, rr[2].x, qs));
      s.r1 = select(vec4f(0.0), exp2(s.r1 - ql), allowed(iv, rr[0].y, rr[1].y, rr[2].y, qs));
      s.r2 = select(vec4f(0.0), exp2(s.r2 - ql), allowed(iv, rr[0].z, rr[1].z, rr[2].z, qs));
      s.r3 = select(vec4f(0.0), exp2(s.r3 - ql), allowed(iv, rr[0].w, rr[1].w, rr[2].w, qs));
      dp.r0 = s.r0 * (dp.r0 - qd);
      dp.r1 = s.r1 * (dp.r1 - qd);
      dp.r2 = s.r2 * (dp.r2 - qd);
      dp.r3 = s.r3 * (dp.r3 - qd);
    }
    if (fq != NONE) {
      let quarters = BC / PK;
      if (fq < quarters) { fill(s, fq, tx, ty); } else { fill(dp, fq - quarters, tx, ty); }
    }

    if (staging) {
      stage[select(0u, ((sto_t * spt + sto) % 2u) * RV, NBUF == 2u) + tid] = u;
      if (sto == 0u && tid < BC) {
        col_seg[tid] = cs;
        col_lse[tid] = cl;
        col_d[tid] = cd;
      }
    }
    workgroupBarrier();
    sl++;
    if (sl == slots) {
      sl = 0u;
      t++;
      qt++;
      if (qt == qtiles) {
        qt = 0u;
        hh++;
      }
    }
  }

  write_dkv(ka, kb, va, vb, j0 + ty * 4u, b, kvh, tx);
}

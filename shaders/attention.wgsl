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
// Tiling (FlashAttention-2 on SIMT, register-blocked like shaders/tile128.wgsl): one workgroup of
// 256 per (block of BR = 64 query rows, query head, batch row); the grid is [heads, blocks, batch]
// with the blocks in reverse order, so the longest (causal) blocks start first and the heads of a
// GQA group, which read the same keys, run side by side. The workgroup walks its key range in
// tiles of BC = 64 keys. Invocation (tx, ty) = (tid % 16, tid / 16) owns rows ty·4 + 0..3 of the
// block: scores for keys tx·4 + 0..3 of the tile, and the output accumulator for head-dim columns
// tx·4 + 0..3 (and 64 + tx·4 + 0..3 when NV = 2), each a struct of four named vec4s (one per
// row: registers, never an indexed array). Per tile:
//   s = q·kᵀ     in steps of DK = 8 head-dim values: q (pre-multiplied by scale · log2 e) and k
//                staged d-major as f32 (a vec4 holds 4 rows or 4 keys at one d); per d, 2 vec4
//                workgroup reads feed 16 FMAs.
//   softmax      mask (causal, window, segments); the row max across the 16 invocations sharing
//                a row, through workgroup memory (red); online rescale in base 2 (exp2 is the
//                only transcendental); the running sum l stays per invocation until the end.
//   o += p·v     p written to workgroup memory key-major (pt); v staged in steps of 16 / NV keys;
//                per key 1 + NV vec4 reads feed 16 · NV FMAs.
// Every step stages one vec4 per invocation: its global loads (four, written out so that they are
// in flight together) are issued before the math of the current step and stored after it.
// The loop runs over "slots", each ending with the loop's only barrier. NBUF = 2 (two staging
// buffers): a slot computes one step and stages the next into the other buffer; one extra slot
// per tile reads the row maxima and writes p. NBUF = 1 (for 16 KiB of workgroup memory): a step
// takes two slots, computing then staging; p is written a quarter tile (PK = 16 keys) at a time,
// with the staging of the v step that first reads it. Variants (attention.ts picks them):
// NV 1 or 2 (head dim up to 64 or 128) x {PK 64, NBUF 2: 29.3 KiB of workgroup memory;
// PK 16, NBUF 1: 13.3 KiB}.
// The workgroup's key range is the union of its rows' ranges: causal (keys after the block's last
// row are never loaded), window, and for packed rows each row's segment start (the first key with
// its segment id), so tiles wholly before a document are skipped.
//
// Compile time (lavapipe, which CI runs on): lavapipe compiles every memory access to a branchy
// sequence and every barrier to a coroutine suspension, and Mesa unrolls loops of known trip
// count (min(4, x) included), so the head dim and the key range are run-time loop bounds, small
// loops run to bounds passed in Params (four, sixteen), the p·v step runs four keys an
// iteration to a run-time bound, and the loop has a single barrier. A pipeline compiles in
// 1.6-2.5 s of CPU (the previous kernel: ~1.2 s).
//
// Performance (H200, Dawn/Vulkan, f32, T 2048, causal): the previous kernel (one invocation per
// row, q and o as arrays in local memory, one workgroup read per FMA) measured 0.93-0.97 TFLOP/s.
// Prediction: 10-18 TFLOP/s at head dim 128 (Llama 3.1 8B), 8-14 at head dim 64 (Llama 3.2 1B).
// Reasoning: per tile an invocation issues 4096 FMAs at head dim 128 (2048 at 64) against 448
// (256) vec4 workgroup reads (a warp's reads of its two row groups are broadcasts, of its 16
// column groups one contiguous 256 B line: shared-memory bandwidth is not the limit), ~50
// instructions per slot (slot logic, four global loads and their bounds, the staging store, the
// barrier) x 25 (13) slots and ~150 of softmax: ~68% of issue slots are FMAs, against ~90% for
// the 30 TFLOP/s tiled matmul, whose barriers are 3x sparser (one per 512 FMAs, here ~160).
// ~100 registers an invocation: 2 workgroups per SM. Causal diagonal tiles waste ~3%; blocks
// start longest first, so the tail is short. Not measured yet.

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
  four: u32, // 4 and 16, as run-time values: bounds of loops that no compiler should unroll
  sixteen: u32,
}

@group(0) @binding(0) var<storage, read> q: array<T>;
@group(0) @binding(1) var<storage, read> k: array<T>;
@group(0) @binding(2) var<storage, read> v: array<T>;
@group(0) @binding(3) var<storage, read> seg: array<u32>;
@group(0) @binding(4) var<storage, read_write> o: array<T>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

override NV: u32 = 2u; // vec4 output columns per invocation and row: head dim <= 64 · NV
override PK: u32 = 64u; // keys of p in workgroup memory at once: 64 (the tile), or 16 with NBUF = 1
override NBUF: u32 = 2u; // staging buffers (1: two barriers per step)
override PT_SLOTS: u32 = PK * 16u; // p, key-major: [PK][64 rows / 4]
override STAGE_SLOTS: u32 = NBUF * 256u;

const BR = 64u; // query rows per workgroup
const BC = 64u; // keys per tile
const DK = 8u; // head-dim values per q·k step
const RV = 256u; // vec4 slots per staging buffer: one per invocation
const NEG = -3.0e38; // "minus infinity", kept finite: WGSL does not promise infinities
const NEG_HALF = -1.0e38; // scores above this are allowed keys
const LN2 = 0.6931471805599453;
const NONE = 0xffffffffu;

// A q·k step: q [DK][16] (4 rows a vec4) then k [DK][16] (4 keys a vec4). A v step: [16 / NV keys][16 · NV].
var<workgroup> stage: array<vec4f, STAGE_SLOTS>;
var<workgroup> pt: array<vec4f, PT_SLOTS>;
var<workgroup> red: array<vec4f, 256>; // [16 key groups][16 row groups]: row maxima, then sums
// Per row: its key range [lo, hi) (empty for rows without keys) and segment id (lo, hi, seg, 0).
var<workgroup> rows: array<vec4u, 64>;
var<workgroup> key_seg: array<u32, 64>; // segment ids of the tile's keys
// The workgroup's key range [lo, hi), gathered with atomics (workgroup memory starts zeroed,
// so lo is kept as its complement and both are maxima), then published uniformly.
var<workgroup> range_hi: atomic<u32>;
var<workgroup> range_lo_not: atomic<u32>;
var<workgroup> range: vec2u;

/** A 4x4 register block: r{i} = row i, four columns (keys or head-dim values). */
struct Block {
  r0: vec4f,
  r1: vec4f,
  r2: vec4f,
  r3: vec4f,
}

/** Horizontal max and sum of a vec4. */
fn hmax(x: vec4f) -> f32 {
  return max(max(x.x, x.y), max(x.z, x.w));
}
fn hsum(x: vec4f) -> f32 {
  return (x.x + x.y) + (x.z + x.w);
}

/** Row r (0-3) of a block. */
fn pick(x: Block, r: u32) -> vec4f {
  return select(select(select(x.r0, x.r1, r == 1u), x.r2, r == 2u), x.r3, r == 3u);
}

/**
 * This invocation's vec4 of step `st` of the tile at key j0: in a q·k step (st < nd) one head-dim
 * value of four q rows (tid < 128, scaled) or four k rows; in a v step four columns of a v row.
 */
fn load_unit(tid: u32, st: u32, nd: u32, j0: u32, q0: u32, b: u32, h: u32, kvh: u32) -> vec4f {
  let dim = p.head_dim;
  // Four loads written out, not a loop: their latencies overlap.
  if (st < nd) {
    let is_q = tid < 128u;
    let d = st * DK + (tid % 128u) / 16u;
    let row = select(j0, q0, is_q) + (tid % 16u) * 4u;
    let n = select(p.skv, p.tq, is_q);
    let stride = select(p.kv_heads, p.heads, is_q) * dim;
    let at = select((b * p.skv + row) * stride + kvh * dim, (b * p.tq + row) * stride + h * dim, is_q) + d;
    let ok = d < dim;
    let r = vec4f(
      ld_qk(is_q, at, ok && row < n),
      ld_qk(is_q, at + stride, ok && row + 1u < n),
      ld_qk(is_q, at + 2u * stride, ok && row + 2u < n),
      ld_qk(is_q, at + 3u * stride, ok && row + 3u < n));
    return r * select(1.0, p.scale_log2, is_q);
  }
  let row = j0 + (st - nd) * (16u / NV) + tid / (16u * NV);
  let d = (tid % (16u * NV)) * 4u;
  let at = ((b * p.skv + row) * p.kv_heads + kvh) * dim + d;
  let ok = row < p.skv;
  return vec4f(ld_v(at, ok && d < dim), ld_v(at + 1u, ok && d + 1u < dim), ld_v(at + 2u, ok && d + 2u < dim), ld_v(at + 3u, ok && d + 3u < dim));
}

/** q[at] (is_q) or k[at] as f32 when ok, else 0. */
fn ld_qk(is_q: bool, at: u32, ok: bool) -> f32 {
  var x = 0.0;
  if (ok) {
    if (is_q) { x = f32(q[at]); } else { x = f32(k[at]); }
  }
  return x;
}

/** v[at] as f32 when ok, else 0. */
fn ld_v(at: u32, ok: bool) -> f32 {
  var x = 0.0;
  if (ok) { x = f32(v[at]); }
  return x;
}

/** The segment id of key position j (0 past skv). */
fn ld_seg(j: u32, seg_base: u32) -> u32 {
  var x = 0u;
  if (j < p.skv) { x = seg[seg_base + j]; }
  return x;
}

/** s += q·kᵀ over the DK head-dim values staged at `buf`. */
fn qk_step(s: ptr<function, Block>, buf: u32, tx: u32, ty: u32) {
  for (var dd = 0u; dd < DK; dd++) {
    let a = stage[buf + dd * 16u + ty];
    let b = stage[buf + 128u + dd * 16u + tx];
    (*s).r0 = fma(vec4f(a.x), b, (*s).r0);
    (*s).r1 = fma(vec4f(a.y), b, (*s).r1);
    (*s).r2 = fma(vec4f(a.z), b, (*s).r2);
    (*s).r3 = fma(vec4f(a.w), b, (*s).r3);
  }
}

/** o += p·v for key kk of the 16 / NV keys staged at `buf`, whose weights start at key `poff` of pt. */
fn pv_key(oa: ptr<function, Block>, ob: ptr<function, Block>, buf: u32, poff: u32, kk: u32, tx: u32, ty: u32) {
  let w = pt[(poff + kk) * 16u + ty];
  let va = stage[buf + kk * 16u * NV + tx];
  (*oa).r0 = fma(vec4f(w.x), va, (*oa).r0);
  (*oa).r1 = fma(vec4f(w.y), va, (*oa).r1);
  (*oa).r2 = fma(vec4f(w.z), va, (*oa).r2);
  (*oa).r3 = fma(vec4f(w.w), va, (*oa).r3);
  if (NV == 2u) {
    let vb = stage[buf + kk * 32u + 16u + tx];
    (*ob).r0 = fma(vec4f(w.x), vb, (*ob).r0);
    (*ob).r1 = fma(vec4f(w.y), vb, (*ob).r1);
    (*ob).r2 = fma(vec4f(w.z), vb, (*ob).r2);
    (*ob).r3 = fma(vec4f(w.w), vb, (*ob).r3);
  }
}

/**
 * o += p·v over the 16 / NV keys staged at `buf`: four keys an iteration, to a run-time bound
 * (2 or 4 iterations: unrolled whole, the keys' workgroup reads would cost lavapipe seconds of
 * compile time).
 */
fn pv_step(oa: ptr<function, Block>, ob: ptr<function, Block>, buf: u32, poff: u32, tx: u32, ty: u32) {
  for (var k4 = 0u; k4 < (16u / NV) * p.four / 16u; k4++) {
    let kk = 4u * k4;
    pv_key(oa, ob, buf, poff, kk, tx, ty);
    pv_key(oa, ob, buf, poff, kk + 1u, tx, ty);
    pv_key(oa, ob, buf, poff, kk + 2u, tx, ty);
    pv_key(oa, ob, buf, poff, kk + 3u, tx, ty);
  }
}

/** Multiplies row i of a block by a[i]. */
fn scale_rows(x: ptr<function, Block>, a: vec4f) {
  (*x).r0 *= a.x;
  (*x).r1 *= a.y;
  (*x).r2 *= a.z;
  (*x).r3 *= a.w;
}

/** Masks a row of scores (keys jv; the row's range [lo, hi) and segment sg): NEG where not allowed. */
fn mask_row(s: vec4f, jv: vec4u, lo: u32, hi: u32, sg: u32, ks: vec4u) -> vec4f {
  let ok = (jv >= vec4u(lo)) & (jv < vec4u(hi)) & ((ks == vec4u(sg)) | vec4<bool>(p.use_segments == 0u));
  return select(vec4f(NEG), s, ok);
}

/** exp2(s - m) where s holds an allowed score, else 0. */
fn weights(s: vec4f, m: f32) -> vec4f {
  return select(vec4f(0.0), exp2(s - vec4f(m)), s > vec4f(NEG_HALF));
}

/** This invocation's rows ty·4 + 0..3: (lo, hi, segment) as three vec4s. */
fn my_rows(ty: u32, n4: u32) -> array<vec4u, 3> {
  var lo4 = vec4u(0u);
  var hi4 = vec4u(0u);
  var seg4 = vec4u(0u);
  for (var r = 0u; r < n4; r++) {
    let x = rows[ty * 4u + r];
    let at = vec4u(0u, 1u, 2u, 3u) == vec4u(r);
    lo4 = select(lo4, vec4u(x.x), at);
    hi4 = select(hi4, vec4u(x.y), at);
    seg4 = select(seg4, vec4u(x.z), at);
  }
  return array<vec4u, 3>(lo4, hi4, seg4);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let h = wg.x;
  let b = wg.z;
  let q0 = (nwg.y - 1u - wg.y) * BR; // longest blocks first
  let kvh = h / (p.heads / p.kv_heads);
  let tx = tid % 16u;
  let ty = tid / 16u;
  let seg_base = b * p.skv;
  let use_seg = p.use_segments != 0u;
  // Small loops run to bounds known only at run time: unrolled, their memory accesses would be
  // compiled many times over (lavapipe compiles each access as a branchy sequence of its own:
  // seconds of compile time; a bound like min(4, x) does not stop Mesa unrolling).
  let n4 = p.four;
  let n16 = p.sixteen;

  // Row tid's segment and key range [lo, hi); empty for rows past tq and padding rows.
  if (tid < BR) {
    let i = q0 + tid;
    var lo = 0u;
    var hi = 0u;
    var sg = 0u;
    if (i < p.tq) {
      let pos = p.causal_offset + i;
      sg = 1u;
      if (use_seg) { sg = seg[seg_base + pos]; }
      if (sg != 0u) {
        hi = pos + 1u;
        if (p.window != 0u && hi > p.window) { lo = hi - p.window; }
        if (use_seg) {
          // The first key of this row's segment (at worst pos itself): exact for any layout.
          var j = lo;
          while (j < pos && seg[seg_base + j] != sg) { j++; }
          lo = j;
        }
        atomicMax(&range_hi, hi);
        atomicMax(&range_lo_not, ~lo);
      }
    }
    rows[tid] = vec4u(lo, hi, sg, 0u);
  }
  workgroupBarrier();
  if (tid == 0u) { range = vec2u(~atomicLoad(&range_lo_not), atomicLoad(&range_hi)); }
  let wr = workgroupUniformLoad(&range); // empty (lo = 2^32 - 1, hi = 0) if no row has keys

  let nd = (p.head_dim + DK - 1u) / DK; // q·k steps per tile
  let spt = nd + BC / (16u / NV); // steps per tile: q·k, then v
  var tiles = 0u;
  if (wr.y > wr.x) { tiles = (wr.y - wr.x + BC - 1u) / BC; }
  // Slots: loop iterations, each ending with the loop's one barrier (one barrier in the source:
  // lavapipe compiles each as a coroutine suspension, costly to compile). Slot 0 stages step 0.
  // NBUF = 2, per tile: q·k steps (computing step c, staging c + 1), the softmax slot (weights
  // to pt), v steps (computing one, staging the next, or step 0 of the next tile).
  // NBUF = 1: each step takes two slots, computing then staging; the softmax rides on the slot
  // that stages the first v step, and a quarter of the weights (PK = 16) on the slot that stages
  // its first v step.
  let slots = select(2u * spt, spt + 1u, NBUF == 2u);
  var total = 0u;
  if (tiles > 0u) { total = 1u + tiles * slots; }

  var s = Block(); // scores, then weights, of rows ty·4 + i and keys tx·4 + 0..3
  var oa = Block(); // output columns tx·4 + 0..3
  var ob = Block(); // output columns 64 + tx·4 + 0..3 (NV = 2)
  var m = vec4f(NEG); // running max per row (base 2)
  var l = vec4f(0.0); // this invocation's share of the running sum per row

  var t = 0u; // tile of the slot
  var sl = NONE; // slot within the tile (NONE: the first slot, which stages step 0)
  for (var gs = 0u; gs < total; gs++) {
    var cmp = NONE; // step whose math this slot does
    var sm = false; // softmax: weights from the row maxima
    var pw = NONE; // quarter (or whole) of the tile whose weights this slot writes
    var sto = 0u; // step this slot stages (spt: step 0 of the next tile)
    if (sl != NONE) {
      sto = NONE;
      if (NBUF == 2u) {
        if (sl < nd) {
          cmp = sl;
          sto = sl + 1u;
        } else if (sl == nd) {
          sm = true;
          pw = 0u;
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
          if (g == nd - 1u) {
            sm = true;
            pw = 0u;
          } else if (g >= nd && g + 1u < spt && ((g + 1u - nd) * (16u / NV)) % PK == 0u) {
            pw = (g + 1u - nd) * (16u / NV) / PK;
          }
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

    // The staged unit's global loads, in flight during the math.
    var u = vec4f(0.0);
    var sk = 0u;
    if (staging) {
      u = load_unit(tid, sto, nd, sto_j0, q0, b, h, kvh);
      if (sto == 0u && use_seg && tid < BC) { sk = ld_seg(sto_j0 + tid, seg_base); }
    }

    if (cmp != NONE) {
      let buf = select(0u, ((t * spt + cmp) % 2u) * RV, NBUF == 2u);
      if (cmp < nd) {
        if (cmp == 0u) { s = Block(); }
        qk_step(&s, buf, tx, ty);
        if (cmp == nd - 1u) {
          // Mask; this invocation's row maxima over its 4 keys, to red.
          let jv = vec4u(j0 + tx * 4u) + vec4u(0u, 1u, 2u, 3u);
          var ks = vec4u(0u);
          for (var c = 0u; c < n4; c++) { ks = select(ks, vec4u(key_seg[tx * 4u + c]), vec4u(0u, 1u, 2u, 3u) == vec4u(c)); }
          let rr = my_rows(ty, n4);
          s.r0 = mask_row(s.r0, jv, rr[0].x, rr[1].x, rr[2].x, ks);
          s.r1 = mask_row(s.r1, jv, rr[0].y, rr[1].y, rr[2].y, ks);
          s.r2 = mask_row(s.r2, jv, rr[0].z, rr[1].z, rr[2].z, ks);
          s.r3 = mask_row(s.r3, jv, rr[0].w, rr[1].w, rr[2].w, ks);
          red[tx * 16u + ty] = vec4f(hmax(s.r0), hmax(s.r1), hmax(s.r2), hmax(s.r3));
        }
      } else {
        pv_step(&oa, &ob, buf, ((cmp - nd) * (16u / NV)) % PK, tx, ty);
      }
    }

    if (sm) {
      // The tile's row maxima over the 16 invocations of a row. Rescale what was accumulated
      // under the old max (alpha = 0 at a row's first allowed key, 1 while it has none), then
      // the weights under the new one.
      var mt = vec4f(NEG);
      for (var g = 0u; g < n4; g++) {
        mt = max(max(mt, red[g * 64u + ty]), red[g * 64u + 16u + ty]);
        mt = max(max(mt, red[g * 64u + 32u + ty]), red[g * 64u + 48u + ty]);
      }
      let m_new = max(m, mt);
      let alpha = exp2(m - m_new);
      m = m_new;
      s.r0 = weights(s.r0, m.x);
      s.r1 = weights(s.r1, m.y);
      s.r2 = weights(s.r2, m.z);
      s.r3 = weights(s.r3, m.w);
      l = l * alpha + vec4f(hsum(s.r0), hsum(s.r1), hsum(s.r2), hsum(s.r3));
      scale_rows(&oa, alpha);
      if (NV == 2u) { scale_rows(&ob, alpha); }
    }

    if (pw != NONE && (tx * 4u) / PK == pw) {
      let at = (tx * 4u - pw * PK) * 16u + ty;
      let w = s; // a value, indexed at run time (the variable s must stay in registers)
      for (var c = 0u; c < n4; c++) { pt[at + c * 16u] = vec4f(w.r0[c], w.r1[c], w.r2[c], w.r3[c]); }
    }

    if (staging) {
      stage[select(0u, ((sto_t * spt + sto) % 2u) * RV, NBUF == 2u) + tid] = u;
      if (sto == 0u && tid < BC) { key_seg[tid] = sk; }
    }
    workgroupBarrier();
    sl++; // NONE + 1 = 0
    if (sl == slots) {
      sl = 0u;
      t++;
    }
  }

  // The row sums: this invocation's shares, summed over the 16 invocations of a row.
  red[tx * 16u + ty] = l;
  workgroupBarrier();
  var lt = vec4f(0.0);
  for (var g = 0u; g < n16; g++) { lt += red[g * 16u + ty]; }
  let inv = select(vec4f(0.0), 1.0 / max(lt, vec4f(1e-30)), lt > vec4f(0.0));
  let ls = select(vec4f(0.0), (m + log2(max(lt, vec4f(1e-30)))) * LN2, lt > vec4f(0.0));
  // Row r of the block, columns half · 64 + tx·4 + 0..3; the lse of row r at tx = 0.
  for (var e = 0u; e < n4 * NV; e++) {
    let r = e % 4u;
    let i = q0 + ty * 4u + r;
    let half = e / 4u;
    let c0 = half * 64u + tx * 4u;
    if (i < p.tq) {
      let x = select(pick(oa, r), pick(ob, r), half == 1u) * inv[r];
      let base = ((b * p.tq + i) * p.heads + h) * p.head_dim + c0;
      for (var c = 0u; c < min(n4, p.head_dim - min(c0, p.head_dim)); c++) { o[base + c] = T(x[c]); }
      if (tx == 0u && half == 0u) { lse[(b * p.heads + h) * p.tq + i] = ls[r]; }
    }
  }
}

// Causal grouped-query attention forward on subgroup matrices (chromium_experimental_subgroup_matrix,
// f16 x f16 -> f32 16x16x16): the tensor-core twin of shaders/attention.wgsl, with the same inputs,
// masks, outputs and conventions (see its header), for f16 storage and head dims that are multiples
// of 16: q, k, v in f16 or f32 (Q), o in f16 or f32 (S) (f32 q, k, v are rounded to f16 on their way
// into workgroup memory, as PyTorch's bf16 attention rounds them, with f32 accumulation and an f32 o;
// training keeps them f16 beside an f32 o: half the bytes and registers of its tiles' fetches).
// src/engine/attention-mma.ts prepends the head dim's constants and writes out the marked parts: the products, unrolled, so that every matrix load reads its block of workgroup
// memory at a constant offset (Chrome's robustness guards any other load with a branch and a copy:
// shaders/matmul-mma.wgsl).
//
// One pass over the keys, the online softmax with lazy rescaling. Per tile: s = q·kᵀ (staged in
// workgroup memory, where lanes read it), p = exp2(s - m) written as f16, l = Σ p, o += p·v in
// result matrices; o / l on the way out. A result matrix is opaque (its elements cannot be scaled
// in registers), so a row's reference m moves only when a tile's max passes it by more than
// RESCALE (base 2): p stays below 2^RESCALE (well inside f16), and o is scaled by 2^(m_old - m_new)
// through workgroup memory only in the (rare, workgroup-uniform) tiles where some row moved.
// With LSE_KNOWN (training's recompute of a layer before its backward: lse holds the forward's
// logsumexp) m = lse, so p = exp2(s - m) <= 1 is already normalised (l ~ 1, still divided by) and
// never moves, and lse is left as it is.
//
// One workgroup of 4 subgroups (128 invocations) per (block of BR = 64 query rows, query head,
// batch row); subgroup sg owns rows sg·16 + 0..15 of the block. Its q rows stay in registers as
// DS = D / 16 left matrices, its o as DS result matrices. Per tile of BC = 64 keys, k (then v) is
// staged in `tile` as four blocks of 16 rows (rows padded to SK = D + 8 halves so that the rows of
// one matrix load fall into different banks); the next tile's rows are loaded into registers while
// the tensor cores work, and stored after the next barrier. Scores go to `stage` (f32, per
// subgroup) where lanes take over: lane pairs share a row, each four keys in eight, and
// combine through subgroupShuffleXor. Masks as in the forward: causal, window, segments (the keys'
// ids per tile in key_seg, each row's own in registers).

@group(0) @binding(0) var<storage, read> q: array<vec4<Q>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<Q>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<Q>>;
@group(0) @binding(3) var<storage, read> seg: array<u32>;
@group(0) @binding(4) var<storage, read_write> o: array<S>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

const BR = 64u; // query rows per workgroup
const BC = 64u; // keys per tile
const SS = 72u; // row stride of `stage` (f32; matrix strides are multiples of 16 bytes; lanes' vec4 reads miss each other's banks)
const SP = 72u; // row stride of `pw` (f16)
const V4 = D / 4u; // vec4s in a row of q, k or v
const NEG = -3.0e38; // "minus infinity", kept finite as in attention.wgsl
const NEG_HALF = -1.0e38;
const LN2 = 0.6931471805599453;
const RESCALE = 8.0; // how far (base 2) a row's max may pass its reference m before o is rescaled
override LSE_KNOWN: bool = false;

var<workgroup> tile: array<array<f16, 16u * SK>, 4>; // q at the start, then k or v: four blocks of 16 rows
var<workgroup> stage: array<array<f32, 16u * SS>, 4>; // per subgroup: its 16 rows x 64 scores, then o
var<workgroup> pw: array<array<f16, 16u * SP>, 4>; // per subgroup: its 16 rows x 64 weights
var<workgroup> key_seg: array<array<u32, BC>, 2>; // by tile parity: a tile's ids are written while the last one's may be read
var<workgroup> range_hi: atomic<u32>;
var<workgroup> range_lo_not: atomic<u32>;
var<workgroup> range: vec2u;
var<workgroup> moved_sg: array<u32, 4>; // per subgroup (its lane 0 writes it every tile): some row's m moved

/** Share i of invocation tid in a tile of 64 rows: (row, vec4 column). */
fn share_at(tid: u32, i: u32) -> vec2u {
  let f = tid + i * 128u;
  return vec2u(f / V4, f % V4);
}

/**
 * Share i of the k (or v) rows from key j0 (zeros past skv), as stored: it is rounded to f16 only
 * when stored into the tile, after the products (an f32 load converted at once would stall the
 * subgroup on it, and the loads would not overlap the products).
 */
fn fetch_kv(from_v: bool, tid: u32, i: u32, j0: u32, b: u32, kvh: u32) -> vec4<Q> {
  let s = share_at(tid, i);
  let j = j0 + s.x;
  var x = vec4<Q>(0.0);
  if (j < p.skv) {
    let at = ((b * p.skv + j) * p.kv_heads + kvh) * V4 + s.y;
    if (from_v) { x = v[at]; } else { x = k[at]; }
  }
  return x;
}

/** Share i of the q rows from query q0 (zeros past tq). */
fn fetch_q(tid: u32, i: u32, q0: u32, b: u32, h: u32) -> vec4<Q> {
  let s = share_at(tid, i);
  let r = q0 + s.x;
  var x = vec4<Q>(0.0);
  if (r < p.tq) { x = q[((b * p.tq + r) * p.heads + h) * V4 + s.y]; }
  return x;
}

/**
 * Stores share i of invocation tid (share_at's row and column). This index, the scores' reads in
 * score4 and the weights' stores are reduced by constants (`% 64u`, a loop's c as ((c / 4u) % n) * 4u:
 * the same values), which Tint's range analysis bounds, so Chrome's robustness clamps none of them:
 * the 8B forward 0.823 -> 0.757 ms on the H200 (bench/tensor-core-notes.md, session 19).
 */
fn store_tile(tid: u32, i: u32, y: vec4<Q>) {
  let x = qkv_f16(y);
  let f = tid + i * 128u;
  let r = (f / V4) % 64u;
  let at = (r % 16u) * SK + (f % V4) * 4u;
  tile[r / 16u][at] = x.x;
  tile[r / 16u][at + 1u] = x.y;
  tile[r / 16u][at + 2u] = x.z;
  tile[r / 16u][at + 3u] = x.w;
}

/** Scores of columns c .. c + 3 of row rl of this subgroup's staged tile (keys from j0), in base 2; NEG where not allowed. */
fn score4(sg: u32, rl: u32, c: u32, j0: u32, t: u32, r: Row) -> vec4f {
  let j = vec4u(j0 + c) + vec4u(0u, 1u, 2u, 3u);
  let cb = ((c / 4u) % (BC / 4u)) * 4u;
  let at = (rl % 16u) * SS + cb;
  let s = vec4f(stage[sg % 4u][at], stage[sg % 4u][at + 1u], stage[sg % 4u][at + 2u], stage[sg % 4u][at + 3u]) * p.scale_log2;
  var ok = (j >= vec4u(r.lo)) & (j < vec4u(r.hi));
  if (p.use_segments != 0u) {
    let ks = t % 2u;
    ok &= vec4u(key_seg[ks][cb], key_seg[ks][cb + 1u], key_seg[ks][cb + 2u], key_seg[ks][cb + 3u]) == vec4u(r.sg);
  }
  return select(vec4f(NEG), s, ok);
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let h = wg.x;
  let b = wg.z;
  let q0 = (nwg.y - 1u - wg.y) * BR; // longest blocks first
  let kvh = h / (p.heads / p.kv_heads);
  let sg = tid / 32u;
  let lane = tid % 32u;
  let rl = lane / 2u; // this lane's row within the subgroup's 16
  let hb = lane % 2u; // and which of the row's keys it takes: four in eight

  // This lane's row (both lanes of a row compute it); the workgroup's key range from all rows.
  let i = q0 + sg * 16u + rl;
  let row = query_row(b, i);
  if (row.hi > row.lo) {
    atomicMax(&range_hi, row.hi);
    atomicMax(&range_lo_not, ~row.lo);
  }
  // q's rows through the tile into registers.
  //{{Q_FETCH}}
  workgroupBarrier();
  if (tid == 0u) { range = vec2u(~atomicLoad(&range_lo_not), atomicLoad(&range_hi)); }
  //{{Q_LOAD}}
  let wr = workgroupUniformLoad(&range); // also the barrier after q's loads; empty if no row has keys
  var tiles = 0u;
  if (wr.y > wr.x) { tiles = (wr.y - wr.x + BC - 1u) / BC; }

  // m: the known lse (base 2), else the row's reference max, set by its first keys.
  var m = NEG;
  var l = 0.0;
  if (LSE_KNOWN && i < p.tq) { m = lse[(b * p.heads + h) * p.tq + i] / LN2; }
  //{{KV_DECL}}
  //{{O_DECL}}
  if (tiles > 0u) {
    //{{K_FETCH_FIRST}}
  }
  for (var t = 0u; t < tiles; t++) {
    let j0 = wr.x + t * BC;
    workgroupBarrier(); // the previous tile's p·v has read the tile and pw
    //{{KV_STORE}}
    if (tid < BC) { key_seg[t % 2u][tid] = key_segment(b, j0 + tid); }
    workgroupBarrier();
    //{{V_FETCH}}
    //{{S_PRODUCT}}
    workgroupBarrier();
    // The tile's max over the row (both lanes of it); past m + RESCALE, m moves there and l (and o,
    // below) are scaled by f = 2^(m_old - m_new). A row's first keys set m (l and o are still 0).
    var f = 1.0;
    var moves = false;
    if (!LSE_KNOWN) {
      var mt = vec4f(NEG);
      for (var c = 4u * hb; c < BC; c += 8u) { mt = max(mt, score4(sg, rl, c, j0, t, row)); }
      var mx = max(max(mt.x, mt.y), max(mt.z, mt.w));
      mx = max(mx, subgroupShuffleXor(mx, 1u));
      if (mx > m + RESCALE) {
        if (m > NEG_HALF) {
          f = exp2(m - mx);
          l *= f;
          moves = true;
        }
        m = mx;
      }
      let any = subgroupAny(moves);
      if (lane == 0u) { moved_sg[sg] = u32(any); }
    }
    for (var c = 4u * hb; c < BC; c += 8u) {
      let s = score4(sg, rl, c, j0, t, row);
      let w = select(vec4f(0.0), exp2(s - vec4f(m)), s > vec4f(NEG_HALF));
      l += (w.x + w.y) + (w.z + w.w);
      let at = rl * SP + ((c / 4u) % (BC / 4u)) * 4u;
      pw[sg][at] = f16(w.x);
      pw[sg][at + 1u] = f16(w.y);
      pw[sg][at + 2u] = f16(w.z);
      pw[sg][at + 3u] = f16(w.w);
    }
    //{{KV_STORE}}
    // The barrier before p·v (the tile holds v, pw is written), and whether o is rescaled first.
    var moved = false;
    if (LSE_KNOWN) { workgroupBarrier(); } else {
      let ms = workgroupUniformLoad(&moved_sg);
      moved = (ms[0] | ms[1] | ms[2] | ms[3]) != 0u;
    }
    if (moved) {
      //{{O_RESCALE}}
    }
    if (t + 1u < tiles) {
      //{{K_FETCH_NEXT}}
    }
    //{{PV_PRODUCT}}
  }

  l += subgroupShuffleXor(l, 1u);
  let inv = select(0.0, 1.0 / l, l > 0.0);
  // o / l through the stage, 64 columns at a time; lse.
  //{{O_STORE}}
  if (hb == 0u && i < p.tq && !LSE_KNOWN) {
    lse[(b * p.heads + h) * p.tq + i] = select(0.0, (m + log2(l)) * LN2, l > 0.0);
  }
}

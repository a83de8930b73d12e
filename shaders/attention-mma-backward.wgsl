// Causal grouped-query attention backward on subgroup matrices: the tensor-core twin of
// shaders/attention-backward.wgsl (its math, masks and conventions; see its header), for head dims
// that are multiples of 32 in f16 or f32 storage (S; q, k and v in Q: S, or f16 beside an f32 S). src/engine/attention-mma.ts prepends the head
// dim's constants and writes out the marked parts: the products, unrolled, every matrix load at a
// constant offset into its block of workgroup memory (shaders/matmul-mma.wgsl says why).
//
// f16 operands. q, k, v are rounded to f16 as the forward rounds them. dO is scaled first: in
// training it is tiny (the loss is a mean over tokens), and it and ds = p (dp - D) would underflow
// f16. delta records each row's max |dO|; dq scales row i of dO by the power of two 2^σ_i that brings
// that max into [1, 2) (ds and dq of the row scale with it; the epilogue scales back, exactly); dkv,
// whose dv = Σ_i p_ij dO_i sums rows inside one result matrix, takes one power of two for all the
// rows it visits (their largest max). ds is rounded to f16 for ds·k and dsᵀ·q, p (times 2^15) for pᵀ·dO.
//
// Entry points (each binds only its buffers; the wrapper binds them by number):
//   delta  one invocation per (b, h, i): stats = (lse · log2 e, D_i = dO_i · o_i) as in the SIMT
//          kernel, then after all rows' pairs max |dO_i|. Grid [rows / 64] (2-D).
//   dq     4 subgroups per (block of 64 queries, query head, batch row), the longest blocks first;
//          subgroup sg owns queries sg·16 + 0..15: q and the scaled dO as left matrices in
//          registers, dq as D / 16 result matrices. Per tile of 32 keys (k and v staged in `kvt`):
//          s = q·kᵀ and dp = dO·vᵀ (result matrices, staged to `dst`), lanes make ds (f16, `dsw`),
//          dq += ds·k.
//   dkv    8 subgroups per (block of 64 keys, kv head, batch row): subgroups 2c and 2c + 1 share
//          keys c·16 + 0..15 (k and v as left matrices in registers) and own half of dk's and dv's
//          columns each (D / 32 result matrices of each). For each query head of the GQA group, per
//          tile of 32 queries (q and dO staged in `blk` as blocks of 16 rows x half the columns, so
//          every load has a constant offset): sᵀ = k·qᵀ and dpᵀ = v·dOᵀ for the subgroup's 16 queries
//          (staged to `kst`), lanes make pᵀ and dsᵀ (f16, shared by the pair), then dv += pᵀ·dO and
//          dk += dsᵀ·q over all 32 queries. dk and dv sum the group's heads here: no atomics.

@group(0) @binding(0) var<storage, read> q: array<vec4<Q>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<Q>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<Q>>;
@group(0) @binding(3) var<storage, read> seg: array<u32>;
@group(0) @binding(4) var<storage, read> dout: array<vec4<S>>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> dq: array<S>;
@group(0) @binding(7) var<storage, read_write> dk: array<S>;
@group(0) @binding(8) var<storage, read_write> dv: array<S>;
@group(0) @binding(9) var<storage, read> o: array<vec4<S>>;
@group(0) @binding(10) var<storage, read> lse: array<f32>;
@group(0) @binding(11) var<uniform> p: Params;

const V4 = D / 4u; // vec4s in a row
const DH = D / 2u; // columns of a dkv subgroup's half
const SQ = 40u; // row stride of dq's stage (f32) and of the f16 weights (32 columns + 8)
const NEG = -3.0e38;
const NEG_HALF = -1.0e38;
const LOG2E = 1.4426950408889634;
// pᵀ goes to f16 times 2^15 (p <= 1, so at most 32768): small weights stay out of f16's subnormals,
// where a key that only small weights reach would lose its dv's precision; dv is scaled back.
const P_SCALE = 32768.0;

/** (2^σ, 2^-σ) bringing a row's max |x| into [1, 2); (1, 1) for 0 and what is not finite. */
fn pow2_scale(mx: f32) -> vec2f {
  if (!(mx > 0.0) || mx > 3.0e38) { return vec2f(1.0); }
  let e = clamp(-floor(log2(mx)), -126.0, 126.0);
  return vec2f(exp2(e), exp2(-e));
}

/**
 * ds clamped to f16's finite range before it is rounded: |ds| <= p |dp - D| with dO scaled to at
 * most 2, so only values of v in the hundreds could reach 65504, but an infinity would turn dq or
 * dk into NaN.
 */
fn to_f16_range(x: vec4f) -> vec4f {
  return clamp(x, vec4f(-65504.0), vec4f(65504.0));
}

fn q_at(b: u32, i: u32, h: u32) -> u32 { return ((b * p.tq + i) * p.heads + h) * V4; }
fn kv_at(b: u32, j: u32, kvh: u32) -> u32 { return ((b * p.skv + j) * p.kv_heads + kvh) * V4; }

/** Whether query i may attend key j: the forward's masks (segment ids 1 when segments are off). */
fn allowed(i: u32, j: u32, sq: u32, sk: u32) -> bool {
  let pos = p.causal_offset + i;
  var ok = i < p.tq && j < p.skv && j <= pos && sk != 0u && sq == sk;
  if (p.window != 0u) { ok = ok && pos - j < p.window; }
  return ok;
}

// ---- delta -----------------------------------------------------------------------------------

@compute @workgroup_size(64)
fn delta(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = (wg.y * nwg.x + wg.x) * 64u + lid;
  if (idx >= p.rows) { return; }
  let i = idx % p.tq;
  let bh = idx / p.tq;
  let at = q_at(bh / p.heads, i, bh % p.heads);
  var d = 0.0;
  var mx = 0.0;
  for (var c = 0u; c < V4; c++) {
    let g = vec4f(dout[at + c]);
    d += dot(g, vec4f(o[at + c]));
    let a = abs(g);
    mx = max(mx, max(max(a.x, a.y), max(a.z, a.w)));
  }
  stats[2u * idx] = lse[idx] * LOG2E;
  stats[2u * idx + 1u] = d;
  stats[2u * p.rows + idx] = mx;
}

// ---- dq ---------------------------------------------------------------------------------------

var<workgroup> kvt: array<array<f16, 16u * SK>, 4>; // q, then dO, then per tile k (blocks 0, 1) and v (2, 3)
var<workgroup> dst: array<array<f32, 32u * SQ>, 4>; // per subgroup: s (rows 0..15), dp (rows 16..31)
var<workgroup> dsw: array<array<f16, 16u * SQ>, 4>; // per subgroup: ds
var<workgroup> dq_seg: array<array<u32, 32>, 2>; // the tile's keys' segment ids, by tile parity
var<workgroup> range_hi: atomic<u32>;
var<workgroup> range_lo_not: atomic<u32>;
var<workgroup> range: vec2u;

/**
 * Row r, vec4 column c of a 64-row tile into kvt (four blocks of 16 rows). Its index, store_blk's and
 * dq's score reads are reduced by constants (the same values), which Tint's range analysis bounds, so
 * Chrome's robustness clamps none of them: the 8B backward 1.767 -> 1.678 ms (as in the forward).
 */
fn store_kvt(r: u32, c: u32, x: vec4<f16>) {
  let rr = r % 64u;
  let at = (rr % 16u) * SK + (c % V4) * 4u;
  kvt[rr / 16u][at] = x.x;
  kvt[rr / 16u][at + 1u] = x.y;
  kvt[rr / 16u][at + 2u] = x.z;
  kvt[rr / 16u][at + 3u] = x.w;
}

/** Share s of a 32-key tile of k (or v) from key j0, as stored (zeros past skv): rounded to f16 when stored, after the products (as in the forward). */
fn dq_fetch_kv(from_v: bool, tid: u32, s: u32, j0: u32, b: u32, kvh: u32) -> vec4<Q> {
  let f = tid + s * 128u;
  let j = j0 + f / V4;
  var x = vec4<Q>(0.0);
  if (j < p.skv) {
    let at = kv_at(b, j, kvh) + f % V4;
    if (from_v) { x = v[at]; } else { x = k[at]; }
  }
  return x;
}

fn dq_store_kv(from_v: bool, tid: u32, s: u32, x: vec4<Q>) {
  let f = tid + s * 128u;
  store_kvt(select(0u, 32u, from_v) + f / V4, f % V4, qkv_f16(x));
}

@compute @workgroup_size(128)
fn dq_main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let h = wg.x;
  let b = wg.z;
  let q0 = (nwg.y - 1u - wg.y) * 64u; // longest blocks first
  let kvh = h / (p.heads / p.kv_heads);
  let sg = tid / 32u;
  let lane = tid % 32u;
  let rl = lane / 2u;
  let hb = lane % 2u;
  let i = q0 + sg * 16u + rl;
  let row = query_row(b, i);
  if (row.hi > row.lo) {
    atomicMax(&range_hi, row.hi);
    atomicMax(&range_lo_not, ~row.lo);
  }
  // This lane's row: lse · log2 e, D, dO's scale.
  var lse2 = 0.0;
  var dd = 0.0;
  var gs = vec2f(1.0);
  if (i < p.tq) {
    let idx = (b * p.heads + h) * p.tq + i;
    lse2 = stats[2u * idx];
    dd = stats[2u * idx + 1u];
    gs = pow2_scale(stats[2u * p.rows + idx]);
  }
  // q, then dO (each row scaled by its power of two), through kvt into registers.
  for (var s = 0u; s < SH; s++) {
    let f = tid + s * 128u;
    let r = q0 + f / V4;
    var x = vec4<f16>(0.0);
    if (r < p.tq) { x = qkv_f16(q[q_at(b, r, h) + f % V4]); }
    store_kvt(f / V4, f % V4, x);
  }
  workgroupBarrier();
  if (tid == 0u) { range = vec2u(~atomicLoad(&range_lo_not), atomicLoad(&range_hi)); }
  //{{DQ_Q_LOAD}}
  let wr = workgroupUniformLoad(&range);
  for (var s = 0u; s < SH; s++) {
    let f = tid + s * 128u;
    let r = q0 + f / V4;
    var x = vec4<f16>(0.0);
    if (r < p.tq) {
      let scale = pow2_scale(stats[2u * p.rows + (b * p.heads + h) * p.tq + r]).x;
      x = to_f16(vec4<S>(vec4f(dout[q_at(b, r, h) + f % V4]) * scale)); // at most 2 in magnitude
    }
    store_kvt(f / V4, f % V4, x);
  }
  workgroupBarrier();
  //{{DQ_O_LOAD}}
  var tiles = 0u;
  if (wr.y > wr.x) { tiles = (wr.y - wr.x + 31u) / 32u; }
  //{{DQ_DECL}}
  if (tiles > 0u) {
    //{{DQ_FETCH_FIRST}}
  }
  for (var t = 0u; t < tiles; t++) {
    let j0 = wr.x + t * 32u;
    workgroupBarrier(); // the last tile's ds·k has read kvt and dsw (and, first, the loads of dO)
    //{{DQ_STORE}}
    if (tid < 32u) { dq_seg[t % 2u][tid] = key_segment(b, j0 + tid); }
    workgroupBarrier();
    if (t + 1u < tiles) {
      //{{DQ_FETCH_NEXT}}
    }
    //{{DQ_S_PRODUCT}}
    workgroupBarrier();
    for (var c = 4u * hb; c < 32u; c += 8u) {
      let cb = ((c / 4u) % (32u / 4u)) * 4u;
      let at = rl * SQ + cb;
      let s4 = vec4f(dst[sg][at], dst[sg][at + 1u], dst[sg][at + 2u], dst[sg][at + 3u]) * p.scale_log2 - vec4f(lse2);
      let at2 = at + 16u * SQ;
      let dp4 = vec4f(dst[sg][at2], dst[sg][at2 + 1u], dst[sg][at2 + 2u], dst[sg][at2 + 3u]);
      let j = vec4u(j0 + c) + vec4u(0u, 1u, 2u, 3u);
      let ks = vec4u(dq_seg[t % 2u][cb], dq_seg[t % 2u][cb + 1u], dq_seg[t % 2u][cb + 2u], dq_seg[t % 2u][cb + 3u]);
      let ok = (j >= vec4u(row.lo)) & (j < vec4u(row.hi)) & ((ks == vec4u(row.sg)) | vec4<bool>(p.use_segments == 0u));
      let p4 = select(vec4f(0.0), exp2(s4), ok);
      let ds = to_f16_range(p4 * (dp4 - vec4f(dd * gs.x)));
      dsw[sg][at] = f16(ds.x);
      dsw[sg][at + 1u] = f16(ds.y);
      dsw[sg][at + 2u] = f16(ds.z);
      dsw[sg][at + 3u] = f16(ds.w);
    }
    workgroupBarrier();
    //{{DQ_PRODUCT}}
  }
  // dq = scale · 2^-σ · Σ ds·k, through the stage 32 columns at a time.
  //{{DQ_OUT}}
}

// ---- dkv --------------------------------------------------------------------------------------

// q and dO of a 32-query tile: block (tensor · 2 + row block) · 2 + column half, tensor 0 q, 1 dO.
// First k and v of the block's 64 keys pass through it: block row block · 2 + column half.
var<workgroup> blk: array<array<f16, 16u * SKH>, 8>;
var<workgroup> kst: array<array<f32, 512>, 8>; // per subgroup: sᵀ (0..255), dpᵀ (256..511), 16 columns a row
var<workgroup> pw: array<array<f16, 16u * SQ>, 4>; // per 16 keys: pᵀ of the tile's 32 queries
var<workgroup> dsw_t: array<array<f16, 16u * SQ>, 4>; // and dsᵀ
var<workgroup> qinfo: array<vec4f, 32>; // per query of the tile: lse · log2 e, D · 2^σ, segment id (bits)
var<workgroup> scale_max: atomic<u32>;
var<workgroup> dkv_hi: atomic<u32>;
var<workgroup> dkv_lo_not: atomic<u32>;
var<workgroup> dkv_range: vec2u;
var<workgroup> dkv_scale: f32;

/** Row r, vec4 column c (of D / 4) into blk block base + (r / 16) · 2 + column half. */
fn store_blk(base: u32, r: u32, c: u32, x: vec4<f16>) {
  let col = (c % V4) * 4u;
  let bi = (base + ((r % 64u) / 16u) * 2u + col / DH) % 8u;
  let at = (r % 16u) * SKH + col % DH;
  blk[bi][at] = x.x;
  blk[bi][at + 1u] = x.y;
  blk[bi][at + 2u] = x.z;
  blk[bi][at + 3u] = x.w;
}

/** Share s of query row i0 + f / V4 of q, f = tid + s · 256, as stored (zeros past tq). */
fn dkv_fetch_q(tid: u32, s: u32, i0: u32, b: u32, h: u32) -> vec4<Q> {
  let f = tid + s * 256u;
  let i = i0 + f / V4;
  var x = vec4<Q>(0.0);
  if (i < p.tq) { x = q[q_at(b, i, h) + f % V4]; }
  return x;
}

/** The same share of dO. */
fn dkv_fetch_do(tid: u32, s: u32, i0: u32, b: u32, h: u32) -> vec4<S> {
  let f = tid + s * 256u;
  let i = i0 + f / V4;
  var x = vec4<S>(0.0);
  if (i < p.tq) { x = dout[q_at(b, i, h) + f % V4]; }
  return x;
}

/** Stores a share of q in f16. */
fn dkv_store_q(tid: u32, s: u32, x: vec4<Q>) {
  let f = tid + s * 256u;
  store_blk(0u, f / V4, f % V4, qkv_f16(x));
}

/** Stores a share of dO in f16, scaled by gs (at most 2 in magnitude). */
fn dkv_store_do(tid: u32, s: u32, x: vec4<S>, gs: f32) {
  let f = tid + s * 256u;
  store_blk(4u, f / V4, f % V4, to_f16(vec4<S>(vec4f(x) * gs)));
}

@compute @workgroup_size(256)
fn dkv_main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let kvh = wg.x;
  let b = wg.z;
  let kb0 = wg.y * 64u; // the first key blocks have the most queries: they start first
  let group = p.heads / p.kv_heads;
  let sg = tid / 32u;
  let lane = tid % 32u;
  let kc = sg / 2u; // the subgroup's 16 keys
  let hd = sg % 2u; // its 16 queries of a tile in sᵀ, its half of dk's and dv's columns
  let r = lane / 2u; // this lane's key within the 16
  let h2 = lane % 2u;
  // Each key's queries [lo, hi) (indices): from its own position (causal) to the window's end
  // and the last query of its segment (scanning back from the end: exact for any layout).
  if (tid < 64u) {
    let j = kb0 + tid;
    let sk = key_segment(b, j);
    if (sk != 0u) {
      let plo = max(j, p.causal_offset);
      var phi = p.causal_offset + p.tq;
      if (p.window != 0u) { phi = min(phi, j + p.window); }
      if (p.use_segments != 0u) {
        while (phi > plo && seg[b * p.skv + phi - 1u] != sk) { phi--; }
      }
      if (phi > plo) {
        atomicMax(&dkv_hi, phi - p.causal_offset);
        atomicMax(&dkv_lo_not, ~(plo - p.causal_offset));
      }
    }
  }
  // k, then v, of the block's keys through blk into registers.
  for (var s = 0u; s < SHK; s++) {
    let f = tid + s * 256u;
    let j = kb0 + f / V4;
    var x = vec4<f16>(0.0);
    if (j < p.skv) { x = qkv_f16(k[kv_at(b, j, kvh) + f % V4]); }
    store_blk(0u, f / V4, f % V4, x);
  }
  workgroupBarrier();
  if (tid == 0u) { dkv_range = vec2u(~atomicLoad(&dkv_lo_not), atomicLoad(&dkv_hi)); }
  //{{DKV_K_LOAD}}
  let wr = workgroupUniformLoad(&dkv_range);
  for (var s = 0u; s < SHK; s++) {
    let f = tid + s * 256u;
    let j = kb0 + f / V4;
    var x = vec4<f16>(0.0);
    if (j < p.skv) { x = qkv_f16(v[kv_at(b, j, kvh) + f % V4]); }
    store_blk(0u, f / V4, f % V4, x);
  }
  // dO's scale for this workgroup: the largest max |dO_i| of the rows it visits, all heads of the group.
  var mx = 0.0;
  if (wr.y > wr.x) {
    for (var e = tid; e < (wr.y - wr.x) * group; e += 256u) {
      let i = wr.x + e % (wr.y - wr.x);
      let h = kvh * group + e / (wr.y - wr.x);
      mx = max(mx, stats[2u * p.rows + (b * p.heads + h) * p.tq + i]);
    }
  }
  atomicMax(&scale_max, bitcast<u32>(mx)); // non-negative floats order as their bits
  workgroupBarrier();
  if (tid == 0u) { dkv_scale = bitcast<f32>(atomicLoad(&scale_max)); }
  //{{DKV_V_LOAD}}
  let gs = pow2_scale(workgroupUniformLoad(&dkv_scale));
  var tiles = 0u;
  if (wr.y > wr.x) { tiles = (wr.y - wr.x + 31u) / 32u; }
  let total = tiles * group;
  let j = kb0 + kc * 16u + r; // this lane's key
  let sk = key_segment(b, j);
  //{{DKV_DECL}}
  if (total > 0u) {
    let i0 = wr.x;
    let h = kvh * group;
    //{{DKV_FETCH}}
  }
  for (var it = 0u; it < total; it++) {
    let h = kvh * group + it / tiles;
    let i0 = wr.x + (it % tiles) * 32u;
    workgroupBarrier(); // the last tile's products have read blk, pw and dsw_t (and, first, the loads of v)
    //{{DKV_STORE}}
    if (tid < 32u) {
      let i = i0 + tid;
      var info = vec4f(0.0);
      if (i < p.tq) {
        let idx = (b * p.heads + h) * p.tq + i;
        var sq = 1u;
        if (p.use_segments != 0u) { sq = seg[b * p.skv + p.causal_offset + i]; }
        info = vec4f(stats[2u * idx], stats[2u * idx + 1u] * gs.x, bitcast<f32>(sq), 0.0);
      }
      qinfo[tid] = info;
    }
    workgroupBarrier();
    if (it + 1u < total) {
      let h = kvh * group + (it + 1u) / tiles;
      let i0 = wr.x + ((it + 1u) % tiles) * 32u;
      //{{DKV_FETCH}}
    }
    //{{DKV_S_PRODUCT}}
    workgroupBarrier();
    for (var e = 0u; e < 2u; e++) {
      let c = 4u * h2 + 8u * e;
      for (var u = 0u; u < 4u; u++) {
        let qi = hd * 16u + c + u; // the query within the tile
        let info = qinfo[qi];
        let ok = allowed(i0 + qi, j, bitcast<u32>(info.z), sk);
        let pp = select(0.0, exp2(kst[sg][r * 16u + c + u] * p.scale_log2 - info.x), ok);
        let ds = to_f16_range(vec4f(pp * (kst[sg][256u + r * 16u + c + u] - info.y))).x;
        pw[kc][r * SQ + qi] = f16(pp * P_SCALE);
        dsw_t[kc][r * SQ + qi] = f16(ds);
      }
    }
    workgroupBarrier();
    //{{DKV_PRODUCT}}
  }
  // dk = scale · 2^-σ · Σ dsᵀ·q, dv = 2^-σ · 2^-15 · Σ (2^15 pᵀ)·dO, a pair of 16x16 matrices at a time.
  //{{DKV_OUT}}
}

// The LoRA path of a linear layer: y += scale · B (A x), as two thin products (PEFT layout:
// lora_A [r, K] = [r, in], lora_B [N, r] = [out, r]; f32 master weights in both numeric modes).
//   down: out[m, j] = scale Σ_c g[m, c] · W(j, c)      u = x · Aᵀ (the backward: du = s · dy · B)
//   up:   y[m, c]  += scale Σ_j f[m, j] · W(j, c)      y += s · u · Bᵀ (the backward: dx += du · A)
// W(j, c) = w[j · w_j + c · w_c] covers both layouts: A[j, c] (w_j = K, w_c = 1), B[c, j]
// (w_j = 1, w_c = r) and the transposed copy of B the backward makes. r is short (1..64) and
// M, K, N long (M = 2048 tokens, K and N up to 14336), so both products are memory streams of
// 2 FLOP per 4-byte element per column of r: the kernels are built for parallelism and
// coalescing, and keep the r = 16 accumulators of a j-group in named vec4s (Row16), never in an
// array indexed in a loop (which a driver may leave in local memory). r > 16 takes several
// j-groups: the grid's z (down) or a loop (up).
//
// down (vec4 loads; C % 4 == 0 and W contiguous along c, w_c = 1, w_j % 4 == 0): a workgroup
//   takes 8 rows and the whole reduced length C, so each output is summed by one workgroup (no
//   partials, no atomics: deterministic). Invocation t: c-slot t % 8, row group (t / 8) % 4, warp
//   t / 32; it keeps rows m0 + group and m0 + group + 4 and walks c = 4 c-slot + 32 warp + 256 s:
//   per step two 16-byte loads of g (4 rows x 128 contiguous bytes per warp) and 16 of W
//   (the 8 c-slots of a warp read 128 contiguous bytes of a W row, broadcast to its 4 row
//   groups), 128 FMAs as vec4 · mat4x4. Each W element serves 8 rows from registers, so the
//   workgroups stream W (A: 256 KB at K = 4096) from L2 beside their 8 rows of g: ~2x the bytes
//   of g through L2, the price of needing no scratch. At the end the 64 partial sums of each of
//   the 8 x 16 outputs (8 warps x 8 c-slots) meet in workgroup memory: two rounds (row a, row b)
//   of 16 KB, each summed in two levels (4, then 16 terms). Grid ceil(M / 8) x ceil(r / 16).
// down_any: the same walk with scalar, bounds-checked loads and any strides (C % 4 != 0, or B
//   read in place), for tests and odd shapes.
// up: a workgroup takes 256 columns (64 lanes x 4 columns 64 apart: every load and store of y by
//   a warp touches 128 consecutive bytes) and p.rows rows, 4 row slots of 64 invocations taking
//   every fourth row. W(j, c) of its 4 columns x 16 j lives in registers (Row16 each), staged
//   once through workgroup memory so that its loads are coalesced in either layout. Per row: the
//   16 values of f (the same address across the warp: one broadcast load each), then 4 dot
//   products of 16 and a read-modify-write of 4 y values; a slot takes UP_AHEAD rows a trip,
//   their y values read first (many loads in flight). With r > 16 the j-groups run one after
//   the other, each adding to y (so a f16 y is rounded once per group). Grid ceil(C / 256) x
//   ceil(M / p.rows).
// Dropout (training; DROPOUT override of shaders/lora-dropout.wgsl, prepended by the wrapper):
// down reads g = x times its mask factor (u = dropout(x) Aᵀ); up multiplies each output by the
// factor of its element (dx = mask ∘ (du A)); the forward's up does not set DROPOUT.
// Types, declared by the wrapper: `G` = type of g (x or dy), `R` = type of y; f32 accumulation,
// results rounded once to their type when stored. shaders/lora-backward.wgsl (the backward's
// outer products, sums of partials and B's transpose) comes after this source in its module.

struct Params {
  m: u32,          // rows M (tokens)
  k: u32,          // columns C of g (down: the reduced length) or of y (up), and of x (outer)
  r: u32,
  w_j: u32,        // W(j, c) = w[j * w_j + c * w_c]
  w_c: u32,
  rows: u32,       // up, outer: rows per workgroup
  out_t: u32,      // outer: 1 = out is [r, C], 0 = [C, r]
  len: u32,        // outer: elements of one partial (C · r); sum: elements of out
  parts: u32,      // sum: partials added
  accumulate: u32, // add to what the output holds
  scale: f32,
  drop_key: u32,   // dropout (DROPOUT): the draw's key, threshold and 1 / (1 - p)
  drop_threshold: u32,
  drop_scale: f32,
}

// Each entry point uses one view of bindings 0 and 1 (down: vec4; the others: scalar).
@group(0) @binding(0) var<storage, read> g: array<G>;
@group(0) @binding(0) var<storage, read> g4: array<vec4<G>>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> f: array<f32>;             // up, outer: [M, r]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;     // down: [M, r]; outer, sum
@group(0) @binding(4) var<storage, read_write> y: array<R>;         // up: [M, C]
@group(0) @binding(6) var<uniform> p: Params;

const WG = 256u;
const DOWN_ROWS = 8u;
const UP_COLS = 256u;
// Rows of a row slot that `up` takes a trip (2 or 4; lora.ts picks): four where the compiler takes
// it, two on SwiftShader, whose JIT did not finish compiling the four-row kernel.
override UP_AHEAD: u32 = 4u;

/** 16 consecutive columns j of one row. */
struct Row16 { q0: vec4<f32>, q1: vec4<f32>, q2: vec4<f32>, q3: vec4<f32> }

var<workgroup> red: array<vec4<f32>, 1024>; // down, outer: partial sums, [invocation][4]
var<workgroup> wt: array<f32, 1088>;        // up: 64 columns x 16 j of W, rows padded to 17

fn drop_at(i: u32) -> f32 {
  return dropout_factor(i, p.drop_key, p.drop_threshold, p.drop_scale);
}

/** Row16 a + xv · [w0 w1 w2 w3]: component i of xv · wq is dot(xv, wq[i]), W row 4q + i at c..c+3. */
fn row_fma(a: Row16, xv: vec4<f32>, w0: mat4x4<f32>, w1: mat4x4<f32>, w2: mat4x4<f32>, w3: mat4x4<f32>) -> Row16 {
  return Row16(a.q0 + xv * w0, a.q1 + xv * w1, a.q2 + xv * w2, a.q3 + xv * w3);
}

fn dot16(a: Row16, b: Row16) -> f32 {
  return dot(a.q0, b.q0) + dot(a.q1, b.q1) + dot(a.q2, b.q2) + dot(a.q3, b.q3);
}

// ---- down

/** g[m, c..c+3] (times the dropout mask); C % 4 == 0. */
fn g_vec4(m: u32, c: u32) -> vec4<f32> {
  let i = m * p.k + c;
  let v = vec4<f32>(g4[i / 4u]);
  if (DROPOUT) { return v * vec4<f32>(drop_at(i), drop_at(i + 1u), drop_at(i + 2u), drop_at(i + 3u)); }
  return v;
}

/** W(j, c..c+3) as one vec4 (0 for j >= r; without a branch: a row in range is read instead). */
fn w_vec4(j: u32, c: u32) -> vec4<f32> {
  return select(vec4<f32>(), w4[(min(j, p.r - 1u) * p.w_j + c) / 4u], j < p.r);
}

/** W rows j..j+3 at columns c..c+3, one per matrix column. */
fn w_mat(j: u32, c: u32) -> mat4x4<f32> {
  return mat4x4<f32>(w_vec4(j, c), w_vec4(j + 1u, c), w_vec4(j + 2u, c), w_vec4(j + 3u, c));
}

fn g_any(m: u32, c: u32) -> f32 {
  if (c >= p.k) { return 0.0; }
  let i = m * p.k + c;
  if (DROPOUT) { return f32(g[i]) * drop_at(i); }
  return f32(g[i]);
}

fn w_any(j: u32, c: u32) -> f32 {
  if (j >= p.r || c >= p.k) { return 0.0; }
  return w[j * p.w_j + c * p.w_c];
}

fn w_mat_any(j: u32, c: u32) -> mat4x4<f32> {
  var cols = mat4x4<f32>();
  for (var i = 0u; i < 4u; i++) {
    cols[i] = vec4<f32>(w_any(j + i, c), w_any(j + i, c + 1u), w_any(j + i, c + 2u), w_any(j + i, c + 3u));
  }
  return cols;
}

@compute @workgroup_size(WG)
fn down(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let ra = wg.x * DOWN_ROWS + (tid / 8u) % 4u;
  let rb = ra + 4u;
  let jb = wg.y * 16u;
  var a = Row16();
  var b = Row16();
  for (var c = 4u * (tid % 8u) + 32u * (tid / 32u); c < p.k; c += WG) {
    let w0 = w_mat(jb, c);
    let w1 = w_mat(jb + 4u, c);
    let w2 = w_mat(jb + 8u, c);
    let w3 = w_mat(jb + 12u, c);
    if (ra < p.m) { a = row_fma(a, g_vec4(ra, c), w0, w1, w2, w3); }
    if (rb < p.m) { b = row_fma(b, g_vec4(rb, c), w0, w1, w2, w3); }
  }
  down_store(a, b, wg, tid);
}

@compute @workgroup_size(WG)
fn down_any(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let ra = wg.x * DOWN_ROWS + (tid / 8u) % 4u;
  let rb = ra + 4u;
  let jb = wg.y * 16u;
  var a = Row16();
  var b = Row16();
  for (var c = 4u * (tid % 8u) + 32u * (tid / 32u); c < p.k; c += WG) {
    let w0 = w_mat_any(jb, c);
    let w1 = w_mat_any(jb + 4u, c);
    let w2 = w_mat_any(jb + 8u, c);
    let w3 = w_mat_any(jb + 12u, c);
    if (ra < p.m) { a = row_fma(a, vec4<f32>(g_any(ra, c), g_any(ra, c + 1u), g_any(ra, c + 2u), g_any(ra, c + 3u)), w0, w1, w2, w3); }
    if (rb < p.m) { b = row_fma(b, vec4<f32>(g_any(rb, c), g_any(rb, c + 1u), g_any(rb, c + 2u), g_any(rb, c + 3u)), w0, w1, w2, w3); }
  }
  down_store(a, b, wg, tid);
}

/**
 * out[m, j] = scale · Σ of the 64 partials (8 warps x 8 c-slots) of each of the workgroup's
 * 8 rows x 16 columns, in a fixed order. Row a (round 0), then row b (round 1): every invocation
 * stores its 4 vec4s; invocation t adds 4 partials of output t % 16 (row group (t % 16) / 4,
 * vec4 t % 4); invocations 0..15 add the 16 results of their output and store it.
 */
fn down_store(a: Row16, b: Row16, wg: vec3<u32>, tid: u32) {
  let o = tid % 16u;
  let part = tid / 16u;
  for (var round = 0u; round < 2u; round++) {
    var v = a;
    if (round == 1u) { v = b; }
    red[4u * tid] = v.q0;
    red[4u * tid + 1u] = v.q1;
    red[4u * tid + 2u] = v.q2;
    red[4u * tid + 3u] = v.q3;
    workgroupBarrier();
    var s = vec4<f32>();
    for (var i = 0u; i < 4u; i++) {
      let k = 4u * part + i; // partial k: warp k / 8, c-slot k % 8
      s += red[4u * (32u * (k / 8u) + 8u * (o / 4u) + k % 8u) + o % 4u];
    }
    workgroupBarrier();
    red[tid] = s;
    workgroupBarrier();
    if (tid < 16u) {
      var total = vec4<f32>();
      for (var q = 0u; q < 16u; q++) { total += red[16u * q + tid]; }
      let m = wg.x * DOWN_ROWS + tid / 4u + 4u * round;
      let j0 = wg.y * 16u + 4u * (tid % 4u);
      if (m < p.m) {
        for (var e = 0u; e < 4u; e++) {
          if (j0 + e < p.r) { out[m * p.r + j0 + e] = p.scale * total[e]; }
        }
      }
    }
    workgroupBarrier();
  }
}

// ---- up (and the outer products of lora-backward.wgsl): rows of f

fn f_at(m: u32, j: u32) -> f32 {
  return select(0.0, f[m * p.r + min(j, p.r - 1u)], j < p.r);
}

/** f[m, jb..jb+15] (0 beyond r). */
fn f_row(m: u32, jb: u32) -> Row16 {
  return Row16(
    vec4<f32>(f_at(m, jb), f_at(m, jb + 1u), f_at(m, jb + 2u), f_at(m, jb + 3u)),
    vec4<f32>(f_at(m, jb + 4u), f_at(m, jb + 5u), f_at(m, jb + 6u), f_at(m, jb + 7u)),
    vec4<f32>(f_at(m, jb + 8u), f_at(m, jb + 9u), f_at(m, jb + 10u), f_at(m, jb + 11u)),
    vec4<f32>(f_at(m, jb + 12u), f_at(m, jb + 13u), f_at(m, jb + 14u), f_at(m, jb + 15u)),
  );
}

/**
 * W(jb..jb+15, c) for column c = col0 + lane (0 beyond C or r), staged through workgroup memory:
 * 64 columns x 16 j loaded by all 256 invocations in the order W is contiguous in (along j for B,
 * along c for A), then each invocation reads its column (rows padded to 17: no bank conflicts).
 */
fn stage_w(col0: u32, jb: u32, tid: u32, lane: u32) -> Row16 {
  for (var i = 0u; i < 4u; i++) {
    let e = tid + WG * i;
    var cl = e / 16u;
    var j = e % 16u;
    if (p.w_j != 1u) {
      cl = e % 64u;
      j = e / 64u;
    }
    var v = 0.0;
    if (col0 + cl < p.k && jb + j < p.r) { v = w[(jb + j) * p.w_j + (col0 + cl) * p.w_c]; }
    wt[17u * cl + j] = v;
  }
  workgroupBarrier();
  let o = 17u * lane;
  let row = Row16(
    vec4<f32>(wt[o], wt[o + 1u], wt[o + 2u], wt[o + 3u]),
    vec4<f32>(wt[o + 4u], wt[o + 5u], wt[o + 6u], wt[o + 7u]),
    vec4<f32>(wt[o + 8u], wt[o + 9u], wt[o + 10u], wt[o + 11u]),
    vec4<f32>(wt[o + 12u], wt[o + 13u], wt[o + 14u], wt[o + 15u]),
  );
  workgroupBarrier(); // the next call overwrites wt
  return row;
}

/** y[m, c] (0 when not adding, or beyond the rows m1 or the columns C). */
fn up_prev(m: u32, m1: u32, c: u32, add: bool) -> f32 {
  if (!add || m >= m1 || c >= p.k) { return 0.0; }
  return f32(y[m * p.k + c]);
}

/** y[m, c] for this invocation's 4 columns c0 + 64 i, read ahead of the products that add to them. */
fn up_prev4(m: u32, m1: u32, c0: u32, add: bool) -> vec4<f32> {
  return vec4<f32>(up_prev(m, m1, c0, add), up_prev(m, m1, c0 + 64u, add), up_prev(m, m1, c0 + 128u, add), up_prev(m, m1, c0 + 192u, add));
}

/** y[m, c] = prev + scale · (mask) · dot16(fv, wc). */
fn up_one(m: u32, c: u32, fv: Row16, wc: Row16, prev: f32) {
  if (c >= p.k) { return; }
  let o = m * p.k + c;
  var sc = p.scale;
  if (DROPOUT) { sc = sc * drop_at(o); }
  y[o] = R(fma(sc, dot16(fv, wc), prev));
}

/** Row m of this invocation's 4 columns (nothing beyond m1); prev: up_prev4's values. */
fn up_row(m: u32, m1: u32, c0: u32, jb: u32, prev: vec4<f32>, w0: Row16, w1: Row16, w2: Row16, w3: Row16) {
  if (m >= m1) { return; }
  let fv = f_row(m, jb);
  up_one(m, c0, fv, w0, prev.x);
  up_one(m, c0 + 64u, fv, w1, prev.y);
  up_one(m, c0 + 128u, fv, w2, prev.z);
  up_one(m, c0 + 192u, fv, w3, prev.w);
}

@compute @workgroup_size(WG)
fn up(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let lane = tid % 64u;
  let c0 = wg.x * UP_COLS + lane;
  let m0 = wg.y * p.rows;
  let m1 = min(p.m, m0 + p.rows);
  for (var jb = 0u; jb < p.r; jb += 16u) {
    let w0 = stage_w(wg.x * UP_COLS, jb, tid, lane);
    let w1 = stage_w(wg.x * UP_COLS + 64u, jb, tid, lane);
    let w2 = stage_w(wg.x * UP_COLS + 128u, jb, tid, lane);
    let w3 = stage_w(wg.x * UP_COLS + 192u, jb, tid, lane);
    let add = jb > 0u || p.accumulate != 0u;
    // UP_AHEAD of the row slot's rows a trip, their y values read first: a stream of
    // read-modify-writes needs many loads in flight (one row a trip kept ~4 per invocation: 0.5-0.9
    // TB/s, bench/h200-2026-11-29-lora.json; four rows 1.4 TB/s, -11-30-s11-lora-after.json).
    for (var m = m0 + tid / 64u; m < m1; m += 4u * UP_AHEAD) {
      let p0 = up_prev4(m, m1, c0, add);
      let p1 = up_prev4(m + 4u, m1, c0, add);
      var p2 = vec4<f32>();
      var p3 = vec4<f32>();
      if (UP_AHEAD == 4u) {
        p2 = up_prev4(m + 8u, m1, c0, add);
        p3 = up_prev4(m + 12u, m1, c0, add);
      }
      up_row(m, m1, c0, jb, p0, w0, w1, w2, w3);
      up_row(m + 4u, m1, c0, jb, p1, w0, w1, w2, w3);
      if (UP_AHEAD == 4u) {
        up_row(m + 8u, m1, c0, jb, p2, w0, w1, w2, w3);
        up_row(m + 12u, m1, c0, jb, p3, w0, w1, w2, w3);
      }
    }
  }
}

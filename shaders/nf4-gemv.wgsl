// NF4 GEMV for decode: out[m, n] = x[m, :] · dequant(W)[n, :] (+ a LoRA's scale · u[m] · B[n])
// (+ bias[n] or residual[m, n]) (+ out[m, n]) for a few rows of x (p.m <= 8), `gemv` with x taken
// through a prologue (PROLOGUE below), W [N, K] NF4 as in shaders/nf4-matmul.wgsl (bnb's codes 8 to a
// little-endian u32 word, one f32 absmax per `blocksize` elements of the flattened weight), f32
// accumulation. The code values of 8 elements (one word) are summed times x first and the sum times
// their absmax (gemv: of 32, one chunk): bnb's weight values (code value * absmax) in exact
// arithmetic, one multiply per element fewer.
//
// Decode reads each weight byte once and does two flops per 4 bits, so this kernel is a memory
// stream: what matters is how many bytes are in flight, and how few instructions each byte costs.
//   gemv      (K % 32 == 0: every real model) A workgroup of GEMV_WG invocations takes 4 W rows,
//             held as the components of vec4s. Invocation `lane` takes 32-element chunks
//             c = lane, lane + GEMV_WG, ... of those rows: per chunk one 16-byte load of each row
//             (consecutive invocations, consecutive 16 bytes: fully coalesced, 2 KB per row per
//             128 invocations) and one absmax per row (a chunk never straddles a block: blocks are
//             >= 32 and chunks start on multiples of 32; the two lanes of a 64-block read the same
//             word in one request, so memory serves it once). Each word is dequantized once into
//             8 vec4s (4 rows) and used by every row of x; x is read as 16-byte units (8 f16 or 4
//             f32), cached by L1/L2 for all workgroups. Then the 128 partial vec4s are summed
//             (row_sum: subgroupAdd where the device has subgroups, workgroup memory otherwise)
//             and invocations 0..3 store the 4 outputs.
//   gemv8     (K % 32 == 0, one row of x) The same over 8 W rows a workgroup, two quads whose
//             loads are in flight together and which read each x element once: half the
//             workgroups, half the x traffic per row. Decode's largest projections (gate/up,
//             14336 rows; nf4-gemv.ts picks it): the 8B's step 5.36 -> 4.98 ms of GPU, while the
//             smaller ones were slower with it (5.11 ms with it everywhere).
//   gemv_any  Any K, for tests and odd shapes: the same rows and reduction, one word (K % 8 == 0)
//             or one element per step, x read element by element.
//
// Occupancy, and why K is not split across workgroups: an 8B projection has 1024 to 14336 rows,
// i.e. 256 to 3584 workgroups of 128 over 132 SMs. With K = 4096 a lane loads 4 x 16 B at once
// and is done; with K = 14336 (down_proj) it loops 3-4 times over 1024 workgroups, about 8 per SM,
// keeping ~60 KB of loads in flight per SM where Little's law asks ~30 KB (4.8 TB/s x ~1 us over
// 132 SMs). Every byte of even the smallest matrix (k/v, 2.4 MB) is requested in the first loop
// trip, so a split-K would add a second dispatch and partial sums without adding bytes in flight.
//
// `T` = storage type of x (set by the loader; X_HALF tells the 16-byte view how to read it); `R` =
// type of out (T, or f32), declared by the wrapper. NF4_WGSL (nf4_table_init, nf4_shift,
// nf4_dequant) comes ahead of this source, and the row_sum reduction (struct Lanes) after it
// (src/engine/nf4-gemv.ts ROW_SUM_WGSL). bias is f32; without one the absmax buffer stands in.

struct Params {
  m: u32,          // rows of x (1 .. 8)
  n: u32,          // rows of W (output columns)
  k: u32,          // elements per row of W and of x
  bs_shift: u32,   // log2(blocksize)
  aligned: u32,    // k % 8 == 0 (gemv_any)
  accumulate: u32,
  addend_stride: u32, // bias: 0 (one value per column), residual: n; with has_addend
  has_addend: u32,
  lora_r: u32,     // with LORA
  lora_scale: f32,
  eps: f32,        // PROLOGUE_RMSNORM
}

// Each entry point uses one view of bindings 0 and 1.
@group(0) @binding(0) var<storage, read> xv: array<vec4<u32>>;     // gemv: x as 16-byte units
@group(0) @binding(0) var<storage, read> x: array<T>;              // gemv_any
@group(0) @binding(1) var<storage, read> words4: array<vec4<u32>>; // gemv: 32 codes per load
@group(0) @binding(1) var<storage, read> words: array<u32>;        // gemv_any
@group(0) @binding(2) var<storage, read> absmax: array<f32>;
@group(0) @binding(3) var<storage, read> addend: array<f32>;  // bias [n] or residual [m, n]
@group(0) @binding(4) var<storage, read_write> out: array<R>;
@group(0) @binding(5) var<storage, read> x2v: array<vec4<u32>>; // gemv's prologue: its second input
@group(0) @binding(6) var<storage, read> lora_u: array<f32>;   // [parts, m, r]: x · Aᵀ, summed over parts
@group(0) @binding(7) var<storage, read> lora_b: array<f32>;   // [n, r]
@group(0) @binding(8) var<uniform> p: Params;

const GEMV_MAX_M = 8u;
// x has one row (decode), fixed per pipeline: the accumulator is then acc[0], a register.
// Otherwise the loops over the rows of x run p.m times, left rolled (the accumulators may then
// live in local memory): unrolled eight-fold, the software GPU the tests run on (lavapipe) took
// 40 s to compile one pipeline, and decode is one row.
override ONE_ROW: bool = true;
override GEMV_WG: u32 = 128u;
// x is f16 (its 16-byte units hold 8 values) rather than f32 (4); the same for x2.
override X_HALF: bool = false;
override X2_HALF: bool = false;
// What `gemv` multiplies W by, from x and x2 (decode's neighbours folded in, a dispatch fewer each):
//   0  x
//   1  rmsnorm: x · x2 · rstd, x2 the norm's weight [k], rstd = 1 / sqrt(mean(x²) + eps) over x's
//      row, summed by the workgroup alongside the products (its lanes cover the row)
//   2  swiglu: silu(x) · x2, x the gate and x2 the up-projection [m, k]
override PROLOGUE: u32 = 0u;
// A LoRA's up-projection is added (lora_add): a constant, so that greedy decode's pipelines carry none of its code.
override LORA: bool = false;
// u's parts, summed (lora_ahead): a constant, so that the common one part takes the short path.
override LORA_PARTS: u32 = 1u;

/** Per row of x, the running sums of the workgroup's 4 W rows (components). */
alias Acc = array<vec4<f32>, GEMV_MAX_M>;

/** Rows of x: a constant 1 in a ONE_ROW pipeline (outside the hot loop). */
fn x_rows() -> u32 {
  return select(p.m, 1u, ONE_ROW);
}

// Eight values, and eight dequantized elements of 4 rows, as structs of named vectors rather than
// arrays (an array may end up in local memory where a compiler does not resolve its indices).
struct X8 { lo: vec4<f32>, hi: vec4<f32> }
struct D8 { d0: vec4<f32>, d1: vec4<f32>, d2: vec4<f32>, d3: vec4<f32>, d4: vec4<f32>, d5: vec4<f32>, d6: vec4<f32>, d7: vec4<f32> }

/** Elements e .. e + 7 of x (e a multiple of 8) as f32 from the 16-byte view (exact for f16). */
fn x8_raw(e: u32) -> X8 {
  if (X_HALF) {
    let u = xv[e >> 3u];
    return X8(vec4(unpack2x16float(u.x), unpack2x16float(u.y)), vec4(unpack2x16float(u.z), unpack2x16float(u.w)));
  }
  return X8(bitcast<vec4<f32>>(xv[e >> 2u]), bitcast<vec4<f32>>(xv[(e >> 2u) + 1u]));
}

/** The same of x2. */
fn x2_8(e: u32) -> X8 {
  if (X2_HALF) {
    let u = x2v[e >> 3u];
    return X8(vec4(unpack2x16float(u.x), unpack2x16float(u.y)), vec4(unpack2x16float(u.z), unpack2x16float(u.w)));
  }
  return X8(bitcast<vec4<f32>>(x2v[e >> 2u]), bitcast<vec4<f32>>(x2v[(e >> 2u) + 1u]));
}

fn silu(g: vec4<f32>) -> vec4<f32> {
  return g / (1.0 + exp(-g));
}

/** Per row of x, Σ x² of the elements this invocation read (PROLOGUE_RMSNORM). */
var<private> sumsq: array<f32, GEMV_MAX_M>;

/** Elements e .. e + 7 of row m of what W is multiplied by (the prologue applied). */
fn x8_vec(m: u32, e: u32) -> X8 {
  let x = x8_raw(m * p.k + e);
  if (PROLOGUE == 1u) {
    sumsq[m] += dot(x.lo, x.lo) + dot(x.hi, x.hi);
    let w = x2_8(e);
    return X8(x.lo * w.lo, x.hi * w.hi);
  }
  if (PROLOGUE == 2u) {
    let u = x2_8(m * p.k + e);
    return X8(silu(x.lo) * u.lo, silu(x.hi) * u.hi);
  }
  return x;
}

/** The same from the element view (gemv_any). */
fn x8_any(e: u32) -> X8 {
  return X8(vec4(f32(x[e]), f32(x[e + 1u]), f32(x[e + 2u]), f32(x[e + 3u])),
            vec4(f32(x[e + 4u]), f32(x[e + 5u]), f32(x[e + 6u]), f32(x[e + 7u])));
}

/** The code value of element `shift` (nf4_shift(j)) of one word of each of the 4 rows. */
fn code4(w: vec4<u32>, shift: u32) -> vec4<f32> {
  return vec4(nf4_table[(w.x >> shift) & 15u], nf4_table[(w.y >> shift) & 15u], nf4_table[(w.z >> shift) & 15u], nf4_table[(w.w >> shift) & 15u]);
}

/** The code values of the 8 elements of one word of each of the 4 rows (w: the rows' words). The
 * absmax, shared by a whole chunk, multiplies the chunk's sum instead of every element (a multiply
 * fewer per weight; the same products in exact arithmetic, rounded in another order). */
fn codes8(w: vec4<u32>) -> D8 {
  return D8(code4(w, nf4_shift(0u)), code4(w, nf4_shift(1u)), code4(w, nf4_shift(2u)), code4(w, nf4_shift(3u)),
            code4(w, nf4_shift(4u)), code4(w, nf4_shift(5u)), code4(w, nf4_shift(6u)), code4(w, nf4_shift(7u)));
}

/** s + Σ_j xs[j] · d[j]: one word's products for the 4 rows. */
fn fma8(s0: vec4<f32>, d: D8, xs: X8) -> vec4<f32> {
  var s = fma(vec4(xs.lo.x), d.d0, s0);
  s = fma(vec4(xs.lo.y), d.d1, s);
  s = fma(vec4(xs.lo.z), d.d2, s);
  s = fma(vec4(xs.lo.w), d.d3, s);
  s = fma(vec4(xs.hi.x), d.d4, s);
  s = fma(vec4(xs.hi.y), d.d5, s);
  s = fma(vec4(xs.hi.z), d.d6, s);
  return fma(vec4(xs.hi.w), d.d7, s);
}

/** Adds one word (elements e .. e + 7 of the rows, their code values in d) times every row of x. */
fn word_vec(acc: ptr<function, Acc>, d: D8, e: u32) {
  if (ONE_ROW) {
    (*acc)[0] = fma8((*acc)[0], d, x8_vec(0u, e));
    return;
  }
  for (var m = 0u; m < p.m; m++) { (*acc)[m] = fma8((*acc)[m], d, x8_vec(m, e)); }
}

/** Chunk c (32 codes) of W row `row`; zeros past the last row (code 0 times absmax 0 adds 0). */
fn chunk_of(row: u32, c: u32) -> vec4<u32> {
  if (row >= p.n) { return vec4(0u); }
  return words4[row * (p.k >> 5u) + c];
}

/** The absmax of element `col` of W row `row`; 0 past the last row. */
fn absmax_of(row: u32, col: u32) -> f32 {
  if (row >= p.n) { return 0.0; }
  return absmax[(row * p.k + col) >> p.bs_shift];
}

fn absmax4(row0: u32, col: u32) -> vec4<f32> {
  return vec4(absmax_of(row0, col), absmax_of(row0 + 1u, col), absmax_of(row0 + 2u, col), absmax_of(row0 + 3u, col));
}

/** out[m, col] = acc (+ bias[col] or residual[m, col]) (+ out), rounded once to R. */
fn store(m: u32, col: u32, acc: f32) {
  let o = m * p.n + col;
  var v = acc;
  if (p.has_addend != 0u) { v += addend[m * p.addend_stride + col]; }
  if (p.accumulate != 0u) { v += f32(out[o]); }
  out[o] = R(v);
}

/** B[row, j]; 0 past the last row. */
fn lora_b_of(row: u32, j: u32) -> f32 {
  if (row >= p.n) { return 0.0; }
  return lora_b[row * p.lora_r + j];
}

/** Column j of B at rows row0 .. row0 + 3 (j < r). */
fn lora_b4(row0: u32, j: u32) -> vec4<f32> {
  return vec4(lora_b_of(row0, j), lora_b_of(row0 + 1u, j), lora_b_of(row0 + 2u, j), lora_b_of(row0 + 3u, j));
}

/** Entry e (< parts · r) of u's row m: u is [parts, m, r], its parts summed (e.g. per-head shares). */
fn lora_entry(m: u32, e: u32) -> f32 {
  if (LORA_PARTS == 1u) { return lora_u[m * p.lora_r + e]; }
  return lora_u[((e / p.lora_r) * p.m + m) * p.lora_r + e % p.lora_r];
}

/** Entries of u a lane loads ahead of the weight loop (lora_ahead). */
const LORA_AHEAD = 4u;

/** What a lane loads ahead of the weight loop: B's column lane % r at the 4 rows, and the sum of its entries of row 0 in that column. */
struct LoraAhead { b: vec4<f32>, u: f32 }

/**
 * The LoRA term, scale · Σ_e u[m, e] · B[row, e % r] over u's parts · r entries e, is summed by
 * the workgroup's reduction: lane `lane` adds entries lane, lane + GEMV_WG, ... to its sums. Its
 * first LORA_AHEAD entries of row 0 that fall in column lane % r (all of them where r divides
 * GEMV_WG) are loaded here, ahead of the weight loop, so that their latency hides under it (a loop
 * over r after the reduction, r dependent loads, made the 8B chat step's GEMVs ~0.5 ms slower than
 * greedy's); lora_add adds them and any others.
 */
fn lora_ahead(row0: u32, lane: u32) -> LoraAhead {
  let total = LORA_PARTS * p.lora_r;
  if (!LORA || lane >= total) { return LoraAhead(vec4(0.0), 0.0); }
  if (LORA_PARTS == 1u) { return LoraAhead(lora_b4(row0, lane), lora_u[lane]); }
  let j = lane % p.lora_r;
  var u = 0.0;
  for (var k = 0u; k < LORA_AHEAD; k++) {
    let e = lane + k * GEMV_WG;
    if (e < total && e % p.lora_r == j) { u += lora_entry(0u, e); }
  }
  return LoraAhead(lora_b4(row0, j), u);
}

/**
 * Adds this lane's entries of the LoRA term (lora_ahead) to the sums of rows row0 .. row0 + 3.
 * Under an rmsnorm prologue u lacks the norm's 1 / rms (lora-gemv.wgsl), which `finish` applies
 * to the whole sum.
 */
fn lora_add(acc: ptr<function, Acc>, lane: u32, row0: u32, ahead: LoraAhead) {
  if (!LORA) { return; }
  (*acc)[0] = fma(vec4(p.lora_scale * ahead.u), ahead.b, (*acc)[0]);
  if (LORA_PARTS == 1u) {
    // Entries are columns: the lane's first one came ahead (row 0); rows 1 .. of it, then its others.
    for (var m = 1u; m < x_rows(); m++) { (*acc)[m] = fma(vec4(p.lora_scale * lora_entry(m, lane)), ahead.b, (*acc)[m]); }
    for (var j = lane + GEMV_WG; j < p.lora_r; j += GEMV_WG) {
      let b = lora_b4(row0, j);
      for (var m = 0u; m < x_rows(); m++) { (*acc)[m] = fma(vec4(p.lora_scale * lora_entry(m, j)), b, (*acc)[m]); }
    }
    return;
  }
  let total = LORA_PARTS * p.lora_r;
  for (var e = lane; e < total; e += GEMV_WG) {
    let j = e % p.lora_r;
    let early = e < lane + LORA_AHEAD * GEMV_WG && j == lane % p.lora_r; // row 0's is in ahead.u
    let first = select(0u, 1u, early);
    if (first < x_rows()) {
      let b = lora_b4(row0, j);
      for (var m = first; m < x_rows(); m++) { (*acc)[m] = fma(vec4(p.lora_scale * lora_entry(m, e)), b, (*acc)[m]); }
    }
  }
}

/** Sums the workgroup's partials of every row of x and stores rows row0 .. row0 + 3 of out. */
fn finish(lanes: Lanes, row0: u32, acc: ptr<function, Acc>) {
  for (var m = 0u; m < x_rows(); m++) {
    var s: vec4<f32>;
    if (PROLOGUE == 1u) {
      // The norm's 1 / rms, a factor of every product of the row: applied once, to the sums.
      let t = row_sum_with(lanes, GEMV_WG, (*acc)[m], sumsq[m]);
      s = t.v * inverseSqrt(t.w / f32(p.k) + p.eps);
    } else {
      s = row_sum(lanes, GEMV_WG, (*acc)[m]);
    }
    let r = lanes.index;
    if (r < 4u && row0 + r < p.n) { store(m, row0 + r, s[r]); }
  }
}

/** Adds chunk c (elements 32c .. 32c + 31) of W rows row0 .. row0 + 3 times x to acc. */
fn chunk_add(acc: ptr<function, Acc>, row0: u32, c: u32) {
  // All four loads first, so they are in flight together.
  let w0 = chunk_of(row0, c);
  let w1 = chunk_of(row0 + 1u, c);
  let w2 = chunk_of(row0 + 2u, c);
  let w3 = chunk_of(row0 + 3u, c);
  let e = c * 32u;
  let am = absmax4(row0, e);
  // Word q of the chunk across the 4 rows is (w0[q], w1[q], w2[q], w3[q]): a 4x4 transpose.
  var t = Acc();
  word_vec(&t, codes8(vec4(w0.x, w1.x, w2.x, w3.x)), e);
  word_vec(&t, codes8(vec4(w0.y, w1.y, w2.y, w3.y)), e + 8u);
  word_vec(&t, codes8(vec4(w0.z, w1.z, w2.z, w3.z)), e + 16u);
  word_vec(&t, codes8(vec4(w0.w, w1.w, w2.w, w3.w)), e + 24u);
  scale_add(acc, &t, am);
}

/** chunk_add for one row of x and 8 W rows (row0 .. row0 + 7, two quads): x read once for both. */
fn chunk_add8(acc: ptr<function, vec4<f32>>, acc2: ptr<function, vec4<f32>>, row0: u32, c: u32) {
  // The eight loads first (as chunk_add's four).
  let w0 = chunk_of(row0, c);
  let w1 = chunk_of(row0 + 1u, c);
  let w2 = chunk_of(row0 + 2u, c);
  let w3 = chunk_of(row0 + 3u, c);
  let v0 = chunk_of(row0 + 4u, c);
  let v1 = chunk_of(row0 + 5u, c);
  let v2 = chunk_of(row0 + 6u, c);
  let v3 = chunk_of(row0 + 7u, c);
  let e = c * 32u;
  let am = absmax4(row0, e);
  let am2 = absmax4(row0 + 4u, e);
  var t = vec4(0.0);
  var t2 = vec4(0.0);
  var xs = x8_vec(0u, e);
  t = fma8(t, codes8(vec4(w0.x, w1.x, w2.x, w3.x)), xs);
  t2 = fma8(t2, codes8(vec4(v0.x, v1.x, v2.x, v3.x)), xs);
  xs = x8_vec(0u, e + 8u);
  t = fma8(t, codes8(vec4(w0.y, w1.y, w2.y, w3.y)), xs);
  t2 = fma8(t2, codes8(vec4(v0.y, v1.y, v2.y, v3.y)), xs);
  xs = x8_vec(0u, e + 16u);
  t = fma8(t, codes8(vec4(w0.z, w1.z, w2.z, w3.z)), xs);
  t2 = fma8(t2, codes8(vec4(v0.z, v1.z, v2.z, v3.z)), xs);
  xs = x8_vec(0u, e + 24u);
  t = fma8(t, codes8(vec4(w0.w, w1.w, w2.w, w3.w)), xs);
  t2 = fma8(t2, codes8(vec4(v0.w, v1.w, v2.w, v3.w)), xs);
  *acc = fma(am, t, *acc);
  *acc2 = fma(am2, t2, *acc2);
}

/** acc += am · t for every row of x (am: the absmax of each of the 4 W rows). */
fn scale_add(acc: ptr<function, Acc>, t: ptr<function, Acc>, am: vec4<f32>) {
  if (ONE_ROW) {
    (*acc)[0] = fma(am, (*t)[0], (*acc)[0]);
    return;
  }
  for (var m = 0u; m < p.m; m++) { (*acc)[m] = fma(am, (*t)[m], (*acc)[m]); }
}

@compute @workgroup_size(GEMV_WG)
fn gemv(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  nf4_table_init(lanes.index);
  let row0 = (wg.y * nwg.x + wg.x) * 4u; // uniform per workgroup: returning keeps barriers uniform
  if (row0 >= p.n) { return; }
  let ahead = lora_ahead(row0, lanes.index);
  var acc = Acc();
  for (var c = lanes.index; c < (p.k >> 5u); c += GEMV_WG) { chunk_add(&acc, row0, c); }
  lora_add(&acc, lanes.index, row0, ahead);
  finish(lanes, row0, &acc);
}

@compute @workgroup_size(GEMV_WG)
fn gemv8(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  nf4_table_init(lanes.index);
  let row0 = (wg.y * nwg.x + wg.x) * 8u;
  if (row0 >= p.n) { return; }
  let ahead = lora_ahead(row0, lanes.index);
  let ahead2 = lora_ahead(row0 + 4u, lanes.index);
  var acc = Acc();
  var acc2 = Acc();
  for (var c = lanes.index; c < (p.k >> 5u); c += GEMV_WG) { chunk_add8(&acc[0], &acc2[0], row0, c); }
  lora_add(&acc, lanes.index, row0, ahead);
  lora_add(&acc2, lanes.index, row0 + 4u, ahead2);
  finish(lanes, row0, &acc);
  finish(lanes, row0 + 4u, &acc2); // past p.n it stores nothing; called anyway (its barriers)
}

/** Flat element e of W, dequantized. */
fn w_at(e: u32) -> f32 {
  return nf4_dequant(words[e >> 3u], nf4_shift(e & 7u), absmax[e >> p.bs_shift]);
}

/** Element `col` of W row `row`, dequantized; 0 past the last row. */
fn w_of(row: u32, col: u32) -> f32 {
  if (row >= p.n) { return 0.0; }
  return w_at(row * p.k + col);
}

fn word_of(row: u32, col: u32) -> u32 {
  if (row >= p.n) { return 0u; }
  return words[(row * p.k + col) >> 3u];
}

@compute @workgroup_size(GEMV_WG)
fn gemv_any(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  nf4_table_init(lanes.index);
  let row0 = (wg.y * nwg.x + wg.x) * 4u;
  if (row0 >= p.n) { return; }
  let ahead = lora_ahead(row0, lanes.index);
  var acc = Acc();
  if (p.aligned != 0u) {
    // Whole words: a row starts on a word, and 8 elements of a row share one absmax.
    for (var e = lanes.index * 8u; e < p.k; e += GEMV_WG * 8u) {
      let d = codes8(vec4(word_of(row0, e), word_of(row0 + 1u, e), word_of(row0 + 2u, e), word_of(row0 + 3u, e)));
      let am = absmax4(row0, e);
      for (var m = 0u; m < x_rows(); m++) { acc[m] = fma(am, fma8(vec4(0.0), d, x8_any(m * p.k + e)), acc[m]); }
    }
  } else {
    for (var col = lanes.index; col < p.k; col += GEMV_WG) {
      let w = vec4(w_of(row0, col), w_of(row0 + 1u, col), w_of(row0 + 2u, col), w_of(row0 + 3u, col));
      for (var m = 0u; m < x_rows(); m++) { acc[m] = fma(vec4(f32(x[m * p.k + col])), w, acc[m]); }
    }
  }
  lora_add(&acc, lanes.index, row0, ahead);
  finish(lanes, row0, &acc);
}

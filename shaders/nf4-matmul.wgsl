// Fused NF4 dequantize-matmul against a frozen NF4 weight W [N, K] (torch [out, in]):
//   forward  (TRANS_W = true):  out[M, N] = a[M, K] · dequant(W)ᵀ (+ bias[N])   a = x
//   backward (TRANS_W = false): out[M, K] = a[M, N] · dequant(W)                 a = dY, out = dX
// with `accumulate` adding into what out holds (out += ...). W stays packed in GPU memory: the
// 4-bit codes (bnb's bytes, 8 to a little-endian u32 word) and one f32 absmax per block of
// `blocksize` elements of the row-major flattened weight (a block may span rows). Each value is
// dequantized in registers exactly as bnb does (code value * absmax, one f32 rounding: NF4_WGSL's
// nf4_dequant) and staged as f32 in workgroup memory; no dequantized matrix is ever written.
//
// Generic names: out [m, nc] = a [m, ki] · op(W), W's rows have wc (= K) elements, element (row,
// col) of W is flat element e = row * wc + col: word e / 8, nibble nf4_shift(e % 8), absmax
// e >> bs_shift. `aligned` (wc % 8 == 0, true for every real model) lets one invocation decode a
// whole word (eight consecutive elements of one row, one absmax); otherwise element by element.
//
// Entry points:
//   main  tiled, as shaders/matmul.wgsl: a 16x16 workgroup computes a 64x64 block of out, each
//         invocation a 4x4 register block, k in steps of 16; A tile (64x16) and the dequantized
//         W tile (16x64 = 128 words when aligned) in workgroup memory as f32.
//   gemv  forward only, for a few rows (m <= GEMV_MAX_M, decode): a workgroup of 256 computes 4
//         output columns (4 rows of W), 64 invocations per W row striding over its words, so each
//         word is read once and the grid has N / 4 workgroups; one barrier, then a sum of 64
//         partials per (row, column).
// `T` = storage type of a (set by the loader); `R` = type of out (T, or f32), declared by the
// wrapper; the NF4 helpers (NF4_CODE, nf4_shift, nf4_dequant) come from NF4_WGSL ahead of this.
// bias is f32; when there is none the wrapper binds the absmax buffer in its place (read-only).

struct Params {
  m: u32,
  nc: u32,
  ki: u32,
  wc: u32,
  bs_shift: u32,
  aligned: u32,
  has_bias: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> words: array<u32>;
@group(0) @binding(2) var<storage, read> absmax: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<R>;
@group(0) @binding(5) var<uniform> p: Params;

override TRANS_W: bool = true;

const BM = 64u;
const BN = 64u;
const BK = 16u;
const THREADS = 256u;

var<workgroup> tile_a: array<f32, 1024>; // [BK][BM]
var<workgroup> tile_b: array<f32, 1024>; // [BK][BN]

/** Dequantized flat element e of W. */
fn w_at(e: u32) -> f32 {
  return nf4_dequant(words[e >> 3u], nf4_shift(e & 7u), absmax[e >> p.bs_shift]);
}

/** out[o] = acc (+ bias[col]) (+ out[o]), rounded once to R. */
fn store(o: u32, col: u32, acc: f32) {
  var v = acc;
  if (p.has_bias != 0u) { v += bias[col]; }
  if (p.accumulate != 0u) { v += f32(out[o]); }
  out[o] = R(v);
}

/** Stages the 16x64 tile op(W)[k0.., col0..] into tile_b as f32 (zeros outside). */
fn load_w_tile(tid: u32, k0: u32, col0: u32) {
  if (p.aligned != 0u) {
    // 128 words, one per invocation; eight consecutive elements of a W row share one absmax.
    if (tid < 128u) {
      var row: u32; // row of W
      var col: u32; // first of the eight columns of W
      var valid: bool;
      if (TRANS_W) {
        // op(W)[kk, c] = W[col0 + c, k0 + kk]: two words per W row.
        row = col0 + tid / 2u;
        col = k0 + (tid % 2u) * 8u;
        valid = row < p.nc && col < p.ki;
      } else {
        // op(W)[kk, c] = W[k0 + kk, col0 + c]: eight words per W row.
        row = k0 + tid / 8u;
        col = col0 + (tid % 8u) * 8u;
        valid = row < p.ki && col < p.nc;
      }
      // Zeros outside W, explicitly: Dawn on lavapipe does not re-zero a bare `var v: T;` that a
      // loop executes again (measured: it keeps the previous iteration's value).
      var v = array<f32, 8>();
      if (valid) {
        let e0 = row * p.wc + col;
        let word = words[e0 >> 3u];
        let am = absmax[e0 >> p.bs_shift];
        for (var j = 0u; j < 8u; j++) { v[j] = nf4_dequant(word, nf4_shift(j), am); }
      }
      for (var j = 0u; j < 8u; j++) {
        if (TRANS_W) {
          tile_b[((tid % 2u) * 8u + j) * BN + tid / 2u] = v[j];
        } else {
          tile_b[(tid / 8u) * BN + (tid % 8u) * 8u + j] = v[j];
        }
      }
    }
  } else {
    for (var i = 0u; i < 4u; i++) {
      let idx = tid + i * THREADS;
      var kb: u32;
      var cb: u32;
      if (TRANS_W) { cb = idx / BK; kb = idx % BK; } else { kb = idx / BN; cb = idx % BN; }
      var vb = 0.0;
      if (col0 + cb < p.nc && k0 + kb < p.ki) {
        let e = select((k0 + kb) * p.wc + col0 + cb, (col0 + cb) * p.wc + k0 + kb, TRANS_W);
        vb = w_at(e);
      }
      tile_b[kb * BN + cb] = vb;
    }
  }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let tid = lid.y * 16u + lid.x;
  var acc: array<f32, 16>;

  for (var k0 = 0u; k0 < p.ki; k0 += BK) {
    for (var i = 0u; i < 4u; i++) {
      let idx = tid + i * THREADS;
      let r = idx / BK;
      let ka = idx % BK;
      var va = 0.0;
      if (row0 + r < p.m && k0 + ka < p.ki) { va = f32(a[(row0 + r) * p.ki + k0 + ka]); }
      tile_a[ka * BM + r] = va;
    }
    load_w_tile(tid, k0, col0);
    workgroupBarrier();

    for (var kk = 0u; kk < BK; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { av[i] = tile_a[kk * BM + lid.y * 4u + i]; }
      for (var j = 0u; j < 4u; j++) { bv[j] = tile_b[kk * BN + lid.x * 4u + j]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]); }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x * 4u + j;
      if (r < p.m && col < p.nc) { store(r * p.nc + col, col, acc[i * 4u + j]); }
    }
  }
}

const GEMV_COLS = 4u;
const GEMV_LANES = 64u;
const GEMV_MAX_M = 8u;
var<workgroup> gemv_part: array<f32, 2048>; // [GEMV_MAX_M][THREADS]

@compute @workgroup_size(256)
fn gemv(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tid = lid.x;
  let col_base = (wg.y * nwg.x + wg.x) * GEMV_COLS;
  let n = col_base + tid / GEMV_LANES; // the W row (output column) of this invocation
  let lane = tid % GEMV_LANES;
  var acc: array<f32, GEMV_MAX_M>;
  if (n < p.nc) {
    let base = n * p.wc;
    if (p.aligned != 0u) {
      for (var k = lane * 8u; k < p.ki; k += GEMV_LANES * 8u) {
        let e0 = base + k;
        let word = words[e0 >> 3u];
        let am = absmax[e0 >> p.bs_shift];
        var wv: array<f32, 8>;
        for (var j = 0u; j < 8u; j++) { wv[j] = nf4_dequant(word, nf4_shift(j), am); }
        for (var m = 0u; m < p.m; m++) {
          var s = acc[m];
          for (var j = 0u; j < 8u; j++) { s = fma(f32(a[m * p.ki + k + j]), wv[j], s); }
          acc[m] = s;
        }
      }
    } else {
      for (var k = lane; k < p.ki; k += GEMV_LANES) {
        let w = w_at(base + k);
        for (var m = 0u; m < p.m; m++) { acc[m] = fma(f32(a[m * p.ki + k]), w, acc[m]); }
      }
    }
  }
  for (var m = 0u; m < GEMV_MAX_M; m++) { gemv_part[m * THREADS + tid] = acc[m]; }
  workgroupBarrier();
  // Invocation (column c, row m) sums the 64 lanes of column c.
  if (tid < GEMV_COLS * GEMV_MAX_M) {
    let c = tid / GEMV_MAX_M;
    let m = tid % GEMV_MAX_M;
    let col = col_base + c;
    if (m < p.m && col < p.nc) {
      var s = 0.0;
      for (var l = 0u; l < GEMV_LANES; l++) { s += gemv_part[m * THREADS + c * GEMV_LANES + l]; }
      store(m * p.nc + col, col, s);
    }
  }
}

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
// Entry point:
//   main  tiled, as shaders/matmul.wgsl: a workgroup of 256 computes a 128x128 block of out, each
//         invocation an 8x8 register block, k in steps of 8, double-buffered; the A tile (128x8)
//         and the dequantized W tile (8x128 = 128 words when aligned) in workgroup memory as f32.
// The forward of a few rows (decode) is a GEMV of its own: shaders/nf4-gemv.wgsl.
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

/** What an invocation fetches of the next W tile: one packed word and its absmax when aligned
 *  (decoded when stored, so the global loads stay in flight during the compute), else four values. */
struct WShare { word: u32, am: f32, vals: vec4<f32> }

/** Fetches this invocation's share of the 8x128 tile op(W)[k0.., col0..] (zeros outside W). */
fn fetch_w(tid: u32, k0: u32, col0: u32) -> WShare {
  var s = WShare(0u, 0.0, vec4<f32>(0.0));
  if (p.aligned != 0u) {
    // 128 words, one per invocation below 128: eight consecutive elements of a W row share one
    // absmax (blocks are multiples of 8). Outside W the word stays 0 with absmax 0: value 0.
    if (tid < 128u) {
      var row: u32;
      var col: u32;
      var valid: bool;
      if (TRANS_W) {
        // op(W)[kk, c] = W[col0 + c, k0 + kk]: one word per W row.
        row = col0 + tid;
        col = k0;
        valid = row < p.nc && col < p.ki;
      } else {
        // op(W)[kk, c] = W[k0 + kk, col0 + c]: sixteen words per W row.
        row = k0 + tid / 16u;
        col = col0 + (tid % 16u) * 8u;
        valid = row < p.ki && col < p.nc;
      }
      if (valid) {
        let e0 = row * p.wc + col;
        s.word = words[e0 >> 3u];
        s.am = absmax[e0 >> p.bs_shift];
      }
    }
  } else {
    // Element by element, four per invocation, laid out as the A tile (see main).
    for (var i = 0u; i < 4u; i++) {
      var kb: u32;
      var cb: u32;
      if (TRANS_W) { cb = tid / 2u; kb = (tid % 2u) * 4u + i; } else { kb = tid / 32u; cb = (tid % 32u) * 4u + i; }
      if (col0 + cb < p.nc && k0 + kb < p.ki) {
        s.vals[i] = w_at(select((k0 + kb) * p.wc + col0 + cb, (col0 + cb) * p.wc + k0 + kb, TRANS_W));
      }
    }
  }
  return s;
}

/** Dequantizes a fetched share into tile_b's buffer `base`. */
fn store_w(tid: u32, base: u32, s: WShare) {
  if (p.aligned != 0u) {
    if (tid < 128u) {
      var v = array<f32, 8>();
      for (var j = 0u; j < 8u; j++) { v[j] = nf4_dequant(s.word, nf4_shift(j), s.am); }
      if (TRANS_W) {
        // Column tid of op(W), k 0..7.
        for (var j = 0u; j < 8u; j++) { tile_b[base + j * 32u + tid / 4u][tid % 4u] = v[j]; }
      } else {
        // Row tid / 16 of op(W), columns (tid % 16) * 8 .. + 7: two whole vec4s.
        let at = base + (tid / 16u) * 32u + (tid % 16u) * 2u;
        tile_b[at] = vec4<f32>(v[0], v[1], v[2], v[3]);
        tile_b[at + 1u] = vec4<f32>(v[4], v[5], v[6], v[7]);
      }
    }
  } else if (TRANS_W) {
    store_k4(false, base, tid / 2u, (tid % 2u) * 4u, s.vals);
  } else {
    tile_b[base + tid] = s.vals;
  }
}

/** Four k-consecutive elements of row `r` of a, from k `k` (zeros outside). */
fn load4_a(r: u32, k: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (r < p.m) {
    for (var i = 0u; i < 4u; i++) {
      if (k + i < p.ki) { v[i] = f32(a[r * p.ki + k + i]); }
    }
  }
  return v;
}

// A workgroup of 256 computes a 128x128 block of out with the register blocks of
// shaders/tile128.wgsl (prepended by the wrapper); double-buffered as shaders/matmul.wgsl.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  nf4_table_init(tid);
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let tx = tid % 16u;
  let ty = tid / 16u;
  var acc = Acc8x8();

  let ra = tid / 2u;
  let kc = (tid % 2u) * 4u;
  let tiles = (p.ki + BK - 1u) / BK;
  var next_a = load4_a(row0 + ra, kc);
  var next_w = fetch_w(tid, 0u, col0);
  store_k4(true, 0u, ra, kc, next_a);
  store_w(tid, 0u, next_w);
  workgroupBarrier();

  for (var t = 0u; t < tiles; t++) {
    let cur = (t % 2u) * TILE_VEC4;
    let more = t + 1u < tiles;
    if (more) {
      let k0 = (t + 1u) * BK;
      next_a = load4_a(row0 + ra, k0 + kc);
      next_w = fetch_w(tid, k0, col0);
    }
    acc_tile(&acc, cur, tx, ty);
    if (more) {
      let nxt = TILE_VEC4 - cur;
      store_k4(true, nxt, ra, kc, next_a);
      store_w(tid, nxt, next_w);
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < 8u; i++) {
    let r = row0 + acc_row_index(i, ty);
    if (r >= p.m) { continue; }
    for (var h = 0u; h < 2u; h++) {
      let v = acc_row(acc, i, h);
      let col = col0 + h * 64u + tx * 4u;
      for (var j = 0u; j < 4u; j++) {
        if (col + j < p.nc) { store(r * p.nc + col + j, col + j, v[j]); }
      }
    }
  }
}

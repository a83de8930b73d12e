// The kernel before issue 10 (shaders/lora-backward.wgsl as it was), kept only so that tools/bench/lora.ts can time old
// and new side by side for one release; the engine does not use it. Delete it with the bench's v0 path.
// The LoRA backward (forward: shaders/lora.wgsl, y += s · u Bᵀ with u = x Aᵀ kept). Given dy:
//   dB += s · dyᵀ u    [N, r]     outer, OUTER_X = false
//   du  = s · dy B     [M, r]     down
//   dA += duᵀ x        [r, K]     outer, OUTER_X = true
//   dx += du A         [M, K]     up
// PEFT layouts: A [r, K], B [N, r]; A, B, their gradients, u and du are f32 in both numeric modes.
// One shader, three phases chosen by the override MODE (as shaders/lora.wgsl does with UP), so
// every phase has the same bind-group shape; the wrapper binds small placeholders where a phase
// does not read or write a binding.
//
// down (MODE 0): acc[m, j] = scale Σ_c dy[m, c] · f1[j · w_row + c · w_red]: the forward's down
//   kernel with a strided weight (B[c, j] = B[c · r + j]: w_row 1, w_red r). A workgroup takes 16
//   columns j and 8 rows m; 16 slices per column split the reduced index c (consecutive
//   invocations take consecutive j: the 16 values B[c, j0..j0+15] are contiguous). One barrier,
//   then 128 invocations each add the 16 slices of one (row, column). Grid ceil(r/16) x ceil(M/8).
// up (MODE 1): y[m, col] = scale Σ_j f1[m · r + j] · f2[col · w_row + j · w_red] (+ y): the
//   forward's up kernel with a strided weight (A[j, k] = A[j · K + k]: w_row 1, w_red K); 4x4
//   register blocks of a 64x64 tile, no staging. Grid ceil(K/64) x ceil(M/64).
// outer (MODE 2): acc[c, j] (out_t 0, [C, r]) or acc[j, c] (out_t 1, [r, C]) = scale Σ_m g[m, c]
//   · f1[m, j] (+ acc), g = dy (OUTER_X false) or x (true), [M, C]. A workgroup owns 64 (c) x
//   16 (j); an invocation one c and 4 consecutive j, and walks all of M: per row one read of g
//   (consecutive invocations, consecutive c: coalesced) and 4 of f1 (the same 16 bytes for the
//   64 invocations of a j group: broadcast), 4 FMAs. No staging and no barrier: staged tiles
//   with barriers in the M loop compiled 5x slower on lavapipe and bought little, as a g value
//   is read by only the 4 invocations of its column (one per j group), mostly from cache. Grid
//   ceil(C/64) x ceil(r/16). The whole reduction over M (tokens) stays in one invocation: no
//   atomics, deterministic; a long serial loop at large M (splitting M is a next step).
// Dropout (training; DROPOUT override of shaders/lora-dropout.wgsl, prepended by the wrapper):
// with the forward's u = dropout(x) Aᵀ, dA = duᵀ dropout(x) (outer, OUTER_X: x read times its
// mask factor) and dx = mask ∘ (du A) (up: each output times the factor of its element of x);
// dB and du do not change. The mask is the forward's: the same key, the same element indices.
// `T` = type of x (set by the loader); `D` = type of dy, `R` = type of dx (T or f32; the wrapper
// declares both). f32 accumulation; results rounded once to their type when stored.

struct Params {
  m: u32,          // rows M (tokens)
  len: u32,        // down: N (reduced); up: K (columns of y); outer: C (columns of g)
  r: u32,
  w_row: u32,      // weight stride along the output column (down: j; up: col)
  w_red: u32,      // weight stride along the reduced index (down: c; up: j)
  out_t: u32,      // outer: 1 = acc is [r, C], 0 = [C, r]
  accumulate: u32, // add to what the output holds
  scale: f32,
  drop_key: u32,   // dropout (DROPOUT): the draw's key, threshold and 1 / (1 - p)
  drop_threshold: u32,
  drop_scale: f32,
}

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> dy: array<D>;
@group(0) @binding(2) var<storage, read> f1: array<f32>;        // down: B; up: du; outer: u or du
@group(0) @binding(3) var<storage, read> f2: array<f32>;        // up: A
@group(0) @binding(4) var<storage, read_write> acc: array<f32>; // down: du; outer: dB or dA
@group(0) @binding(5) var<storage, read_write> y: array<R>;     // up: dx
@group(0) @binding(6) var<uniform> p: Params;

override MODE: u32 = 0u;
override OUTER_X: bool = false;

const WG = 256u;
const DOWN_COLS = 16u;
const DOWN_ROWS = 8u;
const SLICES = 16u;
var<workgroup> part: array<f32, 2048>; // down: [DOWN_ROWS][WG]

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  if (MODE == 0u) {
    down(wg, lid.x);
  } else if (MODE == 1u) {
    up(wg, lid.x);
  } else {
    outer(wg, lid.x);
  }
}

fn down(wg: vec3u, tid: u32) {
  let jl = tid % DOWN_COLS;
  let s = tid / DOWN_COLS;
  let j = wg.x * DOWN_COLS + jl;
  let m0 = wg.y * DOWN_ROWS;
  let rows = min(DOWN_ROWS, p.m - min(m0, p.m));
  var sums = array<f32, DOWN_ROWS>();
  if (j < p.r) {
    for (var c = s; c < p.len; c += SLICES) {
      let wv = f1[j * p.w_row + c * p.w_red];
      for (var i = 0u; i < rows; i++) { sums[i] = fma(f32(dy[(m0 + i) * p.len + c]), wv, sums[i]); }
    }
  }
  for (var i = 0u; i < DOWN_ROWS; i++) { part[i * WG + tid] = sums[i]; }
  workgroupBarrier();
  if (tid < DOWN_ROWS * DOWN_COLS) {
    let i = tid / DOWN_COLS;
    let jj = tid % DOWN_COLS;
    let j2 = wg.x * DOWN_COLS + jj;
    if (i < rows && j2 < p.r) {
      var sum = 0.0;
      for (var t = 0u; t < SLICES; t++) { sum += part[i * WG + t * DOWN_COLS + jj]; }
      let o = (m0 + i) * p.r + j2;
      var prev = 0.0;
      if (p.accumulate != 0u) { prev = acc[o]; }
      acc[o] = fma(p.scale, sum, prev);
    }
  }
}

fn up(wg: vec3u, tid: u32) {
  let tx = tid % 16u;
  let ty = tid / 16u;
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  var sums = array<f32, 16>();
  for (var jj = 0u; jj < p.r; jj++) {
    // Explicit zeros: Dawn on lavapipe does not re-zero `var v: array<...>;` on each iteration.
    var uv = array<f32, 4>();
    var wv = array<f32, 4>();
    for (var i = 0u; i < 4u; i++) {
      let m = m0 + ty + 16u * i;
      if (m < p.m) { uv[i] = f1[m * p.r + jj]; }
    }
    for (var c = 0u; c < 4u; c++) {
      let col = n0 + tx + 16u * c;
      if (col < p.len) { wv[c] = f2[col * p.w_row + jj * p.w_red]; }
    }
    for (var i = 0u; i < 4u; i++) {
      for (var c = 0u; c < 4u; c++) { sums[i * 4u + c] = fma(uv[i], wv[c], sums[i * 4u + c]); }
    }
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + ty + 16u * i;
    for (var c = 0u; c < 4u; c++) {
      let col = n0 + tx + 16u * c;
      if (m < p.m && col < p.len) {
        let o = m * p.len + col;
        var prev = 0.0;
        if (p.accumulate != 0u) { prev = f32(y[o]); }
        var sc = p.scale;
        if (DROPOUT) { sc = sc * dropout_factor(o, p.drop_key, p.drop_threshold, p.drop_scale); }
        y[o] = R(fma(sc, sums[i * 4u + c], prev));
      }
    }
  }
}

/** Element i of the outer product's T-side input: x (dropped out in training) or dy. */
fn g_at(i: u32) -> f32 {
  if (OUTER_X) {
    if (DROPOUT) { return f32(x[i]) * dropout_factor(i, p.drop_key, p.drop_threshold, p.drop_scale); }
    return f32(x[i]);
  }
  return f32(dy[i]);
}

fn outer(wg: vec3u, tid: u32) {
  let c = wg.x * 64u + tid % 64u;      // consecutive invocations: consecutive columns of g
  let j0 = wg.y * 16u + 4u * (tid / 64u); // 4 columns of f1 each
  var sums = array<f32, 4>();
  if (c < p.len) {
    for (var m = 0u; m < p.m; m++) {
      let gv = g_at(m * p.len + c);
      let fb = m * p.r + j0;
      for (var q = 0u; q < 4u; q++) {
        if (j0 + q < p.r) { sums[q] = fma(gv, f1[fb + q], sums[q]); }
      }
    }
    for (var q = 0u; q < 4u; q++) {
      let j = j0 + q;
      if (j < p.r) {
        let o = select(c * p.r + j, j * p.len + c, p.out_t != 0u);
        var prev = 0.0;
        if (p.accumulate != 0u) { prev = acc[o]; }
        acc[o] = fma(p.scale, sums[q], prev);
      }
    }
  }
}

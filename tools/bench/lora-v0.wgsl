// The kernel before issue 10 (shaders/lora.wgsl as it was), kept only so that tools/bench/lora.ts can time old
// and new side by side for one release; the engine does not use it. Delete it with the bench's v0 path.
// The LoRA path of a linear layer: y += scale · B (A x), as two thin products (PEFT layout:
// lora_A [r, K] = [r, in], lora_B [N, r] = [out, r]; f32 master weights in both numeric modes).
//   down (UP = false): u[M, r] = x[M, K] · Aᵀ     u in f32, kept: the backward pass needs it
//   up   (UP = true):  y[M, N] = y + scale · u · Bᵀ, in f32, rounded once to y's type
// Both phases bind the same five buffers (each uses its own three), so one wrapper call records
// two dispatches of one shader with the same bind-group shape.
//
// down: K is long and r short (8..64), so a workgroup takes 16 columns of u (16 rows of A) and 8
// rows of x, and splits K among 16 invocations per column: invocation (column c, slice s) sums
// k = s, s + 16, ... for its 8 rows (consecutive invocations read consecutive k of one A row and
// of the x rows: coalesced). One barrier, then 128 invocations each add the 16 slices of one
// (row, column). Grid: ceil(r / 16) x ceil(M / 8).
// up: the inner dimension is r, so no staging: an invocation computes a 4x4 block of y (rows
// ty + 16i, columns tx + 16j of a 64x64 tile, so neighbouring invocations touch neighbouring y
// columns) reading u and B straight from memory (both small and cached). No barrier.
// Dropout (training only, DROPOUT override from shaders/lora-dropout.wgsl, prepended): the down
// product reads x times its mask factor, u = dropout(x) · Aᵀ; the up product is unchanged.
// `T` = storage type of x (set by the loader); `R` = type of y (T, or f32), declared by the wrapper.

struct Params { m: u32, k: u32, n: u32, r: u32, scale: f32, drop_key: u32, drop_threshold: u32, drop_scale: f32 }

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> lora_a: array<f32>;
@group(0) @binding(2) var<storage, read> lora_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> u: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<R>;
@group(0) @binding(5) var<uniform> p: Params;

override UP: bool = false;

const WG = 256u;
const DOWN_COLS = 16u;
const DOWN_ROWS = 8u;
const SLICES = 16u;
var<workgroup> part: array<f32, 2048>; // [DOWN_ROWS][WG]

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  if (UP) {
    up(wg, lid.x);
  } else {
    down(wg, lid.x);
  }
}

/** x[m, k] as the LoRA path sees it: times its dropout factor when DROPOUT (training). */
fn lora_input(m: u32, k: u32) -> f32 {
  let i = m * p.k + k;
  let v = f32(x[i]);
  if (DROPOUT) { return v * dropout_factor(i, p.drop_key, p.drop_threshold, p.drop_scale); }
  return v;
}

fn down(wg: vec3u, tid: u32) {
  let s = tid % SLICES;
  let c = tid / SLICES;
  let j = wg.x * DOWN_COLS + c; // column of u, row of A
  let m0 = wg.y * DOWN_ROWS;
  let rows = min(DOWN_ROWS, p.m - min(m0, p.m));
  var acc: array<f32, DOWN_ROWS>;
  if (j < p.r) {
    for (var k = s; k < p.k; k += SLICES) {
      let av = lora_a[j * p.k + k];
      for (var i = 0u; i < rows; i++) { acc[i] = fma(lora_input(m0 + i, k), av, acc[i]); }
    }
  }
  for (var i = 0u; i < DOWN_ROWS; i++) { part[i * WG + tid] = acc[i]; }
  workgroupBarrier();
  if (tid < DOWN_ROWS * DOWN_COLS) {
    let i = tid / DOWN_COLS;
    let cc = tid % DOWN_COLS;
    let jj = wg.x * DOWN_COLS + cc;
    if (i < rows && jj < p.r) {
      var sum = 0.0;
      for (var t = 0u; t < SLICES; t++) { sum += part[i * WG + cc * SLICES + t]; }
      u[(m0 + i) * p.r + jj] = sum;
    }
  }
}

fn up(wg: vec3u, tid: u32) {
  let tx = tid % 16u;
  let ty = tid / 16u;
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  var acc: array<f32, 16>;
  for (var jj = 0u; jj < p.r; jj++) {
    // Explicit zeros: Dawn on lavapipe does not re-zero `var v: array<...>;` on each iteration.
    var uv = array<f32, 4>();
    var bv = array<f32, 4>();
    for (var i = 0u; i < 4u; i++) {
      let m = m0 + ty + 16u * i;
      if (m < p.m) { uv[i] = u[m * p.r + jj]; }
    }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx + 16u * j;
      if (n < p.n) { bv[j] = lora_b[n * p.r + jj]; }
    }
    for (var i = 0u; i < 4u; i++) {
      for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] = fma(uv[i], bv[j], acc[i * 4u + j]); }
    }
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + ty + 16u * i;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx + 16u * j;
      if (m < p.m && n < p.n) {
        let o = m * p.n + n;
        y[o] = R(fma(p.scale, acc[i * 4u + j], f32(y[o])));
      }
    }
  }
}

// Tiled matmul: C[M,N] = A[M,K] · op(B), f32 accumulation.
// op(B) = B stored [K,N], or with TRANS_B = Bᵀ for B stored [N,K] (the nn.Linear weight layout).
// A workgroup of 256 computes a 128x128 block of C with the register blocks of shaders/tile128.wgsl
// (prepended by the wrapper). A (128x8) and op(B) (8x128) tiles are staged as f32 whatever the
// storage type, double-buffered: the next tile's global loads are in flight while the current one
// is computed, and one barrier per tile suffices.
// `T` is the storage type (f32, or f16 with `enable f16;`), set by the loader in kernels.ts.

struct Params { m: u32, n: u32, k: u32 }

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read_write> c: array<T>;
@group(0) @binding(3) var<uniform> p: Params;

override TRANS_B: bool = false;

/** Four k-consecutive elements of row `r` of a [rows, K] matrix starting at k `k`, zeros outside. */
fn load4_a(r: u32, k: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (r < p.m) {
    for (var i = 0u; i < 4u; i++) {
      if (k + i < p.k) { v[i] = f32(a[r * p.k + k + i]); }
    }
  }
  return v;
}

/** Four elements of op(B) for this invocation's share of the tile at k0 (see main). */
fn load4_b(tid: u32, k0: u32, col0: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (TRANS_B) {
    // Like A: column col0 + tid / 2 of op(B) is row col0 + tid / 2 of B.
    let col = col0 + tid / 2u;
    let k = k0 + (tid % 2u) * 4u;
    if (col < p.n) {
      for (var i = 0u; i < 4u; i++) {
        if (k + i < p.k) { v[i] = f32(b[col * p.k + k + i]); }
      }
    }
  } else {
    // Row k0 + tid / 32 of B, four consecutive columns.
    let k = k0 + tid / 32u;
    let col = col0 + (tid % 32u) * 4u;
    if (k < p.k) {
      for (var j = 0u; j < 4u; j++) {
        if (col + j < p.n) { v[j] = f32(b[k * p.n + col + j]); }
      }
    }
  }
  return v;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let tx = tid % 16u;
  let ty = tid / 16u;
  var acc = Acc8x8();

  // This invocation's share of each tile: A row tid / 2, k (tid % 2) * 4 .. + 3; op(B) alike.
  let ra = tid / 2u;
  let kc = (tid % 2u) * 4u;
  let tiles = (p.k + BK - 1u) / BK;
  var next_a = load4_a(row0 + ra, kc);
  var next_b = load4_b(tid, 0u, col0);
  store_k4(true, 0u, ra, kc, next_a);
  if (TRANS_B) { store_k4(false, 0u, ra, kc, next_b); } else { tile_b[tid] = next_b; }
  workgroupBarrier();

  for (var t = 0u; t < tiles; t++) {
    let cur = (t % 2u) * TILE_VEC4;
    let more = t + 1u < tiles;
    if (more) {
      let k0 = (t + 1u) * BK;
      next_a = load4_a(row0 + ra, k0 + kc);
      next_b = load4_b(tid, k0, col0);
    }
    acc_tile(&acc, cur, tx, ty);
    if (more) {
      let nxt = TILE_VEC4 - cur;
      store_k4(true, nxt, ra, kc, next_a);
      if (TRANS_B) { store_k4(false, nxt, ra, kc, next_b); } else { tile_b[nxt + tid] = next_b; }
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
        if (col + j < p.n) { c[r * p.n + col + j] = T(v[j]); }
      }
    }
  }
}

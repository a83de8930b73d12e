// Tiled matmul: C[M,N] = A[M,K] · op(B), f32 accumulation.
// op(B) = B stored [K,N], or with TRANS_B = Bᵀ for B stored [N,K] (the nn.Linear weight layout).
// A 16x16 workgroup computes a 64x64 block of C, each invocation a 4x4 register block; A and B
// tiles (64x16, 16x64) are staged through workgroup memory as f32 whatever the storage type.
// `T` is the storage type (f32, or f16 with `enable f16;`), set by the loader in kernels.ts.

struct Params { m: u32, n: u32, k: u32 }

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read_write> c: array<T>;
@group(0) @binding(3) var<uniform> p: Params;

override TRANS_B: bool = false;

const BM = 64u;
const BN = 64u;
const BK = 16u;
const THREADS = 256u;

var<workgroup> tile_a: array<f32, 1024>; // [BK][BM], k-major so the inner loop reads rows
var<workgroup> tile_b: array<f32, 1024>; // [BK][BN]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let tid = lid.y * 16u + lid.x;
  var acc: array<f32, 16>;

  for (var k0 = 0u; k0 < p.k; k0 += BK) {
    for (var i = 0u; i < 4u; i++) {
      let idx = tid + i * THREADS;
      // A: consecutive invocations read consecutive k of one row (coalesced).
      let r = idx / BK;
      let ka = idx % BK;
      var va = 0.0;
      if (row0 + r < p.m && k0 + ka < p.k) { va = f32(a[(row0 + r) * p.k + k0 + ka]); }
      tile_a[ka * BM + r] = va;

      var kb: u32;
      var cb: u32;
      if (TRANS_B) { cb = idx / BK; kb = idx % BK; } else { kb = idx / BN; cb = idx % BN; }
      var vb = 0.0;
      if (col0 + cb < p.n && k0 + kb < p.k) {
        if (TRANS_B) { vb = f32(b[(col0 + cb) * p.k + k0 + kb]); } else { vb = f32(b[(k0 + kb) * p.n + col0 + cb]); }
      }
      tile_b[kb * BN + cb] = vb;
    }
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
      if (r < p.m && col < p.n) { c[r * p.n + col] = T(acc[i * 4u + j]); }
    }
  }
}

// The lm_head + cross-entropy backward, chunked over the vocabulary (forward: shaders/lmhead.wgsl,
// which leaves lse per row). For L = Σ_(trained r) (lse_r - logit_r[t_r]) / N, logits = h · Eᵀ:
//   dlogits_rv = (exp(logit_rv - lse_r) - [v = t_r]) / N      (0 for a row with t_r >= V)
//   dh = dlogits · E
// One chunk of Vc vocabulary rows at a time: `grad` recomputes the chunk's logits tile by tile
// and writes dlogits for it into a [rows, Vc] f32 scratch `g`; `dh_main` then adds g · E_chunk
// into dh. No [rows x V] tensor, and E is bound a chunk at a time (a buffer range), so E never
// has to fit one storage binding. The wrapper runs the two per chunk, in order.
// Entry points (each binds only its own buffers):
//   grad     a 64 x 64 tile of logits (rows x chunk columns) as in shaders/lmhead.wgsl (16x16
//            invocations, 4x4 register blocks, k in steps of 16 staged in workgroup memory, f32
//            accumulation), then dlogits per element. exp only sees logit - lse <= ~0.
//   dh_main  dh[M, H] (+)= g[M, Vc] · E_chunk[Vc, H]: the same tile shape (64 x 64 of dh, k =
//            the chunk's vocabulary rows in steps of 16), rounded once to dh's type when stored.
//   grad_rows  dlogits from logits another kernel wrote into g (the tensor-core GEMM, lmhead-
//            backward.ts, which also does the dh product): in place, one invocation per element.
// Types (declared by the wrapper, lmhead.ts lmHeadTypes): `A` = storage type of h, `E` = storage
// type of the matrix (f32 or f16 each: training has f32 h and an f16 E), widened to f32 as they are
// staged (f32 accumulation); `R` = type of dh: f32 (recommended: it accumulates over the chunks)
// or A. The loader's `T` is not used here.

struct Params {
  rows: u32,       // M
  hidden: u32,     // H
  vocab: u32,      // V: a target >= vocab marks a row that is not trained
  v0: u32,         // first vocabulary row of this chunk
  chunk_rows: u32, // vocabulary rows in this chunk
  g_stride: u32,   // row stride of g (the scratch's chunk capacity)
  accumulate: u32, // dh_main: add to what dh holds
  inv_n: f32,      // 1 / N, N = trained tokens of the whole accumulated batch
}

@group(0) @binding(0) var<storage, read> h: array<A>;
@group(0) @binding(1) var<storage, read> e: array<E>; // rows [v0, v0 + chunk_rows) of E [V, H]
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> g: array<f32>; // [rows, g_stride]
@group(0) @binding(5) var<storage, read_write> dh: array<R>;  // [rows, hidden]
@group(0) @binding(6) var<uniform> p: Params;

const BM = 64u;
const BN = 64u;
const BK = 16u;
const THREADS = 256u;

var<workgroup> tile_a: array<f32, 1024>; // [BK][BM]
var<workgroup> tile_b: array<f32, 1024>; // [BK][BN]

/** acc += tile_a(k-major, rows lid.y·4..) x tile_b(k-major, columns lid.x·4..) over BK. */
fn tile_fma(lid: vec3u, acc: ptr<function, array<f32, 16>>) {
  for (var kk = 0u; kk < BK; kk++) {
    var av = array<f32, 4>();
    var bv = array<f32, 4>();
    for (var i = 0u; i < 4u; i++) { av[i] = tile_a[kk * BM + lid.y * 4u + i]; }
    for (var j = 0u; j < 4u; j++) { bv[j] = tile_b[kk * BN + lid.x * 4u + j]; }
    for (var i = 0u; i < 4u; i++) {
      for (var j = 0u; j < 4u; j++) { (*acc)[i * 4u + j] = fma(av[i], bv[j], (*acc)[i * 4u + j]); }
    }
  }
}

@compute @workgroup_size(16, 16)
fn grad(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let tid = lid.y * 16u + lid.x;
  var acc = array<f32, 16>();
  for (var k0 = 0u; k0 < p.hidden; k0 += BK) {
    for (var i = 0u; i < 4u; i++) {
      let idx = tid + i * THREADS;
      let r = idx / BK;
      let kk = idx % BK;
      var va = 0.0;
      if (row0 + r < p.rows && k0 + kk < p.hidden) { va = f32(h[(row0 + r) * p.hidden + k0 + kk]); }
      tile_a[kk * BM + r] = va;
      var vb = 0.0;
      if (col0 + r < p.chunk_rows && k0 + kk < p.hidden) { vb = f32(e[(col0 + r) * p.hidden + k0 + kk]); }
      tile_b[kk * BN + r] = vb;
    }
    workgroupBarrier();
    tile_fma(lid, &acc);
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    if (r < p.rows) {
      let t = targets[r];
      let l = lse[r];
      for (var j = 0u; j < 4u; j++) {
        let c = col0 + lid.x * 4u + j;
        if (c < p.chunk_rows) {
          let d = exp(acc[i * 4u + j] - l) - select(0.0, 1.0, t == p.v0 + c);
          g[r * p.g_stride + c] = select(0.0, d * p.inv_n, t < p.vocab);
        }
      }
    }
  }
}

@compute @workgroup_size(16, 16)
fn dh_main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let tid = lid.y * 16u + lid.x;
  var acc = array<f32, 16>();
  for (var k0 = 0u; k0 < p.chunk_rows; k0 += BK) {
    for (var i = 0u; i < 4u; i++) {
      let idx = tid + i * THREADS;
      // g [rows][chunk]: consecutive invocations read consecutive k of one row.
      let r = idx / BK;
      let ka = idx % BK;
      var va = 0.0;
      if (row0 + r < p.rows && k0 + ka < p.chunk_rows) { va = g[(row0 + r) * p.g_stride + k0 + ka]; }
      tile_a[ka * BM + r] = va;
      // E_chunk [chunk][hidden]: consecutive invocations read consecutive hidden columns.
      let kb = idx / BN;
      let cb = idx % BN;
      var vb = 0.0;
      if (k0 + kb < p.chunk_rows && col0 + cb < p.hidden) { vb = f32(e[(k0 + kb) * p.hidden + col0 + cb]); }
      tile_b[kb * BN + cb] = vb;
    }
    workgroupBarrier();
    tile_fma(lid, &acc);
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x * 4u + j;
      if (r < p.rows && c < p.hidden) {
        let o = r * p.hidden + c;
        var prev = 0.0;
        if (p.accumulate != 0u) { prev = f32(dh[o]); }
        dh[o] = R(acc[i * 4u + j] + prev);
      }
    }
  }
}

@compute @workgroup_size(256)
fn grad_rows(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + tid;
  if (i >= p.rows * p.chunk_rows) { return; }
  let r = i / p.chunk_rows;
  let c = i % p.chunk_rows;
  let t = targets[r];
  let o = r * p.g_stride + c;
  let d = exp(g[o] - lse[r]) - select(0.0, 1.0, t == p.v0 + c);
  g[o] = select(0.0, d * p.inv_n, t < p.vocab);
}

// The lm_head over a chunk of the vocabulary: logits = h · Eᵀ for E [V, H] (the output matrix, or
// the tied embedding table, dense), one chunk of Vc rows of E per dispatch, so a
// 128k vocabulary never needs a [tokens x V] logits tensor and E never needs one binding.
// The wrapper binds only rows [v0, v0 + chunk_rows) of E (a buffer range), so `e` is the chunk.
//
// Entry points (each uses its own bindings; the wrapper binds exactly those):
//   stats    a 64 x 64 tile of logits (rows x vocab) as in shaders/matmul.wgsl (16x16
//            invocations, 4x4 register blocks, f32 accumulation), then per row of the tile the
//            max and Σ exp(logit - max) over its 64 columns -> partial[row, tile]; the invocation
//            holding the logit of a row's target id writes it to tlogit[row].
//   combine  per row: folds the chunk's partials into the running (max, sum) (online logsumexp),
//            then lse = max + log(sum) and loss = lse - tlogit for a trained row (target < vocab),
//            0 otherwise. After the last chunk's combine, lse and loss are final.
//   logits   the same tile, written out (f32) for rows [row0, row0 + rows) (one row, decode's last
//            position: the matrix-vector kernel of shaders/lmhead-row.wgsl instead).
//   stats_rows  the statistics of `stats` from logits another kernel wrote (the tensor-core GEMM,
//            lmhead.ts): `out` holds the chunk's logits [rows, chunk_rows]; one workgroup per row
//            leaves one partial per row (combine then reads p.tiles = 1 partial).
// Accuracy: exp only ever sees logit - max <= 0 (WGSL: 3 + 2|x| ULP, so the terms that matter,
// near the max, are accurate to a few ULP); log(sum) with sum in [1, V] is within 2^-21 absolute
// or 3 ULP. No infinities are used: "minus infinity" is -3e38 and empty partials have sum 0.
// A backward pass can recompute a chunk's logits with the same tile and lse (softmax = exp(l - lse)).
// Types (declared by the wrapper, lmhead.ts lmHeadTypes): `A` = storage type of h (the
// activations), `E` = storage type of the matrix, each f32 or f16 on its own (training keeps f32
// activations and an f16 E). Both are widened to f32 as they are staged: f32 accumulation always.
// The loader's `T` is not used here.

struct Params {
  rows: u32,       // rows of h taken (from row0)
  row0: u32,       // first row of h
  hidden: u32,
  vocab: u32,      // V: a target >= vocab marks a row that is not trained
  v0: u32,         // first vocabulary row of this chunk
  chunk_rows: u32, // vocabulary rows in this chunk
  tiles: u32,      // 64-column tiles per chunk in `partial` (its row stride / 2)
  first: u32,      // combine: the first chunk (no running stats yet)
  out_stride: u32, // logits: row stride of `out`
  out_col0: u32,   // logits: column of `out` that vocabulary row v0 goes to
  row_partials: u32, // combine: 1 when stats_rows left one partial per row (else one per 64 columns)
}

@group(0) @binding(0) var<storage, read> h: array<A>;
@group(0) @binding(1) var<storage, read> e: array<E>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>; // [rows, tiles, 2]: max, sum
@group(0) @binding(4) var<storage, read_write> tlogit: array<f32>;  // [rows]
@group(0) @binding(5) var<storage, read_write> run: array<f32>;     // [rows, 2]: max, sum
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;     // [rows]
@group(0) @binding(7) var<storage, read_write> loss: array<f32>;    // [rows]
@group(0) @binding(8) var<storage, read_write> out: array<f32>;     // logits [rows, out_stride]
@group(0) @binding(9) var<uniform> p: Params;

const BM = 64u;
const BN = 64u;
const BK = 16u;
const THREADS = 256u;
const NEG = -3.0e38;

var<workgroup> tile_a: array<f32, 1024>; // [BK][BM]; then the row maxima [BM][16]
var<workgroup> tile_b: array<f32, 1024>; // [BK][BN]; then the row sums [BM][16]

/** The 4x4 logits of this invocation in the tile (rows row0.., chunk columns col0..). */
fn logits_tile(row0: u32, col0: u32, lid: vec3u) -> array<f32, 16> {
  let tid = lid.y * 16u + lid.x;
  var acc = array<f32, 16>();
  for (var k0 = 0u; k0 < p.hidden; k0 += BK) {
    for (var i = 0u; i < 4u; i++) {
      let idx = tid + i * THREADS;
      let r = idx / BK;
      let kk = idx % BK;
      var va = 0.0;
      if (row0 + r < p.rows && k0 + kk < p.hidden) { va = f32(h[(p.row0 + row0 + r) * p.hidden + k0 + kk]); }
      tile_a[kk * BM + r] = va;
      var vb = 0.0;
      if (col0 + r < p.chunk_rows && k0 + kk < p.hidden) { vb = f32(e[(col0 + r) * p.hidden + k0 + kk]); }
      tile_b[kk * BN + r] = vb;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var av = array<f32, 4>();
      var bv = array<f32, 4>();
      for (var i = 0u; i < 4u; i++) { av[i] = tile_a[kk * BM + lid.y * 4u + i]; }
      for (var j = 0u; j < 4u; j++) { bv[j] = tile_b[kk * BN + lid.x * 4u + j]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]); }
      }
    }
    workgroupBarrier();
  }
  return acc;
}

@compute @workgroup_size(16, 16)
fn stats(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let tid = lid.y * 16u + lid.x;
  let acc = logits_tile(row0, col0, lid);

  for (var i = 0u; i < 4u; i++) {
    let rl = lid.y * 4u + i; // row in the tile
    let r = row0 + rl;
    var mx = NEG;
    var sum = 0.0;
    if (r < p.rows) {
      let t = targets[p.row0 + r];
      for (var j = 0u; j < 4u; j++) {
        let c = col0 + lid.x * 4u + j;
        if (c < p.chunk_rows) {
          mx = max(mx, acc[i * 4u + j]);
          if (t == p.v0 + c) { tlogit[r] = acc[i * 4u + j]; }
        }
      }
      for (var j = 0u; j < 4u; j++) {
        if (col0 + lid.x * 4u + j < p.chunk_rows) { sum += exp(acc[i * 4u + j] - mx); }
      }
    }
    // logits_tile ended on a barrier: the tiles are free to hold the per-invocation partials.
    tile_a[rl * 16u + lid.x] = mx;
    tile_b[rl * 16u + lid.x] = sum;
  }
  workgroupBarrier();
  if (tid < BM && row0 + tid < p.rows) {
    var mx = NEG;
    for (var x = 0u; x < 16u; x++) { mx = max(mx, tile_a[tid * 16u + x]); }
    var sum = 0.0;
    for (var x = 0u; x < 16u; x++) {
      let s = tile_b[tid * 16u + x];
      if (s > 0.0) { sum += s * exp(tile_a[tid * 16u + x] - mx); }
    }
    let o = ((row0 + tid) * p.tiles + wg.x) * 2u;
    partial[o] = mx;
    partial[o + 1u] = sum;
  }
}

@compute @workgroup_size(64)
fn combine(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = (wg.y * nwg.x + wg.x) * 64u + lid.x;
  if (r >= p.rows) { return; }
  let ntiles = select((p.chunk_rows + BN - 1u) / BN, 1u, p.row_partials != 0u);
  let base = r * p.tiles * 2u;
  var mx = NEG;
  for (var t = 0u; t < ntiles; t++) { mx = max(mx, partial[base + 2u * t]); }
  var sum = 0.0;
  for (var t = 0u; t < ntiles; t++) {
    let s = partial[base + 2u * t + 1u];
    if (s > 0.0) { sum += s * exp(partial[base + 2u * t] - mx); }
  }
  if (p.first == 0u) {
    let m0 = run[2u * r];
    let s0 = run[2u * r + 1u];
    let m1 = max(m0, mx);
    sum = s0 * exp(m0 - m1) + sum * exp(mx - m1);
    mx = m1;
  }
  run[2u * r] = mx;
  run[2u * r + 1u] = sum;
  let l = mx + log(sum);
  lse[r] = l;
  let t = targets[p.row0 + r];
  loss[r] = select(0.0, l - tlogit[r], t < p.vocab);
}

@compute @workgroup_size(16, 16)
fn logits(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let acc = logits_tile(row0, col0, lid);
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x * 4u + j;
      if (r < p.rows && c < p.chunk_rows) { out[r * p.out_stride + p.out_col0 + c] = acc[i * 4u + j]; }
    }
  }
}

var<workgroup> row_red: array<f32, 256>;

/** The max (op 0) or the sum (op 1) of row_red[0..256), left in row_red[0]; uniform control flow. */
fn reduce_row_red(tid: u32, op: u32) {
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (tid < s) {
      let a = row_red[tid];
      let b = row_red[tid + s];
      row_red[tid] = select(max(a, b), a + b, op == 1u);
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(256)
fn stats_rows(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let r = wg.y * nwg.x + wg.x; // uniform: one row per workgroup
  if (r >= p.rows) { return; }
  let base = r * p.chunk_rows;
  let t = targets[p.row0 + r];
  var mx = NEG;
  for (var c = tid; c < p.chunk_rows; c += 256u) {
    let l = out[base + c];
    mx = max(mx, l);
    if (t == p.v0 + c) { tlogit[r] = l; }
  }
  row_red[tid] = mx;
  workgroupBarrier();
  reduce_row_red(tid, 0u);
  let m = row_red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var c = tid; c < p.chunk_rows; c += 256u) { sum += exp(out[base + c] - m); }
  row_red[tid] = sum;
  workgroupBarrier();
  reduce_row_red(tid, 1u);
  if (tid == 0u) {
    partial[r * p.tiles * 2u] = m;
    partial[r * p.tiles * 2u + 1u] = row_red[0];
  }
}

// LoRA's down-projections on the tensor cores, from the f16 rows the GEMMs multiply anyway
// (matmul-mma.ts encodeMmaRows), for up to three adapters on one a (q/k/v, gate/up):
//   u_g[m, j] = scale_g · Σ_k a[m, k] · d_g[j, k]     u = x · Aᵀ (forward), du = s · dy · B (backward, d = Bᵀ)
// a arrives as f16-rows made it for the GEMMs (row m times 2^s_m, rounded to f16), each d_g [r_g, K]
// f32 the same way in the same dispatch, so the sum is taken over f16 products in f32 and scaled
// back by both rows' 2^-s (exact).
//
// A workgroup takes 16 rows of a and 16 rows of one d_g (the grid's y counts the blocks of 16 rows
// of d_0, then d_1, then d_2: they lie so in the rows from d_row on); its 8
// subgroups split K by 16-wide steps (subgroup s: steps s, s + 8, ...: at any time the workgroup
// reads 256 consecutive bytes of each row), eight loads of each operand in flight before their
// products. The 8 partial 16x16 sums meet in workgroup memory, added in a fixed order.
// f16-rows wrote a's rows from row 0 and the d's from row d_row, all in whole blocks of 16 rows: rows
// past m or r_g hold whatever was there and reach only results that are not stored. Needs K % 16 == 0.

struct Params {
  m: u32,
  k: u32,
  d_row: u32,
  b1: u32, // the first block of d_1, and of d_2 (the blocks' count where absent)
  b2: u32,
  r0: u32,
  r1: u32,
  r2: u32,
  scale0: f32,
  scale1: f32,
  scale2: f32,
}

@group(0) @binding(0) var<storage, read> rows16: array<f16>;            // a's rows, then the d's from d_row
@group(0) @binding(1) var<storage, read> row_scale: array<vec2<f32>>;   // (2^s, 2^-s) per row of rows16
@group(0) @binding(2) var<storage, read_write> u0: array<f32>;          // [m, r_g]
@group(0) @binding(3) var<storage, read_write> u1: array<f32>;          // (placeholders where absent)
@group(0) @binding(4) var<storage, read_write> u2: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const SUBGROUPS = 8u;
const AHEAD = 8u; // k steps a subgroup loads before multiplying them

var<workgroup> part: array<f32, 256u * SUBGROUPS>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let sg = tid / 32u;
  let row0 = wg.x * 16u;
  let at = row0 * p.k;
  let dt = (p.d_row + 16u * wg.y) * p.k;
  let steps = p.k / 16u;
  // The right matrix is dᵀ: (k, j) = d[j, k], column-major with d's row stride.
  var acc = subgroup_matrix_result<f32, 16, 16>();
  var t = sg;
  for (; t + (AHEAD - 1u) * SUBGROUPS < steps; t += AHEAD * SUBGROUPS) {
    //{{AHEAD}}
  }
  for (; t < steps; t += SUBGROUPS) {
    let x = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&rows16, at + 16u * t, p.k);
    let w = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&rows16, dt + 16u * t, p.k);
    acc = subgroupMatrixMultiplyAccumulate(x, w, acc);
  }
  subgroupMatrixStore<row_major>(&part, 256u * sg, acc, 16u);
  workgroupBarrier();
  var sum = 0.0;
  for (var s = 0u; s < SUBGROUPS; s++) { sum += part[256u * s + tid]; }
  let row = row0 + tid / 16u;
  let g = select(select(0u, 1u, wg.y >= p.b1), 2u, wg.y >= p.b2);
  let j = 16u * (wg.y - select(select(0u, p.b1, g == 1u), p.b2, g == 2u)) + tid % 16u;
  let v = sum * row_scale[row].y * row_scale[p.d_row + 16u * wg.y + tid % 16u].y;
  if (row >= p.m) { return; }
  if (g == 0u && j < p.r0) { u0[row * p.r0 + j] = p.scale0 * v; }
  if (g == 1u && j < p.r1) { u1[row * p.r1 + j] = p.scale1 * v; }
  if (g == 2u && j < p.r2) { u2[row * p.r2 + j] = p.scale2 * v; }
}

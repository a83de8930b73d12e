// 128x128 register-blocked tiles shared by shaders/matmul.wgsl and shaders/nf4-matmul.wgsl
// (their wrappers prepend this source: WGSL has no imports). A workgroup of 256 computes a
// 128x128 block; invocation (tx, ty) = (tid % 16, tid / 16) owns an 8x8 register block made of
// four 4x4 quarters 64 rows/columns apart: rows ty * 4 + 0..3 and 64 + ty * 4 + 0..3, columns
// tx * 4 + 0..3 and 64 + tx * 4 + 0..3. Its workgroup-memory reads are vec4s that neighbouring
// invocations take from consecutive addresses (no bank conflicts): 4 vec4 loads feed 64 FMAs per
// k. The tiles are k-major, [buffer][k][128 / 4], double-buffered (TILE_VEC4 vec4s per buffer).
// The accumulator is a struct of named vec4s, not an array: an array indexed in a loop stays in
// registers only if the compiler unrolls the loop, and NVIDIA's did not in the fused NF4 kernel
// (2.3 TFLOP/s there, against 28 for the same tiles in the plain matmul).
const BM = 128u;
const BN = 128u;
const BK = 8u;
const TILE_VEC4 = 256u;

var<workgroup> tile_a: array<vec4<f32>, 512>;
var<workgroup> tile_b: array<vec4<f32>, 512>;

/** Row i (0-7) of the 8x8 block: r{i}a = columns tx * 4 + 0..3, r{i}b = 64 + tx * 4 + 0..3. */
struct Acc8x8 {
  r0a: vec4<f32>,
  r0b: vec4<f32>,
  r1a: vec4<f32>,
  r1b: vec4<f32>,
  r2a: vec4<f32>,
  r2b: vec4<f32>,
  r3a: vec4<f32>,
  r3b: vec4<f32>,
  r4a: vec4<f32>,
  r4b: vec4<f32>,
  r5a: vec4<f32>,
  r5b: vec4<f32>,
  r6a: vec4<f32>,
  r6b: vec4<f32>,
  r7a: vec4<f32>,
  r7b: vec4<f32>,
}

/** Adds the product of the tile in buffer `cur` (vec4 offset) to the block. */
fn acc_tile(acc: ptr<function, Acc8x8>, cur: u32, tx: u32, ty: u32) {
  for (var kk = 0u; kk < BK; kk++) {
    let a0 = tile_a[cur + kk * 32u + ty];
    let a1 = tile_a[cur + kk * 32u + 16u + ty];
    let b0 = tile_b[cur + kk * 32u + tx];
    let b1 = tile_b[cur + kk * 32u + 16u + tx];
    (*acc).r0a = fma(vec4<f32>(a0.x), b0, (*acc).r0a);
    (*acc).r0b = fma(vec4<f32>(a0.x), b1, (*acc).r0b);
    (*acc).r1a = fma(vec4<f32>(a0.y), b0, (*acc).r1a);
    (*acc).r1b = fma(vec4<f32>(a0.y), b1, (*acc).r1b);
    (*acc).r2a = fma(vec4<f32>(a0.z), b0, (*acc).r2a);
    (*acc).r2b = fma(vec4<f32>(a0.z), b1, (*acc).r2b);
    (*acc).r3a = fma(vec4<f32>(a0.w), b0, (*acc).r3a);
    (*acc).r3b = fma(vec4<f32>(a0.w), b1, (*acc).r3b);
    (*acc).r4a = fma(vec4<f32>(a1.x), b0, (*acc).r4a);
    (*acc).r4b = fma(vec4<f32>(a1.x), b1, (*acc).r4b);
    (*acc).r5a = fma(vec4<f32>(a1.y), b0, (*acc).r5a);
    (*acc).r5b = fma(vec4<f32>(a1.y), b1, (*acc).r5b);
    (*acc).r6a = fma(vec4<f32>(a1.z), b0, (*acc).r6a);
    (*acc).r6b = fma(vec4<f32>(a1.z), b1, (*acc).r6b);
    (*acc).r7a = fma(vec4<f32>(a1.w), b0, (*acc).r7a);
    (*acc).r7b = fma(vec4<f32>(a1.w), b1, (*acc).r7b);
  }
}

/** Four columns (h = 0: tx * 4 + 0..3, h = 1: 64 + tx * 4 + 0..3) of row i of the block. */
fn acc_row(acc: Acc8x8, i: u32, h: u32) -> vec4<f32> {
  switch i {
    case 0u: { return select(acc.r0a, acc.r0b, h == 1u); }
    case 1u: { return select(acc.r1a, acc.r1b, h == 1u); }
    case 2u: { return select(acc.r2a, acc.r2b, h == 1u); }
    case 3u: { return select(acc.r3a, acc.r3b, h == 1u); }
    case 4u: { return select(acc.r4a, acc.r4b, h == 1u); }
    case 5u: { return select(acc.r5a, acc.r5b, h == 1u); }
    case 6u: { return select(acc.r6a, acc.r6b, h == 1u); }
    case 7u: { return select(acc.r7a, acc.r7b, h == 1u); }
    default: { return vec4<f32>(0.0); }
  }
}

/** Row (within the workgroup's block) of register row i. */
fn acc_row_index(i: u32, ty: u32) -> u32 {
  return select(ty * 4u + i, 64u + ty * 4u + i - 4u, i >= 4u);
}

/** Writes four k-consecutive values of row (or column) `r` of a tile into buffer `base`. */
fn store_k4(tile_is_a: bool, base: u32, r: u32, kc: u32, v: vec4<f32>) {
  for (var i = 0u; i < 4u; i++) {
    let at = base + (kc + i) * 32u + r / 4u;
    if (tile_is_a) { tile_a[at][r % 4u] = v[i]; } else { tile_b[at][r % 4u] = v[i]; }
  }
}

// An f32 operand of the tensor-core GEMM (shaders/matmul-mma.wgsl) as f16, row by row:
//   out[r, :] = f16(a[r, :] * 2^s)   scale[r] = (2^s, 2^-s)
// with s such that max |a[r, :]| * 2^s lies in [2^14, 2^15): f16 has 5 exponent bits, and an f32
// row (activations; gradients, often far below 2^-14, in training) would otherwise lose precision,
// flush to zero or overflow (f16's largest finite value is 65504). The GEMM multiplies row r of its
// product by 2^-s. Both scalings are exact, so every row keeps f16's 11 bits relative to its own
// largest element. Rows of zeros, and rows holding Inf, get s = 0 (an Inf stays Inf); NaN is ignored
// in the max, as fmaxf does, and stays NaN. One workgroup per row: the max on bit patterns (monotonic
// for non-NaN magnitudes), then the row again (from cache) to convert it. `main4` does the same with
// 16-byte loads and 8-byte stores where k % 4 == 0 (a scalar f16 store moves 64 bytes a warp: the
// scalar kernel ran at about a third of the memory's bandwidth).
// main4 also converts the down weights d_g [r_g, k] (f32) of up to three LoRA adapters on a in the
// same dispatch, where the GEMMs compute u themselves (shaders/matmul-mma-lora-down.wgsl): d_g's rows
// go to rows d_g_row .. of out and scale (a's are 0 .. m - 1; rows between are left alone: padding
// to blocks of 16). Groups absent have r_g = 0; without any, d_row = m.
enable f16;

struct Params { m: u32, k: u32, d_row: u32, d1_row: u32, d2_row: u32, r0: u32, r1: u32, r2: u32 }

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(0) var<storage, read> a4: array<vec4<T>>;
@group(0) @binding(1) var<storage, read_write> out: array<f16>;
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read_write> scale: array<vec2<f32>>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> d0: array<vec4<f32>>; // main4: the down weights, or placeholders
@group(0) @binding(5) var<storage, read> d1: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> d2: array<vec4<f32>>;

var<workgroup> part: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let r = wg.y * nwg.x + wg.x;
  let base = r * p.k;
  var m = 0u;
  if (r < p.m) {
    for (var c = tid; c < p.k; c += 256u) { m = max(m, mag(f32(a[base + c]))); }
  }
  let up = row_scale(r, r < p.m, tid, m);
  if (r >= p.m) { return; }
  for (var c = tid; c < p.k; c += 256u) { out[base + c] = f16(f32(a[base + c]) * up); }
}

/** |v|'s bits, 0 for NaN (left out of the max). */
fn mag(v: f32) -> u32 {
  let bits = bitcast<u32>(v) & 0x7fffffffu;
  return select(0u, bits, bits <= 0x7f800000u);
}

@compute @workgroup_size(256)
fn main4(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let r = wg.y * nwg.x + wg.x;
  let base = r * (p.k / 4u);
  let g = select(select(0u, 1u, r >= p.d1_row), 2u, r >= p.d2_row); // the group of a d row
  let j = r - select(select(p.d_row, p.d1_row, g == 1u), p.d2_row, g == 2u); // and its row in d_g
  let rows_g = select(select(p.r0, p.r1, g == 1u), p.r2, g == 2u);
  let valid = select((r < p.m), (j < rows_g), (r >= p.d_row));
  var m = 0u;
  if (valid) {
    for (var c = tid; c < p.k / 4u; c += 256u) {
      let v = row4(r, g, j, c);
      m = max(m, max(max(mag(v.x), mag(v.y)), max(mag(v.z), mag(v.w))));
    }
  }
  let up = row_scale(r, valid, tid, m);
  if (!valid) { return; }
  for (var c = tid; c < p.k / 4u; c += 256u) { out4[base + c] = vec4<f16>(row4(r, g, j, c) * up); }
}

/** Elements 4c .. 4c + 3 of row r of the output's source: a's row r, or row j of d_g from d_row on. */
fn row4(r: u32, g: u32, j: u32, c: u32) -> vec4<f32> {
  if (r < p.d_row) { return vec4<f32>(a4[r * (p.k / 4u) + c]); }
  let i = j * (p.k / 4u) + c;
  if (g == 0u) { return d0[i]; }
  if (g == 1u) { return d1[i]; }
  return d2[i];
}

/** The workgroup's max of each invocation's `m` (bit patterns), and from it row r's 2^s (written to scale by invocation 0 where `valid`). */
fn row_scale(r: u32, valid: bool, tid: u32, m: u32) -> f32 {
  part[tid] = m;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (tid < s) { part[tid] = max(part[tid], part[tid + s]); }
    workgroupBarrier();
  }
  let top = part[0];
  var s = 14 - (i32((top >> 23u) & 0xffu) - 127);
  if (top == 0u || top >= 0x7f800000u) { s = 0; }
  s = clamp(s, -126, 126);
  let up = bitcast<f32>(u32(s + 127) << 23u);
  if (tid == 0u && valid) { scale[r] = vec2<f32>(up, bitcast<f32>(u32(127 - s) << 23u)); }
  return up;
}

// An f32 operand of the tensor-core GEMM (shaders/matmul-mma.wgsl) as f16, row by row:
//   out[r, :] = f16(a[r, :] * 2^s)   scale[r] = (2^s, 2^-s)
// with s such that max |a[r, :]| * 2^s lies in [2^14, 2^15): f16 has 5 exponent bits, and an f32
// row (activations; gradients, often far below 2^-14, in training) would otherwise lose precision,
// flush to zero or overflow (f16's largest finite value is 65504). The GEMM multiplies row r of its
// product by 2^-s. Both scalings are exact, so every row keeps f16's 11 bits relative to its own
// largest element. Rows of zeros, and rows holding Inf, get s = 0 (an Inf stays Inf); NaN is ignored
// in the max, as fmaxf does, and stays NaN. One workgroup per row: the max on bit patterns (monotonic
// for non-NaN magnitudes), then the row again (from cache) to convert it.
enable f16;

struct Params { m: u32, k: u32 }

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read_write> out: array<f16>;
@group(0) @binding(2) var<storage, read_write> scale: array<vec2<f32>>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> part: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let r = wg.y * nwg.x + wg.x;
  let base = r * p.k;
  var m = 0u;
  if (r < p.m) {
    for (var c = tid; c < p.k; c += 256u) {
      let bits = bitcast<u32>(f32(a[base + c])) & 0x7fffffffu;
      if (bits <= 0x7f800000u) { m = max(m, bits); }
    }
  }
  part[tid] = m;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (tid < s) { part[tid] = max(part[tid], part[tid + s]); }
    workgroupBarrier();
  }
  if (r >= p.m) { return; }
  let top = part[0];
  var s = 14 - (i32((top >> 23u) & 0xffu) - 127);
  if (top == 0u || top >= 0x7f800000u) { s = 0; }
  s = clamp(s, -126, 126);
  let up = bitcast<f32>(u32(s + 127) << 23u);
  if (tid == 0u) { scale[r] = vec2<f32>(up, bitcast<f32>(u32(127 - s) << 23u)); }
  for (var c = tid; c < p.k; c += 256u) { out[base + c] = f16(f32(a[base + c]) * up); }
}

// Per-row power-of-two scales for an f32 operand of the tensor-core GEMM (shaders/matmul-mma.wgsl):
// scale[r] = (2^s, 2^-s) with s such that max |a[r, :]| * 2^s lies in [2^14, 2^15), so the row rounds
// to f16 with its full 11 bits and no overflow (f16's largest finite value is 65504). Rows of zeros,
// and rows holding Inf, get s = 0 (an Inf then stays Inf); NaN is ignored, as fmaxf does.
// One workgroup per row; the max is taken on bit patterns (monotonic for non-NaN magnitudes).

struct Params { m: u32, k: u32 }

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read_write> scale: array<vec2<f32>>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> part: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let r = wg.y * nwg.x + wg.x;
  var m = 0u;
  if (r < p.m) {
    for (var c = tid; c < p.k; c += 256u) {
      let bits = bitcast<u32>(f32(a[r * p.k + c])) & 0x7fffffffu;
      if (bits <= 0x7f800000u) { m = max(m, bits); }
    }
  }
  part[tid] = m;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (tid < s) { part[tid] = max(part[tid], part[tid + s]); }
    workgroupBarrier();
  }
  if (tid == 0u && r < p.m) {
    let top = part[0];
    var s = 14 - (i32((top >> 23u) & 0xffu) - 127);
    if (top == 0u || top >= 0x7f800000u) { s = 0; }
    s = clamp(s, -126, 126);
    scale[r] = vec2<f32>(bitcast<f32>(u32(s + 127) << 23u), bitcast<f32>(u32(127 - s) << 23u));
  }
}

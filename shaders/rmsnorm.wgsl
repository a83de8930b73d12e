// RMSNorm as transformers' LlamaRMSNorm computes it, one workgroup per row of `hidden` values:
//   rstd = 1 / sqrt(mean(x^2) + eps)   in f32 (x cast to f32)
//   h    = R(x * rstd)                 "hidden_states.to(input_dtype)": back to x's type
//   y    = T(R(w) * h)                 "self.weight * hidden_states", rounded to the output type
// With x and w in f16 this rounds twice, exactly like the PyTorch module in f16: the product is
// taken in f16 (f16 x f16 rounded once is what PyTorch's f16 multiply gives), which also keeps
// compilers from dropping the f16 round trip of h (lavapipe drops f32(f16(v)) as an inexact
// identity). With x in f32 (our f32 residual stream) h is not rounded and only the store rounds;
// in f32 throughout it is PyTorch's f32 module. rstd is written per row (f32) for the backward.
// The sum of squares: each invocation adds a strided slice of the row, then a tree reduction in
// workgroup memory (no subgroups). `T` = storage type of w and y (set by the loader); `R`
// (declared by the wrapper) = type of x: T, or f32 for the residual stream of the f16 mode.

struct Params { rows: u32, hidden: u32, eps: f32 }

@group(0) @binding(0) var<storage, read> x: array<R>;
@group(0) @binding(1) var<storage, read> w: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// 256 invocations, loads four at a time: one decode row is 4,096 values, and a workgroup of 64
// walking its 64 values each one load after another took ~40 us on the H200 (latency, not bytes).
const WG = 256u;
var<workgroup> partial: array<f32, WG>;

fn x_at(i: u32) -> f32 {
  return f32(x[i]);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.y * nwg.x + wg.x; // uniform per workgroup, so returning here keeps barriers uniform
  if (row >= p.rows) { return; }
  let base = row * p.hidden;
  let end = base + p.hidden;

  // Four independent loads per trip (kept in flight together), then the rest one by one.
  var s4 = vec4(0.0);
  var j = base + lid.x;
  for (; j + 3u * WG < end; j += 4u * WG) {
    let v = vec4(x_at(j), x_at(j + WG), x_at(j + 2u * WG), x_at(j + 3u * WG));
    s4 = fma(v, v, s4);
  }
  var sum = (s4.x + s4.y) + (s4.z + s4.w);
  for (; j < end; j += WG) {
    let v = x_at(j);
    sum = fma(v, v, sum);
  }
  partial[lid.x] = sum;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { partial[lid.x] += partial[lid.x + s]; }
    workgroupBarrier();
  }
  let r = inverseSqrt(partial[0] / f32(p.hidden) + p.eps);
  if (lid.x == 0u) { rstd[row] = r; }

  for (var i = lid.x; i < p.hidden; i += WG) {
    let h = R(x_at(base + i) * r);
    y[base + i] = T(R(w[i]) * h);
  }
}

// Bias add, in place, broadcast over rows: y[i] = y[i] + bias[i % n] for y [rows, n]. The dense
// (unquantized) linear's bias (Qwen2's q/k/v); the fused NF4 matmul adds its bias itself.
// `T` = storage type of y (set by the loader); bias is f32. Math in f32, rounded once on store.
// One invocation per value on the 2-D grid of elementwise.ts.

struct Params { total: u32, n: u32 }

@group(0) @binding(0) var<storage, read_write> y: array<T>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
  if (i >= p.total) { return; }
  y[i] = T(f32(y[i]) + bias[i % p.n]);
}

// SwiGLU backward over flat arrays of n values, one invocation per value (forward:
// out = silu(gate) · up in shaders/elementwise.wgsl):
//   s     = sigmoid(g)                  exp of -|g| only: no overflow for any g
//   dgate = dout · up · s · (1 + g (1 - s))      (silu'(g))
//   dup   = dout · g · s                         (silu(g))
// Entry points:
//   main     writes dgate and dup (five buffers)
//   inplace  overwrites gate with dgate and up with dup (three buffers: the forward's gate/up
//            activations are dead once their gradients exist, so the backward needs no new memory)
// All tensors in the storage type `T` (set by the loader); math in f32, rounded once when stored.
// Large n: the grid is 2-D (x up to the per-dimension limit); the flat index is rebuilt below.

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read_write> gate: array<T>;
@group(0) @binding(1) var<storage, read_write> up: array<T>;
@group(0) @binding(2) var<storage, read> dout: array<T>;
@group(0) @binding(3) var<storage, read_write> dgate: array<T>;
@group(0) @binding(4) var<storage, read_write> dup: array<T>;
@group(0) @binding(5) var<uniform> p: Params;

const WG = 256u;

fn flat_index(wg: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wg.y * nwg.x + wg.x) * WG + lid.x;
}

/** (dgate, dup) of element i. */
fn grads(i: u32) -> vec2f {
  let g = f32(gate[i]);
  let u = f32(up[i]);
  let d = f32(dout[i]);
  let e = exp(-abs(g)); // in (0, 1]
  let s = select(e / (1.0 + e), 1.0 / (1.0 + e), g >= 0.0);
  return vec2f(d * u * s * (1.0 + g * (1.0 - s)), d * g * s);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  let r = grads(i);
  dgate[i] = T(r.x);
  dup[i] = T(r.y);
}

@compute @workgroup_size(WG)
fn inplace(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  let r = grads(i);
  gate[i] = T(r.x);
  up[i] = T(r.y);
}

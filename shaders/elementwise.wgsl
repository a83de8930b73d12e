// Elementwise kernels over flat arrays of n values, one invocation per value (per four values in the
// entry points ending in 4, which the wrapper takes where 4 divides n):
//   swiglu:       out = silu(a) * b                    (a = gate, b = up; Llama MLP)
//   add:          out = a + scale * b                  (residual add: scale = 1; LoRA: scale = α/r)
//   add_inplace:  a   = a + scale * b                  (the residual stream updated in place)
// `T` is the storage type (f32, or f16 with `enable f16;`), set by the loader in kernels.ts;
// `R` (declared by the wrapper ahead of this source) is the type of `a` and `out`: T, or f32 for
// the f32 residual stream of the f16 mode. `b` is always T. Math is f32 throughout; the result is
// rounded once, when stored.
// `a` is read_write so that add_inplace can write it; WebGPU forbids binding one buffer to two
// writable bindings, so in place is its own entry point rather than `out` aliasing `a`.
// Large n: the grid is 2-D (x up to the per-dimension limit); the flat index is rebuilt below.

struct Params { n: u32, scale: f32 }

@group(0) @binding(0) var<storage, read_write> a: array<R>;
@group(0) @binding(1) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<R>;
@group(0) @binding(3) var<uniform> p: Params;
// The same buffers four elements a load (the entry points ending in 4: n % 4 == 0, p.n counts vec4s).
@group(0) @binding(0) var<storage, read_write> a4: array<vec4<R>>;
@group(0) @binding(1) var<storage, read> b4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<R>>;

const WG = 256u;

fn flat_index(wg: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wg.y * nwg.x + wg.x) * WG + lid.x;
}

@compute @workgroup_size(WG)
fn swiglu(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  let g = f32(a[i]);
  // silu(g) = g * sigmoid(g) = g / (1 + exp(-g)); exp(-g) = inf for g < -88 gives -0, as it should.
  out[i] = R(g / (1.0 + exp(-g)) * f32(b[i]));
}

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = R(f32(a[i]) + p.scale * f32(b[i]));
}

@compute @workgroup_size(WG)
fn add_inplace(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  a[i] = R(f32(a[i]) + p.scale * f32(b[i]));
}

@compute @workgroup_size(WG)
fn swiglu4(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  let g = vec4f(a4[i]);
  out4[i] = vec4<R>(g / (1.0 + exp(-g)) * vec4f(b4[i]));
}

@compute @workgroup_size(WG)
fn add4(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  out4[i] = vec4<R>(vec4f(a4[i]) + p.scale * vec4f(b4[i]));
}

@compute @workgroup_size(WG)
fn add_inplace4(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  a4[i] = vec4<R>(vec4f(a4[i]) + p.scale * vec4f(b4[i]));
}

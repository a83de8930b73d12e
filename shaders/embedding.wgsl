// Embedding lookup: out[t, :] = table[ids[t], :]; an id outside [0, vocab) writes a row of zeros.
// One invocation per output value (n = tokens · hidden), on the 2-D grid of elementwise.ts.
// `T` is the table's storage type (set by the loader in kernels.ts); `R`, declared by the wrapper,
// is the output's: T, or f32 for the f32 residual stream of the f16 mode (f16 -> f32 is exact).

struct Params { n: u32, hidden: u32, vocab: u32 }

@group(0) @binding(0) var<storage, read> table: array<T>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<R>;
@group(0) @binding(3) var<uniform> p: Params;

const WG = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
  if (i >= p.n) { return; }
  let t = i / p.hidden;
  let id = ids[t];
  var v = R(0.0);
  if (id < p.vocab) { v = R(table[id * p.hidden + (i - t * p.hidden)]); }
  out[i] = v;
}

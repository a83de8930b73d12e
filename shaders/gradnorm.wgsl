// Global gradient norm and clipping, as torch.nn.utils.clip_grad_norm_ (norm_type 2):
//   norm = sqrt(Σ over all gradient tensors of Σ g²)
//   coef = min(1, max_norm / (norm + 1e-6));  every g *= coef
// Three phases chosen by the override MODE (one bind-group shape: g, partials, result):
//   0 partial: one workgroup per 4096 elements of one gradient tensor g (256 invocations x 16,
//     coalesced), tree reduction in workgroup memory -> partials[offset + workgroup]. The wrapper
//     records one dispatch per tensor, each at its own offset.
//   1 finish: one workgroup sums partials[0 .. count) -> result = (norm, coef, Σ g²). The norm
//     stays on the GPU (phase 2 reads it) and can be read back for the step's metrics.
//   2 scale: g *= result[1], one invocation per element (per tensor).
// A non-finite gradient makes the norm inf or NaN; the trainer reads the norm and skips the
// step (as it must: torch would scale every gradient by NaN). All f32.

struct Params {
  n: u32,         // partial, scale: elements of g
  offset: u32,    // partial: first slot of this tensor in partials
  count: u32,     // finish: partials to sum
  max_norm: f32,  // finish
}

@group(0) @binding(0) var<storage, read_write> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override MODE: u32 = 0u;

const WG = 256u;
const PER = 16u; // elements per invocation in the partial phase: 4096 per workgroup
var<workgroup> red: array<f32, WG>;

fn reduce(lid: u32, x: f32) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  return red[0];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wg.y * nwg.x + wg.x;
  if (MODE == 0u) {
    let base = w * WG * PER;
    if (base >= p.n) { return; } // uniform per workgroup
    var s = 0.0;
    for (var t = 0u; t < PER; t++) {
      let i = base + t * WG + lid;
      if (i < p.n) { s = fma(g[i], g[i], s); }
    }
    let total = reduce(lid, s);
    if (lid == 0u) { partials[p.offset + w] = total; }
  } else if (MODE == 1u) {
    var s = 0.0;
    for (var i = lid; i < p.count; i += WG) { s += partials[i]; }
    let total = reduce(lid, s);
    if (lid == 0u) {
      let norm = sqrt(total);
      result[0] = norm;
      result[1] = min(1.0, p.max_norm / (norm + 1e-6));
      result[2] = total;
    }
  } else {
    let i = w * WG + lid;
    if (i < p.n) { g[i] = g[i] * result[1]; }
  }
}

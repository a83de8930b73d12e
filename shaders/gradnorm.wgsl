// Global gradient norm and clipping, as torch.nn.utils.clip_grad_norm_ (norm_type 2):
//   norm = sqrt(Σ over all gradient tensors of Σ g²)
//   coef = min(1, max_norm / (norm + 1e-6));  every g *= coef
// Three phases:
//   partial (entry point `partial_sums`): one workgroup per 4096 elements of a gradient tensor (256
//     invocations x 16, coalesced), tree reduction in workgroup memory -> partials[offset +
//     workgroup]. A dispatch takes up to 8 tensors (g, g1 .. g7; each workgroup finds its
//     tensor from the first workgroups w0 .. w7): a training step's 448 LoRA gradients in 56
//     dispatches, not 448 (every dispatch costs ~10 us beyond its work on the H200).
// `main`, with the override MODE (one bind-group shape: g, partials, result):
//   1 finish: one workgroup sums partials[0 .. count) -> result = (norm, coef, Σ g², n), where n,
//     kept from call to call, counts the finite norms (the trainer's applied updates, whose number
//     AdamW's bias correction needs without waiting for the CPU). The norm stays on the GPU (phase
//     2 and the trainer's AdamW read it) and can be read back for the step's metrics.
//   2 scale: g *= result[1], one invocation per element (per tensor).
// A non-finite gradient makes the norm inf or NaN (not counted); AdamW then changes nothing, and the
// trainer reports the step skipped (as it must be: torch would scale every gradient by NaN). All f32.

struct Params {
  n: u32,         // scale: elements of g
  offset: u32,    // partial: first slot of this dispatch's first tensor in partials
  count: u32,     // finish: partials to sum
  max_norm: f32,  // finish
  n0: u32, n1: u32, n2: u32, n3: u32, n4: u32, n5: u32, n6: u32, n7: u32, // partial: elements of g, g1 .. g7 (0: none)
  w0: u32, w1: u32, w2: u32, w3: u32, w4: u32, w5: u32, w6: u32, w7: u32, // partial: their first workgroups
}

@group(0) @binding(0) var<storage, read_write> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> g1: array<f32>;
@group(0) @binding(5) var<storage, read> g2: array<f32>;
@group(0) @binding(6) var<storage, read> g3: array<f32>;
@group(0) @binding(7) var<storage, read> g4: array<f32>;
@group(0) @binding(8) var<storage, read> g5: array<f32>;
@group(0) @binding(9) var<storage, read> g6: array<f32>;
@group(0) @binding(10) var<storage, read> g7: array<f32>;

override MODE: u32 = 1u;

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

/** Element i of tensor t of a `partials` dispatch. */
fn batch_at(t: u32, i: u32) -> f32 {
  switch t {
    case 0u: { return g[i]; }
    case 1u: { return g1[i]; }
    case 2u: { return g2[i]; }
    case 3u: { return g3[i]; }
    case 4u: { return g4[i]; }
    case 5u: { return g5[i]; }
    case 6u: { return g6[i]; }
    default: { return g7[i]; }
  }
}

@compute @workgroup_size(WG)
fn partial_sums(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wg.y * nwg.x + wg.x;
  // This workgroup's tensor: the last (of those present) whose first workgroup is at or before w.
  let ns = array<u32, 8>(p.n0, p.n1, p.n2, p.n3, p.n4, p.n5, p.n6, p.n7);
  let ws = array<u32, 8>(p.w0, p.w1, p.w2, p.w3, p.w4, p.w5, p.w6, p.w7);
  var t = 0u;
  for (var k = 1u; k < 8u; k++) {
    if (ns[k] > 0u && w >= ws[k]) { t = k; }
  }
  let n = ns[t];
  let base = (w - ws[t]) * WG * PER;
  if (base >= n) { return; } // uniform per workgroup (the grid's last row may run past the tensors)
  var s = 0.0;
  for (var q = 0u; q < PER; q++) {
    let i = base + q * WG + lid;
    if (i < n) {
      let x = batch_at(t, i);
      s = fma(x, x, s);
    }
  }
  let total = reduce(lid, s);
  if (lid == 0u) { partials[p.offset + w] = total; }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wg.y * nwg.x + wg.x;
  if (MODE == 1u) {
    var s = 0.0;
    for (var i = lid; i < p.count; i += WG) { s += partials[i]; }
    let total = reduce(lid, s);
    if (lid == 0u) {
      let norm = sqrt(total);
      result[0] = norm;
      result[1] = min(1.0, p.max_norm / (norm + 1e-6));
      result[2] = total;
      if ((bitcast<u32>(norm) & 0x7f800000u) != 0x7f800000u) { result[3] += 1.0; }
    }
  } else {
    let i = w * WG + lid;
    if (i < p.n) { g[i] = g[i] * result[1]; }
  }
}

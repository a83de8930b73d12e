// AdamW with 32-bit states, one invocation per parameter, in torch.optim.AdamW's order of
// operations (single-tensor path, amsgrad off, maximize off):
//   param *= 1 - lr · weight_decay                      (decoupled weight decay: `decay`)
//   m      = m + (1 - β1) (g - m)                       (exp_avg.lerp_(grad, 1 - β1))
//   v      = v · β2 + (1 - β2) g g                      (exp_avg_sq.mul_(β2).addcmul_(g, g, 1 - β2))
//   denom  = sqrt(v) / sqrt(1 - β2^t) + eps
//   param -= (lr / (1 - β1^t)) · (m / denom)            (param.addcdiv_(m, denom, -step_size))
// The step-dependent scalars (step_size, bc2_sqrt) are computed by the wrapper in float64, as
// torch computes them in Python floats, for t and t + 1; clip[3] (gradnorm's count of applied
// updates) picks. All buffers f32 (master weights, f32 gradients).
// g is the gradient times clip[1]: gradnorm.wgsl's clip coefficient (clip_grad_norm_'s in-place
// scaling done here, the same f32 product, a dispatch per tensor fewer), or 1 (no clipping).
// A non-finite norm (clip[0]) leaves everything as it was: the trainer submits the update before
// it has read the norm, so that the GPU need not wait for the CPU (torch would scale by NaN).
// Large n: the grid is 2-D (x up to the per-dimension limit); the flat index is rebuilt below.

struct Params {
  n: u32,
  beta2: f32,
  one_minus_beta1: f32,
  one_minus_beta2: f32,
  eps: f32,
  decay: f32,     // 1 - lr · weight_decay
  step_size: f32, // lr / (1 - β1^t)
  bc2_sqrt: f32,  // sqrt(1 - β2^t)
  step: f32,           // t: the earliest this update can be
  step_size_next: f32, // the same for t + 1, taken where clip[3] (the applied updates, this one
  bc2_sqrt_next: f32,  // included) is past t: the step before this one was applied, unread
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> clip: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const WG = 256u;

/** Neither inf nor NaN (the exponent's bits not all ones; no float compare a compiler may fold). */
fn finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
  if (i >= p.n || !finite(clip[0])) { return; }
  let g = grad[i] * clip[1];
  let m0 = m[i];
  let mi = m0 + p.one_minus_beta1 * (g - m0);
  let vi = v[i] * p.beta2 + p.one_minus_beta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  let next = clip[3] > p.step;
  let denom = sqrt(vi) / select(p.bc2_sqrt, p.bc2_sqrt_next, next) + p.eps;
  param[i] = param[i] * p.decay - select(p.step_size, p.step_size_next, next) * (mi / denom);
}

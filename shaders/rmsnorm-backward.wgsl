// RMSNorm backward (w frozen), one workgroup per row of `hidden` values, given the forward's
// per-row rstd = 1 / sqrt(mean(x²) + eps) (shaders/rmsnorm.wgsl writes it):
//   g    = w ∘ dy
//   c    = rstd² · Σ_k g_k x_k / H                (tree reduction in workgroup memory)
//   dx_j = rstd · (g_j - x_j · c)                 (+ dx_j already held, with accumulate: the
//                                                  residual stream's gradient flows around the norm)
// The exact derivative of y = w · x · rstd; the forward's intermediate roundings (x·rstd to x's
// type, then to y's) are treated as identities, as PyTorch's autograd does.
// Math in f32, rounded once when stored. `T` = storage type of w (set by the loader); `R`
// (declared by the wrapper) = type of x and dx: T, or f32 for the residual stream of the f16
// mode; `G` (declared by the wrapper) = type of dy: T or f32.

struct Params { rows: u32, hidden: u32, accumulate: u32 }

@group(0) @binding(0) var<storage, read> x: array<R>;
@group(0) @binding(1) var<storage, read> w: array<T>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<G>;
@group(0) @binding(4) var<storage, read_write> dx: array<R>;
@group(0) @binding(5) var<uniform> p: Params;

const WG = 64u;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.y * nwg.x + wg.x; // uniform per workgroup, so returning here keeps barriers uniform
  if (row >= p.rows) { return; }
  let base = row * p.hidden;

  var sum = 0.0;
  for (var j = lid.x; j < p.hidden; j += WG) {
    sum += f32(w[j]) * f32(dy[base + j]) * f32(x[base + j]);
  }
  partial[lid.x] = sum;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { partial[lid.x] += partial[lid.x + s]; }
    workgroupBarrier();
  }
  let r = rstd[row];
  let c = r * r * partial[0] / f32(p.hidden);

  for (var j = lid.x; j < p.hidden; j += WG) {
    let v = r * (f32(w[j]) * f32(dy[base + j]) - f32(x[base + j]) * c);
    if (p.accumulate != 0u) {
      dx[base + j] = R(f32(dx[base + j]) + v);
    } else {
      dx[base + j] = R(v);
    }
  }
}

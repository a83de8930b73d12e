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

// 256 invocations, four independent loads of each operand a trip (as shaders/rmsnorm.wgsl): with 64
// walking a 4,096-value row one load after another the 8B step's 64 backward norms took 7.0 ms on
// the H200 (~110 us each for ~100 MB: latency, not bytes).
const WG = 256u;
var<workgroup> partial: array<f32, WG>;

fn gx(base: u32, j: u32) -> f32 {
  return f32(w[j]) * f32(dy[base + j]) * f32(x[base + j]);
}

/** dx at j, j + WG, j + 2 WG, j + 3 WG: every load first (stores to dx could otherwise keep later loads waiting). */
fn dx4(base: u32, j: u32, r: f32, c: f32) {
  let i = vec4<u32>(j, j + WG, j + 2u * WG, j + 3u * WG);
  let g = vec4(f32(w[i.x]), f32(w[i.y]), f32(w[i.z]), f32(w[i.w])) * vec4(f32(dy[base + i.x]), f32(dy[base + i.y]), f32(dy[base + i.z]), f32(dy[base + i.w]));
  let xv = vec4(f32(x[base + i.x]), f32(x[base + i.y]), f32(x[base + i.z]), f32(x[base + i.w]));
  var v = r * (g - xv * c);
  if (p.accumulate != 0u) { v += vec4(f32(dx[base + i.x]), f32(dx[base + i.y]), f32(dx[base + i.z]), f32(dx[base + i.w])); }
  dx[base + i.x] = R(v.x);
  dx[base + i.y] = R(v.y);
  dx[base + i.z] = R(v.z);
  dx[base + i.w] = R(v.w);
}

fn dx_at(base: u32, j: u32, r: f32, c: f32) {
  let v = r * (f32(w[j]) * f32(dy[base + j]) - f32(x[base + j]) * c);
  if (p.accumulate != 0u) {
    dx[base + j] = R(f32(dx[base + j]) + v);
  } else {
    dx[base + j] = R(v);
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.y * nwg.x + wg.x; // uniform per workgroup, so returning here keeps barriers uniform
  if (row >= p.rows) { return; }
  let base = row * p.hidden;

  var s4 = vec4(0.0);
  var j = lid.x;
  for (; j + 3u * WG < p.hidden; j += 4u * WG) {
    s4 += vec4(gx(base, j), gx(base, j + WG), gx(base, j + 2u * WG), gx(base, j + 3u * WG));
  }
  var sum = (s4.x + s4.y) + (s4.z + s4.w);
  for (; j < p.hidden; j += WG) { sum += gx(base, j); }
  partial[lid.x] = sum;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { partial[lid.x] += partial[lid.x + s]; }
    workgroupBarrier();
  }
  let r = rstd[row];
  let c = r * r * partial[0] / f32(p.hidden);

  j = lid.x;
  for (; j + 3u * WG < p.hidden; j += 4u * WG) { dx4(base, j, r, c); }
  for (; j < p.hidden; j += WG) { dx_at(base, j, r, c); }
}

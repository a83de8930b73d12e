// LoRA's down-projection for decode's few rows: u[m, j] = Σ_k x[m, k] · A[j, k], x [M, K] in T
// (M <= 8), A [r, K] f32, u [M, r] f32. One workgroup of 256 per row j of A, summed in workgroup
// memory. `main` (K % 4 == 0: every real model) reads x and A as vec4s, four of them per trip, so
// a 4096-wide row is one trip of loads all in flight; `main_any` takes any K one value at a time.
// The training kernel (lora.wgsl `down`) tiles rows of x, so one decode row was one workgroup
// walking all of A (~30 us for a 16 x 4096 A on the H200).

struct Params { m: u32, k: u32, r: u32 }

@group(0) @binding(0) var<storage, read> x4: array<vec4<T>>; // main
@group(0) @binding(0) var<storage, read> x: array<T>;        // main_any
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>; // main
@group(0) @binding(1) var<storage, read> a: array<f32>;        // main_any
@group(0) @binding(2) var<storage, read_write> u: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG = 256u;
var<workgroup> part: array<f32, WG>;

/** Σ over the workgroup of s into u[m, j] (every invocation calls it: it has barriers). */
fn store_sum(t: u32, m: u32, j: u32, s: f32) {
  part[t] = s;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    if (t < w) { part[t] += part[t + w]; }
    workgroupBarrier();
  }
  if (t == 0u) { u[m * p.r + j] = part[0]; }
  workgroupBarrier(); // part is written again for the next row
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) t: u32) {
  let j = wg.y * nwg.x + wg.x; // uniform per workgroup: returning keeps the barriers uniform
  if (j >= p.r) { return; }
  let k4 = p.k / 4u;
  for (var m = 0u; m < p.m; m++) {
    var s4 = vec4(0.0);
    var c = t;
    for (; c + 3u * WG < k4; c += 4u * WG) {
      let xs = array(x4[m * k4 + c], x4[m * k4 + c + WG], x4[m * k4 + c + 2u * WG], x4[m * k4 + c + 3u * WG]);
      let av = array(a4[j * k4 + c], a4[j * k4 + c + WG], a4[j * k4 + c + 2u * WG], a4[j * k4 + c + 3u * WG]);
      s4 = fma(vec4<f32>(xs[0]), av[0], s4);
      s4 = fma(vec4<f32>(xs[1]), av[1], s4);
      s4 = fma(vec4<f32>(xs[2]), av[2], s4);
      s4 = fma(vec4<f32>(xs[3]), av[3], s4);
    }
    for (; c < k4; c += WG) { s4 = fma(vec4<f32>(x4[m * k4 + c]), a4[j * k4 + c], s4); }
    store_sum(t, m, j, (s4.x + s4.y) + (s4.z + s4.w));
  }
}

@compute @workgroup_size(WG)
fn main_any(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) t: u32) {
  let j = wg.y * nwg.x + wg.x;
  if (j >= p.r) { return; }
  for (var m = 0u; m < p.m; m++) {
    var s = 0.0;
    for (var c = t; c < p.k; c += WG) { s = fma(f32(x[m * p.k + c]), a[j * p.k + c], s); }
    store_sum(t, m, j, s);
  }
}

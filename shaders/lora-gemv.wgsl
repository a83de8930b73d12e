// LoRA's down-projection for decode's few rows: u[m, j] = Σ_k x[m, k] · A[j, k], x [M, K] in T
// (M <= 8), A [r, K] f32, u [M, r] f32. One workgroup per row j of A: its invocations walk K four
// loads at a time and sum in workgroup memory. The training kernel (lora.wgsl `down`) tiles rows
// of x, so one decode row was one workgroup walking all of A (a 16 x 4096 A in ~30 us); here r
// workgroups share it.

struct Params { m: u32, k: u32, r: u32 }

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> u: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG = 128u;
var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) t: u32) {
  let j = wg.y * nwg.x + wg.x; // uniform per workgroup: returning keeps the barriers uniform
  if (j >= p.r) { return; }
  let arow = j * p.k;
  for (var m = 0u; m < p.m; m++) {
    let xrow = m * p.k;
    var s4 = vec4(0.0);
    var c = t;
    for (; c + 3u * WG < p.k; c += 4u * WG) {
      let xs = vec4(f32(x[xrow + c]), f32(x[xrow + c + WG]), f32(x[xrow + c + 2u * WG]), f32(x[xrow + c + 3u * WG]));
      let av = vec4(a[arow + c], a[arow + c + WG], a[arow + c + 2u * WG], a[arow + c + 3u * WG]);
      s4 = fma(xs, av, s4);
    }
    var s = (s4.x + s4.y) + (s4.z + s4.w);
    for (; c < p.k; c += WG) { s = fma(f32(x[xrow + c]), a[arow + c], s); }
    part[t] = s;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
      if (t < w) { part[t] += part[t + w]; }
      workgroupBarrier();
    }
    if (t == 0u) { u[m * p.r + j] = part[0]; }
    workgroupBarrier(); // part is written again for the next row
  }
}

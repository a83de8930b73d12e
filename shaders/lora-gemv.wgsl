// LoRA's down-projection for decode's few rows: u[m, j] = Σ_k x[m, k] · A[j, k], x [M, K] in X
// (declared by the wrapper: the storage type T, or f32), M <= 8, A [r, K] f32, u [M, r] f32. One
// workgroup of 256 per row j of A, summed by row_sum (src/engine/nf4-gemv.ts ROW_SUM_WGSL, appended:
// subgroupAdd where the device has subgroups). `main` (K % 4 == 0: every real
// model) reads x and A as vec4s, four of them per trip, so a 4096-wide row is one trip of loads
// all in flight; `main_any` takes any K one value at a time. The training kernel (lora.wgsl
// `down`) tiles rows of x, so one decode row was one workgroup walking all of A (~30 us for a
// 16 x 4096 A on the H200).
// `main`'s prologue (PROLOGUE, as nf4-gemv.wgsl's): 1 rmsnorm, x · x2 with x2 the norm's weight [K]
// in T, *without* the norm's 1 / rms: the NF4 GEMV that adds u under the same prologue multiplies
// its whole sum by it, so that it can add the LoRA term before its reduction; 2 swiglu,
// silu(x) · x2 with x the gate and x2 the up-projection [M, K] in T.
// `main` may also sum K in `parts` (u then [parts, M, r], summed by the NF4 GEMV that adds it,
// nf4-gemv.ts `lora.parts`): a workgroup per (row, part), so that a long K (down_proj's 14336) is
// one trip of loads rather than four. The parts of a row are adjacent workgroups.
// `main` also takes up to three adapters that multiply the same x (q/k/v, gate/up): A_g in a4,
// a4_1, a4_2 and u_g in u, u_1, u_2 (g < p.groups; the unused ones bound to placeholders), the
// workgroups of adapter g after those of g - 1. Decode records one dispatch for the group where it
// recorded one per adapter (a 32-layer 8B took 224 of these dispatches per token, each a few
// microseconds of a GPU mostly waiting).

struct Params { m: u32, k: u32, r: u32, groups: u32, parts: u32 }

@group(0) @binding(0) var<storage, read> x4: array<vec4<X>>; // main
@group(0) @binding(0) var<storage, read> x: array<X>;        // main_any
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>; // main
@group(0) @binding(1) var<storage, read> a: array<f32>;        // main_any
@group(0) @binding(2) var<storage, read_write> u: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> x2: array<vec4<T>>;   // main's prologue
@group(0) @binding(5) var<storage, read> a4_1: array<vec4<f32>>; // main: adapters 1 and 2 of a group
@group(0) @binding(6) var<storage, read> a4_2: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> u_1: array<f32>;
@group(0) @binding(8) var<storage, read_write> u_2: array<f32>;

override PROLOGUE: u32 = 0u;

const WG = 256u;

/** Σ over the workgroup of v's components, returned to every invocation (called in uniform control flow). */
fn wg_sum(lanes: Lanes, v: vec4<f32>) -> f32 {
  let s = row_sum(lanes, WG, v);
  return (s.x + s.y) + (s.z + s.w);
}

fn silu(g: vec4<f32>) -> vec4<f32> {
  return g / (1.0 + exp(-g));
}

/** Element group c (4 values) of row m of what A multiplies. */
fn x_at(m: u32, c: u32, k4: u32) -> vec4<f32> {
  let v = vec4<f32>(x4[m * k4 + c]);
  if (PROLOGUE == 1u) { return v * vec4<f32>(x2[c]); }
  if (PROLOGUE == 2u) {
    return silu(v) * vec4<f32>(x2[m * k4 + c]);
  }
  return v;
}

/** Element i of adapter g's A (g uniform per workgroup). */
fn a_of(g: u32, i: u32) -> vec4<f32> {
  if (g == 1u) { return a4_1[i]; }
  if (g == 2u) { return a4_2[i]; }
  return a4[i];
}

fn store_u(g: u32, i: u32, v: f32) {
  if (g == 0u) { u[i] = v; } else if (g == 1u) { u_1[i] = v; } else { u_2[i] = v; }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  let t = lanes.index;
  let w = wg.y * nwg.x + wg.x; // uniform per workgroup: returning keeps the barriers uniform
  if (w >= p.r * p.groups * p.parts) { return; }
  let q = w % p.parts;             // the part of K
  let g = w / p.parts / p.r;       // the adapter
  let j = (w / p.parts) % p.r;     // and its row of A
  let k4 = p.k / 4u;
  let per = (k4 + p.parts - 1u) / p.parts;
  let end = min(k4, (q + 1u) * per);
  for (var m = 0u; m < p.m; m++) {
    var s4 = vec4(0.0);
    var c = q * per + t;
    for (; c + 3u * WG < end; c += 4u * WG) {
      let av = array(a_of(g, j * k4 + c), a_of(g, j * k4 + c + WG), a_of(g, j * k4 + c + 2u * WG), a_of(g, j * k4 + c + 3u * WG));
      s4 = fma(x_at(m, c, k4), av[0], s4);
      s4 = fma(x_at(m, c + WG, k4), av[1], s4);
      s4 = fma(x_at(m, c + 2u * WG, k4), av[2], s4);
      s4 = fma(x_at(m, c + 3u * WG, k4), av[3], s4);
    }
    for (; c < end; c += WG) { s4 = fma(x_at(m, c, k4), a_of(g, j * k4 + c), s4); }
    let s = wg_sum(lanes, s4);
    if (t == 0u) { store_u(g, (q * p.m + m) * p.r + j, s); }
  }
}

@compute @workgroup_size(WG)
fn main_any(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  let t = lanes.index;
  let j = wg.y * nwg.x + wg.x;
  if (j >= p.r) { return; }
  for (var m = 0u; m < p.m; m++) {
    var s = 0.0;
    for (var c = t; c < p.k; c += WG) { s = fma(f32(x[m * p.k + c]), a[j * p.k + c], s); }
    let total = wg_sum(lanes, vec4(s, 0.0, 0.0, 0.0));
    if (t == 0u) { u[m * p.r + j] = total; }
  }
}

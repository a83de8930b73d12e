// The LoRA backward (forward: shaders/lora.wgsl, y += s · u Bᵀ with u = x Aᵀ kept). Given dy:
//   dB += s · dyᵀ u    [N, r]    outer (g = dy, f = u), then sum
//   du  = s · dy B     [M, r]    down of lora.wgsl (W = Bᵀ, made by transpose; or B in place)
//   dA += duᵀ x        [r, K]    outer (g = x, dropped out), then sum
//   dx += du A         [M, K]    up of lora.wgsl
// This file follows shaders/lora.wgsl in its module (Params, bindings, Row16, f_row, red).
//
// outer: out[c, j] or out[j, c] (out_t) = scale Σ_m g[m, c] · f[m, j] over the rows of one chunk:
//   the reduction over M (2048 tokens) is split into chunks of p.rows rows across workgroups,
//   each writing its own partial (a slice of p.len elements of out: the caller's scratch), which
//   `sum` adds up in a fixed order; with one chunk, out is the gradient itself (scale and
//   accumulate apply). A workgroup takes 256 columns (64 lanes x 4 columns 64 apart: a warp's
//   loads of g are 128 consecutive bytes) and 4 row slots of 64 invocations taking every fourth
//   row of the chunk. Per row: the 16 values of f (one broadcast load each), 4 values of g,
//   64 FMAs into 4 Row16 accumulators (one per column). At the end the 4 row slots meet in
//   workgroup memory, one column of the 4 at a time. Grid ceil(C / 256) x chunks x ceil(r / 16).
// sum: out[i] = scale Σ_q part[q · len + i] (+ out[i]), one invocation per element.
// transpose: out[j, c] = B[c, j] ([r, N]), so that down reads Bᵀ as it reads A: contiguous along
//   the reduced index, 16-byte loads.
// Dropout: dA takes the forward's mask on x (g = x ∘ mask), dx on its output (up, DROPOUT).

@group(0) @binding(5) var<storage, read> part: array<f32>;          // sum: the partials

/** g[m, c] (times the dropout mask), 0 beyond C. */
fn g_at(m: u32, c: u32) -> f32 {
  if (c >= p.k) { return 0.0; }
  let i = m * p.k + c;
  if (DROPOUT) { return f32(g[i]) * drop_at(i); }
  return f32(g[i]);
}

fn row_axpy(a: Row16, s: f32, fv: Row16) -> Row16 {
  let v = vec4<f32>(s);
  return Row16(fma(v, fv.q0, a.q0), fma(v, fv.q1, a.q1), fma(v, fv.q2, a.q2), fma(v, fv.q3, a.q3));
}

@compute @workgroup_size(WG)
fn outer(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let c0 = wg.x * UP_COLS + tid % 64u;
  let m0 = wg.y * p.rows;
  let m1 = min(p.m, m0 + p.rows);
  let jb = wg.z * 16u;
  var a0 = Row16();
  var a1 = Row16();
  var a2 = Row16();
  var a3 = Row16();
  for (var m = m0 + tid / 64u; m < m1; m += 4u) {
    let fv = f_row(m, jb);
    a0 = row_axpy(a0, g_at(m, c0), fv);
    a1 = row_axpy(a1, g_at(m, c0 + 64u), fv);
    a2 = row_axpy(a2, g_at(m, c0 + 128u), fv);
    a3 = row_axpy(a3, g_at(m, c0 + 192u), fv);
  }
  outer_store(a0, wg, tid, 0u);
  outer_store(a1, wg, tid, 64u);
  outer_store(a2, wg, tid, 128u);
  outer_store(a3, wg, tid, 192u);
}

/**
 * The 4 row slots' sums of one column of each lane (column wg.x · 256 + dc + lane), added in
 * slot order: invocation t then owns lane t % 64 and the vec4 t / 64 of its 16 j, and stores them
 * (consecutive invocations: consecutive columns).
 */
fn outer_store(a: Row16, wg: vec3<u32>, tid: u32, dc: u32) {
  red[4u * tid] = a.q0;
  red[4u * tid + 1u] = a.q1;
  red[4u * tid + 2u] = a.q2;
  red[4u * tid + 3u] = a.q3;
  workgroupBarrier();
  let lane = tid % 64u;
  let q = tid / 64u;
  let s = red[4u * lane + q] + red[4u * (64u + lane) + q] + red[4u * (128u + lane) + q] + red[4u * (192u + lane) + q];
  let c = wg.x * UP_COLS + dc + lane;
  let j0 = wg.z * 16u + 4u * q;
  if (c < p.k) {
    for (var e = 0u; e < 4u; e++) {
      let j = j0 + e;
      if (j < p.r) {
        let o = wg.y * p.len + select(c * p.r + j, j * p.k + c, p.out_t != 0u);
        var prev = 0.0;
        if (p.accumulate != 0u) { prev = out[o]; }
        out[o] = fma(p.scale, s[e], prev);
      }
    }
  }
  workgroupBarrier(); // the next call overwrites red
}

@compute @workgroup_size(WG)
fn sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let i = (wg.y * nwg.x + wg.x) * WG + tid;
  if (i >= p.len) { return; }
  var s = 0.0;
  for (var q = 0u; q < p.parts; q++) { s += part[q * p.len + i]; }
  var prev = 0.0;
  if (p.accumulate != 0u) { prev = out[i]; }
  out[i] = fma(p.scale, s, prev);
}

@compute @workgroup_size(WG)
fn transpose(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let i = (wg.y * nwg.x + wg.x) * WG + tid;
  if (i >= p.r * p.k) { return; }
  out[i] = w[(i % p.k) * p.r + i / p.k];
}

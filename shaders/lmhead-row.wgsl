// The lm_head's logits of one row of h (decode), a matrix-vector product over one vocabulary chunk
// of E [V, H] (the wrapper, lmhead.ts, binds that chunk's rows): out[out_col0 + c] = h[row0] · E[c]
// for the chunk's rows c, f32 accumulation. Llama 3's 128256 x 4096 f16 E is 1 GB read once per
// token, so this is a memory stream, as shaders/nf4-gemv.wgsl (whose layout it follows):
//   logits_row      (H % 8 == 0) A workgroup of ROW_WG invocations takes 4 rows of E, held as the
//                   components of a vec4. Invocation `lane` takes the 8-element units
//                   u = lane, lane + ROW_WG, ... of those rows: one 16-byte load per row for f16 E
//                   (two for f32), consecutive invocations on consecutive bytes, and the matching
//                   unit of h once for all 4 rows. Each row keeps a vec4 of partial sums (one per
//                   element lane, so the inner step is a vec4 fma), folded at the end; then the
//                   workgroup's partials are summed (row_sum: subgroupAdd or workgroup memory)
//                   and invocations 0..3 store.
//   logits_row_any  Any H: the same, element by element.
// Types (lmhead.ts lmHeadTypes): `A` = storage type of h, `E` = of the matrix, each f32 or f16;
// H_HALF / E_HALF say which for the 16-byte views. The row_sum reduction (struct Lanes) comes after
// this source (src/engine/nf4-gemv.ts ROW_SUM_WGSL).

struct Params {
  row0: u32,       // the row of h
  hidden: u32,
  chunk_rows: u32, // vocabulary rows in this chunk
  out_col0: u32,   // column of `out` that the chunk's first row goes to
}

// Each entry point uses one view of bindings 0 and 1.
@group(0) @binding(0) var<storage, read> hv: array<vec4<u32>>; // logits_row: h as 16-byte units
@group(0) @binding(0) var<storage, read> h: array<A>;          // logits_row_any
@group(0) @binding(1) var<storage, read> ev: array<vec4<u32>>; // logits_row: E as 16-byte units
@group(0) @binding(1) var<storage, read> e: array<E>;          // logits_row_any
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override ROW_WG: u32 = 128u;
override H_HALF: bool = false;
override E_HALF: bool = false;

/** Eight consecutive values, as f32. */
struct V8 { lo: vec4<f32>, hi: vec4<f32> }

/** Eight f16 values from one 16-byte unit (exact). */
fn halves(u: vec4<u32>) -> V8 {
  return V8(vec4(unpack2x16float(u.x), unpack2x16float(u.y)), vec4(unpack2x16float(u.z), unpack2x16float(u.w)));
}

/** Elements i .. i + 7 of h (i a multiple of 8). */
fn h8(i: u32) -> V8 {
  if (H_HALF) { return halves(hv[i >> 3u]); }
  return V8(bitcast<vec4<f32>>(hv[i >> 2u]), bitcast<vec4<f32>>(hv[(i >> 2u) + 1u]));
}

/** Elements k .. k + 7 of chunk row c of E (k a multiple of 8); zeros past the chunk's last row. */
fn e8(c: u32, k: u32) -> V8 {
  if (c >= p.chunk_rows) { return V8(vec4(0.0), vec4(0.0)); }
  let i = c * p.hidden + k;
  if (E_HALF) { return halves(ev[i >> 3u]); }
  return V8(bitcast<vec4<f32>>(ev[i >> 2u]), bitcast<vec4<f32>>(ev[(i >> 2u) + 1u]));
}

fn dot8(acc: vec4<f32>, a: V8, b: V8) -> vec4<f32> {
  return fma(a.hi, b.hi, fma(a.lo, b.lo, acc));
}

fn fold(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

/** Sums the workgroup's partials of rows c0 .. c0 + 3 and stores them. */
fn finish(lanes: Lanes, c0: u32, acc: vec4<f32>) {
  let s = row_sum(lanes, ROW_WG, acc);
  let r = lanes.index;
  if (r < 4u && c0 + r < p.chunk_rows) { out[p.out_col0 + c0 + r] = s[r]; }
}

@compute @workgroup_size(ROW_WG)
fn logits_row(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  let c0 = (wg.y * nwg.x + wg.x) * 4u; // uniform per workgroup: returning keeps barriers uniform
  if (c0 >= p.chunk_rows) { return; }
  let hb = p.row0 * p.hidden;
  var a0 = vec4(0.0);
  var a1 = vec4(0.0);
  var a2 = vec4(0.0);
  var a3 = vec4(0.0);
  for (var k = lanes.index * 8u; k < p.hidden; k += ROW_WG * 8u) {
    // The four rows' loads first, so they are in flight together.
    let r0 = e8(c0, k);
    let r1 = e8(c0 + 1u, k);
    let r2 = e8(c0 + 2u, k);
    let r3 = e8(c0 + 3u, k);
    let hk = h8(hb + k);
    a0 = dot8(a0, hk, r0);
    a1 = dot8(a1, hk, r1);
    a2 = dot8(a2, hk, r2);
    a3 = dot8(a3, hk, r3);
  }
  finish(lanes, c0, vec4(fold(a0), fold(a1), fold(a2), fold(a3)));
}

fn e_at(c: u32, k: u32) -> f32 {
  if (c >= p.chunk_rows) { return 0.0; }
  return f32(e[c * p.hidden + k]);
}

@compute @workgroup_size(ROW_WG)
fn logits_row_any(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  let c0 = (wg.y * nwg.x + wg.x) * 4u;
  if (c0 >= p.chunk_rows) { return; }
  let hb = p.row0 * p.hidden;
  var acc = vec4(0.0);
  for (var k = lanes.index; k < p.hidden; k += ROW_WG) {
    acc = fma(vec4(f32(h[hb + k])), vec4(e_at(c0, k), e_at(c0 + 1u, k), e_at(c0 + 2u, k), e_at(c0 + 3u, k)), acc);
  }
  finish(lanes, c0, acc);
}

// AdamW with 8-bit blockwise states (bitsandbytes adamw_8bit style): m and v are stored as one
// 8-bit code per element (4 to a u32 word, element e in byte e % 4 of word e / 4, little-endian
// bytes) plus one f32 absmax per block of 256 elements. m uses the signed dynamic map, v the
// unsigned one (bnb's create_dynamic_map(signed=True / False)); value = map[code] · absmax.
// One workgroup per block: 64 invocations of 4 consecutive elements (one word of each state).
//   MODE 0 (step): dequantize the block's m and v, update as shaders/adamw.wgsl does (same order
//     of operations, f32), update the parameter, then requantize: absmax = max |m| (max v) over
//     the block's updated values, code = nearest (below).
//   MODE 1 (quantize): codes and absmax from f32 m (bound in place of param) and v (of grad).
//   MODE 2 (dequantize): f32 m and v (written to param and grad) from codes and absmax.
// Rounding rule of the quantizer (exactly reproducible on the CPU: reference/adamw.ts): with
// mid_i = f32((map[i] + map[i+1]) · 0.5) the 255 midpoints of the sorted map and A the block's
// absmax, code(x) = #{ i : x >= f32(mid_i · A) }, i.e. the nearest code, a value exactly on a
// midpoint going to the upper code; A = 0 gives the code of 0. The products are single f32
// multiplications (correctly rounded in WGSL), so CPU and GPU agree bit for bit, unlike a
// division x / A (2.5 ULP in WGSL). bnb divides by A with a fast approximate division and
// searches its map differently; the codes can differ from bnb's by one near midpoints.
// qmap: [signed map 256, signed midpoints 256 (255 used), unsigned map 256, unsigned midpoints
// 256], staged in workgroup memory.
// A non-finite grad norm (clip[0]) makes the step a no-op (as shaders/adamw.wgsl).

struct Params {
  n: u32,
  zero_signed: u32,   // index of 0 in the signed map
  zero_unsigned: u32, // index of 0 in the unsigned map
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

@group(0) @binding(0) var<storage, read_write> param: array<f32>; // quantize: m in; dequantize: m out
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;  // quantize: v in; dequantize: v out
@group(0) @binding(2) var<storage, read_write> mq: array<u32>;
@group(0) @binding(3) var<storage, read_write> vq: array<u32>;
@group(0) @binding(4) var<storage, read_write> mabs: array<f32>;
@group(0) @binding(5) var<storage, read_write> vabs: array<f32>;
@group(0) @binding(6) var<storage, read> qmap: array<f32>;
@group(0) @binding(7) var<storage, read> clip: array<f32>; // update: g = grad · clip[1] (as adamw.wgsl)
@group(0) @binding(8) var<uniform> p: Params;

override MODE: u32 = 0u;

const WG = 64u;
const SIGNED = 0u;
const UNSIGNED = 512u;
var<workgroup> qm: array<f32, 1024>;
var<workgroup> red: array<vec2f, WG>;
var<workgroup> norm_wg: f32;

/** Neither inf nor NaN (the exponent's bits not all ones). */
fn finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn dequant(code: u32, a: f32, map: u32) -> f32 {
  return qm[map + code] * a;
}

fn quant(x: f32, a: f32, map: u32) -> u32 {
  if (a == 0.0) { return select(p.zero_signed, p.zero_unsigned, map == UNSIGNED); }
  // The number of midpoints (ascending) at or below x, by bisection: [lo, hi) holds the answer.
  var lo = 0u;
  var hi = 255u;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (x >= qm[map + 256u + mid] * a) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let blk = wg.y * nwg.x + wg.x; // (`block` is a keyword to the WGSL parser webgpu-utils uses)
  if (blk * 256u >= p.n) { return; } // uniform per workgroup
  if (lid == 0u) { norm_wg = clip[0]; }
  let norm = workgroupUniformLoad(&norm_wg);
  if (MODE == 0u && !finite(norm)) { return; }
  for (var t = lid; t < 1024u; t += WG) { qm[t] = qmap[t]; }
  workgroupBarrier();
  let word = blk * WG + lid;
  let e0 = word * 4u;

  if (MODE == 2u) {
    if (e0 < p.n) {
      let am = mabs[blk];
      let av = vabs[blk];
      let wm = mq[word];
      let wv = vq[word];
      for (var c = 0u; c < 4u; c++) {
        let e = e0 + c;
        if (e < p.n) {
          param[e] = dequant((wm >> (8u * c)) & 255u, am, SIGNED);
          grad[e] = dequant((wv >> (8u * c)) & 255u, av, UNSIGNED);
        }
      }
    }
    return;
  }

  var ms = array<f32, 4>();
  var vs = array<f32, 4>();
  if (MODE == 1u) {
    for (var c = 0u; c < 4u; c++) {
      let e = e0 + c;
      if (e < p.n) {
        ms[c] = param[e];
        vs[c] = grad[e];
      }
    }
  } else if (e0 < p.n) {
    let am = mabs[blk];
    let av = vabs[blk];
    let wm = mq[word];
    let wv = vq[word];
    let next = clip[3] > p.step; // the bias correction of t + 1 (shaders/adamw.wgsl)
    let step_size = select(p.step_size, p.step_size_next, next);
    let bc2_sqrt = select(p.bc2_sqrt, p.bc2_sqrt_next, next);
    for (var c = 0u; c < 4u; c++) {
      let e = e0 + c;
      if (e < p.n) {
        let g = grad[e] * clip[1];
        let m0 = dequant((wm >> (8u * c)) & 255u, am, SIGNED);
        let mi = m0 + p.one_minus_beta1 * (g - m0);
        let vi = dequant((wv >> (8u * c)) & 255u, av, UNSIGNED) * p.beta2 + p.one_minus_beta2 * g * g;
        let denom = sqrt(vi) / bc2_sqrt + p.eps;
        param[e] = param[e] * p.decay - step_size * (mi / denom);
        ms[c] = mi;
        vs[c] = vi;
      }
    }
  }

  // Block absmax of the new states (elements past n are 0 and change nothing).
  var mx = vec2f(0.0);
  for (var c = 0u; c < 4u; c++) { mx = max(mx, vec2f(abs(ms[c]), abs(vs[c]))); }
  red[lid] = mx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let a = red[0];
  if (e0 < p.n) {
    var wm = 0u;
    var wv = 0u;
    for (var c = 0u; c < 4u; c++) {
      wm |= quant(ms[c], a.x, SIGNED) << (8u * c);
      wv |= quant(vs[c], a.y, UNSIGNED) << (8u * c);
    }
    mq[word] = wm;
    vq[word] = wv;
  }
  if (lid == 0u) {
    mabs[blk] = a.x;
    vabs[blk] = a.y;
  }
}

// Attention for a few new queries against a long KV cache (chat decode), flash-decoding style:
// the keys are cut into splits of SPLIT; `partial` runs one workgroup per (split, query row and
// head, batch row) and writes that split's unnormalised output, running max and sum; `combine`
// rescales the splits to their common max and divides. The forward kernel (attention.wgsl) gives
// one invocation per query row, so at T = 1 one lone invocation per head walked all the keys.
// Same semantics as attention.wgsl without segments: query i sits at causal_offset + i and sees
// keys j <= pos with pos - j < window (window > 0); GQA head h reads kv head h / (Hq / Hkv).
// q [B, Tq, Hq, D], k/v [B, S, Hkv, D] and o in T; lse [B, Hq, Tq] in f32 (natural log);
// part [B, Tq, Hq, splits, D + 2] f32: o_s (D values), m_s, l_s (base 2, q pre-scaled by log2 e).
// D is a multiple of 4 (k and v are read as vec4s), at most 128.
// With use_positions (a KV cache in chat decode, batch 1), query i sits at qpos[i] instead, and k/v
// are the whole cache (skv = its capacity, splits = the most it can take): the parameters, and so
// the bind group, stay the same from one decoded token to the next; only the grid (the splits in
// use) and the positions buffer change. A new bind group per token and layer cost ~50 us of CPU.
//
// Work per split, and why: every key's score is one invocation's dot product over 4-wide loads of
// its K row (the row's other sectors come from L1 for the next loads), so no invocation walks
// more than one key; P·V gives each invocation 4 columns of one slice of the keys (GROUPS slices,
// D / 4 invocations per key row: consecutive invocations read consecutive 8/16 bytes of a row),
// the slices then summed in workgroup memory. The first version walked all 256 keys of a split
// one after another in P·V (a chain of dependent loads): 2,048 keys of context cost ~150 us per
// layer on the H200.

struct Params {
  tq: u32,
  skv: u32,
  heads: u32,
  kv_heads: u32,
  head_dim: u32,
  causal_offset: u32,
  window: u32,
  splits: u32,      // the partials' stride: splits of skv keys
  scale_log2: f32, // scale · log2(e)
  use_positions: u32,
  lora_r: u32,     // combine with LORA: rows of A
  lora_rows: u32,  // and B · Tq, the rows of each head's share
}

@group(0) @binding(0) var<storage, read> q: array<T>;
@group(0) @binding(1) var<storage, read> k: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<T>>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<T>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;
@group(0) @binding(7) var<storage, read> qpos: array<u32>;
// combine with LORA: o_proj's LoRA A [r, heads · D] (f32), and each head's share of u = o · Aᵀ,
// shares [heads, B · Tq, r] (f32): their sum over heads is u, which the o_proj GEMV sums as it
// adds its LoRA term (nf4-gemv.wgsl, parts). A lora-gemv dispatch fewer per layer and token.
@group(0) @binding(8) var<storage, read> lora_a4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> shares: array<f32>;

override LORA: bool = false;
// A head's D outputs times a row of A in slices of SLICE (four 16-byte loads of A): r · D / SLICE
// products, one per invocation for r 16 and D 128; D % SLICE == 0 (attention.ts checks).
const SLICE = 16u;
const MAX_LORA_R = 64u;

const WG = 128u; // invocations per workgroup
const SPLIT = 128u; // keys per split: one per invocation
const MAX_D4 = 32u; // head dim 128 in vec4s
const EMPTY = -3.0e38; // the max of no keys; exp2(EMPTY - m) is 0 for any finite m

var<workgroup> qs: array<vec4<f32>, MAX_D4>;
var<workgroup> sc: array<f32, SPLIT>;
var<workgroup> red: array<f32, WG>;
var<workgroup> pv: array<vec4<f32>, WG>;
var<workgroup> ov: array<f32, WG>;                    // combine with LORA: the head's outputs as stored
var<workgroup> share_part: array<f32, MAX_LORA_R * MAX_D4 * 4u / SLICE>;

/** The position of query i of batch row b: keys 0 .. it are visible. */
fn query_position(b: u32, i: u32) -> u32 {
  if (p.use_positions != 0u) { return qpos[b * p.tq + i]; }
  return p.causal_offset + i;
}

// Sum (is_max false) or max of every invocation's x; all invocations get the result.
fn reduce(t: u32, x: f32, is_max: bool) -> f32 {
  red[t] = x;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w = w / 2u) {
    if (t < w) {
      red[t] = select(red[t] + red[t + w], max(red[t], red[t + w]), is_max);
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier(); // red is reused by the next reduction
  return r;
}

@compute @workgroup_size(128)
fn partial(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let s = wg.x;
  let h = wg.y % p.heads;
  let i = wg.y / p.heads;
  let b = wg.z;
  let d4 = p.head_dim / 4u;
  let pos = query_position(b, i);
  var lo = 0u;
  if (p.window > 0u && pos + 1u > p.window) {
    lo = pos + 1u - p.window;
  }
  let first = s * SPLIT;
  let start = max(lo, first);
  let end = min(pos + 1u, first + SPLIT);
  let kvh = h / (p.heads / p.kv_heads);
  let row4 = p.kv_heads * d4; // vec4s per token of k and v

  if (t < d4) {
    let qb = ((b * p.tq + i) * p.heads + h) * p.head_dim + 4u * t;
    qs[t] = vec4(f32(q[qb]), f32(q[qb + 1u]), f32(q[qb + 2u]), f32(q[qb + 3u])) * p.scale_log2;
  }
  workgroupBarrier();

  // Scores: key first + t.
  let j = first + t;
  let live = j >= start && j < end;
  var score = EMPTY;
  if (live) {
    let kb = (b * p.skv + j) * row4 + kvh * d4;
    var acc = 0.0;
    for (var c = 0u; c < d4; c++) {
      acc += dot(qs[c], vec4<f32>(k[kb + c]));
    }
    score = acc;
  }
  let m = reduce(t, score, true);
  let e = select(0.0, exp2(score - m), live);
  sc[t] = e;
  let l = reduce(t, e, false); // its barriers also publish sc

  // P·V: invocation t takes columns 4c .. 4c + 3 of keys start + g, start + g + groups, ...
  let groups = WG / d4;
  let c = t % d4;
  let g = t / d4;
  var acc4 = vec4(0.0);
  if (g < groups) {
    for (var jj = start + g; jj < end; jj += groups) {
      acc4 += sc[jj - first] * vec4<f32>(v[(b * p.skv + jj) * row4 + kvh * d4 + c]);
    }
  }
  pv[t] = acc4;
  workgroupBarrier();
  let ob = (((b * p.tq + i) * p.heads + h) * p.splits + s) * (p.head_dim + 2u);
  if (t < d4) {
    var sum = pv[t];
    for (var gg = 1u; gg < groups; gg++) { sum += pv[gg * d4 + t]; }
    part[ob + 4u * t] = sum.x;
    part[ob + 4u * t + 1u] = sum.y;
    part[ob + 4u * t + 2u] = sum.z;
    part[ob + 4u * t + 3u] = sum.w;
  }
  if (t == 0u) {
    part[ob + p.head_dim] = m;
    part[ob + p.head_dim + 1u] = l;
  }
}

@compute @workgroup_size(128)
fn combine(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let h = wg.y % p.heads;
  let i = wg.y / p.heads;
  let b = wg.z;
  let d_len = p.head_dim;
  let stride = d_len + 2u;
  let base = ((b * p.tq + i) * p.heads + h) * p.splits * stride;
  // The splits holding keys 0 .. pos (later ones, if any ran, hold nothing for this query).
  let live = min(p.splits, query_position(b, i) / SPLIT + 1u);
  var m = EMPTY;
  for (var s = 0u; s < live; s = s + 1u) {
    m = max(m, part[base + s * stride + d_len]);
  }
  var l = 0.0;
  var acc = 0.0;
  for (var s = 0u; s < live; s = s + 1u) {
    let at = base + s * stride;
    let w = exp2(part[at + d_len] - m);
    l = l + w * part[at + d_len + 1u];
    if (t < d_len) {
      acc = acc + w * part[at + t];
    }
  }
  // A query with no key (cannot happen for pos < skv, kept finite like attention.wgsl): o = 0, lse = 0.
  let out = select(acc / l, 0.0, l == 0.0);
  if (t < d_len) {
    o[((b * p.tq + i) * p.heads + h) * d_len + t] = T(out);
  }
  if (t == 0u) {
    lse[(b * p.heads + h) * p.tq + i] = select((m + log2(l)) * 0.6931471805599453, 0.0, l == 0.0);
  }
  if (LORA) {
    lora_share(t, h, (b * p.tq + i), select(0.0, out, t < d_len));
  }
}

/** Outputs 4c .. 4c + 3 of the head (lora_share). */
fn ov4(c: u32) -> vec4<f32> {
  return vec4(ov[4u * c], ov[4u * c + 1u], ov[4u * c + 2u], ov[4u * c + 3u]);
}

/**
 * Head h's share of o_proj's u for row `row`: shares[h, row, j] = Σ_c A[j, h·D + c] · o[row, h, c]
 * over the head's D outputs (in f32, before o's rounding to T: within that rounding of what o_proj
 * multiplies), j < r. Invocation t holds output t; then each of r · D / SLICE invocations sums one
 * slice for one j.
 */
fn lora_share(t: u32, h: u32, row: u32, out: f32) {
  ov[t] = out;
  workgroupBarrier();
  let slices = p.head_dim / SLICE;
  let d4 = p.head_dim / 4u;
  let k4 = p.heads * d4; // A's row in vec4s
  for (var e = t; e < p.lora_r * slices; e += WG) {
    let c = (e % slices) * (SLICE / 4u);
    let a = (e / slices) * k4 + h * d4 + c;
    share_part[e] = (dot(lora_a4[a], ov4(c)) + dot(lora_a4[a + 1u], ov4(c + 1u))) + (dot(lora_a4[a + 2u], ov4(c + 2u)) + dot(lora_a4[a + 3u], ov4(c + 3u)));
  }
  workgroupBarrier();
  if (t < p.lora_r) {
    var s = 0.0;
    for (var q = 0u; q < slices; q++) { s += share_part[t * slices + q]; }
    shares[(h * p.lora_rows + row) * p.lora_r + t] = s;
  }
}

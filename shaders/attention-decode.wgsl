// Attention for a few new queries against a long KV cache (chat decode), flash-decoding style:
// the keys are cut into splits of SPLIT; `partial` runs one workgroup per (split, query row and
// head, batch row) and writes that split's unnormalised output, running max and sum; `combine`
// rescales the splits to their common max and divides. The forward kernel (attention.wgsl) gives
// one invocation per query row, so at T = 1 one lone invocation per head walked all the keys.
// Same semantics as attention.wgsl without segments: query i sits at causal_offset + i and sees
// keys j <= pos with pos - j < window (window > 0); GQA head h reads kv head h / (Hq / Hkv).
// q [B, Tq, Hq, D], k/v [B, S, Hkv, D] and o in T; lse [B, Hq, Tq] in f32 (natural log);
// part [B, Tq, Hq, splits, D + 2] f32: o_s (D values), m_s, l_s (base 2, q pre-scaled by log2 e).

struct Params {
  tq: u32,
  skv: u32,
  heads: u32,
  kv_heads: u32,
  head_dim: u32,
  causal_offset: u32,
  window: u32,
  splits: u32,
  scale_log2: f32, // scale · log2(e)
}

@group(0) @binding(0) var<storage, read> q: array<T>;
@group(0) @binding(1) var<storage, read> k: array<T>;
@group(0) @binding(2) var<storage, read> v: array<T>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<T>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

const WG = 128u; // invocations per workgroup; also the largest head dim
const SPLIT = 256u; // keys per split
const EMPTY = -3.0e38; // the max of no keys; exp2(EMPTY - m) is 0 for any finite m

var<workgroup> qs: array<f32, 128>;
var<workgroup> sc: array<f32, 256>;
var<workgroup> red: array<f32, 128>;

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
  let d_len = p.head_dim;
  let pos = p.causal_offset + i;
  var lo = 0u;
  if (p.window > 0u && pos + 1u > p.window) {
    lo = pos + 1u - p.window;
  }
  let first = s * SPLIT;
  let start = max(lo, first);
  let end = min(pos + 1u, first + SPLIT);
  let kvh = h / (p.heads / p.kv_heads);

  if (t < d_len) {
    qs[t] = f32(q[((b * p.tq + i) * p.heads + h) * d_len + t]) * p.scale_log2;
  }
  workgroupBarrier();

  var m_own = EMPTY;
  for (var j = start + t; j < end; j = j + WG) {
    let kb = ((b * p.skv + j) * p.kv_heads + kvh) * d_len;
    var acc = 0.0;
    for (var d = 0u; d < d_len; d = d + 1u) {
      acc = acc + qs[d] * f32(k[kb + d]);
    }
    sc[j - first] = acc;
    m_own = max(m_own, acc);
  }
  let m = reduce(t, m_own, true);

  var l_own = 0.0;
  for (var j = start + t; j < end; j = j + WG) {
    let e = exp2(sc[j - first] - m);
    sc[j - first] = e;
    l_own = l_own + e;
  }
  let l = reduce(t, l_own, false); // its barriers also publish sc

  let ob = (((b * p.tq + i) * p.heads + h) * p.splits + s) * (d_len + 2u);
  if (t < d_len) {
    var acc = 0.0;
    for (var j = start; j < end; j = j + 1u) {
      acc = acc + sc[j - first] * f32(v[((b * p.skv + j) * p.kv_heads + kvh) * d_len + t]);
    }
    part[ob + t] = acc;
  }
  if (t == 0u) {
    part[ob + d_len] = m;
    part[ob + d_len + 1u] = l;
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
  var m = EMPTY;
  for (var s = 0u; s < p.splits; s = s + 1u) {
    m = max(m, part[base + s * stride + d_len]);
  }
  var l = 0.0;
  var acc = 0.0;
  for (var s = 0u; s < p.splits; s = s + 1u) {
    let at = base + s * stride;
    let w = exp2(part[at + d_len] - m);
    l = l + w * part[at + d_len + 1u];
    if (t < d_len) {
      acc = acc + w * part[at + t];
    }
  }
  // A query with no key (cannot happen for pos < skv, kept finite like attention.wgsl): o = 0, lse = 0.
  if (t < d_len) {
    o[((b * p.tq + i) * p.heads + h) * d_len + t] = T(select(acc / l, 0.0, l == 0.0));
  }
  if (t == 0u) {
    lse[(b * p.heads + h) * p.tq + i] = select((m + log2(l)) * 0.6931471805599453, 0.0, l == 0.0);
  }
}

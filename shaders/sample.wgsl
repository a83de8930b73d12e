// Next-token sampling on the GPU, as transformers' generate() processes scores, one workgroup per
// row of logits [rows, V] (f32), no sort:
//   1. repetition penalty over the ids in `prev` (transformers' RepetitionPenaltyLogitsProcessor:
//      z < 0 ? z * penalty : z / penalty, applied once per distinct id however often it occurs);
//   2. greedy (temperature <= 0): the first index of the maximum, done;
//   3. s = z / temperature; m = max s; e = exp(s - m) (arguments <= 0: WGSL's exp is accurate there);
//   4. top-k (0 < k < V): keep s >= the k-th largest value (ties kept, as TopKLogitsWarper);
//   5. top-p (p < 1): keep a token when the mass of the kept tokens strictly above it is
//      < p · (mass of the kept tokens): TopPLogitsWarper's rule (it removes a token whose
//      ascending cumulative probability is <= 1 - p), with ties treated alike; p = 0 keeps
//      the top token(s) (min_tokens_to_keep = 1);
//   6. draw: the smallest index i with Σ_{j <= i, kept} e_j > u · Σ_kept e, u in [0, 1) given per
//      row (seeded on the CPU): the inverse CDF in index order. (torch.multinomial draws the
//      same distribution with its own RNG and method; only the distribution is shared.)
// Thresholds are searched, not sorted for: a value s maps to an order-preserving u32 key, and an
// 8-ary search over keys (7 probe keys per pass, 11 passes for 32 bits) finds the smallest key t
// with A(t) = Σ_{kept j, key_j > t} w_j < goal (w = 1 for top-k, e for top-p); the tokens kept
// are then exactly those with key >= t. Each pass is one sweep over V and three barriers (top-p
// mostly searches a small gathered set instead: step 5).
// scratch [rows, 2V] holds s and then e per row. out [rows] u32 receives the token id.
// Assumptions: no NaN logits; -0 and +0 order as different keys (ties between them are not
// treated as ties). Sums are f32: the draw and the top-p cut can differ from a float64 sampler
// only where u (or p) lies within their rounding (~1e-6 here; the tests allow 1e-5) of a boundary
// of the CDF.

struct Params {
  vocab: u32,
  rows: u32,
  n_prev: u32,
  top_k: u32,
  temperature: f32,
  top_p: f32,
  penalty: f32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> prev: array<u32>;
@group(0) @binding(2) var<storage, read> uniforms: array<f32>;
@group(0) @binding(3) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;

// Invocations of the workgroup: the largest of 1024, 512, 256 the device takes (sample.ts). One row
// is all a workgroup has, and its sweeps are bound by memory latency: 256 invocations left an H200
// SM mostly idle (a chat token's draw took 0.96 ms).
override WG: u32 = 256u;
const PROBES = 7u;
const ALL = 0xffffffffu; // search(): no gathered tokens, sweep the vocabulary
// Top-p's nearby sets: tokens within these of the maximum (in s = z / temperature; e >= exp(-d)).
const NEAR = vec3(4.0, 8.0, 16.0);
const NEG = -3.0e38;
const BELOW_ONE = 0.99999994; // the largest f32 below 1

var<workgroup> red: array<f32, PROBES * WG>; // [PROBES][WG] per-invocation partials
var<workgroup> red_i: array<u32, WG>;
var<workgroup> red2: array<f32, PROBES * 32u>; // [PROBES][32]: the partials folded 32 ways
var<workgroup> red2_i: array<u32, 32u>;
var<workgroup> probe_sum: array<f32, PROBES>;
var<workgroup> cand_key: array<u32, WG>; // top-p's gathered tokens (step 5)
var<workgroup> cand_e: array<f32, WG>;
var<workgroup> result: f32;
var<workgroup> bounds: vec2u; // the search interval [lo, hi], published by invocation 0
var<workgroup> pick: vec2u; // the invocation holding the draw, and the remainder's bits

// Sweeps over V take four indices per trip, i, i + WG, i + 2 WG, i + 3 WG, loaded together
// (past V: clamped to V - 1 and masked): one row is all one workgroup has, and an invocation
// walking its ~500 values of a 128k vocabulary one dependent load at a time took ~0.3 ms per
// sweep on the H200 (a top-p draw makes ~16 sweeps).
const LANES = 4u;

/** Indices i + c WG (c < 4) of a trip, and which are below V. */
fn trip(i: u32) -> vec4u {
  return vec4(i, i + WG, i + 2u * WG, i + 3u * WG);
}

fn below(j: vec4u) -> vec4<bool> {
  return j < vec4(p.vocab);
}

/** scratch[at + j] for the 4 indices (clamped into the row: the masked ones read a real value). */
fn load4(at: u32, j: vec4u) -> vec4<f32> {
  let c = min(j, vec4(p.vocab - 1u));
  return vec4(scratch[at + c.x], scratch[at + c.y], scratch[at + c.z], scratch[at + c.w]);
}

// Reductions fold WG partials in two levels: 32 invocations (per probe in the search) each fold
// WG / 32 of them, then one folds the 32. One invocation folding all WG walked 1024 dependent
// loads from workgroup memory in every pass (the H200's top-p draw: 0.73 -> 0.47 ms with two
// levels). Barriers stay few (they are slow on CPU Vulkan drivers such as lavapipe, which the tests
// run on); workgroupUniformLoad hands a result to all as a uniform value.

/** Order-preserving key of an f32: a < b (as numbers, no NaN) <=> key(a) < key(b). */
fn key(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

/** The maximum over the workgroup of v, the same value in every invocation (sums: fold_rows). */
fn max_all(tid: u32, v: f32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  if (tid < 32u) {
    var r = red[tid];
    for (var t = tid + 32u; t < WG; t += 32u) { r = max(r, red[t]); }
    red2[tid] = r;
  }
  workgroupBarrier();
  if (tid == 0u) {
    var r = red2[0];
    for (var t = 1u; t < 32u; t++) { r = max(r, red2[t]); }
    result = r;
  }
  return workgroupUniformLoad(&result);
}

/** probe_sum[r] = Σ over the workgroup of red[r * WG + t] for rows r < n (n <= PROBES), in two levels. */
fn fold_rows(tid: u32, n: u32) {
  workgroupBarrier();
  if (tid < n * 32u) {
    let q = tid / 32u;
    var sum = 0.0;
    for (var t = tid % 32u; t < WG; t += 32u) { sum += red[q * WG + t]; }
    red2[tid] = sum;
  }
  workgroupBarrier();
  if (tid < n) {
    var sum = 0.0;
    for (var t = 0u; t < 32u; t++) { sum += red2[tid * 32u + t]; }
    probe_sum[tid] = sum;
  }
  workgroupBarrier();
}

/**
 * The smallest key t in [lo, hi] with A(t) < goal, A(t) = Σ_{i: key_i >= floor_key, key_i > t} w_i
 * (w_i = 1, or e_i when `mass`), given A(hi) < goal. 8-ary search: per pass 7 probes, at most
 * 11 passes for 32 bits (each pass leaves at most span / 8 + 1 keys). With `cands` < ALL the
 * tokens are the first `cands` of cand_key / cand_e (every token that can count, see step 5), one
 * per invocation, in place of a sweep over the vocabulary.
 */
fn search(tid: u32, base: u32, lo0: u32, hi0: u32, floor_key: u32, goal: f32, mass: bool, cands: u32) -> u32 {
  if (tid == 0u) { bounds = vec2u(lo0, hi0); }
  var b = workgroupUniformLoad(&bounds);
  loop {
    if (b.x >= b.y) { break; }
    let lo = b.x;
    let hi = b.y;
    let span = hi - lo;
    let step = span / 8u + 1u; // 7 * step < 2^32: no overflow below
    var probe = array<u32, PROBES>();
    for (var j = 0u; j < PROBES; j++) {
      let off = (j + 1u) * step - 1u;
      probe[j] = select(hi, lo + off, off < span);
    }
    // Explicit zeros: Dawn on lavapipe does not re-zero a bare `var acc: array<...>;` per pass.
    var acc = array<f32, PROBES>();
    if (cands != ALL) {
      if (tid < cands) {
        let kv = cand_key[tid];
        for (var j = 0u; j < PROBES; j++) {
          if (kv > probe[j]) { acc[j] += cand_e[tid]; }
        }
      }
    } else {
      for (var i = tid; i < p.vocab; i += LANES * WG) {
        let j4 = trip(i);
        let ok = below(j4);
        let s4 = load4(base, j4);
        let w4 = select(vec4(1.0), load4(base + p.vocab, j4), mass);
        for (var c = 0u; c < LANES; c++) {
          let kv = key(s4[c]);
          if (ok[c] && kv >= floor_key) {
            for (var j = 0u; j < PROBES; j++) {
              if (kv > probe[j]) { acc[j] += w4[c]; }
            }
          }
        }
      }
    }
    for (var j = 0u; j < PROBES; j++) { red[j * WG + tid] = acc[j]; }
    fold_rows(tid, PROBES);
    if (tid == 0u) {
      // The first probe below the goal bounds the answer from above, the one before it from below.
      var nb = vec2u(lo, hi);
      var found = false;
      for (var j = 0u; j < PROBES; j++) {
        if (!found) {
          if (probe_sum[j] < goal) {
            nb.y = probe[j];
            found = true;
          } else {
            nb.x = probe[j] + 1u;
          }
        }
      }
      bounds = nb;
    }
    b = workgroupUniformLoad(&bounds);
  }
  return b.y;
}

/**
 * Among red[first .. first + n), the first positive value whose running sum from acc0 passes r,
 * and the running sum before it; rounding can leave r at or past the total: then the last
 * positive one. Returns (its index - first, bits of the sum before it).
 */
fn cross(first: u32, n: u32, r: f32, acc0: f32) -> vec2u {
  var acc = acc0;
  var sel = n;
  var last = 0u;
  for (var t = 0u; t < n; t++) {
    let v = red[first + t];
    if (v > 0.0) {
      last = t;
      if (sel == n && acc + v > r) { sel = t; }
      if (sel == n) { acc += v; }
    }
  }
  if (sel == n) {
    sel = last;
    acc -= red[first + last];
  }
  return vec2u(sel, bitcast<u32>(acc));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.y * nwg.x + wg.x; // uniform per workgroup
  if (row >= p.rows) { return; }
  let tid = lid.x;
  let V = p.vocab;
  let lbase = row * V;
  let base = row * 2u * V; // s at base.., e at base + V..

  // 1. Copy, then the penalty from the original values (duplicates write the same value).
  for (var i = tid; i < V; i += LANES * WG) {
    let j4 = trip(i);
    let c = min(j4, vec4(V - 1u));
    let z = vec4(logits[lbase + c.x], logits[lbase + c.y], logits[lbase + c.z], logits[lbase + c.w]);
    for (var k = 0u; k < LANES; k++) {
      if (j4[k] < V) { scratch[base + j4[k]] = z[k]; }
    }
  }
  storageBarrier();
  if (p.penalty != 1.0) {
    for (var j = tid; j < p.n_prev; j += WG) {
      let id = prev[j];
      if (id < V) {
        let z = logits[lbase + id];
        scratch[base + id] = select(z / p.penalty, z * p.penalty, z < 0.0);
      }
    }
  }
  storageBarrier();

  // 2. Greedy: the first index of the maximum.
  if (p.temperature <= 0.0) {
    var best = NEG;
    var bi = 0xffffffffu;
    // An invocation's indices ascend (within a trip and from trip to trip): ">" keeps its first maximum.
    for (var i = tid; i < V; i += LANES * WG) {
      let j4 = trip(i);
      let z4 = load4(base, j4);
      for (var c = 0u; c < LANES; c++) {
        if (j4[c] < V && (bi == 0xffffffffu || z4[c] > best)) {
          best = z4[c];
          bi = j4[c];
        }
      }
    }
    red[tid] = best;
    red_i[tid] = bi;
    workgroupBarrier();
    // Each invocation saw the first maximum of its indices; the lowest index wins ties (in any order of folding).
    if (tid < 32u) {
      var z = red[tid];
      var iz = red_i[tid];
      for (var t = tid + 32u; t < WG; t += 32u) {
        let io = red_i[t];
        let zo = red[t];
        if (io != 0xffffffffu && (iz == 0xffffffffu || zo > z || (zo == z && io < iz))) {
          z = zo;
          iz = io;
        }
      }
      red2[tid] = z;
      red2_i[tid] = iz;
    }
    workgroupBarrier();
    if (tid == 0u) {
      var z = red2[0];
      var iz = red2_i[0];
      for (var t = 1u; t < 32u; t++) {
        let io = red2_i[t];
        let zo = red2[t];
        if (io != 0xffffffffu && (iz == 0xffffffffu || zo > z || (zo == z && io < iz))) {
          z = zo;
          iz = io;
        }
      }
      out[row] = iz;
    }
    return;
  }

  // 3. Temperature, max, exp.
  var mx = NEG;
  for (var i = tid; i < V; i += LANES * WG) {
    let j4 = trip(i);
    let s4 = load4(base, j4) / p.temperature;
    for (var c = 0u; c < LANES; c++) {
      if (j4[c] < V) {
        scratch[base + j4[c]] = s4[c];
        mx = max(mx, s4[c]);
      }
    }
  }
  mx = max_all(tid, mx); // each invocation reads back only the values it stored
  for (var i = tid; i < V; i += LANES * WG) {
    let j4 = trip(i);
    let e4 = exp(load4(base, j4) - mx);
    for (var c = 0u; c < LANES; c++) {
      if (j4[c] < V) { scratch[base + V + j4[c]] = e4[c]; }
    }
  }
  storageBarrier();

  // 4. Top-k: the k-th largest key.
  let top = key(mx);
  var cut = 0u;
  if (p.top_k > 0u && p.top_k < V) {
    cut = search(tid, base, 0u, top, 0u, f32(p.top_k), false, ALL);
  }

  // 5. Top-p among the top-k survivors. The sweep that sums their mass z also sums the mass and
  // count of those within NEAR[j] of the maximum (s >= mx - NEAR[j]). Where such a set holds the
  // goal's mass (so the cut is inside it) and at most WG tokens, they are gathered into workgroup
  // memory in index order and the search runs over them (each pass a few microseconds) in place
  // of ~11 sweeps over the vocabulary (~27 us each for an 8B's 128k on the H200); else the sweeps.
  if (p.top_p < 1.0) {
    var near = array<f32, 6>(); // masses [0, 3), counts [3, 6)
    let near_key = array<u32, 3>(key(mx - NEAR.x), key(mx - NEAR.y), key(mx - NEAR.z));
    var z = 0.0;
    for (var i = tid; i < V; i += LANES * WG) {
      let j4 = trip(i);
      let s4 = load4(base, j4);
      let e4 = load4(base + V, j4);
      for (var c = 0u; c < LANES; c++) {
        let kv = key(s4[c]);
        if (j4[c] < V && kv >= cut) {
          z += e4[c];
          for (var j = 0u; j < 3u; j++) {
            if (kv >= near_key[j]) {
              near[j] += e4[c];
              near[3u + j] += 1.0;
            }
          }
        }
      }
    }
    for (var r = 0u; r < 6u; r++) { red[r * WG + tid] = near[r]; }
    red[6u * WG + tid] = z;
    fold_rows(tid, 7u);
    let goal = p.top_p * probe_sum[6];
    if (tid == 0u) {
      // The nearest set with the goal's mass; gathered if it fits (its lower key, and which set).
      var chosen = vec2u(ALL, 0u);
      for (var j = 0u; j < 3u; j++) {
        if (chosen.x == ALL && probe_sum[j] >= goal && probe_sum[3u + j] <= f32(WG)) { chosen = vec2u(max(near_key[j], cut), j); }
      }
      bounds = chosen;
    }
    let gather = workgroupUniformLoad(&bounds);
    if (gather.x == ALL) {
      cut = search(tid, base, cut, top, cut, goal, true, ALL);
    } else {
      // Each invocation's share in index order after the shares of the invocations before it.
      let mine = u32(near[3u + gather.y]);
      red_i[tid] = mine;
      workgroupBarrier();
      let run = WG / 32u;
      if (tid < 32u) {
        var s = 0u;
        for (var t = tid * run; t < (tid + 1u) * run; t++) { s += red_i[t]; }
        red2_i[tid] = s;
      }
      workgroupBarrier();
      var at = 0u;
      var n = 0u;
      for (var r = 0u; r < 32u; r++) {
        at += select(0u, red2_i[r], r < tid / run);
        n += red2_i[r];
      }
      for (var t = (tid / run) * run; t < tid; t++) { at += red_i[t]; }
      for (var i = tid; i < V; i += LANES * WG) {
        let j4 = trip(i);
        let s4 = load4(base, j4);
        let e4 = load4(base + V, j4);
        for (var c = 0u; c < LANES; c++) {
          let kv = key(s4[c]);
          if (j4[c] < V && kv >= gather.x) {
            cand_key[at] = kv;
            cand_e[at] = e4[c];
            at++;
          }
        }
      }
      workgroupBarrier();
      cut = search(tid, base, gather.x, top, gather.x, goal, true, n);
    }
  }

  // 6. Draw: each invocation sums a contiguous range of indices, 32 invocations sum runs of those
  // ranges, and invocation 0 finds the run and then the range that holds the draw.
  let per = (V + WG - 1u) / WG;
  let start = min(tid * per, V);
  let end = min(start + per, V);
  var own = 0.0;
  for (var i = start; i < end; i += LANES) {
    let j4 = vec4(i, i + 1u, i + 2u, i + 3u);
    let s4 = load4(base, j4);
    let e4 = load4(base + V, j4);
    for (var c = 0u; c < LANES; c++) {
      if (j4[c] < end && key(s4[c]) >= cut) { own += e4[c]; }
    }
  }
  red[tid] = own;
  workgroupBarrier();
  let run = WG / 32u;
  if (tid < 32u) {
    var sum = 0.0;
    for (var t = tid * run; t < (tid + 1u) * run; t++) { sum += red[t]; }
    red[WG + tid] = sum; // the runs' sums after the ranges' (red holds PROBES * WG)
  }
  workgroupBarrier();
  if (tid == 0u) {
    var total = 0.0;
    for (var t = 0u; t < 32u; t++) { total += red[WG + t]; }
    let r = min(max(uniforms[row], 0.0), BELOW_ONE) * total;
    let in_runs = cross(WG, 32u, r, 0.0);
    let first = in_runs.x * run;
    let in_run = cross(first, run, r, bitcast<f32>(in_runs.y));
    pick = vec2u(first + in_run.x, bitcast<u32>(r - bitcast<f32>(in_run.y)));
  }
  workgroupBarrier();
  if (tid == pick.x) {
    let rem = bitcast<f32>(pick.y);
    var c = 0.0;
    var chosen = 0xffffffffu;
    var last_kept = 0u;
    for (var i = start; i < end; i += LANES) {
      let j4 = vec4(i, i + 1u, i + 2u, i + 3u);
      let s4 = load4(base, j4);
      let e4 = load4(base + V, j4);
      for (var k = 0u; k < LANES; k++) {
        if (j4[k] < end && key(s4[k]) >= cut) {
          last_kept = j4[k];
          c += e4[k];
          if (chosen == 0xffffffffu && c > rem) { chosen = j4[k]; }
        }
      }
    }
    out[row] = select(chosen, last_kept, chosen == 0xffffffffu);
  }
}

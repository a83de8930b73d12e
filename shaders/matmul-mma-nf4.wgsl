// B source of shaders/matmul-mma.wgsl: a frozen NF4 weight W [N, K] (nn.Linear's [out, in]; the
// layout of shaders/nf4-matmul.wgsl: 8 codes to a u32 word, one f32 absmax per block of the flat
// weight), dequantized as bnb does (code times absmax in f32, as NF4_WGSL's nf4_dequant) and
// rounded to f16 into the tile: the base never exists as f16 in device memory. Needs W's rows to
// hold a multiple of 8 elements.
//   TRANS_B (forward, out = a · Wᵀ):     op(B)[k, n] = W[n, k]; tile [BN][SB], k fastest.
//   else    (backward, dx = dy · W):     op(B)[k, n] = W[k, n]; tile [BK][SB], columns fastest.
// Either way in SGC blocks of TN * 16 columns (b_at).
// A share is one word (eight consecutive elements of a W row) and its absmax.

@group(0) @binding(1) var<storage, read> words: array<u32>;
@group(0) @binding(2) var<storage, read> absmax: array<f32>;

var<workgroup> tile_b: array<array<f16, B_SUB>, SGC>;

// Each lane keeps code (its subgroup lane % 16; subgroups of 32, GpuInfo.mmaF16) in a register and
// the dequantization looks codes up with subgroupShuffle: 7-8% faster than reading them from the
// table in workgroup memory (bench/h200-2026-11-30-s11-ablate-shuffle.json).
var<private> nf4_code_lane: f32;

alias BShare = vec2<u32>; // (word, absmax bits); (0, 0) dequantizes to zeros

fn b_init(tid: u32, sgl: u32) {
  nf4_table_init(tid);
  nf4_code_lane = nf4_table[sgl % 16u];
}

fn b_slot(tid: u32, i: u32) -> vec2<u32> {
  let f = tid + i * THREADS;
  if (TRANS_B) { return vec2<u32>(f / (BK / 8u), (f % (BK / 8u)) * 8u); }
  return vec2<u32>(f / (BN / 8u), (f % (BN / 8u)) * 8u);
}

fn fetch_b(tid: u32, i: u32, k0: u32, col0: u32) -> BShare {
  let s = b_slot(tid, i);
  var row: u32;
  var col: u32;
  var valid: bool;
  if (TRANS_B) {
    row = col0 + s.x;
    col = k0 + s.y;
    valid = row < p.nc && col < p.ki;
  } else {
    row = k0 + s.x;
    col = col0 + s.y;
    valid = row < p.ki && col < p.nc;
  }
  if (!valid) { return BShare(0u, 0u); }
  let e0 = row * p.wc + col;
  return BShare(words[e0 >> 3u], bitcast<u32>(absmax[e0 >> p.bs_shift]));
}

/** fetch_b for a share known to be inside W. */
fn fetch_b_in(tid: u32, i: u32, k0: u32, col0: u32) -> BShare {
  let s = b_slot(tid, i);
  let e0 = select((k0 + s.x) * p.wc + col0 + s.y, (col0 + s.x) * p.wc + k0 + s.y, TRANS_B);
  return BShare(words[e0 >> 3u], bitcast<u32>(absmax[e0 >> p.bs_shift]));
}

/** Dequantizes and stores share i, starting at word (lane >> B_ROT) % 4 of its four (as store_a).
 * (blk, o): b_at(b_slot(tid, i)) reduced by constants, as the dense source's store_b. */
fn store_b(tid: u32, i: u32, v: BShare) {
  //{{B_STORE_INDEX}}
  let am = bitcast<f32>(v.y);
  let first = 2u * (((tid % 32u) >> B_ROT) % 4u);
  for (var j = 0u; j < 8u; j++) {
    let e = (j + first) % 8u;
    tile_b[blk][o + e] = f16(subgroupShuffle(nf4_code_lane, (v.x >> nf4_shift(e)) & 15u) * am);
  }
}

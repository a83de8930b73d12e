// The tensor-core GEMM on subgroup matrices (chromium_experimental_subgroup_matrix, f16 x f16 -> f32
// 16x16x16): out[m, nc] = a[m, ki] · op(B) (+ bias) (+ out), a f16, op(B) [ki, nc] from a dense
// f16 matrix or an NF4 weight (the B source, prepended by the wrapper, src/engine/matmul-mma.ts,
// with a's binding and fetch_a, the tile constants and the unrolled multiply step it generates).
//
// A workgroup of THREADS invocations (subgroups of 32) computes a BM x BN block of out. Per step of
// BK along k, every invocation fetches its share of the next A tile and of the next B tile (the B
// source's fetch_b) into registers while the subgroups multiply the tiles now in workgroup memory;
// then the shares go to workgroup memory (NF4 dequantized to f16 on the way). Subgroup s owns a
// block of TM x TN result matrices (16x16 each, f32 in registers): rows (s / SGC) * TM * 16 and
// columns (s % SGC) * TN * 16 of the workgroup's block. The A tile is [BM][SA] (k fastest) and
// read as row-major left matrices; B's layout is the source's (see its header). Rows of the tiles
// are padded (SA = BK + 8) so that the 16 rows of one matrix load fall into different banks.
// The shares' stores go in a per-lane order (A_SPREAD, A_ROT, B_ROT: the generator's storeLayout)
// in which each scalar store instruction's 32 lanes write 32 different banks.
// Both tiles are arrays of per-subgroup blocks (tile_a[s / SGC]: the TM * 16 rows of subgroup row
// block s / SGC; tile_b[s % SGC] likewise for columns), and the k steps are unrolled, so every
// matrix load reads its block at a constant offset. Chrome's robustness guards a load whose offset
// it cannot bound with a branch and a copy through a function variable; with the offsets run-time
// values (row block, k step) the kernels ran at 88 TFLOP/s, 128 with robustness off.
//
// An f32 a arrives here as f16 rows scaled by powers of two (shaders/f16-rows.wgsl explains why);
// unscale() multiplies each row of the product back by its 2^-s (exact), or is the identity; the
// block's scales are staged into workgroup memory first (stage_scales), not loaded per element of
// the epilogue (the 8B step's backward GEMMs 168.0 -> 165.3 ms, the forward's unchanged).
//
// A LoRA variant first multiplies s · u · op(L) into the accumulators as more k steps, before the
// k loop (shaders/matmul-mma-lora.wgsl).
//
// The epilogue goes through a 16x16 f32 staging area per subgroup: bounds, bias, accumulate and
// the output type are handled per element there, once per result matrix (nothing per k step).
// Generic names as shaders/nf4-matmul.wgsl: m rows of a and out, ki the reduction, nc columns.

struct Params {
  m: u32,
  nc: u32,
  ki: u32,
  wc: u32,
  bs_shift: u32,
  has_bias: u32,
  accumulate: u32,
  lora_r: u32,     // LoRA's rank where the variant adds its term (shaders/matmul-mma-lora.wgsl), else 0
  lora_scale: f32,
}

@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<R>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<R>>; // the same, where nc % 4 == 0 (write_stage4)
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> tile_a: array<array<f16, TM * 16u * SA>, BM / (TM * 16u)>;
var<workgroup> stage: array<array<f32, 256u * STAGE>, THREADS / 32u>; // STAGE result matrices a subgroup a round of the epilogue

//{{A_SOURCE}}

/** Where fetch i (0 .. A_FETCHES - 1) of invocation tid goes in the A tile: (row, k). A subgroup's
 * lanes cover 32 / (BK / PER) rows, A_SPREAD rows apart (storeLayout: rows whose starts share banks). */
fn a_slot(tid: u32, i: u32) -> vec2<u32> {
  let f = tid + i * THREADS;
  let q = f / (BK / PER);
  let rows = 32u / (BK / PER);
  let w = q / rows;
  return vec2<u32>((w / A_SPREAD) * rows * A_SPREAD + (q % rows) * A_SPREAD + w % A_SPREAD, (f % (BK / PER)) * PER);
}

/**
 * Stores a share of PER elements at `at` (the generator's store_share: with four, lanes with bit A_ROT
 * set store its second word first, storeLayout). (blk, o) and sw come from the generator
 * (aStoreIndex): reduced by constants, so that Tint's range analysis bounds them inside this function
 * and Chrome's robustness adds no clamp.
 */
fn store_a(at: vec2<u32>, v: Share, lane: u32) {
  //{{A_STORE_INDEX}}
  //{{A_STORE}}
}

/** (column block, offset in it) of position s of the B tile (the source's b_slot: (n, k) with
 * TRANS_B, else (k, n)); a share's elements run along the offset. */
fn b_at(s: vec2<u32>) -> vec2<u32> {
  if (TRANS_B) { return vec2<u32>(s.x / (TN * 16u), (s.x % (TN * 16u)) * SB + s.y); }
  return vec2<u32>(s.y / (TN * 16u), s.x * SB + s.y % (TN * 16u));
}

/** out[o] = v (+ bias[col]) (+ out[o]), rounded once to R; v is the block's row `rb` of the (scaled) product. */
fn store_out(o: u32, rb: u32, col: u32, v: f32) {
  var s = unscale(rb, v);
  if (p.has_bias != 0u) { s += bias[col]; }
  if (p.accumulate != 0u) { s += f32(out[o]); }
  out[o] = R(s);
}

/** Writes the 16x16 matrix this subgroup staged at `at` to out at the block's row rb0 (row0 + rb0) and col0; every lane takes 8 elements. */
fn write_stage(sg: u32, at: u32, lane: u32, row0: u32, rb0: u32, col0: u32) {
  for (var e = 0u; e < 8u; e++) {
    let idx = lane + e * 32u;
    let rb = rb0 + idx / 16u;
    let row = row0 + rb;
    let col = col0 + idx % 16u;
    if (row < p.m && col < p.nc) { store_out(row * p.nc + col, rb, col, stage[sg][at + idx]); }
  }
}

/** out[o4] (four elements) = v (+ bias) (+ out), as store_out; nc % 4 == 0. */
fn store_out4(o4: u32, rb: u32, col: u32, v: vec4<f32>) {
  var s = v * unscale(rb, 1.0);
  if (p.has_bias != 0u) { s += vec4<f32>(bias[col], bias[col + 1u], bias[col + 2u], bias[col + 3u]); }
  if (p.accumulate != 0u) { s += vec4<f32>(out4[o4]); }
  out4[o4] = vec4<R>(s);
}

/** write_stage with 16-byte stores (nc % 4 == 0): every lane takes 2 x 4 elements, a warp 8 rows of 64 bytes a store. */
fn write_stage4(sg: u32, at: u32, lane: u32, row0: u32, rb0: u32, col0: u32) {
  for (var e = 0u; e < 2u; e++) {
    let idx = 4u * (lane + e * 32u);
    let rb = rb0 + idx / 16u;
    let row = row0 + rb;
    let col = col0 + idx % 16u;
    let s = at + idx;
    let v = vec4<f32>(stage[sg][s], stage[sg][s + 1u], stage[sg][s + 2u], stage[sg][s + 3u]);
    if (row < p.m && col < p.nc) { store_out4((row * p.nc + col) / 4u, rb, col, v); }
  }
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32, @builtin(subgroup_invocation_id) sgl: u32) {
  b_init(tid, sgl);
  // ROWS_FASTEST (the x·Wᵀ products): the grid's x counts row blocks, so the workgroups in flight
  // at once span every row block of a 2048-row a and a few column blocks, rather than all column
  // blocks of one row block, whose a rows every SM then read at the same k steps.
  let row0 = select(wg.y, wg.x, ROWS_FASTEST) * BM;
  let col0 = select(wg.x, wg.y, ROWS_FASTEST) * BN;
  let sg = tid / 32u;
  let lane = tid % 32u;
  let sgr = sg / SGC; // the subgroup's row block
  let sgc = sg % SGC; // and column block
  let sr = sgr * TM * 16u; // the subgroup's first row in the block
  let sc = sgc * TN * 16u; // and first column
  let inside = row0 + BM <= p.m && col0 + BN <= p.nc; // the whole block (its k steps checked apart)
  stage_scales(tid, row0);
  workgroupBarrier();
  //{{ACC_DECL}}
  let tiles = (p.ki + BK - 1u) / BK;
  //{{LORA}}
  //{{FETCH_DECL}}
  //{{STORE_NEXT}}
  workgroupBarrier();
  // Each k step: the multiply steps, with the next tiles' fetch (if (more) { let k0 = (t + 1u) * BK;
  // ... }) before or after the first of them (the generator's fetchAfterFirstStep), then the stores.
  for (var t = 0u; t < tiles; t++) {
    let more = t + 1u < tiles;
    //{{MMA_STEP}}
    workgroupBarrier();
    if (more) {
      //{{STORE_NEXT}}
    }
    workgroupBarrier();
  }
  //{{EPILOGUE}}
}

// LoRA's term in the tensor-core GEMM (shaders/matmul-mma.wgsl, a variant matmul-mma.ts generates):
//   out = a · op(B) + s · u · op(L)     u [m, r] f32; L f32: TRANS_B [nc, r] (lora_B: the forward,
//                                       y += s · (x Aᵀ) Bᵀ), else [r, nc] (lora_A: the backward,
//                                       dx += du · A)
// as r more columns of a and rows of op(B): before the k loop the tiles take u's rows and L's columns
// (rounded to f16), LORA_K at a time, and the subgroups multiply them into the accumulators, so the
// epilogue writes base and LoRA in one pass over out (one dispatch and one read-modify-write of out
// fewer than lora.wgsl's `up`). Zeros beyond r and outside the matrices. Before the loop, not after:
// there the 8B step's NF4 GEMMs took 16 ms more, here no more than without LoRA (tensor-core-notes.md),
// and the steps are unrolled (a loop over chunks of r made the backward's k loop 30% slower).
// An f32 a's rows are scaled by 2^s (f16-rows), which unscale() undoes on the whole sum: u's row
// must carry the same 2^s. It takes 2^(s - 12), and L 2^12: the product is the same, and f16 (whose
// largest value is 65504; the row's largest |a| scales to below 2^15) holds |s · u| up to 2^13 times
// the row's largest |a|, and |L| up to 16: far beyond adapters in training (at init |s · u| <= s ·
// |A_j|_1 · max |x|, ~120 times for an 8B's down_proj at s = 2, ~0.6 times typically). lora_row()
// and LORA_W are the variant's (both 1 for an f16 a, whose rows are not scaled).

@group(0) @binding(7) var<storage, read> lora_u: array<f32>;
@group(0) @binding(8) var<storage, read> lora_w: array<f32>;

/** Stages columns j0 .. j0 + LORA_K - 1 of u (the workgroup's rows) and rows of op(L) (its columns) into the tiles. */
fn stage_lora(tid: u32, row0: u32, col0: u32, j0: u32) {
  for (var e = tid; e < BM * LORA_K; e += THREADS) {
    let row = e / LORA_K;
    let j = e % LORA_K;
    var v = 0.0;
    if (row0 + row < p.m && j0 + j < p.lora_r) { v = p.lora_scale * lora_u[(row0 + row) * p.lora_r + j0 + j] * lora_row(row); }
    tile_a[row / (TM * 16u)][(row % (TM * 16u)) * SA + j] = f16(v);
  }
  for (var e = tid; e < BN * LORA_K; e += THREADS) {
    // Consecutive invocations read along L's rows: j with TRANS_B (lora_B [nc, r]), else n.
    var n = e / LORA_K;
    var j = e % LORA_K;
    if (!TRANS_B) {
      n = e % BN;
      j = e / BN;
    }
    var v = 0.0;
    if (col0 + n < p.nc && j0 + j < p.lora_r) {
      if (TRANS_B) { v = lora_w[(col0 + n) * p.lora_r + j0 + j]; } else { v = lora_w[(j0 + j) * p.nc + col0 + n]; }
    }
    let at = b_at(select(vec2<u32>(j, n), vec2<u32>(n, j), TRANS_B));
    tile_b[at.x][at.y] = f16(v * LORA_W);
  }
}

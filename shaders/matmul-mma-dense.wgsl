// B source of shaders/matmul-mma.wgsl: a dense f16 matrix b.
//   TRANS_B:  b [nc, ki] (nn.Linear's [out, in]); op(B) = bᵀ. Tile [BN][SB], k fastest, read as
//             column-major right matrices.
//   else:     b [ki, nc]; op(B) = b. Tile [BK][SB], columns fastest, read as row-major ones.
// Either way in SGC blocks of TN * 16 columns (b_at).
// An invocation fetches PER consecutive elements of a row of b per share (B_FETCHES shares), as a's
// (the wrapper generates fetch_b_share, b's binding and the Share type).

var<workgroup> tile_b: array<array<f16, B_SUB>, SGC>;

alias BShare = Share;

fn b_init(tid: u32, sgl: u32) {}

//{{B_SHARE_SOURCE}}

/** (row, column) of share i of invocation tid in the tile's own layout. */
fn b_slot(tid: u32, i: u32) -> vec2<u32> {
  let f = tid + i * THREADS;
  if (TRANS_B) { return vec2<u32>(f / (BK / PER), (f % (BK / PER)) * PER); }
  return vec2<u32>(f / (BN / PER), (f % (BN / PER)) * PER);
}

fn fetch_b(tid: u32, i: u32, k0: u32, col0: u32) -> BShare {
  let s = b_slot(tid, i);
  if (TRANS_B) { return fetch_b_share(col0 + s.x, k0 + s.y, p.nc, p.ki); }
  return fetch_b_share(k0 + s.x, col0 + s.y, p.ki, p.nc);
}

/** fetch_b for a share known to be inside b. */
fn fetch_b_in(tid: u32, i: u32, k0: u32, col0: u32) -> BShare {
  let s = b_slot(tid, i);
  if (TRANS_B) { return fetch_b_share_in(col0 + s.x, k0 + s.y, p.ki); }
  return fetch_b_share_in(k0 + s.x, col0 + s.y, p.nc);
}

/** Stores share i as store_a (with four, lanes with bit B_ROT set store its second word first). Its
 * tile position (blk, o) and sw come from the generator (bStoreIndex: b_at(b_slot(tid, i)) as scalar
 * lets reduced by constants). */
fn store_b(tid: u32, i: u32, v: BShare) {
  //{{B_STORE_INDEX}}
  //{{B_STORE}}
}

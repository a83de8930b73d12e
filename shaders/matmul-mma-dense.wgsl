// B source of shaders/matmul-mma.wgsl: a dense f16 matrix b.
//   TRANS_B:  b [nc, ki] (nn.Linear's [out, in]); op(B) = bᵀ. Tile [BN][SB], k fastest, read as
//             column-major right matrices.
//   else:     b [ki, nc]; op(B) = b. Tile [BK][SB], columns fastest, read as row-major ones.
// Either way in SGC blocks of TN * 16 columns (b_at).
// An invocation fetches four consecutive elements of a row of b per share (B_FETCHES shares),
// with one vector load where rows hold a multiple of 4 (the wrapper generates fetch_b4 and b's binding).

var<workgroup> tile_b: array<array<f16, B_SUB>, SGC>;

alias BShare = vec4<f16>;

fn b_init(tid: u32, sgl: u32) {}

//{{B4_SOURCE}}

/** (row, column) of share i of invocation tid in the tile's own layout. */
fn b_slot(tid: u32, i: u32) -> vec2<u32> {
  let f = tid + i * THREADS;
  if (TRANS_B) { return vec2<u32>(f / (BK / 4u), (f % (BK / 4u)) * 4u); }
  return vec2<u32>(f / (BN / 4u), (f % (BN / 4u)) * 4u);
}

fn fetch_b(tid: u32, i: u32, k0: u32, col0: u32) -> BShare {
  let s = b_slot(tid, i);
  if (TRANS_B) { return fetch_b4(col0 + s.x, k0 + s.y, p.nc, p.ki); }
  return fetch_b4(k0 + s.x, col0 + s.y, p.ki, p.nc);
}

/** fetch_b for a share known to be inside b. */
fn fetch_b_in(tid: u32, i: u32, k0: u32, col0: u32) -> BShare {
  let s = b_slot(tid, i);
  if (TRANS_B) { return fetch_b4_in(col0 + s.x, k0 + s.y, p.ki); }
  return fetch_b4_in(k0 + s.x, col0 + s.y, p.nc);
}

/** Stores share i; lanes with bit B_ROT set store its second word first (as store_a). Its tile
 * position (blk, o) and sw come from the generator (bStoreIndex: b_at(b_slot(tid, i)) as scalar
 * lets reduced by constants). */
fn store_b(tid: u32, i: u32, v: BShare) {
  //{{B_STORE_INDEX}}
  let w = select(v, v.zwxy, sw == 1u);
  let o0 = o + 2u * sw;
  let o1 = o + 2u - 2u * sw;
  tile_b[blk][o0] = w.x;
  tile_b[blk][o0 + 1u] = w.y;
  tile_b[blk][o1] = w.z;
  tile_b[blk][o1 + 1u] = w.w;
}

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

fn store_b(tid: u32, i: u32, v: BShare) {
  let at = b_at(b_slot(tid, i));
  tile_b[at.x][at.y] = v.x;
  tile_b[at.x][at.y + 1u] = v.y;
  tile_b[at.x][at.y + 2u] = v.z;
  tile_b[at.x][at.y + 3u] = v.w;
}

// The NF4 GEMV with rows owned by subgroups (appended to nf4-gemv.wgsl where the device has
// subgroups): a workgroup takes SG_ROWS W rows in groups of 4; subgroup g of the workgroup's
// GEMV_WG / subgroup_size takes groups g, g + that count, ...; its lanes walk the 32-element chunks
// of those 4 rows and subgroupAdd alone sums them: no workgroup memory, no barrier past the code
// table's, and each lane keeps K / (32 · subgroup_size) chunks of loads going (4 at K = 4096 on
// 32-wide subgroups) where `gemv` gives each lane one.
diagnostic(off, subgroup_uniformity);

const SG_ROWS = 16u;

@compute @workgroup_size(GEMV_WG)
fn gemv_sg(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  nf4_table_init(lanes.index);
  let first = (wg.y * nwg.x + wg.x) * SG_ROWS;
  let groups = GEMV_WG / lanes.sg_size;
  for (var g = lanes.index / lanes.sg_size; g < SG_ROWS / 4u; g += groups) {
    let row0 = first + 4u * g;
    if (row0 >= p.n) { break; }
    var acc = Acc();
    for (var c = lanes.sg_lane; c < (p.k >> 5u); c += lanes.sg_size) { chunk_add(&acc, row0, c); }
    for (var m = 0u; m < x_rows(); m++) {
      let s = subgroupAdd(acc[m]);
      let r = lanes.sg_lane;
      if (r < 4u && row0 + r < p.n) { store(m * p.n + row0 + r, row0 + r, s[r]); }
    }
  }
}

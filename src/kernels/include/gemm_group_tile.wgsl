    // The GEMM kernels' tile: its batch `bidx` and row tile; row-grouped launches cover only
    // the row tiles the groups have, so a tile walks the groups' tile counts to find its group
    // (the launch has at most Σ ceil(rows / tile) tiles; uniform per workgroup).
    let tile = group_index(wg, nwg);
    let tiles_per_batch = p.tiles_n * ((p.m + ${TM*WY-1}u) / ${TM*WY}u);
    var bidx = tile / tiles_per_batch;
    var row_tile = (tile % tiles_per_batch) / p.tiles_n;
//@for g in 0..GROUP_ROWS
    bidx = 0u;
    row_tile = tile / p.tiles_n;
    loop {
        let end = select(groups[min(bidx + 1u, p.batch - 1u)], p.m, bidx + 1u == p.batch);
        let count = (end - groups[bidx] + ${TM*WY-1}u) / ${TM*WY}u;
        if (row_tile < count || bidx + 1u == p.batch) { break; }
        row_tile -= count;
        bidx++;
    }
//@end

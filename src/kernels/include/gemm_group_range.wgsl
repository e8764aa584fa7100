    // The batch's operands and extent: a_base, b_base, k_len, m (its rows) and c_row0 (its
    // first row of C); a row group's rows (GROUP_ROWS) or k range (GROUP_K) of the operands.
    var a_base = p.a_offset + bidx * p.a_batch_stride;
    var b_base = p.b_offset + bidx * p.b_batch_stride;
//@include gemm_strides
    var k_len = min(p.k, p.k_total - min(p.k_total, bidx * p.k));
    var m = p.m;
    var c_row0 = 0u;
//@for g in 0..GROUP_ROWS
    // The extra last batch zeroes the rows after the last group (slots nothing was routed to).
    let last = bidx + 1u == p.batch;
    let g0 = groups[bidx];
    m = select(groups[min(bidx + 1u, p.batch - 1u)], p.m, last) - g0;
    if (last) { k_len = 0u; }
    a_base += g0 * a_row;
    c_row0 = g0;
//@end
//@for g in 0..GROUP_K
    let g0 = groups[bidx];
    k_len = groups[bidx + 1u] - g0;
    a_base += g0 * a_step;
    b_base += g0 * b_step;
//@end

    // The block's weight-gradient columns j = (ci, ky, kx) (clamped to the last; ok_c says
    // whether the column exists): the input plane each reads and its window offsets.
//@for j in 0..TN
    let c${j} = min(col0 + ${WX*j}u, cols - 1u);
    let ok_c${j} = col0 + ${WX*j}u < cols;
    let xo${j} = (grp * cg + c${j} / khw) * hw;
    let fy${j} = i32(((c${j} % khw) / p.kw) * p.dh) - i32(p.ph);
    let fx${j} = i32((c${j} % p.kw) * p.dw) - i32(p.pw);
//@end

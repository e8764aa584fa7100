    // Depthwise tap j's offsets from an output position's input row and column (taps past
    // kh·kw repeat the last; their callers mask them).
//@for j in 0..TN
    let fy${j} = i32((min(${j}u, khw - 1u) / p.kw) * p.dh) - i32(p.ph);
    let fx${j} = i32((min(${j}u, khw - 1u) % p.kw) * p.dw) - i32(p.pw);
//@end

    // A depthwise weight gradient's invocation: (split, channel ch) of `count` samples in
    // splits of n_per_split (lanes are channels), and tap j's offsets fy, fx from an output
    // position's input row and column (taps past kh·kw repeat the last; their users mask them).
    let idx = group_index(wg, nwg) * 64u + li;
    let splits = (count + p.n_per_split - 1u) / p.n_per_split;
    if (idx >= p.c * splits) { return; }
    let ch = idx % p.c;
    let split = idx / p.c;
    let khw = p.kh * p.kw;
    let hw = p.h * p.w;
    let ohw = p.oh * p.ow;
//@for j in 0..TN
    let fy${j} = i32((min(${j}u, khw - 1u) / p.kw) * p.dh) - i32(p.ph);
    let fx${j} = i32((min(${j}u, khw - 1u) % p.kw) * p.dw) - i32(p.pw);
//@end

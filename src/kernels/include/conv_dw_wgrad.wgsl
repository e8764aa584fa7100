        // One plane's depthwise weight gradient: g[j] += dy[db + oy·ow + ox] · x[xb + (oy·sh +
        // fy_j)·w + ox·sw + fx_j] over the output positions (zero outside the image), tap j's
        // offsets fy, fx from `dw_wgrad_place`. Needs xb, db (the plane's offsets in x and dy).
        for (var oy = 0u; oy < p.oh; oy++) {
            let iy = i32(oy * p.sh);
            for (var ox = 0u; ox < p.ow; ox++) {
                let d = dy[db + oy * p.ow + ox];
                let ix = i32(ox * p.sw);
//@for j in 0..TN
                let ok${j} = u32(iy + fy${j}) < p.h && u32(ix + fx${j}) < p.w;
                let xa${j} = select(0u, xb + u32(iy + fy${j}) * p.w + u32(ix + fx${j}), ok${j});
                g${j} = fma(d, select(0.0, x[xa${j}], ok${j}), g${j});
//@end
            }
        }

        // One sample's weight-gradient block: g[i][j] += dy[n, row i, oy, ox] * x[n, ci_j,
        // oy*sh + ky_j*dh - ph, ox*sw + kx_j*dw - pw] over the output positions, the input
        // gathered im2col-style (zero outside the image). Needs xn, dn (the sample's offsets in
        // x and dy), do0, do1, ... (each row's plane in dy) and conv_columns.
        for (var oy = 0u; oy < p.oh; oy++) {
            let iy = i32(oy * p.sh);
            // Per column: is the input row inside the image, and where does it start?
//@for j in 0..TN
            let ry${j} = u32(iy + fy${j}) < p.h;
            let rb${j} = xn + xo${j} + select(0u, u32(iy + fy${j}) * p.w, ry${j});
//@end
//@for sg_off in 0..1-SG
            for (var ox = 0u; ox < p.ow; ox++) {
                let s = dn + oy * p.ow + ox;
//@for i in 0..TM
                let d${i} = vec4<f32>(dy[do${i} + s]);
//@end
//@end
//@for sg_on in 0..SG
            // SG = 1: the WX invocations of a row (same filters) read dy at WX neighbouring
            // positions once, and pass them round by subgroupShuffle (needs lid, group_lane0).
            for (var ox0 = 0u; ox0 < p.ow; ox0 += ${WX}u) {
                let sx = dn + oy * p.ow + min(ox0 + lid.x, p.ow - 1u);
//@for q in 0..TM/4
                let dchunk${q} = vec4<f32>(dy[do${4*q} + sx], dy[do${4*q+1} + sx], dy[do${4*q+2} + sx], dy[do${4*q+3} + sx]);
//@end
              for (var ox = ox0; ox < min(ox0 + ${WX}u, p.ow); ox++) {
//@for q in 0..TM/4
                let drow${q} = subgroupShuffle(dchunk${q}, group_lane0 + ox - ox0);
//@end
//@for i in 0..TM
                let d${i} = vec4<f32>(drow${i/4}[${i%4}]);
//@end
//@end
                let ix = i32(ox * p.sw);
//@for j in 0..TN
                let ok${j} = ry${j} && u32(ix + fx${j}) < p.w;
                let xa${j} = select(0u, rb${j} + u32(ix + fx${j}), ok${j});
//@end
//@for q in 0..TN/4
                let b${q} = select(vec4<f32>(0.0), vec4<f32>(x[xa${4*q}], x[xa${4*q+1}], x[xa${4*q+2}], x[xa${4*q+3}]), vec4<bool>(ok${4*q}, ok${4*q+1}, ok${4*q+2}, ok${4*q+3}));
//@end
//@for i in 0..TM
//@for q in 0..TN/4
                g${i}_${q} = fma(d${i}, b${q}, g${i}_${q});
//@end
//@end
            }
//@for sg_on in 0..SG
            }
//@end
        }

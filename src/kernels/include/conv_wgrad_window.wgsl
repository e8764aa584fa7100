        // One sample's sliding-window weight-gradient block (3×3, stride 1, dilation 1; conv.wgsl,
        // `grad_weight_w`): g[q][j][k] += dy[n, filters 4q .. 4q + 3, oy, ox] · x[n, channel j,
        // oy + ky − ph, ox + kx − pw] for tap k = (ky, kx), each output row walked left to right
        // with the 3 × 3 inputs under the position in registers (xw[j][ky][kx], zero outside the
        // image), one new column loaded per step, dy's values shared by shuffles. Needs xn, dn
        // (the sample's offsets in x and dy), do0, do1, ... (each filter's plane in dy), xo0,
        // xo1, ... (each channel's plane in x), lid and group_lane0.
        for (var oy = 0u; oy < p.oh; oy++) {
            let iy = i32(oy) - i32(p.ph);
            // Window rows ky: inside the image? where do they start?
//@for r in 0..3
            let ry${r} = u32(iy + ${r}) < p.h;
//@for j in 0..TN
            let rb${j}_${r} = xn + xo${j} + select(0u, u32(iy + ${r}) * p.w, ry${r});
//@end
//@end
            // Columns kx = 0, 1 of the row's first position; each step loads kx = 2.
//@for c in 0..2
            let ix${c} = i32(${c}) - i32(p.pw);
            let okx${c} = u32(ix${c}) < p.w;
//@for r in 0..3
//@for j in 0..TN
            var xw${j}_${r}_${c} = select(0.0, x[select(0u, rb${j}_${r} + u32(ix${c}), ry${r} && okx${c})], ry${r} && okx${c});
//@end
//@end
//@end
            for (var ox0 = 0u; ox0 < p.ow; ox0 += ${WX}u) {
                let sx = dn + oy * p.ow + min(ox0 + lid.x, p.ow - 1u);
//@for q in 0..TM/4
                let dchunk${q} = vec4<f32>(dy[do${4*q} + sx], dy[do${4*q+1} + sx], dy[do${4*q+2} + sx], dy[do${4*q+3} + sx]);
//@end
                for (var ox = ox0; ox < min(ox0 + ${WX}u, p.ow); ox++) {
//@for q in 0..TM/4
                    let drow${q} = subgroupShuffle(dchunk${q}, group_lane0 + ox - ox0);
//@end
                    let ix2 = i32(ox + 2u) - i32(p.pw);
                    let okx2 = u32(ix2) < p.w;
//@for r in 0..3
//@for j in 0..TN
                    let xw${j}_${r}_2 = select(0.0, x[select(0u, rb${j}_${r} + u32(ix2), ry${r} && okx2)], ry${r} && okx2);
//@end
//@end
//@for q in 0..TM/4
//@for j in 0..TN
//@for k in 0..9
                    g${q}_${j}_${k} = fma(drow${q}, vec4<f32>(xw${j}_${k/3}_${k%3}), g${q}_${j}_${k});
//@end
//@end
//@end
//@for r in 0..3
//@for j in 0..TN
                    xw${j}_${r}_0 = xw${j}_${r}_1;
                    xw${j}_${r}_1 = xw${j}_${r}_2;
//@end
//@end
                }
            }
        }

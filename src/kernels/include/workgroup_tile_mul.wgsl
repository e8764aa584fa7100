        // Multiplies the staged tiles (workgroup_tiles.wgsl) into the invocation's TM x TN
        // block: rows lid.y·TM .. of the tile, columns lid.x + WX·j (gemm_acc.wgsl's `part`).
        for (var kk = 0u; kk < KB; kk++) {
            let bo = kk * TILE_N + lid.x;
            let ao = kk * TILE_M + lid.y * ${TM}u;
//@for v in 0..TN/4
            let b${v} = vec4<Mul>(b_tile[bo + ${WX*4*v}u], b_tile[bo + ${WX*(4*v+1)}u], b_tile[bo + ${WX*(4*v+2)}u], b_tile[bo + ${WX*(4*v+3)}u]);
//@end
//@for i in 0..TM
            let a${i} = vec4<Mul>(a_tile[ao + ${i}u]);
//@for v in 0..TN/4
            part${i}_${v} = fma(a${i}, b${v}, part${i}_${v});
//@end
//@end
        }

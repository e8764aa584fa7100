        // Multiplies the staged tiles (workgroup_tiles.wgsl) into the invocation's TM x TN
        // block: rows lid.y·TM .. of the tile, columns lid.x + WX·j (gemm_acc.wgsl's `part`),
        // each step TM/4 + TN/4 vec4 loads.
        for (var kk = 0u; kk < KB; kk++) {
            let bo = kk * ${TN*WX/4}u + lid.x;
            let ao = kk * ${TM*WY/4}u + lid.y * ${TM/4}u;
//@for v in 0..TN/4
            let b${v} = b_tile[bo + ${WX*v}u];
//@end
//@for q in 0..TM/4
            let a4_${q} = a_tile[ao + ${q}u];
//@end
//@for i in 0..TM
            let a${i} = vec4<Mul>(a4_${i/4}[${i%4}]);
//@for v in 0..TN/4
            part${i}_${v} = fma(a${i}, b${v}, part${i}_${v});
//@end
//@end
        }

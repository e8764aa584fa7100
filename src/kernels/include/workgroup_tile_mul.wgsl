        // Multiplies the staged tiles (workgroup_tiles.wgsl) into the invocation's TM x TN
        // block: rows lid.y·TM .. of the tile, columns lid.x + WX·j (gemm_acc.wgsl's `part`),
        // each step TM/4 + TN/4 vec4 loads. The KB (16) steps are unrolled here, not left to
        // the driver, so that every load is one base address plus a constant offset.
        let bo = lid.x;
        let ao = lid.y * ${TM/4}u;
//@for kk in 0..16
        {
//@for v in 0..TN/4
            let b${v} = b_tile[bo + ${kk*TN*WX/4+WX*v}u];
//@end
//@for q in 0..TM/4
            let a4_${q} = a_tile[ao + ${kk*TM*WY/4+q}u];
//@end
//@for i in 0..TM
            let a${i} = vec4<Mul>(a4_${i/4}[${i%4}]);
//@for v in 0..TN/4
            part${i}_${v} = fma(a${i}, b${v}, part${i}_${v});
//@end
//@end
        }
//@end

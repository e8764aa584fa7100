        // Adds the chunk's partial sums to the f32 accumulators (mul_precision.wgsl).
//@for i in 0..TM
//@for v in 0..TN/4
        acc${i}_${v} += vec4<f32>(part${i}_${v});
        part${i}_${v} = vec4<Mul>(0.0);
//@end
//@end

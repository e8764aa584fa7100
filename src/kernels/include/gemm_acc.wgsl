    // The TM x TN block's accumulators (mul_precision.wgsl): f32 totals and the current
    // chunk's partial sums in the multiplication precision.
//@for i in 0..TM
//@for v in 0..TN/4
    var acc${i}_${v} = vec4<f32>(0.0);
    var part${i}_${v} = vec4<Mul>(0.0);
//@end
//@end

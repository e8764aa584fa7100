    // The forward convolution's reduction over taps and input channels (`forward`, `forward_s`):
    // needs xb, iy, ix per column j, wo per row i (with RB: wb per WX rows, `forward`), the
    // channels c_lo .. c_hi, hw, khw; accumulates into part and acc (gemm_acc.wgsl).
    for (var ky = 0u; ky < p.kh; ky++) {
        let dy = i32(ky * p.dh);
        for (var kx = 0u; kx < p.kw; kx++) {
            let dx = i32(kx * p.dw);
//@for j in 0..TN
            let ok${j} = u32(iy${j} + dy) < p.h && u32(ix${j} + dx) < p.w;
            let xa${j} = select(0u, xb${j} + u32(iy${j} + dy) * p.w + u32(ix${j} + dx), ok${j});
//@end
//@for v in 0..TN/4
            let m${v} = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<bool>(ok${4*v}, ok${4*v+1}, ok${4*v+2}, ok${4*v+3}));
//@end
            let tap = ky * p.kw + kx;
            for (var ci = c_lo; ci < c_hi; ci++) {
                let off = ci * hw;
//@for v in 0..TN/4
                let b${v} = vec4<Mul>(m${v} * vec4<f32>(lhs[xa${4*v} + off], lhs[xa${4*v+1} + off], lhs[xa${4*v+2} + off], lhs[xa${4*v+3} + off]));
//@end
                let wk = ci * khw + tap;
//@for rb_off in 0..1-RB
//@for i in 0..TM
                let a${i} = vec4<Mul>(Mul(rhs[wo${i} + wk]));
//@end
//@end
//@for rb_on in 0..RB
//@for m in 0..(TM+WX-1)/WX
                let wl${m} = f32(rhs[wb${m} + wk]);
//@end
//@for i in 0..TM
                let a${i} = vec4<Mul>(Mul(subgroupBroadcast(wl${i/WX}, ${i%WX}u)));
//@end
//@end
//@for i in 0..TM
//@for v in 0..TN/4
                part${i}_${v} = fma(a${i}, b${v}, part${i}_${v});
//@end
//@end
//@include conv_mul_chunk
            }
        }
    }

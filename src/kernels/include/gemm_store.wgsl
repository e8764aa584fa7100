//@include mul_flush
    // Stores the TM x TN block (the GEMM kernels' epilogue): rows row0.. below m, columns
    // col0 + WX*j, from row offset c_base of C.
//@for i in 0..TM
    if (row0 + ${i}u < m) {
        let o = c_base + (row0 + ${i}u) * p.n;
//@for v in 0..TN/4
        put(o, col0 + ${WX*4*v}u, acc${i}_${v}.x);
        put(o, col0 + ${WX*(4*v+1)}u, acc${i}_${v}.y);
        put(o, col0 + ${WX*(4*v+2)}u, acc${i}_${v}.z);
        put(o, col0 + ${WX*(4*v+3)}u, acc${i}_${v}.w);
//@end
    }
//@end

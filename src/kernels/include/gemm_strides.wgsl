    // The GEMM kernels' distances in A and B as stored (gemm_params.wgsl's lda, ldb).
    let a_row = select(p.lda, 1u, TRANS_A);  // between rows of op(A)
    let b_col = select(1u, p.ldb, TRANS_B);  // between columns of op(B)
    let a_step = select(1u, p.lda, TRANS_A); // between k of op(A)
    let b_step = select(p.ldb, 1u, TRANS_B); // between k of op(B)

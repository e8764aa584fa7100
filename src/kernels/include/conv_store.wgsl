    // Stores the TM x TN block `acc` where `out_at` (an OutBlock) says: the epilogue of
    // `forward`, `grad_input` and their tiled forms. Rows past the group's end are not stored.
//@for i in 0..TM
    if (out_at.row0 + ${i}u < out_at.rows) {
//@for v in 0..TN/4
        put_out(out_at, out_at.row0 + ${i}u, out_at.col0 + ${WX*4*v}u, acc${i}_${v}.x);
        put_out(out_at, out_at.row0 + ${i}u, out_at.col0 + ${WX*(4*v+1)}u, acc${i}_${v}.y);
        put_out(out_at, out_at.row0 + ${i}u, out_at.col0 + ${WX*(4*v+2)}u, acc${i}_${v}.z);
        put_out(out_at, out_at.row0 + ${i}u, out_at.col0 + ${WX*(4*v+3)}u, acc${i}_${v}.w);
//@end
    }
//@end

// The GEMM kernels' multiplication precision (template F16; docs/architecture.md "Half
// precision"). F16 = 1: operands are rounded to f16 as they are loaded, multiplied and summed
// in f16 into the `part` accumulators, which are added to the f32 accumulators `acc` at the
// end of every chunk of k (mul_flush) — at most 16 steps, so the f16 sums stay short.
// F16 = 0: `Mul` is f32, the conversions vanish and `part` is flushed once, at the end.
//@for h in 0..F16
enable f16;
alias Mul = f16;
//@end
//@for h in F16..1
alias Mul = f32;
//@end

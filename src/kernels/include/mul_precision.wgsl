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
// F16_B = 1 (only with F16 = 1): binding 2, the weight operand (GEMM `b`, convolution `rhs`),
// holds f16 values: the executor bound the f16 copy of the parameters there
// (src/executor/compile.rs, `half_weights`). Loads from it read `BElem`.
//@for h in 0..F16_B
alias BElem = f16;
//@end
//@for h in F16_B..1
alias BElem = f32;
//@end

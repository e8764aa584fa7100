//@for h in 0..F16
                // f16 sums leave for f32 every 8 input channels (mul_precision.wgsl): with
                // what a tap leaves over, a chunk is under 16 steps.
                if ((ci & 7u) == 7u) {
//@include mul_flush
                }
//@end

//! Which GPU convolutions run the workgroup-tiled kernels (conv_tiled.wgsl), and with what
//! blocking (docs/architecture.md, "Tiled convolutions").

use crate::kernels::{Blocking, PlanCtx};

/// Whether a convolution's forward or input gradient runs the workgroup-tiled kernels
/// (conv_tiled.wgsl): on GPUs where `PlanCtx::tiled_conv` says so.
pub(super) fn tiled_on_gpu(ctx: &PlanCtx) -> bool {
    ctx.tiled_conv && !ctx.is_cpu
}

/// The workgroup-tiled kernels' blocking for a rows × cols output: the GPU's 4×4 blocks in
/// 16×16 (64×64 tiles), narrowed where there are fewer columns (a per-sample 4×4 plane: 16
/// positions) and with fewer rows of invocations where there are fewer rows, within 16 KiB of
/// workgroup memory. The kernels need WY a multiple of TN and WX·WY of their KB = 16
/// (conv_tiled.wgsl): every step below halves WY while it stays at least 4 (TN) and WX·WY at
/// least 16.
pub(super) fn tiled_blocking(rows: usize, cols: usize) -> Blocking {
    const WORKGROUP_BYTES: usize = 16 << 10;
    let mut b = Blocking::GPU.narrow(cols);
    let halves = |b: &Blocking| b.wy / 2 >= b.tn && b.wx * b.wy / 2 >= 16;
    while halves(&b) && ((b.rows() + b.cols()) * 16 * 4 > WORKGROUP_BYTES || b.rows() / 2 >= rows) {
        b.wy /= 2;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiled kernels' blockings keep what conv_tiled.wgsl needs (WY a multiple of TN, WX·WY
    /// of KB = 16, tiles within 16 KiB) and shrink to few columns and rows: ResNet-18's
    /// per-sample 4×4 layer takes 128 × 16 tiles, a batched 64-filter layer 64 × 64.
    #[test]
    fn tiled_blockings_fit_the_tiled_kernels() {
        for (rows, cols) in [
            (512, 16),
            (64, 32768),
            (16, 9),
            (3, 1),
            (1000, 3),
            (256, 64),
        ] {
            let b = tiled_blocking(rows, cols);
            assert!(b.wy.is_multiple_of(b.tn), "{rows}x{cols}: {b:?}");
            assert!((b.wx * b.wy).is_multiple_of(16), "{rows}x{cols}: {b:?}");
            assert!(
                (b.rows() + b.cols()) * 16 * 4 <= 16 << 10,
                "{rows}x{cols}: {b:?}"
            );
        }
        assert_eq!(
            (
                tiled_blocking(512, 16).rows(),
                tiled_blocking(512, 16).cols()
            ),
            (128, 16)
        );
        assert_eq!(tiled_blocking(64, 32768), Blocking::GPU);
        assert_eq!(tiled_blocking(16, 32768).rows(), 16);
    }
}

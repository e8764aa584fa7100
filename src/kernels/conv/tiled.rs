//! Which GPU convolutions run the workgroup-tiled kernels (conv_tiled.wgsl), and with what
//! blocking (docs/architecture.md, "Tiled convolutions").

use super::{ConvCall, ConvGeom, Samples};
use crate::gpu::tuning::{ConvKernel, ConvPolicy, Precision};
use crate::kernels::{Blocking, KernelCall, PlanCtx};

/// A convolution class the autotune times (`PlanCtx::conv_requests`): each kernel's call as
/// the plan launches it, with the f32 lengths of the buffers at its bindings 1, 2 and 3 (the
/// output's covering a split reduction's partial outputs).
#[derive(Clone, Debug)]
pub struct ConvTuneRequest {
    pub class: String,
    pub candidates: Vec<(ConvKernel, KernelCall, [usize; 3])>,
}

/// The two convolution calls that have a tiled form.
#[derive(Clone, Copy, Debug)]
pub(super) enum Direction {
    /// `[x, w, y]`
    Forward,
    /// `[w, dy, dx]`
    GradInput,
}

/// Which kernels a convolution's `direction` over `g` and `samples` runs (`make` plans it with
/// either): the register-blocked ones on CPU adapters; on GPUs as `PlanCtx::conv` says, with
/// `auto` the table's choice for its class (`class_of`), and until the class is tuned the
/// register-blocked ones (while the autotune plans a graph, the class is requested then).
pub(super) fn kernel_for(
    ctx: &PlanCtx,
    direction: Direction,
    g: &ConvGeom,
    samples: Samples,
    make: &impl Fn(ConvKernel) -> ConvCall,
) -> ConvKernel {
    if ctx.is_cpu {
        return ConvKernel::Registers;
    }
    match ctx.conv {
        ConvPolicy::Fixed(k) => k,
        ConvPolicy::Autotune => {
            let class = class_of(direction, g, samples, ctx);
            if let Some(entry) = ctx.tuning.get_conv(&class) {
                return entry.kernel;
            }
            if let Some(Ok(mut requests)) = ctx.conv_requests.as_ref().map(|r| r.lock()) {
                let candidates = [ConvKernel::Registers, ConvKernel::Tiled]
                    .into_iter()
                    .map(|k| {
                        let c = make(k);
                        let lens = buffer_lens(direction, g, samples, c.partial_bytes);
                        (k, c.call, lens)
                    })
                    .collect();
                requests.push(ConvTuneRequest { class, candidates });
            }
            ConvKernel::Registers
        }
    }
}

/// The autotune class of a convolution call: its direction, geometry and samples (a chunk's
/// count, not its offset), and what else changes its calls (f16, whole reductions).
fn class_of(direction: Direction, g: &ConvGeom, samples: Samples, ctx: &PlanCtx) -> String {
    let samples = match samples {
        Samples::Shared => "shared".to_string(),
        Samples::PerSample { count, .. } => format!("per-sample {count}"),
    };
    let dir = match direction {
        Direction::Forward => "forward",
        Direction::GradInput => "grad-input",
    };
    let f16 = if ctx.precision == Precision::F16 {
        " f16"
    } else {
        ""
    };
    let whole = if ctx.split_k { "" } else { " whole" };
    format!(
        "conv {dir} {samples} n{} c{} {}x{} o{} k{}x{} s{}x{} p{}x{} d{}x{} g{}{f16}{whole}",
        g.n,
        g.c,
        g.h,
        g.w,
        g.o,
        g.kh,
        g.kw,
        g.stride.0,
        g.stride.1,
        g.pad.0,
        g.pad.1,
        g.dil.0,
        g.dil.1,
        g.groups
    )
}

/// The f32 lengths of a call's buffers at bindings 1, 2 and 3 (`ConvTuneRequest`).
fn buffer_lens(
    direction: Direction,
    g: &ConvGeom,
    samples: Samples,
    partial_bytes: u64,
) -> [usize; 3] {
    let len = |shape: Vec<usize>| shape.iter().product::<usize>();
    let weights = match samples {
        Samples::Shared => len(g.w_shape()),
        Samples::PerSample { count, .. } => count * len(g.w_shape()),
    };
    let (x, y) = (len(g.x_shape()), len(g.y_shape()));
    let partials = partial_bytes as usize / 4;
    match direction {
        Direction::Forward => [x, weights, y.max(partials)],
        Direction::GradInput => [weights, y, x.max(partials)],
    }
}

/// The workgroup-tiled kernels' blocking for a rows × cols output: the GPU's 4×4 blocks in
/// 16×16 (64×64 tiles), narrowed where there are fewer columns, down to 16 (a per-sample 4×4
/// plane) and with fewer rows of invocations where there are fewer rows, within 16 KiB of
/// workgroup memory. The kernels need WY a multiple of TN and WX·WY of their KB = 16
/// (conv_tiled.wgsl): every step below halves WY while it stays at least 4 (TN) and WX·WY at
/// least 16.
pub(super) fn tiled_blocking(rows: usize, cols: usize) -> Blocking {
    const WORKGROUP_BYTES: usize = 16 << 10;
    // Not under 16 columns (WX ≥ 4): each invocation stages TM·16/WX weights per chunk, and
    // prefetches them into registers (conv_tiled.wgsl), so narrower tiles would hold 32 or 64.
    let mut b = Blocking::GPU.narrow(cols.max(16));
    let halves = |b: &Blocking| b.wy / 2 >= b.tn && b.wx * b.wy / 2 >= 16;
    while halves(&b) && ((b.rows() + b.cols()) * 16 * 4 > WORKGROUP_BYTES || b.rows() / 2 >= rows) {
        b.wy /= 2;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::tuning::ConvTuneEntry;
    use crate::graph::params::ConvOpts;
    use std::sync::{Arc, Mutex};

    /// With the autotune, a class the table lacks runs the register-blocked kernels and, while
    /// the autotune plans, asks for both kernels' calls with buffers that cover what they
    /// read and write; a class in the table runs its kernel. A chunk of per-sample weights is
    /// its own class by count, not offset. CPU adapters never ask.
    #[test]
    fn the_autotune_asks_for_classes_the_table_lacks() {
        let g = ConvGeom::new(&[8, 64, 4, 4], 64, ConvOpts::k(3).pad(1)).unwrap();
        let requests = Arc::new(Mutex::new(vec![]));
        let ctx = PlanCtx {
            conv: ConvPolicy::Autotune,
            conv_requests: Some(requests.clone()),
            ..PlanCtx::for_device(wgpu::DeviceType::DiscreteGpu)
        };
        let chunk = Samples::PerSample {
            offset: 4,
            count: 4,
        };
        let make = |k| {
            let args = [
                crate::kernels::Arg::In(0),
                crate::kernels::Arg::In(1),
                crate::kernels::Arg::Out(0),
            ];
            super::super::forward_call_with(
                k,
                &g,
                &ctx,
                chunk,
                args,
                None,
                crate::kernels::Arg::Scratch(0),
            )
        };
        let kernel = kernel_for(&ctx, Direction::Forward, &g, chunk, &make);
        assert_eq!(kernel, ConvKernel::Registers);
        let asked = requests.lock().unwrap().clone();
        assert_eq!(asked.len(), 1);
        let class = "conv forward per-sample 4 n8 c64 4x4 o64 k3x3 s1x1 p1x1 d1x1 g1";
        assert_eq!(asked[0].class, class);
        let entries: Vec<_> = asked[0]
            .candidates
            .iter()
            .map(|(k, c, _)| (*k, c.entry))
            .collect();
        assert_eq!(
            entries,
            [
                (ConvKernel::Registers, "forward"),
                (ConvKernel::Tiled, "forward_tiled")
            ]
        );
        for (k, call, [x, w, y]) in &asked[0].candidates {
            let parts = call.params[23] as usize; // SLOT_K_SPLITS
            assert_eq!((*x, *w), (8 * 64 * 16, 4 * 64 * 64 * 9), "{k:?}");
            assert!(
                *y >= (8 * 64 * 16).max(parts * 4 * 64 * 16),
                "{k:?}: {y}, {parts} parts"
            );
        }
        let entry = ConvTuneEntry {
            kernel: ConvKernel::Tiled,
            registers_ms: 2.0,
            tiled_ms: Some(1.0),
        };
        ctx.tuning.insert_conv(class, entry).unwrap();
        assert_eq!(
            kernel_for(&ctx, Direction::Forward, &g, chunk, &make),
            ConvKernel::Tiled
        );
        let cpu = PlanCtx {
            is_cpu: true,
            ..ctx.clone()
        };
        let other = Samples::PerSample {
            offset: 0,
            count: 3,
        };
        assert_eq!(
            kernel_for(&cpu, Direction::Forward, &g, other, &make),
            ConvKernel::Registers
        );
        assert_eq!(
            requests.lock().unwrap().len(),
            1,
            "no request for a CPU adapter"
        );
    }

    /// The tiled kernels' blockings keep what conv_tiled.wgsl needs (WY a multiple of TN, WX·WY
    /// of KB = 16, tiles within 16 KiB, at most 16 prefetched values per tile) and shrink to few columns and rows: ResNet-18's
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
            // At most 16 prefetched values of each tile per invocation.
            assert!(
                b.tm * 16 / b.wx <= 16 && b.tn * 16 / b.wy <= 16,
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

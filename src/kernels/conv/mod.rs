//! 2-D convolution (shader `conv.wgsl`): forward, input gradient and weight gradient, all
//! implicit GEMMs. The weight gradient splits its long reduction (batch × output pixels) over
//! several workgroups when the output alone would leave the device idle.

pub mod reference;
mod split_k;
mod tiled;
mod window;

use split_k::reduction_splits;
pub use split_k::ConvCall;
pub use tiled::ConvTuneRequest;
use tiled::{kernel_for, tiled_blocking, Direction};
pub use window::windowed_on_cpu;
use window::{window_call, windowed};

use super::{u, Arg, Blocking, GemmKernel, GemmPolicy, KernelCall, Plan, PlanCtx};
use crate::gpu::tuning::ConvKernel;
pub use crate::graph::params::{ConvGeom, ConvOpts};

impl ConvGeom {
    /// Uniform parameters; the weight gradient reduces over samples
    /// `n_offset .. n_offset + n_count` in groups of `n_per_split`.
    pub(crate) fn params(
        &self,
        tiles_n: usize,
        n_per_split: usize,
        n_offset: usize,
        n_count: usize,
    ) -> Vec<u32> {
        vec![
            u(self.n),
            u(self.c),
            u(self.h),
            u(self.w),
            u(self.o),
            u(self.kh),
            u(self.kw),
            u(self.groups),
            u(self.oh),
            u(self.ow),
            u(self.stride.0),
            u(self.stride.1),
            u(self.pad.0),
            u(self.pad.1),
            u(self.dil.0),
            u(self.dil.1),
            u(tiles_n),
            u(n_per_split),
            u(n_offset),
            u(n_count),
            0, // o_static (conv_rows.wgsl)
            0,
            0,
            0, // k_splits (`reduction_splits`)
        ]
    }

    /// A stride-1 layer's input gradient as a forward convolution of dy, for `forward_w` with
    /// FLIP: dy's channels in, x's out, the planes swapped, padding k − 1 − p (dx[i] = Σ_k
    /// dy[i + p − k]·w[k] = Σ_k' dy[i − (k − 1 − p) + k']·w[k − 1 − k']). None at other
    /// strides, dilations or paddings of k or more.
    fn input_grad_as_forward(&self) -> Option<ConvGeom> {
        let fits = self.stride == (1, 1)
            && self.dil == (1, 1)
            && self.pad.0 < self.kh
            && self.pad.1 < self.kw;
        fits.then(|| ConvGeom {
            c: self.o,
            h: self.oh,
            w: self.ow,
            o: self.c,
            pad: (self.kh - 1 - self.pad.0, self.kw - 1 - self.pad.1),
            oh: self.h,
            ow: self.w,
            ..*self
        })
    }

    /// The input gradient by phases (conv_common.wgsl, `PHASED`): at strides over 1 with
    /// dilation 1, (the phases, the positions of a phase's grid); None where every tap
    /// reaches every input position.
    fn input_grad_phases(&self) -> Option<(usize, usize)> {
        let (sh, sw) = self.stride;
        let phased = (sh, sw) != (1, 1) && self.dil == (1, 1);
        phased.then(|| (sh * sw, self.h.div_ceil(sh) * self.w.div_ceil(sw)))
    }
}

/// Slot of conv_common.wgsl's `o_static` in `ConvGeom::params` (set by split layers' calls).
const SLOT_O_STATIC: usize = 20;
/// `forward_w`'s weight rows shared by the samples, and the rows its tiles span
/// (`window_call`).
const SLOT_SHARED_ROWS: usize = 21;
const SLOT_TILE_ROWS: usize = 22;
/// The parts `forward` and `grad_input` split their reduction into (`reduction_splits`).
const SLOT_K_SPLITS: usize = 23;

/// Blocking fitted to a rows x cols output, and the number of (row, column) tiles.
fn tiles(rows: usize, cols: usize, ctx: &PlanCtx) -> (Blocking, usize, usize) {
    tiled(ctx.blocking.fit(rows, cols), rows, cols)
}

/// `b` with the number of (row, column) tiles it takes for a rows x cols output.
fn tiled(b: Blocking, rows: usize, cols: usize) -> (Blocking, usize, usize) {
    (b, rows.div_ceil(b.rows()), cols.div_ceil(b.cols()))
}

/// Which samples a convolution call covers, and whether each has its own weight.
#[derive(Clone, Copy, Debug)]
pub enum Samples {
    /// All samples, one shared weight.
    Shared,
    /// Samples `offset .. offset + count`, weight `[count, o, c/g, kh, kw]`.
    PerSample { offset: usize, count: usize },
}

impl Samples {
    /// Whether each sample has its own weight (the shaders' `PER_SAMPLE`).
    fn per_sample(self) -> bool {
        matches!(self, Samples::PerSample { .. })
    }

    /// (tiles of samples, columns per tile space, n_offset, n_count).
    fn layout(self, g: &ConvGeom, plane: usize) -> (usize, usize, usize, usize) {
        match self {
            Samples::Shared => (1, g.n * plane, 0, g.n),
            Samples::PerSample { offset, count } => (count, plane, offset, count),
        }
    }
}

/// Forward convolution `(x = In(0), weight = In(1)) → Out(0)`.
pub fn plan_forward(g: &ConvGeom, ctx: &PlanCtx) -> Plan {
    let mut plan = Plan::default();
    let args = [Arg::In(0), Arg::In(1), Arg::Out(0)];
    forward_call(g, ctx, Samples::Shared, args, None, Arg::Scratch(0)).append(&mut plan, 0);
    plan
}

/// On CPU adapters, per-sample convolutions with few positions and many channels run
/// transposed (positions as rows, channels as columns) so the large column block is not
/// mostly empty. GPUs keep positions as columns: there neighbouring invocations must read
/// neighbouring addresses (the transposed weight reads measured 5x slower on an H100).
fn transposed(ctx: &PlanCtx, samples: Samples, positions: usize, channels: usize) -> bool {
    ctx.is_cpu && samples.per_sample() && positions < 64 && positions < channels
}

/// Where a per-sample forward convolution finds each filter's weights when only some filters
/// are per sample (`conv_rows.wgsl`, split PAD-Conv layers): the weight holds the shared
/// weight's `statics` filters, then each sample's others; `order` [2, O] places filter o
/// (`Op::SplitDynConv2d`).
#[derive(Clone, Copy, Debug)]
pub struct RowMap {
    pub order: Arg,
    pub statics: usize,
}

/// Whether a convolution runs as `forward_dw` / `grad_input_dw` (and with shared weights
/// `grad_weight_dw`): a depthwise layer (one filter per input channel) on a CPU adapter.
pub(crate) fn depthwise_on_cpu(g: &ConvGeom, ctx: &PlanCtx) -> bool {
    ctx.is_cpu && g.groups == g.c && g.o == g.c
}

/// The template of the depthwise entries: TN taps, unrolled: kh·kw, or where the input
/// gradient goes by phases (`ConvGeom::input_grad_phases`), the most taps of a phase.
pub(crate) fn depthwise_taps(g: &ConvGeom, phased: bool) -> Blocking {
    let tn = match phased {
        true => g.kh.div_ceil(g.stride.0) * g.kw.div_ceil(g.stride.1),
        false => g.kh * g.kw,
    };
    Blocking {
        tm: 1,
        tn,
        wx: 1,
        wy: 1,
    }
}

/// A depthwise kernel call (`forward_dw`, `grad_input_dw`) over the rows (`height` each) of
/// the planes of `samples`; `phased`: the input gradient's columns by phases.
fn depthwise_call(
    g: &ConvGeom,
    samples: Samples,
    (entry, phased): (&'static str, bool),
    args: &[Arg],
    height: usize,
) -> KernelCall {
    let (_, _, n_offset, n_count) = samples.layout(g, 1);
    KernelCall::new("conv", entry)
        .blocking(depthwise_taps(g, phased))
        .constant("SH", g.stride.0 as f64)
        .constant("SW", g.stride.1 as f64)
        .constant("PHASED", phased as u8 as f64)
        .constant("PER_SAMPLE", samples.per_sample() as u8 as f64)
        .args(args)
        .params(&g.params(1, 1, n_offset, n_count))
        .threads(n_count * g.c * height, 64)
}

/// Forward convolution call `[x, w, y]`; `rows` for the weights of `RowMap` (per sample only),
/// `partials` the scratch of a split reduction's parts (`ConvCall`). A row map has no tiled
/// form (conv/tiled.rs). Per-sample weights that the call multiplies in f16 it reads as f16
/// where `PlanCtx::half_weights` says so (`KernelCall::reads_half_weights`): their writer
/// (DY-Conv's kernel assembly) stores them so.
pub fn forward_call(
    g: &ConvGeom,
    ctx: &PlanCtx,
    samples: Samples,
    args: [Arg; 3],
    rows: Option<RowMap>,
    partials: Arg,
) -> ConvCall {
    let make = |k| {
        let mut conv = forward_call_with(k, g, ctx, samples, args, rows, partials);
        if samples.per_sample() && ctx.half_weights && conv.call.multiplies_in_f16() {
            conv.call = conv.call.half_weights();
        }
        conv
    };
    let kernel = match rows {
        Some(_) => ConvKernel::Registers,
        None => kernel_for(ctx, Direction::Forward, g, samples, &make),
    };
    make(kernel)
}

/// `forward_call` on `kernel`'s kernels, its weights read as f32.
fn forward_call_with(
    kernel: ConvKernel,
    g: &ConvGeom,
    ctx: &PlanCtx,
    samples: Samples,
    [x, w, y]: [Arg; 3],
    rows: Option<RowMap>,
    partials: Arg,
) -> ConvCall {
    if rows.is_none() && depthwise_on_cpu(g, ctx) {
        return ConvCall::whole(depthwise_call(
            g,
            samples,
            ("forward_dw", false),
            &[x, w, y],
            g.oh,
        ));
    }
    let per_sample = samples.per_sample();
    let (shader, args, statics) = match rows {
        Some(r) => {
            assert!(per_sample, "a row map needs per-sample weights");
            ("conv_rows", vec![x, w, y, r.order], r.statics)
        }
        None => ("conv", vec![x, w, y], 0),
    };
    if let Some(call) = window_call(g, ctx, samples, shader, &args, statics, false) {
        return ConvCall::whole(call.precision(ctx.precision));
    }
    let (mut tiles_s, cols, n_offset, n_count) = samples.layout(g, g.oh * g.ow);
    let (og, positions) = (g.o / g.groups, g.oh * g.ow);
    let tiled_kernel = kernel == ConvKernel::Tiled && rows.is_none();
    let shader = if tiled_kernel { "conv_tiled" } else { shader };
    let (entry, (blk, tm, tn)) = if tiled_kernel {
        ("forward_tiled", tiled(tiled_blocking(og, cols), og, cols))
    } else if transposed(ctx, samples, positions, og) {
        (
            "forward_t",
            tiled(ctx.blocking.fit_rows_fine(positions, og), positions, og),
        )
    } else if per_sample {
        // A sample's positions as columns, fitted finely (`Blocking::fit_fine`); on CPU
        // adapters the rows too, for the few filters of a split layer's dynamic part, and
        // samples as lanes where the cost model says that pays more. Not in place of
        // `forward_t`: for DY-Conv's 64-128 filters at 7×7 and 4×4 it measured no faster
        // (ResNet-18 ×0.25, sum of the dispatches, 3 interleaved runs).
        let mut blk = ctx.blocking.fit_fine(og, cols);
        blk = if ctx.is_cpu {
            blk.fine_rows(og)
        } else {
            blk.few_columns_on_gpu(cols)
        };
        let lanes = ctx
            .is_cpu
            .then(|| ctx.blocking.fit_samples_as_lanes(blk, og, positions))
            .flatten();
        match lanes {
            Some(b) => {
                // Tiles of WX samples x TM·WY filters x TN positions.
                tiles_s = n_count.div_ceil(b.wx);
                let tiles = (og.div_ceil(b.tm * b.wy), positions.div_ceil(b.tn));
                ("forward_s", (b, tiles.0, tiles.1))
            }
            None => ("forward", tiled(blk, og, cols)),
        }
    } else {
        ("forward", tiles(og, cols, ctx))
    };
    let workgroups = tiles_s * g.groups * tm * tn;
    let per_sample_out = g.o * positions;
    let parts = match entry {
        "forward" | "forward_tiled" => {
            reduction_splits(ctx, workgroups, g.c / g.groups, n_count * per_sample_out)
        }
        _ => 1,
    };
    let mut params = g.params(tn, 1, n_offset, n_count);
    params[SLOT_O_STATIC] = u(statics);
    params[SLOT_K_SPLITS] = u(parts);
    let call = KernelCall::new(shader, entry)
        .blocking(blk)
        .constant("PER_SAMPLE", per_sample as u8 as f64)
        .args(&args)
        .params(&params)
        .groups((workgroups * parts) as u32)
        .precision(ctx.precision);
    let call = with_row_broadcast(call, ctx, &blk);
    ConvCall::in_parts(call, parts, per_sample_out, (n_offset, n_count), partials)
}

/// `call` (on blocking `blk`) with the operand of its blocks' rows, the same for a row of WX
/// lanes, loaded once per row and broadcast (template RB), where its entry has that form — the
/// register kernels `forward` and `grad_input` (rows: the weights' filters or channels) and the
/// transposed `forward_t` and `grad_input_t` (rows: one sample's positions, their inputs) — on
/// CPU adapters whose subgroups are the blocking's WX lanes (`window::broadcasts`), where every
/// lane would otherwise loop over the lanes of each load.
fn with_row_broadcast(call: KernelCall, ctx: &PlanCtx, blk: &Blocking) -> KernelCall {
    let has_form = matches!(
        call.entry,
        "forward" | "forward_t" | "grad_input" | "grad_input_t"
    );
    if has_form && ctx.is_cpu && window::broadcasts(ctx) && blk.wx == ctx.blocking.wx {
        call.row_broadcast()
    } else {
        call
    }
}

/// Input gradient `(dy = In(0), weight = In(1)) → Out(0)`.
pub fn plan_grad_input(g: &ConvGeom, ctx: &PlanCtx) -> Plan {
    let mut plan = Plan::default();
    let args = [Arg::In(0), Arg::In(1), Arg::Out(0)];
    grad_input_call(g, ctx, Samples::Shared, args, Arg::Scratch(0)).append(&mut plan, 0);
    plan
}

/// Input gradient call `[dy, w, dx]`; `samples` and `partials` as in `forward_call`.
pub fn grad_input_call(
    g: &ConvGeom,
    ctx: &PlanCtx,
    samples: Samples,
    args: [Arg; 3],
    partials: Arg,
) -> ConvCall {
    let make = |k| grad_input_call_with(k, g, ctx, samples, args, partials);
    make(kernel_for(ctx, Direction::GradInput, g, samples, &make))
}

/// `grad_input_call` on `kernel`'s kernels.
fn grad_input_call_with(
    kernel: ConvKernel,
    g: &ConvGeom,
    ctx: &PlanCtx,
    samples: Samples,
    [dy, w, dx]: [Arg; 3],
    partials: Arg,
) -> ConvCall {
    if depthwise_on_cpu(g, ctx) {
        let phased = g.input_grad_phases().is_some();
        let entry = ("grad_input_dw", phased);
        let call = depthwise_call(g, samples, entry, &[w, dy, dx], g.h);
        return ConvCall::whole(call);
    }
    let window = g
        .input_grad_as_forward()
        .and_then(|gt| window_call(&gt, ctx, samples, "conv", &[dy, w, dx], 0, true));
    if let Some(call) = window {
        return ConvCall::whole(call);
    }
    let cg = g.c / g.groups;
    // A strided layer's input positions phase by phase, each tile one phase, walking only the
    // taps that reach it (`ConvGeom::input_grad_phases`).
    let phased = g.input_grad_phases();
    let (phases, plane) = phased.unwrap_or((1, g.h * g.w));
    let (tiles_s, cols, n_offset, n_count) = samples.layout(g, plane);
    if transposed(ctx, samples, g.h * g.w, cg) {
        let (blk, tm, tn) = tiled(ctx.blocking.fit_rows_fine(plane, cg), plane, cg);
        let call = KernelCall::new("conv", "grad_input_t")
            .blocking(blk)
            .constant("SH", g.stride.0 as f64)
            .constant("SW", g.stride.1 as f64)
            .constant("PHASED", phased.is_some() as u8 as f64)
            .constant("PER_SAMPLE", 1.0)
            .args(&[w, dy, dx])
            .params(&g.params(tn, 1, n_offset, n_count))
            .groups((tiles_s * phases * g.groups * tm * tn) as u32);
        return ConvCall::whole(with_row_broadcast(call, ctx, &blk));
    }
    let mut blk = ctx.blocking.fit(cg, cols);
    if samples.per_sample() && !ctx.is_cpu {
        blk = blk.few_columns_on_gpu(cols);
    }
    let (shader, entry) = match kernel == ConvKernel::Tiled {
        true => {
            blk = tiled_blocking(cg, cols);
            ("conv_tiled", "grad_input_tiled")
        }
        false => ("conv", "grad_input"),
    };
    let (blk, tm, tn) = tiled(blk, cg, cols);
    let workgroups = tiles_s * phases * g.groups * tm * tn;
    let per_sample_out = g.c * g.h * g.w;
    let parts = reduction_splits(ctx, workgroups, g.o / g.groups, n_count * per_sample_out);
    let mut params = g.params(tn, 1, n_offset, n_count);
    params[SLOT_K_SPLITS] = u(parts);
    let call = KernelCall::new(shader, entry)
        .blocking(blk)
        .constant("SH", g.stride.0 as f64)
        .constant("SW", g.stride.1 as f64)
        .constant("PHASED", phased.is_some() as u8 as f64)
        .constant("PER_SAMPLE", samples.per_sample() as u8 as f64)
        .args(&[w, dy, dx])
        .params(&params)
        .groups((workgroups * parts) as u32);
    let call = with_row_broadcast(call, ctx, &blk);
    ConvCall::in_parts(call, parts, per_sample_out, (n_offset, n_count), partials)
}

/// The weight gradient's kernel call, with its blocking and (row, column) tile counts. It
/// shares dy by subgroup shuffles (conv_wgrad_sample.wgsl, SG = 1) where plain GEMMs run the
/// subgroup kernel by policy (lavapipe; `PADNET_GEMM=subgroup` elsewhere) and the blocking
/// fits the device's subgroups; with dy shared, CPU adapters take the subgroup GEMM's taller
/// blocks (`Blocking::subgroup_base`: lavapipe, 4 interleaved rounds, medians 64→64 14.4 →
/// 23.9 GFLOP/s, 512→512 at 4×4 12.2 → 16.2, 16→16 10.4 → 10.9, 1×1 10.5 → 13.2). Before
/// that, CPU adapters take 3×3 stride-1 layers as a sliding window (`weight_window`).
fn grad_weight_call(g: &ConvGeom, ctx: &PlanCtx) -> (KernelCall, usize, usize) {
    let (rows, cols) = (g.o / g.groups, (g.c / g.groups) * g.kh * g.kw);
    let subgroups = shuffle_lanes(ctx);
    // 32 filters × 1 channel: lavapipe, 5 samples each, 32 × 1, 16 × 2, 32 × 2, 64 × 1 and
    // 16 × 1 within 10 % of each other at 64→64 32×32 and 16→16 28×28, 64 × 1 and 16 × 1 20 %
    // slower at 512→512 4×4; 32 × 1 is the smallest shader of the fast ones.
    if let Some(blk) = weight_window(g, ctx, 32) {
        let (blk, tm, tn) = tiled(blk, rows, g.c / g.groups);
        let call = KernelCall::new("conv", "grad_weight_w").blocking(blk);
        return (call.shuffles(), tm, tn);
    }
    if let Some(lanes) = subgroups {
        let blk = ctx.blocking.subgroup_base().fit_fine_wide(rows, cols);
        let (blk, tm, tn) = tiled(blk, rows, cols);
        if blk.fits_subgroups(lanes) {
            let call = KernelCall::new("conv", "grad_weight").blocking(blk);
            return (call.shuffles(), tm, tn);
        }
    }
    let (blk, tm, tn) = tiles(rows, cols, ctx);
    (KernelCall::new("conv", "grad_weight").blocking(blk), tm, tn)
}

/// The blocking of a sliding-window weight gradient (`grad_weight_w`, conv.wgsl; dynconv_wgrad's
/// `main_w`) with `tm` filters × one input channel × the nine taps per invocation, where it
/// fits: CPU adapters whose GEMMs share loads by shuffles (the subgroup policy: lavapipe), 3×3
/// kernels at stride 1 and dilation 1, at least WX input channels per group (the lanes, WX
/// dividing every subgroup; a workgroup the largest subgroup). Tiles of TM·WY filters × WX
/// channels.
pub fn weight_window(g: &ConvGeom, ctx: &PlanCtx, tm: usize) -> Option<Blocking> {
    let lanes = shuffle_lanes(ctx)?;
    let [fewest, most] = lanes.map(|l| l as usize);
    let wx = ctx.blocking.wx.min(fewest);
    let blk = Blocking {
        tm: tm.min((g.o / g.groups).next_multiple_of(4)),
        tn: 1,
        wx,
        wy: (most / wx).max(1),
    };
    let fits = ctx.is_cpu && windowed(g) && g.c / g.groups >= wx && blk.fits_subgroups(lanes);
    fits.then_some(blk)
}

/// The subgroup lanes ([fewest, most]) the weight gradients share loads over: the device's,
/// where plain GEMMs run the subgroup kernel by policy.
pub(crate) fn shuffle_lanes(ctx: &PlanCtx) -> Option<[u32; 2]> {
    ctx.subgroup_lanes
        .filter(|_| ctx.gemm == GemmPolicy::Fixed(GemmKernel::Subgroup))
}

/// Number of batch splits for a weight gradient of `tiles` workgroups per sample range:
/// enough workgroups to fill the device (few on a CPU adapter, where each split adds a
/// reduction pass; many on a GPU).
fn weight_grad_splits(g: &ConvGeom, ctx: &PlanCtx, tiles: usize) -> usize {
    let wgs = g.groups * tiles;
    let target: usize = if ctx.is_cpu { 8 } else { 512 };
    target.div_ceil(wgs).clamp(1, g.n)
}

/// Loop iterations a weight-gradient invocation runs per sample (conv_wgrad_sample.wgsl,
/// conv_wgrad_window.wgsl, `grad_weight_dw`; `PlanCtx::loop_items`), an upper bound: every
/// output row, in it every column and every chunk of `lanes` columns, each loop once more to
/// end, and the loop over the samples.
pub fn wgrad_loop_per_sample(g: &ConvGeom, lanes: usize) -> usize {
    let per_row = g.ow + 2 * g.ow.div_ceil(lanes.max(1)) + 1;
    (g.oh + 1) * per_row + 2
}

pub fn plan_grad_weight(g: &ConvGeom, ctx: &PlanCtx) -> Plan {
    if depthwise_on_cpu(g, ctx) {
        return plan_grad_weight_depthwise(g, ctx);
    }
    let (call, tm, tn) = grad_weight_call(g, ctx);
    let most = ctx.loop_items(wgrad_loop_per_sample(g, ctx.blocking.wx));
    let (n_per_split, splits) =
        crate::kernels::split_runs(g.n, weight_grad_splits(g, ctx, tm * tn), most);
    let call = call
        .params(&g.params(tn, n_per_split, 0, g.n))
        .groups((splits * g.groups * tm * tn) as u32);
    summed_over_splits(g, call, splits)
}

/// The batch splits of a depthwise weight gradient on a CPU adapter (`grad_weight_dw`,
/// dynconv_wgrad's `main_dw`: channels as lanes), so that about 512 (split, channel)
/// invocations share the work, at most `most_splits`: (samples per split, splits).
pub(crate) fn depthwise_weight_splits(
    g: &ConvGeom,
    ctx: &PlanCtx,
    most_splits: usize,
) -> (usize, usize) {
    let most = ctx.loop_items(wgrad_loop_per_sample(g, 1));
    crate::kernels::split_runs(g.n, (512 / g.c).min(most_splits), most)
}

/// The depthwise weight gradient on CPU adapters (`grad_weight_dw`), its partial sums per
/// split (`depthwise_weight_splits`) added up.
fn plan_grad_weight_depthwise(g: &ConvGeom, ctx: &PlanCtx) -> Plan {
    let (n_per_split, splits) = depthwise_weight_splits(g, ctx, usize::MAX);
    let call = KernelCall::new("conv", "grad_weight_dw")
        .blocking(depthwise_taps(g, false))
        .params(&g.params(1, n_per_split, 0, g.n))
        .threads(splits * g.c, 64);
    summed_over_splits(g, call, splits)
}

/// A weight-gradient call whose `splits` batch splits write partial sums: straight into the
/// gradient when there is one, else into scratch and summed.
fn summed_over_splits(g: &ConvGeom, call: KernelCall, splits: usize) -> Plan {
    if splits == 1 {
        return Plan::one(call.args(&[Arg::In(0), Arg::In(1), Arg::Out(0)]));
    }
    let len = g.o * (g.c / g.groups) * g.kh * g.kw;
    Plan {
        calls: vec![
            call.args(&[Arg::In(0), Arg::In(1), Arg::Scratch(0)]),
            super::reduce::sum_splits(len, splits, Arg::Scratch(0), Arg::Out(0)),
        ],
        scratch: vec![(splits * len * 4) as u64],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::params::ConvOpts;

    /// On a CPU adapter with lavapipe's subgroups, every weight-gradient batch split loops at
    /// most `CPU_LOOP_BUDGET` times per invocation (docs/architecture.md, "The loop limit"),
    /// including the shapes that came out partial before (28×28 at batch 64 in one split, 14×14
    /// at 250 per split) and ResNet-18 width 1's 64-channel layers; every sample is in a split.
    #[test]
    fn weight_gradient_splits_stay_within_the_loop_budget() {
        let mut ctx = PlanCtx::for_device(wgpu::DeviceType::Cpu);
        ctx.subgroup_lanes = Some([8, 8]);
        ctx.gemm = GemmPolicy::Fixed(GemmKernel::Subgroup);
        let cases = [
            ([64, 64, 28, 28], 4, 1),
            ([500, 32, 14, 14], 32, 1),
            ([64, 64, 32, 32], 64, 1),
            ([256, 96, 56, 56], 96, 96),
        ];
        for (x, o, groups) in cases {
            let g = ConvGeom::new(&x, o, ConvOpts::k(3).pad(1).groups(groups)).unwrap();
            let call = &plan_grad_weight(&g, &ctx).calls[0];
            // Slot 17 of `ConvGeom::params`: samples per split; the workgroups cover the splits.
            let n_per_split = call.params[17] as usize;
            let loops = n_per_split * wgrad_loop_per_sample(&g, ctx.blocking.wx);
            assert!(
                loops <= super::super::CPU_LOOP_BUDGET,
                "{x:?}: {loops} iterations"
            );
            assert!(n_per_split > 0, "{x:?}");
        }
    }

    /// Per-sample windows take chunks of one sample as lanes, all rows broadcast, where the
    /// plane's blocks fill the lanes (28×28: 28 blocks, 14×14: 7, 32×32: 32), and samples as
    /// lanes where they would not (7×7: 2 blocks); the workgroups cover every sample's blocks.
    #[test]
    fn per_sample_windows_take_chunk_lanes_where_they_fill() {
        let mut ctx = PlanCtx::for_device(wgpu::DeviceType::Cpu);
        ctx.subgroup_lanes = Some([8, 8]);
        let cases = [
            (28, 28usize, true),
            (14, 7, true),
            (32, 32, true),
            (7, 2, false),
        ];
        for (side, chunks, chunk_lanes) in cases {
            let g = ConvGeom::new(&[20, 16, side, side], 24, ConvOpts::k(3).pad(1)).unwrap();
            let samples = Samples::PerSample {
                offset: 0,
                count: 20,
            };
            let args = [Arg::In(0), Arg::In(1), Arg::Out(0)];
            let call = window_call(&g, &ctx, samples, "conv", &args, 0, false).unwrap();
            let value = |name| call.template.iter().find(|(n, _)| *n == name).unwrap().1;
            assert_eq!(value("WC") == 1, chunk_lanes, "{side}×{side}");
            let row_tiles = call.params[SLOT_TILE_ROWS].div_ceil(value("TM") * value("WY"));
            let lane_blocks = match chunk_lanes {
                true => 20 * chunks.div_ceil(8),
                false => 20usize.div_ceil(8) * chunks,
            };
            let groups = row_tiles * lane_blocks as u32;
            assert_eq!(
                call.workgroups,
                crate::gpu::grid_1d(groups),
                "{side}×{side}"
            );
            if chunk_lanes {
                assert_eq!(
                    value("WS"),
                    value("TM"),
                    "{side}×{side}: every row broadcast"
                );
            }
        }
    }
}

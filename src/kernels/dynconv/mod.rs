//! Dynamic convolution (DY-Conv) and partially dynamic convolution (PAD-Conv): per-sample
//! kernel assembly, per-sample convolution, and the backward chain of `dynconv.wgsl`
//! (docs/method.md §1.1–1.2). The attention branch that produces `alpha` is ordinary graph ops.

pub mod reference;

use super::conv::{self, ConvGeom, Samples};
use super::{u, Arg, Blocking, KernelCall, Plan, PlanCtx};
pub use crate::graph::params::{DynSpec, Lambda, MixSpec};

/// Slot of dynconv.wgsl's `out_offset` in `Rows::call`'s params.
const SLOT_OUT_OFFSET: usize = 5;
/// Slot of dynconv_wgrad.wgsl's `threads` in `ConvGeom::params`.
const SLOT_WGRAD_THREADS: usize = 18;

/// dynconv_wgrad.wgsl's parameters: `ConvGeom::params` over the whole batch with `threads`
/// (the invocations that write dalpha partials) and padding where conv_common has n_offset,
/// n_count.
fn wgrad_params(g: &ConvGeom, tiles_n: usize, n_per_split: usize, threads: usize) -> Vec<u32> {
    let mut params = g.params(tiles_n, n_per_split, 0, g.n);
    params[SLOT_WGRAD_THREADS] = u(threads);
    params[SLOT_WGRAD_THREADS + 1] = 0;
    params
}

impl Lambda {
    fn code(self) -> u32 {
        match self {
            Lambda::Both => 0,
            Lambda::S => 1,
            Lambda::D => 2,
            Lambda::None => 3,
            Lambda::P => 4,
        }
    }
}

/// Samples whose kernels one invocation of `aggregate` writes.
const SAMPLES_PER_INVOCATION: usize = 16;
/// Kernel positions per invocation of `aggregate` (each alpha load serves this many outputs).
const POSITIONS_PER_INVOCATION: usize = 8;

impl DynSpec {
    /// Rows of the extended attention: the K kernels, plus the all-ones row for S with PAD.
    fn ke(&self) -> usize {
        self.k + self.pad as usize
    }

    fn padded(&self) -> usize {
        padded(self.n())
    }

    fn call(&self, entry: &'static str, batch: usize, n_offset: usize) -> KernelCall {
        let rows = Rows {
            n: self.n(),
            k: self.k,
            pad: self.pad,
            lambda: self.lambda,
        };
        rows.call(entry, batch, n_offset)
    }

    /// V [Ke, N] and alpha_ext [B, Ke], what every per-sample kernel is mixed from
    /// (W~_n = alpha_ext_n · V), and the launches that make them. DY-Conv's are its own inputs
    /// (V = the kernels, alpha_ext = alpha), so it launches nothing; PAD-Conv's `prepare` writes
    /// them into scratches 0 and 1 (`pad_scratch`).
    fn mixing(&self) -> (Arg, Arg, Vec<KernelCall>) {
        if !self.pad {
            return (Arg::In(2), Arg::In(1), vec![]);
        }
        let (v, alpha_ext) = (Arg::Scratch(0), Arg::Scratch(1));
        let [ws, mask, phi] = self.pad_args();
        let (call, per) = by_elems(self.call("prepare", self.geom.n, 0), self.n());
        let prepare = call
            .args(&[Arg::In(1), Arg::In(2), ws, mask, phi, v, alpha_ext])
            .threads((self.n() / per).max(self.geom.n * self.ke()), 256);
        (v, alpha_ext, vec![prepare])
    }

    /// A scratch buffer of `bytes` that only PAD-Conv uses (`mixing`'s V and alpha_ext, the
    /// backward's A_ext and dphi terms); DY-Conv's gets a placeholder word.
    fn pad_scratch(&self, bytes: usize) -> u64 {
        if self.pad {
            bytes as u64
        } else {
            4
        }
    }

    /// Kernels of samples `n0 .. n0 + c` into `out` [c, N] from element `offset` on:
    /// `alpha_ext[n0..] · V`. A GEMM with an inner dimension of Ke is all memory traffic, so
    /// it has its own kernel: in vec4s where N and `offset` allow (`aggregate4`), else scalar.
    /// On CPU adapters whose subgroups all have the same number of lanes, dividing the
    /// samples per invocation, `aggregate4_sg` shares alpha by broadcasts.
    #[allow(clippy::too_many_arguments)]
    fn aggregate(
        &self,
        ctx: &PlanCtx,
        v: Arg,
        alpha_ext: Arg,
        n0: usize,
        c: usize,
        out: Arg,
        offset: usize,
    ) -> KernelCall {
        let n = self.n();
        let vec4 = n.is_multiple_of(4) && offset.is_multiple_of(4);
        let lanes = match ctx.subgroup_lanes {
            Some([fewest, most]) if ctx.is_cpu && vec4 && fewest == most => Some(most),
            _ => None,
        }
        .filter(|&l| SAMPLES_PER_INVOCATION.is_multiple_of(l as usize));
        let (entry, groups) = if lanes.is_some() {
            ("aggregate4_sg", (n / 4).div_ceil(256))
        } else if vec4 {
            ("aggregate4", (n / 4).div_ceil(256))
        } else {
            ("aggregate", n.div_ceil(256 * POSITIONS_PER_INVOCATION))
        };
        let mut call = self.call(entry, c, n0);
        if let Some(l) = lanes {
            call = call.shuffles().switch("SGL", l);
        }
        call.params[SLOT_OUT_OFFSET] = u(offset);
        call.args(&[v, alpha_ext, out])
            .groups((c.div_ceil(SAMPLES_PER_INVOCATION) * groups) as u32)
    }
    /// The fused weight-gradient launch: its blocking (smaller than the GEMM one, since it
    /// keeps K + Ke + 1 blocks live), sample splits and invocation count.
    fn fused_wgrad(&self, ctx: &PlanCtx) -> FusedWgrad {
        let g = &self.geom;
        // Splits fill the device, but each holds a copy of A_ext: at most 96 MiB of them.
        let by_memory = ((96usize << 20) / (self.ke() * self.n() * 4)).max(1);
        if conv::depthwise_on_cpu(g, ctx) {
            return self.fused_wgrad_depthwise(ctx, by_memory);
        }
        let (og, cols) = (g.o / g.groups, (g.c / g.groups) * g.kh * g.kw);
        // On lavapipe, blocks of 8x16 (K + Ke + 1 of them live: 1 280 floats at K = 4). Bigger
        // ones ran ResNet-18's steps up to a quarter faster (32x16: 3.5 s against 4.5 s), but
        // LLVM compiles a kernel holding 5 120 live floats for minutes: the first PAD-ResNet-10
        // training step took over 15 minutes at 32x16 with a cold shader cache, 3.4 minutes at
        // 16x16 and 1.5 at 8x16, and 16x16 ran ResNet-10 x0.25 no faster than 8x16 once warm
        // (docs/architecture.md, "Compile time on lavapipe").
        let fat = Blocking {
            tm: 8,
            tn: 16,
            wx: 8,
            wy: 4,
        };
        // Every invocation keeps a dalpha partial per (sample, kernel); where that buffer
        // would pass 96 MiB (under the 128 MiB binding limit; big layers at GPU blocking),
        // fatter blocks cut the invocations.
        let fits = |b: &Blocking, cols: usize| {
            let tiles = og.div_ceil(b.rows()) * cols.div_ceil(b.cols());
            g.n * self.k * g.groups * tiles * b.wx * b.wy * 4 <= 96 << 20
        };
        // CPU adapters slide 3×3 stride-1 layers (`main_w`: columns are input channels, each
        // invocation 8 filters × 1 channel × 9 taps, G, A_ext and V 720 floats live at K = 4).
        let cg = g.c / g.groups;
        let window = conv::weight_window(g, ctx, 8).filter(|b| fits(b, cg));
        let (blk, cols) = match window {
            Some(b) => (b, cg),
            None => {
                let blk = if ctx.is_cpu { fat } else { ctx.blocking }.fit(og, cols);
                let blk = if fits(&blk, cols) {
                    blk
                } else {
                    fat.fit(og, cols)
                };
                (blk, cols)
            }
        };
        let tn = cols.div_ceil(blk.cols());
        let wgs = g.groups * og.div_ceil(blk.rows()) * tn;
        let target: usize = if ctx.is_cpu { 8 } else { 512 };
        let wanted = target.div_ceil(wgs).clamp(1, g.n).min(by_memory);
        let most = ctx.loop_items(conv::wgrad_loop_per_sample(g, blk.wx));
        let (n_per_split, splits) = crate::kernels::split_runs(g.n, wanted, most);
        let threads = wgs * blk.wx * blk.wy;
        let params = wgrad_params(g, tn, n_per_split, threads);
        let entry = if window.is_some() { "main_w" } else { "main" };
        let mut call = KernelCall::new("dynconv_wgrad", entry)
            .blocking(blk)
            .params(&params)
            .groups((splits * wgs) as u32);
        call.template.extend([
            ("KK", self.k as u32),
            ("KE", self.ke() as u32),
            ("W", window.is_some() as u32),
        ]);
        // `main` shares dy by shuffles where the static layers' `grad_weight` does.
        let shuffles = conv::shuffle_lanes(ctx).is_some_and(|lanes| blk.fits_subgroups(lanes));
        if window.is_some() || shuffles {
            call = call.shuffles();
        }
        FusedWgrad {
            call,
            splits,
            threads,
            lanes: blk.wx * blk.wy,
        }
    }

    /// `fused_wgrad` of a depthwise layer on a CPU adapter (`main_dw`: channels as lanes, as
    /// the static layer's `grad_weight_dw`), split over the batch as that one is. MobileNetV2
    /// ×0.35's DY-Conv step (lavapipe, b32) spent 107 ms in its depthwise layers' `main`, 4.7×
    /// the static layers' `grad_weight_dw`.
    fn fused_wgrad_depthwise(&self, ctx: &PlanCtx, by_memory: usize) -> FusedWgrad {
        let g = &self.geom;
        let (n_per_split, splits) = conv::depthwise_weight_splits(g, ctx, by_memory);
        let mut call = KernelCall::new("dynconv_wgrad", "main_dw")
            .blocking(conv::depthwise_taps(g, false))
            .params(&wgrad_params(g, 1, n_per_split, g.c))
            .threads(splits * g.c, 64);
        call.template
            .extend([("KK", self.k as u32), ("KE", self.ke() as u32), ("W", 0)]);
        FusedWgrad {
            call,
            splits,
            threads: g.c,
            lanes: 1,
        }
    }

    /// Sample chunks `(offset, count)` covering the batch.
    fn chunks(&self, ctx: &PlanCtx) -> Vec<(usize, usize)> {
        let c = self.chunk(ctx);
        (0..self.geom.n)
            .step_by(c)
            .map(|n0| (n0, c.min(self.geom.n - n0)))
            .collect()
    }

    /// Input positions of (static weight, mask, phi); DY-Conv binds the kernels there instead
    /// (its shaders never read them).
    fn pad_args(&self) -> [Arg; 3] {
        if self.pad {
            [Arg::In(3), Arg::In(4), Arg::In(5)]
        } else {
            [Arg::In(2), Arg::In(2), Arg::In(2)]
        }
    }

    /// Samples per chunk: the kernels of one chunk live at once, bounded to `ctx.chunk_bytes`
    /// (under the storage-binding limit), and large, since every chunk streams the K+1 shared
    /// kernels once more and is one more dispatch (or `max_chunk`).
    pub fn chunk(&self, ctx: &PlanCtx) -> usize {
        let fit = (ctx.chunk_bytes / (self.n() * 4)).clamp(1, self.geom.n);
        if self.max_chunk > 0 {
            fit.min(self.max_chunk)
        } else {
            fit
        }
    }
}

/// `call` (`prepare` or `combine`) on a kernel of `n` positions, and the positions each of its
/// invocations takes: 4 (VEC4) where `n` is whole vec4s, else 1.
fn by_elems(call: KernelCall, n: usize) -> (KernelCall, usize) {
    let vec4 = n.is_multiple_of(4);
    (call.switch("VEC4", vec4 as u32), if vec4 { 4 } else { 1 })
}

/// `n` rounded up to whole rows of 256 (the per-element dphi terms).
fn padded(n: usize) -> usize {
    n.div_ceil(256) * 256
}

/// What every `dynconv.wgsl` launch is parameterised by: K rows of N elements mixed with the
/// static row (`pad`) under a λ variant.
struct Rows {
    n: usize,
    k: usize,
    pad: bool,
    lambda: Lambda,
}

impl Rows {
    /// A launch of `entry`; `batch` samples from `n_offset` (kernel assembly).
    fn call(&self, entry: &'static str, batch: usize, n_offset: usize) -> KernelCall {
        let params = [
            u(self.n),
            u(self.k),
            u(batch),
            u(n_offset),
            u(padded(self.n)),
            0,
            0,
            0,
        ];
        let mut call = KernelCall::new("dynconv", entry)
            .constant("PAD", self.pad as u8 as f64)
            .constant("LAMBDA", self.lambda.code() as f64)
            .params(&params);
        call.template = vec![
            ("KK", self.k as u32),
            ("KE", (self.k + self.pad as usize) as u32),
            ("SPB", SAMPLES_PER_INVOCATION as u32),
            ("JPI", POSITIONS_PER_INVOCATION as u32),
            ("SG", 0),
            ("SGL", 8),
            ("F16_OUT", 0),
            ("VEC4", 0),
        ];
        call
    }
}

/// dphi = Σ of the per-element terms `combine` wrote: 256-element partial sums, then their
/// total.
fn sum_dphi_terms(n: usize, terms: Arg, partial: Arg, dphi: Arg) -> [KernelCall; 2] {
    let rows = padded(n) / 256;
    [
        super::reduce::sum_axes(rows, 256, 1, terms, partial),
        super::reduce::sum_splits(1, rows, partial, dphi),
    ]
}

struct FusedWgrad {
    call: KernelCall,
    splits: usize,
    /// Invocations per split: workgroups × `lanes`.
    threads: usize,
    /// Invocations per workgroup.
    lanes: usize,
}

/// Forward: `(x, alpha, kernels[, static, mask, phi]) → y`. Per chunk of samples: assemble
/// their kernels, then convolve each sample with its own.
pub fn plan_forward(s: &DynSpec, ctx: &PlanCtx) -> Plan {
    forward_chunks(s, 0, ctx)
}

/// A split PAD-Conv layer (`Op::SplitDynConv2d`): `(x, alpha, kernels [K, O_d, C, kh, kw],
/// static [1, O_s, C, kh, kw], order [2, O]) → y`, `s` the dynamic filters' DY-Conv. W_S goes
/// ahead of the assembled kernels once; per chunk of samples, only the dynamic filters are
/// assembled, and one per-sample convolution over all O filters reads each filter where
/// `order` says (`conv_rows.wgsl`, docs/method.md §5).
pub fn plan_split_forward(s: &DynSpec, statics: usize, ctx: &PlanCtx) -> Plan {
    forward_chunks(s, statics, ctx)
}

/// The forward plan of both: `statics` static filters ahead of `s`'s (0: a DY-Conv or
/// PAD-Conv of its own). Where the convolutions read their per-sample weights as f16
/// (`conv::forward_call`), the kernels (and W_S's rows) are stored as f16.
fn forward_chunks(s: &DynSpec, statics: usize, ctx: &PlanCtx) -> Plan {
    let (v, alpha_ext, prepare) = s.mixing();
    let wt = Arg::Scratch(2);
    let n = s.n();
    let static_len = statics * (n / s.geom.o);
    let rows = (statics > 0).then_some(conv::RowMap {
        order: Arg::In(4),
        statics,
    });
    let convs: Vec<_> = s
        .chunks(ctx)
        .into_iter()
        .map(|(n0, c)| {
            let samples = Samples::PerSample {
                offset: n0,
                count: c,
            };
            let args = [Arg::In(0), wt, Arg::Out(0)];
            let geom = s.split_geom(statics);
            let call = conv::forward_call(&geom, ctx, samples, args, rows, Arg::Scratch(3));
            (n0, c, call)
        })
        .collect();
    let half = convs
        .iter()
        .any(|(.., conv)| conv.call.reads_half_weights());
    debug_assert!(
        half == convs
            .iter()
            .all(|(.., conv)| conv.call.reads_half_weights())
    );
    let stored = |call: KernelCall| if half { call.half_output() } else { call };
    let kernel_bytes = |elements: usize| (elements * if half { 2 } else { 4 }).next_multiple_of(4);
    // Scratch: 0 = V [Ke, N], 1 = alpha_ext [B, Ke] (PAD only, `mixing`), 2 = W_S's rows and a
    // chunk's kernels, 3 = the partial outputs of a split reduction (`conv::ConvCall`).
    let ke = s.ke();
    let mut plan = Plan {
        calls: prepare,
        scratch: vec![
            s.pad_scratch(ke * n * 4),
            s.pad_scratch(s.geom.n * ke * 4),
            kernel_bytes(static_len + s.chunk(ctx) * n) as u64,
        ],
    };
    if statics > 0 {
        let rows = Rows {
            n: static_len,
            k: s.k,
            pad: false,
            lambda: s.lambda,
        };
        let place = rows.call("place", 0, 0).args(&[Arg::In(3), wt]);
        plan.calls.push(stored(place).threads(static_len, 256));
    }
    for (n0, c, conv) in convs {
        let aggregate = s.aggregate(ctx, v, alpha_ext, n0, c, wt, static_len);
        plan.calls.push(stored(aggregate));
        conv.append(&mut plan, 3);
    }
    plan
}

/// Backward: inputs `(x, alpha, kernels[, static, mask, phi], dy)`, outputs
/// `(dx, dalpha, dkernels[, dstatic, dphi, dmask])`. Per chunk of samples: re-assemble their
/// kernels (cheaper than keeping B of them) and take the input gradient. The weight gradients
/// of the whole batch are one fused pass (`dynconv_wgrad.wgsl`) that contracts each
/// per-sample gradient in registers into `A_ext = alpha_ext^T G` and dalpha partial sums;
/// finally PAD's `combine` folds A_ext into dkernels, dstatic, dL/dM and dphi (DY-Conv's A_ext
/// is dkernels: the fused pass writes it there).
pub fn plan_backward(s: &DynSpec, ctx: &PlanCtx) -> Plan {
    let g = &s.geom;
    let (n, ke, k) = (s.n(), s.ke(), s.k);
    let [ws, mask, phi] = s.pad_args();
    let dy = if s.pad { Arg::In(6) } else { Arg::In(3) };
    // Scratch: 0 = V [Ke, N], 1 = alpha_ext [B, Ke] (PAD only, `mixing`), 2 = kernels of a
    // chunk, 3 = A_ext [Ke, N], 4 = dphi terms (padded to whole 256-element rows), 5 = their
    // row sums (3-5 PAD only: DY-Conv's A_ext is dkernels itself), 6 = dalpha partial sums
    // [B, K, invocations], 7 = A_ext per sample split, 8 = the dalpha partials summed over
    // workgroups [B, K, lanes], 9 = the partial input gradients of a split reduction
    // (`conv::ConvCall`).
    let (v, alpha_ext, prepare) = s.mixing();
    let (wt, terms) = (Arg::Scratch(2), Arg::Scratch(4));
    let a_ext = if s.pad { Arg::Scratch(3) } else { Arg::Out(2) };
    let fused = s.fused_wgrad(ctx);
    let padded = s.padded();
    let mut plan = Plan {
        calls: prepare,
        scratch: vec![
            s.pad_scratch(ke * n * 4),
            s.pad_scratch(g.n * ke * 4),
            (s.chunk(ctx) * n * 4) as u64,
            s.pad_scratch(ke * n * 4),
            s.pad_scratch(padded * 4),
            s.pad_scratch(padded / 256 * 4),
            (g.n * k * fused.threads * 4) as u64,
            (fused.splits.max(2) * ke * n * 4) as u64,
            (g.n * k * fused.lanes * 4) as u64,
        ],
    };
    for (n0, c) in s.chunks(ctx) {
        plan.calls
            .push(s.aggregate(ctx, v, alpha_ext, n0, c, wt, 0));
        let samples = Samples::PerSample {
            offset: n0,
            count: c,
        };
        conv::grad_input_call(g, ctx, samples, [dy, wt, Arg::Out(0)], Arg::Scratch(9))
            .append(&mut plan, 9);
    }
    let calls = &mut plan.calls;
    let a_target = if fused.splits == 1 {
        a_ext
    } else {
        Arg::Scratch(7)
    };
    calls.push(
        fused
            .call
            .clone()
            .args(&[Arg::In(0), dy, alpha_ext, v, a_target, Arg::Scratch(6)]),
    );
    if fused.splits > 1 {
        calls.push(super::reduce::sum_splits(
            ke * n,
            fused.splits,
            Arg::Scratch(7),
            a_ext,
        ));
    }
    // dalpha: the partials [B, K, workgroups, lanes] summed over the workgroups, then over
    // the lanes. One pass over all `threads` of a (sample, kernel) left only B·K invocations
    // to read them: 10 ms for ResNet-18's 256→256 layers at batch 64 on an H200.
    // (Invocations that are not in workgroups of lanes, `main_dw`'s, sum in one pass.)
    let lane_sums = match fused.lanes {
        1 => Arg::Out(1),
        _ => Arg::Scratch(8),
    };
    calls.push(super::reduce::sum_axes(
        g.n * k,
        fused.threads / fused.lanes,
        fused.lanes,
        Arg::Scratch(6),
        lane_sums,
    ));
    if fused.lanes > 1 {
        calls.push(super::reduce::sum_axes(
            g.n * k,
            fused.lanes,
            1,
            lane_sums,
            Arg::Out(1),
        ));
    }
    if s.pad {
        let (combine, per) = by_elems(s.call("combine", g.n, 0), n);
        let combine = combine.threads(padded / per, 256);
        calls.push(combine.args(&[
            a_ext,
            Arg::In(2),
            ws,
            mask,
            phi,
            Arg::Out(2),
            Arg::Out(3),
            Arg::Out(5),
            terms,
        ]));
        calls.extend(sum_dphi_terms(n, terms, Arg::Scratch(5), Arg::Out(4)));
    }
    plan
}

impl MixSpec {
    fn rows(&self) -> Rows {
        Rows {
            n: self.n,
            k: self.experts,
            pad: true,
            lambda: self.lambda,
        }
    }
}

/// `(experts, static, mask, phi) → W~`.
pub fn plan_mix_forward(s: &MixSpec) -> Plan {
    let call = s
        .rows()
        .call("mix", 0, 0)
        .args(&[Arg::In(0), Arg::In(1), Arg::In(2), Arg::In(3), Arg::Out(0)])
        .threads(s.n, 256);
    Plan::one(call)
}

/// `(experts, static, mask, phi, dW~) → (dexperts, dstatic, dphi, dmask)`.
pub fn plan_mix_backward(s: &MixSpec) -> Plan {
    let terms = Arg::Scratch(0);
    let (combine, per) = by_elems(s.rows().call("combine", 0, 0), s.n);
    let combine = combine
        .constant("MIX", 1.0)
        .threads(padded(s.n) / per, 256)
        .args(&[
            Arg::In(4),
            Arg::In(0),
            Arg::In(1),
            Arg::In(2),
            Arg::In(3),
            Arg::Out(0),
            Arg::Out(1),
            Arg::Out(3),
            terms,
        ]);
    let mut calls = vec![combine];
    calls.extend(sum_dphi_terms(s.n, terms, Arg::Scratch(1), Arg::Out(2)));
    Plan {
        calls,
        scratch: vec![(padded(s.n) * 4) as u64, (padded(s.n) / 256 * 4) as u64],
    }
}

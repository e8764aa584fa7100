//! Batched matrix multiply (shader `matmul.wgsl`).

pub mod reference;

use super::{u, Arg, GemmKernel, GemmPolicy, KernelCall, Plan, PlanCtx, Precision};
use crate::graph::dims::{grouped_matmul_dims, matmul_dims};
use crate::graph::Tensor;

/// Slots of gemm_params.wgsl's batch strides in a GEMM call's params (grouped launches zero
/// them).
const SLOT_A_BATCH_STRIDE: usize = 4;
const SLOT_B_BATCH_STRIDE: usize = 5;
const SLOT_C_BATCH_STRIDE: usize = 6;

pub fn plan(
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
    a: &[usize],
    b: &[usize],
    ctx: &PlanCtx,
) -> Plan {
    let gemm = Gemm::of_matmul(trans_a, trans_b, accumulate, a, b);
    Plan::one(gemm.call(ctx, Arg::In(0), Arg::In(1), Arg::Out(0)))
}

/// One GEMM launch: `C = op(A)·op(B)` (or `+=`), batched, with element offsets into A, B, C
/// (for operating on row blocks of larger tensors).
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub accumulate: bool,
    pub shared_b: bool,
    pub offsets: [usize; 3],
    /// Row-grouped launches (MoE experts): the rows a group has on average, which the subgroup
    /// kernel's tiles are fitted to (`blocking`); 0 otherwise.
    pub group_rows: usize,
}

impl Gemm {
    /// The launch of a `MatMul` node with inputs of shapes `a` and `b`.
    pub fn of_matmul(
        trans_a: bool,
        trans_b: bool,
        accumulate: bool,
        a: &[usize],
        b: &[usize],
    ) -> Gemm {
        let (batch, m, k, b_batch, n) =
            matmul_dims(trans_a, trans_b, a, b).expect("shapes checked by infer");
        // A batch of row-major A's times one shared B is a single GEMM with batch·M rows: one
        // launch of full tiles instead of `batch` launches of short ones (BERT's linears).
        let (batch, m) = if b_batch == 0 && !trans_a {
            (1, batch * m)
        } else {
            (batch, m)
        };
        Gemm {
            m,
            n,
            k,
            batch,
            trans_a,
            trans_b,
            accumulate,
            shared_b: b_batch == 0,
            offsets: [0; 3],
            group_rows: 0,
        }
    }

    /// The autotune class of this GEMM: sizes rounded up to powers of two, whether it is
    /// batched, the transposes, and f16 multiplication where `ctx` has it. GEMMs of one class
    /// are assumed to prefer the same kernel.
    pub fn tune_class(&self, ctx: &PlanCtx) -> String {
        let p = |v: usize| v.next_power_of_two();
        format!(
            "gemm {}x{}x{}{}{}{}{}",
            p(self.m),
            p(self.n),
            p(self.k),
            if self.batch > 1 { " batched" } else { "" },
            if self.trans_a { " At" } else { "" },
            if self.trans_b { " Bt" } else { "" },
            match ctx.precision {
                Precision::F32 => "",
                Precision::F16 => " f16",
            }
        )
    }

    /// Elements of A, B and C.
    pub fn operand_lens(&self) -> [usize; 3] {
        let b_batches = if self.shared_b { 1 } else { self.batch };
        [
            self.batch * self.m * self.k,
            b_batches * self.k * self.n,
            self.batch * self.m * self.n,
        ]
    }

    /// The kernel this GEMM runs on `ctx`'s device (the register kernel in place of the
    /// subgroup one on a device without subgroups).
    pub fn kernel_choice(&self, ctx: &PlanCtx) -> GemmKernel {
        let kernel = match ctx.gemm {
            GemmPolicy::Fixed(k) => k,
            GemmPolicy::Autotune => ctx
                .tuning
                .get(&self.tune_class(ctx))
                .map_or(GemmKernel::Registers, |e| e.kernel),
        };
        if kernel == GemmKernel::Subgroup && ctx.subgroup_lanes.is_none() {
            return GemmKernel::Registers;
        }
        kernel
    }

    /// A single (unbatched) GEMM.
    pub fn new(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        Gemm {
            m,
            n,
            k,
            batch: 1,
            trans_a,
            trans_b,
            accumulate: false,
            shared_b: false,
            offsets: [0; 3],
            group_rows: 0,
        }
    }

    /// The kernel call, without split-K.
    pub fn call(&self, ctx: &PlanCtx, a: Arg, b: Arg, c: Arg) -> KernelCall {
        self.kernel(ctx, a, b, c, 1)
    }

    /// Splits of the reduction: a GEMM with few output tiles and a long k (a thin product
    /// such as G·V^T, or a fully connected layer with few rows) leaves the device idle unless
    /// k is divided among workgroups; their partial products are then summed.
    pub fn splits(&self, ctx: &PlanCtx) -> usize {
        let blk = self.blocking(ctx);
        let tiles = self.batch * self.n.div_ceil(blk.cols()) * self.m.div_ceil(blk.rows());
        let target: usize = if ctx.is_cpu { 8 } else { 256 };
        if self.batch != 1 || self.accumulate || tiles >= target || self.k < 1024 {
            return 1;
        }
        (target / tiles).clamp(1, self.k / 512)
    }

    /// Scratch bytes `calls` needs for the partial products (0 without split-K).
    pub fn scratch_bytes(&self, ctx: &PlanCtx) -> u64 {
        match self.splits(ctx) {
            1 => 0,
            s => (s * self.m * self.n * 4) as u64,
        }
    }

    /// The calls of this GEMM, split along k when that pays (see `splits`); `scratch` holds
    /// the partial products and must have `scratch_bytes` bytes.
    pub fn calls(&self, ctx: &PlanCtx, a: Arg, b: Arg, c: Arg, scratch: Arg) -> Vec<KernelCall> {
        let s = self.splits(ctx);
        if s == 1 {
            return vec![self.call(ctx, a, b, c)];
        }
        // Partial products at offset 0 of the scratch; their sum at C's offset.
        let mut partial = *self;
        partial.offsets[2] = 0;
        vec![
            partial.kernel(ctx, a, b, scratch, s),
            super::reduce::sum_splits_at(self.m * self.n, s, scratch, c, self.offsets[2]),
        ]
    }

    /// The register blocking of this GEMM on `ctx`'s device: the tiled kernel's tiles take
    /// 8 KiB of workgroup memory with the GPU blocking, 16 KiB with the large one; the
    /// subgroup kernel's rows of invocations fit the device's smallest subgroup.
    fn blocking(&self, ctx: &PlanCtx) -> super::Blocking {
        match (self.kernel_choice(ctx), ctx.subgroup_lanes) {
            (GemmKernel::Tiled, _) => return super::Blocking::GPU,
            (GemmKernel::TiledLarge, _) => return super::Blocking::GPU_LARGE,
            (GemmKernel::Subgroup, Some(lanes)) => {
                let b = ctx.blocking.subgroup(lanes, self.m, self.n);
                // Its invocations past a group's rows still shuffle for the others, so a tile
                // much taller than a group computes clamped copies: fewer rows of invocations.
                return match self.group_rows {
                    0 => b,
                    rows => b.fewer_row_groups(rows, lanes[1] as usize),
                };
            }
            _ => {}
        }
        let base = if self.trans_b && ctx.blocking == super::Blocking::CPU {
            super::Blocking::CPU_TRANS_B
        } else {
            ctx.blocking
        };
        base.fit_fine(self.m, self.n).narrow(self.n)
    }

    /// The splits of the reduction with `kernel` (the autotune times each kernel as it would
    /// run).
    pub fn splits_with(&self, ctx: &PlanCtx, kernel: GemmKernel) -> usize {
        self.splits(&with_kernel(ctx, kernel))
    }

    /// The launch of this GEMM with `kernel` whatever `ctx` would choose (the autotune times
    /// each); `splits` > 1: the partial products of split-K.
    pub fn kernel_call(
        &self,
        ctx: &PlanCtx,
        kernel: GemmKernel,
        [a, b, c]: [Arg; 3],
        splits: usize,
    ) -> KernelCall {
        self.kernel(&with_kernel(ctx, kernel), a, b, c, splits)
    }

    fn kernel(&self, ctx: &PlanCtx, a: Arg, b: Arg, c: Arg, splits: usize) -> KernelCall {
        let blk = self.blocking(ctx);
        let (shader, entry) = match self.kernel_choice(ctx) {
            GemmKernel::Registers => ("matmul", "main"),
            GemmKernel::Tiled | GemmKernel::TiledLarge => ("matmul_tiled", "tiled"),
            GemmKernel::Subgroup => ("matmul_subgroup", "subgroup"),
        };
        let tiles_n = self.n.div_ceil(blk.cols());
        let [ao, bo, co] = self.offsets;
        let lda = if self.trans_a { self.m } else { self.k };
        let ldb = if self.trans_b { self.k } else { self.n };
        let (batch, k, a_stride, b_stride) = if splits > 1 {
            let kc = self.k.div_ceil(splits);
            let a_step = if self.trans_a { lda } else { 1 };
            let b_step = if self.trans_b { 1 } else { ldb };
            (self.k.div_ceil(kc), kc, kc * a_step, kc * b_step)
        } else {
            let b_stride = if self.shared_b { 0 } else { self.k * self.n };
            (self.batch, self.k, self.m * self.k, b_stride)
        };
        let tiles = batch * tiles_n * self.m.div_ceil(blk.rows());
        KernelCall::new(shader, entry)
            .blocking(blk)
            .constant("TRANS_A", self.trans_a as u8 as f64)
            .constant("TRANS_B", self.trans_b as u8 as f64)
            .constant("ACCUMULATE", self.accumulate as u8 as f64)
            .args(&[a, b, c])
            .params(&[
                u(self.m),
                u(self.n),
                u(k),
                u(batch),
                u(a_stride),
                u(b_stride),
                u(self.m * self.n),
                u(tiles_n),
                u(ao),
                u(bo),
                u(co),
                // k_total bounds the k range of split batches; unsplit batches never reach it.
                if splits > 1 { u(self.k) } else { u32::MAX },
                u(lda),
                u(ldb),
                0,
                0,
            ])
            .groups(tiles as u32)
            .grouping(0, 0)
            .precision(ctx.precision)
            .switch("VEC4", self.in_vec4s(ctx) as u32)
    }

    /// Whether the subgroup kernel runs with VEC4 = 1 (matmul_subgroup.wgsl): B row-major, N
    /// and the offsets of B and C whole vec4s, f32 weights (the f16 copy has no vec4 alias).
    fn in_vec4s(&self, ctx: &PlanCtx) -> bool {
        self.kernel_choice(ctx) == GemmKernel::Subgroup
            && !self.trans_b
            && self.n.is_multiple_of(4)
            && self.offsets[1..].iter().all(|o| o.is_multiple_of(4))
            && ctx.precision == Precision::F32
    }

    /// A grouped launch (MoE experts; see matmul.wgsl): `batch` groups whose rows of A and C
    /// (`by_k` false) or k range (`by_k` true) are `groups[e]..groups[e+1]`; `m` (or `k`) is
    /// the most one group can have.
    pub fn grouped_call(&self, ctx: &PlanCtx, args: [Arg; 4], by_k: bool) -> KernelCall {
        // Grouped launches run the subgroup kernel where plain GEMMs do by policy (lavapipe:
        // MiniLM's expert GEMMs about twice as fast), else the register-blocked kernel (the
        // tiled kernels have no grouping).
        let kernel = match ctx.gemm {
            GemmPolicy::Fixed(GemmKernel::Subgroup) => GemmKernel::Subgroup,
            _ => GemmKernel::Registers,
        };
        let ctx = &with_kernel(ctx, kernel);
        let mut call = self.kernel(ctx, args[0], args[1], args[2], 1);
        call.args.push(args[3]);
        // Groups find their rows (or k range) through `groups`, not batch strides.
        let grouped = if by_k {
            SLOT_B_BATCH_STRIDE
        } else {
            SLOT_C_BATCH_STRIDE
        };
        call.params[SLOT_A_BATCH_STRIDE] = 0;
        call.params[grouped] = 0;
        if !by_k {
            // Only the row tiles the groups can have: Σ_e ceil(rows_e / tile) ≤
            // ceil(m / tile) + batch, instead of batch · ceil(m / tile) mostly idle tiles.
            let blk = self.blocking(ctx);
            let tiles = self.n.div_ceil(blk.cols()) * (self.m.div_ceil(blk.rows()) + self.batch);
            call.workgroups = crate::gpu::grid_1d(tiles as u32);
        }
        call.grouping(!by_k as u32, by_k as u32)
    }
}

/// `ctx` with every plain GEMM fixed to `kernel`.
fn with_kernel(ctx: &PlanCtx, kernel: GemmKernel) -> PlanCtx {
    PlanCtx {
        gemm: GemmPolicy::Fixed(kernel),
        ..ctx.clone()
    }
}

pub fn plan_grouped(
    trans_a: bool,
    trans_b: bool,
    by_k: bool,
    ins: &[&Tensor],
    ctx: &PlanCtx,
) -> Plan {
    let (e, m, k, n, _) = grouped_matmul_dims(
        trans_a,
        trans_b,
        by_k,
        &ins[0].shape,
        &ins[1].shape,
        &ins[2].shape,
    )
    .expect("checked by infer");
    let mut gemm = Gemm::new(m, n, k, trans_a, trans_b);
    // Row-grouped launches get one more batch for the rows after the last group.
    gemm.batch = if by_k { e } else { e + 1 };
    if !by_k {
        gemm.group_rows = m.div_ceil(e.max(1));
    }
    Plan::one(gemm.grouped_call(ctx, [Arg::In(0), Arg::In(1), Arg::Out(0), Arg::In(2)], by_k))
}

//! The kernels, one folder per op family: `NAME/mod.rs` its launch plan, `NAME/NAME.wgsl` its
//! WGSL, `NAME/reference.rs` its f64 CPU reference (dispatched by [`reference::eval`]). A plan
//! lists kernel calls (shader, entry point, override constants, bindings, uniform parameters,
//! workgroup counts); `executor::compile` turns each into a pipeline + bind group once, and a
//! step replays them.

pub mod batchnorm;
pub mod broadcast;
pub mod conv;
pub mod dynconv;
pub mod elementwise;
pub mod gather;
pub mod layernorm;
pub mod matmul;
pub mod moe;
pub mod pool;
pub mod reduce;
pub mod reference;
pub mod softmax;

pub use crate::gpu::blocking::Blocking;
use crate::gpu::tuning::{ConvKernel, ConvPolicy};
pub use crate::gpu::tuning::{GemmKernel, GemmPolicy, Precision, TuneTable};
use crate::graph::{Op, Tensor};
use conv::ConvTuneRequest;
use std::sync::{Arc, Mutex};

/// What a kernel binding refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// The node's i-th input.
    In(usize),
    /// The node's i-th output.
    Out(usize),
    /// The node's i-th scratch buffer (lives only during the node).
    Scratch(usize),
    /// A binding index the entry point does not use.
    Skip,
}

#[derive(Clone, Debug)]
pub struct KernelCall {
    pub shader: &'static str,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
    /// Bound at @binding(1), @binding(2), ... in this order; @binding(0) is the uniform `params`.
    pub args: Vec<Arg>,
    /// Uniform parameters (u32 or f32 bit patterns).
    pub params: Vec<u32>,
    pub workgroups: [u32; 3],
    /// Template parameters of the shader source (register blocking), see `gpu::template`.
    pub template: Vec<(&'static str, u32)>,
    /// A sum over the data-parallel ranks that runs on the host after this call (SyncBN;
    /// docs/distributed.md).
    pub then: Option<RankSum>,
}

/// After a call, the first `floats` values of `arg` are summed over the ranks; with `gather`,
/// each rank's values go to its own slot instead (`arg` then holds ranks × floats).
#[derive(Clone, Copy, Debug)]
pub struct RankSum {
    pub arg: Arg,
    pub floats: usize,
    pub gather: bool,
}

impl KernelCall {
    pub fn new(shader: &'static str, entry: &'static str) -> Self {
        KernelCall {
            shader,
            entry,
            constants: vec![],
            args: vec![],
            params: vec![],
            workgroups: [1, 1, 1],
            template: vec![],
            then: None,
        }
    }
    /// See [`RankSum`].
    pub fn then_rank_sum(mut self, arg: Arg, floats: usize, gather: bool) -> Self {
        self.then = Some(RankSum {
            arg,
            floats,
            gather,
        });
        self
    }
    pub fn blocking(mut self, b: Blocking) -> Self {
        self.template = b.template().to_vec();
        self
    }
    /// Switches the kernel to sharing loads by subgroup shuffles (template SG = 1; the
    /// convolution weight gradient), for a device and blocking that `fits_subgroups`.
    pub fn shuffles(self) -> Self {
        self.switch("SG", 1)
    }
    /// The register convolution kernels (`forward`, `grad_input`, and transposed `forward_t`,
    /// `grad_input_t`) load the operand of their blocks' rows, the same for a row of WX lanes
    /// (weights; positions' inputs when transposed), once per row and broadcast it (template
    /// RB = 1), on a device whose subgroups are WX lanes (`conv::with_row_broadcast`).
    pub fn row_broadcast(self) -> Self {
        self.switch("RB", 1)
    }
    /// The precision a GEMM-like kernel (GEMMs, the convolution forward) multiplies in:
    /// `F16` sets the template switch F16 = 1 (mul_precision.wgsl), for a device with
    /// `Features::SHADER_F16`.
    pub fn precision(self, precision: Precision) -> Self {
        self.switch("F16", (precision == Precision::F16) as u32)
    }
    /// Whether this call multiplies in f16 (`precision`): it may then read binding 2, its
    /// weight operand (GEMM `b`, convolution `rhs`), as f16 (`half_weights`).
    pub fn multiplies_in_f16(&self) -> bool {
        self.template.contains(&("F16", 1))
    }
    /// Binding 2 holds f16 values (template F16_B = 1, mul_precision.wgsl): the executor bound
    /// the f16 copy of the parameters there. Only for a call that `multiplies_in_f16`.
    pub fn half_weights(self) -> Self {
        debug_assert!(self.multiplies_in_f16());
        self.switch("F16_B", 1)
    }
    /// Whether binding 2 holds f16 values (`half_weights`).
    pub fn reads_half_weights(&self) -> bool {
        self.template.contains(&("F16_B", 1))
    }
    /// Stores its output as f16 (template F16_OUT = 1; DY-Conv's kernel assembly, for a
    /// convolution that `reads_half_weights`).
    pub fn half_output(self) -> Self {
        self.switch("F16_OUT", 1)
    }
    /// The convolution forward's sliding window (`forward_w`, conv_forward.wgsl) covers `rows`
    /// output rows of TN / `rows` positions each (template RY).
    pub fn window_rows(self, rows: usize) -> Self {
        self.switch("RY", rows as u32)
    }
    /// The sliding window's first `rows` rows of each tile read weights shared by the samples,
    /// loaded once per subgroup and broadcast (template WS, conv_forward.wgsl), on a device
    /// whose subgroups are WX lanes.
    pub fn broadcast_rows(self, rows: usize) -> Self {
        self.switch("WS", rows as u32)
    }
    /// The sliding window's lanes are chunks of one sample's positions, not samples (template
    /// WC = 1, conv_forward.wgsl `chunk_tile`): per-sample weights are then the same across a
    /// subgroup and are broadcast like shared ones.
    pub fn chunk_lanes(self) -> Self {
        self.switch("WC", 1)
    }
    /// The grouped-GEMM template switches of matmul.wgsl (0, 0: a plain GEMM).
    pub fn grouping(self, rows: u32, k: u32) -> Self {
        self.switch("GROUP_ROWS", rows).switch("GROUP_K", k)
    }
    /// Template parameter `name` set to `value`, replacing any earlier value.
    fn switch(mut self, name: &'static str, value: u32) -> Self {
        self.template.retain(|(n, _)| *n != name);
        self.template.push((name, value));
        self
    }
    pub fn args(mut self, args: &[Arg]) -> Self {
        self.args = args.to_vec();
        self
    }
    pub fn params(mut self, params: &[u32]) -> Self {
        self.params = params.to_vec();
        self
    }
    pub fn constant(mut self, name: &'static str, v: f64) -> Self {
        self.constants.push((name, v));
        self
    }
    /// 1-D launch of `threads` invocations in workgroups of `wg` (folded into 2-D when large).
    pub fn threads(mut self, threads: usize, wg: u32) -> Self {
        self.workgroups = crate::gpu::grid_1d((threads as u32).div_ceil(wg));
        self
    }
    pub fn groups(mut self, groups: u32) -> Self {
        self.workgroups = crate::gpu::grid_1d(groups);
        self
    }
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub calls: Vec<KernelCall>,
    /// Bytes of each scratch buffer.
    pub scratch: Vec<u64>,
}

impl Plan {
    pub fn one(call: KernelCall) -> Self {
        Plan {
            calls: vec![call],
            scratch: vec![],
        }
    }
}

/// What a plan may know about the device.
#[derive(Clone, Debug)]
pub struct PlanCtx {
    /// CPU adapters (lavapipe) want few, fat workgroups; GPUs want many.
    pub is_cpu: bool,
    pub blocking: Blocking,
    /// Which kernel plain GEMMs run: fixed, or per shape class from the autotune table
    /// (classes not in it run the register-blocked kernel).
    pub gemm: GemmPolicy,
    pub tuning: Arc<TuneTable>,
    /// The fewest and most lanes of a subgroup, where the device has subgroup operations (the
    /// subgroup GEMM runs only then).
    pub subgroup_lanes: Option<[u32; 2]>,
    /// Data-parallel ranks that the training graph's BatchNorm statistics span (SyncBN).
    pub ranks: usize,
    /// The precision GEMMs and the convolution forward multiply in.
    pub precision: Precision,
    /// Bytes of per-sample kernels one DY-Conv/PAD-Conv chunk of samples may hold
    /// (`DynSpec::chunk`; `Gpu::chunk_bytes`): 3/4 of the device's storage-binding limit,
    /// 96 MiB under the portable 128 MiB. Each chunk is one dispatch after another, and on an
    /// H200 a chunk of 10 samples of a 512→512 layer at 4×4 took as long as the static
    /// convolution of all 64 (2.0 against 1.3 ms): fewer, larger chunks where the limit allows.
    pub chunk_bytes: usize,
    /// Sliding windows may broadcast the weights their samples share (static layers, a split
    /// layer's W_S rows), and the register and transposed convolutions the operand a row of
    /// lanes shares, by subgroup operations (`Gpu::weight_broadcast`;
    /// `conv::window::window_call`, `conv::with_row_broadcast`).
    pub weight_broadcast: bool,
    /// GPU convolutions with few workgroups may split their reduction over channels
    /// (`Gpu::split_k`; `conv::split_k`).
    pub split_k: bool,
    /// Which kernels GPU convolutions' forward and input gradient run, fixed or per class
    /// from the autotune table (`Gpu::conv`; conv/tiled.rs). CPU adapters run the
    /// register-blocked ones.
    pub conv: ConvPolicy,
    /// Weights that f16 multiplication reads are stored as f16 (`Gpu::half_weights`): the
    /// executor's f16 copy of the parameters, and DY-Conv/PAD's per-sample kernels
    /// (`conv::forward_call`, `dynconv::plan_forward`).
    pub half_weights: bool,
    /// While the autotune plans a graph to find its convolution classes: where classes the
    /// table lacks are collected (`executor::autotune`); none otherwise.
    pub conv_requests: Option<Arc<Mutex<Vec<ConvTuneRequest>>>>,
}

/// `PlanCtx::chunk_bytes` under the portable 128 MiB binding limit.
pub const PORTABLE_CHUNK_BYTES: usize = 96 << 20;

/// lavapipe (Mesa's gallivm) counts the loop iterations of an invocation, all its loops
/// together, and ends every loop once the count reaches 65 535 (`LP_MAX_TGSI_LOOP_ITERATIONS`,
/// one counter per invocation, never reset): a longer invocation silently returns partial
/// sums. Plans for CPU adapters keep an invocation's loops within this budget, a margin below
/// the limit (`PlanCtx::loop_items`; docs/architecture.md, "The loop limit").
pub const CPU_LOOP_BUDGET: usize = 60_000;

/// Splits of `n` items into runs of at most `most` (`PlanCtx::loop_items`), about `wanted`
/// of them: (items per split, splits).
pub fn split_runs(n: usize, wanted: usize, most: usize) -> (usize, usize) {
    let per_split = n.div_ceil(wanted.clamp(1, n.max(1))).min(most).max(1);
    (per_split, n.div_ceil(per_split))
}

impl PlanCtx {
    pub fn for_device(device_type: wgpu::DeviceType) -> Self {
        let is_cpu = device_type == wgpu::DeviceType::Cpu;
        PlanCtx {
            is_cpu,
            blocking: Blocking::for_device(device_type),
            gemm: GemmPolicy::Fixed(GemmKernel::Registers),
            tuning: Arc::new(TuneTable::in_memory()),
            subgroup_lanes: None,
            ranks: 1,
            precision: Precision::F32,
            chunk_bytes: PORTABLE_CHUNK_BYTES,
            weight_broadcast: true,
            split_k: true,
            conv: ConvPolicy::Fixed(ConvKernel::Registers),
            half_weights: true,
            conv_requests: None,
        }
    }

    /// The context node `i` of `graph` is planned in: gradients (the nodes
    /// `autodiff::backward` appended) multiply in f32 whatever the precision, so f16
    /// training multiplies only its forward pass in f16.
    pub fn for_node(&self, graph: &crate::graph::Graph, i: usize) -> PlanCtx {
        let backward = graph.backward_from.is_some_and(|b| i >= b);
        PlanCtx {
            precision: if backward {
                Precision::F32
            } else {
                self.precision
            },
            ..self.clone()
        }
    }

    /// How many items (samples of a batch split, ...) one invocation may loop over when each
    /// costs `per_item` loop iterations: on CPU adapters as many as `CPU_LOOP_BUDGET` allows
    /// (at least one), elsewhere any number.
    pub fn loop_items(&self, per_item: usize) -> usize {
        if self.is_cpu {
            (CPU_LOOP_BUDGET / per_item.max(1)).max(1)
        } else {
            usize::MAX
        }
    }

    /// The device's own context: its blocking, GEMM policy and autotune table.
    pub fn for_gpu(gpu: &crate::gpu::Gpu) -> Self {
        PlanCtx {
            blocking: gpu.blocking,
            gemm: gpu.gemm,
            tuning: gpu.tuning.clone(),
            subgroup_lanes: gpu.subgroup_lanes(),
            precision: gpu.precision,
            chunk_bytes: gpu.chunk_bytes,
            weight_broadcast: gpu.weight_broadcast,
            split_k: gpu.split_k,
            conv: gpu.conv,
            half_weights: gpu.half_weights,
            conv_requests: None,
            ..PlanCtx::for_device(gpu.info.device_type)
        }
    }
}

pub fn f(v: f32) -> u32 {
    v.to_bits()
}

pub fn u(v: usize) -> u32 {
    v as u32
}

/// The GPU plan of a node. Views (reshape) have no plan.
pub fn plan(op: &Op, ins: &[&Tensor], outs: &[&Tensor], ctx: &PlanCtx) -> Plan {
    match op {
        Op::Reshape { .. } => Plan::default(),
        Op::Permute { perm } => broadcast::plan_permute(&ins[0].shape, perm),
        Op::MatMul {
            trans_a,
            trans_b,
            accumulate,
        } => matmul::plan(
            *trans_a,
            *trans_b,
            *accumulate,
            &ins[0].shape,
            &ins[1].shape,
            ctx,
        ),
        Op::Add => broadcast::plan_binary(false, &ins[0].shape, &ins[1].shape),
        Op::Mul => broadcast::plan_binary(true, &ins[0].shape, &ins[1].shape),
        Op::SumTo { shape } => broadcast::plan_sum_to(&ins[0].shape, shape, ctx),
        Op::GroupedMatMul {
            trans_a,
            trans_b,
            by_k,
        } => matmul::plan_grouped(*trans_a, *trans_b, *by_k, ins, ctx),
        Op::MoeRoute { k, capacity } => moe::plan_route(*k, *capacity, ins),
        Op::MoeCombine { .. } | Op::MoeCombineGrad => moe::plan_combine(op, ins),
        Op::RandomNormal { .. }
        | Op::MoeLoadProb { .. }
        | Op::MoeLoadProbGrad { .. }
        | Op::CvSquared
        | Op::CvSquaredGrad => moe::plan_router(op, ins),
        Op::Scale(_)
        | Op::Dropout { .. }
        | Op::BiasAdd
        | Op::Unary(_)
        | Op::UnaryGrad(_)
        | Op::Accumulate => elementwise::plan(op, ins),
        Op::BiasGrad | Op::Sum { .. } | Op::Expand { .. } => {
            reduce::plan_reduce(op, ins, outs, ctx)
        }
        Op::Softmax
        | Op::SoftmaxGrad
        | Op::TopKGates { .. }
        | Op::CrossEntropy { .. }
        | Op::CrossEntropyGrad { .. }
        | Op::MseLoss
        | Op::MseLossGrad => softmax::plan(op, ins, ctx),
        Op::Conv2d(g) => conv::plan_forward(g, ctx),
        Op::Conv2dGradInput(g) => conv::plan_grad_input(g, ctx),
        Op::DynConv2d(s) => dynconv::plan_forward(s, ctx),
        Op::DynConv2dGrad(s) => dynconv::plan_backward(s, ctx),
        Op::SplitDynConv2d { spec, statics } => dynconv::plan_split_forward(spec, *statics, ctx),
        Op::PadMix(s) => dynconv::plan_mix_forward(s),
        Op::PadMixGrad(s) => dynconv::plan_mix_backward(s),
        Op::Conv2dGradWeight(g) => conv::plan_grad_weight(g, ctx),
        Op::BatchNorm { .. } | Op::BatchNormGrad { .. } => batchnorm::plan(op, ins, ctx),
        Op::LayerNorm { .. } | Op::LayerNormGrad => layernorm::plan(op, ins, ctx),
        Op::Embedding | Op::EmbeddingGrad { .. } | Op::MoeDispatch | Op::MergeChannels => {
            gather::plan(op, ins, ctx)
        }
        Op::MaxPool2d(g) | Op::MaxPool2dGrad(g) | Op::AvgPool2d(g) | Op::AvgPool2dGrad(g) => {
            pool::plan(op, g)
        }
    }
}

//! GPU launch plans, one file per op family. A plan lists kernel calls (shader, entry point,
//! override constants, bindings, uniform parameters, workgroup counts); `graph::compile` turns
//! each into a pipeline + bind group once, and a step replays them.

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
pub mod softmax;

use crate::graph::{Op, Tensor};

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
        }
    }
    pub fn blocking(mut self, b: Blocking) -> Self {
        self.template = b.template().to_vec();
        self
    }
    /// The grouped-GEMM template switches of matmul.wgsl (0, 0: a plain GEMM).
    pub fn grouping(mut self, rows: u32, k: u32) -> Self {
        self.template.retain(|(n, _)| !n.starts_with("GROUP_"));
        self.template.extend([("GROUP_ROWS", rows), ("GROUP_K", k)]);
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

/// Register blocking of the GEMM-like kernels: each invocation computes `tm x tn` outputs, a
/// workgroup of `wx x wy` invocations a `(tm*wy) x (tn*wx)` tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    pub tm: usize,
    pub tn: usize,
    pub wx: usize,
    pub wy: usize,
}

impl Blocking {
    /// CPU adapters (lavapipe): loads cost far more than FMAs, so amortise each load over many
    /// FMAs. 16x32 measured fastest (~30 GFLOP/s at 1024^3 vs ~15 for 8x8 on 2 cores).
    pub const CPU: Blocking = Blocking {
        tm: 16,
        tn: 32,
        wx: 8,
        wy: 4,
    };
    /// CPU adapters, GEMMs with a transposed B (linear layers: x·Wᵀ): each lane loads its
    /// columns of B at a stride of K, so taller blocks amortise those loads over more rows.
    /// Measured on MiniLM's FFN output projection (k = 1536): 32x16 blocks 104 ms, 16x16
    /// blocks 126 ms per grouped expert GEMM.
    pub const CPU_TRANS_B: Blocking = Blocking {
        tm: 32,
        tn: 16,
        wx: 8,
        wy: 2,
    };
    /// GPUs: small blocks, many invocations. On an H100 (Vulkan) 4x4 blocks in 16x16
    /// workgroups measured best overall: GEMM 1024³ 8.9 TFLOP/s vs 7.4 for 8x8 in 8x8.
    pub const GPU: Blocking = Blocking {
        tm: 4,
        tn: 4,
        wx: 16,
        wy: 16,
    };

    /// This blocking adapted to a `rows` x `cols` output. Invocations whose rows all lie past
    /// the end exit at once, so only waste *inside* an invocation's block costs: its row block
    /// shrinks while half of it still covers every row (depthwise: 1 row), and its column
    /// count is chosen by a cost model in which a load costs ~16 FMAs (measured on lavapipe:
    /// 16x32 blocks run twice as fast as 8x8), counting the partly filled last column tile.
    pub fn fit(&self, rows: usize, cols: usize) -> Blocking {
        const LOAD_COST: usize = 16;
        let mut b = *self;
        while b.tm > 1 && b.tm / 2 >= rows {
            b.tm /= 2;
        }
        let cost = |tn: usize| cols.div_ceil(tn * b.wx) * ((b.tm + tn) * LOAD_COST + b.tm * tn);
        let mut tn = self.tn;
        let mut best = self.tn;
        while tn >= 4 {
            if cost(tn) < cost(best) {
                best = tn;
            }
            tn /= 2;
        }
        b.tn = best;
        b
    }

    /// For outputs narrower than a tile (MoE routers: E = 8 columns), moves invocations from
    /// columns to rows: the lanes past the last column would compute clamped duplicates
    /// (4× the work at 8 columns with CPU blocks). The workgroup keeps its size.
    pub fn narrow(&self, cols: usize) -> Blocking {
        let mut b = *self;
        while b.wx > 1 && b.tn * (b.wx / 2) >= cols {
            b.wx /= 2;
            b.wy *= 2;
        }
        b
    }

    /// `cpu`, `gpu`, or `TMxTNxWXxWY` (e.g. `8x16x16x8`); TN a multiple of 4, ≤ 256 invocations.
    pub fn parse(spec: &str) -> crate::Result<Blocking> {
        let b = match spec {
            "cpu" => Blocking::CPU,
            "gpu" => Blocking::GPU,
            _ => {
                let v: Vec<usize> = spec.split('x').filter_map(|p| p.parse().ok()).collect();
                let [tm, tn, wx, wy] = v[..] else {
                    return Err(crate::Error::Invalid(format!(
                        "blocking '{spec}': expected cpu, gpu or TMxTNxWXxWY"
                    )));
                };
                Blocking { tm, tn, wx, wy }
            }
        };
        if b.tm == 0 || b.tn == 0 || b.tn % 4 != 0 || b.wx * b.wy == 0 || b.wx * b.wy > 256 {
            return Err(crate::Error::Invalid(format!(
                "blocking {b:?}: need TM ≥ 1, TN a multiple of 4, 1..=256 invocations"
            )));
        }
        Ok(b)
    }

    pub fn rows(&self) -> usize {
        self.tm * self.wy
    }
    pub fn cols(&self) -> usize {
        self.tn * self.wx
    }
    pub fn template(&self) -> [(&'static str, u32); 4] {
        [
            ("TM", self.tm as u32),
            ("TN", self.tn as u32),
            ("WX", self.wx as u32),
            ("WY", self.wy as u32),
        ]
    }
}

/// What a plan may know about the device.
#[derive(Clone, Copy, Debug)]
pub struct PlanCtx {
    /// CPU adapters (lavapipe) want few, fat workgroups; GPUs want many.
    pub is_cpu: bool,
    pub blocking: Blocking,
}

impl PlanCtx {
    pub fn for_device(device_type: wgpu::DeviceType) -> Self {
        let is_cpu = device_type == wgpu::DeviceType::Cpu;
        PlanCtx {
            is_cpu,
            blocking: if is_cpu { Blocking::CPU } else { Blocking::GPU },
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
        Op::BiasGrad | Op::Sum { .. } | Op::Expand { .. } => reduce::plan_reduce(op, ins, outs),
        Op::Softmax
        | Op::SoftmaxGrad
        | Op::TopKGates { .. }
        | Op::CrossEntropy { .. }
        | Op::CrossEntropyGrad { .. }
        | Op::MseLoss
        | Op::MseLossGrad => softmax::plan(op, ins),
        Op::Conv2d(g) => conv::plan_forward(g, ctx),
        Op::Conv2dGradInput(g) => conv::plan_grad_input(g, ctx),
        Op::DynConv2d(s) => dynconv::plan_forward(s, ctx),
        Op::DynConv2dGrad(s) => dynconv::plan_backward(s, ctx),
        Op::PadMix(s) => dynconv::plan_mix_forward(s),
        Op::PadMixGrad(s) => dynconv::plan_mix_backward(s),
        Op::Conv2dGradWeight(g) => conv::plan_grad_weight(g, ctx),
        Op::BatchNorm { .. } | Op::BatchNormGrad { .. } => batchnorm::plan(op, ins),
        Op::LayerNorm { .. } | Op::LayerNormGrad => layernorm::plan(op, ins),
        Op::Embedding | Op::EmbeddingGrad { .. } | Op::MoeDispatch => gather::plan(op, ins),
        Op::MaxPool2d(g) | Op::MaxPool2dGrad(g) | Op::AvgPool2d(g) | Op::AvgPool2dGrad(g) => {
            pool::plan(op, g)
        }
    }
}

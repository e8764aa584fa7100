//! The op set. Each op has a shape rule (`infer`, shape.rs), a gradient rule (`grad`, in terms
//! of other ops, grad.rs), a GPU plan (`kernels::*::plan`, WGSL next to it) and a CPU reference
//! (`kernels::*::reference`).

use super::params::{ConvGeom, DynSpec, MixSpec, PoolGeom};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Relu,
    Relu6,
    /// erf form, as PyTorch's default `nn.GELU()`.
    Gelu,
    Sigmoid,
    Tanh,
    /// ln(1 + eˣ) (the MoE router's noise scale).
    Softplus,
}

impl Act {
    /// `ACT` of no activation (a BatchNorm without a fused one).
    pub const NONE_CODE: u32 = 6;

    /// `ACT` of the shaders (`src/kernels/include/activation.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            Act::Relu => 0,
            Act::Relu6 => 1,
            Act::Gelu => 2,
            Act::Sigmoid => 3,
            Act::Tanh => 4,
            Act::Softplus => 5,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `op(A)·op(B)`, A `[..., M, K]` (or `[..., K, M]` with trans_a), B `[..., K, N]`
    /// (or `[..., N, K]`); B may be 2-D and shared by every batch of A.
    MatMul {
        trans_a: bool,
        trans_b: bool,
        accumulate: bool,
    },
    /// MoE experts as one launch (`groups` u32 [E+1], nondecreasing). Row-grouped (`by_k`
    /// false): `(A [R, K], B [E, N, K] with trans_b or [E, K, N], groups) → C [R, N]`, rows
    /// `groups[e]..groups[e+1]` of A times op(B_e). K-grouped (`by_k`, trans_a): `(A [R, M],
    /// B [R, N], groups) → C [E, M, N]`, C_e = A_eᵀ·B_e over those rows (the weight gradient).
    GroupedMatMul {
        trans_a: bool,
        trans_b: bool,
        by_k: bool,
    },
    /// MoE dispatch plan from gates [N, E] (k nonzero per row): `order` and `slot_expert` u32
    /// [N·k] — each slot's token and expert, slots grouped by expert and tokens ascending
    /// within one —, `token_slots` u32 [N, k] — each token's slots in expert order — and
    /// `groups` u32 [E+1], the expert boundaries. An expert takes at most `capacity` tokens
    /// (the first ones; the rest are dropped, GShard's capacity). Unused slots (dropped
    /// tokens, gates that underflowed to 0, padding) hold N, E and N·k: past every table.
    MoeRoute {
        k: usize,
        capacity: usize,
    },
    /// MoE dispatch: `(x [N, D], order [S], token_slots [N, k]) → xs [S, D]`, the token row
    /// of every slot (zero for unused slots). Its gradient is the unweighted `MoeCombine`.
    MoeDispatch,
    /// Channels of two NCHW tensors merged in a given order: `(a [B, Ca, H, W], b [B, Cb, H,
    /// W], from [Ca + Cb]) → [B, Ca + Cb, H, W]`, output channel c being a's channel from[c]
    /// if from[c] < Ca, else b's channel from[c] − Ca (`from` holds integers, as f32). The
    /// static and dynamic filters of a split PAD-Conv (`nn::dynamic`); inference only.
    MergeChannels,
    /// MoE combine, a gather-sum per token (no scatter). Unweighted: `(ys [S, D], token_slots
    /// [N, k], order [S]) → y [N, D]`, `y[t] = Σ_j ys[s_j]` over the token's used slots s_j =
    /// `token_slots[t, j]`. Weighted (the experts' outputs with their biases, by the gates):
    /// `(ys, token_slots, order, gates [N, E], slot_expert [S], bias [E, D], groups [E+1]) →
    /// y`, `y[t] = Σ_j gates[t, e_j] · (ys[s_j] + bias[e_j])`, e_j = `slot_expert[s_j]`.
    MoeCombine {
        weighted: bool,
    },
    /// Gradient of the weighted `MoeCombine`: `(its 7 inputs, dy) → (dys [S, D], dgates
    /// [N, E], dbias [E, D])`.
    MoeCombineGrad,
    /// Same data, new shape (a view: no dispatch).
    Reshape {
        shape: Vec<usize>,
    },
    /// Axes reordered: output axis k is input axis `perm[k]` (as `torch.permute`).
    Permute {
        perm: Vec<usize>,
    },
    /// `a + b`, with `b` broadcast NumPy-style to the shape of `a`.
    Add,
    /// `a ⊙ b`, with `b` broadcast NumPy-style to the shape of `a`.
    Mul,
    /// Sums a tensor down to `shape` (which broadcasts to its shape): the gradient of a
    /// broadcast operand.
    SumTo {
        shape: Vec<usize>,
    },
    /// Elementwise `s·x` (with s = 1 also the explicit copy autodiff uses for gradient slots).
    Scale(f32),
    /// Inverted dropout `(x, seed u32 [1]) → x ⊙ keep / (1 − p)`, the keep mask a hash of
    /// (seed, salt, element): no mask is stored, and since the op is linear in x for a fixed
    /// seed, its gradient is the same op applied to dy. `salt` tells dropout sites apart.
    Dropout {
        p: f32,
        salt: u32,
    },
    /// `(acc, x)`: `acc += x` in place; no outputs. Accumulates across runs (IMP scores).
    Accumulate,
    /// `x[n, c, ...] + b[c]`.
    BiasAdd,
    /// `sum over n and spatial of dy[n, c, ...]` → `[c]` (gradient of BiasAdd's bias).
    BiasGrad,
    Unary(Act),
    /// `(x, dy) → dy ⊙ f'(x)`.
    UnaryGrad(Act),
    /// Sum (or mean) over the contiguous axes `start..end`; those axes are removed. With
    /// `over_ranks` the sum spans the global batch: in a graph compiled for several
    /// data-parallel ranks every rank's sums are added (the MoE balance statistics;
    /// docs/distributed.md). The gradient reaches each rank's own elements either way.
    Sum {
        start: usize,
        end: usize,
        mean: bool,
        over_ranks: bool,
    },
    /// Broadcast of a reduced tensor back to `shape` (gradient of `Sum`).
    Expand {
        shape: Vec<usize>,
        start: usize,
        end: usize,
        mean: bool,
    },
    /// Softmax over the last axis.
    Softmax,
    /// `(y, dy) → y ⊙ (dy − <y, dy>)` per row.
    SoftmaxGrad,
    /// `(seed u32 [1]) → ε` of `shape`, standard normal (Box–Muller on two hashes of seed,
    /// salt and element, as dropout). Not differentiable.
    RandomNormal {
        shape: Vec<usize>,
        salt: u32,
    },
    /// Noisy top-k's smooth load estimate (docs/method.md §1.3): `(clean h, noisy ĥ, σ) [N, E] →
    /// P = Φ((h − θ)/σ)`, θ the (k+1)-th largest ĥ of the row when ĥ is above it, else the
    /// k-th largest (k < E).
    MoeLoadProb {
        k: usize,
    },
    /// `(h, ĥ, σ, dP) → (dh, dĥ, dσ)`; dĥ carries the threshold terms (θ is one of the ĥ).
    MoeLoadProbGrad {
        k: usize,
    },
    /// `v [E] → cv²(v) = Var(v)/(mean(v)² + 1e−10)` [1] with the unbiased variance (0 for
    /// E = 1): the MoE balance penalty.
    CvSquared,
    /// `(v, dy [1]) → dv`.
    CvSquaredGrad,
    /// MoE gates (docs/method.md §1.3): per row of logits [.., E], softmax over the k largest
    /// (ties to the lower index), 0 elsewhere. Its gradient is `SoftmaxGrad` on the gates,
    /// which vanishes outside the top k; no gradient flows through the selection.
    TopKGates {
        k: usize,
    },
    /// `(logits [B,C], labels u32 [B], metrics state [3]) → (loss [1], probs [B,C])`.
    /// Label smoothing puts `1−ε` on the target and `ε/(C−1)` on each other class.
    /// Also accumulates (Σ loss, #correct, #samples) into the metrics state.
    CrossEntropy {
        smoothing: f32,
    },
    /// `(probs, labels, dloss [1]) → dlogits = (probs − q)·dloss/B`.
    CrossEntropyGrad {
        smoothing: f32,
    },
    /// Regression loss: `(pred [B, 1], targets [B], metrics state [3]) → loss [1]`, the mean
    /// of (pred − target)² (PyTorch's MSELoss, as Hugging Face uses for STS-B). Also
    /// accumulates (Σ squared error, 0, #samples) into the metrics state.
    MseLoss,
    /// `(pred, targets, dloss [1]) → dpred = 2(pred − target)·dloss/B`.
    MseLossGrad,
    Conv2d(ConvGeom),
    /// `(dy, w) → dx`.
    Conv2dGradInput(ConvGeom),
    /// `(x, dy) → dw`.
    Conv2dGradWeight(ConvGeom),
    /// Dynamic / PAD convolution (docs/method.md §1.1–1.2):
    /// `(x, alpha [B,K], kernels [K,O,C/g,kh,kw][, static [1,O,..], mask [1,O,..], phi [1]])
    /// → y`.
    DynConv2d(DynSpec),
    /// `(forward inputs..., dy) → (dx, dalpha, dkernels[, dstatic, dphi, dmask])`; dmask is
    /// ∂L/∂M summed over the batch (IMP's score).
    DynConv2dGrad(DynSpec),
    /// A deployed PAD-Conv layer whose dynamic positions are whole filters (docs/method.md §5):
    /// `(x, alpha [B, K], kernels [K, O_d, C, kh, kw], static [1, O_s, C, kh, kw],
    /// order [2, O]) → y [B, O, ..]`, `spec` the dynamic filters' DY-Conv (λ folded in:
    /// `Lambda::None`). With `row_of` = order[0], filter f is W_S's filter row_of[f] if
    /// row_of[f] < O_s, else sample n's Σ_k α_nk W'_k filter row_of[f] − O_s; order[1] is the
    /// inverse permutation (integers, as f32). Inference only.
    SplitDynConv2d {
        spec: DynSpec,
        statics: usize,
    },
    /// PAD-MoE's effective experts (docs/method.md §1.4):
    /// `(experts [E, ...], static [...], mask [...], phi [1]) → W~ [E, ...]`.
    PadMix(MixSpec),
    /// `(forward inputs..., dW~) → (dexperts, dstatic, dphi, dmask)`; dmask is ∂L/∂M.
    PadMixGrad(MixSpec),
    /// Train: `(x, γ, β, running_mean, running_var) → (y, batch_mean, inv_std)` and the running
    /// statistics are updated in place. Eval: same inputs → `(y)` from the running statistics.
    /// `act` fuses a following ReLU or ReLU6 (`y = act(bn(x))`).
    BatchNorm {
        eps: f32,
        momentum: f32,
        train: bool,
        act: Option<Act>,
    },
    /// `(x, γ, batch_mean, inv_std, dy, y) → (dx, dγ, dβ)`; `y` (the forward output) masks
    /// `dy` through the fused activation. With `eval`, the gradient of eval-mode BatchNorm:
    /// inputs `(x, γ, running_mean, running_var, dy, y)` (used by IMP, which runs in eval mode).
    BatchNormGrad {
        act: Option<Act>,
        eval: bool,
        eps: f32,
    },
    /// LayerNorm over the last axis: `(x, γ, β) → (y, mean, inv_std)`.
    LayerNorm {
        eps: f32,
    },
    /// `(x, γ, mean, inv_std, dy) → (dx, dγ, dβ)`.
    LayerNormGrad,
    /// `(table [V, D], ids u32 [...]) → [..., D]`; ids ≥ V give zero rows.
    Embedding,
    /// `(dy [..., D], ids) → dtable [vocab, D]` (each row sums its tokens' gradients).
    EmbeddingGrad {
        vocab: usize,
    },
    /// `x → (y, argmax u32)`.
    MaxPool2d(PoolGeom),
    /// `(dy, argmax) → dx`.
    MaxPool2dGrad(PoolGeom),
    /// Average pool, padding counted (PyTorch's `count_include_pad=True`).
    AvgPool2d(PoolGeom),
    AvgPool2dGrad(PoolGeom),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::MatMul { .. } => "matmul",
            Op::Reshape { .. } => "reshape",
            Op::GroupedMatMul { .. } => "grouped_matmul",
            Op::MoeRoute { .. } => "moe_route",
            Op::MoeDispatch => "moe_dispatch",
            Op::MergeChannels => "merge_channels",
            Op::MoeCombine { .. } => "moe_combine",
            Op::MoeCombineGrad => "moe_combine_grad",
            Op::Permute { .. } => "permute",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::SumTo { .. } => "sum_to",
            Op::Scale(_) => "scale",
            Op::Dropout { .. } => "dropout",
            Op::Accumulate => "accumulate",
            Op::BiasAdd => "bias_add",
            Op::BiasGrad => "bias_grad",
            Op::Unary(_) => "unary",
            Op::UnaryGrad(_) => "unary_grad",
            Op::Sum { .. } => "sum",
            Op::Expand { .. } => "expand",
            Op::Softmax => "softmax",
            Op::SoftmaxGrad => "softmax_grad",
            Op::TopKGates { .. } => "topk_gates",
            Op::RandomNormal { .. } => "random_normal",
            Op::MoeLoadProb { .. } => "moe_load_prob",
            Op::MoeLoadProbGrad { .. } => "moe_load_prob_grad",
            Op::CvSquared => "cv_squared",
            Op::CvSquaredGrad => "cv_squared_grad",
            Op::CrossEntropy { .. } => "cross_entropy",
            Op::CrossEntropyGrad { .. } => "cross_entropy_grad",
            Op::MseLoss => "mse_loss",
            Op::MseLossGrad => "mse_loss_grad",
            Op::Conv2d(_) => "conv2d",
            Op::Conv2dGradInput(_) => "conv2d_grad_input",
            Op::Conv2dGradWeight(_) => "conv2d_grad_weight",
            Op::DynConv2d(s) if s.pad => "pad_conv2d",
            Op::DynConv2d(_) => "dyn_conv2d",
            Op::SplitDynConv2d { .. } => "split_conv2d",
            Op::DynConv2dGrad(s) if s.pad => "pad_conv2d_grad",
            Op::DynConv2dGrad(_) => "dyn_conv2d_grad",
            Op::PadMix(_) => "pad_mix",
            Op::PadMixGrad(_) => "pad_mix_grad",
            Op::BatchNorm { .. } => "batchnorm",
            Op::BatchNormGrad { .. } => "batchnorm_grad",
            Op::LayerNorm { .. } => "layernorm",
            Op::LayerNormGrad => "layernorm_grad",
            Op::Embedding => "embedding",
            Op::EmbeddingGrad { .. } => "embedding_grad",
            Op::MaxPool2d(_) => "maxpool2d",
            Op::MaxPool2dGrad(_) => "maxpool2d_grad",
            Op::AvgPool2d(_) => "avgpool2d",
            Op::AvgPool2dGrad(_) => "avgpool2d_grad",
        }
    }

    /// Input indices this op writes in place (persistent state such as running statistics).
    pub fn mutated_inputs(&self) -> &'static [usize] {
        match self {
            Op::BatchNorm { train: true, .. } => &[3, 4],
            Op::CrossEntropy { .. } | Op::MseLoss => &[2],
            Op::Accumulate => &[0],
            _ => &[],
        }
    }
}

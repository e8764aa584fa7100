//! The op set. Each op has a shape rule (`infer`), a gradient rule (`grad`, in terms of other
//! ops), a GPU plan (`ops::*::plan`, WGSL in `shaders/`) and a CPU reference (`reference::*`).

use super::{DType, Graph, Tensor, TensorId};
use crate::error::{Error, Result};
use crate::ops::conv::ConvGeom;
use crate::ops::dynconv::{DynSpec, MixSpec};
use crate::ops::pool::PoolGeom;

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

    /// `ACT` of the shaders (`shaders/include/activation.wgsl`).
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
    /// Sum (or mean) over the contiguous axes `start..end`; those axes are removed.
    Sum {
        start: usize,
        end: usize,
        mean: bool,
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

fn expect_inputs(op: &Op, ins: &[&Tensor], n: usize) -> Result<()> {
    if ins.len() != n {
        return Err(Error::shape(
            op.name(),
            format!("expects {n} inputs, got {}", ins.len()),
        ));
    }
    Ok(())
}

fn same(op: &Op, what: &str, a: &[usize], b: &[usize]) -> Result<()> {
    if a != b {
        return Err(Error::shape(op.name(), format!("{what}: {a:?} vs {b:?}")));
    }
    Ok(())
}

/// The routing tables of a MoE dispatch or combine: `order` u32 [S] and `token_slots` u32
/// [N, k] with N·k = S (and N the rows of x when given).
fn moe_tables(op: &Op, order: &Tensor, slots: &Tensor, rows: Option<usize>) -> Result<()> {
    let s = &slots.shape;
    let ok = order.dtype == DType::U32
        && slots.dtype == DType::U32
        && s.len() == 2
        && order.shape == [s[0] * s[1]]
        && rows.is_none_or(|n| n == s[0]);
    if !ok {
        return Err(Error::shape(
            op.name(),
            format!(
                "order {:?} {:?} and token_slots {s:?} {:?} (need u32 [N·k] and [N, k], N = {rows:?})",
                order.shape, order.dtype, slots.dtype
            ),
        ));
    }
    Ok(())
}

/// The inputs of a MoE combine: ys [S, D], token_slots, order and, weighted, gates [N, E],
/// slot_expert u32 [S], bias [E, D] and groups u32 [E+1].
fn moe_combine_inputs(op: &Op, ins: &[&Tensor]) -> Result<()> {
    let (ys, slots, order) = (&ins[0].shape, ins[1], ins[2]);
    moe_tables(op, order, slots, None)?;
    if ys.len() != 2 || ys[0] != order.numel() {
        return Err(Error::shape(
            op.name(),
            format!("ys {ys:?} vs order {:?}", order.shape),
        ));
    }
    if ins.len() == 7 {
        let (n, s, d) = (slots.shape[0], order.numel(), ys[1]);
        let (gates, expert, bias, groups) = (&ins[3].shape, ins[4], &ins[5].shape, ins[6]);
        let e = gates.get(1).copied().unwrap_or(0);
        let ok = gates.len() == 2
            && gates[0] == n
            && expert.dtype == DType::U32
            && expert.shape == [s]
            && bias == &[e, d]
            && groups.dtype == DType::U32
            && groups.shape == [e + 1];
        if !ok {
            return Err(Error::shape(
                op.name(),
                format!(
                    "gates {gates:?} (need [{n}, E]), slot_expert {:?} (need u32 [{s}]), bias \
                     {bias:?} (need [E, {d}]), groups {:?} (need u32 [E+1])",
                    expert.shape, groups.shape
                ),
            ));
        }
    }
    Ok(())
}

type Spec = Vec<(Vec<usize>, DType)>;

fn f32s(shapes: Vec<Vec<usize>>) -> Spec {
    shapes.into_iter().map(|s| (s, DType::F32)).collect()
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::MatMul { .. } => "matmul",
            Op::Reshape { .. } => "reshape",
            Op::GroupedMatMul { .. } => "grouped_matmul",
            Op::MoeRoute { .. } => "moe_route",
            Op::MoeDispatch => "moe_dispatch",
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

    /// Output shapes and dtypes, or an error naming the op and the offending shapes.
    pub fn infer(&self, ins: &[&Tensor]) -> Result<Spec> {
        use crate::ops;
        match self {
            Op::MatMul {
                trans_a, trans_b, ..
            } => {
                expect_inputs(self, ins, 2)?;
                Ok(f32s(vec![ops::matmul::out_shape(
                    *trans_a,
                    *trans_b,
                    &ins[0].shape,
                    &ins[1].shape,
                )?]))
            }
            Op::Reshape { shape } => {
                expect_inputs(self, ins, 1)?;
                if super::numel(shape) != ins[0].numel() {
                    return Err(Error::shape(
                        self.name(),
                        format!("cannot view {:?} as {:?}", ins[0].shape, shape),
                    ));
                }
                Ok(vec![(shape.clone(), ins[0].dtype)])
            }
            Op::Permute { perm } => {
                expect_inputs(self, ins, 1)?;
                crate::ops::broadcast::check_perm(&ins[0].shape, perm)?;
                Ok(vec![(
                    perm.iter().map(|&a| ins[0].shape[a]).collect(),
                    ins[0].dtype,
                )])
            }
            Op::Add | Op::Mul => {
                expect_inputs(self, ins, 2)?;
                crate::ops::broadcast::fold(self.name(), &ins[0].shape, &ins[1].shape)?;
                Ok(f32s(vec![ins[0].shape.clone()]))
            }
            Op::Accumulate => {
                expect_inputs(self, ins, 2)?;
                same(self, "accumulator vs value", &ins[0].shape, &ins[1].shape)?;
                Ok(vec![])
            }
            Op::SumTo { shape } => {
                expect_inputs(self, ins, 1)?;
                crate::ops::broadcast::fold(self.name(), &ins[0].shape, shape)?;
                Ok(f32s(vec![shape.clone()]))
            }
            Op::BiasAdd => {
                expect_inputs(self, ins, 2)?;
                let (x, b) = (&ins[0].shape, &ins[1].shape);
                if x.len() < 2 || b.len() != 1 || b[0] != x[1] {
                    return Err(Error::shape(self.name(), format!("x {x:?} vs bias {b:?}")));
                }
                Ok(f32s(vec![x.clone()]))
            }
            Op::BiasGrad => {
                expect_inputs(self, ins, 1)?;
                let x = &ins[0].shape;
                if x.len() < 2 {
                    return Err(Error::shape(
                        self.name(),
                        format!("dy {x:?} has no channel axis"),
                    ));
                }
                Ok(f32s(vec![vec![x[1]]]))
            }
            Op::Unary(_) | Op::Scale(_) => {
                expect_inputs(self, ins, 1)?;
                Ok(f32s(vec![ins[0].shape.clone()]))
            }
            Op::Dropout { p, .. } => {
                expect_inputs(self, ins, 2)?;
                if ins[1].dtype != DType::U32 || ins[1].numel() != 1 || !(0.0..1.0).contains(p) {
                    return Err(Error::shape(
                        self.name(),
                        format!("needs a u32 [1] seed and 0 ≤ p < 1 (p = {p})"),
                    ));
                }
                Ok(f32s(vec![ins[0].shape.clone()]))
            }
            Op::UnaryGrad(_) | Op::SoftmaxGrad => {
                expect_inputs(self, ins, 2)?;
                same(self, "x vs dy", &ins[0].shape, &ins[1].shape)?;
                Ok(f32s(vec![ins[0].shape.clone()]))
            }
            Op::Sum { start, end, .. } => {
                expect_inputs(self, ins, 1)?;
                let s = &ins[0].shape;
                if start >= end || *end > s.len() {
                    return Err(Error::shape(
                        self.name(),
                        format!("axes {start}..{end} of {s:?}"),
                    ));
                }
                let mut out: Vec<usize> = s[..*start].to_vec();
                out.extend_from_slice(&s[*end..]);
                Ok(f32s(vec![out]))
            }
            Op::Expand {
                shape, start, end, ..
            } => {
                expect_inputs(self, ins, 1)?;
                if start >= end || *end > shape.len() {
                    return Err(Error::shape(
                        self.name(),
                        format!("axes {start}..{end} of {shape:?}"),
                    ));
                }
                let mut reduced: Vec<usize> = shape[..*start].to_vec();
                reduced.extend_from_slice(&shape[*end..]);
                same(self, "reduced input", &ins[0].shape, &reduced)?;
                Ok(f32s(vec![shape.clone()]))
            }
            Op::Softmax => {
                expect_inputs(self, ins, 1)?;
                if ins[0].shape.is_empty() {
                    return Err(Error::shape(self.name(), "scalar input"));
                }
                Ok(f32s(vec![ins[0].shape.clone()]))
            }
            Op::GroupedMatMul {
                trans_a,
                trans_b,
                by_k,
            } => {
                expect_inputs(self, ins, 3)?;
                if ins[2].dtype != DType::U32 {
                    return Err(Error::shape(self.name(), "groups must be u32"));
                }
                let (.., out) = crate::ops::matmul::grouped_dims(
                    *trans_a,
                    *trans_b,
                    *by_k,
                    &ins[0].shape,
                    &ins[1].shape,
                    &ins[2].shape,
                )?;
                Ok(f32s(vec![out]))
            }
            Op::MoeRoute { k, .. } => {
                expect_inputs(self, ins, 1)?;
                let s = &ins[0].shape;
                if s.len() != 2 || *k == 0 || *k > s[1] {
                    return Err(Error::shape(
                        self.name(),
                        format!("gates {s:?} with k = {k} (need [N, E], 1 ≤ k ≤ E)"),
                    ));
                }
                let r = vec![s[0] * k];
                Ok(vec![
                    (r.clone(), DType::U32),
                    (r, DType::U32),
                    (vec![s[0], *k], DType::U32),
                    (vec![s[1] + 1], DType::U32),
                ])
            }
            Op::MoeDispatch => {
                expect_inputs(self, ins, 3)?;
                let (x, order, slots) = (&ins[0].shape, ins[1], ins[2]);
                moe_tables(self, order, slots, x.first().copied())?;
                if x.len() != 2 || order.shape.len() != 1 {
                    return Err(Error::shape(
                        self.name(),
                        format!("x {x:?} (need [N, D]) and order {:?}", order.shape),
                    ));
                }
                Ok(f32s(vec![vec![order.shape[0], x[1]]]))
            }
            Op::MoeCombine { weighted } => {
                expect_inputs(self, ins, if *weighted { 7 } else { 3 })?;
                moe_combine_inputs(self, ins)?;
                Ok(f32s(vec![vec![ins[1].shape[0], ins[0].shape[1]]]))
            }
            Op::MoeCombineGrad => {
                expect_inputs(self, ins, 8)?;
                moe_combine_inputs(self, &ins[..7])?;
                let (ys, slots) = (&ins[0].shape, &ins[1].shape);
                same(self, "dy", &ins[7].shape, &[slots[0], ys[1]])?;
                Ok(f32s(vec![
                    ys.clone(),
                    ins[3].shape.clone(),
                    ins[5].shape.clone(),
                ]))
            }
            Op::RandomNormal { shape, .. } => {
                expect_inputs(self, ins, 1)?;
                if ins[0].dtype != DType::U32 || ins[0].numel() != 1 {
                    return Err(Error::shape(self.name(), "needs a u32 [1] seed"));
                }
                Ok(f32s(vec![shape.clone()]))
            }
            Op::MoeLoadProb { k } | Op::MoeLoadProbGrad { k } => {
                let n = if matches!(self, Op::MoeLoadProb { .. }) {
                    3
                } else {
                    4
                };
                expect_inputs(self, ins, n)?;
                let s = &ins[0].shape;
                for t in &ins[1..] {
                    same(self, "router tensors", &t.shape, s)?;
                }
                let e = s.last().copied().unwrap_or(0);
                if s.len() != 2 || *k == 0 || *k >= e || e > 32 {
                    return Err(Error::shape(
                        self.name(),
                        format!("{s:?} with k = {k} (need [N, E], 1 ≤ k < E ≤ 32)"),
                    ));
                }
                Ok(f32s(vec![s.clone(); if n == 3 { 1 } else { 3 }]))
            }
            Op::CvSquared | Op::CvSquaredGrad => {
                let grad = matches!(self, Op::CvSquaredGrad);
                expect_inputs(self, ins, 1 + grad as usize)?;
                if ins[0].shape.len() != 1 || (grad && ins[1].numel() != 1) {
                    return Err(Error::shape(self.name(), "needs v [E] (and dy [1])"));
                }
                Ok(f32s(vec![if grad {
                    ins[0].shape.clone()
                } else {
                    vec![1]
                }]))
            }
            Op::TopKGates { k } => {
                expect_inputs(self, ins, 1)?;
                let e = ins[0].shape.last().copied().unwrap_or(0);
                if *k == 0 || *k > e || e > 32 {
                    return Err(Error::shape(
                        self.name(),
                        format!("k = {k} of {e} experts (need 1 ≤ k ≤ E ≤ 32)"),
                    ));
                }
                Ok(f32s(vec![ins[0].shape.clone()]))
            }
            Op::CrossEntropy { smoothing } => {
                expect_inputs(self, ins, 3)?;
                let (l, y, m) = (&ins[0].shape, &ins[1], &ins[2].shape);
                if l.len() != 2 || y.shape != [l[0]] || y.dtype != DType::U32 || l[1] < 2 {
                    return Err(Error::shape(
                        self.name(),
                        format!(
                            "logits {l:?} (need [B, C≥2]) vs labels {:?} {:?}",
                            y.shape, y.dtype
                        ),
                    ));
                }
                if m != &[3] {
                    return Err(Error::shape(
                        self.name(),
                        format!("metrics state {m:?}, need [3]"),
                    ));
                }
                if !(0.0..1.0).contains(smoothing) {
                    return Err(Error::shape(
                        self.name(),
                        format!("label smoothing {smoothing} not in [0, 1)"),
                    ));
                }
                Ok(f32s(vec![vec![1], l.clone()]))
            }
            Op::MseLoss | Op::MseLossGrad => {
                expect_inputs(self, ins, 3)?;
                let (pr, t, last) = (&ins[0].shape, &ins[1], &ins[2].shape);
                let want_last: &[usize] = if *self == Op::MseLoss { &[3] } else { &[1] };
                if pr.len() != 2 || pr[1] != 1 || t.shape != [pr[0]] || t.dtype != DType::F32 {
                    return Err(Error::shape(
                        self.name(),
                        format!(
                            "predictions {pr:?} (need [B, 1]) vs targets {:?} {:?} (need f32 [B])",
                            t.shape, t.dtype
                        ),
                    ));
                }
                same(self, "metrics state / dloss", last, want_last)?;
                Ok(f32s(vec![if *self == Op::MseLoss {
                    vec![1]
                } else {
                    pr.clone()
                }]))
            }
            Op::CrossEntropyGrad { .. } => {
                expect_inputs(self, ins, 3)?;
                let p = &ins[0].shape;
                if p.len() != 2 || ins[1].shape != [p[0]] || ins[2].shape != [1] {
                    return Err(Error::shape(
                        self.name(),
                        format!(
                            "probs {p:?}, labels {:?}, dloss {:?}",
                            ins[1].shape, ins[2].shape
                        ),
                    ));
                }
                Ok(f32s(vec![p.clone()]))
            }
            Op::Conv2d(g) => {
                expect_inputs(self, ins, 2)?;
                same(self, "input", &ins[0].shape, &g.x_shape())?;
                same(self, "weight", &ins[1].shape, &g.w_shape())?;
                Ok(f32s(vec![g.y_shape()]))
            }
            Op::Conv2dGradInput(g) => {
                expect_inputs(self, ins, 2)?;
                same(self, "dy", &ins[0].shape, &g.y_shape())?;
                same(self, "weight", &ins[1].shape, &g.w_shape())?;
                Ok(f32s(vec![g.x_shape()]))
            }
            Op::Conv2dGradWeight(g) => {
                expect_inputs(self, ins, 2)?;
                same(self, "input", &ins[0].shape, &g.x_shape())?;
                same(self, "dy", &ins[1].shape, &g.y_shape())?;
                Ok(f32s(vec![g.w_shape()]))
            }
            Op::DynConv2d(s) => {
                s.check_inputs(self.name(), ins, &[])?;
                Ok(f32s(vec![s.geom.y_shape()]))
            }
            Op::PadMix(s) => Ok(f32s(vec![s.check_inputs(self.name(), ins, false)?])),
            Op::PadMixGrad(s) => {
                let experts = s.check_inputs(self.name(), ins, true)?;
                let one = experts[1..].to_vec();
                Ok(f32s(vec![experts, one.clone(), vec![1], one]))
            }
            Op::DynConv2dGrad(s) => {
                let extra = [("dy", s.geom.y_shape())];
                s.check_inputs(self.name(), ins, &extra)?;
                let mut out = vec![s.geom.x_shape(), vec![s.geom.n, s.k], s.kernels_shape()];
                if s.pad {
                    out.extend([s.static_shape(), vec![1], s.static_shape()]);
                }
                Ok(f32s(out))
            }
            Op::BatchNorm { train, act, .. } => {
                expect_inputs(self, ins, 5)?;
                if matches!(
                    act,
                    Some(Act::Gelu | Act::Sigmoid | Act::Tanh | Act::Softplus)
                ) {
                    return Err(Error::shape(
                        self.name(),
                        format!("cannot fuse {act:?}; only ReLU/ReLU6"),
                    ));
                }
                let x = &ins[0].shape;
                if x.len() < 2 {
                    return Err(Error::shape(
                        self.name(),
                        format!("input {x:?} has no channel axis"),
                    ));
                }
                for (k, what) in [
                    (1, "gamma"),
                    (2, "beta"),
                    (3, "running_mean"),
                    (4, "running_var"),
                ] {
                    same(self, what, &ins[k].shape, &[x[1]])?;
                }
                let c = vec![x[1]];
                Ok(f32s(if *train {
                    vec![x.clone(), c.clone(), c]
                } else {
                    vec![x.clone()]
                }))
            }
            Op::BatchNormGrad { .. } => {
                expect_inputs(self, ins, 6)?;
                let x = &ins[0].shape;
                if x.len() < 2 {
                    return Err(Error::shape(
                        self.name(),
                        format!("input {x:?} has no channel axis"),
                    ));
                }
                let c = vec![x[1]];
                for (k, what) in [
                    (1, "gamma"),
                    (2, "mean statistic"),
                    (3, "variance statistic"),
                ] {
                    same(self, what, &ins[k].shape, &c)?;
                }
                same(self, "dy", &ins[4].shape, x)?;
                same(self, "y", &ins[5].shape, x)?;
                Ok(f32s(vec![x.clone(), c.clone(), c]))
            }
            Op::LayerNorm { .. } => {
                expect_inputs(self, ins, 3)?;
                let x = &ins[0].shape;
                let d = *x
                    .last()
                    .ok_or_else(|| Error::shape(self.name(), "scalar input"))?;
                same(self, "gamma", &ins[1].shape, &[d])?;
                same(self, "beta", &ins[2].shape, &[d])?;
                let rows = vec![ins[0].numel() / d];
                Ok(f32s(vec![x.clone(), rows.clone(), rows]))
            }
            Op::LayerNormGrad => {
                expect_inputs(self, ins, 5)?;
                let x = &ins[0].shape;
                let d = *x
                    .last()
                    .ok_or_else(|| Error::shape(self.name(), "scalar input"))?;
                let rows = vec![ins[0].numel() / d];
                same(self, "gamma", &ins[1].shape, &[d])?;
                same(self, "mean", &ins[2].shape, &rows)?;
                same(self, "inv_std", &ins[3].shape, &rows)?;
                same(self, "dy", &ins[4].shape, x)?;
                Ok(f32s(vec![x.clone(), vec![d], vec![d]]))
            }
            Op::Embedding => {
                expect_inputs(self, ins, 2)?;
                let (t, ids) = (&ins[0].shape, ins[1]);
                if t.len() != 2 || ids.dtype != DType::U32 {
                    return Err(Error::shape(
                        self.name(),
                        format!(
                            "table {t:?} (need [V, D]) and ids {:?} {:?} (need u32)",
                            ids.shape, ids.dtype
                        ),
                    ));
                }
                let mut out = ids.shape.clone();
                out.push(t[1]);
                Ok(f32s(vec![out]))
            }
            Op::EmbeddingGrad { vocab } => {
                expect_inputs(self, ins, 2)?;
                let d = *ins[0]
                    .shape
                    .last()
                    .ok_or_else(|| Error::shape(self.name(), "scalar dy"))?;
                if ins[0].numel() != ins[1].numel() * d {
                    return Err(Error::shape(
                        self.name(),
                        format!("dy {:?} vs ids {:?}", ins[0].shape, ins[1].shape),
                    ));
                }
                Ok(f32s(vec![vec![*vocab, d]]))
            }
            Op::MaxPool2d(g) => {
                expect_inputs(self, ins, 1)?;
                same(self, "input", &ins[0].shape, &g.x_shape())?;
                Ok(vec![(g.y_shape(), DType::F32), (g.y_shape(), DType::U32)])
            }
            Op::MaxPool2dGrad(g) => {
                expect_inputs(self, ins, 2)?;
                same(self, "dy", &ins[0].shape, &g.y_shape())?;
                same(self, "argmax", &ins[1].shape, &g.y_shape())?;
                Ok(f32s(vec![g.x_shape()]))
            }
            Op::AvgPool2d(g) => {
                expect_inputs(self, ins, 1)?;
                same(self, "input", &ins[0].shape, &g.x_shape())?;
                Ok(f32s(vec![g.y_shape()]))
            }
            Op::AvgPool2dGrad(g) => {
                expect_inputs(self, ins, 1)?;
                same(self, "dy", &ins[0].shape, &g.y_shape())?;
                Ok(f32s(vec![g.x_shape()]))
            }
        }
    }

    /// Gradient rule: given the gradients of the outputs (None = no gradient flows), appends
    /// nodes to `g` and returns the gradient of each input (None where it has none).
    pub fn grad(
        &self,
        g: &mut Graph,
        inputs: &[TensorId],
        outputs: &[TensorId],
        dout: &[Option<TensorId>],
    ) -> Result<Vec<Option<TensorId>>> {
        let dy = match dout.first().copied().flatten() {
            Some(d) => d,
            None => return Ok(vec![None; inputs.len()]),
        };
        let rg = |g: &Graph, i: usize| g.tensors[inputs[i]].requires_grad;
        Ok(match self {
            Op::MatMul {
                trans_a, trans_b, ..
            } => crate::ops::matmul::grad(g, *trans_a, *trans_b, inputs[0], inputs[1], dy)?,
            Op::Reshape { .. } => {
                let shape = g.shape(inputs[0]).to_vec();
                vec![Some(g.reshape(dy, &shape)?)]
            }
            Op::Permute { perm } => {
                let mut inverse = vec![0; perm.len()];
                for (k, &a) in perm.iter().enumerate() {
                    inverse[a] = k;
                }
                vec![Some(g.push1(Op::Permute { perm: inverse }, &[dy])?)]
            }
            Op::Add => {
                let db = if g.shape(inputs[1]) == g.shape(inputs[0]) {
                    Some(dy)
                } else if rg(g, 1) {
                    let shape = g.shape(inputs[1]).to_vec();
                    Some(g.push1(Op::SumTo { shape }, &[dy])?)
                } else {
                    None
                };
                vec![Some(dy), db]
            }
            Op::Mul => {
                let (a, b) = (inputs[0], inputs[1]);
                let da = if rg(g, 0) {
                    Some(g.push1(Op::Mul, &[dy, b])?)
                } else {
                    None
                };
                let db = if rg(g, 1) {
                    let full = g.push1(Op::Mul, &[dy, a])?;
                    if g.shape(b) == g.shape(a) {
                        Some(full)
                    } else {
                        let shape = g.shape(b).to_vec();
                        Some(g.push1(Op::SumTo { shape }, &[full])?)
                    }
                } else {
                    None
                };
                vec![da, db]
            }
            Op::Scale(s) => vec![Some(g.push1(Op::Scale(*s), &[dy])?)],
            Op::Dropout { p, salt } => {
                let op = Op::Dropout { p: *p, salt: *salt };
                vec![Some(g.push1(op, &[dy, inputs[1]])?), None]
            }
            Op::BiasAdd => {
                let db = if rg(g, 1) {
                    Some(g.push1(Op::BiasGrad, &[dy])?)
                } else {
                    None
                };
                vec![Some(dy), db]
            }
            Op::Unary(act) => vec![Some(g.push1(Op::UnaryGrad(*act), &[inputs[0], dy])?)],
            // The gradient keeps the summed axes as 1s: a broadcastable partial gradient,
            // which autodiff adds onto the input's other partials without materialising it
            // (or expands, when it is the only one).
            Op::Sum { start, end, mean } => {
                let shape = g.shape(inputs[0]).to_vec();
                let mut kept = shape.clone();
                kept[*start..*end].fill(1);
                let d = g.reshape(dy, &kept)?;
                let d = if *mean {
                    let count: usize = shape[*start..*end].iter().product();
                    g.push1(Op::Scale(1.0 / count as f32), &[d])?
                } else {
                    d
                };
                vec![Some(d)]
            }
            Op::Expand {
                start, end, mean, ..
            } => {
                vec![Some(g.push1(
                    Op::Sum {
                        start: *start,
                        end: *end,
                        mean: *mean,
                    },
                    &[dy],
                )?)]
            }
            Op::RandomNormal { .. } | Op::MoeRoute { .. } => vec![None; inputs.len()],
            Op::MoeDispatch => {
                let combine = Op::MoeCombine { weighted: false };
                let dx = g.push1(combine, &[dy, inputs[2], inputs[1]])?;
                vec![Some(dx), None, None]
            }
            Op::MoeCombine { weighted: false } => {
                let dys = g.push1(Op::MoeDispatch, &[dy, inputs[2], inputs[1]])?;
                vec![Some(dys), None, None]
            }
            Op::MoeCombine { weighted: true } => {
                let mut ins = inputs.to_vec();
                ins.push(dy);
                let o = g.push(Op::MoeCombineGrad, &ins)?;
                vec![Some(o[0]), None, None, Some(o[1]), None, Some(o[2]), None]
            }
            Op::GroupedMatMul {
                trans_a: false,
                trans_b,
                by_k: false,
            } => {
                crate::ops::matmul::grouped_grad(g, *trans_b, inputs[0], inputs[1], inputs[2], dy)?
            }
            // Scatter-add by id (also the MoE combine): its gradient gathers.
            Op::EmbeddingGrad { .. } => {
                vec![Some(g.push1(Op::Embedding, &[dy, inputs[1]])?), None]
            }
            Op::MoeLoadProb { k } => {
                let outs = g.push(
                    Op::MoeLoadProbGrad { k: *k },
                    &[inputs[0], inputs[1], inputs[2], dy],
                )?;
                outs.into_iter().map(Some).collect()
            }
            Op::CvSquared => vec![Some(g.push1(Op::CvSquaredGrad, &[inputs[0], dy])?)],
            Op::Softmax | Op::TopKGates { .. } => {
                vec![Some(g.push1(Op::SoftmaxGrad, &[outputs[0], dy])?)]
            }
            Op::MseLoss => {
                let d = g.push1(Op::MseLossGrad, &[inputs[0], inputs[1], dy])?;
                vec![Some(d), None, None]
            }
            Op::CrossEntropy { smoothing } => {
                let op = Op::CrossEntropyGrad {
                    smoothing: *smoothing,
                };
                vec![Some(g.push1(op, &[outputs[1], inputs[1], dy])?), None, None]
            }
            Op::Conv2d(geom) => {
                let dx = if rg(g, 0) {
                    Some(g.push1(Op::Conv2dGradInput(*geom), &[dy, inputs[1]])?)
                } else {
                    None
                };
                let dw = if rg(g, 1) {
                    Some(g.push1(Op::Conv2dGradWeight(*geom), &[inputs[0], dy])?)
                } else {
                    None
                };
                vec![dx, dw]
            }
            Op::BatchNorm {
                train, act, eps, ..
            } => {
                // Train: batch statistics (outputs 1, 2); eval: running statistics (inputs 3, 4).
                let (s1, s2) = if *train {
                    (outputs[1], outputs[2])
                } else {
                    (inputs[3], inputs[4])
                };
                let op = Op::BatchNormGrad {
                    act: *act,
                    eval: !*train,
                    eps: *eps,
                };
                let o = g.push(op, &[inputs[0], inputs[1], s1, s2, dy, outputs[0]])?;
                vec![Some(o[0]), Some(o[1]), Some(o[2]), None, None]
            }
            Op::MaxPool2d(geom) => {
                vec![Some(g.push1(Op::MaxPool2dGrad(*geom), &[dy, outputs[1]])?)]
            }
            Op::DynConv2d(s) => {
                let mut ins = inputs.to_vec();
                ins.push(dy);
                let o = g.push(Op::DynConv2dGrad(*s), &ins)?;
                if s.pad {
                    // The mask is not trained; its gradient is IMP's score, kept for readout.
                    g.mask_grads.insert(inputs[4], o[5]);
                    vec![
                        Some(o[0]),
                        Some(o[1]),
                        Some(o[2]),
                        Some(o[3]),
                        None,
                        Some(o[4]),
                    ]
                } else {
                    vec![Some(o[0]), Some(o[1]), Some(o[2])]
                }
            }
            Op::PadMix(s) => {
                let mut ins = inputs.to_vec();
                ins.push(dy);
                let o = g.push(Op::PadMixGrad(*s), &ins)?;
                // As PAD-Conv: the mask is not trained; its gradient is IMP's score.
                g.mask_grads.insert(inputs[2], o[3]);
                vec![Some(o[0]), Some(o[1]), None, Some(o[2])]
            }
            Op::AvgPool2d(geom) => vec![Some(g.push1(Op::AvgPool2dGrad(*geom), &[dy])?)],
            Op::LayerNorm { .. } => {
                let o = g.push(
                    Op::LayerNormGrad,
                    &[inputs[0], inputs[1], outputs[1], outputs[2], dy],
                )?;
                vec![Some(o[0]), Some(o[1]), Some(o[2])]
            }
            Op::Embedding => {
                let vocab = g.shape(inputs[0])[0];
                vec![
                    Some(g.push1(Op::EmbeddingGrad { vocab }, &[dy, inputs[1]])?),
                    None,
                ]
            }
            other => {
                return Err(Error::shape(
                    other.name(),
                    "has no gradient rule (eval-mode or backward op inside a differentiated graph)",
                ))
            }
        })
    }
}

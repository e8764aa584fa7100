//! Shape rules of the ops: the output shapes and dtypes of an op applied to its inputs,
//! with one clear error naming the op when the inputs do not fit.

use super::dims::{broadcast_fold, check_perm, grouped_matmul_dims, matmul_shape};
use super::op::Act;
use super::{DType, Op, Tensor};
use crate::error::{Error, Result};

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

/// The step's randomness (`nn::DROPOUT_SEED`): u32 [seed, rank].
fn is_step_seed(t: &Tensor) -> bool {
    t.dtype == DType::U32 && t.shape == [2]
}

fn f32s(shapes: Vec<Vec<usize>>) -> Spec {
    shapes.into_iter().map(|s| (s, DType::F32)).collect()
}

impl Op {
    /// Output shapes and dtypes, or an error naming the op and the offending shapes.
    pub fn infer(&self, ins: &[&Tensor]) -> Result<Spec> {
        match self {
            Op::MatMul {
                trans_a, trans_b, ..
            } => {
                expect_inputs(self, ins, 2)?;
                Ok(f32s(vec![matmul_shape(
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
                check_perm(&ins[0].shape, perm)?;
                Ok(vec![(
                    perm.iter().map(|&a| ins[0].shape[a]).collect(),
                    ins[0].dtype,
                )])
            }
            Op::Add | Op::Mul => {
                expect_inputs(self, ins, 2)?;
                broadcast_fold(self.name(), &ins[0].shape, &ins[1].shape)?;
                Ok(f32s(vec![ins[0].shape.clone()]))
            }
            Op::Accumulate => {
                expect_inputs(self, ins, 2)?;
                same(self, "accumulator vs value", &ins[0].shape, &ins[1].shape)?;
                Ok(vec![])
            }
            Op::SumTo { shape } => {
                expect_inputs(self, ins, 1)?;
                broadcast_fold(self.name(), &ins[0].shape, shape)?;
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
                if !is_step_seed(ins[1]) || !(0.0..1.0).contains(p) {
                    return Err(Error::shape(
                        self.name(),
                        format!("needs a u32 [2] step seed and 0 ≤ p < 1 (p = {p})"),
                    ));
                }
                Ok(f32s(vec![ins[0].shape.clone()]))
            }
            Op::UnaryGrad(_) | Op::SoftmaxGrad => {
                expect_inputs(self, ins, 2)?;
                same(self, "x vs dy", &ins[0].shape, &ins[1].shape)?;
                Ok(f32s(vec![ins[0].shape.clone()]))
            }
            Op::Sum {
                start,
                end,
                mean,
                over_ranks,
            } => {
                expect_inputs(self, ins, 1)?;
                let s = &ins[0].shape;
                if start >= end || *end > s.len() {
                    return Err(Error::shape(
                        self.name(),
                        format!("axes {start}..{end} of {s:?}"),
                    ));
                }
                if *mean && *over_ranks {
                    // It would need every rank's count: only sums span the ranks.
                    return Err(Error::shape(self.name(), "a mean over ranks is not built"));
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
                let (.., out) = grouped_matmul_dims(
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
            Op::MergeChannels => {
                expect_inputs(self, ins, 3)?;
                let (a, b, from) = (&ins[0].shape, &ins[1].shape, &ins[2].shape);
                let same_planes = a.len() == 4
                    && b.len() == 4
                    && (a[0], a[2], a[3]) == (b[0], b[2], b[3])
                    && from[..] == [a[1] + b[1]];
                if !same_planes {
                    return Err(Error::shape(
                        self.name(),
                        format!("a {a:?} and b {b:?} (need [B, C, H, W] alike) with from {from:?}"),
                    ));
                }
                Ok(f32s(vec![vec![a[0], a[1] + b[1], a[2], a[3]]]))
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
                if !is_step_seed(ins[0]) {
                    return Err(Error::shape(self.name(), "needs a u32 [2] step seed"));
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
            Op::SplitDynConv2d { spec, statics } => {
                if spec.pad || spec.geom.groups != 1 || *statics == 0 {
                    return Err(Error::shape(
                        self.name(),
                        "needs a DY-Conv spec (no PAD inputs), groups 1 and a static filter",
                    ));
                }
                let mut static_shape = spec.static_shape();
                static_shape[1] = *statics;
                let whole = spec.split_geom(*statics);
                let extra = [("static weight", static_shape), ("order", vec![2, whole.o])];
                spec.check_inputs(self.name(), ins, &extra)?;
                Ok(f32s(vec![whole.y_shape()]))
            }
            Op::PadMix(s) => Ok(f32s(vec![s.check_inputs(self.name(), ins, false)?])),
            Op::PadMixGrad(s) => {
                let experts = s.check_inputs(self.name(), ins, true)?;
                let (static_w, mask) = (ins[1].shape.clone(), ins[2].shape.clone());
                Ok(f32s(vec![experts, static_w, vec![1], mask]))
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
}

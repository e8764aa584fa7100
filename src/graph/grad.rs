//! Gradient rules of the ops, in terms of other ops (or a dedicated backward op);
//! `autodiff::backward` applies them node by node in reverse.

use super::{Graph, Op, TensorId};
use crate::error::{Error, Result};

impl Op {
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
            } => matmul_grad(g, *trans_a, *trans_b, inputs[0], inputs[1], dy)?,
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
            Op::Sum {
                start, end, mean, ..
            } => {
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
                        over_ranks: false,
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
            } => grouped_matmul_grad(g, *trans_b, inputs[0], inputs[1], inputs[2], dy)?,
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

/// C = op(A)·op(B):  dA = dC·op(B)ᵀ (transposed back if A is stored transposed),
/// dB = op(A)ᵀ·dC likewise. A shared 2-D B gets the batch folded into the rows of A.
fn matmul_grad(
    g: &mut Graph,
    ta: bool,
    tb: bool,
    a: TensorId,
    b: TensorId,
    dc: TensorId,
) -> Result<Vec<Option<TensorId>>> {
    let da = if g.tensors[a].requires_grad {
        Some(if ta {
            g.matmul(b, dc, tb, true)?
        } else {
            g.matmul(dc, b, false, !tb)?
        })
    } else {
        None
    };
    let db = if g.tensors[b].requires_grad {
        let (a2, dc2) = if g.shape(b).len() == 2 && g.shape(a).len() > 2 {
            if ta {
                return Err(Error::shape(
                    "matmul",
                    "gradient of a shared B with transposed batched A",
                ));
            }
            let sa = g.shape(a).to_vec();
            let sc = g.shape(dc).to_vec();
            let rows: usize = sa[..sa.len() - 1].iter().product();
            let a2 = g.reshape(a, &[rows, sa[sa.len() - 1]])?;
            let dc2 = g.reshape(dc, &[rows, sc[sc.len() - 1]])?;
            (a2, dc2)
        } else {
            (a, dc)
        };
        Some(if tb {
            g.matmul(dc2, a2, true, ta)?
        } else {
            g.matmul(a2, dc2, !ta, false)?
        })
    } else {
        None
    };
    Ok(vec![da, db])
}

/// Gradient of a row-grouped matmul `C = A·op(B_e)` (B [E, ...]): dA row-grouped, dB
/// k-grouped over the same groups.
fn grouped_matmul_grad(
    g: &mut Graph,
    trans_b: bool,
    a: TensorId,
    b: TensorId,
    groups: TensorId,
    dc: TensorId,
) -> Result<Vec<Option<TensorId>>> {
    let op = |trans_a, trans_b, by_k| Op::GroupedMatMul {
        trans_a,
        trans_b,
        by_k,
    };
    let da = if g.tensors[a].requires_grad {
        Some(g.push1(op(false, !trans_b, false), &[dc, b, groups])?)
    } else {
        None
    };
    let db = if g.tensors[b].requires_grad {
        let (x, y) = if trans_b { (dc, a) } else { (a, dc) };
        Some(g.push1(op(true, false, true), &[x, y, groups])?)
    } else {
        None
    };
    Ok(vec![da, db, None])
}

//! Softmax, cross-entropy with label smoothing and mean squared error (`softmax.wgsl`).

pub mod reference;

use super::{f, u, Arg, KernelCall, Plan};
use crate::graph::{Op, Tensor};

pub fn plan(op: &Op, ins: &[&Tensor]) -> Plan {
    let shape = &ins[0].shape;
    let cols = *shape.last().expect("checked by infer");
    let rows = ins[0].numel() / cols;
    let params = |eps: f32| vec![u(rows), u(cols), f(eps), 0];
    match op {
        Op::Softmax => Plan::one(
            KernelCall::new("softmax", "softmax")
                .args(&[Arg::In(0), Arg::Out(0)])
                .params(&params(0.0))
                .threads(rows, 64),
        ),
        Op::TopKGates { k } => Plan::one(
            KernelCall::new("softmax", "topk_gates")
                .args(&[Arg::In(0), Arg::Out(0)])
                .params(&[u(rows), u(cols), f(0.0), u(*k)])
                .threads(rows, 64),
        ),
        Op::SoftmaxGrad => Plan::one(
            KernelCall::new("softmax", "softmax_grad")
                .args(&[Arg::In(0), Arg::In(1), Arg::Out(0)])
                .params(&params(0.0))
                .threads(rows, 64),
        ),
        Op::CrossEntropy { smoothing } => Plan {
            calls: vec![
                // (logits, labels) -> (probs, per-row [loss, correct])
                KernelCall::new("softmax", "ce_forward")
                    .args(&[Arg::In(0), Arg::In(1), Arg::Out(1), Arg::Scratch(0)])
                    .params(&params(*smoothing))
                    .threads(rows, 64),
                // per-row -> mean loss; metrics state += (Σ loss, #correct, #rows)
                KernelCall::new("softmax", "ce_reduce")
                    .args(&[Arg::Scratch(0), Arg::Out(0), Arg::In(2)])
                    .params(&params(*smoothing)),
            ],
            scratch: vec![(rows * 2 * 4) as u64],
        },
        Op::CrossEntropyGrad { smoothing } => Plan::one(
            KernelCall::new("softmax", "ce_grad")
                .args(&[Arg::In(0), Arg::In(1), Arg::In(2), Arg::Out(0)])
                .params(&params(*smoothing))
                .threads(rows * cols, 64),
        ),
        // (pred, targets, metrics) -> loss: one invocation (B is a batch of scalars).
        Op::MseLoss => Plan::one(
            KernelCall::new("softmax", "mse_forward")
                .args(&[Arg::In(0), Arg::In(1), Arg::Out(0), Arg::In(2)])
                .params(&params(0.0)),
        ),
        Op::MseLossGrad => Plan::one(
            KernelCall::new("softmax", "mse_grad")
                .args(&[Arg::In(0), Arg::In(1), Arg::In(2), Arg::Out(0)])
                .params(&params(0.0))
                .threads(rows, 64),
        ),
        _ => unreachable!("not a softmax op: {op:?}"),
    }
}

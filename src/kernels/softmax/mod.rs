//! Softmax, cross-entropy with label smoothing and mean squared error (`softmax.wgsl`).

pub mod reference;

use super::{f, u, Arg, KernelCall, Plan, PlanCtx};
use crate::graph::{Op, Tensor};

/// `finish` (one invocation) after the sum over the rows of `per_row` [rows, width] (scratch
/// 0, filled by `first`) into scratch 1, a sum within the loop limit on CPU adapters
/// (`reduce::bounded_sum`): the loss reductions of cross-entropy and mean squared error.
fn summed_rows(
    first: KernelCall,
    rows: usize,
    width: usize,
    finish: KernelCall,
    ctx: &PlanCtx,
) -> Plan {
    let (per_row, totals) = (Arg::Scratch(0), Arg::Scratch(1));
    let mut plan = Plan {
        calls: vec![first],
        scratch: vec![(rows * width * 4) as u64, (width * 4) as u64],
    };
    super::reduce::bounded_sum(1, rows, width, 1.0, ctx, [per_row, totals], &mut plan);
    plan.calls.push(finish);
    plan
}

pub fn plan(op: &Op, ins: &[&Tensor], ctx: &PlanCtx) -> Plan {
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
        // (logits, labels) -> (probs, per-row [loss, correct]); their totals -> mean loss,
        // metrics state += (Σ loss, #correct, #rows)
        Op::CrossEntropy { smoothing } => summed_rows(
            KernelCall::new("softmax", "ce_forward")
                .args(&[Arg::In(0), Arg::In(1), Arg::Out(1), Arg::Scratch(0)])
                .params(&params(*smoothing))
                .threads(rows, 64),
            rows,
            2,
            KernelCall::new("softmax", "ce_finish")
                .args(&[Arg::Scratch(1), Arg::Out(0), Arg::In(2)])
                .params(&params(*smoothing)),
            ctx,
        ),
        Op::CrossEntropyGrad { smoothing } => Plan::one(
            KernelCall::new("softmax", "ce_grad")
                .args(&[Arg::In(0), Arg::In(1), Arg::In(2), Arg::Out(0)])
                .params(&params(*smoothing))
                .threads(rows * cols, 64),
        ),
        // (pred, targets, metrics) -> loss: squared errors per row, their total, the mean.
        Op::MseLoss => summed_rows(
            KernelCall::new("softmax", "mse_rows")
                .args(&[Arg::In(0), Arg::In(1), Arg::Scratch(0)])
                .params(&params(0.0))
                .threads(rows, 64),
            rows,
            1,
            KernelCall::new("softmax", "mse_finish")
                .args(&[Arg::Scratch(1), Arg::Out(0), Arg::In(2)])
                .params(&params(0.0)),
            ctx,
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

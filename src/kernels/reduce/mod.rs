//! Reductions (`reduce.wgsl`): sums over axes (with their broadcast back), per-channel sums
//! (bias gradients), and the second pass of split reductions. Every long sum is blocked
//! (docs/numerics.md).

pub mod reference;

use super::{f, u, Arg, KernelCall, Plan, PlanCtx};
use crate::graph::{Op, Tensor};

/// `[outer, r, inner]` view of `shape` reduced over axes `start..end`.
pub fn reduce_view(shape: &[usize], start: usize, end: usize) -> (usize, usize, usize) {
    let outer = shape[..start].iter().product();
    let r = shape[start..end].iter().product();
    let inner = shape[end..].iter().product();
    (outer, r, inner)
}

/// Plan of a reduction node. A sum over ranks (`over_ranks`, with `ctx.ranks` > 1) adds theirs
/// on the host after the kernel.
pub fn plan_reduce(op: &Op, ins: &[&Tensor], outs: &[&Tensor], ctx: &PlanCtx) -> Plan {
    match op {
        Op::Sum {
            start,
            end,
            mean,
            over_ranks,
        } => {
            let (outer, r, inner) = reduce_view(&ins[0].shape, *start, *end);
            let scale = if *mean { 1.0 / r as f32 } else { 1.0 };
            let mut plan = Plan::default();
            bounded_sum(
                outer,
                r,
                inner,
                scale,
                ctx,
                [Arg::In(0), Arg::Out(0)],
                &mut plan,
            );
            if *over_ranks && ctx.ranks > 1 {
                let total = plan.calls.pop().expect("a sum has a call");
                let floats = outs[0].numel();
                plan.calls
                    .push(total.then_rank_sum(Arg::Out(0), floats, false));
            }
            plan
        }
        Op::Expand {
            shape,
            start,
            end,
            mean,
        } => {
            let (outer, r, inner) = reduce_view(shape, *start, *end);
            let scale = if *mean { 1.0 / r as f32 } else { 1.0 };
            Plan::one(
                KernelCall::new("reduce", "expand")
                    .params(&[u(outer), u(r), u(inner), f(scale), 0, 0, 0, 0])
                    .threads(outs[0].numel(), 64)
                    .args(&[Arg::In(0), Arg::Out(0)]),
            )
        }
        Op::BiasGrad => {
            let s = &ins[0].shape;
            let (n, c) = (s[0], s[1]);
            let inner: usize = s[2..].iter().product();
            // One invocation per channel over every sample's plane, where that stays within
            // the loop limit; else each sample's plane summed first, then the samples.
            if n * (inner + 1) <= ctx.loop_items(1) {
                return Plan::one(
                    KernelCall::new("reduce", "channel_sum")
                        .params(&[u(n), u(c), u(inner), f(1.0), 0, 0, 0, 0])
                        .threads(c, 64)
                        .args(&[Arg::In(0), Arg::Out(0)]),
                );
            }
            let mut plan = Plan {
                calls: vec![],
                scratch: vec![(n * c * 4) as u64],
            };
            let planes = Arg::Scratch(0);
            bounded_sum(n * c, inner, 1, 1.0, ctx, [Arg::In(0), planes], &mut plan);
            bounded_sum(1, n, c, 1.0, ctx, [planes, Arg::Out(0)], &mut plan);
            plan
        }
        _ => unreachable!("not a reduction: {op:?}"),
    }
}

/// Appends to `plan` the calls of `out = scale · Σ_r x[o, r, i]` over `x` viewed as
/// `[outer, r, inner]` (`[x, out]`): one where an invocation's loop over r stays within the
/// loop limit (`PlanCtx::loop_items`, docs/architecture.md "The loop limit"), else two,
/// partial sums over runs of r into a scratch buffer it adds to `plan`, then their total.
pub(super) fn bounded_sum(
    outer: usize,
    r: usize,
    inner: usize,
    scale: f32,
    ctx: &PlanCtx,
    [x, out]: [Arg; 2],
    plan: &mut Plan,
) {
    let most = ctx.loop_items(1);
    if r <= most {
        plan.calls
            .push(sum_call(outer, r, inner, scale).args(&[x, out]));
        return;
    }
    let (run, runs) = super::split_runs(r, r.div_ceil(most), most);
    let partial = Arg::Scratch(plan.scratch.len());
    plan.scratch.push((outer * runs * inner * 4) as u64);
    plan.calls.push(
        KernelCall::new("reduce", "sum_axes")
            .params(&[u(outer), u(r), u(inner), f(1.0), 0, u(run), 0, 0])
            .threads(outer * runs * inner, 64)
            .args(&[x, partial]),
    );
    plan.calls
        .push(sum_call(outer, runs, inner, scale).args(&[partial, out]));
}

/// `out[o, i] = Σ_r x[o, r, i]` for x viewed as `[outer, r, inner]`.
pub fn sum_axes(outer: usize, r: usize, inner: usize, x: Arg, out: Arg) -> KernelCall {
    sum_call(outer, r, inner, 1.0).args(&[x, out])
}

/// `scale · Σ_r x[o, r, i]`: rows (inner = 1) as `sum_rows` where the tensor is whole vec4s
/// (reduce.wgsl), anything else as `sum_axes`.
fn sum_call(outer: usize, r: usize, inner: usize, scale: f32) -> KernelCall {
    let params = [u(outer), u(r), u(inner), f(scale), 0, 0, 0, 0];
    if inner == 1 && r > 0 && (outer * r).is_multiple_of(4) {
        KernelCall::new("reduce", "sum_rows")
            .params(&params)
            .threads(outer, 64)
    } else {
        KernelCall::new("reduce", "sum_axes")
            .params(&params)
            .threads(outer * inner, 64)
    }
}

/// `out[i] = Σ_s partial[s·len + i]`: the second pass of a split-K reduction.
pub fn sum_splits(len: usize, splits: usize, partial: Arg, out: Arg) -> KernelCall {
    sum_splits_at(len, splits, partial, out, 0)
}

/// `sum_splits` writing to `out[offset ..]`.
pub fn sum_splits_at(
    len: usize,
    splits: usize,
    partial: Arg,
    out: Arg,
    offset: usize,
) -> KernelCall {
    KernelCall::new("reduce", "sum_axes")
        .args(&[partial, out])
        .params(&[1, u(splits), u(len), f(1.0), u(offset), 0, 0, 0])
        .threads(len, 64)
}

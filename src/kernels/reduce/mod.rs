//! Reductions (`reduce.wgsl`): sums over axes (with their broadcast back), per-channel sums
//! (bias gradients), and the second pass of split reductions. Every long sum is blocked
//! (docs/numerics.md).

pub mod reference;

use super::{f, u, Arg, KernelCall, Plan};
use crate::graph::{Op, Tensor};

/// `[outer, r, inner]` view of `shape` reduced over axes `start..end`.
pub fn reduce_view(shape: &[usize], start: usize, end: usize) -> (usize, usize, usize) {
    let outer = shape[..start].iter().product();
    let r = shape[start..end].iter().product();
    let inner = shape[end..].iter().product();
    (outer, r, inner)
}

/// `ranks`: the data-parallel ranks the graph is compiled for (a sum `over_ranks` adds
/// theirs on the host after the kernel).
pub fn plan_reduce(op: &Op, ins: &[&Tensor], outs: &[&Tensor], ranks: usize) -> Plan {
    let call = match op {
        Op::Sum {
            start,
            end,
            mean,
            over_ranks,
        } => {
            let (outer, r, inner) = reduce_view(&ins[0].shape, *start, *end);
            let scale = if *mean { 1.0 / r as f32 } else { 1.0 };
            let call = sum_call(outer, r, inner, scale);
            match *over_ranks && ranks > 1 {
                true => call.then_rank_sum(Arg::Out(0), outs[0].numel(), false),
                false => call,
            }
        }
        Op::Expand {
            shape,
            start,
            end,
            mean,
        } => {
            let (outer, r, inner) = reduce_view(shape, *start, *end);
            let scale = if *mean { 1.0 / r as f32 } else { 1.0 };
            KernelCall::new("reduce", "expand")
                .params(&[u(outer), u(r), u(inner), f(scale), 0, 0, 0, 0])
                .threads(outs[0].numel(), 64)
        }
        Op::BiasGrad => {
            let s = &ins[0].shape;
            let inner: usize = s[2..].iter().product();
            KernelCall::new("reduce", "channel_sum")
                .params(&[u(s[0]), u(s[1]), u(inner), f(1.0), 0, 0, 0, 0])
                .threads(s[1], 64)
        }
        _ => unreachable!("not a reduction: {op:?}"),
    };
    Plan::one(call.args(&[Arg::In(0), Arg::Out(0)]))
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

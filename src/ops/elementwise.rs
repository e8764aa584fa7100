//! Elementwise ops (`elementwise.wgsl`) and reductions/broadcasts (`reduce.wgsl`).

use super::{f, u, Arg, KernelCall, Plan};
use crate::graph::{Op, Tensor};

/// `[outer, r, inner]` view of `shape` reduced over axes `start..end`.
pub fn reduce_view(shape: &[usize], start: usize, end: usize) -> (usize, usize, usize) {
    let outer = shape[..start].iter().product();
    let r = shape[start..end].iter().product();
    let inner = shape[end..].iter().product();
    (outer, r, inner)
}

/// Dropout's keep threshold on a uniform u32 hash (keep when hash ≥ threshold) and the scale
/// 1/(1 − p) of kept elements; shared by the kernel and the CPU reference.
pub fn dropout_constants(p: f32) -> (u32, f32) {
    (
        (p as f64 * 4294967296.0).min(4294967295.0) as u32,
        1.0 / (1.0 - p),
    )
}

/// PCG hash (O'Neill's pcg32 output on a one-step LCG), as `dropout` in elementwise.wgsl.
pub fn pcg_hash(v: u32) -> u32 {
    let s = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let w = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277803737);
    (w >> 22) ^ w
}

/// Whether dropout keeps element `i` of the site `salt` under `seed`.
pub fn dropout_keep(seed: u32, salt: u32, i: u32, threshold: u32) -> bool {
    pcg_hash(i ^ pcg_hash(seed ^ pcg_hash(salt))) >= threshold
}

pub fn plan(op: &Op, ins: &[&Tensor]) -> Plan {
    let len = ins[0].numel();
    let x = &ins[0].shape;
    let (entry, act, inner, channels, scale) = match op {
        Op::Unary(a) => ("unary", a.code(), 1, 1, 1.0),
        Op::UnaryGrad(a) => ("unary_grad", a.code(), 1, 1, 1.0),
        Op::Scale(s) => ("scale", 0, 1, 1, *s),
        Op::Accumulate => {
            // acc (input 0) is read and written: the kernel's `out` binding.
            let call = KernelCall::new("elementwise", "accumulate")
                .args(&[Arg::In(1), Arg::Skip, Arg::In(0)])
                .params(&[u(len), 1, 1, f(1.0)])
                .threads(len, 256);
            return Plan::one(call);
        }
        Op::BiasAdd => ("bias_add", 0, x[2..].iter().product(), x[1], 1.0),
        Op::Dropout { p, salt } => {
            let (threshold, scale) = dropout_constants(*p);
            let call = KernelCall::new("elementwise", "dropout")
                .args(&[Arg::In(0), Arg::In(1), Arg::Out(0)])
                .params(&[u(len), *salt, threshold, f(scale)])
                .threads(len, 256);
            return Plan::one(call);
        }
        _ => unreachable!("not an elementwise op: {op:?}"),
    };
    // Bindings: a = 1, b = 2, out = 3. Single-input entries do not use b.
    let args = if ins.len() == 1 {
        vec![Arg::In(0), Arg::Skip, Arg::Out(0)]
    } else {
        vec![Arg::In(0), Arg::In(1), Arg::Out(0)]
    };
    let mut call = KernelCall::new("elementwise", entry)
        .args(&args)
        .params(&[u(len), u(inner), u(channels), f(scale)])
        .threads(len, 256);
    if matches!(op, Op::Unary(_) | Op::UnaryGrad(_)) {
        call = call.constant("ACT", act as f64);
    }
    Plan::one(call)
}

pub fn plan_reduce(op: &Op, ins: &[&Tensor], outs: &[&Tensor]) -> Plan {
    let call = match op {
        Op::Sum { start, end, mean } => {
            let (outer, r, inner) = reduce_view(&ins[0].shape, *start, *end);
            let scale = if *mean { 1.0 / r as f32 } else { 1.0 };
            KernelCall::new("reduce", "sum_axes")
                .params(&[u(outer), u(r), u(inner), f(scale), 0, 0, 0, 0])
                .threads(outer * inner, 64)
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
    KernelCall::new("reduce", "sum_axes")
        .args(&[x, out])
        .params(&[u(outer), u(r), u(inner), f(1.0), 0, 0, 0, 0])
        .threads(outer * inner, 64)
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

//! Add / Mul with NumPy-style broadcasting of the second operand, and SumTo, their gradient
//! (`broadcast.wgsl`).

pub mod reference;

use super::{u, Arg, KernelCall, Plan, PlanCtx};
use crate::graph::dims::{broadcast_fold as fold, MAX_RANK};

fn params(len: usize, reduced: usize, dims: &[usize], kept: &[bool]) -> Vec<u32> {
    let mut d = [1u32; MAX_RANK];
    let mut m = [1u32; MAX_RANK];
    for (k, (&x, &keep)) in dims.iter().zip(kept).enumerate() {
        d[k] = u(x);
        m[k] = keep as u32;
    }
    // The fourth word: chunks of a SumTo (1 elsewhere).
    let mut p = vec![u(len), u(dims.len()), u(reduced), 1];
    p.extend(d);
    p.extend(m);
    p
}

/// Plan of `a (op) broadcast(b)`; `mul` selects multiplication.
pub fn plan_binary(mul: bool, a: &[usize], b: &[usize]) -> Plan {
    let (dims, kept) = fold("binary", a, b).expect("checked by infer");
    let len: usize = a.iter().product();
    let broadcast = kept.iter().any(|k| !k);
    // Four elements per invocation where the innermost folded axis is whole vec4s (then so is
    // the whole tensor): four consecutive outputs meet four consecutive elements of each
    // operand where that axis is kept (`binary4`), one element of `b` where it is broadcast
    // (`binary4_splat`).
    let whole_vec4s = dims.last().is_some_and(|d| d.is_multiple_of(4));
    let (entry, per_invocation) = match (whole_vec4s, kept.last()) {
        (true, Some(true)) => ("binary4", 4),
        (true, Some(false)) => ("binary4_splat", 4),
        _ => ("binary", 1),
    };
    Plan::one(
        KernelCall::new("broadcast", entry)
            .constant("OP", mul as u8 as f64)
            .constant("BROADCAST", broadcast as u8 as f64)
            .args(&[Arg::In(0), Arg::In(1), Arg::Out(0)])
            .params(&params(len, 1, &dims, &kept))
            .threads(len / per_invocation, 256),
    )
}

/// Plan of SumTo: `x` (full shape) summed down to `shape`. A short output (a bias gradient:
/// a few hundred sums over thousands of rows) would leave a GPU nearly idle with one
/// invocation per sum, so the reduction is cut into chunks whose partial sums a second
/// dispatch adds.
pub fn plan_sum_to(x: &[usize], shape: &[usize], ctx: &PlanCtx) -> Plan {
    let (dims, kept) = fold("sum_to", x, shape).expect("checked by infer");
    let len: usize = shape.iter().product();
    // CPU adapters: a sum over one run of axes (a bias gradient: the rows) is a plain sum over
    // x viewed as [outer, r, inner] (`reduce::bounded_sum`), where `sum_to` locates every term
    // by divisions over the folded axes, which lavapipe does lane by lane (MiniLM's bias
    // gradients took 8 % of a training step that way).
    if let Some([outer, r, inner]) = ctx.is_cpu.then(|| one_reduced_run(&dims, &kept)).flatten() {
        let mut plan = Plan::default();
        super::reduce::bounded_sum(
            outer,
            r,
            inner,
            1.0,
            ctx,
            [Arg::In(0), Arg::Out(0)],
            &mut plan,
        );
        return plan;
    }
    let reduced: usize = dims
        .iter()
        .zip(&kept)
        .filter(|(_, k)| !**k)
        .map(|(d, _)| d)
        .product();
    let target: usize = if ctx.is_cpu { 1024 } else { 32768 };
    let chunks = target.div_ceil(len.max(1)).clamp(1, (reduced / 16).max(1));
    let mut p = params(len, reduced, &dims, &kept);
    p[3] = u(chunks);
    let partial = if chunks > 1 {
        Arg::Scratch(0)
    } else {
        Arg::Out(0)
    };
    let mut plan = Plan::one(
        KernelCall::new("broadcast", "sum_to")
            .args(&[Arg::In(0), Arg::Skip, partial])
            .params(&p)
            .threads(len * chunks, 64),
    );
    if chunks > 1 {
        plan.calls
            .push(super::reduce::sum_splits(len, chunks, partial, Arg::Out(0)));
        plan.scratch.push((len * chunks * 4) as u64);
    }
    plan
}

/// Folded axes with at most one reduced run, as [outer, reduced, inner] (kept axes before
/// and after it), or None where reduced axes alternate with kept ones.
fn one_reduced_run(dims: &[usize], kept: &[bool]) -> Option<[usize; 3]> {
    let first = kept.iter().position(|k| !k).unwrap_or(dims.len());
    let after = kept[first..]
        .iter()
        .position(|&k| k)
        .map_or(dims.len(), |p| first + p);
    if kept[after..].iter().any(|k| !k) {
        return None;
    }
    let product = |range: &[usize]| range.iter().product::<usize>();
    Some([
        product(&dims[..first]),
        product(&dims[first..after]),
        product(&dims[after..]),
    ])
}

/// Elements one invocation of `permute` copies along the output's innermost axis.
const PERMUTE_RUN: usize = 8;

/// Plan of `x.permute(perm)` (rank ≤ 8).
pub fn plan_permute(x: &[usize], perm: &[usize]) -> Plan {
    let len: usize = x.iter().product();
    let mut d = [1u32; MAX_RANK];
    let mut m = [0u32; MAX_RANK];
    for (k, &v) in x.iter().enumerate() {
        d[k] = u(v);
    }
    for (k, &a) in perm.iter().enumerate() {
        m[k] = u(a);
    }
    let mut params = vec![u(len), u(x.len()), 1, 0];
    params.extend(d);
    params.extend(m);
    // Runs of PERMUTE_RUN along the output's innermost axis (broadcast.wgsl).
    let inner = perm.last().map_or(1, |&a| x[a]);
    let runs = (len / inner.max(1)) * inner.div_ceil(PERMUTE_RUN);
    Plan::one(
        KernelCall::new("broadcast", "permute")
            .args(&[Arg::In(0), Arg::Skip, Arg::Out(0)])
            .params(&params)
            .threads(runs, 256),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_one_run_of_axes() {
        let run = |x: &[usize], s: &[usize]| {
            let (dims, kept) = fold("t", x, s).unwrap();
            one_reduced_run(&dims, &kept)
        };
        assert_eq!(run(&[8, 32, 384], &[384]), Some([1, 256, 384]));
        assert_eq!(run(&[2, 3, 4, 5], &[1, 3, 1, 1]), None);
        assert_eq!(run(&[2, 3, 4], &[2, 1, 4]), Some([2, 3, 4]));
        assert_eq!(run(&[6, 5], &[6, 1]), Some([6, 5, 1]));
        assert_eq!(run(&[6, 5], &[6, 5]), Some([30, 1, 1]));
    }

    #[test]
    fn folding() {
        assert_eq!(
            fold("t", &[2, 3, 4, 5], &[1, 3, 1, 1]).unwrap(),
            (vec![2, 3, 20], vec![false, true, false])
        );
        assert_eq!(
            fold("t", &[2, 3, 4, 5], &[5]).unwrap(),
            (vec![24, 5], vec![false, true])
        );
        assert_eq!(fold("t", &[2, 3], &[2, 3]).unwrap(), (vec![6], vec![true]));
        assert_eq!(
            fold("t", &[2, 1, 3], &[1, 1, 1]).unwrap(),
            (vec![6], vec![false])
        );
        assert!(fold("t", &[2, 3], &[3, 3])
            .unwrap_err()
            .to_string()
            .contains("[3, 3]"));
    }
}

//! Batch normalisation (`batchnorm.wgsl`), train and eval, optionally fused with a following
//! ReLU/ReLU6, and its backward.

pub mod reference;

use super::{f, u, Arg, KernelCall, Plan, PlanCtx};
use crate::graph::op::Act;
use crate::graph::{Op, Tensor};

/// Elements per invocation in the elementwise passes (`RUN` in the shader).
const RUN: usize = 32;

/// The fused activation's `ACT` (`include/activation.wgsl`).
pub fn act_code(act: Option<Act>) -> f64 {
    match act {
        None => Act::NONE_CODE as f64,
        Some(a @ (Act::Relu | Act::Relu6)) => a.code() as f64,
        Some(a) => unreachable!("BatchNorm cannot fuse {a:?} (checked by infer)"),
    }
}

/// Invocations the per-part reductions of CPU adapters aim for (`stats_parts`, `grad_parts`):
/// enough to keep every thread busy, few enough that each reads long runs.
const PART_LANES: usize = 512;

/// Workgroups the per-part reductions of GPUs aim for (`stats_parts_wg`, `grad_parts_wg`), of
/// 64 invocations each: about one wave of an H200 (132 SMs, 16 such workgroups resident each).
const GPU_PART_WORKGROUPS: usize = 2048;

/// The plan of a BatchNorm node. With `ctx.ranks` > 1 the training statistics and gradient
/// sums span every data-parallel rank's batch (SyncBN, docs/distributed.md): each is reduced on
/// its rank, summed on the host ([`super::RankSum`]) and finished by a second call. On one
/// rank of a CPU adapter they are reduced per part of the batch with channels as lanes and
/// finished by a second call the same way (docs/architecture.md, "BatchNorm").
pub fn plan(op: &Op, ins: &[&Tensor], ctx: &PlanCtx) -> Plan {
    use Arg::{In, Out, Scratch};
    // The bindings 1, 2, ... of the statistics entries (`stats`, `stats_local`,
    // `stats_finish`): x, gamma, beta, running mean, running var, mean, inv_std, the
    // coefficients, the ranks' moments; of the backward reductions (`grad_reduce`, `grad_sums`,
    // `grad_coef`): x, gamma, mean, inv_std, dy, y, dgamma, dbeta, the coefficients, the
    // ranks' sums. Each entry binds those it uses (`pick`).
    const STATS: [Arg; 9] = [
        In(0),
        In(1),
        In(2),
        In(3),
        In(4),
        Out(1),
        Out(2),
        Scratch(0),
        Scratch(1),
    ];
    const GRAD: [Arg; 10] = [
        In(0),
        In(1),
        In(2),
        In(3),
        In(4),
        In(5),
        Out(1),
        Out(2),
        Scratch(0),
        Scratch(1),
    ];
    let pick = |table: &[Arg], used: &dyn Fn(usize) -> bool| -> Vec<Arg> {
        let last = (1..=table.len()).filter(|&b| used(b)).max().unwrap_or(0);
        (1..=last)
            .map(|b| if used(b) { table[b - 1] } else { Arg::Skip })
            .collect()
    };
    let x = &ins[0].shape;
    let (n, c) = (x[0], x[1]);
    let inner: usize = x[2..].iter().product();
    let runs = n * c * inner.div_ceil(RUN);
    let (eps, momentum) = match op {
        Op::BatchNorm { eps, momentum, .. } => (*eps, *momentum),
        Op::BatchNormGrad { eps, .. } => (*eps, 0.0),
        _ => (0.0, 0.0),
    };
    let ranks = ctx.ranks;
    // Per-part reductions. A workgroup per channel costs a CPU adapter a barrier-bound
    // workgroup per channel however small its planes (MobileNetV2's 1280 channels of 4x4), so
    // there invocations are (part, channel) with channels as lanes; and it leaves a GPU mostly
    // idle (ResNet-18's 64-channel layers: 64 workgroups of 64 invocations, 1 ms for a 16 MB
    // batch on an H200, docs/benchmarks.md), so there workgroups are (part, channel).
    let parts = if ranks > 1 {
        1
    } else if ctx.is_cpu {
        // Per sample, a part's loops run its plane in runs of 16 (SUM_RUN, batchnorm.wgsl).
        let per_sample = inner + 2 * inner.div_ceil(16) + 2;
        super::split_runs(n, PART_LANES / c, ctx.loop_items(per_sample)).1
    } else {
        GPU_PART_WORKGROUPS.div_ceil(c).clamp(1, n.max(1))
    };
    let by_parts = ranks == 1 && (ctx.is_cpu || parts > 1);
    // A per-part entry over every (part, channel): an invocation each on CPU adapters, a
    // workgroup each on GPUs (`stats_parts_wg`, `grad_parts_wg`).
    let per_part = |cpu_entry: &'static str, gpu_entry: &'static str| {
        if ctx.is_cpu {
            KernelCall::new("batchnorm", cpu_entry).threads(parts * c, 64)
        } else {
            KernelCall::new("batchnorm", gpu_entry).groups((parts * c) as u32)
        }
    };
    let params = [
        u(n),
        u(c),
        u(inner),
        f(eps),
        f(momentum),
        u(ranks),
        u(parts),
        0,
    ];
    let call = |entry| KernelCall::new("batchnorm", entry).params(&params);
    // Planes of whole vec4s: `apply4` and `grad_input4` (RUN = 32 is whole vec4s, so every
    // run is too).
    let vec4 = inner.is_multiple_of(4);
    let apply_entry = if vec4 { "apply4" } else { "apply" };
    let grad_input_entry = if vec4 { "grad_input4" } else { "grad_input" };
    let apply = |act: &Option<Act>| {
        call(apply_entry)
            .constant("ACT", act_code(*act))
            .args(&[In(0), Scratch(0), Out(0)])
            .threads(runs, 64)
    };
    let grad_input = |act: &Option<Act>| {
        call(grad_input_entry)
            .constant("ACT", act_code(*act))
            .args(&[In(0), In(4), In(5), Scratch(0), Out(0)])
            .threads(runs, 64)
    };
    match op {
        // SyncBN: this rank's moments, gathered over the ranks, combined.
        Op::BatchNorm {
            train: true, act, ..
        } if ranks > 1 => Plan {
            calls: vec![
                call("stats_local")
                    .args(&pick(&STATS, &|b| b == 1 || b == 9))
                    .groups(c as u32)
                    .then_rank_sum(Scratch(1), 3 * c, true),
                call("stats_finish")
                    .args(&pick(&STATS, &|b| b >= 2))
                    .threads(c, 64),
                apply(act),
            ],
            scratch: vec![(3 * c * 4) as u64, (ranks * 3 * c * 4) as u64],
        },
        // SyncBN backward: this rank's sums, summed over the ranks, turned into coefficients.
        Op::BatchNormGrad {
            act, eval: false, ..
        } if ranks > 1 => Plan {
            calls: vec![
                call("grad_sums")
                    .constant("ACT", act_code(*act))
                    .args(&pick(&GRAD, &|b| b != 2 && b != 9))
                    .groups(c as u32)
                    .then_rank_sum(Scratch(1), 2 * c, false),
                call("grad_coef")
                    .args(&pick(&GRAD, &|b| matches!(b, 2..=4 | 9 | 10)))
                    .threads(c, 64),
                grad_input(act),
            ],
            scratch: vec![(4 * c * 4) as u64, (2 * c * 4) as u64],
        },
        // Per (part, channel) the sums, the batch mean from them, the squares around it;
        // combined per channel.
        Op::BatchNorm {
            train: true, act, ..
        } if by_parts => {
            // Bindings 1, 6 and 9: x, the batch mean, the per-part entries (scratch 1).
            let part_args = pick(&STATS, &|b| matches!(b, 1 | 6 | 9));
            Plan {
                calls: vec![
                    per_part("stats_parts", "stats_parts_wg")
                        .params(&params)
                        .constant("CENTRED", 0.0)
                        .args(&part_args),
                    call("mean_of_parts").args(&part_args).threads(c, 64),
                    per_part("stats_parts", "stats_parts_wg")
                        .params(&params)
                        .constant("CENTRED", 1.0)
                        .args(&part_args),
                    call("stats_finish")
                        .args(&pick(&STATS, &|b| b >= 2))
                        .threads(c, 64),
                    apply(act),
                ],
                scratch: vec![(3 * c * 4) as u64, (parts * 3 * c * 4) as u64],
            }
        }
        // inputs: x, gamma, beta, running_mean, running_var; outputs: y, mean, inv_std
        Op::BatchNorm {
            train: true, act, ..
        } => Plan {
            calls: vec![
                call("stats")
                    .args(&pick(&STATS, &|b| b <= 8))
                    .groups(c as u32),
                apply(act),
            ],
            scratch: vec![(3 * c * 4) as u64],
        },
        Op::BatchNorm {
            train: false, act, ..
        } => Plan {
            calls: vec![
                call("eval_coef")
                    .args(&[In(1), In(2), In(3), In(4), Scratch(0)])
                    .threads(c, 64),
                apply(act),
            ],
            scratch: vec![(3 * c * 4) as u64],
        },
        // (dbeta, dgamma) per (part, channel), added up per channel.
        Op::BatchNormGrad { act, eval, .. } if by_parts => Plan {
            calls: vec![
                per_part("grad_parts", "grad_parts_wg")
                    .params(&params)
                    .constant("ACT", act_code(*act))
                    .constant("EVAL", *eval as u8 as f64)
                    .args(&pick(&GRAD, &|b| matches!(b, 1 | 3..=6 | 10))),
                call("grad_parts_finish")
                    .constant("EVAL", *eval as u8 as f64)
                    .args(&pick(&GRAD, &|b| matches!(b, 2..=4 | 7..=10)))
                    .threads(c, 64),
                grad_input(act),
            ],
            scratch: vec![(4 * c * 4) as u64, (parts * 2 * c * 4) as u64],
        },
        // inputs: x, gamma, mean, inv_std (eval: running mean, running var), dy, y;
        // outputs: dx, dgamma, dbeta
        Op::BatchNormGrad { act, eval, .. } => Plan {
            calls: vec![
                call("grad_reduce")
                    .constant("ACT", act_code(*act))
                    .constant("EVAL", *eval as u8 as f64)
                    .args(&pick(&GRAD, &|b| b <= 9))
                    .groups(c as u32),
                grad_input(act),
            ],
            scratch: vec![(4 * c * 4) as u64],
        },
        _ => unreachable!("not a batchnorm op: {op:?}"),
    }
}

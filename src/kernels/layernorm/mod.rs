//! LayerNorm over the last axis (`layernorm.wgsl`).

pub mod reference;

use super::{f, u, Arg, KernelCall, Plan, PlanCtx};
use crate::graph::{Op, Tensor};

/// Invocations the parameter gradient's parts aim for on GPUs, where one per column (384 for
/// MiniLM) would leave the device idle while each walks every row of the batch.
const GPU_PARAM_GRAD_INVOCATIONS: usize = 65_536;

pub fn plan(op: &Op, ins: &[&Tensor], ctx: &PlanCtx) -> Plan {
    // The last word: rows per part of `grad_params` (layernorm.wgsl), 0 for the others.
    let call = |entry, rows: usize, d: usize, eps: f32, rows_per_part: usize| {
        KernelCall::new("layernorm", entry).params(&[u(rows), u(d), f(eps), u(rows_per_part)])
    };
    match op {
        // (x, gamma, beta) -> (y, mean, inv_std)
        Op::LayerNorm { eps } => {
            let d = *ins[0].shape.last().expect("checked by infer");
            let rows = ins[0].numel() / d;
            Plan::one(
                call("forward", rows, d, *eps, 0)
                    .args(&[
                        Arg::In(0),
                        Arg::In(1),
                        Arg::In(2),
                        Arg::Out(0),
                        Arg::Out(1),
                        Arg::Out(2),
                    ])
                    .threads(rows, 64),
            )
        }
        // (x, gamma, mean, inv_std, dy) -> (dx, dgamma, dbeta)
        Op::LayerNormGrad => {
            let d = *ins[0].shape.last().expect("checked by infer");
            let rows = ins[0].numel() / d;
            let grad_input = call("grad_input", rows, d, 0.0, 0)
                .args(&[
                    Arg::In(0),
                    Arg::In(1),
                    Arg::In(2),
                    Arg::In(3),
                    Arg::In(4),
                    Arg::Out(0),
                ])
                .threads(rows, 64);
            // The parameter gradient sums each column over the rows, in parts: within the
            // loop limit on CPU adapters (docs/architecture.md, "The loop limit"), and spread
            // over the device on GPUs; more than one part writes partial sums, added up after.
            let wanted = if ctx.is_cpu {
                1
            } else {
                GPU_PARAM_GRAD_INVOCATIONS.div_ceil(d)
            };
            let (per_part, parts) = super::split_runs(rows, wanted, ctx.loop_items(1));
            let params = call("grad_params", rows, d, 0.0, per_part).threads(parts * d, 64);
            let [dgamma, dbeta] = match parts {
                1 => [Arg::Out(1), Arg::Out(2)],
                _ => [Arg::Scratch(0), Arg::Scratch(1)],
            };
            let mut calls = vec![
                grad_input,
                params.args(&[
                    Arg::In(0),
                    Arg::In(2),
                    Arg::In(3),
                    Arg::In(4),
                    dgamma,
                    dbeta,
                ]),
            ];
            let mut scratch = vec![];
            if parts > 1 {
                for (partial, out) in [(dgamma, Arg::Out(1)), (dbeta, Arg::Out(2))] {
                    calls.push(super::reduce::sum_splits(d, parts, partial, out));
                    scratch.push((parts * d * 4) as u64);
                }
            }
            Plan { calls, scratch }
        }
        _ => unreachable!("not a layernorm op: {op:?}"),
    }
}

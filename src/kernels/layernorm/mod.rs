//! LayerNorm over the last axis (`layernorm.wgsl`).

pub mod reference;

use super::{f, u, Arg, KernelCall, Plan};
use crate::graph::{Op, Tensor};

pub fn plan(op: &Op, ins: &[&Tensor]) -> Plan {
    let call = |entry, rows: usize, d: usize, eps: f32| {
        KernelCall::new("layernorm", entry).params(&[u(rows), u(d), f(eps), 0])
    };
    match op {
        // (x, gamma, beta) -> (y, mean, inv_std)
        Op::LayerNorm { eps } => {
            let d = *ins[0].shape.last().expect("checked by infer");
            let rows = ins[0].numel() / d;
            Plan::one(
                call("forward", rows, d, *eps)
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
            Plan {
                calls: vec![
                    call("grad_input", rows, d, 0.0)
                        .args(&[
                            Arg::In(0),
                            Arg::In(1),
                            Arg::In(2),
                            Arg::In(3),
                            Arg::In(4),
                            Arg::Out(0),
                        ])
                        .threads(rows, 64),
                    call("grad_params", rows, d, 0.0)
                        .args(&[
                            Arg::In(0),
                            Arg::In(2),
                            Arg::In(3),
                            Arg::In(4),
                            Arg::Out(1),
                            Arg::Out(2),
                        ])
                        .threads(d, 64),
                ],
                scratch: vec![],
            }
        }
        _ => unreachable!("not a layernorm op: {op:?}"),
    }
}

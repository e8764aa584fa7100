//! LayerNorm over the last axis and embedding lookup (`layernorm.wgsl`).

use super::{f, u, Arg, KernelCall, Plan};
use crate::graph::{Op, Tensor};

pub fn plan(op: &Op, ins: &[&Tensor]) -> Plan {
    let call = |entry, rows: usize, d: usize, eps: f32, vocab: usize| {
        KernelCall::new("layernorm", entry).params(&[u(rows), u(d), f(eps), u(vocab)])
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
            Plan {
                calls: vec![
                    call("grad_input", rows, d, 0.0, 0)
                        .args(&[
                            Arg::In(0),
                            Arg::In(1),
                            Arg::In(2),
                            Arg::In(3),
                            Arg::In(4),
                            Arg::Out(0),
                        ])
                        .threads(rows, 64),
                    call("grad_params", rows, d, 0.0, 0)
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
        // (table [V, D], ids [N]) -> [N, D]; the MoE dispatch gathers token rows by slot.
        Op::Embedding | Op::MoeDispatch => {
            let (v, d) = (ins[0].shape[0], ins[0].shape[1]);
            let rows = ins[1].numel();
            let run = [8, 4, 2, 1].into_iter().find(|r| d % r == 0).unwrap_or(1);
            Plan::one(
                call("gather", rows, d, 0.0, v)
                    .constant("GATHER_RUN", run as f64)
                    .args(&[Arg::In(0), Arg::In(1), Arg::Out(0)])
                    .threads(rows * d / run, 64),
            )
        }
        // (dy [N, D], ids [N]) -> dtable [V, D]
        Op::EmbeddingGrad { vocab } => {
            let d = *ins[0].shape.last().expect("checked by infer");
            let rows = ins[1].numel();
            Plan {
                calls: vec![
                    call("chain", rows, d, 0.0, *vocab)
                        .args(&[Arg::In(1), Arg::Scratch(0)])
                        .threads(rows, 64),
                    call("zero_table", rows, d, 0.0, *vocab)
                        .args(&[Arg::Out(0)])
                        .threads(*vocab * d, 64),
                    call("scatter_chain", rows, d, 0.0, *vocab)
                        .args(&[Arg::In(0), Arg::In(1), Arg::Scratch(0), Arg::Out(0)])
                        .threads(rows * d, 64),
                ],
                scratch: vec![(rows * 4) as u64],
            }
        }
        _ => unreachable!("not a layernorm/embedding op: {op:?}"),
    }
}

//! Row gather by index and its gradient (`gather.wgsl`): embedding lookups, and the MoE
//! dispatch that gathers token rows into expert order.

pub mod reference;

use super::{u, Arg, KernelCall, Plan};
use crate::graph::{Op, Tensor};

pub fn plan(op: &Op, ins: &[&Tensor]) -> Plan {
    let call = |entry, rows: usize, d: usize, vocab: usize| {
        KernelCall::new("gather", entry).params(&[u(rows), u(d), u(vocab), 0])
    };
    match op {
        // (table [V, D], ids [N]) -> [N, D]; the MoE dispatch gathers token rows by slot.
        Op::Embedding | Op::MoeDispatch => {
            let (v, d) = (ins[0].shape[0], ins[0].shape[1]);
            let rows = ins[1].numel();
            let run = [8, 4, 2, 1].into_iter().find(|r| d % r == 0).unwrap_or(1);
            Plan::one(
                call("gather", rows, d, v)
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
                    call("chain", rows, d, *vocab)
                        .args(&[Arg::In(1), Arg::Scratch(0)])
                        .threads(rows, 64),
                    call("zero_table", rows, d, *vocab)
                        .args(&[Arg::Out(0)])
                        .threads(*vocab * d, 64),
                    call("scatter_chain", rows, d, *vocab)
                        .args(&[Arg::In(0), Arg::In(1), Arg::Scratch(0), Arg::Out(0)])
                        .threads(rows * d, 64),
                ],
                scratch: vec![(rows * 4) as u64],
            }
        }
        _ => unreachable!("not a gather op: {op:?}"),
    }
}

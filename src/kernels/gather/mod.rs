//! Row gather by index and its gradient (`gather.wgsl`): embedding lookups, the MoE dispatch
//! that gathers token rows into expert order, and the channel merge of split PAD-Conv layers.

pub mod reference;

use super::{u, Arg, KernelCall, Plan, PlanCtx};
use crate::graph::{Op, Tensor};

/// Elements per invocation of `merge_channels` (gather.wgsl's `MERGE_RUN`).
const MERGE_RUN: usize = 16;
/// Elements per invocation of `zero_table` (gather.wgsl's `ZERO_RUN`).
const ZERO_RUN: usize = 16;

/// Elements one invocation copies: the largest of 8, 4, 2, 1 dividing a row of `d`.
fn run_of(d: usize) -> usize {
    [8, 4, 2]
        .into_iter()
        .find(|r| d.is_multiple_of(*r))
        .unwrap_or(1)
}

/// The embedding gradient's windows of tokens (gather.wgsl's `CHAIN_WINDOW`): `chain` loops
/// over two windows per invocation, so on CPU adapters each is half the loop budget; on GPUs
/// one window spans every token.
fn chain_window(ctx: &PlanCtx) -> usize {
    ctx.loop_items(2).min(u32::MAX as usize)
}

pub fn plan(op: &Op, ins: &[&Tensor], ctx: &PlanCtx) -> Plan {
    let call = |entry, rows: usize, d: usize, vocab: usize| {
        KernelCall::new("gather", entry).params(&[u(rows), u(d), u(vocab), 0])
    };
    match op {
        // (table [V, D], ids [N]) -> [N, D]; the MoE dispatch gathers token rows by slot.
        Op::Embedding | Op::MoeDispatch => {
            let (v, d) = (ins[0].shape[0], ins[0].shape[1]);
            let rows = ins[1].numel();
            let run = run_of(d);
            Plan::one(
                call("gather", rows, d, v)
                    .constant("GATHER_RUN", run as f64)
                    .args(&[Arg::In(0), Arg::In(1), Arg::Out(0)])
                    .threads(rows * d / run, 64),
            )
        }
        // (dy [N, D], ids [N]) -> dtable [V, D]; scratch: the links, the chains' cursors.
        Op::EmbeddingGrad { vocab } => {
            let d = *ins[0].shape.last().expect("checked by infer");
            let rows = ins[1].numel();
            let window = chain_window(ctx);
            let windows = rows.div_ceil(window).max(1);
            let windowed = |entry, j: usize| {
                let mut c = call(entry, rows, d, *vocab).constant("CHAIN_WINDOW", window as f64);
                c.params[3] = u(j);
                c
            };
            let mut calls: Vec<KernelCall> = (0..windows)
                .map(|j| {
                    windowed("chain", j)
                        .args(&[Arg::In(1), Arg::Scratch(0)])
                        .threads(rows, 64)
                })
                .collect();
            calls.push(
                call("zero_table", rows, d, *vocab)
                    .args(&[Arg::Out(0)])
                    .threads((*vocab * d).div_ceil(ZERO_RUN), 64),
            );
            for j in 0..windows {
                if j > 0 {
                    calls.push(
                        windowed("chain_advance", j - 1)
                            .args(&[Arg::Scratch(0), Arg::Scratch(1)])
                            .threads(rows, 64),
                    );
                }
                let args = [
                    Arg::In(0),
                    Arg::In(1),
                    Arg::Scratch(0),
                    Arg::Out(0),
                    Arg::Scratch(1),
                ];
                calls.push(
                    windowed("scatter_chain", j)
                        .args(&args)
                        .threads(rows * d, 64),
                );
            }
            Plan {
                calls,
                scratch: vec![(rows * 4) as u64, (rows * 4) as u64],
            }
        }
        // (a [B, Ca, H, W], b [B, Cb, H, W], from [C]) -> [B, C, H, W]: rows of H·W.
        Op::MergeChannels => {
            let (a, b) = (&ins[0].shape, &ins[1].shape);
            let (rows, hw) = (a[0] * (a[1] + b[1]), a[2] * a[3]);
            Plan::one(
                KernelCall::new("gather", "merge_channels")
                    .params(&[u(rows), u(hw), u(a[1]), u(b[1])])
                    .args(&[Arg::In(0), Arg::In(1), Arg::In(2), Arg::Out(0)])
                    .threads(rows * hw.div_ceil(MERGE_RUN), 64),
            )
        }
        _ => unreachable!("not a gather op: {op:?}"),
    }
}

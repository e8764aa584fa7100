//! Batch normalisation (`batchnorm.wgsl`), train and eval, with its backward.

use super::{f, u, Arg, KernelCall, Plan};
use crate::graph::{Op, Tensor};

pub fn plan(op: &Op, ins: &[&Tensor]) -> Plan {
    let x = &ins[0].shape;
    let (n, c) = (x[0], x[1]);
    let inner: usize = x[2..].iter().product();
    let len = n * c * inner;
    let (eps, momentum) = match op {
        Op::BatchNorm { eps, momentum, .. } => (*eps, *momentum),
        _ => (0.0, 0.0),
    };
    let params = [u(n), u(c), u(inner), f(eps), f(momentum), 0, 0, 0];
    let call = |entry| KernelCall::new("batchnorm", entry).params(&params);
    match op {
        Op::BatchNorm { train: true, .. } => Plan {
            calls: vec![
                // x -> running stats (in place), batch mean, inv_std
                call("stats")
                    .args(&[Arg::In(0), Arg::In(3), Arg::In(4), Arg::Out(1), Arg::Out(2)])
                    .groups(c as u32),
                call("apply")
                    .constant("TRAIN", 1.0)
                    .args(&[
                        Arg::In(0),
                        Arg::In(1),
                        Arg::In(2),
                        Arg::Out(1),
                        Arg::Out(2),
                        Arg::Out(0),
                    ])
                    .threads(len, 256),
            ],
            scratch: vec![],
        },
        Op::BatchNorm { train: false, .. } => Plan::one(
            call("apply")
                .constant("TRAIN", 0.0)
                .args(&[
                    Arg::In(0),
                    Arg::In(1),
                    Arg::In(2),
                    Arg::In(3),
                    Arg::In(4),
                    Arg::Out(0),
                ])
                .threads(len, 256),
        ),
        Op::BatchNormGrad => Plan {
            // inputs: x, gamma, mean, inv_std, dy; outputs: dx, dgamma, dbeta
            calls: vec![
                call("grad_reduce")
                    .args(&[
                        Arg::In(0),
                        Arg::In(2),
                        Arg::In(3),
                        Arg::In(4),
                        Arg::Out(1),
                        Arg::Out(2),
                    ])
                    .groups(c as u32),
                call("grad_input")
                    .args(&[
                        Arg::In(0),
                        Arg::In(1),
                        Arg::In(2),
                        Arg::In(3),
                        Arg::In(4),
                        Arg::Out(1),
                        Arg::Out(2),
                        Arg::Out(0),
                    ])
                    .threads(len, 256),
            ],
            scratch: vec![],
        },
        _ => unreachable!("not a batchnorm op: {op:?}"),
    }
}

//! Batch normalisation (`batchnorm.wgsl`), train and eval, optionally fused with a following
//! ReLU/ReLU6, and its backward.

pub mod reference;

use super::{f, u, Arg, KernelCall, Plan};
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

pub fn plan(op: &Op, ins: &[&Tensor]) -> Plan {
    let x = &ins[0].shape;
    let (n, c) = (x[0], x[1]);
    let inner: usize = x[2..].iter().product();
    let runs = n * c * inner.div_ceil(RUN);
    let (eps, momentum) = match op {
        Op::BatchNorm { eps, momentum, .. } => (*eps, *momentum),
        Op::BatchNormGrad { eps, .. } => (*eps, 0.0),
        _ => (0.0, 0.0),
    };
    let params = [u(n), u(c), u(inner), f(eps), f(momentum), 0, 0, 0];
    let call = |entry| KernelCall::new("batchnorm", entry).params(&params);
    match op {
        // inputs: x, gamma, beta, running_mean, running_var; outputs: y, mean, inv_std
        Op::BatchNorm {
            train: true, act, ..
        } => Plan {
            calls: vec![
                call("stats")
                    .args(&[
                        Arg::In(0),
                        Arg::In(1),
                        Arg::In(2),
                        Arg::In(3),
                        Arg::In(4),
                        Arg::Out(1),
                        Arg::Out(2),
                        Arg::Scratch(0),
                    ])
                    .groups(c as u32),
                call("apply")
                    .constant("ACT", act_code(*act))
                    .args(&[Arg::In(0), Arg::Scratch(0), Arg::Out(0)])
                    .threads(runs, 64),
            ],
            scratch: vec![(3 * c * 4) as u64],
        },
        Op::BatchNorm {
            train: false, act, ..
        } => Plan {
            calls: vec![
                call("eval_coef")
                    .args(&[
                        Arg::In(1),
                        Arg::In(2),
                        Arg::In(3),
                        Arg::In(4),
                        Arg::Scratch(0),
                    ])
                    .threads(c, 64),
                call("apply")
                    .constant("ACT", act_code(*act))
                    .args(&[Arg::In(0), Arg::Scratch(0), Arg::Out(0)])
                    .threads(runs, 64),
            ],
            scratch: vec![(3 * c * 4) as u64],
        },
        // inputs: x, gamma, mean, inv_std (eval: running mean, running var), dy, y;
        // outputs: dx, dgamma, dbeta
        Op::BatchNormGrad { act, eval, .. } => Plan {
            calls: vec![
                call("grad_reduce")
                    .constant("ACT", act_code(*act))
                    .constant("EVAL", *eval as u8 as f64)
                    .args(&[
                        Arg::In(0),
                        Arg::In(1),
                        Arg::In(2),
                        Arg::In(3),
                        Arg::In(4),
                        Arg::In(5),
                        Arg::Out(1),
                        Arg::Out(2),
                        Arg::Scratch(0),
                    ])
                    .groups(c as u32),
                call("grad_input")
                    .constant("ACT", act_code(*act))
                    .args(&[
                        Arg::In(0),
                        Arg::In(4),
                        Arg::In(5),
                        Arg::Scratch(0),
                        Arg::Out(0),
                    ])
                    .threads(runs, 64),
            ],
            scratch: vec![(4 * c * 4) as u64],
        },
        _ => unreachable!("not a batchnorm op: {op:?}"),
    }
}

//! Max / average pooling (`pool.wgsl`).

pub mod reference;

use super::{u, Arg, KernelCall, Plan};
pub use crate::graph::params::PoolGeom;
use crate::graph::Op;

pub fn plan(op: &Op, g: &PoolGeom) -> Plan {
    let planes = g.n * g.c;
    let params = [
        u(planes),
        u(g.h),
        u(g.w),
        u(g.oh),
        u(g.ow),
        u(g.k.0),
        u(g.k.1),
        u(g.stride.0),
        u(g.stride.1),
        u(g.pad.0),
        u(g.pad.1),
        0,
    ];
    let (entry, args, threads): (_, &[Arg], _) = match op {
        Op::MaxPool2d(_) => (
            "max_forward",
            &[Arg::In(0), Arg::Out(0), Arg::Out(1)],
            planes * g.oh * g.ow,
        ),
        Op::MaxPool2dGrad(_) => (
            "max_backward",
            &[Arg::In(0), Arg::In(1), Arg::Out(0)],
            planes * g.h * g.w,
        ),
        Op::AvgPool2d(_) => (
            "avg_forward",
            &[Arg::In(0), Arg::Out(0)],
            planes * g.oh * g.ow,
        ),
        Op::AvgPool2dGrad(_) => (
            "avg_backward",
            &[Arg::In(0), Arg::Out(0)],
            planes * g.h * g.w,
        ),
        _ => unreachable!("not a pooling op: {op:?}"),
    };
    let mut call = KernelCall::new("pool", entry)
        .args(args)
        .params(&params)
        .threads(threads, 64);
    if matches!(op, Op::MaxPool2dGrad(_) | Op::AvgPool2dGrad(_)) {
        let disjoint = g.k == g.stride && g.pad == (0, 0);
        call = call.constant("DISJOINT", disjoint as u8 as f64);
    }
    Plan::one(call)
}

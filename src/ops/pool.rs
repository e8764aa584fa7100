//! Max / average pooling (`pool.wgsl`).

use super::{u, Arg, KernelCall, Plan};
use crate::error::{Error, Result};
use crate::graph::Op;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: (usize, usize),
    pub stride: (usize, usize),
    pub pad: (usize, usize),
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    /// As `nn.MaxPool2d(k, stride, padding)` / `nn.AvgPool2d`, floor mode.
    pub fn new(x: &[usize], k: usize, stride: usize, pad: usize) -> Result<Self> {
        let err = |m: String| Error::shape("pool2d", m);
        if x.len() != 4 {
            return Err(err(format!("input {x:?} is not NCHW")));
        }
        if k == 0 || stride == 0 || 2 * pad > k {
            return Err(err(format!(
                "kernel {k}, stride {stride}, padding {pad}: need k, stride ≥ 1 and padding ≤ k/2"
            )));
        }
        let (h, w) = (x[2], x[3]);
        if h + 2 * pad < k || w + 2 * pad < k {
            return Err(err(format!(
                "input {x:?} is smaller than the {k}x{k} window"
            )));
        }
        Ok(PoolGeom {
            n: x[0],
            c: x[1],
            h,
            w,
            k: (k, k),
            stride: (stride, stride),
            pad: (pad, pad),
            oh: (h + 2 * pad - k) / stride + 1,
            ow: (w + 2 * pad - k) / stride + 1,
        })
    }
    pub fn x_shape(&self) -> Vec<usize> {
        vec![self.n, self.c, self.h, self.w]
    }
    pub fn y_shape(&self) -> Vec<usize> {
        vec![self.n, self.c, self.oh, self.ow]
    }
}

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

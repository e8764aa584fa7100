//! Elementwise ops (`elementwise.wgsl`): activations, scaling, bias, dropout, accumulation.

pub mod reference;

use super::{f, u, Arg, KernelCall, Plan};
use crate::graph::{Op, Tensor};

/// Dropout's keep threshold on a uniform u32 hash (keep when hash ≥ threshold) and the scale
/// 1/(1 − p) of kept elements; shared by the kernel and the CPU reference.
pub fn dropout_constants(p: f32) -> (u32, f32) {
    (
        (p as f64 * 4294967296.0).min(4294967295.0) as u32,
        1.0 / (1.0 - p),
    )
}

/// PCG hash (O'Neill's pcg32 output on a one-step LCG), as `dropout` in elementwise.wgsl.
pub fn pcg_hash(v: u32) -> u32 {
    let s = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let w = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277803737);
    (w >> 22) ^ w
}

/// Whether dropout keeps element `i` (numbered in the global batch's tensor) of the site `salt`
/// under `seed`.
pub fn dropout_keep(seed: u32, salt: u32, i: u32, threshold: u32) -> bool {
    pcg_hash(i ^ pcg_hash(seed ^ pcg_hash(salt))) >= threshold
}

pub fn plan(op: &Op, ins: &[&Tensor]) -> Plan {
    let len = ins[0].numel();
    let x = &ins[0].shape;
    let (entry, act, inner, channels, scale) = match op {
        Op::Unary(a) => ("unary", a.code(), 1, 1, 1.0),
        Op::UnaryGrad(a) => ("unary_grad", a.code(), 1, 1, 1.0),
        Op::Scale(s) => ("scale", 0, 1, 1, *s),
        Op::Accumulate => {
            // acc (input 0) is read and written: the kernel's `out` binding.
            let call = KernelCall::new("elementwise", "accumulate")
                .args(&[Arg::In(1), Arg::Skip, Arg::In(0)])
                .params(&[u(len), 1, 1, f(1.0)])
                .threads(len, 256);
            return Plan::one(call);
        }
        Op::BiasAdd => ("bias_add", 0, x[2..].iter().product(), x[1], 1.0),
        Op::Dropout { p, salt } => {
            let (threshold, scale) = dropout_constants(*p);
            let call = KernelCall::new("elementwise", "dropout")
                .args(&[Arg::In(0), Arg::In(1), Arg::Out(0)])
                .params(&[u(len), *salt, threshold, f(scale)])
                .threads(len, 256);
            return Plan::one(call);
        }
        _ => unreachable!("not an elementwise op: {op:?}"),
    };
    // Bindings: a = 1, b = 2, out = 3. Single-input entries do not use b.
    let args = if ins.len() == 1 {
        vec![Arg::In(0), Arg::Skip, Arg::Out(0)]
    } else {
        vec![Arg::In(0), Arg::In(1), Arg::Out(0)]
    };
    let mut call = KernelCall::new("elementwise", entry)
        .args(&args)
        .params(&[u(len), u(inner), u(channels), f(scale)])
        .threads(len, 256);
    if matches!(op, Op::Unary(_) | Op::UnaryGrad(_)) {
        call = call.constant("ACT", act as f64);
        // Whole vec4s: four elements per invocation (`unary4`, `unary_grad4`).
        if len.is_multiple_of(4) {
            call.entry = if entry == "unary" {
                "unary4"
            } else {
                "unary_grad4"
            };
            call = call.threads(len / 4, 256);
        }
    }
    Plan::one(call)
}

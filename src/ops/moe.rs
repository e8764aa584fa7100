//! MoE dispatch plan (`moe.wgsl`); the expert GEMMs are grouped launches of `gemm.wgsl`.

use super::{u, Arg, KernelCall, Plan};
use crate::graph::Tensor;

/// `gates [N, E] → (order, slot_expert, gate_index, groups)`, see `Op::MoeRoute`.
pub fn plan_route(k: usize, ins: &[&Tensor]) -> Plan {
    let (n, e) = (ins[0].shape[0], ins[0].shape[1]);
    // Each entry binds only what it uses (gates, order, slot_expert, gate_index, groups).
    let call = |entry, args: [Arg; 5]| {
        KernelCall::new("moe", entry)
            .args(&args)
            .params(&[u(n), u(e), u(n * k), 0])
    };
    let (gates, skip) = (Arg::In(0), Arg::Skip);
    let [order, expert, index, groups] = [0, 1, 2, 3].map(Arg::Out);
    Plan {
        calls: vec![
            call("route_count", [gates, skip, skip, skip, groups]).threads(e, 64),
            call("route_scan", [skip, order, expert, index, groups]),
            call("route_fill", [gates, order, expert, index, groups]).threads(e, 64),
        ],
        scratch: vec![],
    }
}

//! Mixtures of experts: the dispatch plan, dispatch and combine (`moe.wgsl`), the router's
//! noise, smooth load and cv² (`moe_router.wgsl`); the expert GEMMs are grouped launches of
//! `matmul.wgsl`. The f64 references of all of it are in `reference/moe.rs`.

pub mod reference;

use super::elementwise::pcg_hash;
use super::{f, u, Arg, KernelCall, Plan};
use crate::graph::{Op, Tensor};

/// Tokens per block of the routing passes that count and fill per (block, expert)
/// (`route_count`, `route_fill`): short loops (lavapipe's loop limit, docs/architecture.md) and
/// blocks × E invocations on GPUs.
const ROUTE_BLOCK: usize = 64;

/// Uniform parameters of every `moe.wgsl` entry.
fn moe_call(entry: &'static str, n: usize, e: usize, k: usize, d: usize, cap: usize) -> KernelCall {
    let slots = n * k;
    KernelCall::new("moe", entry).params(&[
        u(n),
        u(e),
        u(slots),
        u(k),
        u(d),
        u(cap.min(slots)),
        u(ROUTE_BLOCK),
        0,
    ])
}

/// `gates [N, E] → (order, slot_expert, token_slots, groups)`, see `Op::MoeRoute`.
pub fn plan_route(k: usize, capacity: usize, ins: &[&Tensor]) -> Plan {
    let (n, e) = (ins[0].shape[0], ins[0].shape[1]);
    // Each entry binds only what it uses (gates, order, slot_expert, token_slots, groups,
    // ranks, counts).
    let call = |entry, args: &[Arg]| moe_call(entry, n, e, k, 0, capacity).args(args);
    let (gates, skip, ranks, counts) = (Arg::In(0), Arg::Skip, Arg::Scratch(0), Arg::Scratch(1));
    let [order, expert, slots, groups] = [0, 1, 2, 3].map(Arg::Out);
    let per_block = n.div_ceil(ROUTE_BLOCK) * e;
    Plan {
        calls: vec![
            call(
                "route_count",
                &[gates, skip, skip, skip, skip, skip, counts],
            )
            .threads(per_block, 64),
            call(
                "route_scan",
                &[skip, skip, skip, skip, groups, skip, counts],
            ),
            call("route_clear", &[skip, order, expert, slots, groups]).threads(n * k, 64),
            call("route_rank", &[gates, skip, skip, skip, skip, ranks]).threads(n, 64),
            call(
                "route_fill",
                &[gates, order, expert, slots, groups, ranks, counts],
            )
            .threads(per_block, 64),
        ],
        scratch: vec![(n * e * 4) as u64, (per_block * 4) as u64],
    }
}

/// `MoeCombine` and `MoeCombineGrad` (`MoeDispatch` is the embedding gather, see
/// `gather`). Bindings 1..=11: ys, token_slots, order, gates, slot_expert, bias, groups, dy,
/// out (y or dys), dgates, dbias; each entry binds only what it uses.
pub fn plan_combine(op: &Op, ins: &[&Tensor]) -> Plan {
    let (s, d) = (ins[0].shape[0], ins[0].shape[1]);
    let (n, k) = (ins[1].shape[0], ins[1].shape[1]);
    debug_assert_eq!(s, n * k);
    let e = ins.get(3).map_or(0, |g| g.shape[1]);
    let run = [8, 4, 2, 1].into_iter().find(|r| d % r == 0).unwrap_or(1);
    let call = |entry, bound: &[(usize, Arg)]| {
        let mut args = vec![Arg::Skip; 11];
        for &(binding, arg) in bound {
            args[binding - 1] = arg;
        }
        moe_call(entry, n, e, k, d, usize::MAX)
            .args(&args)
            .constant("RUN", run as f64)
    };
    let [ys, token_slots, order, gates, expert, bias, groups, dy] =
        [0, 1, 2, 3, 4, 5, 6, 7].map(|i| (i + 1, Arg::In(i)));
    let (out, dgates, dbias) = ((9, Arg::Out(0)), (10, Arg::Out(1)), (11, Arg::Out(2)));
    let calls = match op {
        Op::MoeCombine { weighted: false } => {
            vec![call("combine", &[ys, token_slots, out]).threads(n * d / run, 64)]
        }
        Op::MoeCombine { weighted: true } => vec![call(
            "combine_weighted",
            &[ys, token_slots, gates, expert, bias, out],
        )
        .threads(n * d / run, 64)],
        Op::MoeCombineGrad => vec![
            call("combine_grad_rows", &[order, gates, expert, dy, out]).threads(s * d / run, 64),
            call(
                "combine_grad_gates",
                &[ys, token_slots, expert, bias, dy, dgates],
            )
            .threads(n * e, 64),
            call("combine_grad_bias", &[groups, out, dbias]).threads(e * d, 64),
        ],
        _ => unreachable!("not a MoE combine op: {op:?}"),
    };
    Plan {
        calls,
        scratch: vec![],
    }
}

/// The two uniforms of normal sample `i` (Box–Muller), as `random_normal` in moe_router.wgsl:
/// 24-bit values, exact in f32, with u1 in (0, 1) and u2 in [0, 1).
pub fn normal_uniforms(seed: u32, salt: u32, i: u32) -> (f32, f32) {
    let key = pcg_hash(seed ^ pcg_hash(salt));
    let h1 = pcg_hash(i.wrapping_mul(2) ^ key);
    let h2 = pcg_hash(i.wrapping_mul(2).wrapping_add(1) ^ key);
    (
        ((h1 >> 8) as f32 + 0.5) / 16777216.0,
        (h2 >> 8) as f32 / 16777216.0,
    )
}

/// Plans of the MoE router ops (`moe_router.wgsl`).
pub fn plan_router(op: &Op, ins: &[&Tensor]) -> Plan {
    let call = |entry, args: &[Arg], len: usize, inner: u32, channels: u32, threads: usize| {
        KernelCall::new("moe_router", entry)
            .args(args)
            .params(&[u(len), inner, channels, f(1.0)])
            .threads(threads, 256)
    };
    let e = |t: &Tensor| *t.shape.last().expect("checked by infer");
    Plan::one(match op {
        Op::RandomNormal { shape, salt } => {
            let n: usize = shape.iter().product();
            call(
                "random_normal",
                &[Arg::Skip, Arg::In(0), Arg::Out(0)],
                n,
                *salt,
                0,
                n,
            )
        }
        Op::MoeLoadProb { k } => {
            let rows = ins[0].numel() / e(ins[0]);
            let args = [Arg::In(0), Arg::In(1), Arg::In(2), Arg::Out(0)];
            call("moe_load_prob", &args, rows, u(e(ins[0])), u(*k), rows)
        }
        Op::MoeLoadProbGrad { k } => {
            let rows = ins[0].numel() / e(ins[0]);
            let args = [
                Arg::In(0),
                Arg::In(1),
                Arg::In(2),
                Arg::In(3),
                Arg::Out(0),
                Arg::Out(1),
                Arg::Out(2),
            ];
            call("moe_load_prob_grad", &args, rows, u(e(ins[0])), u(*k), rows)
        }
        Op::CvSquared => call(
            "cv_squared",
            &[Arg::In(0), Arg::Skip, Arg::Out(0)],
            ins[0].numel(),
            0,
            0,
            1,
        ),
        Op::CvSquaredGrad => call(
            "cv_squared_grad",
            &[Arg::In(0), Arg::In(1), Arg::Out(0)],
            ins[0].numel(),
            0,
            0,
            1,
        ),
        _ => unreachable!("not a router op: {op:?}"),
    })
}

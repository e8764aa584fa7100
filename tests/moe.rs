//! MoE building blocks on the GPU against the f64 reference: grouped expert GEMMs (forward
//! and both gradients, by finite differences too) and the dispatch plan.

mod common;
use common::{gpu, gpu_with, OpCase};
use padnet_wgpu::executor::{Executable, ParamStore};
use padnet_wgpu::graph::{DType, Graph, Op};
use padnet_wgpu::kernels::Blocking;

/// A tensor of a run graph as f64.
fn read_f64(exe: &Executable, store: &ParamStore, t: usize) -> Vec<f64> {
    exe.read(t, store)
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect()
}

#[test]
fn grouped_matmul_forward_and_gradients() {
    // 23 rows in four groups, one empty, the last three rows in none (zeros); and 150 rows in
    // groups of 40, 0, 70 and 30 (the subgroup kernel's tiles fitted to them: 64 rows, two
    // rows of invocations, where the first case's take one). Each on the test adapter's GEMM
    // kernel (lavapipe's: the subgroup kernel, matmul_subgroup.wgsl) and on the
    // register-blocked one with both of its blockings (matmul.wgsl).
    use padnet_wgpu::gpu::tuning::{GemmKernel, GemmPolicy};
    let registers = |b| {
        gpu_with(|g| {
            g.blocking = b;
            g.gemm = GemmPolicy::Fixed(GemmKernel::Registers);
        })
    };
    let cases = [
        (23, vec![0.0, 5.0, 5.0, 12.0, 20.0]),
        (150, vec![0.0, 40.0, 40.0, 110.0, 140.0]),
    ];
    for planned in [gpu(), registers(Blocking::CPU), registers(Blocking::GPU)] {
        for (rows, groups) in &cases {
            for trans_b in [true, false] {
                let mut gid = 0;
                let name = format!("grouped_matmul {rows} rows trans_b {trans_b}");
                OpCase::new(&name, |g| {
                    let a = g.input("a", &[*rows, 6], DType::F32);
                    let b_shape: &[usize] = if trans_b { &[4, 7, 6] } else { &[4, 6, 7] };
                    let b = g.param("w", b_shape, padnet_wgpu::graph::Init::Zeros);
                    gid = g.input("groups", &[5], DType::U32);
                    let op = Op::GroupedMatMul {
                        trans_a: false,
                        trans_b,
                        by_k: false,
                    };
                    g.push1(op, &[a, b, gid]).unwrap()
                })
                .set(gid, groups.clone())
                .check_on(planned.clone());
            }
        }
    }
    // Shape errors name the op.
    let mut g = Graph::new();
    let a = g.input("a", &[23, 6], DType::F32);
    let b = g.input("b", &[3, 7, 6], DType::F32);
    let gr = g.input("groups", &[5], DType::U32);
    let op = Op::GroupedMatMul {
        trans_a: false,
        trans_b: true,
        by_k: false,
    };
    let e = g.push1(op, &[a, b, gr]).unwrap_err().to_string();
    assert!(e.contains("grouped_matmul"), "{e}");
}

#[test]
fn route_groups_slots_by_expert() {
    let (n, e, k) = (37, 8, 2);
    // No limit, a capacity that drops tokens, and one that drops nearly all.
    for capacity in [n, 6, 1] {
        let mut rng = padnet_wgpu::rng::Rng::new(4);
        let mut logits: Vec<f32> = (0..n * e).map(|_| rng.normal()).collect();
        // Zero-initialised routers tie: the first rows pick experts 0 and 1.
        logits[..3 * e].iter_mut().for_each(|v| *v = 0.0);
        let want = route_checked(&logits, n, e, k, capacity);
        let [order, expert, token_slots, groups] = &want;
        let routed = groups[e] as usize;
        if capacity == n {
            assert_eq!(routed, n * k, "every token routed to k experts");
            assert_eq!(
                &expert[..3],
                &[0.0, 0.0, 0.0],
                "tied rows go to expert 0 first"
            );
        } else {
            assert!(
                routed < n * k && routed <= capacity * e,
                "capacity {capacity}: {routed}"
            );
        }
        // token_slots is the inverse of order: every used slot once, at its own token.
        let mut seen = vec![false; n * k];
        for t in 0..n {
            for &s in &token_slots[t * k..(t + 1) * k] {
                if (s as usize) < n * k {
                    assert_eq!(order[s as usize], t as f64);
                    assert!(!seen[s as usize]);
                    seen[s as usize] = true;
                }
            }
        }
        assert_eq!(seen.iter().filter(|&&v| v).count(), routed);
    }
}

/// Routing tables of `n` tokens to k of `e` experts (every token routed except token 2,
/// which plays padding, and under a capacity that drops some), as f32 for `OpCase::set`.
fn tables(n: usize, e: usize, k: usize, capacity: usize) -> [Vec<f32>; 4] {
    let mut rng = padnet_wgpu::rng::Rng::new(11);
    let mut gates = vec![0.0; n * e];
    for t in (0..n).filter(|&t| t != 2) {
        let mut picked = 0;
        while picked < k {
            let x = rng.below(e);
            if gates[t * e + x] == 0.0 {
                gates[t * e + x] = 0.5;
                picked += 1;
            }
        }
    }
    padnet_wgpu::kernels::reference::moe::route(&gates, n, e, k, capacity)
        .map(|v| v.into_iter().map(|x| x as f32).collect())
}

/// The MoE dispatch gathers token rows into slots and the combine sums each token's slots
/// back (weighted by its gates, with the expert biases): GPU vs the f64 reference, gradients
/// (rows, gates, biases) by finite differences too; unused slots (padding, dropped tokens)
/// contribute nothing.
#[test]
fn dispatch_and_combine() {
    let (n, e, k) = (9, 4, 2);
    // Row widths that are runs of 1 and of 8 columns per invocation (see moe.wgsl).
    for (d, capacity) in [(5, n), (5, 3), (16, n)] {
        let [order, expert, token_slots, groups] = tables(n, e, k, capacity);
        let mut ids = [0; 4];
        OpCase::new(&format!("moe_dispatch d {d} capacity {capacity}"), |g| {
            let x = g.input("x", &[n, d], DType::F32);
            ids[0] = g.input("order", &[n * k], DType::U32);
            ids[1] = g.input("token_slots", &[n, k], DType::U32);
            g.push1(Op::MoeDispatch, &[x, ids[0], ids[1]]).unwrap()
        })
        .set(ids[0], order.clone())
        .set(ids[1], token_slots.clone())
        .check();
        for weighted in [false, true] {
            let mut case = OpCase::new(
                &format!("moe_combine weighted {weighted} d {d} capacity {capacity}"),
                |g| {
                    let ys = g.input("ys", &[n * k, d], DType::F32);
                    ids[1] = g.input("token_slots", &[n, k], DType::U32);
                    ids[0] = g.input("order", &[n * k], DType::U32);
                    let mut ins = vec![ys, ids[1], ids[0]];
                    if weighted {
                        ids[2] = g.input("slot_expert", &[n * k], DType::U32);
                        ids[3] = g.input("groups", &[e + 1], DType::U32);
                        let gates = g.input("gates", &[n, e], DType::F32);
                        let bias = g.input("bias", &[e, d], DType::F32);
                        ins.extend([gates, ids[2], bias, ids[3]]);
                    }
                    g.push1(Op::MoeCombine { weighted }, &ins).unwrap()
                },
            )
            .set(ids[0], order.clone())
            .set(ids[1], token_slots.clone());
            if weighted {
                case = case.set(ids[2], expert.clone()).set(ids[3], groups.clone());
            }
            case.check();
        }
    }
    // The combine of a dispatch puts every routed token back k times (padding: 0 times).
    let [order, _, token_slots, _] = tables(n, e, k, n);
    let d = 5;
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let x: Vec<f64> = (0..n * d).map(|i| i as f64).collect();
    let xs = padnet_wgpu::kernels::reference::gather::gather(&x, d, &f(&order));
    let back = padnet_wgpu::kernels::reference::moe::combine(&xs, d, &f(&token_slots), k, None);
    for t in 0..n {
        let times = if t == 2 { 0.0 } else { k as f64 };
        assert_eq!(
            &back[t * d..(t + 1) * d],
            &x[t * d..(t + 1) * d]
                .iter()
                .map(|v| v * times)
                .collect::<Vec<_>>()[..]
        );
    }
}

/// The MoE layer against a float64 PyTorch implementation of docs/method.md §1.3 with the same
/// router noise (tests/golden/make_moe_fixture.py): output ≤ 1e-4, aux loss ≤ 1e-4, every
/// gradient of sum(y·r) + aux ≤ 1e-3 — training (noisy gating, load estimate, padding rows
/// masked out of routing; k = 2 and k = 1) and evaluation (clean gating); and PAD-MoE (§1.4,
/// λ variants both, s and p) with the static weight's, φ's and the mask's (∂L/∂M) gradients.
#[test]
fn moe_layer_matches_pytorch() {
    use common::{rel_err, BWD_TOL, FWD_TOL};
    use padnet_wgpu::graph::autodiff::backward;
    use padnet_wgpu::nn::moe::{moe_linear, MoeConfig};
    use padnet_wgpu::nn::{Builder, DROPOUT_SEED};
    for case in [
        "train",
        "train_k1",
        "eval",
        "pad_train",
        "pad_eval_s",
        "pad_train_p",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/moe_{case}.safetensors"));
        let (fx, meta) = padnet_wgpu::checkpoint::load(&path).unwrap();
        let m = |k: &str| meta[k].parse::<usize>().unwrap();
        let (n, d_in) = (fx["x"].0[0], fx["x"].0[1]);
        let d_out = fx["y"].0[1];
        let mut g = Graph::new();
        let x = g.input("x", &[n, d_in], DType::F32);
        g.tensors[x].requires_grad = true;
        let mask = g.input("mask", &[n, 1], DType::F32);
        let r = g.input("r", &[n, d_out], DType::F32);
        let pad = match meta["pad"].as_str() {
            "" => None,
            v => Some(
                <padnet_wgpu::kernels::dynconv::Lambda as padnet_wgpu::names::Named>::parse(v)
                    .unwrap(),
            ),
        };
        let cfg = MoeConfig {
            pad,
            experts: m("experts"),
            top_k: m("top_k"),
            capacity_factor: None,
        };
        let mut b = Builder::new(&mut g, m("train") == 1);
        let out = moe_linear(&mut b, "moe", x, d_out, cfg, Some(mask)).unwrap();
        let yr = g.push1(Op::Mul, &[out.y, r]).unwrap();
        let sum = Op::Sum {
            start: 0,
            end: 2,
            mean: false,
            over_ranks: false,
        };
        let s = g.push1(sum, &[yr]).unwrap();
        let s = g.reshape(s, &[1]).unwrap();
        let total = g.push1(Op::Add, &[s, out.aux]).unwrap();
        let one = g.constant("one", &[1], vec![1.0]).unwrap();
        let grads = backward(&mut g, total, one).unwrap();
        let gx = grads[&x];
        for t in [out.y, out.aux, gx] {
            g.mark_output(t);
        }
        let param_grads: Vec<(String, padnet_wgpu::graph::TensorId)> = g
            .grads
            .iter()
            .chain(&g.mask_grads)
            .map(|(&p, &d)| (g.tensors[p].name.clone(), d))
            .collect();
        for d in g.mask_grads.values().copied().collect::<Vec<_>>() {
            g.mark_output(d);
        }
        let seed = g.find(DROPOUT_SEED);
        let gpu = gpu();
        let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
        for name in store.param_slots.keys().chain(store.state_slots.keys()) {
            let key = name.strip_prefix("moe.").unwrap();
            store.write(name, &fx[key].1).unwrap();
        }
        let exe = Executable::compile(gpu, g, &store).unwrap();
        exe.write(x, &fx["x"].1).unwrap();
        exe.write(mask, &fx["token_mask"].1).unwrap();
        exe.write(r, &fx["r"].1).unwrap();
        if let Some(t) = seed {
            exe.write_u32(t, &padnet_wgpu::nn::step_seed(m("seed") as u32, 0))
                .unwrap();
        }
        exe.run().unwrap();
        let read = |t| read_f64(&exe, &store, t);
        let want = |k: &str| -> Vec<f64> { fx[k].1.iter().map(|&v| v as f64).collect() };
        for (t, key, tol) in [
            (out.y, "y", FWD_TOL),
            (out.aux, "aux", FWD_TOL),
            (gx, "grad.x", BWD_TOL),
        ] {
            let e = rel_err(&read(t), &want(key));
            assert!(e <= tol, "{case}: {key} relative error {e:.2e}");
        }
        // Evaluation graphs have no noise path: w_noise gets no gradient (PyTorch's is 0).
        // PAD adds the static weight, φ and the mask.
        let expected = if m("train") == 1 { 4 } else { 3 } + 3 * pad.is_some() as usize;
        assert_eq!(param_grads.len(), expected, "{case}");
        for (name, d) in param_grads {
            let key = format!("grad.{}", name.strip_prefix("moe.").unwrap());
            let e = rel_err(&read(d), &want(&key));
            assert!(e <= BWD_TOL, "{case}: {key} relative error {e:.2e}");
        }
    }
}

/// Routing stays exact past lavapipe's loop limit (docs/architecture.md, "The loop limit"):
/// 8 000 tokens that all choose experts 6 and 7, so one invocation per expert walks every token
/// and ranks each among its choices.
#[test]
fn route_with_skewed_gates_past_the_loop_limit() {
    let (n, e, k) = (8000, 8, 2);
    let mut rng = padnet_wgpu::rng::Rng::new(5);
    let logits: Vec<f32> = (0..n * e)
        .map(|i| rng.normal() + if i % e >= 6 { 8.0 } else { 0.0 })
        .collect();
    route_checked(&logits, n, e, k, n);
}

/// Routing counts and fills per block of tokens (`moe::plan_route`), so that no invocation walks
/// every token: 70 000 tokens over 4 experts (one expert's walk alone passed lavapipe's loop
/// limit), with top-1 and with top-2 past a capacity of 30 000 (tokens dropped), and 140 000
/// slots.
#[test]
fn route_more_tokens_than_the_loop_limit() {
    let (n, e) = (70_000, 4);
    let mut rng = padnet_wgpu::rng::Rng::new(9);
    let logits: Vec<f32> = (0..n * e).map(|_| rng.normal()).collect();
    route_checked(&logits, n, e, 1, n);
    route_checked(&logits, n, e, 2, 30_000);
}

/// Top-k gates of `logits` [n, e] and their routing (`Op::MoeRoute`) on the GPU, each output
/// equal to the f64 reference's from the same gates; returns the reference's outputs.
fn route_checked(logits: &[f32], n: usize, e: usize, k: usize, capacity: usize) -> [Vec<f64>; 4] {
    let mut g = Graph::new();
    let x = g.input("logits", &[n, e], DType::F32);
    let gates = g.push1(Op::TopKGates { k }, &[x]).unwrap();
    let outs = g.push(Op::MoeRoute { k, capacity }, &[gates]).unwrap();
    for &t in &outs {
        g.mark_output(t);
    }
    g.mark_output(gates);
    let gpu = gpu();
    let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
    let exe = Executable::compile(gpu, g, &store).unwrap();
    exe.write(x, logits).unwrap();
    exe.run().unwrap();
    let read = |t| read_f64(&exe, &store, t);
    let want = padnet_wgpu::kernels::reference::moe::route(&read(gates), n, e, k, capacity);
    for (i, (&t, want)) in outs.iter().zip(&want).enumerate() {
        let got = read(t);
        // The first difference, not the whole table (70 000 entries in the largest case).
        let diff = (0..got.len().max(want.len())).find(|&j| got.get(j) != want.get(j));
        if let Some(j) = diff {
            panic!(
                "output {i}, capacity {capacity}: entry {j} is {:?}, the reference's {:?}",
                got.get(j),
                want.get(j)
            );
        }
    }
    want
}

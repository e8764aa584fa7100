//! DY-Conv and PAD-Conv layers (docs/method.md §1.1–1.2): GPU vs the per-sample f64 reference,
//! and the reference's gradients (x, alpha, kernels, static kernel, phi, and the mask gradient
//! ∂L/∂M) vs finite differences — for every λ variant, strided, grouped and depthwise shapes,
//! and a backward pass split into several sample chunks.

mod common;
use common::OpCase;
use padnet_wgpu::graph::{DType, Init, Op};
use padnet_wgpu::kernels::conv::{ConvGeom, ConvOpts};
use padnet_wgpu::kernels::dynconv::{DynSpec, Lambda};
use padnet_wgpu::rng::Rng;

/// One DY-Conv or PAD-Conv layer, planned for and run on `gpu`, against the reference.
#[allow(clippy::too_many_arguments)]
fn case(
    gpu: std::sync::Arc<padnet_wgpu::gpu::Gpu>,
    x: [usize; 4],
    o: usize,
    opts: ConvOpts,
    k: usize,
    pad: bool,
    lambda: Lambda,
    max_chunk: usize,
) {
    let geom = ConvGeom::new(&x, o, opts).unwrap();
    let spec = DynSpec {
        geom,
        k,
        pad,
        lambda,
        max_chunk,
    };
    let name = format!(
        "{} {x:?}->{o} {opts:?} K={k} {lambda:?} chunk {max_chunk}",
        if pad { "pad" } else { "dyn" }
    );
    let (mut mask, mut phi) = (0, 0);
    let c = OpCase::new(&name, |g| {
        let xi = g.input("x", &x, DType::F32);
        let alpha = g.input("alpha", &[x[0], k], DType::F32);
        let wk = g.param("kernels", &spec.kernels_shape(), Init::Zeros);
        let mut ins = vec![xi, alpha, wk];
        if pad {
            let ws = g.param("weight", &spec.static_shape(), Init::Zeros);
            mask = g.state("mask", &spec.static_shape(), Init::Ones);
            phi = g.param("phi_d", &[1], Init::Zeros);
            ins.extend([ws, mask, phi]);
        }
        g.push(Op::DynConv2d(spec), &ins).unwrap()[0]
    });
    if pad {
        let mut rng = Rng::new(11);
        let m: Vec<f32> = (0..spec.n())
            .map(|_| (rng.uniform() < 0.4) as u8 as f32)
            .collect();
        c.set(mask, m).set(phi, vec![0.37]).check_on(gpu);
    } else {
        c.check_on(gpu);
    }
}

#[test]
fn pad_conv_all_lambda_variants() {
    for lambda in [Lambda::Both, Lambda::S, Lambda::D, Lambda::None, Lambda::P] {
        case(
            common::gpu(),
            [3, 4, 7, 6],
            5,
            ConvOpts::k(3).pad(1),
            4,
            true,
            lambda,
            0,
        );
    }
}

/// More samples than one invocation of the kernel assembly covers (16), in two chunks: kernels
/// of 54 values (the scalar `aggregate`) and of 108 (`aggregate4`, whole vec4s).
#[test]
fn many_samples_per_chunk() {
    for (pad, c) in [(false, 2), (true, 2), (true, 4)] {
        case(
            common::gpu(),
            [37, c, 4, 4],
            3,
            ConvOpts::k(3).pad(1),
            3,
            pad,
            Lambda::Both,
            20,
        );
    }
}

/// PAD-MoE's expert mixing (docs/method.md §1.4) for every λ variant: W~_e, and the gradients of
/// the experts, the static weight, φ and the mask vs the f64 reference and finite differences.
#[test]
fn pad_moe_mix_all_lambda_variants() {
    use padnet_wgpu::kernels::dynconv::MixSpec;
    let (e, shape) = (5, [7usize, 45]);
    let n = shape[0] * shape[1];
    for lambda in [Lambda::Both, Lambda::S, Lambda::D, Lambda::None, Lambda::P] {
        let spec = MixSpec {
            experts: e,
            n,
            lambda,
        };
        let (mut mask, mut phi) = (0, 0);
        let c = OpCase::new(&format!("pad_mix {lambda:?}"), |g| {
            let w = g.param("experts.weight", &[e, shape[0], shape[1]], Init::Zeros);
            let ws = g.param("weight", &shape, Init::Zeros);
            mask = g.state("mask", &shape, Init::Ones);
            phi = g.param("phi_d", &[1], Init::Zeros);
            g.push(Op::PadMix(spec), &[w, ws, mask, phi]).unwrap()[0]
        });
        let mut rng = Rng::new(5);
        let m: Vec<f32> = (0..n).map(|_| (rng.uniform() < 0.5) as u8 as f32).collect();
        c.set(mask, m).set(phi, vec![-0.61]).check();
    }
}

#[test]
fn dynamic_and_pad_geometries() {
    for pad in [false, true] {
        case(
            common::gpu(),
            [2, 4, 9, 7],
            6,
            ConvOpts::k(3).pad(1).stride(2),
            3,
            pad,
            Lambda::Both,
            0,
        );
        case(
            common::gpu(),
            [3, 6, 5, 5],
            4,
            ConvOpts::k(1),
            4,
            pad,
            Lambda::Both,
            0,
        );
        case(
            common::gpu(),
            [2, 6, 8, 7],
            4,
            ConvOpts::k(3).pad(1).groups(2),
            2,
            pad,
            Lambda::Both,
            0,
        );
        // Depthwise.
        case(
            common::gpu(),
            [2, 6, 9, 8],
            6,
            ConvOpts::k(3).pad(1).groups(6),
            4,
            pad,
            Lambda::Both,
            0,
        );
        // Per-sample sliding windows (`forward_w`, eight samples or more): a ragged plane,
        // and few positions with many channels (where fewer samples run `forward_t`).
        case(
            common::gpu(),
            [9, 4, 7, 6],
            5,
            ConvOpts::k(3).pad(1),
            3,
            pad,
            Lambda::Both,
            0,
        );
        case(
            common::gpu(),
            [10, 20, 3, 3],
            24,
            ConvOpts::k(3).pad(1),
            2,
            pad,
            Lambda::Both,
            0,
        );
        // Planes of enough window blocks to fill the lanes run with chunks of one sample as
        // lanes (`chunk_tile`, weights broadcast; forward and input gradient): 8 blocks of
        // 4 × 7 over a ragged 14 × 13 plane, 8 of 4 × 8 over 15 × 15 with 9 samples.
        case(
            common::gpu(),
            [8, 3, 14, 13],
            5,
            ConvOpts::k(3).pad(1),
            2,
            pad,
            Lambda::Both,
            0,
        );
        case(
            common::gpu(),
            [9, 2, 15, 15],
            19,
            ConvOpts::k(3).pad(1),
            3,
            pad,
            Lambda::Both,
            0,
        );
        // The weight gradients' sliding window (`main_w`, at least eight input channels):
        // a partial block of channel lanes (9), 6 filters, rows longer than the lanes.
        case(
            common::gpu(),
            [2, 9, 6, 11],
            6,
            ConvOpts::k(3).pad(1),
            4,
            pad,
            Lambda::Both,
            0,
        );
        // Depthwise with several samples per split of the weight gradient (`main_dw` on CPU
        // adapters: about 512 / 130 splits of 5 samples, the last one short).
        case(
            common::gpu(),
            [5, 130, 5, 4],
            130,
            ConvOpts::k(3).pad(1).groups(130),
            2,
            pad,
            Lambda::Both,
            0,
        );
        // Depthwise, strided, one sample per chunk (chunks after the first start at n > 0).
        case(
            common::gpu(),
            [3, 5, 7, 6],
            5,
            ConvOpts::k(3).pad(1).stride(2).groups(5),
            2,
            pad,
            Lambda::Both,
            1,
        );
    }
}

#[test]
fn few_positions_many_channels_run_transposed() {
    // Positions per sample below 64 and below the channel count: the transposed kernels.
    case(
        common::gpu(),
        [3, 20, 3, 3],
        24,
        ConvOpts::k(3).pad(1),
        4,
        true,
        Lambda::Both,
        0,
    );
    case(
        common::gpu(),
        [2, 30, 5, 4],
        20,
        ConvOpts::k(3).pad(1).stride(2),
        3,
        false,
        Lambda::Both,
        0,
    );
    case(
        common::gpu(),
        [2, 24, 3, 3],
        40,
        ConvOpts::k(3).pad(1).groups(2),
        2,
        true,
        Lambda::D,
        2,
    );
}

#[test]
fn few_positions_as_a_gpu_plans_them() {
    // GPUs give per-sample convolutions with fewer positions than a tile's columns one row
    // per invocation in narrow workgroups (`Blocking::few_columns_on_gpu`): 4×4 and 3×3
    // outputs against 64-column tiles, a grouped layer, strides, and chunks of samples.
    let cases = [
        (
            [3, 20, 4, 4],
            70,
            ConvOpts::k(3).pad(1),
            4,
            true,
            Lambda::Both,
            0,
        ),
        (
            [2, 30, 7, 6],
            20,
            ConvOpts::k(3).pad(1).stride(2),
            3,
            false,
            Lambda::Both,
            0,
        ),
        (
            [5, 24, 3, 3],
            40,
            ConvOpts::k(3).pad(1).groups(2),
            2,
            true,
            Lambda::D,
            2,
        ),
        // Enough channels that the reduction is split (`conv::split_k`): the
        // forward over 50 input channels in 3 parts, the input gradient over 36 filters in
        // 2, in chunks of 2 samples (each chunk's parts summed into its own samples).
        (
            [5, 50, 4, 4],
            36,
            ConvOpts::k(3).pad(1),
            2,
            true,
            Lambda::Both,
            2,
        ),
    ];
    // The same with the workgroup-tiled kernels (`PADNET_CONV=tiled`, conv_tiled.wgsl).
    for gpu in [
        common::gpu_planned_as_gpu_blocked(),
        common::gpu_tiled_conv(),
    ] {
        for (x, o, opts, k, pad, lambda, max_chunk) in cases {
            case(gpu.clone(), x, o, opts, k, pad, lambda, max_chunk);
        }
    }
}

#[test]
fn backward_in_several_sample_chunks() {
    case(
        common::gpu(),
        [5, 3, 6, 5],
        4,
        ConvOpts::k(3).pad(1),
        4,
        true,
        Lambda::Both,
        2,
    );
    case(
        common::gpu(),
        [5, 3, 6, 5],
        4,
        ConvOpts::k(3).pad(1),
        4,
        false,
        Lambda::None,
        2,
    );
}

/// Every scratch buffer of the DY/PAD-Conv plans stays bindable (≤ 128 MiB, the portable
/// storage-binding limit) on GPU and CPU plans alike, for ResNet-18's largest layers at batch
/// 128 — the H200 once refused a 144 MiB dalpha partial of 512→512 3×3 at batch 64.
#[test]
fn plans_stay_under_the_binding_limit() {
    use padnet_wgpu::kernels::{dynconv, Blocking, PlanCtx};
    for is_cpu in [false, true] {
        let ctx = PlanCtx {
            is_cpu,
            blocking: if is_cpu { Blocking::CPU } else { Blocking::GPU },
            ..PlanCtx::for_device(wgpu::DeviceType::Other)
        };
        for (c, o, hw) in [(512, 512, 4), (256, 256, 8), (64, 64, 32)] {
            let opts = ConvOpts {
                k: 3,
                stride: 1,
                pad: 1,
                dil: 1,
                groups: 1,
            };
            let spec = DynSpec {
                geom: ConvGeom::new(&[128, c, hw, hw], o, opts).unwrap(),
                k: 4,
                pad: true,
                lambda: Lambda::Both,
                max_chunk: 0,
            };
            for plan in [
                dynconv::plan_forward(&spec, &ctx),
                dynconv::plan_backward(&spec, &ctx),
            ] {
                for &bytes in &plan.scratch {
                    assert!(
                        bytes <= 128 << 20,
                        "{c}->{o} at {hw}x{hw}, cpu {is_cpu}: scratch of {bytes} bytes"
                    );
                }
            }
        }
    }
}

/// Where the device allows larger storage bindings (`PlanCtx::chunk_bytes`: 3/4 of them),
/// DY-Conv assembles the kernels of more samples per chunk: ResNet-18's 512→512 layer at
/// batch 64 in one chunk with an H200's 1 GiB, in seven under the portable 128 MiB; every
/// scratch buffer stays within its binding limit.
#[test]
fn chunks_grow_with_the_binding_limit() {
    use padnet_wgpu::kernels::{dynconv, Blocking, PlanCtx};
    let spec = DynSpec {
        geom: ConvGeom::new(&[64, 512, 4, 4], 512, ConvOpts::k(3).pad(1)).unwrap(),
        k: 4,
        pad: true,
        lambda: Lambda::Both,
        max_chunk: 0,
    };
    for (binding, chunks) in [(128usize << 20, 7), (1 << 30, 1)] {
        let ctx = PlanCtx {
            blocking: Blocking::GPU,
            chunk_bytes: binding / 4 * 3,
            ..PlanCtx::for_device(wgpu::DeviceType::DiscreteGpu)
        };
        assert_eq!(spec.chunk(&ctx), 64usize.div_ceil(chunks));
        for plan in [
            dynconv::plan_forward(&spec, &ctx),
            dynconv::plan_backward(&spec, &ctx),
        ] {
            let assemblies = plan
                .calls
                .iter()
                .filter(|c| c.entry.starts_with("aggregate"))
                .count();
            assert_eq!(assemblies, chunks, "binding {binding}");
            for &bytes in &plan.scratch {
                assert!(
                    bytes as usize <= binding,
                    "{bytes} bytes, binding {binding}"
                );
            }
        }
    }
}

/// Split PAD-Conv layers (deploy files with whole dynamic filters, `Op::SplitDynConv2d`): GPU vs
/// the reference with the dynamic filters among the static ones — positions as columns, few
/// positions (transposed on CPU adapters), strided, and several sample chunks; shapes that do
/// not fit are refused.
#[test]
fn split_filters_conv_matches_the_reference() {
    let cases = [
        ([3, 4, 7, 6], 5, vec![1, 3], ConvOpts::k(3).pad(1), 0),
        // Nine samples: the sliding window (`forward_w`) with the row map.
        ([9, 4, 7, 6], 5, vec![1, 3], ConvOpts::k(3).pad(1), 0),
        // A ragged plane of 8 window blocks, where per-sample weights with no shared row take
        // chunks as lanes (`chunk_tile`): a row map keeps samples as lanes, 17 filters over
        // two tiles of rows.
        (
            [8, 3, 14, 13],
            17,
            vec![0, 6, 7, 16],
            ConvOpts::k(3).pad(1),
            0,
        ),
        // Static filters over several tiles of rows, each tile's W_S rows (their weights
        // broadcast where the subgroups allow) and dynamic rows padded where the tiles do not
        // divide them: 17 + 4 of 21 and 30 + 7 of 37 filters.
        (
            [10, 3, 6, 9],
            21,
            vec![2, 9, 10, 20],
            ConvOpts::k(3).pad(1),
            0,
        ),
        (
            [9, 3, 6, 5],
            37,
            vec![0, 5, 11, 12, 30, 35, 36],
            ConvOpts::k(3).pad(1),
            0,
        ),
        (
            [5, 6, 4, 4],
            20,
            vec![0, 7, 8, 19],
            ConvOpts::k(3).pad(1),
            2,
        ),
        ([2, 3, 8, 8], 6, vec![5], ConvOpts::k(3).pad(1).stride(2), 1),
        // Strided over 272 positions: the register `forward` with the row map (on CPU adapters
        // with subgroups, its weights broadcast along a row of lanes: RB).
        (
            [2, 3, 33, 31],
            20,
            vec![1, 4, 8, 15],
            ConvOpts::k(3).pad(1).stride(2),
            0,
        ),
        // Dynamic filters of 108 values after W_S's 27: assembled by the scalar `aggregate`
        // (the offset is not whole vec4s); the cases above by `aggregate4`, but 27 values.
        ([2, 3, 5, 5], 5, vec![0, 1, 2, 4], ConvOpts::k(3).pad(1), 0),
        (
            [4, 8, 4, 4],
            12,
            vec![2, 3, 4, 5, 6, 7, 8],
            ConvOpts::k(1),
            3,
        ),
        ([5, 40, 4, 4], 12, vec![2, 5, 9], ConvOpts::k(3).pad(1), 2),
    ];
    for (x, o, dynamic, opts, max_chunk) in cases {
        let statics: Vec<usize> = (0..o).filter(|f| !dynamic.contains(f)).collect();
        // [row_of | its inverse]: filter f is weight row row_of[f] (W_S's first).
        let mut order = vec![0.0; 2 * o];
        for (j, &f) in statics.iter().chain(&dynamic).enumerate() {
            order[f] = j as f32;
            order[o + j] = f as f32;
        }
        let spec = DynSpec {
            geom: ConvGeom::new(&x, dynamic.len(), opts).unwrap(),
            k: 3,
            pad: false,
            lambda: Lambda::None,
            max_chunk,
        };
        let mut static_shape = spec.static_shape();
        static_shape[1] = statics.len();
        let op = Op::SplitDynConv2d {
            spec,
            statics: statics.len(),
        };
        let name = format!("split {x:?}->{o} {opts:?} dynamic {dynamic:?} chunk {max_chunk}");
        let case = OpCase::forward_only(&name, |g| {
            let xi = g.input("x", &x, DType::F32);
            let alpha = g.input("alpha", &[x[0], 3], DType::F32);
            let wk = g.param("kernels", &spec.kernels_shape(), Init::Zeros);
            let ws = g.param("weight", &static_shape, Init::Zeros);
            let order = g.constant("order", &[2, o], order.clone()).unwrap();
            g.push1(op.clone(), &[xi, alpha, wk, ws, order]).unwrap()
        });
        // 40 input channels: a GPU splits the reduction (`conv::split_k`), here
        // through a handle that plans as one does.
        match x[1] {
            40 => case.check_on(common::gpu_planned_as_gpu_blocked()),
            _ => case.check(),
        }
    }
    // W_S with one filter too many for `order`.
    let mut g = padnet_wgpu::graph::Graph::new();
    let spec = DynSpec {
        geom: ConvGeom::new(&[2, 3, 5, 5], 2, ConvOpts::k(3)).unwrap(),
        k: 2,
        pad: false,
        lambda: Lambda::None,
        max_chunk: 0,
    };
    let xi = g.input("x", &[2, 3, 5, 5], DType::F32);
    let alpha = g.input("alpha", &[2, 2], DType::F32);
    let wk = g.param("kernels", &spec.kernels_shape(), Init::Zeros);
    let ws = g.param("weight", &[1, 4, 3, 3, 3], Init::Zeros);
    let order = g.constant("order", &[2, 5], vec![0.0; 10]).unwrap();
    let op = Op::SplitDynConv2d { spec, statics: 3 };
    let e = g.push1(op, &[xi, alpha, wk, ws, order]).unwrap_err();
    assert!(e.to_string().contains("static weight"), "{e}");
}

/// The three forms of a split PAD-Conv layer (`SplitForm`: one per-sample convolution with a
/// row map, outputs of batched convolutions mixed by α, a batched static convolution beside a
/// per-sample dynamic one) compute the same function: the f64 reference of each form's graph,
/// on the same parameters and input, agrees with the others, and each runs on the GPU as its
/// reference does. Shapes: 3×3 with dynamic filters scattered among static ones, strided, and
/// 1×1.
#[test]
fn split_forms_compute_the_same_layer() {
    use padnet_wgpu::executor::interp::{run, Values};
    use padnet_wgpu::gpu::tuning::Precision;
    use padnet_wgpu::graph::{Graph, Role, TensorId};
    use padnet_wgpu::nn::dynamic::SplitForm;
    use padnet_wgpu::nn::Builder;

    let cases = [
        ([3, 5, 7, 7], 8, vec![1, 4, 6], ConvOpts::k(3).pad(1)),
        ([2, 4, 8, 8], 6, vec![0, 5], ConvOpts::k(3).pad(1).stride(2)),
        ([2, 6, 4, 4], 5, vec![2], ConvOpts::k(1)),
    ];
    for (x, o, dynamic, opts) in cases {
        let build = |g: &mut Graph, form: SplitForm| -> TensorId {
            let xi = g.input("x", &x, DType::F32);
            let mut b = Builder::new(g, false);
            b.split_form = Some(form);
            let y = b.filter_split_conv(xi, o, opts, &dynamic).unwrap();
            g.mark_output(y);
            y
        };
        // The same value for a leaf of the same name in every form's graph.
        let fill = |g: &Graph| {
            let mut v = Values::new(g);
            for (t, tensor) in g.tensors.iter().enumerate() {
                if matches!(tensor.role, Role::Input | Role::Param(_)) {
                    let seed = tensor
                        .name
                        .bytes()
                        .fold(7u64, |h, c| h.wrapping_mul(31).wrapping_add(c as u64));
                    let mut rng = Rng::new(seed);
                    v.set(
                        t,
                        (0..tensor.numel()).map(|_| rng.normal() as f64).collect(),
                    );
                }
            }
            v
        };
        let mut outputs = vec![];
        for form in SplitForm::ALL {
            let mut g = Graph::new();
            let y = build(&mut g, form);
            let mut v = fill(&g);
            run(&g, &mut v);
            outputs.push((form, v.get(y).to_vec()));
            let name = format!("{form:?} {x:?}->{o} {opts:?} dynamic {dynamic:?}");
            OpCase::forward_only(&name, |g| build(g, form)).check();
            if common::has_f16() {
                let f16 = common::gpu_with(|gpu| gpu.precision = Precision::F16);
                OpCase::forward_only(&format!("{name} in f16"), |g| build(g, form)).check_on(f16);
            }
        }
        let (first, want) = &outputs[0];
        for (form, got) in &outputs[1..] {
            let e = common::rel_err(got, want);
            assert!(
                e <= 1e-12,
                "{form:?} vs {first:?}, {x:?}->{o}: relative error {e:.2e}"
            );
        }
    }
}

/// The two forms of a DY-Conv or PAD-Conv layer (`DyForm`: kernels assembled per sample, or the
/// outputs of one batched convolution with every kernel's filters mixed by α) compute the same
/// function and the same gradients: the f64 references of both forms' training graphs agree on
/// the output and on the gradient of every input and parameter (attention branch included)
/// and, for PAD-Conv, on the mask's (IMP's score); the mixed form runs on the GPU as its
/// reference does, its gradients checked against finite differences. Shapes: 3×3 at 4×4
/// (ResNet's last stage), strided, and 1×1; PAD with both λ and with pruning only (λ_s = 0).
#[test]
fn dy_forms_compute_the_same_layer_and_gradients() {
    use padnet_wgpu::executor::interp::{run, Values};
    use padnet_wgpu::graph::{Graph, Role, TensorId};
    use padnet_wgpu::nn::dynamic::{ConvMode, DyForm, DynConfig};
    use padnet_wgpu::nn::Builder;

    let mixed = DyForm::MixedOutputs {
        max_positions: usize::MAX,
    };
    let cases = [
        ([2, 8, 4, 4], 6, ConvOpts::k(3).pad(1), None),
        ([3, 4, 7, 7], 5, ConvOpts::k(3).pad(1).stride(2), None),
        ([2, 6, 5, 5], 4, ConvOpts::k(1), None),
        ([2, 8, 4, 4], 6, ConvOpts::k(3).pad(1), Some(Lambda::Both)),
        (
            [2, 4, 6, 6],
            5,
            ConvOpts::k(3).pad(1).stride(2),
            Some(Lambda::P),
        ),
    ];
    for (x, o, opts, pad) in cases {
        let build = |g: &mut Graph, form: DyForm| -> TensorId {
            let xi = g.input("x", &x, DType::F32);
            let mut b = Builder::new(g, true);
            b.dynamic = DynConfig {
                mode: ConvMode::Dynamic,
                kernels: 3,
                reduction: 2,
                lambda: pad.unwrap_or(Lambda::Both),
            };
            b.dy_form = Some(form);
            b.dyn_conv2d(xi, o, opts, pad.is_some()).unwrap()
        };
        // The same values for the leaves of the same name in both forms' graphs.
        let case = |form: DyForm| {
            let name = format!("{form:?} {x:?}->{o} {opts:?} PAD {pad:?}");
            let mut c = OpCase::new(&name, |g| build(g, form));
            let leaves: Vec<(TensorId, String, usize)> = (c.g.tensors.iter().enumerate())
                .filter(|(_, t)| matches!(t.role, Role::Input | Role::Param(_) | Role::State(_)))
                .map(|(i, t)| (i, t.name.clone(), t.numel()))
                .collect();
            for (t, name, n) in leaves {
                let seed = name
                    .bytes()
                    .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
                let mut rng = Rng::new(seed);
                c = c.set(t, (0..n).map(|_| rng.normal()).collect());
            }
            c
        };
        // Output and gradients of the f64 reference, by leaf name.
        let reference = |c: &OpCase| {
            let mut v = Values::new(&c.g);
            for (&t, d) in &c.values {
                v.set(t, d.iter().map(|&x| x as f64).collect());
            }
            run(&c.g, &mut v);
            let mut out = vec![("y".to_string(), v.get(c.y).to_vec())];
            for &(leaf, d) in &c.grads {
                out.push((c.g.tensors[leaf].name.clone(), v.get(d).to_vec()));
            }
            out
        };
        let (per_sample, mixed_case) = (case(DyForm::PerSample), case(mixed));
        let (want, got) = (reference(&per_sample), reference(&mixed_case));
        let names = |r: &[(String, Vec<f64>)]| r.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&got), names(&want), "the same leaves have gradients");
        assert!(
            want.len() >= 6,
            "x, 1/T, fc1, fc2 and its bias, the kernels: {:?}",
            names(&want)
        );
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            let e = common::rel_err(g, w);
            assert!(
                e <= 1e-12,
                "{x:?}->{o} {opts:?}: '{name}' mixed vs per sample: relative error {e:.2e}"
            );
        }
        mixed_case.check();
    }
}

/// Multiplying in f16, the per-sample convolutions read their kernels as f16 and the kernel
/// assembly stores them so (`PlanCtx::half_weights`; `place` too for a split layer's W_S):
/// half the scratch, the switches set, and — the conversion being the one the convolution
/// applied to f32 kernels as it loaded them — the same output bit for bit as with f32 kernels
/// (`PADNET_HALF_WEIGHTS=0`), within f16's tolerance of the reference. Scalar (`aggregate`)
/// and vec4 assembly (`aggregate4`), several chunks, as lavapipe and as a GPU plans them.
#[test]
fn half_precision_stores_per_sample_kernels_as_f16() {
    use padnet_wgpu::executor::{Executable, ParamStore};
    use padnet_wgpu::gpu::tuning::{ConvKernel, ConvPolicy, Precision};
    use padnet_wgpu::graph::{Graph, Role, TensorId};
    use padnet_wgpu::kernels::{dynconv, PlanCtx};
    use padnet_wgpu::nn::dynamic::SplitForm;
    use padnet_wgpu::nn::Builder;

    let spec = |x: [usize; 4], o: usize, k: usize, pad: bool, max_chunk: usize| DynSpec {
        geom: ConvGeom::new(&x, o, ConvOpts::k(3).pad(1)).unwrap(),
        k,
        pad,
        lambda: Lambda::Both,
        max_chunk,
    };
    // Kernels of 315 values (scalar assembly) in chunks of 2, of 288 (vec4s) in chunks of 3.
    let specs = [
        spec([3, 5, 7, 7], 7, 3, false, 2),
        spec([5, 4, 6, 6], 8, 4, true, 3),
    ];
    for s in &specs {
        for precision in [Precision::F32, Precision::F16] {
            let ctx = |half_weights| PlanCtx {
                precision,
                half_weights,
                ..PlanCtx::for_device(wgpu::DeviceType::Cpu)
            };
            let [on, off] = [true, false].map(|h| dynconv::plan_forward(s, &ctx(h)));
            let half = precision == Precision::F16;
            let want = if half {
                off.scratch[2].div_ceil(2)
            } else {
                off.scratch[2]
            };
            assert_eq!(on.scratch[2], want.next_multiple_of(4), "{precision:?}");
            for call in &on.calls {
                let f16_out = call.template.contains(&("F16_OUT", 1));
                match call.entry {
                    e if e.starts_with("aggregate") => assert_eq!(f16_out, half, "{e}"),
                    e if call.shader == "conv" => {
                        assert_eq!(call.reads_half_weights(), half, "{e}")
                    }
                    _ => assert!(!f16_out),
                }
            }
        }
    }
    if !common::has_f16() {
        return;
    }

    type Build = Box<dyn Fn(&mut Graph) -> TensorId>;
    let mut cases: Vec<(String, Build)> = specs
        .iter()
        .map(|&s| {
            let build = move |g: &mut Graph| {
                let xi = g.input("x", &s.geom.x_shape(), DType::F32);
                let alpha = g.input("alpha", &[s.geom.n, s.k], DType::F32);
                let wk = g.param("kernels", &s.kernels_shape(), Init::Zeros);
                let mut ins = vec![xi, alpha, wk];
                if s.pad {
                    let ws = g.param("weight", &s.static_shape(), Init::Zeros);
                    let mask = g.state("mask", &s.static_shape(), Init::Ones);
                    let phi = g.param("phi_d", &[1], Init::Zeros);
                    ins.extend([ws, mask, phi]);
                }
                g.push(Op::DynConv2d(s), &ins).unwrap()[0]
            };
            (
                format!("pad {} n {}", s.pad, s.n()),
                Box::new(build) as Build,
            )
        })
        .collect();
    // A split layer: W_S's 225 values placed ahead of the kernels.
    cases.push((
        "split layer".into(),
        Box::new(|g: &mut Graph| {
            let xi = g.input("x", &[3, 5, 7, 7], DType::F32);
            let mut b = Builder::new(g, false);
            b.split_form = Some(SplitForm::ALL[0]);
            b.filter_split_conv(xi, 8, ConvOpts::k(3).pad(1), &[1, 4, 6])
                .unwrap()
        }),
    ));
    // The forward's output with the leaves filled by name (a mask with zeros and ones).
    let run = |gpu: &std::sync::Arc<padnet_wgpu::gpu::Gpu>, build: &Build| -> Vec<u32> {
        let mut g = Graph::new();
        let y = build(&mut g);
        g.mark_output(y);
        let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
        let exe = Executable::compile(gpu.clone(), g.clone(), &store).unwrap();
        for (t, tensor) in g.tensors.iter().enumerate() {
            let seed = tensor
                .name
                .bytes()
                .fold(7u64, |h, c| h.wrapping_mul(31) ^ c as u64);
            let mut rng = Rng::new(seed);
            let mut values: Vec<f32> = (0..tensor.numel()).map(|_| rng.normal()).collect();
            match tensor.role {
                Role::State(_) => {
                    values.iter_mut().for_each(|v| *v = (*v > 0.0) as u8 as f32);
                    store.write(&tensor.name, &values).unwrap();
                }
                Role::Param(_) => store.write(&tensor.name, &values).unwrap(),
                Role::Input => exe.write(t, &values).unwrap(),
                _ => {}
            }
        }
        exe.run().unwrap();
        exe.read(y, &store)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    for conv in [None, Some(ConvKernel::Registers), Some(ConvKernel::Tiled)] {
        let handle = |half_weights: bool| {
            common::gpu_with(|gpu| {
                gpu.precision = Precision::F16;
                gpu.half_weights = half_weights;
                if let Some(k) = conv {
                    common::plan_as_gpu(gpu, ConvPolicy::Fixed(k));
                    gpu.blocking = padnet_wgpu::kernels::Blocking::GPU;
                }
            })
        };
        let (half, full) = (handle(true), handle(false));
        for (what, build) in &cases {
            let what = format!("{what}, {conv:?}");
            assert!(
                run(&half, build) == run(&full, build),
                "{what}: f16 kernels change y"
            );
            OpCase::forward_only(&what, |g| build(g)).check_on(half.clone());
        }
    }
}

//! Every op, forward and backward, GPU vs the f64 CPU reference (tolerances in common/), and
//! the CPU gradients vs finite differences. Shapes are small, odd (not tile multiples) and
//! cover strides, padding, dilation, groups and depthwise.

mod common;
use common::OpCase;
use padnet_wgpu::graph::op::Act;
use padnet_wgpu::graph::{DType, Graph, Init, Op};
use padnet_wgpu::kernels::conv::{ConvGeom, ConvOpts};
use padnet_wgpu::kernels::pool::PoolGeom;

fn matmul(ta: bool, tb: bool, a: &[usize], b: &[usize]) -> OpCase {
    let name = format!("matmul ta={ta} tb={tb} {a:?}x{b:?}");
    OpCase::new(&name, |g| {
        let x = g.input("a", a, DType::F32);
        let w = g.param("b", b, Init::Zeros);
        g.matmul(x, w, ta, tb).unwrap()
    })
}

fn matmul_case(ta: bool, tb: bool, a: &[usize], b: &[usize]) {
    matmul(ta, tb, a, b).check();
}

#[test]
fn matmul_all_transposes_odd_sizes() {
    matmul_case(false, false, &[37, 29], &[29, 53]);
    matmul_case(true, false, &[29, 37], &[29, 53]);
    matmul_case(false, true, &[37, 29], &[53, 29]);
    matmul_case(true, true, &[29, 37], &[53, 29]);
    matmul_case(false, false, &[70, 3], &[3, 66]);
    matmul_case(false, true, &[67, 5], &[300, 5]); // several tiles in both directions
    matmul_case(false, false, &[3, 2500], &[2500, 5]); // thin: the reduction is split (split-K)
    matmul_case(true, true, &[2100, 6], &[4, 2100]);
    matmul_case(false, false, &[1, 1], &[1, 1]);
    matmul_case(false, false, &[300, 40], &[40, 8]); // narrow (a MoE router): lanes move to rows
    matmul_case(true, false, &[40, 300], &[40, 3]);
    // Row-major B with whole vec4s of columns: the subgroup kernel's VEC4 form (CPU adapters
    // run the subgroup kernel), ragged rows and last column tile, and split-K.
    matmul_case(false, false, &[37, 29], &[29, 52]);
    matmul_case(true, false, &[29, 37], &[29, 148]);
    matmul_case(false, false, &[3, 2500], &[2500, 8]);
}

#[test]
fn matmul_batched_and_shared() {
    matmul_case(false, false, &[3, 9, 11], &[3, 11, 5]);
    matmul_case(false, true, &[2, 3, 9, 11], &[2, 3, 5, 11]);
    matmul_case(false, true, &[4, 7, 11], &[13, 11]); // shared B, as a linear layer on tokens
    matmul_case(false, false, &[3, 9, 11], &[3, 11, 12]); // the VEC4 form, batched
    matmul_case(false, false, &[4, 7, 11], &[11, 16]); // and with a shared B
}

#[test]
fn elementwise_ops() {
    for act in [
        Act::Relu,
        Act::Relu6,
        Act::Gelu,
        Act::Sigmoid,
        Act::Tanh,
        Act::Softplus,
    ] {
        // 105 elements: `unary`; 140, whole vec4s: `unary4` (and their gradients).
        for rows in [3, 4] {
            let n = rows * 35;
            OpCase::new(&format!("{act:?} {rows}x5x7"), |g| {
                let x = g.input("x", &[rows, 5, 7], DType::F32);
                g.push1(Op::Unary(act), &[x]).unwrap()
            })
            .set(0, (0..n).map(|i| (i as f32 - 52.3) * 0.17).collect()) // spans 0 and 6
            .check();
        }
    }
    // Add and Mul, same shape and NumPy-style broadcasts of the second operand, four elements
    // per invocation where the innermost folded axis is whole vec4s: kept (`binary4`: the
    // first and last two shapes) or broadcast (`binary4_splat`: the second, fifth and eighth,
    // planes of 20 and 40 elements). The two before the last two reduce over enough elements
    // that the broadcast operand's gradient (SumTo) is chunked.
    let shapes: [(&[usize], &[usize]); 10] = [
        (&[4, 9], &[4, 9]),
        (&[2, 3, 4, 5], &[1, 3, 1, 1]),
        (&[2, 3, 4, 5], &[2, 1, 4, 1]),
        (&[2, 3, 4, 5], &[5]),
        (&[2, 3, 4, 5], &[2, 3, 1, 1]),
        (&[3, 1, 7], &[1, 1, 1]),
        (&[40, 33, 7], &[7]),
        (&[50, 3, 40], &[1, 3, 1]),
        (&[3, 5, 8], &[5, 8]),
        (&[2, 3, 4, 8], &[2, 1, 1, 8]),
    ];
    for (sa, sb) in shapes {
        for op in [Op::Add, Op::Mul] {
            OpCase::new(&format!("{op:?} {sa:?} {sb:?}"), |g| {
                let a = g.input("a", sa, DType::F32);
                let b = g.input("b", sb, DType::F32);
                g.push1(op.clone(), &[a, b]).unwrap()
            })
            .check();
        }
    }
    OpCase::new("scale", |g| {
        let a = g.input("a", &[300], DType::F32);
        g.push1(Op::Scale(-2.5), &[a]).unwrap()
    })
    .check();
    OpCase::new("bias_add 4d", |g| {
        let x = g.input("x", &[2, 3, 4, 5], DType::F32);
        let b = g.param("b", &[3], Init::Zeros);
        g.push1(Op::BiasAdd, &[x, b]).unwrap()
    })
    .check();
    OpCase::new("bias_add 2d", |g| {
        let x = g.input("x", &[6, 10], DType::F32);
        let b = g.param("b", &[10], Init::Zeros);
        g.push1(Op::BiasAdd, &[x, b]).unwrap()
    })
    .check();
    OpCase::new("reshape + shared use", |g| {
        let x = g.input("x", &[2, 3, 4], DType::F32);
        let r = g.reshape(x, &[6, 4]).unwrap();
        let r2 = g.reshape(x, &[6, 4]).unwrap();
        g.push1(Op::Add, &[r, r2]).unwrap()
    })
    .check();
}

#[test]
fn reductions() {
    OpCase::new("global mean pool", |g| {
        let x = g.input("x", &[3, 5, 4, 6], DType::F32);
        g.push1(
            Op::Sum {
                start: 2,
                end: 4,
                mean: true,
                over_ranks: false,
            },
            &[x],
        )
        .unwrap()
    })
    .check();
    // Rows (the last axis): sum_rows reads vec4s where the tensor is whole vec4s; rows whose
    // ends fall inside a vec4 (7, 3, 49, 131), inside one vec4 (1, 3), longer than one block of
    // 64 terms (131), and tensors of 6 and 294 elements (sum_axes instead).
    for shape in [
        &[2, 2, 7][..],
        &[4, 1],
        &[8, 3],
        &[4, 131],
        &[3, 2],
        &[4, 3, 7, 7],
        &[2, 3, 7, 7],
    ] {
        let start = if shape.len() == 4 { 2 } else { shape.len() - 1 };
        OpCase::new(&format!("sum of rows {shape:?}"), |g| {
            let x = g.input("x", shape, DType::F32);
            g.push1(
                Op::Sum {
                    start,
                    end: shape.len(),
                    mean: shape.len() == 4,
                    over_ranks: false,
                },
                &[x],
            )
            .unwrap()
        })
        .check();
    }
    OpCase::new("sum over batch", |g| {
        let x = g.input("x", &[7, 9], DType::F32);
        g.push1(
            Op::Sum {
                start: 0,
                end: 1,
                mean: false,
                over_ranks: false,
            },
            &[x],
        )
        .unwrap()
    })
    .check();
    OpCase::new("expand", |g| {
        let x = g.input("x", &[3, 4], DType::F32);
        g.push1(
            Op::Expand {
                shape: vec![3, 5, 4],
                start: 1,
                end: 2,
                mean: true,
            },
            &[x],
        )
        .unwrap()
    })
    .check();
}

/// Sums longer than lavapipe's loop limit (65 535 iterations per invocation, docs/architecture.md
/// "The loop limit") run in two passes on CPU adapters (`reduce::bounded_sum`): a mean over
/// 70 001 rows, rows of 250 003 terms, and a bias gradient over 300 samples of 16×16 (77 100
/// terms per channel); LayerNorm's parameter gradient over 70 001 rows in parts
/// (`layernorm::plan`); the mean cross-entropy and squared error of 70 001 rows (`softmax::plan`).
/// In one pass they came out partial.
#[test]
fn reductions_stay_within_the_cpu_loop_limit() {
    for (shape, start, end) in [(&[70_001, 3][..], 0, 1), (&[2, 250_003], 1, 2)] {
        OpCase::new(&format!("sum {shape:?} over {start}..{end}"), |g| {
            let x = g.input("x", shape, DType::F32);
            let sum = Op::Sum {
                start,
                end,
                mean: start == 0,
                over_ranks: false,
            };
            g.push1(sum, &[x]).unwrap()
        })
        .check();
    }
    OpCase::new("bias gradient over 300 planes of 16x16", |g| {
        let x = g.input("x", &[300, 2, 16, 16], DType::F32);
        let b = g.param("b", &[2], Init::Zeros);
        g.push1(Op::BiasAdd, &[x, b]).unwrap()
    })
    .check();
    // LayerNorm's parameter gradient sums each column over every row: two parts here.
    layernorm(&[70_001, 8]).check();
    // The losses' means and metrics over every row of the batch (forward only: a gradient of
    // 1/70 001 per logit is below what finite differences of their sum resolve to 1e-5).
    let rows = 70_001;
    let mut labels = 0;
    OpCase::forward_only("cross_entropy over 70 001 rows", |g| {
        let x = g.input("logits", &[rows, 3], DType::F32);
        labels = g.input("labels", &[rows], DType::U32);
        let m = g.state("metrics", &[3], Init::Zeros);
        g.push(Op::CrossEntropy { smoothing: 0.1 }, &[x, labels, m])
            .unwrap()[0]
    })
    .set(labels, (0..rows).map(|r| (r % 3) as f32).collect())
    .check();
    OpCase::forward_only("mse_loss over 70 001 rows", |g| {
        let pred = g.input("pred", &[rows, 1], DType::F32);
        let targets = g.input("targets", &[rows], DType::F32);
        let m = g.state("metrics", &[3], Init::Zeros);
        g.push1(Op::MseLoss, &[pred, targets, m]).unwrap()
    })
    .check();
}

#[test]
fn softmax_and_cross_entropy() {
    OpCase::new("softmax", |g| {
        let x = g.input("x", &[5, 11], DType::F32);
        g.push1(Op::Softmax, &[x]).unwrap()
    })
    .check();
    for smoothing in [0.0, 0.1] {
        let mut labels = 0;
        OpCase::new(&format!("cross_entropy eps={smoothing}"), |g| {
            let x = g.input("logits", &[6, 7], DType::F32);
            let y = g.input("labels", &[6], DType::U32);
            labels = y;
            let m = g.state("metrics", &[3], Init::Zeros);
            g.push(Op::CrossEntropy { smoothing }, &[x, y, m]).unwrap()[0]
        })
        .set(labels, vec![0.0, 6.0, 3.0, 3.0, 1.0, 5.0])
        .check();
    }
    // The regression loss (STS-B): mean squared error, with its metrics and gradient.
    OpCase::new("mse_loss", |g| {
        let pred = g.input("pred", &[6, 1], DType::F32);
        let targets = g.input("targets", &[6], DType::F32);
        let m = g.state("metrics", &[3], Init::Zeros);
        g.push1(Op::MseLoss, &[pred, targets, m]).unwrap()
    })
    .check();
}

fn conv(x: [usize; 4], o: usize, opts: ConvOpts) -> OpCase {
    let geom = ConvGeom::new(&x, o, opts).unwrap();
    let name = format!("conv {x:?} -> {o} {opts:?}");
    OpCase::new(&name, |g| {
        let xi = g.input("x", &x, DType::F32);
        let w = g.param("w", &geom.w_shape(), Init::Zeros);
        g.push1(Op::Conv2d(geom), &[xi, w]).unwrap()
    })
}

fn conv_case(x: [usize; 4], o: usize, opts: ConvOpts) {
    conv(x, o, opts).check();
}

#[test]
fn conv2d_geometries() {
    conv_case([2, 5, 9, 7], 6, ConvOpts::k(3).pad(1));
    conv_case([2, 5, 9, 7], 6, ConvOpts::k(3).pad(1).stride(2));
    conv_case([3, 4, 6, 5], 7, ConvOpts::k(1));
    conv_case([2, 3, 11, 10], 5, ConvOpts::k(1).stride(2));
    conv_case([2, 6, 8, 7], 4, ConvOpts::k(3).pad(1).groups(2));
    // Depthwise: CPU adapters run their own kernels (`forward_dw`, ...); GPUs the general ones.
    for planned in [common::gpu(), common::gpu_planned_as_gpu()] {
        for opts in [
            ConvOpts::k(3).pad(1),
            ConvOpts::k(3).pad(1).stride(2),
            ConvOpts::k(3).pad(2).dil(2),
            ConvOpts::k(5).pad(2).stride(3),
            // Input gradients by phases (`grad_input_dw` on CPU adapters): no padding, and
            // two taps per phase and dimension.
            ConvOpts::k(3).stride(2),
            ConvOpts::k(4).pad(1).stride(2),
        ] {
            conv([2, 6, 9, 8], 6, opts.groups(6)).check_on(planned.clone());
        }
    }
    conv_case([2, 3, 10, 9], 4, ConvOpts::k(3).pad(2).dil(2));
    conv_case([1, 2, 9, 9], 3, ConvOpts::k(5).pad(2).stride(3));
    // Strided input gradients by phases (each input position's taps only, `PHASED`): a kernel
    // the size of the stride (one tap per phase), 4×4 at stride 2 (two per dimension), no
    // padding over an odd plane (grids past its edge).
    conv_case([2, 3, 8, 6], 4, ConvOpts::k(2).stride(2));
    conv_case([2, 3, 9, 8], 5, ConvOpts::k(4).pad(1).stride(2));
    conv_case([3, 4, 9, 7], 3, ConvOpts::k(3).stride(2));
    conv_case([1, 3, 5, 6], 70, ConvOpts::k(3).pad(1)); // more than one 64-row tile
                                                        // More than one 256-column tile.
    conv_case([3, 4, 13, 11], 5, ConvOpts::k(3).pad(1));
    // Eight samples or more: CPU adapters run 3×3 kernels at stride 1 as a sliding window
    // (`forward_w`), here with ragged blocks of rows and columns, a partial block of samples,
    // groups, no padding and more than 16 filters.
    conv_case([9, 5, 9, 7], 6, ConvOpts::k(3).pad(1));
    conv_case([8, 6, 8, 10], 4, ConvOpts::k(3).pad(1).groups(2));
    conv_case([10, 3, 11, 9], 20, ConvOpts::k(3));
    // 4×4 planes: batched, a window only where the weights are broadcast.
    conv_case([9, 8, 4, 4], 12, ConvOpts::k(3).pad(1));
    // At least eight input channels per group: CPU adapters with subgroups take 3×3 stride-1
    // weight gradients as a sliding window (`grad_weight_w`), here with a partial block of
    // channel lanes (19 = 2·8 + 3), filters not a multiple of 4, rows longer than the lanes,
    // no padding, more than one 32-filter block, groups and padding 2 (edge columns read
    // nothing), over batch splits.
    conv_case([2, 19, 7, 9], 6, ConvOpts::k(3).pad(1));
    conv_case([3, 16, 5, 6], 37, ConvOpts::k(3));
    conv_case([4, 20, 6, 5], 10, ConvOpts::k(3).pad(2).groups(2));
}

/// GPUs split the reduction of a convolution with few workgroups over channels (split-K,
/// `conv::split_k`: parts of at least 16 channels, summed after): forward and input
/// gradient with uneven parts (50 input channels in 3 parts of 17, 17 and 16), a grouped
/// layer, a strided one and 1×1, through a handle that plans as a GPU does, with its
/// blocking.
#[test]
fn gpu_convolutions_split_their_reduction() {
    let gpu = common::gpu_planned_as_gpu_blocked();
    conv([3, 50, 5, 4], 36, ConvOpts::k(3).pad(1)).check_on(gpu.clone());
    conv([2, 64, 4, 4], 40, ConvOpts::k(3).pad(1).groups(2)).check_on(gpu.clone());
    conv([2, 40, 7, 6], 34, ConvOpts::k(3).pad(1).stride(2)).check_on(gpu.clone());
    conv([2, 48, 3, 5], 33, ConvOpts::k(1)).check_on(gpu);
}

/// The workgroup-tiled convolutions GPUs run with `PADNET_CONV=tiled` (conv_tiled.wgsl):
/// forward and input gradient over reductions that are not a multiple of the tile's 16 steps
/// (k = 45), strides (input gradients by phases, as `conv2d_geometries`), 1×1, groups,
/// depthwise, dilation, a 5×5 kernel at stride 3, more rows and columns than a 64×64 tile, and
/// reductions split in uneven parts (`conv::split_k`), one of them strided.
#[test]
fn tiled_convolutions() {
    let gpu = common::gpu_tiled_conv();
    conv([2, 3, 8, 6], 4, ConvOpts::k(2).stride(2)).check_on(gpu.clone());
    conv([2, 3, 9, 8], 5, ConvOpts::k(4).pad(1).stride(2)).check_on(gpu.clone());
    conv([2, 40, 7, 6], 34, ConvOpts::k(3).pad(1).stride(2)).check_on(gpu.clone());
    conv([2, 5, 9, 7], 6, ConvOpts::k(3).pad(1)).check_on(gpu.clone());
    conv([2, 5, 9, 7], 6, ConvOpts::k(3).pad(1).stride(2)).check_on(gpu.clone());
    conv([2, 3, 11, 10], 5, ConvOpts::k(1).stride(2)).check_on(gpu.clone());
    conv([2, 6, 8, 7], 4, ConvOpts::k(3).pad(1).groups(2)).check_on(gpu.clone());
    conv([2, 6, 9, 8], 6, ConvOpts::k(3).pad(1).groups(6)).check_on(gpu.clone());
    conv([2, 3, 10, 9], 4, ConvOpts::k(3).pad(2).dil(2)).check_on(gpu.clone());
    conv([2, 6, 9, 8], 6, ConvOpts::k(5).pad(2).stride(3)).check_on(gpu.clone());
    conv([2, 20, 12, 11], 70, ConvOpts::k(3).pad(1)).check_on(gpu.clone());
    conv([3, 50, 5, 4], 36, ConvOpts::k(3).pad(1)).check_on(gpu.clone());
    conv([2, 64, 4, 4], 40, ConvOpts::k(3).pad(1).groups(2)).check_on(gpu);
}

#[test]
fn both_register_blockings() {
    // The suite runs with the blocking of the test adapter; check the other variant too, with
    // the register GEMM kernel (lavapipe's plain GEMMs take the subgroup kernel).
    use padnet_wgpu::gpu::tuning::{GemmKernel, GemmPolicy};
    use padnet_wgpu::kernels::Blocking;
    for b in [Blocking::CPU, Blocking::GPU] {
        let gpu = common::gpu_with(|gpu| {
            gpu.blocking = b;
            gpu.gemm = GemmPolicy::Fixed(GemmKernel::Registers);
        });
        matmul(true, false, &[29, 137], &[29, 75]).check_on(gpu.clone());
        matmul(false, false, &[300, 40], &[40, 8]).check_on(gpu.clone()); // narrow
        conv([2, 5, 9, 7], 70, ConvOpts::k(3).pad(1).stride(2)).check_on(gpu.clone());
        conv([2, 6, 9, 8], 6, ConvOpts::k(3).pad(1).groups(6)).check_on(gpu.clone());
        conv([12, 3, 5, 5], 4, ConvOpts::k(3).pad(1)).check_on(gpu.clone());
        // 16 filters over 144 columns: 16×20 blocks with the CPU blocking (fit_fine_wide).
        conv([3, 16, 6, 5], 16, ConvOpts::k(3).pad(1)).check_on(gpu);
    }
}

/// The shapes the GEMM kernels are checked on: ragged tiles, transposes, batches, a shared B,
/// a thin product (split along k on GPUs), k shorter than and not a multiple of a subgroup.
#[allow(clippy::type_complexity)]
const GEMM_SHAPES: &[(bool, bool, &[usize], &[usize])] = &[
    (false, false, &[37, 29], &[29, 53]),
    // More than one 128x128 tile each way (the large tiles), k over two of their steps.
    (true, true, &[70, 260], &[140, 70]),
    (true, false, &[29, 37], &[29, 53]),
    (false, true, &[37, 29], &[53, 29]),
    (true, true, &[29, 37], &[53, 29]),
    (false, true, &[67, 5], &[300, 5]),
    (false, false, &[3, 2500], &[2500, 5]),
    (false, false, &[1, 1], &[1, 1]),
    (false, false, &[3, 9, 11], &[3, 11, 5]),
    (false, true, &[2, 3, 9, 11], &[2, 3, 5, 11]),
    (false, true, &[4, 7, 11], &[13, 11]),
    (false, false, &[300, 3], &[3, 70]),
    // Transposed B (linear layers' x·Wᵀ) over whole chunks of 8 k, a last chunk of 4, one of 4
    // alone, batched, and a long thin k.
    (false, true, &[37, 40], &[53, 40]),
    (false, true, &[5, 36], &[9, 36]),
    (false, true, &[3, 4], &[70, 4]),
    (false, true, &[2, 3, 9, 16], &[2, 3, 5, 16]),
    (false, true, &[3, 2504], &[5, 2504]),
];

#[test]
fn register_and_tiled_gemm_kernels() {
    // Plain GEMMs run the register kernel where there are no subgroups (and GPUs may pick it
    // or the workgroup-tiled kernel by autotune); check both on any adapter.
    use padnet_wgpu::gpu::tuning::{GemmKernel, GemmPolicy};
    for kernel in [
        GemmKernel::Registers,
        GemmKernel::Tiled,
        GemmKernel::TiledLarge,
    ] {
        let gpu = common::gpu_with_gemm(GemmPolicy::Fixed(kernel), None);
        for &(ta, tb, a, b) in GEMM_SHAPES {
            matmul(ta, tb, a, b).check_on(gpu.clone());
        }
    }
}

#[test]
fn subgroup_gemm_kernel() {
    // Adapters with subgroup operations run plain GEMMs on the subgroup kernel (lavapipe) or
    // may pick it by autotune (GPUs). lavapipe has them (8 lanes), so CI checks it; on an
    // adapter without, the kernel cannot run and the test says so.
    use padnet_wgpu::gpu::tuning::{GemmKernel, GemmPolicy};
    use padnet_wgpu::kernels::Blocking;
    let adapter = common::gpu();
    let Some([lanes, _]) = adapter.subgroup_lanes() else {
        eprintln!("SKIPPED: {} has no subgroup operations", adapter.describe());
        return;
    };
    eprintln!(
        "subgroup GEMM on {} ({lanes}-lane subgroups)",
        adapter.describe()
    );
    // Both blockings' blocks (CPU 32x16, GPU 4x4), and rows of invocations half a subgroup
    // wide, as on an adapter whose subgroups can be smaller than this one's: two rows then
    // share each subgroup, so each must shuffle from its own.
    for (blocking, fewest) in [
        (Blocking::CPU, lanes),
        (Blocking::GPU, lanes),
        (Blocking::CPU, lanes / 2),
        (Blocking::GPU, lanes / 2),
    ] {
        let gpu = common::gpu_with(|gpu| {
            gpu.blocking = blocking;
            gpu.gemm = GemmPolicy::Fixed(GemmKernel::Subgroup);
            gpu.info.subgroup_min_size = fewest;
        });
        for &(ta, tb, a, b) in GEMM_SHAPES {
            matmul(ta, tb, a, b).check_on(gpu.clone());
        }
    }
    // The convolution weight gradient shares dy the same way (SG = 1) under this policy: with
    // the CPU blocking (then 32x16 blocks, one row of 8 invocations per subgroup on lavapipe)
    // and with rows of 4 invocations (two per subgroup), on ragged positions (ow 7, 5 and 9
    // against chunks of 4 or 8), padding, stride, groups, and a block wider than the base.
    let half = Blocking {
        tm: 8,
        tn: 8,
        wx: (lanes / 2) as usize,
        wy: 8,
    };
    for blocking in [Blocking::CPU, half] {
        let gpu = common::gpu_with(|gpu| {
            gpu.blocking = blocking;
            gpu.gemm = GemmPolicy::Fixed(GemmKernel::Subgroup);
        });
        conv([2, 5, 9, 7], 6, ConvOpts::k(3).pad(1)).check_on(gpu.clone());
        conv([2, 5, 9, 9], 70, ConvOpts::k(3).pad(1).stride(2)).check_on(gpu.clone());
        conv([2, 6, 8, 7], 8, ConvOpts::k(3).pad(1).groups(2)).check_on(gpu.clone());
        conv([12, 3, 5, 5], 4, ConvOpts::k(3).pad(1)).check_on(gpu);
    }
}

/// The graph `build` makes (its F32 inputs, its output) run on `gpu` with `values` per input:
/// the graph, its inputs, output, and the output's values.
fn run_on(
    gpu: std::sync::Arc<padnet_wgpu::gpu::Gpu>,
    build: impl FnOnce(&mut Graph) -> (Vec<usize>, usize),
    values: impl Fn(usize, usize) -> Vec<f32>,
) -> (Graph, Vec<usize>, usize, Vec<Vec<f32>>, Vec<f32>) {
    use padnet_wgpu::executor::{Executable, ParamStore};
    let mut g = Graph::new();
    let (ins, y) = build(&mut g);
    g.mark_output(y);
    let vals: Vec<Vec<f32>> = ins
        .iter()
        .enumerate()
        .map(|(i, &t)| values(i, g.tensors[t].numel()))
        .collect();
    let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
    let exe = Executable::compile(gpu, g.clone(), &store).unwrap();
    for (&t, v) in ins.iter().zip(&vals) {
        exe.write(t, v).unwrap();
    }
    exe.run().unwrap();
    let got = exe.read(y, &store).unwrap();
    (g, ins, y, vals, got)
}

/// A sum of products (`build`: a GEMM or convolution of two inputs, `k` products per output)
/// multiplied in f16 on `gpu`, on normal random inputs: checks every element against the f64
/// result within the error bound of f16 multiplication over chunks of at most `chunk` steps
/// (docs/numerics.md, "Half precision") and returns the largest error relative to that
/// element's Σ|a||b|.
fn half_error(
    gpu: std::sync::Arc<padnet_wgpu::gpu::Gpu>,
    what: &str,
    build: impl FnOnce(&mut Graph) -> (Vec<usize>, usize),
    k: usize,
    chunk: usize,
) -> f64 {
    let draw = |i: usize, n: usize| {
        let mut rng = padnet_wgpu::rng::Rng::new(11 + i as u64);
        (0..n).map(|_| rng.normal()).collect()
    };
    let (g, ins, y, vals, got) = run_on(gpu, build, draw);
    check_half_bound(what, &g, &ins, &vals, y, &got, k, chunk)
}

/// Checks `got`, output `y` of `g` computed in f16 from `vals` for the tensors `ins` (`k`
/// products per element, f16 sums over chunks of at most `chunk` steps), element by element
/// against the f64 result within the error bound of f16 multiplication (docs/numerics.md,
/// "Half precision"); returns the largest error relative to that element's Σ|a||b|.
#[allow(clippy::too_many_arguments)]
fn check_half_bound(
    what: &str,
    g: &Graph,
    ins: &[usize],
    vals: &[Vec<f32>],
    y: usize,
    got: &[f32],
    k: usize,
    chunk: usize,
) -> f64 {
    use padnet_wgpu::executor::interp::{self, Values};
    // The f64 result, and the same of |a| and |b| (Σ|a||b| per element).
    let reference = |f: fn(f32) -> f64| {
        let mut v = Values::new(g);
        for (&t, vs) in ins.iter().zip(vals) {
            v.set(t, vs.iter().map(|&x| f(x)).collect());
        }
        interp::run(g, &mut v);
        v.get(y).to_vec()
    };
    let (want, scale) = (reference(|x| x as f64), reference(|x| x.abs() as f64));
    // f16 rounds each operand and each product-sum step (unit roundoff 2^-11) over chunks of
    // `chunk` steps, f32 the sums of chunks; products that fall below f16's normal range lose
    // up to 2^-25 each.
    let (u16, u32, k) = (2f64.powi(-11), 2f64.powi(-24), k as f64);
    let relative = (chunk as f64 + 3.0) * u16 + (k + 2.0) * u32;
    let mut worst = 0.0f64;
    for (i, ((&g, &w), &s)) in got.iter().zip(&want).zip(&scale).enumerate() {
        let err = (g as f64 - w).abs();
        let bound = relative * s + k * 2f64.powi(-23);
        assert!(
            err <= bound,
            "f16 {what} element {i}: |{g} - {w}| = {err:.3e} > bound {bound:.3e}"
        );
        worst = worst.max(err / s.max(1e-30));
    }
    worst
}

/// `a`·`b` (a GEMM shape of the f32 tests) multiplied in f16: see [`half_error`].
fn half_gemm_error(
    gpu: std::sync::Arc<padnet_wgpu::gpu::Gpu>,
    (ta, tb, a, b): (bool, bool, &[usize], &[usize]),
    chunk: usize,
) -> f64 {
    let k = if ta { a[a.len() - 2] } else { a[a.len() - 1] };
    let what = format!("GEMM {a:?}x{b:?} (ta {ta}, tb {tb})");
    half_error(gpu, &what, |g| matmul_graph(g, ta, tb, a, b), k, chunk)
}

fn matmul_graph(
    g: &mut Graph,
    ta: bool,
    tb: bool,
    a: &[usize],
    b: &[usize],
) -> (Vec<usize>, usize) {
    let (xa, xb) = (g.input("a", a, DType::F32), g.input("b", b, DType::F32));
    (vec![xa, xb], g.matmul(xa, xb, ta, tb).unwrap())
}

#[test]
fn half_precision_gemm_kernels() {
    // `--precision f16`: every GEMM kernel multiplies in f16 (operands rounded to f16, sums
    // in f16 over chunks of k, f32 across chunks). lavapipe has SHADER_F16, so CI checks it.
    use padnet_wgpu::gpu::tuning::{GemmKernel, GemmPolicy, Precision};
    if !common::has_f16() {
        return;
    }
    let mut kernels = vec![
        GemmKernel::Registers,
        GemmKernel::Tiled,
        GemmKernel::TiledLarge,
    ];
    if common::gpu().subgroup_lanes().is_some() {
        kernels.push(GemmKernel::Subgroup);
    }
    // Long k (many chunks; split along k on GPUs) besides the shared GEMM shapes.
    let long: &[(bool, bool, &[usize], &[usize])] = &[
        (false, true, &[40, 1000], &[24, 1000]),
        (true, false, &[3001, 5], &[3001, 7]),
    ];
    for kernel in kernels {
        let gpu = common::gpu_with(|gpu| {
            gpu.gemm = GemmPolicy::Fixed(kernel);
            gpu.precision = Precision::F16;
        });
        // Chunks: 8 steps (register kernel), KB = 16 (tiled), WX (subgroup).
        let chunk = 16.max(gpu.blocking.subgroup_base().wx);
        let worst = GEMM_SHAPES
            .iter()
            .chain(long)
            .map(|&case| half_gemm_error(gpu.clone(), case, chunk))
            .fold(0.0, f64::max);
        // The kernel really multiplied in f16: f32 arithmetic would be ~100x closer.
        assert!(
            worst > 2f64.powi(-20),
            "{kernel:?}: largest error {worst:.2e} of Σ|a||b| is f32-sized: not f16 arithmetic"
        );
        eprintln!("f16 {kernel:?}: largest error {worst:.2e} of Σ|a||b|");
        // Sums leave f16 every chunk: 5000 ones sum to exactly 5000 (in f16 alone they would
        // stop at 2048, where adding 1 no longer changes an f16).
        let k = 5000;
        let ones = |_, n| vec![1.0; n];
        let (.., got) = run_on(
            gpu,
            |g| matmul_graph(g, false, false, &[3, k], &[k, 4]),
            ones,
        );
        assert!(
            got.iter().all(|&v| v == k as f32),
            "{kernel:?}: Σ of {k} ones = {got:?}"
        );
    }
}

#[test]
fn half_precision_convolution() {
    // `--precision f16` also makes the convolution forward multiply in f16: every geometry of
    // the f32 tests and one with 64 channels per group (576 products per output, chunks
    // carried across taps), with the device's blocking, the other one, and as a GPU with the
    // workgroup-tiled kernels (`PADNET_CONV=tiled`).
    use padnet_wgpu::gpu::tuning::{ConvKernel, ConvPolicy, Precision};
    use padnet_wgpu::kernels::Blocking;
    if !common::has_f16() {
        return;
    }
    let cases = [
        ([2, 5, 9, 7], 6, ConvOpts::k(3).pad(1)),
        ([2, 5, 9, 7], 6, ConvOpts::k(3).pad(1).stride(2)),
        ([3, 4, 6, 5], 7, ConvOpts::k(1)),
        ([2, 6, 8, 7], 4, ConvOpts::k(3).pad(1).groups(2)),
        ([2, 6, 9, 8], 6, ConvOpts::k(3).pad(1).groups(6)),
        ([2, 3, 10, 9], 4, ConvOpts::k(3).pad(2).dil(2)),
        ([1, 3, 5, 6], 70, ConvOpts::k(3).pad(1)),
        ([2, 64, 6, 6], 16, ConvOpts::k(3).pad(1)),
        // The sliding window (`forward_w`), 64 channels of nine taps each.
        ([9, 5, 9, 7], 6, ConvOpts::k(3).pad(1)),
        ([8, 64, 7, 7], 16, ConvOpts::k(3).pad(1)),
    ];
    for (blocking, tiled) in [
        (Blocking::CPU, false),
        (Blocking::GPU, false),
        (Blocking::GPU, true),
    ] {
        let gpu = common::gpu_with(|gpu| {
            gpu.blocking = blocking;
            gpu.precision = Precision::F16;
            if tiled {
                common::plan_as_gpu(gpu, ConvPolicy::Fixed(ConvKernel::Tiled));
            }
        });
        let conv_graph = |x: [usize; 4], o: usize, opts: ConvOpts| {
            move |g: &mut Graph| {
                let geom = ConvGeom::new(&x, o, opts).unwrap();
                let xi = g.input("x", &x, DType::F32);
                let w = g.input("w", &geom.w_shape(), DType::F32);
                (vec![xi, w], g.push1(Op::Conv2d(geom), &[xi, w]).unwrap())
            }
        };
        let mut worst = 0.0f64;
        for (x, o, opts) in cases {
            let geom = ConvGeom::new(&x, o, opts).unwrap();
            let k = geom.w_shape()[1..].iter().product();
            let what = format!("conv {x:?} -> {o} {opts:?}");
            worst = worst.max(half_error(
                gpu.clone(),
                &what,
                conv_graph(x, o, opts),
                k,
                16,
            ));
        }
        assert!(
            worst > 2f64.powi(-20),
            "{blocking:?}: largest error {worst:.2e} of Σ|w||x| is f32-sized: not f16 arithmetic"
        );
        eprintln!("f16 convolution, {blocking:?}: largest error {worst:.2e} of Σ|w||x|");
        // Chunks are flushed: 3 000 channels of ones sum to exactly 3 000.
        let ones = |_, n| vec![1.0; n];
        let (.., got) = run_on(
            gpu.clone(),
            conv_graph([1, 3000, 2, 2], 2, ConvOpts::k(1)),
            ones,
        );
        assert!(got.iter().all(|&v| v == 3000.0), "{blocking:?}: {got:?}");
        // So are the sliding window's (`forward_w`, 16 samples: a lane each with either
        // blocking), after every channel's nine taps: 300 channels sum to exactly 2 700.
        let (.., got) = run_on(gpu, conv_graph([16, 300, 9, 9], 2, ConvOpts::k(3)), ones);
        assert!(got.iter().all(|&v| v == 2700.0), "{blocking:?}: {got:?}");
    }
}

#[test]
fn half_precision_reads_parameter_weights_from_an_f16_copy() {
    // A GEMM or convolution that multiplies in f16 and whose weight operand is a parameter
    // reads it from the f16 copy of the parameter arena, which the first dispatch of every
    // run refreshes: the results keep the f16 bound, and follow the weights when they change.
    use padnet_wgpu::executor::{Executable, ParamStore};
    use padnet_wgpu::gpu::tuning::Precision;
    if !common::has_f16() {
        return;
    }
    type Build = Box<dyn Fn(&mut Graph) -> (usize, usize, usize)>;
    let cases: Vec<(&str, usize, Build)> = vec![
        (
            "linear x·Wᵀ",
            290,
            Box::new(|g: &mut Graph| {
                let x = g.input("x", &[37, 290], DType::F32);
                let w = g.param("w", &[53, 290], Init::Zeros);
                (x, w, g.matmul(x, w, false, true).unwrap())
            }),
        ),
        (
            "conv 3x3",
            5 * 9,
            Box::new(|g: &mut Graph| {
                let geom = ConvGeom::new(&[2, 5, 9, 7], 6, ConvOpts::k(3).pad(1)).unwrap();
                let x = g.input("x", &[2, 5, 9, 7], DType::F32);
                let w = g.param("w", &geom.w_shape(), Init::Zeros);
                (x, w, g.push1(Op::Conv2d(geom), &[x, w]).unwrap())
            }),
        ),
    ];
    for half_weights in [true, false] {
        let gpu = common::gpu_with(|gpu| {
            gpu.precision = Precision::F16;
            gpu.half_weights = half_weights;
        });
        for (what, k, build) in &cases {
            let mut g = Graph::new();
            let (x, w, y) = build(&mut g);
            g.mark_output(y);
            let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
            let exe = Executable::compile(gpu.clone(), g.clone(), &store).unwrap();
            let copies = exe.kernels().contains(&"to_f16:main".to_string());
            assert_eq!(copies, half_weights, "{what}: kernels {:?}", exe.kernels());
            let mut rng = padnet_wgpu::rng::Rng::new(3);
            let mut draw = |t: usize| -> Vec<f32> {
                (0..g.tensors[t].numel()).map(|_| rng.normal()).collect()
            };
            let vx = draw(x);
            exe.write(x, &vx).unwrap();
            // Two runs with different weights: a stale copy fails the second.
            for round in 0..2 {
                let vw = draw(w);
                store.write("w", &vw).unwrap();
                exe.run().unwrap();
                let got = exe.read(y, &store).unwrap();
                let what = format!("{what}, f16 copy {half_weights}, round {round}");
                let worst =
                    check_half_bound(&what, &g, &[x, w], &[vx.clone(), vw], y, &got, *k, 16);
                assert!(
                    worst > 2f64.powi(-20),
                    "{what}: f32-sized error {worst:.2e}"
                );
            }
        }
    }
}

#[test]
fn half_precision_training_keeps_gradients_in_f32() {
    // `train --precision f16`: the forward pass multiplies in f16, the gradients (the nodes
    // autodiff appends) in f32. For y = x·W, dW = xᵀ·dy does not depend on the forward's
    // rounding, so it must be f32-exact while y carries f16's error.
    use padnet_wgpu::executor::interp::{self, Values};
    use padnet_wgpu::executor::{Executable, ParamStore};
    use padnet_wgpu::gpu::tuning::Precision;
    if !common::has_f16() {
        return;
    }
    let gpu = common::gpu_with(|gpu| gpu.precision = Precision::F16);
    let mut g = Graph::new();
    let x = g.input("x", &[37, 290], DType::F32);
    let w = g.param("w", &[290, 53], Init::Zeros);
    let y = g.matmul(x, w, false, false).unwrap();
    let dy = g.input("dy", &[37, 53], DType::F32);
    let dw = padnet_wgpu::graph::autodiff::backward(&mut g, y, dy).unwrap()[&w];
    g.mark_output(y);
    g.mark_output(dw);
    let mut rng = padnet_wgpu::rng::Rng::new(5);
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal()).collect() };
    let (vx, vw, vdy) = (draw(37 * 290), draw(290 * 53), draw(37 * 53));
    let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
    store.write("w", &vw).unwrap();
    let exe = Executable::compile(gpu, g.clone(), &store).unwrap();
    exe.write(x, &vx).unwrap();
    exe.write(dy, &vdy).unwrap();
    exe.run().unwrap();
    let mut v = Values::new(&g);
    for (t, vals) in [(x, &vx), (w, &vw), (dy, &vdy)] {
        v.set(t, vals.iter().map(|&a| a as f64).collect());
    }
    interp::run(&g, &mut v);
    let err = |t| {
        let got: Vec<f64> = exe
            .read(t, &store)
            .unwrap()
            .iter()
            .map(|&a| a as f64)
            .collect();
        common::rel_err(&got, v.get(t))
    };
    let (ey, edw) = (err(y), err(dw));
    assert!(
        ey > 2f64.powi(-20) && ey <= padnet_wgpu::bench::TOLERANCE_F16,
        "forward error {ey:.2e}: not f16"
    );
    assert!(edw <= 1e-6, "weight gradient error {edw:.2e}: not f32");
}

#[test]
fn gemm_kernels_with_split_k() {
    // A thin product with a long k, split into partial products on GPUs (and on lavapipe
    // where few tiles leave it idle): each kernel's split batches stop at k_total.
    use padnet_wgpu::gpu::tuning::{GemmKernel, GemmPolicy};
    for kernel in [
        GemmKernel::Registers,
        GemmKernel::Tiled,
        GemmKernel::TiledLarge,
        GemmKernel::Subgroup,
    ] {
        let gpu = common::gpu_with_gemm(GemmPolicy::Fixed(kernel), None);
        matmul(false, false, &[5, 3001], &[3001, 7]).check_on(gpu);
    }
}

#[test]
fn gemm_autotune_times_every_kernel_and_keeps_the_table() {
    use padnet_wgpu::gpu::tuning::{GemmPolicy, TuneTable};
    let dir = std::env::temp_dir().join(format!("padnet-autotune-{}", std::process::id()));
    let path = dir.join("table.json");
    let gpu = common::gpu_with_gemm(GemmPolicy::Autotune, Some(path.clone()));
    // Compiling a graph tunes its GEMM class; the result is still right.
    matmul(false, true, &[67, 40], &[90, 40]).check_on(gpu.clone());
    let class = "gemm 128x128x64 Bt";
    let entry = gpu.tuning.get(class).expect("the class was tuned");
    assert!(
        entry.registers_ms > 0.0 && entry.tiled_ms > 0.0 && entry.tiled_large_ms > 0.0,
        "{entry:?}"
    );
    // The subgroup kernel is timed exactly where the device has it.
    assert_eq!(
        entry.subgroup_ms.is_some(),
        gpu.subgroup_lanes().is_some(),
        "{entry:?}"
    );
    // Written to disk, and read back by the next device of this adapter and driver.
    // (serde_json may parse a float 1 ulp away from the one it wrote.)
    let read = TuneTable::at(Some(path.clone()), &gpu.info)
        .get(class)
        .unwrap();
    assert_eq!(read.kernel, entry.kernel);
    assert!(
        (read.tiled_ms / entry.tiled_ms - 1.0).abs() < 1e-12,
        "{read:?} vs {entry:?}"
    );
    // A corrupt table is ignored, not an error.
    std::fs::write(&path, b"{ not json").unwrap();
    assert!(TuneTable::at(Some(path), &gpu.info).get(class).is_none());
    std::fs::remove_dir_all(&dir).ok();
}

/// On GPUs convolutions pick their kernels per class by autotune (`PADNET_CONV=auto`,
/// conv/tiled.rs): compiling a graph times both kernels for its forward and input gradient,
/// keeps the table on disk, and the result is right whichever won (per-sample classes:
/// conv/tiled.rs's unit test).
#[test]
fn conv_autotune_times_both_kernels_and_keeps_the_table() {
    use padnet_wgpu::gpu::tuning::{ConvPolicy, TuneTable};
    let dir = std::env::temp_dir().join(format!("padnet-conv-autotune-{}", std::process::id()));
    let path = dir.join("table.json");
    let gpu = common::gpu_with(|gpu| {
        common::plan_as_gpu(gpu, ConvPolicy::Autotune);
        gpu.blocking = padnet_wgpu::kernels::Blocking::GPU;
        gpu.tuning = std::sync::Arc::new(TuneTable::at(Some(path.clone()), &gpu.info));
    });
    conv([2, 20, 6, 5], 24, ConvOpts::k(3).pad(1)).check_on(gpu.clone());
    let classes = [
        "conv forward shared n2 c20 6x5 o24 k3x3 s1x1 p1x1 d1x1 g1",
        "conv grad-input shared n2 c20 6x5 o24 k3x3 s1x1 p1x1 d1x1 g1",
    ];
    for class in classes {
        let entry = gpu.tuning.get_conv(class).expect("the class was tuned");
        assert!(
            entry.registers_ms > 0.0 && entry.tiled_ms.is_some_and(|t| t > 0.0),
            "{entry:?}"
        );
        // Read back by the next device of this adapter and driver (serde_json may parse a
        // float 1 ulp away from the one it wrote).
        let read = TuneTable::at(Some(path.clone()), &gpu.info);
        let read = read.get_conv(class).expect("read back");
        assert_eq!(read.kernel, entry.kernel);
        assert!(
            (read.registers_ms / entry.registers_ms - 1.0).abs() < 1e-12,
            "{read:?}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn conv2d_weight_grad_split_k() {
    // A batch large enough that the weight gradient splits its reduction over the batch.
    conv_case([12, 3, 5, 5], 4, ConvOpts::k(3).pad(1));
}

#[test]
fn batchnorm_train_and_eval() {
    // CPU adapters reduce per batch part with channels as lanes, GPUs with a workgroup per
    // (part, channel) where the batch has more than one sample, else per channel: both run
    // here, the second through a handle that plans as a GPU does.
    for planned in [common::gpu(), common::gpu_planned_as_gpu()] {
        batchnorm_cases(planned);
    }
}

fn batchnorm_cases(planned: std::sync::Arc<padnet_wgpu::gpu::Gpu>) {
    // [9, 70, 2, 2]: on a CPU adapter, 70 channels leave 5 parts of 2, 2, 2, 2 and 1 samples;
    // on a GPU 9 parts of one. One sample: a GPU's workgroup per channel. Planes of 30, 1, 25
    // and 90 (more than the 64 invocations of a GPU's workgroup) take `apply`, of 4 and 48 (a
    // run of 32 and one of 16) `apply4`.
    for act in [None, Some(Act::Relu), Some(Act::Relu6)] {
        for shape in [
            vec![4, 3, 5, 6],
            vec![9, 5],
            vec![9, 70, 2, 2],
            vec![2, 3, 6, 8],
            vec![1, 4, 5, 5],
            vec![3, 5, 9, 10],
            // A plane of 156: runs of 16 (SUM_RUN) and a partial one on CPU adapters, more
            // than two strides of a GPU's 64 invocations.
            vec![3, 5, 12, 13],
        ] {
            let c = shape[1];
            let (mut gamma, mut beta) = (0, 0);
            let case = OpCase::new(&format!("batchnorm train {shape:?} {act:?}"), |g| {
                let x = g.input("x", &shape, DType::F32);
                gamma = g.param("gamma", &[c], Init::Ones);
                beta = g.param("beta", &[c], Init::Zeros);
                let rm = g.state("running_mean", &[c], Init::Zeros);
                let rv = g.state("running_var", &[c], Init::Ones);
                let op = Op::BatchNorm {
                    eps: 1e-5,
                    momentum: 0.1,
                    train: true,
                    act,
                };
                g.push(op, &[x, gamma, beta, rm, rv]).unwrap()[0]
            });
            // Scales and shifts that put outputs on both sides of 0 and of 6.
            let gv = (0..c).map(|i| 2.0 + i as f32).collect();
            let bv = (0..c).map(|i| [0.3, 4.5, -0.7, 5.5, 1.0][i % 5]).collect();
            case.set(gamma, gv).set(beta, bv).check_on(planned.clone());
        }
    }
    // Eval mode (running statistics), forward and backward (IMP differentiates in eval mode).
    for act in [None, Some(Act::Relu), Some(Act::Relu6)] {
        let (mut rv, mut beta) = (0, 0);
        OpCase::new(&format!("batchnorm eval {act:?}"), |g| {
            let x = g.input("x", &[2, 3, 4, 4], DType::F32);
            let rm = g.state("running_mean", &[3], Init::Zeros);
            rv = g.state("running_var", &[3], Init::Ones);
            let gamma = g.input("gamma", &[3], DType::F32);
            beta = g.input("beta", &[3], DType::F32);
            let op = Op::BatchNorm {
                eps: 1e-5,
                momentum: 0.1,
                train: false,
                act,
            };
            g.push1(op, &[x, gamma, beta, rm, rv]).unwrap()
        })
        .set(rv, vec![0.5, 1.5, 2.0])
        .set(beta, vec![0.2, 5.5, -0.3]) // outputs on both sides of 0 and of 6
        .check_on(planned.clone());
    }
}

#[test]
fn pooling() {
    for (x, k, s, p) in [
        ([2, 3, 8, 8], 2, 2, 0),
        ([2, 3, 9, 7], 2, 2, 0), // disjoint windows, odd sizes leave a remainder row/column
        ([1, 2, 9, 9], 3, 3, 0),
        ([2, 3, 9, 7], 3, 2, 1),
        ([1, 2, 6, 6], 3, 1, 1),
    ] {
        let geom = PoolGeom::new(&x, k, s, p).unwrap();
        OpCase::new(&format!("maxpool {x:?} k{k} s{s} p{p}"), |g| {
            let xi = g.input("x", &x, DType::F32);
            g.push(Op::MaxPool2d(geom), &[xi]).unwrap()[0]
        })
        .check();
        OpCase::new(&format!("avgpool {x:?} k{k} s{s} p{p}"), |g| {
            let xi = g.input("x", &x, DType::F32);
            g.push1(Op::AvgPool2d(geom), &[xi]).unwrap()
        })
        .check();
    }
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let mut g = Graph::new();
    let a = g.input("a", &[3, 4], DType::F32);
    let b = g.input("b", &[5, 6], DType::F32);
    let e = g.matmul(a, b, false, false).unwrap_err().to_string();
    assert!(
        e.contains("matmul") && e.contains("[3, 4]") && e.contains("[5, 6]"),
        "{e}"
    );
    let x = g.input("x", &[2, 3, 8, 8], DType::F32);
    let geom = ConvGeom::new(&[2, 4, 8, 8], 5, ConvOpts::k(3)).unwrap();
    let w = g.param("w", &geom.w_shape(), Init::Zeros);
    let e = g.push1(Op::Conv2d(geom), &[x, w]).unwrap_err().to_string();
    assert!(
        e.contains("conv2d") && e.contains("[2, 3, 8, 8]") && e.contains("[2, 4, 8, 8]"),
        "{e}"
    );
    let e = ConvGeom::new(&[1, 6, 8, 8], 4, ConvOpts::k(3).groups(4))
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups"), "{e}");
}

#[test]
fn accumulate_adds_in_place_across_runs() {
    use padnet_wgpu::executor::{Executable, ParamStore};
    let gpu = common::gpu();
    let mut g = Graph::new();
    let acc = g.input("acc", &[300], DType::F32);
    let x = g.input("x", &[300], DType::F32);
    g.push(Op::Accumulate, &[acc, x]).unwrap();
    let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
    let exe = Executable::compile(gpu, g, &store).unwrap();
    let xs: Vec<f32> = (0..300).map(|i| i as f32 * 0.5 - 7.0).collect();
    exe.write(acc, &vec![1.0; 300]).unwrap();
    exe.write(x, &xs).unwrap();
    exe.run().unwrap();
    exe.run().unwrap();
    let got = exe.read(acc, &store).unwrap();
    assert!(got
        .iter()
        .zip(&xs)
        .all(|(g, x)| (g - (1.0 + 2.0 * x)).abs() < 1e-5));
}

fn layernorm(shape: &[usize]) -> OpCase {
    OpCase::new(&format!("layernorm {shape:?}"), |g| {
        let x = g.input("x", shape, DType::F32);
        let d = *shape.last().unwrap();
        let gamma = g.param("gamma", &[d], Init::Ones);
        let beta = g.param("beta", &[d], Init::Zeros);
        g.push(Op::LayerNorm { eps: 1e-12 }, &[x, gamma, beta])
            .unwrap()[0]
    })
}

#[test]
fn layernorm_and_embedding() {
    // GPUs sum the parameter gradient over parts of the rows (here 5 and 6 of one row each),
    // through a handle that plans as one does; the test adapter in one part.
    for planned in [common::gpu(), common::gpu_planned_as_gpu()] {
        for shape in [vec![5, 7], vec![2, 3, 33]] {
            layernorm(&shape).check_on(planned.clone());
        }
    }
    // Token ids with repeats (several tokens share a table row) and an out-of-range id (zeros).
    let mut ids = 0;
    OpCase::new("embedding", |g| {
        let table = g.param("table", &[11, 6], Init::Zeros);
        ids = g.input("ids", &[2, 5], DType::U32);
        g.push1(Op::Embedding, &[table, ids]).unwrap()
    })
    .set(
        ids,
        vec![3.0, 0.0, 3.0, 10.0, 7.0, 3.0, 12.0, 0.0, 1.0, 7.0],
    )
    .check();
    // Many workgroups: 148 tokens over a 50-row table (long chains of repeats), 70 columns;
    // also as a GPU plans it (one window of tokens, `CHAIN_WINDOW` unbounded).
    let many = || {
        let mut ids = 0;
        OpCase::new("embedding, many tokens", |g| {
            let table = g.param("table", &[50, 70], Init::Zeros);
            ids = g.input("ids", &[4, 37], DType::U32);
            g.push1(Op::Embedding, &[table, ids]).unwrap()
        })
        .set(
            ids,
            (0..148).map(|i| ((i * i * 7 + 3) % 53) as f32).collect(),
        )
    };
    many().check();
    many().check_on(common::gpu_planned_as_gpu());
}

/// The embedding gradient links each token to the next with its id and sums each id's chain
/// (gather.wgsl): over 70 001 tokens, within lavapipe's loop limit (docs/architecture.md, "The
/// loop limit"). The first and last tokens' ids are unique (their links are searched across
/// the whole batch), the rest alternate between two ids (chains of 35 000 tokens).
#[test]
fn embedding_gradient_over_more_tokens_than_the_loop_limit() {
    let n = 70_001;
    let mut ids = 0;
    let id_of = |i: usize| match i {
        0 => 0.0,
        _ if i == n - 1 => 3.0,
        _ => (1 + i % 2) as f32,
    };
    OpCase::new("embedding, 70 001 tokens", |g| {
        let table = g.param("table", &[5, 2], Init::Zeros);
        ids = g.input("ids", &[1, n], DType::U32);
        g.push1(Op::Embedding, &[table, ids]).unwrap()
    })
    .set(ids, (0..n).map(id_of).collect())
    .check_on(common::gpu());
}

#[test]
fn permute() {
    // Innermost output axes of 5, 3, 6, 32 (BERT's heads) and 19: runs of 8 whole, ragged,
    // strided in the input and contiguous.
    for (shape, perm) in [
        (vec![2, 3, 4, 5], vec![0, 2, 1, 3]),
        (vec![3, 4, 5], vec![2, 0, 1]),
        (vec![6, 7], vec![1, 0]),
        (vec![2, 5, 3, 32], vec![0, 2, 1, 3]),
        (vec![19, 3], vec![1, 0]),
    ] {
        OpCase::new(&format!("permute {shape:?} {perm:?}"), |g| {
            let x = g.input("x", &shape, DType::F32);
            g.push1(Op::Permute { perm: perm.clone() }, &[x]).unwrap()
        })
        .check();
    }
    let mut g = Graph::new();
    let x = g.input("x", &[2, 3], DType::F32);
    let e = g
        .push1(Op::Permute { perm: vec![0, 0] }, &[x])
        .unwrap_err()
        .to_string();
    assert!(e.contains("permute") && e.contains("[0, 0]"), "{e}");
}

/// Dropout: the GPU mask equals the CPU reference's (same hash) element for element (on rank 0
/// and rank 3), the gradient is the same mask on dy, about p of a large tensor is dropped,
/// sites (salts) and seeds give different masks, and ranks draw the parts of one global mask.
#[test]
fn dropout() {
    let mut seed = 0;
    for rank in [0.0, 3.0] {
        OpCase::new(&format!("dropout p=0.3, rank {rank}"), |g| {
            let x = g.input("x", &[7, 45], DType::F32);
            seed = g.input("seed", &[2], DType::U32);
            g.push1(Op::Dropout { p: 0.3, salt: 5 }, &[x, seed])
                .unwrap()
        })
        .set(seed, vec![12345.0, rank])
        .check();
    }
    let ones = vec![1.0; 100_000];
    let keep = |seed: u32, salt: u32| -> Vec<bool> {
        padnet_wgpu::kernels::reference::elementwise::dropout(&ones, [seed, 0], salt, 0.1)
            .iter()
            .map(|&v| v != 0.0)
            .collect()
    };
    let a = keep(7, 1);
    let dropped = a.iter().filter(|&&k| !k).count() as f64 / a.len() as f64;
    assert!((dropped - 0.1).abs() < 0.005, "dropped {dropped}");
    let kept_value = padnet_wgpu::kernels::reference::elementwise::dropout(&ones, [7, 0], 1, 0.1)
        .into_iter()
        .find(|&v| v != 0.0)
        .unwrap();
    assert!((kept_value - 1.0 / 0.9).abs() < 1e-6);
    let same = |b: &[bool]| a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / 1e5;
    // Independent masks agree on about 0.9² + 0.1² = 82 % of the elements.
    assert!(same(&keep(7, 2)) < 0.85 && same(&keep(8, 1)) < 0.85);
    assert_eq!(same(&keep(7, 1)), 1.0);
    // Two ranks of half the tensor each: rank r's mask is the r-th half of one rank's.
    let half =
        padnet_wgpu::kernels::reference::elementwise::dropout(&ones[..50_000], [7, 1], 1, 0.1);
    let whole = padnet_wgpu::kernels::reference::elementwise::dropout(&ones, [7, 0], 1, 0.1);
    assert_eq!(half, whole[50_000..]);
}

/// MoE top-k gates: GPU equals the reference, gradient checked by finite differences (random
/// logits have no ties), ties go to the lower index (zero-initialised routers tie everywhere).
#[test]
fn topk_gates() {
    for (e, k) in [(8, 2), (8, 1), (5, 5), (32, 3)] {
        OpCase::new(&format!("topk_gates k={k} of {e}"), |g| {
            let x = g.input("x", &[9, e], DType::F32);
            g.push1(Op::TopKGates { k }, &[x]).unwrap()
        })
        .check();
    }
    let mut x = 0;
    let tied = vec![
        0.0, 0.0, 0.0, 0.0, // all tie: experts 0 and 1
        1.0, 3.0, 3.0, 2.0, // tie for the top: 1 and 2
        5.0, 1.0, 2.0, 2.0, // tie for second: 0 and 2
    ];
    OpCase::forward_only("topk_gates ties", |g| {
        x = g.input("x", &[3, 4], DType::F32);
        g.push1(Op::TopKGates { k: 2 }, &[x]).unwrap()
    })
    .set(x, tied.clone())
    .check();
    let g = padnet_wgpu::kernels::reference::softmax::topk_gates(
        &tied.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        4,
        2,
    );
    let want = [
        0.5,
        0.5,
        0.0,
        0.0,
        0.0,
        0.5,
        0.5,
        0.0,
        1.0 / (1.0 + (-3f64).exp()),
        0.0,
        (-3f64).exp() / (1.0 + (-3f64).exp()),
        0.0,
    ];
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{g:?}");
    }
}

/// MoE router pieces: hashed normal noise, the smooth load estimate P = Φ((h − θ)/σ) with its
/// threshold gradients, and cv², each GPU vs the f64 reference and finite differences.
#[test]
fn moe_router_ops() {
    let mut seed = 0;
    OpCase::forward_only("random_normal", |g| {
        seed = g.input("seed", &[2], DType::U32);
        let op = Op::RandomNormal {
            shape: vec![37, 8],
            salt: 3,
        };
        g.push1(op, &[seed]).unwrap()
    })
    .set(seed, vec![99.0, 2.0])
    .check();
    let z = padnet_wgpu::kernels::reference::moe::random_normal(200_000, [5, 0], 1);
    let rank1 = padnet_wgpu::kernels::reference::moe::random_normal(100_000, [5, 1], 1);
    assert_eq!(
        rank1,
        z[100_000..],
        "rank 1 draws the second half of the global noise"
    );
    let mean = z.iter().sum::<f64>() / z.len() as f64;
    let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / z.len() as f64;
    assert!(
        mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
        "mean {mean} var {var}"
    );

    for (e, k) in [(8, 2), (4, 1), (6, 5)] {
        let mut sigma = 0;
        let mut rng = padnet_wgpu::rng::Rng::new(e as u64);
        OpCase::new(&format!("moe_load_prob k={k} of {e}"), |g| {
            let h = g.input("h", &[11, e], DType::F32);
            let noisy = g.input("noisy", &[11, e], DType::F32);
            sigma = g.input("sigma", &[11, e], DType::F32);
            g.push1(Op::MoeLoadProb { k }, &[h, noisy, sigma]).unwrap()
        })
        .set(sigma, (0..11 * e).map(|_| 0.3 + rng.uniform()).collect())
        .check();
    }
    let mut v = 0;
    OpCase::new("cv_squared", |g| {
        v = g.input("v", &[8], DType::F32);
        g.push1(Op::CvSquared, &[v]).unwrap()
    })
    .set(v, vec![3.0, 1.5, 0.2, 2.0, 2.5, 0.9, 1.1, 4.0])
    .check();
    assert_eq!(
        padnet_wgpu::kernels::reference::moe::cv_squared(&[2.0]),
        0.0
    );
    // Equal loads are perfectly balanced.
    assert!(padnet_wgpu::kernels::reference::moe::cv_squared(&[2.0; 8]) < 1e-20);
}

/// The channel merge of split PAD-Conv layers: GPU vs the reference (planes copied in runs of
/// 16, the last run of a plane shorter), the reference against the definition, and mismatched
/// planes refused.
#[test]
fn merge_channels_places_both_inputs_channels() {
    let order = vec![4.0, 0.0, 3.0, 1.0, 2.0];
    // Planes of 35 and 49 (ragged last runs), 16 (one whole run), 24 and 1.
    for (h, w) in [(5, 7), (7, 7), (4, 4), (4, 6), (1, 1)] {
        OpCase::forward_only("merge_channels", |g| {
            let a = g.input("a", &[3, 3, h, w], DType::F32);
            let b = g.input("b", &[3, 2, h, w], DType::F32);
            let from = g.constant("from", &[5], order.clone()).unwrap();
            g.push1(Op::MergeChannels, &[a, b, from]).unwrap()
        })
        .check();
    }
    // One sample, planes of 1: a = [10, 11], b = [20]; order b0, a1, a0.
    let got = padnet_wgpu::kernels::reference::gather::merge_channels(
        &[10.0, 11.0],
        &[1, 2, 1, 1],
        &[20.0],
        &[1, 1, 1, 1],
        &[2.0, 1.0, 0.0],
    );
    assert_eq!(got, [20.0, 11.0, 10.0]);
    let mut g = Graph::new();
    let a = g.input("a", &[2, 3, 5, 7], DType::F32);
    let b = g.input("b", &[2, 2, 5, 6], DType::F32);
    let from = g.constant("from", &[5], order).unwrap();
    let e = g.push1(Op::MergeChannels, &[a, b, from]).unwrap_err();
    assert!(e.to_string().contains("need [B, C, H, W] alike"), "{e}");
}

/// The optimizers' updates against their definitions in f64 (torch.optim.SGD with momentum,
/// with Nesterov momentum, and AdamW, all with weight decay), three steps on the gradients of
/// a small graph: two parameters of 333 and 9 floats, so the arena has alignment padding
/// between them and each update runs over whole vec4s of it (optim.wgsl).
#[test]
fn optimizer_steps_match_their_definitions() {
    use padnet_wgpu::executor::optim::{OptimConfig, OptimKind, Optimizer};
    use padnet_wgpu::executor::{Executable, ParamStore};
    let mut g = Graph::new();
    let x = g.input("x", &[2, 37], DType::F32);
    let w = g.param("w", &[37, 9], Init::Normal(0.5));
    let b = g.param("b", &[9], Init::Normal(0.5));
    let xw = g.matmul(x, w, false, false).unwrap();
    let y = g.push1(Op::BiasAdd, &[xw, b]).unwrap();
    let dy = g.input("dy", &[2, 9], DType::F32);
    padnet_wgpu::graph::autodiff::backward(&mut g, y, dy).unwrap();
    g.mark_output(y);
    let mut rng = padnet_wgpu::rng::Rng::new(3);
    let mut values = |n: usize| (0..n).map(|_| rng.normal()).collect::<Vec<f32>>();
    let (xv, dyv) = (values(2 * 37), values(2 * 9));
    let (lr, weight_decay, steps) = (0.05, 0.01, 3);
    let sgd = |nesterov| OptimKind::Sgd {
        momentum: 0.9,
        nesterov,
    };
    for kind in [sgd(false), sgd(true), OptimKind::ADAMW] {
        let gpu = common::gpu();
        let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
        let exe = Executable::compile(gpu.clone(), g.clone(), &store).unwrap();
        exe.write(x, &xv).unwrap();
        exe.write(dy, &dyv).unwrap();
        exe.run().unwrap();
        let f64s = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
        let want = ["w", "b"].map(|name| {
            let (p, grad) = (store.read(name).unwrap(), store.read_grad(name).unwrap());
            let (lr, wd) = (lr as f64, weight_decay as f64);
            optimizer_reference(&kind, f64s(p), &f64s(grad), lr, wd, steps)
        });
        let config = OptimConfig {
            kind: kind.clone(),
            weight_decay,
        };
        let mut opt = Optimizer::new(&store, config).unwrap();
        for _ in 0..steps {
            opt.prepare(&store, lr);
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            opt.encode(&mut enc.begin_compute_pass(&Default::default()));
            gpu.queue.submit([enc.finish()]);
            gpu.wait().unwrap();
        }
        for (name, want) in ["w", "b"].iter().zip(want) {
            let e = common::rel_err(&f64s(store.read(name).unwrap()), &want);
            assert!(e <= 1e-5, "{kind:?} '{name}': relative error {e:.2e}");
        }
        assert_eq!(opt.first_non_finite(&gpu).unwrap(), None);
    }
}

/// Parameters `p` after `steps` steps of `kind` on the gradient `grad`, in f64, as PyTorch
/// defines them (moments start at zero; AdamW's bias correction counts from step 1).
fn optimizer_reference(
    kind: &padnet_wgpu::executor::optim::OptimKind,
    mut p: Vec<f64>,
    grad: &[f64],
    lr: f64,
    wd: f64,
    steps: i32,
) -> Vec<f64> {
    use padnet_wgpu::executor::optim::OptimKind;
    let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
    for t in 1..=steps {
        for i in 0..p.len() {
            match *kind {
                OptimKind::Sgd { momentum, nesterov } => {
                    let momentum = momentum as f64;
                    let g = grad[i] + wd * p[i];
                    m[i] = momentum * m[i] + g;
                    p[i] -= lr * if nesterov { g + momentum * m[i] } else { m[i] };
                }
                OptimKind::AdamW { beta1, beta2, eps } => {
                    let (b1, b2) = (beta1 as f64, beta2 as f64);
                    m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
                    v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
                    let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
                    let denom = (v[i] / c2).sqrt() + eps as f64;
                    p[i] = p[i] * (1.0 - lr * wd) - lr * (m[i] / c1) / denom;
                }
            }
        }
    }
    p
}

#[test]
fn an_evaluation_store_has_no_gradient_arena_and_says_so() {
    // A store made for a graph without gradients (evaluation) keeps no gradient arena; a
    // graph with gradients or an optimizer on it is refused with one clear error.
    use padnet_wgpu::executor::optim::{OptimConfig, OptimKind, Optimizer};
    use padnet_wgpu::executor::{Executable, ParamStore};
    let build = |with_grads: bool| {
        let mut g = Graph::new();
        let x = g.input("x", &[4, 300], DType::F32);
        let w = g.param("w", &[300, 200], Init::Normal(0.1));
        let y = g.matmul(x, w, false, false).unwrap();
        if with_grads {
            let dy = g.input("dy", &[4, 200], DType::F32);
            padnet_wgpu::graph::autodiff::backward(&mut g, y, dy).unwrap();
        }
        g.mark_output(y);
        g
    };
    let gpu = common::gpu();
    let (eval, train) = (build(false), build(true));
    let eval_store = ParamStore::new(gpu.clone(), &eval, 0).unwrap();
    let train_store = ParamStore::new(gpu.clone(), &train, 0).unwrap();
    assert!(!eval_store.has_grads() && train_store.has_grads());
    // The gradient arena is the difference: the parameters' bytes less a placeholder.
    let params = (train_store.param_len * 4) as u64;
    assert_eq!(train_store.bytes() - eval_store.bytes(), params - 512);
    Executable::compile(gpu.clone(), eval.clone(), &eval_store).unwrap();
    Executable::compile(gpu.clone(), eval, &train_store).unwrap();
    let e = Executable::compile(gpu, train, &eval_store).err().unwrap();
    assert!(e.to_string().contains("without any"), "{e}");
    let config = OptimConfig {
        kind: OptimKind::ADAMW,
        weight_decay: 0.0,
    };
    let e = Optimizer::new(&eval_store, config).err().unwrap();
    assert!(
        e.to_string().contains("an optimizer needs gradients"),
        "{e}"
    );
    assert!(eval_store.read_grad("w").is_err());
}

/// lavapipe ends an invocation's loops after 65 535 iterations in all (docs/architecture.md,
/// "The loop limit"): a weight gradient whose batch split loops longer per invocation came out
/// partial (64 samples of 28×28 in one split of `grad_weight_w`: relative error 0.27 before the
/// plans capped the samples per split, `PlanCtx::loop_items`).
#[test]
fn weight_gradient_splits_stay_within_the_cpu_loop_limit() {
    conv_case([64, 64, 28, 28], 4, ConvOpts::k(3).pad(1));
}

//! The `kernels`, `layers` and `infer` suites (docs/benchmarks.md, "Suites"): each workload is
//! a graph — one op, one layer's forward and backward, or a whole model's inference — over
//! random inputs, timed on the GPU and checked against the f64 CPU interpreter of the same
//! graph.

use crate::error::Result;
use crate::graph::autodiff::backward;
use crate::graph::op::Act;
use crate::graph::params::{DynSpec, Lambda, MixSpec};
use crate::graph::{DType, Graph, Init, Op, TensorId};
use crate::kernels::conv::{ConvGeom, ConvOpts};
use crate::models::{ModelConfig, Stem};
use crate::names::Named;
use crate::nn::dynamic::{ConvMode, DeployFilters, DynConfig, SplitForm};
use crate::nn::moe::{moe_linear, MoeConfig};
use crate::nn::Builder;

/// Builds a case's graph at a leading size; returns the tensors to check.
pub type Build = Box<dyn Fn(&mut Graph, usize) -> Result<Vec<TensorId>>>;

/// A benchmark graph, built at a leading size `n` (rows of a GEMM, a batch).
pub struct Case {
    pub name: String,
    pub n: usize,
    /// Where every output is independent along the leading axis of the inputs that have it,
    /// the CPU reference recomputes only this many (the first rows or samples); otherwise it
    /// recomputes everything.
    pub check_n: Option<usize>,
    /// Floating-point operations per run (2 per multiply-add); None where not meaningful.
    pub flops: Option<f64>,
    /// Model workloads: the leading size counts these items (images), reported per second.
    pub items: Option<&'static str>,
    pub build: Build,
}

impl Case {
    fn new(
        name: String,
        n: usize,
        flops: Option<f64>,
        build: impl Fn(&mut Graph, usize) -> Result<Vec<TensorId>> + 'static,
    ) -> Case {
        Case {
            name,
            n,
            check_n: None,
            flops,
            items: None,
            build: Box::new(build),
        }
    }

    /// Check only the first `rows` (the op is independent along the leading axis).
    fn sliced(mut self, rows: usize) -> Case {
        self.check_n = Some(rows.min(self.n));
        self
    }
}

fn gemm(m: usize, n: usize, k: usize, what: &str) -> Case {
    let name = match what {
        "" => format!("gemm {m}x{n}x{k}"),
        w => format!("gemm {m}x{n}x{k} ({w})"),
    };
    Case::new(name, m, Some(2.0 * (m * n * k) as f64), move |g, m| {
        let a = g.input("a", &[m, k], DType::F32);
        let b = g.input("b", &[k, n], DType::F32);
        Ok(vec![g.matmul(a, b, false, false)?])
    })
    .sliced(16)
}

/// Forward, input gradient and weight gradient of one convolution shape.
fn conv(label: &str, x: [usize; 4], o: usize, opts: ConvOpts) -> Result<Vec<Case>> {
    let geom = ConvGeom::new(&x, o, opts)?;
    let flops = Some(2.0 * geom.macs() as f64);
    let at = move |n: usize| {
        ConvGeom::new(&[n, x[1], x[2], x[3]], o, opts).expect("the shape was valid at batch n")
    };
    let shape = format!("{}->{o} {}x{} b{}", x[1], x[2], x[3], x[0]);
    Ok(vec![
        Case::new(
            format!("conv {label} {shape} forward"),
            x[0],
            flops,
            move |g, n| {
                let geom = at(n);
                let xi = g.input("x", &geom.x_shape(), DType::F32);
                let w = g.input("w", &geom.w_shape(), DType::F32);
                Ok(vec![g.push1(Op::Conv2d(geom), &[xi, w])?])
            },
        )
        .sliced(2),
        Case::new(
            format!("conv {label} {shape} grad-input"),
            x[0],
            flops,
            move |g, n| {
                let geom = at(n);
                let dy = g.input("dy", &geom.y_shape(), DType::F32);
                let w = g.input("w", &geom.w_shape(), DType::F32);
                Ok(vec![g.push1(Op::Conv2dGradInput(geom), &[dy, w])?])
            },
        )
        .sliced(2),
        // The weight gradient sums over the batch: checked whole.
        Case::new(
            format!("conv {label} {shape} grad-weight"),
            x[0],
            flops,
            move |g, n| {
                let geom = at(n);
                let xi = g.input("x", &geom.x_shape(), DType::F32);
                let dy = g.input("dy", &geom.y_shape(), DType::F32);
                Ok(vec![g.push1(Op::Conv2dGradWeight(geom), &[xi, dy])?])
            },
        ),
    ])
}

/// DY-Conv (`pad` false) or PAD-Conv with K kernels: forward, and the backward that also
/// yields IMP's mask score.
fn dynconv(pad: bool, x: [usize; 4], o: usize, k: usize) -> Result<Vec<Case>> {
    let opts = ConvOpts::k(3).pad(1);
    let spec_at = move |n: usize| -> Result<DynSpec> {
        Ok(DynSpec {
            geom: ConvGeom::new(&[n, x[1], x[2], x[3]], o, opts)?,
            k,
            pad,
            lambda: Lambda::Both,
            max_chunk: 0,
        })
    };
    let spec = spec_at(x[0])?;
    // Per sample: mix K kernels, then convolve (the mix is small beside the convolution).
    let mix = (x[0] * k * spec.n()) as f64;
    let flops = 2.0 * spec.geom.macs() as f64 + 2.0 * mix;
    let kind = if pad { "pad-conv" } else { "dy-conv" };
    let label = format!("{kind} K={k} 3x3 {}->{o} {}x{} b{}", x[1], x[2], x[3], x[0]);
    let inputs = move |g: &mut Graph, spec: &DynSpec| -> Vec<TensorId> {
        let xi = g.input("x", &spec.geom.x_shape(), DType::F32);
        let alpha = g.input("alpha", &[spec.geom.n, k], DType::F32);
        let wk = g.param("kernels", &spec.kernels_shape(), Init::Zeros);
        let mut ins = vec![xi, alpha, wk];
        if pad {
            let ws = g.param("weight", &spec.static_shape(), Init::Zeros);
            let mask = g.state("mask", &spec.static_shape(), Init::Ones);
            let phi = g.param("phi_d", &[1], Init::Zeros);
            ins.extend([ws, mask, phi]);
        }
        ins
    };
    Ok(vec![
        Case::new(
            format!("{label} forward"),
            x[0],
            Some(flops),
            move |g, n| {
                let spec = spec_at(n)?;
                let ins = inputs(g, &spec);
                g.push(Op::DynConv2d(spec), &ins)
            },
        )
        .sliced(2),
        Case::new(
            format!("{label} backward"),
            x[0],
            Some(2.0 * flops),
            move |g, n| {
                let spec = spec_at(n)?;
                let mut ins = inputs(g, &spec);
                ins.push(g.input("dy", &spec.geom.y_shape(), DType::F32));
                g.push(Op::DynConv2dGrad(spec), &ins)
            },
        ),
    ])
}

/// PAD-MoE's mix of E experts with the static weight (forward and backward).
fn pad_mix(experts: usize, rows: usize, cols: usize) -> Vec<Case> {
    let n = rows * cols;
    let spec = MixSpec {
        experts,
        n,
        lambda: Lambda::Both,
    };
    let inputs = move |g: &mut Graph| -> Vec<TensorId> {
        let e = g.param("experts", &[experts, rows, cols], Init::Zeros);
        let s = g.param("weight", &[rows, cols], Init::Zeros);
        let m = g.state("mask", &[rows, cols], Init::Ones);
        let phi = g.param("phi_d", &[1], Init::Zeros);
        vec![e, s, m, phi]
    };
    let label = format!("pad-mix E={experts} {rows}x{cols}");
    vec![
        Case::new(format!("{label} forward"), experts, None, move |g, _| {
            let ins = inputs(g);
            Ok(vec![g.push1(Op::PadMix(spec), &ins)?])
        }),
        Case::new(format!("{label} backward"), experts, None, move |g, _| {
            let mut ins = inputs(g);
            ins.push(g.input("dw", &[experts, rows, cols], DType::F32));
            g.push(Op::PadMixGrad(spec), &ins)
        }),
    ]
}

/// Scaled dot-product attention scores of `heads` heads over `len` tokens, batch `b`:
/// softmax(Q·Kᵀ)·V.
fn attention(b: usize, heads: usize, len: usize, dim: usize) -> Case {
    let bh = b * heads;
    let flops = 2.0 * 2.0 * (bh * len * len * dim) as f64;
    let name = format!("attention b{b} h{heads} L{len} d{dim}");
    Case::new(name, bh, Some(flops), move |g, bh| {
        let q = g.input("q", &[bh, len, dim], DType::F32);
        let k = g.input("k", &[bh, len, dim], DType::F32);
        let v = g.input("v", &[bh, len, dim], DType::F32);
        let s = g.matmul(q, k, false, true)?;
        let p = g.push1(Op::Softmax, &[s])?;
        Ok(vec![g.matmul(p, v, false, false)?])
    })
    .sliced(2)
}

fn layer_norm(rows: usize, dim: usize) -> Vec<Case> {
    let label = format!("layernorm {rows}x{dim}");
    let forward = move |g: &mut Graph, rows: usize| -> Result<Vec<TensorId>> {
        let x = g.input("x", &[rows, dim], DType::F32);
        let gamma = g.param("gamma", &[dim], Init::Ones);
        let beta = g.param("beta", &[dim], Init::Zeros);
        g.push(Op::LayerNorm { eps: 1e-12 }, &[x, gamma, beta])
    };
    vec![
        Case::new(format!("{label} forward"), rows, None, move |g, rows| {
            forward(g, rows)
        })
        .sliced(8),
        Case::new(format!("{label} backward"), rows, None, move |g, rows| {
            let outs = forward(g, rows)?;
            let (x, gamma) = (g.find("x").expect("x"), g.find("gamma").expect("gamma"));
            let dy = g.input("dy", &[rows, dim], DType::F32);
            g.push(Op::LayerNormGrad, &[x, gamma, outs[1], outs[2], dy])
        }),
    ]
}

/// Training-mode BatchNorm with a fused ReLU over `x` [n, c, h, w]: forward (the batch
/// statistics and the normalisation) and backward (the gradient sums and the input gradient).
fn batch_norm(label: &str, x: [usize; 4]) -> Vec<Case> {
    let label = format!(
        "batchnorm+relu {label} {}x{}x{} b{}",
        x[1], x[2], x[3], x[0]
    );
    let forward = move |g: &mut Graph, n: usize| -> Result<Vec<TensorId>> {
        let xi = g.input("x", &[n, x[1], x[2], x[3]], DType::F32);
        let c = x[1];
        let gamma = g.param("gamma", &[c], Init::Ones);
        let beta = g.param("beta", &[c], Init::Zeros);
        let mean = g.state("running_mean", &[c], Init::Zeros);
        let var = g.state("running_var", &[c], Init::Ones);
        let op = Op::BatchNorm {
            eps: 1e-5,
            momentum: 0.1,
            train: true,
            act: Some(Act::Relu),
        };
        g.push(op, &[xi, gamma, beta, mean, var])
    };
    vec![
        Case::new(format!("{label} forward"), x[0], None, move |g, n| {
            Ok(vec![forward(g, n)?[0]])
        }),
        Case::new(format!("{label} backward"), x[0], None, move |g, n| {
            let outs = forward(g, n)?;
            let (xi, gamma) = (g.find("x").expect("x"), g.find("gamma").expect("gamma"));
            let dy = g.input("dy", &[n, x[1], x[2], x[3]], DType::F32);
            let op = Op::BatchNormGrad {
                act: Some(Act::Relu),
                eval: false,
                eps: 1e-5,
            };
            g.push(op, &[xi, gamma, outs[1], outs[2], dy, outs[0]])
        }),
    ]
}

/// Top-k routing of `tokens` tokens to `experts` experts, dispatch of their rows and the
/// (unweighted) combine back.
fn moe_dispatch(tokens: usize, dim: usize, experts: usize, k: usize) -> Case {
    let name = format!("moe route+dispatch+combine N={tokens} D={dim} E={experts} k={k}");
    Case::new(name, tokens, None, move |g, n| {
        let logits = g.input("logits", &[n, experts], DType::F32);
        let x = g.input("x", &[n, dim], DType::F32);
        let gates = g.push1(Op::TopKGates { k }, &[logits])?;
        let route = g.push(Op::MoeRoute { k, capacity: n }, &[gates])?;
        let (order, token_slots) = (route[0], route[2]);
        let xs = g.push1(Op::MoeDispatch, &[x, order, token_slots])?;
        let y = g.push1(
            Op::MoeCombine { weighted: false },
            &[xs, token_slots, order],
        )?;
        Ok(vec![y])
    })
}

/// The `kernels` suite; `quick` drops the largest shapes (tests, `--quick`).
pub fn kernel_cases(quick: bool) -> Result<Vec<Case>> {
    let mut cases = vec![];
    let squares: &[usize] = if quick {
        &[256]
    } else {
        &[256, 512, 1024, 2048, 4096]
    };
    for &s in squares {
        cases.push(gemm(s, s, s, ""));
    }
    if quick {
        cases.extend(conv("3x3", [4, 16, 8, 8], 16, ConvOpts::k(3).pad(1))?);
        cases.extend(dynconv(true, [4, 8, 8, 8], 8, 4)?);
        cases.extend(pad_mix(4, 16, 8));
        cases.push(attention(2, 2, 8, 8));
        cases.extend(layer_norm(16, 32));
        cases.extend(batch_norm("small", [4, 8, 6, 6]));
        cases.push(moe_dispatch(16, 8, 4, 2));
        return Ok(cases);
    }
    // The skinny products our models run.
    cases.push(gemm(64, 32768, 576, "conv as GEMM"));
    cases.push(gemm(1024, 1536, 384, "BERT FFN in, 32x32 tokens"));
    cases.push(gemm(1024, 384, 1536, "BERT FFN out"));
    cases.push(gemm(64, 10, 512, "classifier"));
    let k3 = ConvOpts::k(3).pad(1);
    cases.extend(conv("3x3 resnet stage 1", [32, 64, 32, 32], 64, k3)?);
    // A stage's first, strided layer (its input gradient by phases, conv_common.wgsl).
    cases.extend(conv(
        "3x3 stride 2 resnet stage 2",
        [32, 64, 32, 32],
        128,
        k3.stride(2),
    )?);
    // The thin convolutions of the demo's ResNet-10 x0.25 on Fashion-MNIST.
    cases.extend(conv(
        "3x3 resnet10 x0.25 stage 1",
        [64, 16, 28, 28],
        16,
        k3,
    )?);
    cases.extend(conv("3x3 resnet stage 4", [32, 512, 4, 4], 512, k3)?);
    cases.extend(conv(
        "3x3 depthwise mobilenetv2",
        [32, 144, 16, 16],
        144,
        k3.groups(144),
    )?);
    cases.extend(conv(
        "1x1 mobilenetv2",
        [32, 24, 16, 16],
        144,
        ConvOpts::k(1),
    )?);
    cases.extend(dynconv(false, [32, 64, 16, 16], 64, 4)?);
    cases.extend(dynconv(true, [32, 64, 16, 16], 64, 4)?);
    cases.extend(pad_mix(8, 1536, 384));
    cases.push(attention(32, 12, 32, 32));
    cases.extend(layer_norm(1024, 384));
    // MobileNetV2 x0.35's widest 28x28 layers and ResNet-10 x0.25's first stage.
    cases.extend(batch_norm("mobilenetv2", [32, 48, 28, 28]));
    cases.extend(batch_norm("resnet10 x0.25", [64, 16, 28, 28]));
    cases.push(moe_dispatch(1024, 384, 8, 2));
    Ok(cases)
}

/// A layer's forward and backward on random inputs: the outputs are y and the gradients of
/// the layer's input and of every parameter (all checked; they sum over the batch, so the
/// reference recomputes everything). Built in evaluation mode: no router noise or dropout, so
/// the GPU and the reference see the same function.
fn layer(
    name: String,
    n: usize,
    flops: Option<f64>,
    x_shape: impl Fn(usize) -> Vec<usize> + 'static,
    forward: impl Fn(&mut Builder, TensorId) -> Result<TensorId> + 'static,
) -> Case {
    Case::new(name, n, flops, move |g, n| {
        let x = g.input("x", &x_shape(n), DType::F32);
        g.tensors[x].requires_grad = true;
        let y = forward(&mut Builder::new(g, false), x)?;
        let y_shape = g.shape(y).to_vec();
        let dy = g.input("dy", &y_shape, DType::F32);
        backward(g, y, dy)?;
        let mut grads: Vec<(TensorId, TensorId)> = g.grads.iter().map(|(&t, &d)| (t, d)).collect();
        grads.sort();
        Ok(std::iter::once(y)
            .chain(grads.into_iter().map(|(_, d)| d))
            .collect())
    })
}

/// A 3×3 block convolution (`x` [b, c, h, w] → `o` channels) in each mode, forward and
/// backward; FLOPs are the convolution's own (forward, input and weight gradient), which
/// every mode does, so a mode's extra time over static is its attention and kernel assembly.
fn conv_layers(x: [usize; 4], o: usize) -> Result<Vec<Case>> {
    let opts = ConvOpts::k(3).pad(1);
    let flops = Some(3.0 * 2.0 * ConvGeom::new(&x, o, opts)?.macs() as f64);
    let shape = format!("3x3 {}->{o} {}x{} b{}", x[1], x[2], x[3], x[0]);
    Ok([ConvMode::Static, ConvMode::Dynamic, ConvMode::Pad]
        .into_iter()
        .map(|mode| {
            let name = format!("layer conv {} {shape} forward+backward", mode.name());
            let x_shape = move |n: usize| vec![n, x[1], x[2], x[3]];
            layer(name, x[0], flops, x_shape, move |b, xi| {
                b.dynamic = DynConfig {
                    mode,
                    ..DynConfig::default()
                };
                b.block_conv("conv", xi, o, opts)
            })
        })
        .collect())
}

/// The MoE of the benchmarks: 8 experts, top-2, PAD-MoE under `pad`.
fn moe(pad: Option<Lambda>) -> MoeConfig {
    MoeConfig {
        experts: 8,
        top_k: 2,
        pad,
        capacity_factor: None,
    }
}

/// The FFN output projection of `ffn_layers` at inference: dense, MoE, and a PAD-MoE deploy
/// file with the leading `rows` of its output rows dynamic, run split as `eval` runs whole
/// dynamic rows (one GEMM of every token over the static rows, expert GEMMs over the dynamic
/// ones). A deploy file run folded (`eval --no-split`) costs what MoE costs.
fn ffn_infer(tokens: usize, d_in: usize, d_out: usize, rows: f64) -> Vec<Case> {
    let flops = Some(2.0 * (tokens * d_in * d_out) as f64);
    let shape = format!("{d_in}->{d_out} N={tokens}");
    let kinds = [
        ("dense".to_string(), None),
        ("moe E=8 k=2".to_string(), Some(None)),
        (
            format!("pad-moe-deploy rows {rows} E=8 k=2"),
            Some(Some(rows)),
        ),
    ];
    kinds
        .into_iter()
        .map(|(kind, moe_rows)| {
            let name = format!("infer ffn {kind} {shape}");
            let mut case = Case::new(name, tokens, flops, move |g, n| {
                let x = g.input("x", &[n, d_in], DType::F32);
                let mut b = Builder::new(g, false);
                b.deploy_filters = moe_rows.flatten().map(DeployFilters::Leading);
                Ok(vec![match moe_rows {
                    None => b.linear("dense", x, d_out, true)?,
                    Some(_) => moe_linear(&mut b, "dense", x, d_out, moe(None), None)?.y,
                }])
            })
            .sliced(16);
            case.items = Some("tokens/s");
            case
        })
        .collect()
}

/// The FFN output projection of MiniLM (`tokens` × `d_in` → `d_out`) as a dense linear layer,
/// an 8-expert top-2 MoE and PAD-MoE, forward and backward; FLOPs are the dense layer's.
fn ffn_layers(tokens: usize, d_in: usize, d_out: usize) -> Vec<Case> {
    let flops = Some(3.0 * 2.0 * (tokens * d_in * d_out) as f64);
    let shape = format!("{d_in}->{d_out} N={tokens}");
    let kinds: [(&str, Option<MoeConfig>); 3] = [
        ("dense", None),
        ("moe E=8 k=2", Some(moe(None))),
        ("pad-moe E=8 k=2", Some(moe(Some(Lambda::Both)))),
    ];
    kinds
        .into_iter()
        .map(|(kind, cfg)| {
            let name = format!("layer ffn {kind} {shape} forward+backward");
            layer(
                name,
                tokens,
                flops,
                move |n| vec![n, d_in],
                move |b, x| match cfg {
                    None => b.linear("dense", x, d_out, true),
                    Some(cfg) => Ok(moe_linear(b, "dense", x, d_out, cfg, None)?.y),
                },
            )
        })
        .collect()
}

/// The `layers` suite; `quick` at small shapes.
pub fn layer_cases(quick: bool) -> Result<Vec<Case>> {
    let mut cases = vec![];
    if quick {
        cases.extend(conv_layers([2, 8, 6, 6], 8)?);
        cases.extend(ffn_layers(8, 16, 8));
    } else {
        cases.extend(conv_layers([32, 64, 16, 16], 64)?);
        cases.extend(ffn_layers(256, 1536, 384));
    }
    Ok(cases)
}

/// How a model of the `infer` suite is built.
#[derive(Clone, Copy)]
enum InferKind {
    /// A training checkpoint in this mode.
    Mode(ConvMode),
    /// A PAD deploy file as `eval` runs an element-wise mask: λ folded into the weights.
    Deploy,
    /// A PAD deploy file whose dynamic positions are whole filters (this fraction of every
    /// layer's), run split: only the dynamic filters assembled per sample, the static ones
    /// read from W_S (`Op::SplitDynConv2d`).
    DeployFilters(f64),
}

/// Whole-model inference of ResNet-10 ×`width` (cifar stem) on batches of `batch`
/// Fashion-MNIST-sized images. Outputs are per sample: the reference checks 2.
fn infer_case(width: f32, batch: usize, kind: InferKind) -> Case {
    let (mode, lambda, filters, label) = match kind {
        InferKind::Mode(m) => (m, Lambda::Both, None, m.name()),
        InferKind::Deploy => (ConvMode::Pad, Lambda::None, None, "pad-deploy".into()),
        InferKind::DeployFilters(f) => (
            ConvMode::Pad,
            Lambda::None,
            Some(DeployFilters::Leading(f)),
            format!("pad-deploy filters {f}"),
        ),
    };
    let model = ModelConfig {
        arch: "resnet10".into(),
        width,
        stem: Stem::Cifar,
        dynamic: DynConfig {
            mode,
            lambda,
            ..DynConfig::default()
        },
    };
    let name = format!("infer resnet10 x{width} {label} b{batch} 28x28");
    let mut case = Case::new(name, batch, None, move |g, n| {
        let x = g.input("images", &[n, 1, 28, 28], DType::F32);
        let mut b = Builder::new(g, false);
        b.deploy_filters = filters.clone();
        Ok(vec![crate::models::build(&model, &mut b, x, 10)?])
    })
    .sliced(2);
    case.items = Some("img/s");
    case
}

/// One split PAD-Conv layer of a deploy file at inference (3×3, `x` [b, c, h, w] → `o`
/// filters), its first `dynamic` filters dynamic, in each `SplitForm`, and the static layer
/// beside them; FLOPs are the static layer's. Which form wins where decides
/// `SplitForm::choose`.
fn split_conv_infer(x: [usize; 4], o: usize, dynamic: &[usize]) -> Result<Vec<Case>> {
    let opts = ConvOpts::k(3).pad(1);
    let flops = Some(2.0 * ConvGeom::new(&x, o, opts)?.macs() as f64);
    let shape = format!("3x3 {}->{o} {}x{} b{}", x[1], x[2], x[3], x[0]);
    let x_shape = move |n: usize| vec![n, x[1], x[2], x[3]];
    let static_case = Case::new(format!("infer split-conv {shape} static"), x[0], flops, {
        move |g, n| {
            let xi = g.input("x", &x_shape(n), DType::F32);
            Ok(vec![Builder::new(g, false).block_conv("conv", xi, o, opts)?])
        }
    });
    let mut cases = vec![static_case];
    for &d in dynamic {
        for form in SplitForm::ALL {
            let name = format!("infer split-conv {shape} dynamic {d}/{o} {}", form.name());
            cases.push(Case::new(name, x[0], flops, move |g, n| {
                let xi = g.input("x", &x_shape(n), DType::F32);
                let mut b = Builder::new(g, false);
                b.split_form = Some(form);
                let filters: Vec<usize> = (0..d).collect();
                Ok(vec![b.filter_split_conv(xi, o, opts, &filters)?])
            }));
        }
    }
    let per_image = |mut c: Case| {
        c.items = Some("img/s");
        c.sliced(2)
    };
    Ok(cases.into_iter().map(per_image).collect())
}

/// The `infer` suite: ResNet-10 ×0.25 inference at evaluation batch 500 (`quick`: ×0.125,
/// batch 4) as static, DY-Conv, PAD (training checkpoint), PAD deploy file, and PAD deploy
/// file with 30 % of its filters dynamic; MiniLM's FFN output projection over 1 024 tokens
/// (`quick`: 16 tokens of 32 → 8) dense, MoE and PAD-MoE deploy file with half of its rows
/// dynamic.
pub fn infer_cases(quick: bool) -> Vec<Case> {
    let (width, batch) = if quick { (0.125, 4) } else { (0.25, 500) };
    let ffn = if quick {
        ffn_infer(16, 32, 8, 0.5)
    } else {
        ffn_infer(1024, 1536, 384, 0.5)
    };
    [
        InferKind::Mode(ConvMode::Static),
        InferKind::Mode(ConvMode::Dynamic),
        InferKind::Mode(ConvMode::Pad),
        InferKind::Deploy,
        InferKind::DeployFilters(0.3),
    ]
    .into_iter()
    .map(|kind| infer_case(width, batch, kind))
    .chain(ffn)
    .collect()
}

/// Split PAD-Conv layers at inference: `quick`, one small layer; otherwise the shapes of
/// ResNet-18 ×0.25 on 28×28 images at evaluation batch 500, with the dynamic filter counts
/// IMP's filter masks gave its layers (κ = 0.3, seed 0).
pub fn split_cases(quick: bool) -> Result<Vec<Case>> {
    if quick {
        return split_conv_infer([4, 8, 4, 4], 8, &[2]);
    }
    let mut cases = split_conv_infer([500, 32, 14, 14], 32, &[10])?;
    cases.extend(split_conv_infer([500, 64, 7, 7], 64, &[3, 9, 24])?);
    cases.extend(split_conv_infer([500, 128, 4, 4], 128, &[6, 11])?);
    Ok(cases)
}

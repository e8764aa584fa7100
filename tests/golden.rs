//! Golden tests against PyTorch: fixtures written by tests/golden/make_fixtures.py from the
//! reference modules (tests/golden/reference.py). Forward ≤ 1e-4 and every gradient ≤ 1e-3
//! (normwise relative error, as in common/) for DY-Conv and PAD-Conv layers — 3×3, 1×1,
//! strided, grouped and depthwise, at T = 31 and T = 1, every λ variant — and for a whole
//! ResNet-10 PAD forward + backward with random masks.

mod common;
use common::{gpu, rel_err, BWD_TOL, FWD_TOL};
use padnet_wgpu::checkpoint::{self, Tensors};
use padnet_wgpu::executor::{Executable, ParamStore};
use padnet_wgpu::graph::autodiff::backward;
use padnet_wgpu::graph::{DType, Graph, TensorId};
use padnet_wgpu::kernels::conv::ConvOpts;
use padnet_wgpu::kernels::dynconv::Lambda;
use padnet_wgpu::models::bert::{self, BertConfig, BertFeed, BertInputs};
use padnet_wgpu::models::{self, ModelConfig, Stem};
use padnet_wgpu::names::Named;
use padnet_wgpu::nn::dynamic::{ConvMode, DynConfig, INV_TEMPERATURE};
use padnet_wgpu::nn::Builder;
use std::collections::HashMap;
use std::path::Path;

fn fixture(name: &str) -> (Tensors, HashMap<String, String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.safetensors"));
    checkpoint::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Runs graph `g` (output `y`, input `x`, parameters named `prefix + fixture name`) on the
/// fixture's values and compares y and every gradient with PyTorch's.
fn compare(case: &str, mut g: Graph, x: TensorId, y: TensorId, prefix: &str, fx: &Tensors, t: f32) {
    let r = g.input("r", &fx["r"].0, DType::F32);
    let grads = backward(&mut g, y, r).unwrap();
    g.mark_output(y);
    let gx = grads[&x];
    g.mark_output(gx);
    let mask_grads: Vec<(String, TensorId)> = g
        .mask_grads
        .iter()
        .map(|(&m, &d)| (g.tensors[m].name.clone(), d))
        .collect();
    for &(_, d) in &mask_grads {
        g.mark_output(d);
    }
    let gpu = gpu();
    let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
    let names: Vec<String> = store
        .param_slots
        .keys()
        .chain(store.state_slots.keys())
        .cloned()
        .collect();
    for name in &names {
        let key = name.strip_prefix(prefix).unwrap_or(name);
        let (_, data) = fx
            .get(key)
            .unwrap_or_else(|| panic!("{case}: fixture lacks {key}"));
        store.write(name, data).unwrap();
    }
    let param_grads: Vec<(String, TensorId)> = g
        .grads
        .iter()
        .map(|(&p, &d)| (g.tensors[p].name.clone(), d))
        .collect();
    let inv_t = g.find(INV_TEMPERATURE);
    let exe = Executable::compile(gpu, g, &store).unwrap();
    exe.write(x, &fx["x"].1).unwrap();
    exe.write(r, &fx["r"].1).unwrap();
    if let Some(id) = inv_t {
        exe.write(id, &[1.0 / t]).unwrap();
    }
    exe.run().unwrap();
    let read = |t: TensorId| f64s(&exe.read(t, &store).unwrap());
    let e = rel_err(&read(y), &f64s(&fx["y"].1));
    assert!(e <= FWD_TOL, "{case}: forward relative error {e:.2e}");
    let e = rel_err(&read(gx), &f64s(&fx["grad.x"].1));
    assert!(e <= BWD_TOL, "{case}: grad of x relative error {e:.2e}");
    let mut checked = 1;
    for (name, d) in param_grads.iter().chain(&mask_grads) {
        let key = format!("grad.{}", name.strip_prefix(prefix).unwrap_or(name));
        let want = f64s(
            &fx.get(&key)
                .unwrap_or_else(|| panic!("{case}: fixture lacks {key}"))
                .1,
        );
        let e = rel_err(&read(*d), &want);
        assert!(e <= BWD_TOL, "{case}: {key} relative error {e:.2e}");
        checked += 1;
    }
    assert!(checked >= 3, "{case}: only {checked} gradients compared");
}

fn layer(case: &str) {
    let (fx, meta) = fixture(case);
    let m = |k: &str| meta[k].parse::<usize>().unwrap();
    let x_shape: Vec<usize> = fx["x"].0.clone();
    let pad = m("pad") == 1;
    let opts = ConvOpts {
        k: m("k"),
        stride: m("stride"),
        pad: m("padding"),
        dil: m("dilation"),
        groups: m("groups"),
    };
    let mut g = Graph::new();
    let x = g.input("x", &x_shape, DType::F32);
    g.tensors[x].requires_grad = true;
    let mut b = Builder::new(&mut g, true);
    b.dynamic = DynConfig {
        mode: if pad {
            ConvMode::Pad
        } else {
            ConvMode::Dynamic
        },
        kernels: 4,
        reduction: 16,
        lambda: Lambda::parse(&meta["lambda"]).unwrap(),
    };
    let y = b
        .scope("layer", |b| b.dyn_conv2d(x, m("o"), opts, pad))
        .unwrap();
    let t: f32 = meta["temperature"].parse().unwrap();
    compare(case, g, x, y, "layer.", &fx, t);
}

#[test]
fn pad_and_dynamic_layers_match_pytorch() {
    for t in [31, 1] {
        for kind in [
            "pad_3x3",
            "pad_1x1",
            "pad_strided",
            "pad_grouped",
            "pad_depthwise",
            "dyn_3x3",
        ] {
            layer(&format!("{kind}_t{t}"));
        }
    }
}

#[test]
fn lambda_variants_match_pytorch() {
    for lam in ["s", "d", "none"] {
        layer(&format!("pad_lambda_{lam}"));
    }
}

#[test]
fn resnet10_pad_matches_pytorch() {
    let (fx, meta) = fixture("resnet10_pad");
    let cfg = ModelConfig {
        arch: "resnet10".into(),
        width: meta["width"].parse().unwrap(),
        stem: Stem::Cifar,
        dynamic: DynConfig {
            mode: ConvMode::Pad,
            kernels: 4,
            reduction: 16,
            lambda: Lambda::Both,
        },
    };
    let mut g = Graph::new();
    let x = g.input("images", &fx["x"].0, DType::F32);
    g.tensors[x].requires_grad = true;
    let y = models::build(&cfg, &mut Builder::new(&mut g, true), x, 10).unwrap();
    compare(
        "resnet10_pad",
        g,
        x,
        y,
        "",
        &fx,
        meta["temperature"].parse().unwrap(),
    );
}

/// A tiny BERT (2 layers, 4 heads, padded batch, two segments) against Hugging Face
/// transformers' `BertModel`: last hidden state and pooled output ≤ 1e-4, every parameter
/// gradient of sum(pooled · r) ≤ 1e-3.
#[test]
fn bert_matches_transformers() {
    let (fx, meta) = fixture("bert_tiny");
    let mut cfg = BertConfig::parse(&meta["config"], Path::new("bert_tiny.safetensors")).unwrap();
    // The reference ran in eval mode: no dropout.
    cfg.hidden_dropout_prob = 0.0;
    cfg.attention_probs_dropout_prob = 0.0;
    let (batch, len) = (fx["input_ids"].0[0], fx["input_ids"].0[1]);
    let ids = |k: &str| -> Vec<u32> { fx[k].1.iter().map(|&v| v as u32).collect() };
    let mut g = Graph::new();
    let mut b = Builder::new(&mut g, true);
    let inputs = BertInputs::new(&mut b, batch, len);
    let (hidden, pooled) = bert::build(&mut b, &cfg, &inputs).unwrap();
    let r = g.input("r", &fx["r"].0, DType::F32);
    backward(&mut g, pooled, r).unwrap();
    g.mark_output(hidden);
    g.mark_output(pooled);
    let param_grads: Vec<(String, TensorId)> = g
        .grads
        .iter()
        .map(|(&p, &d)| (g.tensors[p].name.clone(), d))
        .collect();
    let gpu = gpu();
    let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
    let names: Vec<String> = store.param_slots.keys().cloned().collect();
    assert_eq!(names.len(), 39, "parameter count");
    for name in &names {
        let (_, data) = fx
            .get(name)
            .unwrap_or_else(|| panic!("fixture lacks {name}"));
        store.write(name, data).unwrap();
    }
    let exe = Executable::compile(gpu, g, &store).unwrap();
    let feed = BertFeed::new(
        ids("input_ids"),
        ids("token_type_ids"),
        &ids("attention_mask"),
        len,
    );
    feed.write(&inputs, &exe).unwrap();
    exe.write(r, &fx["r"].1).unwrap();
    exe.run().unwrap();
    let read = |t: TensorId| f64s(&exe.read(t, &store).unwrap());
    for (t, key) in [(hidden, "last_hidden_state"), (pooled, "pooler_output")] {
        let e = rel_err(&read(t), &f64s(&fx[key].1));
        assert!(e <= FWD_TOL, "{key}: relative error {e:.2e}");
    }
    for (name, d) in &param_grads {
        let key = format!("grad.{name}");
        let e = rel_err(&read(*d), &f64s(&fx[&key].1));
        assert!(e <= BWD_TOL, "{key}: relative error {e:.2e}");
    }
    assert_eq!(param_grads.len(), names.len());
}

//! Deployment fold: a PAD ResNet-10 partitioned by IMP (κ = 0.3) and briefly trained evaluates
//! to the same logits (≤ 1e-4) from its deploy file as from its training checkpoint, with
//! element-wise and structured (kernel, filter, channel) masks, and the deploy file is at most
//! 55% of a fully dynamic checkpoint of the same architecture.

mod common;
use padnet_wgpu::checkpoint::{self, Floats};
use padnet_wgpu::data::{self, Source};
use padnet_wgpu::eval::{self, EvalConfig};
use padnet_wgpu::imp::{self, Granularity, ImpConfig, ImpData, RoundSchedule, Scope, Scorer};
use padnet_wgpu::models::Stem;
use padnet_wgpu::nn::dynamic::{ConvMode, DeployFilters};
use padnet_wgpu::train::{Session, TrainConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn config(mode: ConvMode) -> TrainConfig {
    TrainConfig {
        model: "resnet10".into(),
        mode,
        width: 0.125,
        stem: Stem::Cifar,
        batch_size: 16,
        eval_batch_size: 16,
        ..TrainConfig::default()
    }
}

fn save(s: &Session, path: &Path, meta: &[(&str, &str)]) {
    let tensors = checkpoint::from_store(&s.store).unwrap();
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    checkpoint::save(path, &tensors, meta).unwrap();
}

fn eval_logits(path: &Path, out: &Path, split_filters: bool) -> Vec<u8> {
    let subset = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset");
    let cfg = EvalConfig {
        checkpoint: path.to_path_buf(),
        dataset: "fashion-mnist".into(),
        data_dir: Some(subset),
        batch_size: 16,
        limit: Some(100),
        logits_out: Some(out.to_path_buf()),
        overrides: Default::default(),
        folder: Default::default(),
        split_filters,
    };
    eval::eval(common::gpu(), &cfg).unwrap();
    std::fs::read(out).unwrap()
}

/// max |deploy − PAD| / max |PAD| over the logits of 100 test images (`split`: the deploy file
/// evaluated with whole dynamic filters split off, as `eval` does by default; `false`: the
/// dense path, `eval --no-split`).
fn deploy_error(pad: &Path, deploy: &Path, dir: &Path, split: bool) -> f32 {
    let floats = |v: &[u8]| -> Vec<f32> {
        v[128..]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let fa = floats(&eval_logits(pad, &dir.join("a.npy"), false));
    let fb = floats(&eval_logits(deploy, &dir.join("b.npy"), split));
    assert_eq!(fa.len(), 1000);
    let scale = fa.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    fa.iter()
        .zip(&fb)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// `export`'s comparison: parameters counted against the sessions and the deploy file's own
/// tensors, and the multiply-accumulates the static mix adds to the PAD layers.
fn check_costs(
    pad_session: &Session,
    pad: &Path,
    deploy: &Path,
    report: &padnet_wgpu::export::ExportReport,
    split: bool,
) {
    let rows = padnet_wgpu::eval::export_costs(pad, deploy, report).unwrap();
    // A split row whenever a layer's dynamic positions are whole filters (or none): with
    // filter granularity always.
    assert!(rows.len() == 5 || (!split && rows.len() == 4), "{rows:?}");
    let params = |mode| {
        let s = Session::new(common::gpu(), &config(mode), [1, 28, 28], 10).unwrap();
        s.store.num_params()
    };
    assert_eq!(rows[0].params, params(ConvMode::Static));
    assert_eq!(rows[1].params, params(ConvMode::Dynamic));
    assert_eq!(rows[2].params, pad_session.store.num_params());
    // The deploy file's values, BatchNorm's running statistics and the bit masks aside.
    let (tensors, _) = checkpoint::load(deploy).unwrap();
    let stored: usize = tensors
        .iter()
        .filter(|(name, _)| {
            !["running_mean", "running_var", "mask_bits"]
                .iter()
                .any(|s| name.ends_with(s))
        })
        .map(|(_, (_, v))| v.len())
        .sum();
    assert_eq!(rows[3].params, stored);
    assert!(rows[0].macs < rows[1].macs, "{rows:?}");
    // At batch 1 PAD-Conv mixes one static kernel more than DY-Conv per layer: N positions.
    assert_eq!(rows[2].macs - rows[1].macs, report.positions as u64);
    assert_eq!(rows[3].macs, rows[2].macs);
    assert_eq!(rows[2].bytes, std::fs::metadata(pad).unwrap().len());
    assert_eq!(rows[3].bytes, std::fs::metadata(deploy).unwrap().len());
}

#[test]
fn folded_logits_equal_unfolded_and_deploy_is_small() {
    let dir: PathBuf = std::env::temp_dir().join(format!("padnet-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gpu = common::gpu();
    let mut s = Session::new(gpu.clone(), &config(ConvMode::Pad), [1, 28, 28], 10).unwrap();
    let train = Arc::new(data::fashion_mnist(&Source::Embedded, true).unwrap());
    let data = ImpData {
        train: &train,
        batch: 16,
        smoothing: 0.0,
        temperature: 31.0,
        comm: padnet_wgpu::dist::Comm::alone(),
        local_bn: false,
    };
    let icfg = ImpConfig {
        kappa: 0.3,
        scorer: Scorer::Snip,
        scope: Scope::Global,
        rounds: 1,
        schedule: RoundSchedule::Exponential,
        batches: 2,
        granularity: Granularity::Element,
        monotone: false,
        train_mode: false,
        seed: 0,
    };
    let rep = imp::run(gpu.clone(), &s.store, &s.model, &data, &icfg).unwrap();
    assert!((rep.kappa - 0.3).abs() < 1e-3);
    // Train a few steps so λ, the kernels and the statistics move away from their init.
    for b in data::batches(train.clone(), 16, Some(1), 0, 2)
        .into_iter()
        .take(6)
    {
        s.step(&b, 0.05).unwrap();
    }
    s.set_temperature(4.0).unwrap();
    let meta = [
        ("arch", "resnet10"),
        ("mode", "pad"),
        ("width", "0.125"),
        ("stem", "cifar"),
        ("lambda", "both"),
        ("temperature", "4"),
        ("classes", "10"),
        ("input_shape", "[1, 28, 28]"),
    ];
    let pad = dir.join("pad.safetensors");
    save(&s, &pad, &meta);
    let deploy = dir.join("deploy.safetensors");
    let report = padnet_wgpu::export::export(&pad, &deploy, Floats::F32).unwrap();
    check_costs(&s, &pad, &deploy, &report, false);

    let err = deploy_error(&pad, &deploy, &dir, false);
    assert!(
        err <= 1e-4,
        "deploy vs PAD logits: relative error {err:.2e}"
    );
    // Stored as f16 (`export --dtype f16`): under 60 % of the bytes (the bit masks and the
    // header stay), and logits within f16's tolerance (each weight rounded by ≤ 2^-11).
    let half = dir.join("deploy-f16.safetensors");
    padnet_wgpu::export::export(&pad, &half, Floats::F16).unwrap();
    let bytes = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(
        bytes(&half) * 10 < bytes(&deploy) * 6,
        "f16 deploy file {} bytes against {}",
        bytes(&half),
        bytes(&deploy)
    );
    let err = deploy_error(&pad, &half, &dir, false);
    assert!(
        err > 0.0 && err <= padnet_wgpu::bench::TOLERANCE_F16 as f32,
        "f16 deploy vs PAD logits: relative error {err:.2e}"
    );
    eprintln!(
        "f16 deploy file: {} of {} bytes, logits within {err:.2e}",
        bytes(&half),
        bytes(&deploy)
    );

    // Structured partitions fold the same way: the trained model re-partitioned by whole
    // kernels, output filters and input channels.
    for granularity in [
        Granularity::Kernel,
        Granularity::Filter,
        Granularity::Channel,
    ] {
        let cfg = ImpConfig {
            granularity,
            ..icfg.clone()
        };
        let rep = imp::run(gpu.clone(), &s.store, &s.model, &data, &cfg).unwrap();
        let round = &rep.rounds[0];
        assert_eq!(round.dynamic, round.expected, "{granularity:?}: {round:?}");
        let pad = dir.join(format!("pad-{granularity:?}.safetensors"));
        let deploy = dir.join(format!("deploy-{granularity:?}.safetensors"));
        save(&s, &pad, &meta);
        let report = padnet_wgpu::export::export(&pad, &deploy, Floats::F32).unwrap();
        check_costs(
            &s,
            &pad,
            &deploy,
            &report,
            granularity == Granularity::Filter,
        );
        for split in [false, true] {
            let err = deploy_error(&pad, &deploy, &dir, split);
            assert!(
                err <= 1e-4,
                "{granularity:?} split {split}: deploy vs PAD logits {err:.2e}"
            );
        }
        if granularity == Granularity::Filter {
            // Every PAD layer can then run split: a static convolution plus the dynamic filters.
            let shapes: std::collections::BTreeMap<String, Vec<usize>> = imp::pad_layers(&s.store)
                .iter()
                .map(|l| {
                    (
                        l.layer.clone(),
                        s.store.param_slots[&l.dynamic].shape.clone(),
                    )
                })
                .collect();
            let (tensors, _) = checkpoint::load(&deploy).unwrap();
            let split = padnet_wgpu::export::whole_filter_layers(&tensors, &shapes);
            assert_eq!(split.len(), shapes.len(), "{split:?}");
            // The logits above covered a split layer's forms: one per-sample convolution over
            // all filters (`split_conv2d`), and batched convolutions whose outputs are put back
            // in filter order (`merge_channels`). Each form alone: tests/dynconv.rs.
            let split = DeployFilters::Layers(Arc::new(split));
            let graph = eval::Evaluator::deploy_graph(&s.model, 16, [1, 28, 28], 10, Some(split));
            let ops: Vec<&str> = graph.unwrap().nodes.iter().map(|n| n.op.name()).collect();
            for kind in ["split_conv2d", "merge_channels"] {
                assert!(ops.contains(&kind), "no {kind} in {ops:?}");
            }
        }
    }

    // Size against a fully dynamic (DY-Conv) checkpoint of the same architecture.
    let dy = Session::new(gpu, &config(ConvMode::Dynamic), [1, 28, 28], 10).unwrap();
    let dyc = dir.join("dyconv.safetensors");
    save(&dy, &dyc, &meta);
    let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64;
    let ratio = size(&deploy) / size(&dyc);
    assert!(
        ratio <= 0.55,
        "deploy file is {:.1}% of the DY-Conv checkpoint",
        100.0 * ratio
    );

    // Bad input: exporting a non-PAD checkpoint, or exporting a deploy file again.
    let e = padnet_wgpu::export::export(&dyc, &dir.join("x.safetensors"), Floats::F32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a PAD checkpoint"), "{e}");
    let e = padnet_wgpu::export::export(&deploy, &dir.join("x.safetensors"), Floats::F32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already a deploy file"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

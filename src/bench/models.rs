//! The `train` suite and `bench --model`: training steps of whole models, modes interleaved.

use super::record::{Check, Timing, Workload};
use super::timing::{Method, Stats};
use super::Options;
use crate::error::Result;
use crate::executor::Executable;
use crate::gpu::Gpu;
use crate::models::bert::BertConfig;
use crate::models::Stem;
use crate::nn::dynamic::ConvMode;
use crate::text::TextMode;
use crate::train::TrainConfig;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// One training step's time per mode: every timed sample, and the peak GPU memory of the
/// training graph.
pub struct StepTimes {
    pub samples_ms: Vec<f64>,
    pub peak_bytes: u64,
    /// Kernels the training graph dispatches per step (the optimizer's not counted): each
    /// costs at least the adapter's `dispatch_us` (docs/benchmarks.md, "Peaks").
    pub dispatches: usize,
    /// Whether the loss stayed finite in every step.
    pub finite: bool,
}

impl StepTimes {
    /// The samples of a training graph's steps, with its peak memory and dispatches (none
    /// where no graph was compiled).
    fn of(samples_ms: Vec<f64>, finite: bool, graph: Option<&Executable>) -> StepTimes {
        StepTimes {
            samples_ms,
            peak_bytes: graph.map_or(0, Executable::peak_bytes),
            dispatches: graph.map_or(0, Executable::num_dispatches),
            finite,
        }
    }

    pub fn median_ms(&self) -> f64 {
        Stats::of(&self.samples_ms).median_ms
    }
}

/// Warm-up steps of each mode before the timed ones.
pub const WARMUP_STEPS: usize = 2;

/// Milliseconds of every timed `step(i)` (one training step of mode i, waited for; it returns
/// the step's loss) per mode: [`WARMUP_STEPS`] of each, then `steps` rounds that run one step
/// of every mode in turn, so a machine whose speed drifts (turbo, other tenants) skews the
/// modes' ratios less than timing one mode after another. Also whether each mode's loss
/// stayed finite.
fn interleaved_samples(
    modes: usize,
    steps: usize,
    mut step: impl FnMut(usize) -> Result<f64>,
) -> Result<Vec<(Vec<f64>, bool)>> {
    let mut out = vec![(vec![], true); modes];
    for round in 0..steps.max(1) + WARMUP_STEPS {
        for (i, (times, finite)) in out.iter_mut().enumerate() {
            let start = Instant::now();
            let loss = step(i)?;
            if round >= WARMUP_STEPS {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            *finite &= loss.is_finite();
        }
    }
    Ok(out)
}

/// `batch` images of `sample` shape (normal noise) with random labels, the same every call.
fn random_batch(batch: usize, sample: [usize; 3], classes: usize) -> crate::data::Batch {
    let mut rng = crate::rng::Rng::new(5);
    let n = batch * sample.iter().product::<usize>();
    crate::data::Batch {
        images: (0..n).map(|_| rng.normal()).collect(),
        labels: (0..batch).map(|_| rng.below(classes) as u32).collect(),
        valid: batch,
        error: None,
    }
}

/// Times of one training step (forward, backward, optimizer; one submit) of `cfg`'s model in
/// each of `modes`, on random data of `sample` shape (modes interleaved, see
/// [`interleaved_samples`]).
pub fn train_steps(
    gpu: &Arc<Gpu>,
    cfg: &crate::train::TrainConfig,
    modes: &[crate::nn::dynamic::ConvMode],
    sample: [usize; 3],
    classes: usize,
    steps: usize,
) -> Result<Vec<StepTimes>> {
    let batch = random_batch(cfg.batch_size, sample, classes);
    let mut sessions = vec![];
    for mode in modes {
        let c = crate::train::TrainConfig {
            mode: *mode,
            ..cfg.clone()
        };
        sessions.push(crate::train::Session::new(
            gpu.clone(),
            &c,
            sample,
            classes,
        )?);
    }
    let samples = interleaved_samples(modes.len(), steps, |i| {
        sessions[i].step(&batch, 0.01)?;
        Ok(sessions[i].last_loss()? as f64) // waits for the step
    })?;
    let mut out = vec![];
    for (s, (samples_ms, finite)) in sessions.iter().zip(samples) {
        if crate::executor::profile::wanted() {
            s.print_profile(1)?;
        }
        out.push(StepTimes::of(samples_ms, finite, Some(&s.train)));
    }
    Ok(out)
}

/// Times of one global training step of `cfg`'s model in `mode` split over `ranks` data-parallel
/// ranks that are threads on `gpu` (`cfg.batch_size / ranks` images each, SyncBN, gradients
/// averaged; docs/distributed.md), timed on rank 0 from a common start: on one adapter, the
/// cost of the ranks' host sums.
pub fn train_steps_ranks(
    gpu: &Arc<Gpu>,
    cfg: &crate::train::TrainConfig,
    mode: crate::nn::dynamic::ConvMode,
    sample: [usize; 3],
    classes: usize,
    steps: usize,
    ranks: usize,
) -> Result<StepTimes> {
    let c = crate::train::TrainConfig {
        mode,
        batch_size: cfg.batch_size / ranks,
        ..cfg.clone()
    };
    let batch = random_batch(c.batch_size, sample, classes);
    crate::dist::run_threads(ranks, |comm| {
        let mut s =
            crate::train::Session::new_rank(gpu.clone(), &c, sample, classes, comm.clone())?;
        let mut t = interleaved_samples(1, steps, |_| {
            comm.barrier()?;
            s.step(&batch, 0.01)?;
            Ok(s.last_loss()? as f64) // waits for the step
        })?;
        let (samples_ms, finite) = t.remove(0);
        Ok(StepTimes::of(samples_ms, finite, Some(&s.train)))
    })
}

/// Times of one BERT classifier training step (forward, backward, AdamW) at `batch`
/// sequences of `len` tokens (random ids, no padding) for each of `modes`. `mode` is dense, moe or
/// pad (8 experts, top-2, on the FFN output projections; PAD-MoE with its mask as built, all
/// dynamic: the step costs the same at any κ). Modes interleaved, see
/// [`interleaved_samples`].
pub fn text_train_steps(
    gpu: &Arc<Gpu>,
    bert: &crate::models::bert::BertConfig,
    modes: &[crate::text::TextMode],
    batch: usize,
    len: usize,
    steps: usize,
) -> Result<Vec<StepTimes>> {
    use crate::data::tokenize::Encoded;
    use crate::models::bert::BertFeed;
    let classes = 8;
    let filler = Encoded {
        ids: vec![0; 2],
        type_ids: vec![0; 2],
        truncated: false,
    };
    let mut rng = crate::rng::Rng::new(5);
    let ids = (0..batch * len)
        .map(|_| rng.below(bert.vocab_size) as u32)
        .collect();
    let feed = BertFeed::new(ids, vec![0; batch * len], &vec![1; batch * len], len);
    let labels: Vec<f32> = (0..batch).map(|_| rng.below(classes) as f32).collect();
    let mut sessions = vec![];
    for mode in modes {
        let cfg = crate::text::TextTrainConfig {
            mode: *mode,
            batch_size: batch,
            eval_batch_size: batch,
            ..Default::default()
        };
        let s = crate::text::TextSession::new(
            gpu.clone(),
            bert.clone(),
            classes,
            &cfg,
            filler.clone(),
        )?;
        sessions.push(s);
    }
    let samples = interleaved_samples(modes.len(), steps, |i| {
        sessions[i].step_feed(&feed, len, &labels, 1e-5)?;
        Ok(sessions[i].train_metrics()?.0) // waits for the step
    })?;
    let mut out = vec![];
    for (s, (samples_ms, finite)) in sessions.iter().zip(samples) {
        if crate::executor::profile::wanted() {
            s.print_profile()?;
        }
        out.push(StepTimes::of(samples_ms, finite, s.train_graph(len)));
    }
    Ok(out)
}

/// A `train`-suite workload from one mode's step times.
fn step_workload(
    name: String,
    shapes: BTreeMap<String, Vec<usize>>,
    t: StepTimes,
    items_per_step: usize,
    unit: &str,
) -> Workload {
    let stats = Stats::of(&t.samples_ms);
    Workload {
        suite: "train".into(),
        name,
        shapes,
        dtype: "f32".into(),
        timing: Timing {
            method: Method::WallClock,
            warmup: WARMUP_STEPS,
            samples: t.samples_ms.len(),
            reps: 1,
        },
        throughput: Some(items_per_step as f64 / (stats.median_ms * 1e-3)),
        throughput_unit: Some(unit.into()),
        stats,
        samples_ms: t.samples_ms,
        flops: None,
        bytes: None,
        gflops: None,
        gbs: None,
        pct_peak_flops: None,
        pct_peak_bandwidth: None,
        memory_bytes: Some(t.peak_bytes),
        kernels: vec![],
        check: Check {
            correct: t.finite,
            method: "training loss finite in every step (the models' gradients are tested against the CPU reference in tests/model_grads.rs)".into(),
            error: None,
            tolerance: None,
        },
    }
}

/// The `train` suite: one training step (forward, backward, optimizer) of ResNet-10 ×0.25
/// and MobileNetV2 ×0.35 (cifar stems) on Fashion-MNIST-sized images in static, DY-Conv and
/// PAD mode, and of MiniLM-L6 in dense, MoE and PAD-MoE mode, modes interleaved; wall clock
/// per step. On adapters that are not CPUs also ResNet-18 ×1 at batch 64 on 3×32×32 images,
/// the paper's CIFAR scale (too slow for a CPU adapter's suite). `quick` keeps ResNet-10 at
/// width 0.125 only.
pub fn train_suite(gpu: &Arc<Gpu>, opts: &Options) -> Result<Vec<Workload>> {
    use crate::names::Named;
    let mut out = vec![];
    let steps = opts.samples.max(1);
    let (batch, width) = if opts.quick { (4, 0.125) } else { (32, 0.25) };
    let fashion = [1, 28, 28];
    let mut vision = vec![("resnet10", width, batch, fashion)];
    if !opts.quick {
        vision.push(("mobilenetv2", 0.35, batch, fashion));
        if gpu.info.device_type != wgpu::DeviceType::Cpu {
            vision.push(("resnet18", 1.0, 64, [3, 32, 32]));
        }
    }
    let modes = [ConvMode::Static, ConvMode::Dynamic, ConvMode::Pad];
    let config = |model: &str, width, batch_size| TrainConfig {
        model: model.into(),
        width,
        stem: Stem::Cifar,
        batch_size,
        ..Default::default()
    };
    for (model, width, batch, sample) in vision {
        let cfg = config(model, width, batch);
        for (mode, t) in modes
            .iter()
            .zip(train_steps(gpu, &cfg, &modes, sample, 10, steps)?)
        {
            let shapes = BTreeMap::from([(
                "images".to_string(),
                vec![batch, sample[0], sample[1], sample[2]],
            )]);
            let size = match sample {
                [1, h, w] => format!("{h}x{w}"),
                [c, h, w] => format!("{c}x{h}x{w}"),
            };
            let name = format!("train {model} x{width} {} b{batch} {size}", mode.name());
            out.push(step_workload(name, shapes, t, batch, "img/s"));
        }
    }
    let cfg = config("resnet10", width, batch);
    let sample = fashion;
    // The same PAD step as two data-parallel ranks of half the batch on this one adapter.
    let ranks = 2;
    let t = train_steps_ranks(gpu, &cfg, ConvMode::Pad, sample, 10, steps, ranks)?;
    let shapes = BTreeMap::from([
        (
            "images".to_string(),
            vec![batch, sample[0], sample[1], sample[2]],
        ),
        ("ranks".to_string(), vec![ranks]),
    ]);
    let name = format!("train resnet10 x{width} pad b{batch} 28x28 {ranks} ranks");
    out.push(step_workload(name, shapes, t, batch, "img/s"));
    let mut bert = BertConfig::minilm_l6();
    let (batch, len) = if opts.quick {
        bert.num_hidden_layers = 1;
        (2, 8)
    } else {
        (8, 32)
    };
    let modes = [TextMode::Dense, TextMode::Moe, TextMode::Pad];
    let layers = bert.num_hidden_layers;
    for (mode, t) in modes
        .iter()
        .zip(text_train_steps(gpu, &bert, &modes, batch, len, steps)?)
    {
        let shapes = BTreeMap::from([("tokens".to_string(), vec![batch, len])]);
        let name = format!("train minilm-l{layers} {} b{batch}x{len}", mode.name());
        out.push(step_workload(name, shapes, t, batch * len, "tokens/s"));
    }
    Ok(out)
}

//! Training and evaluation loops. A training step (forward, backward, optimizer) is one
//! command encoder and one submit; the host reads metrics back only every `log_every` steps.

use crate::checkpoint;
use crate::data::{self, Batch, ImageSet};
use crate::error::{Error, Result};
use crate::eval::{loss_and_accuracy, Evaluator};
use crate::gpu::Gpu;
use crate::graph::autodiff::backward;
use crate::graph::compile::{Executable, ParamStore};
use crate::graph::{DType, Graph, Init, Op, TensorId};
use crate::models::{self, ModelConfig, Stem};
use crate::nn::dynamic::{ConvMode, DynConfig, INV_TEMPERATURE};
use crate::nn::Builder;
use crate::ops::dynconv::Lambda;
use crate::optim::{Decay, OptimConfig, OptimKind, Optimizer, Schedule};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Name of the on-GPU metric accumulator (Σ loss, #correct, #samples); underscore-prefixed
/// state is bookkeeping and is not written to checkpoints.
const METRICS: &str = "_train_metrics";

#[derive(Clone, Debug, Serialize)]
pub struct TrainConfig {
    pub model: String,
    /// static, dynamic (DY-Conv) or pad (PAD-Conv) block convolutions.
    pub mode: String,
    pub width: f32,
    pub stem: String,
    pub kernels: usize,
    pub reduction: usize,
    pub lambda: String,
    /// Attention temperature annealed from `temp_init` to 1 over `temp_epochs` epochs.
    pub temp_init: f32,
    pub temp_epochs: f32,
    pub dataset: String,
    pub data_dir: Option<PathBuf>,
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub optimizer: String,
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    pub schedule: String,
    pub milestones: Vec<usize>,
    pub gamma: f32,
    pub warmup_epochs: f32,
    pub label_smoothing: f32,
    pub seed: u64,
    pub limit_train: Option<usize>,
    pub limit_test: Option<usize>,
    pub log_every: usize,
    pub out: PathBuf,
    pub progress: bool,
    /// Continue the run saved in this directory (model, optimizer state, metrics).
    pub resume: Option<PathBuf>,
    /// Input size and strictness of folder datasets.
    pub input_size: usize,
    pub strict: bool,
    /// Dynamic fraction κ kept by IMP in pad mode (None: 0.5 for pad; other modes have none).
    pub kappa: Option<f64>,
    pub imp: crate::imp::ImpOptions,
    /// Run IMP after this many training steps instead of before training.
    pub imp_after: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: "simple-cnn".into(),
            mode: "static".into(),
            width: 1.0,
            stem: "imagenet".into(),
            kernels: 4,
            reduction: 16,
            lambda: "both".into(),
            temp_init: 30.0,
            temp_epochs: 10.0,
            dataset: "fashion-mnist".into(),
            data_dir: None,
            epochs: 2,
            batch_size: 64,
            eval_batch_size: 500,
            optimizer: "sgd".into(),
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            schedule: "cosine".into(),
            milestones: vec![],
            gamma: 0.1,
            warmup_epochs: 0.0,
            label_smoothing: 0.0,
            seed: 0,
            limit_train: None,
            limit_test: None,
            log_every: 20,
            out: PathBuf::from("runs/latest"),
            progress: true,
            resume: None,
            input_size: 224,
            strict: false,
            kappa: None,
            imp: Default::default(),
            imp_after: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    pub lr: f32,
    pub train_img_per_s: f64,
    pub epoch_seconds: f64,
}

pub const DATASETS: [&str; 4] = [
    "fashion-mnist",
    "cifar10:PATH",
    "cifar100:PATH",
    "folder:PATH",
];

/// (train, test) splits of a dataset by name.
/// Options of folder datasets.
#[derive(Clone, Copy, Debug)]
pub struct FolderOpts {
    pub input_size: usize,
    /// Stop at the first undecodable image instead of skipping or blanking it.
    pub strict: bool,
}

impl Default for FolderOpts {
    fn default() -> Self {
        FolderOpts {
            input_size: 224,
            strict: false,
        }
    }
}

/// (train, test) splits of a dataset by name: `fashion-mnist`, `cifar10:PATH`,
/// `cifar100:PATH` or `folder:PATH` (ImageFolder with `train/` and `val/`).
pub fn load_dataset(
    name: &str,
    data_dir: Option<&Path>,
    folder: FolderOpts,
) -> Result<(ImageSet, ImageSet, String)> {
    let (kind, path) = match name.split_once(':') {
        Some((k, p)) => (k, Some(Path::new(p))),
        None => (name, None),
    };
    match (kind, path) {
        ("fashion-mnist", None) => {
            let src = data::Source::fashion_mnist(data_dir);
            Ok((
                data::fashion_mnist(&src, true)?,
                data::fashion_mnist(&src, false)?,
                src.describe(),
            ))
        }
        ("folder", Some(root)) => {
            let train = data::folder::load(root, "train", folder.input_size, folder.strict)?;
            let val = data::folder::load(root, "val", folder.input_size, folder.strict)?;
            Ok((train, val, root.display().to_string()))
        }
        ("cifar10" | "cifar100", Some(dir)) => {
            let hundred = kind == "cifar100";
            let (train, test) = (
                data::cifar::load(dir, hundred, true)?,
                data::cifar::load(dir, hundred, false)?,
            );
            Ok((train, test, dir.display().to_string()))
        }
        _ => Err(Error::Invalid(format!(
            "unknown dataset '{name}'; valid datasets: {}",
            DATASETS.join(", ")
        ))),
    }
}

/// A model compiled for training (batch `b`) and evaluation (batch `eb`), sharing weights.
pub struct Session {
    pub gpu: Arc<Gpu>,
    pub store: ParamStore,
    pub train: Executable,
    pub eval: Evaluator,
    pub optimizer: Optimizer,
    x: TensorId,
    labels: TensorId,
    loss: TensorId,
    /// The 1/T input of the training graph (absent in static models).
    inv_temperature: Option<TensorId>,
    /// Current attention temperature.
    pub temperature: f32,
    /// Dynamic fraction of the PAD masks (1 until IMP partitions them).
    pub kappa: f64,
    pub model: ModelConfig,
    pub classes: usize,
}

fn optim_config(cfg: &TrainConfig) -> Result<OptimConfig> {
    let kind = match cfg.optimizer.as_str() {
        "sgd" => OptimKind::Sgd {
            momentum: cfg.momentum,
            nesterov: cfg.nesterov,
        },
        "adamw" => OptimKind::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        o => {
            return Err(Error::Invalid(format!(
                "unknown optimizer '{o}'; valid: sgd, adamw"
            )))
        }
    };
    Ok(OptimConfig {
        kind,
        weight_decay: cfg.weight_decay,
    })
}

impl TrainConfig {
    /// The IMP settings of a pad run (None when the run partitions nothing: κ = 1 or not pad).
    pub fn imp_config(&self) -> Result<Option<crate::imp::ImpConfig>> {
        let pad = self.mode == "pad";
        let kappa = match (self.kappa, pad) {
            (Some(_), false) => {
                return Err(Error::Invalid(format!(
                    "--kappa applies to --mode pad, not '{}'",
                    self.mode
                )))
            }
            (None, false) => return Ok(None),
            (k, true) => k.unwrap_or(0.5),
        };
        let cfg = self.imp.config(kappa, self.seed)?;
        Ok((kappa < 1.0).then_some(cfg))
    }

    pub fn model_config(&self) -> Result<ModelConfig> {
        let cfg = ModelConfig {
            arch: self.model.clone(),
            width: self.width,
            stem: Stem::parse(&self.stem)?,
            dynamic: DynConfig {
                mode: ConvMode::parse(&self.mode)?,
                kernels: self.kernels,
                reduction: self.reduction,
                lambda: Lambda::parse(&self.lambda)?,
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Attention temperature before training step `step` (docs/method.md §3): linear from `t0` at
/// step 0 to 1 at `anneal_steps`, then 1. Before any step (a fresh model) it is `t0 + 1`.
pub fn temperature(t0: f32, anneal_steps: usize, step: usize) -> f32 {
    if anneal_steps == 0 {
        return 1.0;
    }
    let left = anneal_steps.saturating_sub(step) as f32 / anneal_steps as f32;
    1.0 + (t0 - 1.0).max(0.0) * left
}

/// The graph one training step runs: model → label-smoothed cross-entropy (mean over the
/// batch) → backward, with every parameter's gradient and (PAD) every mask's ∂L/∂M.
pub struct TrainingGraph {
    pub graph: Graph,
    /// Input `[B, C, H, W]`.
    pub images: TensorId,
    /// Input `[B]` (u32).
    pub labels: TensorId,
    pub loss: TensorId,
}

pub fn training_graph(
    model: &ModelConfig,
    input_shape: [usize; 4],
    classes: usize,
    label_smoothing: f32,
) -> Result<TrainingGraph> {
    let mut g = Graph::new();
    let x = g.input("images", &input_shape, DType::F32);
    let labels = g.input("labels", &input_shape[..1], DType::U32);
    let logits = models::build(model, &mut Builder::new(&mut g, true), x, classes)?;
    let metrics = g.state(METRICS, &[3], Init::Zeros);
    let op = Op::CrossEntropy {
        smoothing: label_smoothing,
    };
    let loss = g.push(op, &[logits, labels, metrics])?[0];
    let seed = g.constant("loss_seed", &[1], vec![1.0])?;
    backward(&mut g, loss, seed)?;
    g.mark_output(loss);
    Ok(TrainingGraph {
        graph: g,
        images: x,
        labels,
        loss,
    })
}

impl Session {
    pub fn new(
        gpu: Arc<Gpu>,
        cfg: &TrainConfig,
        sample_shape: [usize; 3],
        classes: usize,
    ) -> Result<Self> {
        let model = cfg.model_config()?;
        let [c, h, w] = sample_shape;
        let b = cfg.batch_size;
        if b == 0 || cfg.eval_batch_size == 0 {
            return Err(Error::Invalid("batch sizes must be at least 1".into()));
        }
        let TrainingGraph {
            graph: g,
            images: x,
            labels,
            loss,
        } = training_graph(&model, [b, c, h, w], classes, cfg.label_smoothing)?;

        // Evaluation graph: the same model with BatchNorm on running statistics.
        let eg = Evaluator::graph(&model, cfg.eval_batch_size, sample_shape, classes)?;

        let store = ParamStore::new(gpu.clone(), &g, cfg.seed)?;
        let train = Executable::compile(gpu.clone(), g, &store)?;
        let eval = Evaluator::compile(gpu.clone(), eg, &store, classes)?;
        let optimizer = Optimizer::new(&store, optim_config(cfg)?)?;
        let inv_temperature = train.graph.find(INV_TEMPERATURE);
        let mut s = Session {
            gpu,
            store,
            train,
            eval,
            optimizer,
            x,
            labels,
            loss,
            inv_temperature,
            temperature: cfg.temp_init + 1.0,
            kappa: 1.0,
            model,
            classes,
        };
        s.set_temperature(s.temperature)?;
        Ok(s)
    }

    /// Sets the attention temperature T of both graphs (no-op for static models).
    pub fn set_temperature(&mut self, t: f32) -> Result<()> {
        self.temperature = t;
        if let Some(id) = self.inv_temperature {
            self.train.write(id, &[1.0 / t])?;
        }
        self.eval.set_temperature(t)
    }

    /// Encodes and submits one training step (no host synchronisation).
    pub fn step(&mut self, batch: &Batch, lr: f32) -> Result<()> {
        self.train.write(self.x, &batch.images)?;
        self.train.write_u32(self.labels, &batch.labels)?;
        self.optimizer.prepare(&self.store, lr);
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.train.encode(&mut pass);
            self.optimizer.encode(&mut pass);
        }
        self.gpu.queue.submit([enc.finish()]);
        Ok(())
    }

    /// (mean loss, accuracy, samples) accumulated on the GPU since the last reset; syncs.
    pub fn train_metrics(&self) -> Result<(f64, f64, usize)> {
        let m = self.store.read(METRICS)?;
        self.gpu.check()?;
        let n = m[2].max(1.0) as f64;
        Ok((m[0] as f64 / n, m[1] as f64 / n, m[2] as usize))
    }

    pub fn reset_train_metrics(&self) -> Result<()> {
        self.store.write(METRICS, &[0.0; 3])
    }

    /// Loss of the last step (syncs).
    pub fn last_loss(&self) -> Result<f32> {
        Ok(self.train.read(self.loss, &self.store)?[0])
    }

    /// Logits of every sample of `set`, in order ([N, classes], row-major).
    pub fn logits(&self, set: &Arc<ImageSet>) -> Result<Vec<f32>> {
        self.eval.logits(&self.store, set)
    }

    /// (mean cross-entropy, accuracy) on `set`.
    pub fn evaluate(&self, set: &Arc<ImageSet>) -> Result<(f64, f64)> {
        let logits = self.logits(set)?;
        Ok(loss_and_accuracy(&logits, &set.labels, self.classes))
    }
}

/// Rejects unknown names and impossible values before any data is loaded.
pub fn validate(cfg: &TrainConfig) -> Result<()> {
    cfg.model_config()?;
    cfg.imp_config()?;
    if !(cfg.temp_init >= 1.0 && cfg.temp_epochs >= 0.0) {
        return Err(Error::Invalid(format!(
            "--temp-init must be ≥ 1 and --temp-epochs ≥ 0 (got {}, {})",
            cfg.temp_init, cfg.temp_epochs
        )));
    }
    let kind = cfg.dataset.split(':').next().unwrap_or_default();
    if !DATASETS.iter().any(|d| d.split(':').next() == Some(kind)) {
        return Err(Error::Invalid(format!(
            "unknown dataset '{}'; valid datasets: {}",
            cfg.dataset,
            DATASETS.join(", ")
        )));
    }
    optim_config(cfg)?;
    schedule(cfg, 1)?;
    if cfg.epochs == 0 || cfg.batch_size == 0 || cfg.eval_batch_size == 0 {
        return Err(Error::Invalid(
            "--epochs and batch sizes must be at least 1".into(),
        ));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return Err(Error::Invalid(format!(
            "--lr must be a positive number, got {}",
            cfg.lr
        )));
    }
    if !(0.0..1.0).contains(&cfg.label_smoothing) {
        return Err(Error::Invalid(format!(
            "--label-smoothing must be in [0, 1), got {}",
            cfg.label_smoothing
        )));
    }
    Ok(())
}

fn schedule(cfg: &TrainConfig, steps_per_epoch: usize) -> Result<Schedule> {
    let decay = match cfg.schedule.as_str() {
        "cosine" => Decay::Cosine,
        "linear" => Decay::Linear,
        "constant" => Decay::Constant,
        "milestones" => Decay::Milestones {
            epochs: cfg.milestones.clone(),
            gamma: cfg.gamma,
        },
        s => {
            return Err(Error::Invalid(format!(
                "unknown schedule '{s}'; valid: cosine, linear, constant, milestones"
            )))
        }
    };
    Ok(Schedule {
        base_lr: cfg.lr,
        warmup_steps: (cfg.warmup_epochs * steps_per_epoch as f32).round() as usize,
        total_steps: cfg.epochs * steps_per_epoch,
        steps_per_epoch,
        decay,
    })
}

/// An epoch's progress bar counting `unit`s (img, ex) with throughput and ETA.
pub(crate) fn progress_bar(
    enabled: bool,
    len: u64,
    epoch: usize,
    epochs: usize,
    unit: &str,
) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            &format!("epoch {{prefix}} [{{bar:28.cyan/blue}}] {{pos}}/{{len}} {unit}  {{per_sec}}  ETA {{eta}}  {{msg}}"),
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// Trains `cfg.model` on `cfg.dataset`, evaluating on the test split after every epoch;
/// writes metrics.jsonl, config.json and model.safetensors (+ optimizer.safetensors) to
/// `cfg.out`. Returns the per-epoch metrics.
pub fn train(gpu: Arc<Gpu>, cfg: &TrainConfig) -> Result<Vec<EpochMetrics>> {
    validate(cfg)?;
    let (mut train_set, mut test_set, source) = load_dataset(
        &cfg.dataset,
        cfg.data_dir.as_deref(),
        FolderOpts {
            input_size: cfg.input_size,
            strict: cfg.strict,
        },
    )?;
    if let Some(n) = cfg.limit_train {
        train_set.truncate(n);
    }
    if let Some(n) = cfg.limit_test {
        test_set.truncate(n);
    }
    if train_set.len() < cfg.batch_size {
        return Err(Error::Invalid(format!(
            "{} training images are fewer than one batch of {}",
            train_set.len(),
            cfg.batch_size
        )));
    }
    let (train_set, test_set) = (Arc::new(train_set), Arc::new(test_set));
    println!("adapter: {}", gpu.describe());
    println!(
        "data: {} from {} ({} train / {} test images, {}x{}x{})",
        cfg.dataset,
        source,
        train_set.len(),
        test_set.len(),
        train_set.channels,
        train_set.height,
        train_set.width
    );
    let t_compile = Instant::now();
    let shape = [train_set.channels, train_set.height, train_set.width];
    let mut s = Session::new(gpu.clone(), cfg, shape, train_set.classes)?;
    println!(
        "model: {} ({} parameters); training graph: {} dispatches/step, peak GPU memory {:.1} MiB; \
         compiled in {:.2} s",
        cfg.model,
        s.store.num_params(),
        s.train.num_dispatches() + 1,
        s.train.peak_bytes() as f64 / (1 << 20) as f64,
        t_compile.elapsed().as_secs_f64()
    );
    if std::env::var_os("PADNET_PROFILE").is_some() {
        s.print_profile(5)?;
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    let config_json = serde_json::to_string_pretty(cfg).expect("config serialises");
    checkpoint::write_atomic(&cfg.out.join("config.json"), config_json.as_bytes())?;

    let steps_per_epoch = train_set.len() / cfg.batch_size;
    let sched = schedule(cfg, steps_per_epoch)?;
    let anneal_steps = (cfg.temp_epochs * steps_per_epoch as f32).round() as usize;
    let (mut history, mut step) = match &cfg.resume {
        Some(dir) => resume(&mut s, dir)?,
        None => (vec![], 0),
    };
    let first_epoch = history.last().map(|m| m.epoch + 1).unwrap_or(1);
    // IMP partitions a fresh model before training (at the initial temperature, as the
    // reference does) or after --imp-after steps; a resumed run keeps its masks.
    let imp = if cfg.resume.is_some() {
        None
    } else {
        cfg.imp_config()?
    };
    let imp_at = imp.as_ref().map(|_| cfg.imp_after.unwrap_or(0));
    let run_imp = |s: &mut Session| -> Result<()> {
        let icfg = imp.as_ref().expect("IMP configured");
        let t = Instant::now();
        println!(
            "IMP: {:?} scores over {} batches, κ = {} ({:?}, {} round(s)) at T = {}",
            icfg.scorer, icfg.batches, icfg.kappa, icfg.scope, icfg.rounds, s.temperature
        );
        let data = crate::imp::ImpData {
            train: &train_set,
            batch: cfg.batch_size,
            smoothing: cfg.label_smoothing,
            temperature: s.temperature,
        };
        let report = crate::imp::run(s.gpu.clone(), &s.store, &s.model, &data, icfg)?;
        report.print();
        println!("IMP took {:.1} s", t.elapsed().as_secs_f64());
        report.save(&cfg.out)?;
        s.kappa = report.kappa;
        Ok(())
    };
    if imp_at == Some(0) {
        run_imp(&mut s)?;
    }
    if first_epoch > cfg.epochs {
        println!(
            "{} already holds {} epochs; nothing to do",
            cfg.resume.as_ref().unwrap().display(),
            first_epoch - 1
        );
    }
    let log_every = cfg.log_every.max(1);
    for epoch in first_epoch..=cfg.epochs {
        s.reset_train_metrics()?;
        let bar = progress_bar(
            cfg.progress,
            (steps_per_epoch * cfg.batch_size) as u64,
            epoch,
            cfg.epochs,
            "img",
        );
        let t0 = Instant::now();
        let shuffle_seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64);
        let mut lr = sched.lr(step);
        for (i, batch) in data::batches(train_set.clone(), cfg.batch_size, Some(shuffle_seed), 4)
            .into_iter()
            .enumerate()
        {
            if let Some(e) = &batch.error {
                return Err(Error::Invalid(e.clone()));
            }
            lr = sched.lr(step);
            s.set_temperature(temperature(cfg.temp_init, anneal_steps, step))?;
            if imp_at == Some(step) && step > 0 {
                run_imp(&mut s)?;
            }
            s.step(&batch, lr)?;
            step += 1;
            bar.inc(cfg.batch_size as u64);
            if (i + 1) % log_every == 0 {
                let (loss, acc, _) = s.train_metrics()?;
                if !loss.is_finite() {
                    return Err(Error::Invalid(format!(
                        "training diverged at epoch {epoch}, step {step}: loss {loss} (try a lower --lr)"
                    )));
                }
                bar.set_message(format!(
                    "loss {loss:.4}  acc {:.2}%  lr {lr:.4}",
                    100.0 * acc
                ));
            }
        }
        crate::eval::warn_decode_failures(&train_set);
        let (train_loss, train_acc, seen) = s.train_metrics()?;
        let train_secs = t0.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let (test_loss, test_acc) = s.evaluate(&test_set)?;
        let m = EpochMetrics {
            epoch,
            train_loss,
            train_acc,
            test_loss,
            test_acc,
            lr,
            train_img_per_s: seen as f64 / train_secs,
            epoch_seconds: t0.elapsed().as_secs_f64(),
        };
        println!(
            "epoch {epoch}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.0} img/s, {:.1} s",
            cfg.epochs,
            m.train_loss,
            100.0 * m.train_acc,
            m.test_loss,
            100.0 * m.test_acc,
            m.train_img_per_s,
            m.epoch_seconds
        );
        history.push(m);
        save_run(
            &s,
            (&train_set.mean, &train_set.std),
            cfg,
            &history,
            step,
            &shape,
            train_set.classes,
        )?;
    }
    Ok(history)
}

impl Session {
    /// The training graph's profile (see [`print_profile`]) and the optimizer step's time.
    pub fn print_profile(&self, reps: usize) -> Result<()> {
        print_profile(&self.train, reps)?;
        print_optimizer_profile(&self.optimizer, &self.store, reps)
    }
}

/// Prints the time of one optimizer step alone (for `PADNET_PROFILE=1`).
pub fn print_optimizer_profile(opt: &Optimizer, store: &ParamStore, reps: usize) -> Result<()> {
    println!(
        "optimizer step ({:.1}M parameters): {:.2} ms",
        store.num_params() as f64 / 1e6,
        opt.profile(&store.gpu, reps)?
    );
    Ok(())
}

/// Prints the slowest dispatches of one run of `exe` (each timed alone, `reps` times), and
/// the time per op kind. For `PADNET_PROFILE=1`.
pub fn print_profile(exe: &Executable, reps: usize) -> Result<()> {
    let rows = exe.profile(reps)?;
    let total: f64 = rows.iter().map(|r| r.1).sum();
    let mut by_kind: HashMap<String, f64> = HashMap::new();
    for (label, ms) in &rows {
        // "opname#node shader:entry" -> "opname shader:entry"
        let mut parts = label.split_whitespace();
        let op = parts.next().unwrap_or("").split('#').next().unwrap_or("");
        *by_kind
            .entry(format!("{op} {}", parts.next().unwrap_or("")))
            .or_default() += ms;
    }
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "profile of one run ({total:.1} ms in {} dispatches), by kind:",
        rows.len()
    );
    for (kind, ms) in kinds.iter().take(16) {
        println!("  {kind:<44} {ms:9.2} ms  {:5.1}%", 100.0 * ms / total);
    }
    let mut slowest = rows.clone();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("slowest dispatches:");
    if let Some(path) = std::env::var_os("PADNET_PROFILE_CSV") {
        let lines: Vec<String> = rows.iter().map(|(l, ms)| format!("{l},{ms:.3}")).collect();
        std::fs::write(&path, lines.join("\n")).map_err(|e| Error::io(&path, e))?;
    }
    for (label, ms) in slowest.iter().take(12) {
        println!("  {label:<60} {ms:9.2} ms");
    }
    Ok(())
}

/// Loads a saved run into `s`: weights and statistics, optimizer state, temperature; returns
/// its metrics history and global step.
fn resume(s: &mut Session, dir: &Path) -> Result<(Vec<EpochMetrics>, usize)> {
    let model_path = dir.join("model.safetensors");
    let (tensors, meta) = checkpoint::load(&model_path)?;
    if crate::export::is_deploy(&meta) {
        return Err(Error::data(
            &model_path,
            "is a deploy file (exported for inference); training resumes from training checkpoints",
        ));
    }
    for (key, want) in [
        ("arch", s.model.arch.clone()),
        ("mode", s.model.dynamic.mode.name().to_string()),
    ] {
        if meta.get(key) != Some(&want) {
            return Err(Error::data(
                &model_path,
                format!("{key} is {:?}, this run is '{want}'", meta.get(key)),
            ));
        }
    }
    checkpoint::into_store(&s.store, &tensors, &model_path)?;
    let opt_path = dir.join("optimizer.safetensors");
    let (opt, opt_meta) = checkpoint::load(&opt_path)?;
    let opt_step: u64 = opt_meta
        .get("step")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let state: Vec<(String, Vec<f32>)> = opt.into_iter().map(|(k, (_, v))| (k, v)).collect();
    s.optimizer
        .load_state(&s.store, &state, opt_step)
        .map_err(|e| Error::data(&opt_path, e.to_string()))?;
    let bad = |k: &str| Error::data(&model_path, format!("metadata '{k}' missing or invalid"));
    let step: usize = meta
        .get("step")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("step"))?;
    let t: f32 = meta
        .get("temperature")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("temperature"))?;
    s.set_temperature(t)?;
    let metrics_path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
    let history = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::data(&metrics_path, format!("line {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<EpochMetrics>>>()?;
    println!(
        "resumed {} at epoch {}, step {step}",
        dir.display(),
        history.len()
    );
    Ok((history, step))
}

/// metrics.jsonl (one line per epoch), model.safetensors and optimizer.safetensors.
fn save_run(
    s: &Session,
    (mean, std): (&[f32], &[f32]),
    cfg: &TrainConfig,
    history: &[EpochMetrics],
    step: usize,
    shape: &[usize; 3],
    classes: usize,
) -> Result<()> {
    checkpoint::write_jsonl(&cfg.out.join("metrics.jsonl"), history)?;
    let tensors = checkpoint::from_store(&s.store)?;
    let epoch = history.last().map(|m| m.epoch).unwrap_or(0);
    let m = &s.model;
    let meta: HashMap<String, String> = [
        ("format", "padnet-wgpu".to_string()),
        ("model", cfg.model.clone()),
        ("arch", m.arch.clone()),
        ("mode", m.dynamic.mode.name().to_string()),
        ("width", m.width.to_string()),
        ("stem", m.stem.name().to_string()),
        ("kernels", m.dynamic.kernels.to_string()),
        ("reduction", m.dynamic.reduction.to_string()),
        ("lambda", m.dynamic.lambda.name().to_string()),
        ("temperature", s.temperature.to_string()),
        ("kappa", s.kappa.to_string()),
        ("dataset", cfg.dataset.clone()),
        ("epoch", epoch.to_string()),
        ("step", step.to_string()),
        ("input_shape", format!("{shape:?}")),
        ("classes", classes.to_string()),
        ("mean", format!("{:?}", mean)),
        ("std", format!("{:?}", std)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    checkpoint::save(&cfg.out.join("model.safetensors"), &tensors, meta)?;
    let opt: checkpoint::Tensors = s
        .optimizer
        .state(&s.store)?
        .into_iter()
        .map(|(n, d)| (n, (vec![d.len()], d)))
        .collect();
    let opt_meta = HashMap::from([("step".to_string(), s.optimizer.step.to_string())]);
    checkpoint::save(&cfg.out.join("optimizer.safetensors"), &opt, opt_meta)
}

//! The one training loop, shared by every task (image classification, text classification
//! and regression): learning-rate schedule, temperature annealing, the IMP hook, progress bar,
//! per-epoch evaluation, saving and resume. A task ([`Task`]) supplies its data, its compiled
//! model, its metrics and its checkpoint metadata (docs/architecture.md, "One trainer").

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::executor::compile::{Executable, ParamStore};
use crate::executor::optim::{Optimizer, Schedule};
use crate::imp::ImpReport;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Name of the on-GPU training-metric accumulator (Σ loss, #correct, #samples) that every
/// task's loss op adds into; underscore-prefixed state is bookkeeping, never checkpointed.
pub const TRAIN_METRICS: &str = "_train_metrics";

/// How the loop runs, independent of the task.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    pub epochs: usize,
    /// Read training metrics back every N steps (each read synchronises with the GPU).
    pub log_every: usize,
    pub progress: bool,
    pub out: PathBuf,
    /// Continue the run saved in this directory.
    pub resume: Option<PathBuf>,
    /// Run IMP before this training step (0: before training); None: no IMP.
    pub imp_at: Option<usize>,
    /// Attention temperature annealing (docs/method.md §3); None for models without one.
    pub anneal: Option<Anneal>,
}

/// Temperature annealed linearly from `t0` to 1 over `epochs` epochs.
#[derive(Clone, Copy, Debug)]
pub struct Anneal {
    pub t0: f32,
    pub epochs: f32,
}

/// What one epoch of training measured, handed to the task to build its metrics line.
#[derive(Clone, Copy, Debug)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    /// The learning rate of the epoch's last step.
    pub lr: f32,
    /// Task units (images, real tokens) per second of training.
    pub throughput: f64,
    pub train_seconds: f64,
    pub started: Instant,
}

/// One epoch's batches, produced on demand (images are decoded on background threads).
pub type Batches<B> = Box<dyn Iterator<Item = Result<B>>>;

/// A training task as the loop sees it.
pub trait Task {
    type Batch;
    /// One line of metrics.jsonl.
    type Metrics: Serialize + DeserializeOwned + Clone;
    /// What the progress bar counts ("img", "ex").
    const UNIT: &'static str;
    /// How the loop runs this task's configuration.
    fn loop_config(&self) -> LoopConfig;
    fn batch_size(&self) -> usize;
    fn steps_per_epoch(&self) -> usize;
    fn store(&self) -> &ParamStore;
    /// The parameter store and the optimizer that updates it.
    fn trainable(&mut self) -> (&ParamStore, &mut Optimizer);
    /// The learning-rate schedule of the whole run.
    fn schedule(&self) -> Result<Schedule>;
    /// Config, model description and other files a run directory holds besides the
    /// checkpoint and metrics; written once, when the run starts.
    fn write_run_files(&self, out: &Path) -> Result<()>;
    /// The shuffled batches of `epoch` (1-based), `steps_per_epoch` of them, assembled as
    /// they are taken. Called for every epoch in order, from the first one the run trains.
    fn batches(&mut self, epoch: usize) -> Result<Batches<Self::Batch>>;
    /// Encodes and submits one training step (no host synchronisation); returns the units
    /// it processed, for the throughput.
    fn step(&mut self, batch: &Self::Batch, lr: f32) -> Result<usize>;
    /// Sets the attention temperature (no-op for models without one).
    fn set_temperature(&mut self, _t: f32) -> Result<()> {
        Ok(())
    }
    /// Iterative Mode Partition before training step `step`.
    fn imp(&mut self, step: usize) -> Result<ImpReport>;
    /// Evaluates after an epoch: the metrics line, and how to print it.
    fn evaluate(&mut self, stats: &EpochStats) -> Result<(Self::Metrics, String)>;
    /// Checkpoint metadata beyond format, epoch and step.
    fn metadata(&self) -> Vec<(&'static str, String)>;
    /// Checks a saved run's metadata against this task and restores its run state
    /// (temperature, κ) before the weights are loaded.
    fn restore(&mut self, meta: &HashMap<String, String>, path: &Path) -> Result<()>;
    /// Per-kernel profile of the training step (`PADNET_PROFILE=1`).
    fn print_profile(&self) -> Result<()>;
    /// Runs once after each epoch's training, before its evaluation (warnings).
    fn after_epoch(&self) {}
}

/// Trains `task` for its `epochs`, evaluating after every epoch and saving the run into its
/// `out` (metrics.jsonl, model.safetensors, optimizer.safetensors and the task's files).
pub fn fit<T: Task>(task: &mut T) -> Result<Vec<T::Metrics>> {
    let cfg = &task.loop_config();
    if cfg.epochs == 0 {
        return Err(Error::Invalid("--epochs must be at least 1".into()));
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    task.write_run_files(&cfg.out)?;
    let steps_per_epoch = task.steps_per_epoch();
    let sched = task.schedule()?;
    let anneal_steps = cfg
        .anneal
        .map(|a| (a.epochs * steps_per_epoch as f32).round() as usize);
    let (mut history, mut step) = match &cfg.resume {
        Some(dir) => resume(task, dir)?,
        None => (vec![], 0),
    };
    let resumed_at = step;
    // IMP partitions before training (at the initial temperature, as the reference does)
    // or before step --imp-after; a resumed run keeps the masks it already partitioned.
    let imp_at = cfg
        .imp_at
        .filter(|&at| at > resumed_at || (at == 0 && cfg.resume.is_none()));
    let run_imp = |task: &mut T, step: usize| -> Result<()> {
        let report = task.imp(step)?;
        report.print();
        report.save(&cfg.out)
    };
    if imp_at == Some(0) {
        run_imp(task, 0)?;
    }
    let first_epoch = history.len() + 1;
    if first_epoch > cfg.epochs {
        println!(
            "{} already holds {} epochs; nothing to do",
            cfg.resume.as_deref().unwrap_or(&cfg.out).display(),
            history.len()
        );
    }
    let log_every = cfg.log_every.max(1);
    let batch_size = task.batch_size();
    for epoch in first_epoch..=cfg.epochs {
        let started = Instant::now();
        reset_train_metrics(task.store())?;
        let bar = progress_bar(
            cfg.progress,
            (steps_per_epoch * batch_size) as u64,
            epoch,
            cfg.epochs,
            T::UNIT,
        );
        let (mut units, mut lr) = (0usize, sched.lr(step));
        for (i, batch) in task.batches(epoch)?.enumerate() {
            let batch = batch?;
            lr = sched.lr(step);
            if let (Some(a), Some(n)) = (cfg.anneal, anneal_steps) {
                task.set_temperature(temperature(a.t0, n, step))?;
            }
            if imp_at == Some(step) && step > 0 {
                bar.suspend(|| run_imp(task, step))?;
            }
            units += task.step(&batch, lr)?;
            step += 1;
            bar.inc(batch_size as u64);
            if (i + 1) % log_every == 0 || i + 1 == steps_per_epoch {
                let (loss, acc, _) = train_metrics(task.store())?;
                if !loss.is_finite() {
                    return Err(Error::Invalid(format!(
                        "training diverged at epoch {epoch}, step {step}: loss {loss} (try a lower --lr)"
                    )));
                }
                bar.set_message(format!(
                    "loss {loss:.4}  acc {:.2}%  lr {lr:.2e}",
                    100.0 * acc
                ));
            }
        }
        task.after_epoch();
        let (train_loss, train_acc, _) = train_metrics(task.store())?;
        let train_seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if epoch == first_epoch && std::env::var_os("PADNET_PROFILE").is_some() {
            task.print_profile()?;
        }
        let stats = EpochStats {
            epoch,
            train_loss,
            train_acc,
            lr,
            throughput: units as f64 / train_seconds,
            train_seconds,
            started,
        };
        let (metrics, line) = task.evaluate(&stats)?;
        println!("epoch {epoch}/{}: {line}", cfg.epochs);
        history.push(metrics);
        save(task, &cfg.out, &history, step)?;
    }
    Ok(history)
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

/// Checks that a saved run's metadata holds the `expected` values: a run resumes only into
/// the same model and task. Errors name the key, the saved value and this run's.
pub fn check_metadata(
    meta: &HashMap<String, String>,
    path: &Path,
    expected: &[(&str, String)],
) -> Result<()> {
    for (key, want) in expected {
        if meta.get(*key) != Some(want) {
            return Err(Error::data(
                path,
                format!("{key} is {:?}, this run is '{want}'", meta.get(*key)),
            ));
        }
    }
    Ok(())
}

/// (mean loss, accuracy, samples) accumulated on the GPU since the last reset; syncs.
pub fn train_metrics(store: &ParamStore) -> Result<(f64, f64, usize)> {
    let m = store.read(TRAIN_METRICS)?;
    store.gpu.check()?;
    let n = m[2].max(1.0) as f64;
    Ok((m[0] as f64 / n, m[1] as f64 / n, m[2] as usize))
}

pub fn reset_train_metrics(store: &ParamStore) -> Result<()> {
    store.write(TRAIN_METRICS, &[0.0; 3])
}

/// metrics.jsonl (one line per epoch), model.safetensors and optimizer.safetensors.
fn save<T: Task>(task: &mut T, out: &Path, history: &[T::Metrics], step: usize) -> Result<()> {
    checkpoint::write_jsonl(&out.join("metrics.jsonl"), history)?;
    let tensors = checkpoint::from_store(task.store())?;
    let mut meta: HashMap<String, String> = task
        .metadata()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    meta.insert("format".into(), checkpoint::TRAIN_FORMAT.into());
    meta.insert("epoch".into(), history.len().to_string());
    meta.insert("step".into(), step.to_string());
    checkpoint::save(&out.join("model.safetensors"), &tensors, meta)?;
    let (store, opt) = task.trainable();
    let state: checkpoint::Tensors = opt
        .state(store)?
        .into_iter()
        .map(|(n, d)| (n, (vec![d.len()], d)))
        .collect();
    let opt_meta = HashMap::from([("step".to_string(), opt.step.to_string())]);
    checkpoint::save(&out.join("optimizer.safetensors"), &state, opt_meta)
}

/// Loads a saved run into `task`: weights and statistics, optimizer state and the task's run
/// state; returns its metrics history and global step.
fn resume<T: Task>(task: &mut T, dir: &Path) -> Result<(Vec<T::Metrics>, usize)> {
    let model_path = dir.join("model.safetensors");
    let (tensors, meta) = checkpoint::load(&model_path)?;
    if crate::checkpoint::is_deploy(&meta) {
        return Err(Error::data(
            &model_path,
            "is a deploy file (exported for inference); training resumes from training checkpoints",
        ));
    }
    task.restore(&meta, &model_path)?;
    checkpoint::into_store(task.store(), &tensors, &model_path)?;
    let opt_path = dir.join("optimizer.safetensors");
    let (opt, opt_meta) = checkpoint::load(&opt_path)?;
    let opt_step: u64 = opt_meta
        .get("step")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let state: Vec<(String, Vec<f32>)> = opt.into_iter().map(|(k, (_, v))| (k, v)).collect();
    let (store, opt) = task.trainable();
    opt.load_state(store, &state, opt_step)
        .map_err(|e| Error::data(&opt_path, e.to_string()))?;
    let step: usize = meta
        .get("step")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::data(&model_path, "metadata 'step' missing or invalid"))?;
    let metrics_path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
    let history = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::data(&metrics_path, format!("line {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<T::Metrics>>>()?;
    println!(
        "resumed {} at epoch {}, step {step}",
        dir.display(),
        history.len()
    );
    Ok((history, step))
}

/// An epoch's progress bar counting `unit`s (img, ex) with throughput and ETA.
pub fn progress_bar(
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

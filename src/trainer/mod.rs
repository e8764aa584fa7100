//! The one training loop, shared by every task (image classification, text classification
//! and regression): learning-rate schedule, temperature annealing, the IMP hook, progress bar,
//! per-epoch evaluation, saving and resume. A task ([`Task`]) supplies its data, its compiled
//! model, its metrics and its checkpoint metadata (docs/architecture.md, "One trainer").

mod curves;
mod saving;

pub use saving::check_metadata;

use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::executor::optim::{Optimizer, Schedule};
use crate::executor::ParamStore;
use crate::imp::ImpReport;
use crate::run_dir::{Existing, RunDir};
use saving::LoopState;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Name of the on-GPU training-metric accumulator (Σ loss, #correct, #samples) that every
/// task's loss op adds into; underscore-prefixed state is bookkeeping, never checkpointed.
pub const TRAIN_METRICS: &str = "_train_metrics";

/// Options of the loop that every task's configuration holds (flattened into its
/// config.json). They may differ between a run and its resumption (but for `precision`); no
/// other option may, unless `force`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct RunOptions {
    pub epochs: usize,
    /// Read training metrics back every N steps (each read synchronises with the GPU).
    pub log_every: usize,
    /// The run directory.
    pub out: PathBuf,
    pub progress: bool,
    /// Continue the run in `out`.
    pub resume: bool,
    /// Replace the run `out` holds.
    pub overwrite: bool,
    /// Resume although options differ from the saved run's.
    pub force: bool,
    /// Also commit a checkpoint every N training steps (always: after every epoch).
    pub save_every: Option<usize>,
    /// Check every node's output for NaN/±Inf in each step, naming the first op that
    /// produces one (slow; for finding where a run diverges).
    pub detect_anomaly: bool,
    /// What the forward pass's GEMMs and convolutions multiply in (gradients always f32).
    /// Absent in runs made before it was kept: f32.
    #[serde(default)]
    pub precision: crate::gpu::tuning::Precision,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            epochs: 2,
            log_every: 20,
            out: PathBuf::from("runs/latest"),
            progress: true,
            resume: false,
            overwrite: false,
            force: false,
            save_every: None,
            detect_anomaly: false,
            precision: Default::default(),
        }
    }
}

/// How the loop runs, independent of the task.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    pub run: RunOptions,
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
    /// Every option of the run, written to config.json (with the loop's `ranks`) and compared
    /// on `--resume`.
    fn config_json(&self) -> serde_json::Value;
    /// Files a run directory holds besides config.json and the checkpoints (the model's own
    /// description); written when the run starts.
    fn write_run_files(&self, _out: &Path) -> Result<()> {
        Ok(())
    }
    /// The shuffled batches of `epoch` (1-based) from batch `skip` on (`steps_per_epoch` in
    /// all), assembled as they are taken. Called for every epoch in order, from the first
    /// one the run trains.
    fn batches(&mut self, epoch: usize, skip: usize) -> Result<Batches<Self::Batch>>;
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
    /// This rank's handle on its data-parallel group (docs/distributed.md); one rank alone
    /// unless the task was built for several.
    fn comm(&self) -> Arc<Comm> {
        Arc::new(Comm::solo())
    }
}

/// Set by the first Ctrl-C (SIGINT, SIGTERM): the loop finishes its step, commits a
/// checkpoint and returns [`Error::Interrupted`].
static STOP: AtomicBool = AtomicBool::new(false);

/// Asks the running loop to stop after its current step (called from a signal handler);
/// returns whether a stop had been asked for already.
pub fn request_stop() -> bool {
    STOP.swap(true, Ordering::SeqCst)
}

fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Opens (locks) the run directory `run.out` for a run, refusing one that holds a run unless
/// it is resumed or overwritten. Called before the task is built, so that a refusal comes at
/// once.
pub fn open_run(run: &RunOptions) -> Result<RunDir> {
    if run.epochs == 0 {
        return Err(Error::Invalid("--epochs must be at least 1".into()));
    }
    if run.save_every == Some(0) {
        return Err(Error::Invalid("--save-every must be at least 1".into()));
    }
    let existing = match (run.resume, run.overwrite) {
        (true, _) => Existing::Resume,
        (false, true) => Existing::Overwrite,
        (false, false) => Existing::Refuse,
    };
    RunDir::open(&run.out, existing)
}

/// [`open_run`] for the ranks of `comm`: rank 0 opens the directory (so a refusal comes at
/// once, from it), then every other rank reads it as a follower ([`RunDir::follower`]).
pub fn open_run_ranks(run: &RunOptions, comm: &Comm) -> Result<RunDir> {
    let dir = match comm.is_root() {
        true => Some(open_run(run)?),
        false => None,
    };
    comm.barrier()?;
    Ok(dir.unwrap_or_else(|| RunDir::follower(&run.out)))
}

/// Trains `task` for its `epochs` in the run directory `dir` ([`open_run`] of its options),
/// evaluating after every epoch and committing a checkpoint (model, optimizer, metrics,
/// loop state) after each, after every `save_every` steps and when asked to stop
/// (docs/architecture.md, "Runs are never lost").
///
/// With several data-parallel ranks, every rank runs this loop on its shard of each global
/// batch; rank 0 alone prints, saves and draws, and every rank resumes from its checkpoint.
pub fn fit<T: Task>(task: &mut T, dir: &RunDir) -> Result<Vec<T::Metrics>> {
    let comm = task.comm();
    let root = comm.is_root();
    let cfg = &task.loop_config();
    let run = &cfg.run;
    let mut config = task.config_json();
    // Ranks may change on resume; the global batch may not (saving::check_options).
    config["ranks"] = comm.size().into();
    if run.resume {
        saving::check_options(dir, &config, run.force)?;
    }
    // config.json is committed with every checkpoint: it always describes the weights.
    let config = serde_json::to_string_pretty(&config).expect("JSON values serialise");
    if root {
        task.write_run_files(dir.path())?;
    }
    let steps_per_epoch = task.steps_per_epoch();
    let sched = task.schedule()?;
    let anneal_steps = cfg
        .anneal
        .map(|a| (a.epochs * steps_per_epoch as f32).round() as usize);
    let (mut history, resumed) = match run.resume {
        true => saving::resume(task, dir, steps_per_epoch)?,
        false => (vec![], LoopState::start()),
    };
    let mut step = resumed.step;
    // IMP partitions before training (at the initial temperature, as the reference does)
    // or before step --imp-after; a resumed run keeps the masks it already partitioned.
    let imp_at = cfg
        .imp_at
        .filter(|&at| at > resumed.step || (at == 0 && !run.resume));
    let run_imp = |task: &mut T, step: usize| -> Result<()> {
        let report = task.imp(step)?;
        if !root {
            return Ok(());
        }
        report.print();
        report.save(dir.path())
    };
    if imp_at == Some(0) {
        run_imp(task, 0)?;
    }
    let first_epoch = history.len() + 1;
    if first_epoch > run.epochs && root {
        println!(
            "{} already holds {} epochs; nothing to do",
            run.out.display(),
            history.len()
        );
    }
    let log_every = run.log_every.max(1);
    // Units (images, examples) per global step: every rank's batch.
    let batch_size = task.batch_size() * comm.size();
    for epoch in first_epoch..=run.epochs {
        let started = Instant::now();
        // What IMP or resuming summed is not this epoch's training.
        comm.take_seconds();
        // A run resumed mid-epoch goes on with that epoch's batches and metric sums.
        let skip = if epoch == first_epoch {
            resumed.batches
        } else {
            0
        };
        if skip > 0 {
            // The saved sums are every rank's: one rank carries them on.
            let sums = match root {
                true => resumed.train_metrics.clone(),
                false => vec![0.0; 3],
            };
            task.store().write(TRAIN_METRICS, &sums)?;
        } else {
            reset_train_metrics(task.store())?;
        }
        let bar = progress_bar(
            run.progress && root,
            (steps_per_epoch * batch_size) as u64,
            epoch,
            run.epochs,
            T::UNIT,
        );
        bar.set_position((skip * batch_size) as u64);
        let (mut units, mut lr) = (0usize, sched.lr(step));
        for (i, batch) in (skip..).zip(task.batches(epoch, skip)?) {
            let batch = batch?;
            lr = sched.lr(step);
            if let (Some(a), Some(n)) = (cfg.anneal, anneal_steps) {
                task.set_temperature(temperature(a.t0, n, step))?;
            }
            if imp_at == Some(step) && step > 0 {
                bar.suspend(|| run_imp(task, step))?;
            }
            units += task.step(&batch, lr)? * comm.size();
            step += 1;
            bar.inc(batch_size as u64);
            let last = i + 1 == steps_per_epoch;
            if (i + 1) % log_every == 0 || last {
                let (loss, acc) = guard(task, dir, step, &comm)?;
                bar.set_message(format!(
                    "loss {loss:.4}  acc {:.2}%  lr {lr:.2e}",
                    100.0 * acc
                ));
            }
            let stop = any_rank(&comm, stop_requested())?;
            if !last && (stop || run.save_every.is_some_and(|n| step % n == 0)) {
                let state = LoopState {
                    step,
                    epochs: history.len(),
                    batches: i + 1,
                    train_metrics: global_train_sums(task.store(), &comm)?,
                };
                if root {
                    bar.suspend(|| saving::save(task, dir, &config, &history, &state))?;
                }
                if stop {
                    bar.finish_and_clear();
                    return Err(interrupted(dir, step));
                }
            }
        }
        task.after_epoch();
        let (train_loss, train_acc, _) = metric_means(&global_train_sums(task.store(), &comm)?);
        let train_seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let trained = steps_per_epoch - skip;
        let sums_ms = 1e3 * comm.take_seconds() / trained.max(1) as f64;
        if epoch == first_epoch && root && crate::executor::profile::wanted() {
            task.print_profile()?;
            if comm.size() > 1 {
                println!(
                    "communication: {sums_ms:.1} ms/step in sums over {} ranks (waiting for the other ranks included)",
                    comm.size()
                );
            }
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
        history.push(metrics);
        if root {
            let comm_line = match comm.size() {
                1 => String::new(),
                n => format!(" | {n} ranks, {sums_ms:.1} ms/step in sums"),
            };
            println!("epoch {epoch}/{}: {line}{comm_line}", run.epochs);
            let state = LoopState::after_epoch(step, history.len());
            saving::save(task, dir, &config, &history, &state)?;
        }
        if any_rank(&comm, stop_requested())? && epoch < run.epochs {
            return Err(interrupted(dir, step));
        }
    }
    Ok(history)
}

/// The non-finite guard, at every metrics read-back and before every save: the optimizer's
/// flag (the first step that met a NaN/±Inf gradient or parameter) and the epoch's training
/// loss so far. Returns that loss and accuracy.
fn guard<T: Task>(task: &mut T, dir: &RunDir, step: usize, comm: &Comm) -> Result<(f64, f64)> {
    let (loss, acc, _) = metric_means(&global_train_sums(task.store(), comm)?);
    let (store, opt) = task.trainable();
    let diverged = |step: u64, what: &str| Error::NonFinite {
        step,
        what: what.into(),
        dir: dir.path().to_path_buf(),
    };
    if let Some(bad) = opt.first_non_finite(&store.gpu)? {
        return Err(diverged(bad, "a gradient or parameter"));
    }
    if !loss.is_finite() {
        return Err(diverged(step as u64, "the training loss"));
    }
    Ok((loss, acc))
}

fn interrupted(dir: &RunDir, step: usize) -> Error {
    Error::Interrupted {
        step,
        dir: dir.path().to_path_buf(),
    }
}

/// A configuration as JSON, numbers as written: through text, so that an `f32` 0.05 stays
/// 0.05 (a direct `to_value` widens it to 0.05000000074505806).
pub fn options_json<C: Serialize>(config: &C) -> serde_json::Value {
    let text = serde_json::to_string(config).expect("configurations serialise");
    serde_json::from_str(&text).expect("serde_json reads what it wrote")
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

/// (mean loss, accuracy, samples) accumulated on the GPU since the last reset; syncs.
pub fn train_metrics(store: &ParamStore) -> Result<(f64, f64, usize)> {
    Ok(metric_means(&global_train_sums(store, Comm::alone())?))
}

/// The training-metric sums (Σ loss, #correct, #samples) of every rank; syncs.
fn global_train_sums(store: &ParamStore, comm: &Comm) -> Result<Vec<f32>> {
    let mut m = store.read(TRAIN_METRICS)?;
    store.gpu.check()?;
    comm.sum(&mut m)?;
    Ok(m)
}

/// (mean loss, accuracy, samples) from the sums of [`global_train_sums`].
fn metric_means(m: &[f32]) -> (f64, f64, usize) {
    let n = m[2].max(1.0) as f64;
    (m[0] as f64 / n, m[1] as f64 / n, m[2] as usize)
}

/// Whether `flag` is set on any rank (a stop must be taken by all ranks at the same step).
fn any_rank(comm: &Comm, flag: bool) -> Result<bool> {
    let mut v = [flag as u8 as f32];
    comm.sum(&mut v)?;
    Ok(v[0] > 0.0)
}

pub fn reset_train_metrics(store: &ParamStore) -> Result<()> {
    store.write(TRAIN_METRICS, &[0.0; 3])
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

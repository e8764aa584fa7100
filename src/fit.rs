//! A training run of either kind of model — images ([`ImageTask`]) or text ([`TextTask`]) —
//! and fitting it as one rank: the one place `train` and `experiment` both go through
//! (docs/distributed.md for the ranks). Above the tasks and the trainer, which it joins.

use crate::dist::{Adapter, Comm};
use crate::error::Result;
use crate::run_dir::RunDir;
use crate::text::{TextEpochMetrics, TextTask, TextTrainConfig};
use crate::train::{EpochMetrics, ImageTask, TrainConfig};
use crate::trainer::{fit, open_run_ranks, RunOptions, Task};
use std::sync::Arc;

/// A training run's typed configuration: which task, with its settings.
#[derive(Clone, Debug)]
pub enum RunConfig {
    Image(TrainConfig),
    Text(TextTrainConfig),
}

/// The metrics history one rank's training loop returns, per kind of model.
pub enum History {
    Image(Vec<EpochMetrics>),
    Text(Vec<TextEpochMetrics>),
}

/// What a finished run leaves besides its directory.
pub struct Fitted {
    pub history: History,
    /// Trainable parameters of the model.
    pub params: usize,
}

impl History {
    /// The last epoch's score on the evaluation split: test accuracy for images, dev
    /// accuracy (classification) or Pearson's r (regression) for text; None before any epoch.
    pub fn last_score(&self) -> Option<f64> {
        match self {
            History::Image(h) => h.last().map(|m| m.test_acc),
            History::Text(h) => h
                .last()
                .map(|m| m.dev.accuracy.or(m.dev.pearson).unwrap_or(f64::NAN)),
        }
    }
}

impl RunConfig {
    /// The options of the run itself (directory, epochs, checkpoints).
    pub fn run(&self) -> &RunOptions {
        match self {
            RunConfig::Image(cfg) => &cfg.run,
            RunConfig::Text(cfg) => &cfg.run,
        }
    }

    /// Trains this run as the rank `comm` on `adapter`: rank 0 opens (locks, refuses or
    /// overwrites) the run directory and alone writes to it.
    pub fn fit_rank(&self, adapter: Adapter, comm: Arc<Comm>) -> Result<Fitted> {
        let dir = open_run_ranks(self.run(), &comm)?;
        if comm.is_root() && !self.run().resume {
            println!("run directory {}", self.run().out.display());
        }
        let gpu = adapter.open()?;
        match self {
            RunConfig::Image(cfg) => fit_task(
                &mut ImageTask::new_rank(gpu, cfg, comm)?,
                &dir,
                History::Image,
            ),
            RunConfig::Text(cfg) => fit_task(
                &mut TextTask::new_rank(gpu, cfg, comm)?,
                &dir,
                History::Text,
            ),
        }
    }
}

/// Runs the training loop of `task` in `dir`; `history` names its kind of metrics.
fn fit_task<T: Task>(
    task: &mut T,
    dir: &RunDir,
    history: impl FnOnce(Vec<T::Metrics>) -> History,
) -> Result<Fitted> {
    let history = history(fit(task, dir)?);
    Ok(Fitted {
        history,
        params: task.store().num_params(),
    })
}

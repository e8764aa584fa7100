//! An image run's configuration: every option of `train` for images, its defaults, the
//! checks made before any data is loaded, and what follows from it (optimizer, learning-rate
//! schedule, temperature annealing, IMP settings, model).

use crate::data;
use crate::error::{Error, Result};
use crate::executor::optim::{OptimConfig, OptimKind, OptimizerKind, Schedule, ScheduleKind};
use crate::kernels::dynconv::Lambda;
use crate::models::{ModelConfig, Stem};
use crate::names::Named;
use crate::nn::dynamic::{ConvMode, DynConfig};
use crate::trainer::RunOptions;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize)]
pub struct TrainConfig {
    pub model: String,
    /// static, dynamic (DY-Conv) or pad (PAD-Conv) block convolutions.
    pub mode: ConvMode,
    pub width: f32,
    pub stem: Stem,
    pub kernels: usize,
    pub reduction: usize,
    pub lambda: Lambda,
    /// Attention temperature annealed from `temp_init` to 1 over `temp_epochs` epochs (None:
    /// [`default_anneal_epochs`]; docs/method.md §3).
    pub temp_init: f32,
    pub temp_epochs: Option<f32>,
    pub dataset: String,
    pub data_dir: Option<PathBuf>,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub optimizer: OptimizerKind,
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    pub schedule: ScheduleKind,
    pub milestones: Vec<usize>,
    pub gamma: f32,
    pub warmup_epochs: f32,
    pub label_smoothing: f32,
    /// With several data-parallel ranks, BatchNorm normalises each rank's batch by its own
    /// statistics (as DDP without SyncBatchNorm; rank 0's running statistics are the ones
    /// kept) instead of the global batch's (SyncBN, the default).
    pub local_bn: bool,
    pub seed: u64,
    pub limit_train: Option<usize>,
    pub limit_test: Option<usize>,
    /// Epochs, run directory, resume, saving and logging.
    #[serde(flatten)]
    pub run: RunOptions,
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
            mode: ConvMode::Static,
            width: 1.0,
            stem: Stem::Imagenet,
            kernels: 4,
            reduction: 16,
            lambda: Lambda::Both,
            temp_init: 30.0,
            temp_epochs: None,
            dataset: "fashion-mnist".into(),
            data_dir: None,
            batch_size: 64,
            eval_batch_size: 500,
            optimizer: OptimizerKind::Sgd,
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            schedule: ScheduleKind::Cosine,
            milestones: vec![],
            gamma: 0.1,
            warmup_epochs: 0.0,
            label_smoothing: 0.0,
            local_bn: false,
            seed: 0,
            limit_train: None,
            limit_test: None,
            run: RunOptions::default(),
            input_size: 224,
            strict: false,
            kappa: None,
            imp: Default::default(),
            imp_after: None,
        }
    }
}

pub(super) fn optim_config(cfg: &TrainConfig) -> OptimConfig {
    let kind = match cfg.optimizer {
        OptimizerKind::Sgd => OptimKind::Sgd {
            momentum: cfg.momentum,
            nesterov: cfg.nesterov,
        },
        OptimizerKind::Adamw => OptimKind::ADAMW,
    };
    OptimConfig {
        kind,
        weight_decay: cfg.weight_decay,
    }
}

/// The share of the run over which the attention temperature anneals by default: DY-Conv's
/// recipe (10 of 100 epochs). Annealing to the end of a short run sharpens the attention when
/// the learning rate is nearly 0 and wrecks it (docs/results/README.md, "The temperature").
pub const TEMP_FRACTION: f32 = 0.1;

/// The fewest steps the default annealing takes: a random attention made one-hot within a
/// handful of steps trains worse (docs/results/README.md, "The temperature in a one-epoch
/// run").
pub const TEMP_MIN_STEPS: f32 = 100.0;

/// A run shorter than twice [`TEMP_MIN_STEPS`] cannot anneal that slowly and still train half
/// of its steps at T = 1; it keeps a soft attention instead, annealing over this many times its
/// length (T ends at 1 + 0.9 (T_0 − 1), 27.1 for T_0 = 30). Made one-hot over half of a 78-step
/// run, DY-Conv MobileNetV2 diverged and every dynamic model trained worse (docs/results/
/// README.md, "MobileNetV2 ×0.35: the classifier's initialisation and the temperature").
pub const TEMP_SOFT_RUNS: f32 = 10.0;

/// Default annealing length in epochs (docs/method.md §3): the first [`TEMP_FRACTION`] of a
/// run of `epochs` × `steps_per_epoch` steps, but at least [`TEMP_MIN_STEPS`] steps; a run too
/// short for that and half of it at T = 1 keeps a soft attention ([`TEMP_SOFT_RUNS`]).
pub fn default_anneal_epochs(epochs: usize, steps_per_epoch: usize) -> f32 {
    let run = (epochs * steps_per_epoch) as f32;
    let steps = if run < 2.0 * TEMP_MIN_STEPS {
        TEMP_SOFT_RUNS * run
    } else {
        (TEMP_FRACTION * run).max(TEMP_MIN_STEPS)
    };
    steps / steps_per_epoch.max(1) as f32
}

impl TrainConfig {
    /// Epochs over which the temperature anneals: `--temp-epochs`, or
    /// [`default_anneal_epochs`] for this run's length.
    pub fn anneal_epochs(&self, steps_per_epoch: usize) -> f32 {
        self.temp_epochs
            .unwrap_or_else(|| default_anneal_epochs(self.run.epochs, steps_per_epoch))
    }

    /// The IMP settings of a pad run (None when the run partitions nothing: κ = 1 or not pad).
    pub fn imp_config(&self) -> Result<Option<crate::imp::ImpConfig>> {
        let pad = self.mode == ConvMode::Pad;
        let kappa = match (self.kappa, pad) {
            (Some(_), false) => {
                return Err(Error::Invalid(format!(
                    "--kappa applies to --mode pad, not '{}'",
                    self.mode.name()
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
            stem: self.stem,
            dynamic: DynConfig {
                mode: self.mode,
                kernels: self.kernels,
                reduction: self.reduction,
                lambda: self.lambda,
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Rejects unknown names and impossible values before any data is loaded.
pub fn validate(cfg: &TrainConfig) -> Result<()> {
    cfg.model_config()?;
    cfg.imp_config()?;
    if !(cfg.temp_init >= 1.0 && cfg.temp_epochs.is_none_or(|t| t >= 0.0)) {
        return Err(Error::Invalid(format!(
            "--temp-init must be ≥ 1 and --temp-epochs ≥ 0 (got {}, {:?})",
            cfg.temp_init, cfg.temp_epochs
        )));
    }
    let kind = cfg.dataset.split(':').next().unwrap_or_default();
    if !data::DATASETS
        .iter()
        .any(|d| d.split(':').next() == Some(kind))
    {
        return Err(Error::Invalid(format!(
            "unknown dataset '{}'; valid datasets: {}",
            cfg.dataset,
            data::DATASETS.join(", ")
        )));
    }
    schedule(cfg, 1)?;
    if cfg.run.epochs == 0 || cfg.batch_size == 0 || cfg.eval_batch_size == 0 {
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

pub(super) fn schedule(cfg: &TrainConfig, steps_per_epoch: usize) -> Result<Schedule> {
    Ok(Schedule {
        base_lr: cfg.lr,
        warmup_steps: (cfg.warmup_epochs * steps_per_epoch as f32).round() as usize,
        total_steps: cfg.run.epochs * steps_per_epoch,
        steps_per_epoch,
        decay: cfg.schedule.decay(&cfg.milestones, cfg.gamma),
    })
}

#[cfg(test)]
mod tests {
    use super::default_anneal_epochs;

    #[test]
    fn default_anneal_is_a_tenth_but_at_least_100_steps_or_soft() {
        let cases = [
            // (epochs, steps per epoch, anneal steps)
            (1, 78, 780.0),  // a short run keeps a soft attention: 10 times its length
            (2, 78, 1560.0), // still under 200 steps: soft
            (1, 200, 100.0), // 200 steps: the 100-step minimum, half the run at T = 1
            (10, 78, 100.0), // 780 steps: the 100-step minimum
            (1, 937, 100.0), // 937 steps: the minimum, just above 10 %
            (100, 937, 9370.0), // DY-Conv's recipe: 10 % of the run
            (1, 3, 30.0),
        ];
        for (epochs, spe, steps) in cases {
            let got = default_anneal_epochs(epochs, spe) * spe as f32;
            assert!((got - steps).abs() < 1e-3, "{epochs} x {spe}: {got} steps");
        }
    }
}

//! Image classification: its configuration, its compiled session (a training step —
//! forward, backward, optimizer — is one command encoder and one submit) and the task the
//! shared loop in `trainer/` trains. The options are in `config.rs`.

mod config;

pub use config::{
    default_anneal_epochs, validate, TrainConfig, TEMP_FRACTION, TEMP_MIN_STEPS, TEMP_SOFT_RUNS,
};
use config::{optim_config, schedule};

use crate::data::{self, Batch, FolderOpts, ImageSet};
use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::eval::{loss_and_accuracy, Evaluator};
use crate::executor::optim::{Optimizer, Schedule};
use crate::executor::{Executable, ParamStore};
use crate::gpu::Gpu;
use crate::graph::autodiff::backward;
use crate::graph::{DType, Graph, Init, Op, TensorId};
use crate::models::{self, ModelConfig};
use crate::names::Named;
use crate::nn::dynamic::INV_TEMPERATURE;
use crate::nn::Builder;
use crate::trainer::{
    self, Anneal, Batches, EpochStats, LoopConfig, Task, TRAIN_METRICS as METRICS,
};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// One line of an image run's metrics.jsonl.
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
    /// Check every node's output for NaN/±Inf in each step (`--detect-anomaly`).
    pub detect_anomaly: bool,
    /// This rank's data-parallel group (docs/distributed.md).
    pub comm: Arc<Comm>,
    /// BatchNorm on each rank's own batch (`--local-bn`) rather than the global one.
    local_bn: bool,
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
        Self::new_rank(gpu, cfg, sample_shape, classes, Arc::new(Comm::solo()))
    }

    /// [`new`](Self::new) for one rank of a data-parallel group: the training graph's
    /// BatchNorm spans every rank's batch (SyncBN), and every rank starts from rank 0's
    /// weights.
    pub fn new_rank(
        gpu: Arc<Gpu>,
        cfg: &TrainConfig,
        sample_shape: [usize; 3],
        classes: usize,
        comm: Arc<Comm>,
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
        store.broadcast_from_root(&comm)?;
        let bn_ranks = if cfg.local_bn { 1 } else { comm.size() };
        let train = Executable::compile_ranks(gpu.clone(), g, &store, bn_ranks)?;
        let eval = Evaluator::compile(gpu.clone(), eg, &store, classes)?;
        let optimizer = Optimizer::new(&store, optim_config(cfg))?;
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
            detect_anomaly: cfg.run.detect_anomaly,
            local_bn: cfg.local_bn,
            comm,
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
        crate::executor::submit_step(
            &self.train,
            &self.optimizer,
            &self.store,
            self.detect_anomaly,
            &self.comm,
        )
    }

    /// (mean loss, accuracy, samples) accumulated on the GPU since the last reset; syncs.
    pub fn train_metrics(&self) -> Result<(f64, f64, usize)> {
        trainer::train_metrics(&self.store)
    }

    /// The training graph's profile and the optimizer step's time (`PADNET_PROFILE=1`).
    pub fn print_profile(&self, reps: usize) -> Result<()> {
        crate::executor::profile::print(&self.train, reps)?;
        crate::executor::profile::print_optimizer(&self.optimizer, &self.store, reps)
    }

    /// Loss of the last step (syncs).
    pub fn last_loss(&self) -> Result<f32> {
        Ok(self.train.read(self.loss, &self.store)?[0])
    }

    /// Logits of every sample of `set`, in order ([N, classes], row-major).
    pub fn logits(&self, set: &Arc<ImageSet>) -> Result<Vec<f32>> {
        self.eval.logits(&self.store, set)
    }

    /// (mean cross-entropy, accuracy) on `set`; with several data-parallel ranks, each
    /// evaluates its share and the sums are added.
    pub fn evaluate(&self, set: &Arc<ImageSet>) -> Result<(f64, f64)> {
        let comm = &self.comm;
        if comm.size() == 1 {
            let logits = self.logits(set)?;
            return Ok(loss_and_accuracy(&logits, &set.labels, self.classes));
        }
        if self.local_bn {
            // Every rank evaluates with the running statistics rank 0 saves.
            let running =
                |name: &str| name.ends_with("running_mean") || name.ends_with("running_var");
            self.store.broadcast_state_from_root(comm, running)?;
        }
        let shard = data::Shard {
            rank: comm.rank(),
            ranks: comm.size(),
        };
        let (logits, labels) = self.eval.shard_logits(&self.store, set, shard)?;
        let (loss, acc) = loss_and_accuracy(&logits, &labels, self.classes);
        let n = labels.len() as f64;
        let mut sums = [(loss * n) as f32, (acc * n) as f32, n as f32];
        comm.sum(&mut sums)?;
        let total = f64::from(sums[2]).max(1.0);
        Ok((f64::from(sums[0]) / total, f64::from(sums[1]) / total))
    }
}

/// Image classification as a [`Task`]: a [`Session`] over a dataset's train and test splits.
pub struct ImageTask<'a> {
    cfg: &'a TrainConfig,
    pub session: Session,
    train_set: Arc<ImageSet>,
    test_set: Arc<ImageSet>,
    imp: Option<crate::imp::ImpConfig>,
}

impl<'a> ImageTask<'a> {
    /// Loads the dataset (limited as configured) and compiles the model.
    pub fn new(gpu: Arc<Gpu>, cfg: &'a TrainConfig) -> Result<Self> {
        Self::new_rank(gpu, cfg, Arc::new(Comm::solo()))
    }

    /// [`new`](Self::new) as one rank of a data-parallel group: it trains on its shard of
    /// every global batch of `batch_size` × ranks images (docs/distributed.md).
    pub fn new_rank(gpu: Arc<Gpu>, cfg: &'a TrainConfig, comm: Arc<Comm>) -> Result<Self> {
        validate(cfg)?;
        let folder = FolderOpts {
            input_size: cfg.input_size,
            strict: cfg.strict,
        };
        let (mut train_set, mut test_set, source) =
            data::load_dataset(&cfg.dataset, cfg.data_dir.as_deref(), folder)?;
        if let Some(n) = cfg.limit_train {
            train_set.truncate(n);
        }
        if let Some(n) = cfg.limit_test {
            test_set.truncate(n);
        }
        let global_batch = cfg.batch_size * comm.size();
        if train_set.len() < global_batch {
            return Err(Error::Invalid(format!(
                "{} training images are fewer than one batch of {global_batch}",
                train_set.len(),
            )));
        }
        let quiet = !comm.is_root();
        match comm.size() {
            1 => println!("adapter: {}", gpu.describe()),
            n => println!("rank {}/{n}: adapter {}", comm.rank(), gpu.describe()),
        }
        let say = |line: String| {
            if !quiet {
                println!("{line}");
            }
        };
        say(format!(
            "data: {} from {} ({} train / {} test images, {}x{}x{})",
            cfg.dataset,
            source,
            train_set.len(),
            test_set.len(),
            train_set.channels,
            train_set.height,
            train_set.width
        ));
        let t_compile = Instant::now();
        let shape = [train_set.channels, train_set.height, train_set.width];
        let session = Session::new_rank(gpu, cfg, shape, train_set.classes, comm)?;
        say(format!(
            "model: {} ({} parameters); training graph: {} dispatches/step, peak GPU memory {:.1} MiB; \
             compiled in {:.2} s",
            cfg.model,
            session.store.num_params(),
            session.train.num_dispatches() + 1,
            session.train.peak_bytes() as f64 / (1 << 20) as f64,
            t_compile.elapsed().as_secs_f64()
        ));
        Ok(ImageTask {
            cfg,
            session,
            train_set: Arc::new(train_set),
            test_set: Arc::new(test_set),
            imp: cfg.imp_config()?,
        })
    }
}

impl Task for ImageTask<'_> {
    type Batch = Batch;
    type Metrics = EpochMetrics;
    const UNIT: &'static str = "img";

    /// How the shared loop runs this configuration.
    fn loop_config(&self) -> LoopConfig {
        let cfg = self.cfg;
        LoopConfig {
            run: cfg.run.clone(),
            imp_at: self.imp.as_ref().map(|_| cfg.imp_after.unwrap_or(0)),
            anneal: Some(Anneal {
                t0: cfg.temp_init,
                epochs: cfg.anneal_epochs(self.steps_per_epoch()),
            }),
        }
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    fn steps_per_epoch(&self) -> usize {
        self.train_set.len() / (self.cfg.batch_size * self.session.comm.size())
    }

    fn comm(&self) -> Arc<Comm> {
        self.session.comm.clone()
    }

    fn store(&self) -> &ParamStore {
        &self.session.store
    }

    fn trainable(&mut self) -> (&ParamStore, &mut Optimizer) {
        (&self.session.store, &mut self.session.optimizer)
    }

    fn schedule(&self) -> Result<Schedule> {
        schedule(self.cfg, self.steps_per_epoch())
    }

    fn config_json(&self) -> serde_json::Value {
        // The resolved anneal length, not "the default": a resumed run keeps its schedule.
        let mut json = trainer::options_json(self.cfg);
        json["temp_epochs"] = self.cfg.anneal_epochs(self.steps_per_epoch()).into();
        json
    }

    fn batches(&mut self, epoch: usize, skip: usize) -> Result<Batches<Batch>> {
        let shuffle_seed = self
            .cfg
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(epoch as u64);
        let comm = &self.session.comm;
        let shard = data::Shard {
            rank: comm.rank(),
            ranks: comm.size(),
        };
        let rx = data::shard_batches(
            self.train_set.clone(),
            self.cfg.batch_size,
            Some(shuffle_seed),
            skip,
            4,
            shard,
        );
        Ok(Box::new(rx.into_iter().map(|b| match &b.error {
            Some(e) => Err(Error::Invalid(e.clone())),
            None => Ok(b),
        })))
    }

    fn step(&mut self, batch: &Batch, lr: f32) -> Result<usize> {
        self.session.step(batch, lr)?;
        Ok(batch.labels.len())
    }

    fn set_temperature(&mut self, t: f32) -> Result<()> {
        self.session.set_temperature(t)
    }

    fn imp(&mut self, _step: usize) -> Result<crate::imp::ImpReport> {
        let s = &mut self.session;
        let icfg = self.imp.as_ref().expect("IMP configured");
        let t = Instant::now();
        println!(
            "IMP: {:?} scores over {} batches, κ = {} of {}s ({:?}, {} round(s)) at T = {}",
            icfg.scorer,
            icfg.batches,
            icfg.kappa,
            icfg.granularity.name(),
            icfg.scope,
            icfg.rounds,
            s.temperature
        );
        let data = crate::imp::ImpData {
            train: &self.train_set,
            batch: self.cfg.batch_size,
            smoothing: self.cfg.label_smoothing,
            temperature: s.temperature,
            comm: &s.comm,
            local_bn: self.cfg.local_bn,
        };
        let report = crate::imp::run(s.gpu.clone(), &s.store, &s.model, &data, icfg)?;
        println!("IMP took {:.1} s", t.elapsed().as_secs_f64());
        s.kappa = report.kappa;
        Ok(report)
    }

    fn after_epoch(&self) {
        crate::eval::warn_decode_failures(&self.train_set);
    }

    fn evaluate(&mut self, st: &EpochStats) -> Result<(EpochMetrics, String)> {
        let (test_loss, test_acc) = self.session.evaluate(&self.test_set)?;
        let m = EpochMetrics {
            epoch: st.epoch,
            train_loss: st.train_loss,
            train_acc: st.train_acc,
            test_loss,
            test_acc,
            lr: st.lr,
            train_img_per_s: st.throughput,
            epoch_seconds: st.started.elapsed().as_secs_f64(),
        };
        let line = format!(
            "train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.0} img/s, {:.1} s",
            m.train_loss,
            100.0 * m.train_acc,
            m.test_loss,
            100.0 * m.test_acc,
            m.train_img_per_s,
            m.epoch_seconds
        );
        Ok((m, line))
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        let (s, m, set) = (&self.session, &self.session.model, &self.train_set);
        let shape = [set.channels, set.height, set.width];
        vec![
            ("model", self.cfg.model.clone()),
            ("arch", m.arch.clone()),
            ("mode", m.dynamic.mode.name().to_string()),
            ("width", m.width.to_string()),
            ("stem", m.stem.name().to_string()),
            ("kernels", m.dynamic.kernels.to_string()),
            ("reduction", m.dynamic.reduction.to_string()),
            ("lambda", m.dynamic.lambda.name().to_string()),
            ("temperature", s.temperature.to_string()),
            ("kappa", s.kappa.to_string()),
            ("dataset", self.cfg.dataset.clone()),
            ("input_shape", format!("{shape:?}")),
            ("classes", set.classes.to_string()),
            ("mean", format!("{:?}", set.mean)),
            ("std", format!("{:?}", set.std)),
        ]
    }

    fn restore(&mut self, meta: &HashMap<String, String>, path: &Path) -> Result<()> {
        let s = &mut self.session;
        let expected = [
            ("arch", s.model.arch.clone()),
            ("mode", s.model.dynamic.mode.name()),
        ];
        trainer::check_metadata(meta, path, &expected)?;
        let num = |k: &str| -> Result<f64> {
            meta.get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Error::data(path, format!("metadata '{k}' missing or invalid")))
        };
        s.kappa = num("kappa")?;
        s.set_temperature(num("temperature")? as f32)
    }

    fn print_profile(&self) -> Result<()> {
        self.session.print_profile(5)
    }
}

/// Trains `cfg.model` on `cfg.dataset`, evaluating on the test split after every epoch;
/// writes metrics.jsonl, config.json and model.safetensors (+ optimizer.safetensors) to
/// `cfg.out`. Returns the per-epoch metrics.
pub fn train(gpu: Arc<Gpu>, cfg: &TrainConfig) -> Result<Vec<EpochMetrics>> {
    let dir = trainer::open_run(&cfg.run)?;
    let mut task = ImageTask::new(gpu, cfg)?;
    trainer::fit(&mut task, &dir)
}

//! `train` and `experiment`: the option groups of a training run (common, images, text, MoE,
//! PAD/IMP), turned into the task's typed configuration.

use crate::dist::Ranks;
use crate::error::{Error, Result};
use crate::executor::optim::{OptimizerKind, ScheduleKind};
use crate::experiment::ExperimentConfig;
use crate::fit::{History, RunConfig};
use crate::gpu::tuning::Precision;
use crate::imp::ImpOptions;
use crate::kernels::dynconv::Lambda;
use crate::models::bert::MoePosition;
use crate::models::Stem;
use crate::names::Named;
use crate::nn::dynamic::ConvMode;
use crate::text::{StaticInit, TextMode, TextTrainConfig, TEXT_MODELS};
use crate::train::TrainConfig;
use crate::trainer::{self, RunOptions};
use std::path::{Path, PathBuf};

/// `--mode`: images take static, dynamic (DY-Conv) or pad (PAD-Conv); text dense, moe or pad
/// (PAD-MoE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Static,
    Dynamic,
    Dense,
    Moe,
    Pad,
}

impl Mode {
    pub(crate) fn image(self) -> Result<ConvMode> {
        match self {
            Mode::Static => Ok(ConvMode::Static),
            Mode::Dynamic => Ok(ConvMode::Dynamic),
            Mode::Pad => Ok(ConvMode::Pad),
            m => Err(Error::Invalid(format!(
                "--mode {} is a text mode; image models take static, dynamic or pad",
                m.name()
            ))),
        }
    }

    pub(crate) fn text(self) -> Result<TextMode> {
        match self {
            Mode::Dense => Ok(TextMode::Dense),
            Mode::Moe => Ok(TextMode::Moe),
            Mode::Pad => Ok(TextMode::Pad),
            m => Err(Error::Invalid(format!(
                "--mode {} is an image mode; text models take dense, moe or pad",
                m.name()
            ))),
        }
    }
}

impl crate::names::Named for Mode {
    const WHAT: &'static str = "mode";
}

// Defaults live in the library's `Default` impls; the attributes below read them, so each is
// written once. Where images and text differ, the option is optional and the task's default
// applies.
fn image() -> TrainConfig {
    TrainConfig::default()
}

fn text() -> TextTrainConfig {
    TextTrainConfig::default()
}

fn run() -> RunOptions {
    RunOptions::default()
}

/// Options of every training run.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Training")]
pub struct CommonArgs {
    /// Architecture: simple-cnn, resnet10, resnet18, resnet34, resnet50, mobilenetv2; or a
    /// text model: minilm-l6 (pretrained all-MiniLM-L6-v2 from scripts/fetch-minilm.sh) or
    /// bert (any Hugging Face BERT checkpoint in --model-dir).
    #[arg(long, default_value_t = image().model)]
    pub model: String,
    /// Images: static (default), dynamic (DY-Conv) or pad (PAD-Conv) block convolutions,
    /// ResNets and MobileNetV2 only. Text: dense (default), moe (FFN layers become
    /// mixtures of experts upcycled from the pretrained ones) or pad (PAD-MoE).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Directory with the dataset files (images; overrides the default location) or the
    /// task's train.tsv / dev.tsv (text).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long, value_parser = crate::values::count, default_value_t = run().epochs)]
    pub epochs: usize,
    /// Training batch size [default: 64 for images, 32 for text].
    #[arg(long, value_parser = crate::values::count)]
    pub batch_size: Option<usize>,
    /// Batch size of the evaluation graph [default: 500 for images, 64 for text].
    #[arg(long, value_parser = crate::values::count)]
    pub eval_batch_size: Option<usize>,
    /// Peak learning rate [default: 0.05 for images, 1e-4 for text].
    #[arg(long, value_parser = crate::values::positive)]
    pub lr: Option<f32>,
    /// Weight decay [default: 5e-4 for images, 0.01 for text].
    #[arg(long, value_parser = crate::values::non_negative)]
    pub weight_decay: Option<f32>,
    /// Learning-rate decay after warm-up [default: cosine for images, linear for text].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// Epochs at which `milestones` multiplies the learning rate by --gamma (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub milestones: Vec<usize>,
    #[arg(long, value_parser = crate::values::positive, default_value_t = image().gamma)]
    pub gamma: f32,
    #[arg(long, default_value_t = image().seed)]
    pub seed: u64,
    /// Use only the first N training examples.
    #[arg(long, value_parser = crate::values::count)]
    pub limit_train: Option<usize>,
    /// Use only the first N test (images) or dev (text) examples.
    #[arg(long, value_parser = crate::values::count)]
    pub limit_test: Option<usize>,
    /// Read training metrics back every N steps (each read synchronises with the GPU).
    #[arg(long, value_parser = crate::values::count, default_value_t = run().log_every)]
    pub log_every: usize,
    /// Run directory [default: a new runs/MODEL-MODE-YYYYMMDD-HHMMSS (UTC); with --resume,
    /// the resumed run's]. A directory that holds a run is refused unless --resume or
    /// --overwrite is given.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Continue the run in DIR from its last checkpoint (weights, optimizer state, metrics,
    /// loop state) up to --epochs. Options other than --epochs, --log-every, --save-every and
    /// --quiet must be those of the run (see --force).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Replace the run that --out holds (its checkpoints, metrics, config and IMP report).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// With --resume: resume although options differ from the saved run's.
    #[arg(long, requires = "resume")]
    pub force: bool,
    /// Also commit a checkpoint every N training steps (always: after every epoch, and on
    /// Ctrl-C).
    #[arg(long, value_parser = crate::values::count, value_name = "STEPS")]
    pub save_every: Option<usize>,
    /// Check every op's output for NaN/±Inf in each training step and name the first op and
    /// tensor that produce one (many times slower; for finding where a run diverges).
    #[arg(long)]
    pub detect_anomaly: bool,
    /// What the forward pass's GEMMs and convolutions multiply in: f16 (adapters with
    /// shader-f16) rounds their operands to f16 and sums in f16 over short chunks, then in
    /// f32; gradients, the optimizer and every other kernel stay f32 (docs/architecture.md,
    /// "Half precision"). For GPUs with fast f16; lavapipe runs it slower.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
}

impl CommonArgs {
    /// The loop's options; `mode` names the default run directory.
    fn run_options(&self, mode: &str) -> Result<RunOptions> {
        let out = match (&self.out, &self.resume) {
            (Some(out), Some(resume)) if !same_dir(out, resume) => {
                return Err(Error::Invalid(format!(
                    "--resume continues the run in {}, but --out names {}; drop --out or give the same directory",
                    resume.display(),
                    out.display()
                )))
            }
            (_, Some(resume)) => resume.clone(),
            (Some(out), None) => out.clone(),
            (None, None) => fresh_run_dir(&format!("{}-{mode}", self.model)),
        };
        Ok(RunOptions {
            epochs: self.epochs,
            log_every: self.log_every,
            out,
            progress: !self.quiet,
            resume: self.resume.is_some(),
            overwrite: self.overwrite,
            force: self.force,
            save_every: self.save_every,
            detect_anomaly: self.detect_anomaly,
            precision: self.precision,
        })
    }
}

/// Whether two paths name one directory (compared as given where either does not exist).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `runs/NAME-YYYYMMDD-HHMMSS` (UTC), with a suffix if that exists already.
fn fresh_run_dir(name: &str) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .map(|c| if c == 'T' { '-' } else { c })
        .collect();
    let base = PathBuf::from("runs").join(format!("{name}-{stamp}"));
    (1..)
        .map(|k| match k {
            1 => base.clone(),
            k => base.with_file_name(format!("{name}-{stamp}-{k}")),
        })
        .find(|p| !p.exists())
        .expect("unbounded")
}

/// Options of image models and datasets.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Images")]
pub struct ImageArgs {
    /// Dataset: fashion-mnist (IDX files; default location the Debian package
    /// dataset-fashion-mnist, else an embedded 2000/1000-image subset), cifar10:PATH,
    /// cifar100:PATH (binary batches) or folder:PATH (ImageFolder with train/ and val/).
    #[arg(long, default_value_t = image().dataset)]
    pub dataset: String,
    /// Channel width multiplier.
    #[arg(long, value_parser = crate::values::positive, default_value_t = image().width)]
    pub width: f32,
    /// Stem: imagenet (ResNet 7x7/2 conv + max-pool, MobileNetV2 3x3/2 conv) or cifar (3x3/1
    /// conv, for 28-32 px images).
    #[arg(long, value_enum, default_value_t = image().stem)]
    pub stem: Stem,
    /// Kernels K of each dynamic convolution.
    #[arg(long, value_parser = crate::values::count, default_value_t = image().kernels)]
    pub kernels: usize,
    /// Attention reduction r (hidden width max(1, C/r)).
    #[arg(long, value_parser = crate::values::count, default_value_t = image().reduction)]
    pub reduction: usize,
    /// Initial attention temperature (annealed linearly to 1).
    #[arg(long, value_parser = crate::values::at_least_one, default_value_t = image().temp_init)]
    pub temp_init: f32,
    /// Epochs over which the temperature anneals (fractions allowed). Default: the first
    /// 10 % of the run, as DY-Conv's recipe (10 of 100 epochs), but at least 100 steps; a run
    /// under 200 steps keeps a soft attention (10 times its length: T ends at 27.1).
    #[arg(long, value_parser = crate::values::non_negative)]
    pub temp_epochs: Option<f32>,
    /// sgd (momentum, Nesterov) or adamw. Text always uses adamw.
    #[arg(long, value_enum, default_value_t = image().optimizer)]
    pub optimizer: OptimizerKind,
    #[arg(long, value_parser = crate::values::below_one, default_value_t = image().momentum)]
    pub momentum: f32,
    /// Use plain (not Nesterov) momentum.
    #[arg(long)]
    pub no_nesterov: bool,
    /// Linear learning-rate warm-up, in epochs (fractions allowed).
    #[arg(long, value_parser = crate::values::non_negative, default_value_t = image().warmup_epochs)]
    pub warmup_epochs: f32,
    /// Label smoothing ε (1−ε on the target, ε/(C−1) elsewhere).
    #[arg(long, value_parser = crate::values::below_one, default_value_t = image().label_smoothing)]
    pub label_smoothing: f32,
    /// With several data-parallel ranks (--adapters, mpirun): BatchNorm on each rank's own
    /// batch statistics, rank 0's running statistics kept (default: over the global batch,
    /// SyncBN).
    #[arg(long)]
    pub local_bn: bool,
    /// Input size of folder datasets (random-resized-crop / centre crop).
    #[arg(long, value_parser = crate::values::count, default_value_t = image().input_size)]
    pub input_size: usize,
    /// Stop at the first image that fails to decode (default: skip or blank it, with a warning).
    #[arg(long)]
    pub strict: bool,
}

/// Options of text models and tasks.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Text")]
pub struct TextArgs {
    /// Task: debian-sections (bundled), sst2, cola, mrpc, qqp, mnli, qnli, rte, wnli, stsb
    /// (GLUE train.tsv/dev.tsv in --data-dir), or tsv:DIR (train.tsv/dev.tsv with a header;
    /// see --text-col, --pair-col, --label-col).
    #[arg(long, default_value_t = text().task)]
    pub task: String,
    /// Directory with config.json, tokenizer.json and model.safetensors (default for
    /// minilm-l6: models/all-MiniLM-L6-v2).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Maximum tokens per example, special tokens included (longer ones are truncated).
    #[arg(long, value_parser = crate::values::count, default_value_t = text().max_len)]
    pub max_len: usize,
    /// tsv:DIR tasks: header names of the text, optional second text, and label columns.
    #[arg(long, default_value_t = text().text_col)]
    pub text_col: String,
    #[arg(long)]
    pub pair_col: Option<String>,
    #[arg(long, default_value_t = text().label_col)]
    pub label_col: String,
    /// Linear warm-up over this fraction of all steps, then the schedule's decay.
    #[arg(long, value_parser = crate::values::ratio, default_value_t = text().warmup_ratio)]
    pub warmup_ratio: f32,
}

/// Options of text MoE and PAD-MoE layers.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "MoE (text)")]
pub struct MoeArgs {
    /// Experts per MoE layer.
    #[arg(long, value_parser = crate::values::count, default_value_t = text().experts)]
    pub experts: usize,
    /// Experts each token is routed to.
    #[arg(long, value_parser = crate::values::count, default_value_t = text().top_k)]
    pub top_k: usize,
    /// Which FFN linear layers become MoE: out (output projection), int (intermediate) or both.
    #[arg(long, value_enum, default_value_t = text().moe_position)]
    pub moe_position: MoePosition,
    /// Route padding tokens to experts too (as the reference does).
    #[arg(long)]
    pub route_padding: bool,
    /// GShard capacity factor F; each expert takes at most ⌈F·tokens·k/E⌉ tokens of a batch
    /// (the first ones) and the rest skip it. Default: no limit (no token dropped), as the
    /// reference.
    #[arg(long, value_parser = crate::values::positive)]
    pub capacity_factor: Option<f32>,
    /// PAD-MoE: the static weight starts independent (random), pretrained (the FFN weight the
    /// experts are upcycled from; needs --imp-after) or mean (of the experts, set when IMP
    /// runs; needs --imp-after).
    #[arg(long, value_enum, default_value_t = text().static_init)]
    pub static_init: StaticInit,
    /// PAD-MoE: training examples IMP scores on (in batches of --batch-size).
    #[arg(long, value_parser = crate::values::count, default_value_t = text().imp_samples)]
    pub imp_samples: usize,
}

/// Options of PAD layers (PAD-Conv and PAD-MoE) and their Iterative Mode Partition.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "PAD and IMP")]
pub struct PadArgs {
    /// PAD scale factors: both, s, d, none or p (pure pruning, no static part).
    #[arg(long, value_enum, default_value_t = image().lambda)]
    pub lambda: Lambda,
    /// Dynamic fraction κ that Iterative Mode Partition keeps (pad mode; default 0.5; 1 = no IMP).
    #[arg(long, value_parser = crate::values::kappa)]
    pub kappa: Option<f64>,
    #[command(flatten)]
    pub imp: ImpOptions,
    /// Run IMP after this many training steps (default: before training; images at
    /// T = temp-init + 1).
    #[arg(long)]
    pub imp_after: Option<usize>,
}

#[derive(clap::Args, Clone, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub text: TextArgs,
    #[command(flatten)]
    pub moe: MoeArgs,
    #[command(flatten)]
    pub pad: PadArgs,
    #[command(flatten)]
    pub parallel: super::parallel::ParallelArgs,
}

impl TrainArgs {
    pub fn config(self) -> Result<RunConfig> {
        let TrainArgs {
            common: c,
            image: i,
            text: t,
            moe: m,
            pad: p,
            parallel: _,
        } = self;
        if TEXT_MODELS.contains(&c.model.as_str()) {
            let d = TextTrainConfig::default();
            let model_dir = match (c.model.as_str(), t.model_dir) {
                (_, Some(dir)) => dir,
                ("minilm-l6", None) => d.model_dir,
                (_, None) => return Err(Error::Invalid("--model bert needs --model-dir with config.json, tokenizer.json and model.safetensors".into())),
            };
            let mode = c.mode.map_or(Ok(d.mode), Mode::text)?;
            return Ok(RunConfig::Text(TextTrainConfig {
                run: c.run_options(&mode.name())?,
                model_dir,
                mode,
                experts: m.experts,
                top_k: m.top_k,
                moe_position: m.moe_position,
                route_padding: m.route_padding,
                capacity_factor: m.capacity_factor,
                lambda: p.lambda,
                kappa: p.kappa.unwrap_or(d.kappa),
                static_init: m.static_init,
                imp: p.imp,
                imp_samples: m.imp_samples,
                imp_after: p.imp_after.unwrap_or(0),
                task: t.task,
                data_dir: c.data_dir,
                text_col: t.text_col,
                pair_col: t.pair_col,
                label_col: t.label_col,
                max_len: t.max_len,
                batch_size: c.batch_size.unwrap_or(d.batch_size),
                eval_batch_size: c.eval_batch_size.unwrap_or(d.eval_batch_size),
                lr: c.lr.unwrap_or(d.lr),
                weight_decay: c.weight_decay.unwrap_or(d.weight_decay),
                warmup_ratio: t.warmup_ratio,
                schedule: c.schedule.unwrap_or(d.schedule),
                milestones: c.milestones,
                gamma: c.gamma,
                seed: c.seed,
                limit_train: c.limit_train,
                limit_dev: c.limit_test,
            }));
        }
        let d = TrainConfig::default();
        let mode = c.mode.map_or(Ok(d.mode), Mode::image)?;
        // A resumed run keeps its saved anneal length (extending --epochs on resume must not
        // move the schedule under a run that is part-way through it).
        let temp_epochs = i.temp_epochs.or_else(|| {
            let dir = c.resume.as_ref()?;
            saved_option(dir, "temp_epochs").map(|t| t as f32)
        });
        let cfg = TrainConfig {
            run: c.run_options(&mode.name())?,
            model: c.model,
            mode,
            width: i.width,
            stem: i.stem,
            kernels: i.kernels,
            reduction: i.reduction,
            lambda: p.lambda,
            temp_init: i.temp_init,
            temp_epochs,
            dataset: i.dataset,
            data_dir: c.data_dir,
            batch_size: c.batch_size.unwrap_or(d.batch_size),
            eval_batch_size: c.eval_batch_size.unwrap_or(d.eval_batch_size),
            optimizer: i.optimizer,
            lr: c.lr.unwrap_or(d.lr),
            momentum: i.momentum,
            nesterov: !i.no_nesterov,
            weight_decay: c.weight_decay.unwrap_or(d.weight_decay),
            schedule: c.schedule.unwrap_or(d.schedule),
            milestones: c.milestones,
            gamma: c.gamma,
            warmup_epochs: i.warmup_epochs,
            label_smoothing: i.label_smoothing,
            local_bn: i.local_bn,
            seed: c.seed,
            limit_train: c.limit_train,
            limit_test: c.limit_test,
            input_size: i.input_size,
            strict: i.strict,
            kappa: p.kappa,
            imp: p.imp,
            imp_after: p.imp_after,
        };
        Ok(RunConfig::Image(cfg))
    }
}

/// `padnet-wgpu train`: the task's model trained by the shared loop, then a summary line.
pub fn train(selector: Option<&str>, args: TrainArgs) -> anyhow::Result<()> {
    let adapters = args.parallel.adapters.clone();
    let config = args.config()?;
    if let RunConfig::Text(cfg) = &config {
        if !cfg.model_dir.join("model.safetensors").is_file()
            && cfg.model_dir.ends_with("all-MiniLM-L6-v2")
        {
            anyhow::bail!(
                "{} lacks the pretrained MiniLM; fetch it with scripts/fetch-minilm.sh",
                cfg.model_dir.display()
            );
        }
    }
    let ranks = Ranks::new(selector, &adapters)?.with_precision(config.run().precision);
    stop_on_signal()?;
    let t0 = std::time::Instant::now();
    let done = || format!("done in {:.1} s", t0.elapsed().as_secs_f64());
    let checkpoint = config.run().out.join(crate::run_dir::MODEL);
    let fitted = ranks.run(|adapter, comm| config.fit_rank(adapter, comm))?;
    if !ranks.is_root() {
        return Ok(());
    }
    match fitted.history {
        History::Image(history) => {
            let Some(last) = history.last() else {
                return Ok(());
            };
            let best = history.iter().map(|m| m.test_acc).fold(0.0, f64::max);
            let img_s = mean(history.iter().map(|m| m.train_img_per_s));
            println!(
                "{}: final test accuracy {:.2}% (best {:.2}%), {img_s:.0} img/s training; checkpoint {}",
                done(),
                100.0 * last.test_acc,
                100.0 * best,
                checkpoint.display()
            );
        }
        History::Text(history) => {
            let Some(last) = history.last() else {
                return Ok(());
            };
            println!(
                "{}: dev {}; {:.0} tokens/s training; checkpoint {}",
                done(),
                last.dev,
                mean(history.iter().map(|m| m.tokens_per_s)),
                checkpoint.display()
            );
        }
    }
    Ok(())
}

/// The first Ctrl-C (or SIGTERM) asks the training loop to stop after its step and commit a
/// checkpoint (exit 130); a second one quits at once, leaving the last committed checkpoint.
/// How long an MPI rank asked to stop waits for the others before it quits.
const MPI_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

fn stop_on_signal() -> Result<()> {
    ctrlc::set_handler(|| {
        if trainer::request_stop() {
            eprintln!("\nsecond interrupt: quitting now; the last committed checkpoint is intact");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping after this step and saving a checkpoint (Ctrl-C again to quit at once)");
        // An MPI rank stops with the others at a step they agree on; when a rank is gone (the
        // launcher is ending the job) that agreement never comes, so do not wait for it.
        if crate::dist::launched_by_mpi().is_some() {
            std::thread::spawn(|| {
                std::thread::sleep(MPI_STOP_GRACE);
                eprintln!("the ranks did not stop together within {MPI_STOP_GRACE:?} (one is gone?); quitting; the last committed checkpoint is intact");
                std::process::exit(130);
            });
        }
    })
    .map_err(|e| Error::Invalid(format!("cannot install the Ctrl-C handler: {e}")))
}

/// A numeric option of the run in `dir` as its config.json saved it (None when unreadable:
/// the resume's own option check then reports what differs).
fn saved_option(dir: &Path, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(crate::run_dir::CONFIG)).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?[key].as_f64()
}

fn mean(v: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = v.len().max(1) as f64;
    v.sum::<f64>() / n
}

#[derive(clap::Args)]
pub struct ExperimentArgs {
    /// κ values of the PAD runs.
    #[arg(long, value_parser = crate::values::kappa, value_delimiter = ',', default_value = "0.3,0.5")]
    pub kappas: Vec<f64>,
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// The baselines trained beside PAD (default: both; images static,dynamic, text
    /// dense,moe).
    #[arg(long, value_delimiter = ',')]
    pub baselines: Option<Vec<String>>,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// `padnet-wgpu experiment`.
pub fn experiment(selector: Option<&str>, args: ExperimentArgs) -> anyhow::Result<()> {
    let common = &args.train.common;
    let out = match &common.out {
        Some(out) => out.clone(),
        None => fresh_run_dir(&format!("{}-experiment", common.model)),
    };
    if common.resume.is_some() {
        anyhow::bail!(
            "experiment has no --resume; rerun it with --overwrite, or into another --out"
        );
    }
    let adapters = args.train.parallel.adapters.clone();
    let base = args.train.config()?;
    let ranks = Ranks::new(selector, &adapters)?.with_precision(base.run().precision);
    let cfg = ExperimentConfig {
        base,
        baselines: args.baselines,
        kappas: args.kappas,
        seeds: args.seeds,
        out,
    };
    stop_on_signal()?;
    if ranks.is_root() {
        println!("experiment directory {}", cfg.out.display());
    }
    let rows = crate::experiment::run(&ranks, &cfg)?;
    if !ranks.is_root() {
        return Ok(());
    }
    println!("\n{}", crate::experiment::markdown(&cfg, &rows));
    println!(
        "written to {}/results.md, results.json, results.png, results_params.png",
        cfg.out.display()
    );
    Ok(())
}

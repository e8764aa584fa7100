//! `padnet-wgpu` command line: parses arguments, then calls into the library.

use clap::{Parser, Subcommand};
use padnet_wgpu::cli;
use padnet_wgpu::train::TrainConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "padnet-wgpu",
    version,
    about = "PAD-Net (partially dynamic networks) with hand-written WGSL kernels on any Vulkan, Metal or DX12 GPU",
    after_help = "Examples:\n  padnet-wgpu info\n  padnet-wgpu train --model simple-cnn --dataset fashion-mnist --epochs 2 --out runs/cnn\n  padnet-wgpu bench\n  padnet-wgpu --adapter llvmpipe bench"
)]
struct Args {
    /// GPU adapter: index from `padnet-wgpu info`, or part of its name or backend
    /// (e.g. "nvidia", "llvmpipe", "vulkan"). Default: discrete > integrated > CPU.
    #[arg(long, global = true, env = "PADNET_ADAPTER")]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter (name, backend, type, driver) and the limits we request.
    Info,
    /// GFLOP/s of the GEMM (256/512/1024) and convolution (forward, input and weight gradient;
    /// 3x3 64->64 at 32x32, batch 32) kernels on the selected adapter (medians of 5 batches);
    /// with --model, the training-step time of that model in static, dynamic and pad mode.
    #[command(
        after_help = "Examples:\n  padnet-wgpu bench\n  padnet-wgpu bench --model resnet18 --input-size 32 --batch-size 64 --stem cifar\n  padnet-wgpu bench --model minilm-l6 --batch-size 32 --seq-len 32"
    )]
    Bench(BenchArgs),
    /// Train a model, evaluating on the test split after every epoch; writes metrics.jsonl,
    /// config.json, model.safetensors and optimizer.safetensors into --out.
    #[command(
        after_help = "Examples:\n  padnet-wgpu train --model simple-cnn --dataset fashion-mnist --epochs 2 --out runs/cnn\n  padnet-wgpu train --model resnet10 --width 0.25 --stem cifar --mode pad --limit-train 10000 --epochs 3\n  padnet-wgpu train --optimizer adamw --lr 1e-3 --schedule constant --limit-train 5000\n  padnet-wgpu train --data-dir ~/data/fashion-mnist --batch-size 128 --lr 0.1\n  padnet-wgpu train --model minilm-l6 --task debian-sections --epochs 2 --out runs/minilm\n  padnet-wgpu train --model bert --model-dir ~/bert-base-uncased --task sst2 --data-dir ~/glue/SST-2\n  padnet-wgpu train --model minilm-l6 --task debian-sections --mode pad --kappa 0.5 --out runs/minilm-pad\n  padnet-wgpu train --model minilm-l6 --task stsb --data-dir ~/glue/STS-B --out runs/minilm-stsb"
    )]
    Train(Box<TrainArgs>),
    /// Evaluate a checkpoint: images on a dataset's test split, text (BERT) checkpoints on
    /// their task's dev split; optionally write per-sample logits.
    #[command(
        after_help = "Examples:\n  padnet-wgpu eval --checkpoint runs/cnn/model.safetensors --dataset fashion-mnist\n  padnet-wgpu eval --checkpoint runs/r10/model.safetensors --logits-out logits.npy\n  padnet-wgpu eval --checkpoint torch.safetensors --model resnet10 --mode pad --width 0.25 --stem cifar\n  padnet-wgpu eval --checkpoint runs/minilm-pad/model.safetensors\n  padnet-wgpu eval --checkpoint runs/minilm-stsb/model.safetensors --task stsb --data-dir ~/glue/STS-B"
    )]
    Eval(Box<EvalArgs>),
    /// Iterative Mode Partition of a PAD checkpoint: keep the top κ positions dynamic.
    #[command(
        after_help = "Examples:\n  padnet-wgpu imp --checkpoint runs/r10-pad/model.safetensors --kappa 0.3 --out r10-k03.safetensors\n  padnet-wgpu imp --checkpoint c.safetensors --kappa 0.5 --imp-scope local --imp-rounds 3 --out c-k05.safetensors\n  padnet-wgpu imp --checkpoint runs/minilm-pad/model.safetensors --kappa 0.3 --batch-size 32 --out runs/minilm-pad/k03.safetensors"
    )]
    Imp(Box<ImpArgs>),
    /// Fold a PAD checkpoint for deployment: λ into the weights, static part merged, both
    /// parts stored sparsely around one shared bit mask per layer.
    #[command(
        after_help = "Examples:\n  padnet-wgpu export --checkpoint runs/r10-pad/model.safetensors --out deploy.safetensors\n  padnet-wgpu eval --checkpoint deploy.safetensors\n  padnet-wgpu export --checkpoint runs/minilm-pad/model.safetensors --out runs/minilm-pad/deploy.safetensors"
    )]
    Export(ExportArgs),
    /// Static vs DY-Conv vs PAD at several κ (images), or dense vs MoE vs PAD-MoE (text),
    /// over several seeds: results table (Markdown, JSON) and chart (PNG) in --out. Training
    /// options as for `train`.
    #[command(
        after_help = "Examples:\n  padnet-wgpu experiment --model resnet10 --width 0.25 --stem cifar --limit-train 5000 --epochs 2 --kappas 0.3,0.5 --seeds 0,1,2 --out runs/experiment\n  padnet-wgpu experiment --model minilm-l6 --task debian-sections --epochs 2 --kappas 0.3,0.5 --seeds 0,1 --out runs/experiment-text"
    )]
    Experiment(Box<ExperimentArgs>),
}

#[derive(clap::Args)]
struct ExperimentArgs {
    /// κ values of the PAD runs.
    #[arg(long, value_delimiter = ',', default_value = "0.3,0.5")]
    kappas: Vec<f64>,
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(clap::Args)]
struct ImpArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dynamic fraction to keep, in (0, 1].
    #[arg(long)]
    kappa: f64,
    /// Output checkpoint (the report goes into its directory as imp_report.json / .png).
    #[arg(long)]
    out: PathBuf,
    /// Image checkpoints: the dataset whose training split IMP scores on.
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    /// Directory of the dataset (images) or of the task's train.tsv (text).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Text checkpoints: the task scored on (default: the checkpoint's).
    #[arg(long)]
    task: Option<String>,
    /// Text checkpoints: directory with bert_config.json (or config.json) and tokenizer.json
    /// (default: the checkpoint's directory).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    #[command(flatten)]
    imp: padnet_wgpu::imp::ImpOptions,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// PAD training checkpoint.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Deploy file to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// safetensors checkpoint (ours, or one written from the reference PyTorch modules).
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 200)]
    batch_size: usize,
    /// Use only the first N test images.
    #[arg(long)]
    limit: Option<usize>,
    /// Write logits [N, classes] in dataset order: .npy, or .safetensors (tensor "logits").
    #[arg(long)]
    logits_out: Option<PathBuf>,
    /// Override (or supply, when the checkpoint has no metadata) the architecture.
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    mode: Option<String>,
    #[arg(long)]
    width: Option<f32>,
    #[arg(long)]
    stem: Option<String>,
    #[arg(long)]
    kernels: Option<usize>,
    #[arg(long)]
    lambda: Option<String>,
    /// Attention temperature (default: the checkpoint's, else 1).
    #[arg(long)]
    temperature: Option<f32>,
    /// Input size of folder datasets.
    #[arg(long, default_value_t = 224)]
    input_size: usize,
    /// Stop at the first image that fails to decode.
    #[arg(long)]
    strict: bool,
    /// Text checkpoints: evaluate on the dev split of this task (default: the checkpoint's;
    /// its data directory is --data-dir).
    #[arg(long)]
    task: Option<String>,
    /// Text checkpoints: directory with bert_config.json (or config.json) and tokenizer.json
    /// (default: the checkpoint's directory).
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Time training steps of this model (static, dynamic and pad) instead of the kernels.
    #[arg(long)]
    model: Option<String>,
    #[arg(long, default_value_t = 32)]
    input_size: usize,
    #[arg(long, default_value_t = 3)]
    channels: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value = "cifar")]
    stem: String,
    #[arg(long, default_value_t = 1.0)]
    width: f32,
    /// Timed steps per mode (the median is reported).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Modes to time (comma-separated; text models: dense,moe,pad).
    #[arg(long, value_delimiter = ',', default_value = "static,dynamic,pad")]
    modes: Vec<String>,
    /// Text models: tokens per sequence.
    #[arg(long, default_value_t = 32)]
    seq_len: usize,
    /// Text models: directory with config.json (default: all-MiniLM-L6-v2's configuration;
    /// no weights are needed).
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Architecture: simple-cnn, resnet10, resnet18, resnet34, resnet50, mobilenetv2; or a
    /// text model: minilm-l6 (pretrained all-MiniLM-L6-v2 from scripts/fetch-minilm.sh) or
    /// bert (any Hugging Face BERT checkpoint in --model-dir).
    #[arg(long, default_value = "simple-cnn")]
    model: String,
    /// Images: block convolutions static (default), dynamic (DY-Conv) or pad (PAD-Conv),
    /// ResNets and MobileNetV2 only. Text: dense (default) or moe (mixture-of-experts FFN
    /// layers upcycled from the pretrained ones).
    #[arg(long)]
    mode: Option<String>,
    /// Text, moe mode: experts per MoE layer.
    #[arg(long, default_value_t = 8)]
    experts: usize,
    /// Text, moe mode: experts each token is routed to.
    #[arg(long, default_value_t = 2)]
    top_k: usize,
    /// Text, moe mode: which FFN linear layers become MoE: out (output projection), int
    /// (intermediate) or both.
    #[arg(long, default_value = "out")]
    moe_position: String,
    /// Text, moe mode: route padding tokens to experts too (as the reference does).
    #[arg(long)]
    route_padding: bool,
    /// Text, moe/pad mode: GShard capacity factor F; each expert takes at most
    /// ⌈F·tokens·k/E⌉ tokens of a batch (the first ones) and the rest skip it. Default: no
    /// limit (no token dropped), as the reference.
    #[arg(long)]
    capacity_factor: Option<f32>,
    /// Text: task debian-sections (bundled), sst2, cola, mrpc, qqp, mnli, qnli, rte, wnli
    /// (GLUE train.tsv/dev.tsv in --data-dir), or tsv:DIR (train.tsv/dev.tsv with a header;
    /// see --text-col, --pair-col, --label-col).
    #[arg(long, default_value = "debian-sections")]
    task: String,
    /// Text: directory with config.json, tokenizer.json and model.safetensors (default for
    /// minilm-l6: models/all-MiniLM-L6-v2).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Text: maximum tokens per example, special tokens included (longer ones are truncated).
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Text, tsv:DIR tasks: header names of the text, optional second text, and label columns.
    #[arg(long, default_value = "sentence")]
    text_col: String,
    #[arg(long)]
    pair_col: Option<String>,
    #[arg(long, default_value = "label")]
    label_col: String,
    /// Text: linear warm-up over this fraction of all steps, then linear decay to 0.
    #[arg(long, default_value_t = 0.1)]
    warmup_ratio: f32,
    /// Channel width multiplier.
    #[arg(long, default_value_t = 1.0)]
    width: f32,
    /// ResNet stem: imagenet (7x7/2 conv + max-pool) or cifar (3x3/1 conv, for 28-32 px).
    #[arg(long, default_value = "imagenet")]
    stem: String,
    /// Kernels K of each dynamic convolution.
    #[arg(long, default_value_t = 4)]
    kernels: usize,
    /// Attention reduction r (hidden width max(1, C/r)).
    #[arg(long, default_value_t = 16)]
    reduction: usize,
    /// PAD scale factors: both, s, d, none or p (pure pruning, no static part).
    #[arg(long, default_value = "both")]
    lambda: String,
    /// Initial attention temperature (annealed linearly to 1).
    #[arg(long, default_value_t = 30.0)]
    temp_init: f32,
    /// Epochs over which the temperature anneals.
    #[arg(long, default_value_t = 10.0)]
    temp_epochs: f32,
    /// Dataset: fashion-mnist (IDX files; default location the Debian package
    /// dataset-fashion-mnist, else an embedded 2000/1000-image subset), cifar10:PATH,
    /// cifar100:PATH (binary batches) or folder:PATH (ImageFolder with train/ and val/).
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    /// Directory with the dataset files (overrides the default location).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Training batch size [default: 64 for images, 32 for text].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Batch size of the evaluation graph [default: 500 for images, 64 for text].
    #[arg(long)]
    eval_batch_size: Option<usize>,
    /// Images: sgd (momentum, Nesterov; default) or adamw. Text always uses adamw.
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// Peak learning rate [default: 0.05 for images, 1e-4 for text].
    #[arg(long)]
    lr: Option<f32>,
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Use plain (not Nesterov) momentum.
    #[arg(long)]
    no_nesterov: bool,
    /// Weight decay [default: 5e-4 for images, 0.01 for text].
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Learning-rate decay after warm-up [default: cosine for images, linear for text].
    #[arg(long, value_enum)]
    schedule: Option<padnet_wgpu::optim::ScheduleKind>,
    /// Epochs at which `milestones` multiplies the learning rate by --gamma (comma-separated).
    #[arg(long, value_delimiter = ',')]
    milestones: Vec<usize>,
    #[arg(long, default_value_t = 0.1)]
    gamma: f32,
    /// Linear learning-rate warm-up, in epochs (fractions allowed).
    #[arg(long, default_value_t = 0.0)]
    warmup_epochs: f32,
    /// Label smoothing ε (1−ε on the target, ε/(C−1) elsewhere).
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training images.
    #[arg(long)]
    limit_train: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    limit_test: Option<usize>,
    /// Read training metrics back every N steps (each read synchronises with the GPU).
    #[arg(long, default_value_t = 20)]
    log_every: usize,
    /// Output directory.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Continue the run saved in DIR (weights, optimizer state, metrics, temperature) up to
    /// --epochs; use the same options as the original run.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Input size of folder datasets (random-resized-crop / centre crop).
    #[arg(long, default_value_t = 224)]
    input_size: usize,
    /// Stop at the first image that fails to decode (default: skip or blank it, with a warning).
    #[arg(long)]
    strict: bool,
    /// Dynamic fraction κ that Iterative Mode Partition keeps (pad mode; default 0.5; 1 = no IMP).
    #[arg(long)]
    kappa: Option<f64>,
    #[command(flatten)]
    imp: padnet_wgpu::imp::ImpOptions,
    /// Run IMP after this many training steps (default: before training, at T = temp-init + 1).
    #[arg(long)]
    imp_after: Option<usize>,
    /// Text PAD-MoE: training examples IMP scores on (in batches of --batch-size).
    #[arg(long, default_value_t = 320)]
    imp_samples: usize,
    /// Text PAD-MoE: the static weight starts independent (random), pretrained (the FFN
    /// weight the experts are upcycled from; needs --imp-after) or mean (of the experts, set
    /// when IMP runs; needs --imp-after).
    #[arg(long, default_value = "independent")]
    static_init: String,
}

impl TrainArgs {
    fn is_text(&self) -> bool {
        padnet_wgpu::text::TEXT_MODELS.contains(&self.model.as_str())
    }

    fn text_config(self) -> anyhow::Result<padnet_wgpu::text::TextTrainConfig> {
        let d = padnet_wgpu::text::TextTrainConfig::default();
        let mode = self.mode.unwrap_or_else(|| "dense".into());
        let model_dir = match (self.model.as_str(), self.model_dir) {
            (_, Some(dir)) => dir,
            ("minilm-l6", None) => d.model_dir,
            (_, None) => anyhow::bail!("--model bert needs --model-dir with config.json, tokenizer.json and model.safetensors"),
        };
        Ok(padnet_wgpu::text::TextTrainConfig {
            model_dir,
            mode,
            experts: self.experts,
            top_k: self.top_k,
            moe_position: self.moe_position,
            route_padding: self.route_padding,
            capacity_factor: self.capacity_factor,
            deploy: false,
            lambda: self.lambda,
            kappa: self.kappa.unwrap_or(d.kappa),
            static_init: self.static_init,
            imp: self.imp,
            imp_samples: self.imp_samples,
            imp_after: self.imp_after.unwrap_or(0),
            task: self.task,
            data_dir: self.data_dir,
            text_col: self.text_col,
            pair_col: self.pair_col,
            label_col: self.label_col,
            max_len: self.max_len,
            epochs: self.epochs,
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            eval_batch_size: self.eval_batch_size.unwrap_or(d.eval_batch_size),
            lr: self.lr.unwrap_or(d.lr),
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
            warmup_ratio: self.warmup_ratio,
            schedule: self.schedule.unwrap_or(d.schedule),
            milestones: self.milestones,
            gamma: self.gamma,
            seed: self.seed,
            limit_train: self.limit_train,
            limit_dev: self.limit_test,
            log_every: self.log_every,
            out: self.out,
            progress: !self.quiet,
            resume: self.resume,
        })
    }

    fn config(self) -> TrainConfig {
        let d = TrainConfig::default();
        TrainConfig {
            model: self.model,
            mode: self.mode.unwrap_or(d.mode),
            width: self.width,
            stem: self.stem,
            kernels: self.kernels,
            reduction: self.reduction,
            lambda: self.lambda,
            temp_init: self.temp_init,
            temp_epochs: self.temp_epochs,
            dataset: self.dataset,
            data_dir: self.data_dir,
            epochs: self.epochs,
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            eval_batch_size: self.eval_batch_size.unwrap_or(d.eval_batch_size),
            optimizer: self.optimizer,
            lr: self.lr.unwrap_or(d.lr),
            momentum: self.momentum,
            nesterov: !self.no_nesterov,
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
            schedule: self.schedule.unwrap_or(d.schedule),
            milestones: self.milestones,
            gamma: self.gamma,
            warmup_epochs: self.warmup_epochs,
            label_smoothing: self.label_smoothing,
            seed: self.seed,
            limit_train: self.limit_train,
            limit_test: self.limit_test,
            log_every: self.log_every,
            out: self.out,
            progress: !self.quiet,
            resume: self.resume,
            input_size: self.input_size,
            strict: self.strict,
            kappa: self.kappa,
            imp: self.imp,
            imp_after: self.imp_after,
        }
    }
}

fn imp_command(i: ImpArgs) -> anyhow::Result<padnet_wgpu::imp::ImpCommand> {
    Ok(padnet_wgpu::imp::ImpCommand {
        config: i.imp.config(i.kappa, i.seed)?,
        checkpoint: i.checkpoint,
        out: i.out,
        dataset: i.dataset,
        data_dir: i.data_dir,
        task: i.task,
        model_dir: i.model_dir,
        batch_size: i.batch_size,
        smoothing: i.label_smoothing,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Info => cli::info(args.adapter.as_deref()),
        Command::Bench(b) => match b.model {
            None => cli::bench(args.adapter.as_deref()),
            Some(model) if padnet_wgpu::text::TEXT_MODELS.contains(&model.as_str()) => {
                let bert = match &b.model_dir {
                    Some(dir) => {
                        padnet_wgpu::models::bert::BertConfig::load(&dir.join("config.json"))
                    }
                    None => Ok(padnet_wgpu::models::bert::BertConfig::minilm_l6()),
                };
                // The image modes are the default list; text compares dense with MoE and PAD-MoE.
                let modes = if b.modes.iter().any(|m| m == "static") {
                    ["dense", "moe", "pad"].map(String::from).to_vec()
                } else {
                    b.modes.clone()
                };
                bert.map_err(anyhow::Error::from).and_then(|bert| {
                    cli::bench_text(
                        args.adapter.as_deref(),
                        bert,
                        &modes,
                        b.batch_size,
                        b.seq_len,
                        b.steps,
                    )
                })
            }
            Some(model) => cli::bench_steps(
                args.adapter.as_deref(),
                padnet_wgpu::train::TrainConfig {
                    model,
                    stem: b.stem,
                    width: b.width,
                    batch_size: b.batch_size,
                    ..Default::default()
                },
                [b.channels, b.input_size, b.input_size],
                b.steps,
                &b.modes,
            ),
        },
        Command::Train(t) if t.is_text() => t
            .text_config()
            .and_then(|c| cli::train_text(args.adapter.as_deref(), c)),
        Command::Train(t) => cli::train(args.adapter.as_deref(), t.config()),
        Command::Imp(i) => cli::imp(args.adapter.as_deref(), imp_command(*i)),
        Command::Export(e) => cli::export(&e.checkpoint, &e.out),
        Command::Experiment(x) => {
            let x = *x;
            let out = x.train.out.clone();
            let (kappas, seeds) = (x.kappas, x.seeds);
            let base = if x.train.is_text() {
                x.train
                    .text_config()
                    .map(padnet_wgpu::experiment::ExperimentBase::Text)
            } else {
                Ok(padnet_wgpu::experiment::ExperimentBase::Image(
                    x.train.config(),
                ))
            };
            base.and_then(|base| {
                cli::experiment(
                    args.adapter.as_deref(),
                    padnet_wgpu::experiment::ExperimentConfig {
                        base,
                        kappas,
                        seeds,
                        out,
                    },
                )
            })
        }
        Command::Eval(e) => cli::eval(
            args.adapter.as_deref(),
            padnet_wgpu::eval::EvalConfig {
                checkpoint: e.checkpoint,
                dataset: e.dataset,
                data_dir: e.data_dir,
                batch_size: e.batch_size,
                limit: e.limit,
                logits_out: e.logits_out,
                overrides: padnet_wgpu::eval::ModelOverrides {
                    model: e.model,
                    mode: e.mode,
                    width: e.width,
                    stem: e.stem,
                    kernels: e.kernels,
                    lambda: e.lambda,
                    temperature: e.temperature,
                },
                folder: padnet_wgpu::data::FolderOpts {
                    input_size: e.input_size,
                    strict: e.strict,
                },
            },
            e.task,
            e.model_dir,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}

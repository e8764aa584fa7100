//! The `padnet-wgpu` command line: the arguments of each command (clap) and one function per
//! command, in the library so that they are testable. `main.rs` only parses and calls [`run`].

mod bench;
mod eval;
mod imp;
mod info;
mod parallel;
mod train;

pub use train::{Mode, TrainArgs};

use crate::error::Error;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "padnet-wgpu",
    version,
    about = "PAD-Net (partially dynamic networks) with hand-written WGSL kernels on any Vulkan, Metal or DX12 GPU",
    after_help = "Examples:\n  padnet-wgpu info\n  padnet-wgpu train --model simple-cnn --dataset fashion-mnist --epochs 2 --out runs/cnn\n  padnet-wgpu bench\n  padnet-wgpu --adapter llvmpipe bench"
)]
pub struct Args {
    /// GPU adapter: index from `padnet-wgpu info`, or part of its name or backend
    /// (e.g. "nvidia", "llvmpipe", "vulkan"). Default: discrete > integrated > CPU.
    #[arg(long, global = true, env = "PADNET_ADAPTER")]
    pub adapter: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// List every GPU adapter (name, backend, type, driver) and the limits we request.
    Info,
    /// Benchmark suites on the selected adapter: every workload timed (GPU timestamps where
    /// offered), checked against the CPU reference and, with --json, written as a record;
    /// `bench compare` puts records side by side; with --model, the training-step time of
    /// that model in each of its modes.
    #[command(
        after_help = "Examples:\n  padnet-wgpu bench\n  padnet-wgpu bench --suite all --json results/my-gpu.json\n  padnet-wgpu bench --suite kernels --filter gemm --samples 9\n  padnet-wgpu bench --suite kernels --filter gemm --precision f16 --json results/my-gpu-f16.json\n  padnet-wgpu bench compare results/lavapipe.json results/my-gpu.json --out compare/\n  padnet-wgpu bench --model resnet18 --input-size 32 --batch-size 64 --stem cifar\n  padnet-wgpu bench --model minilm-l6 --batch-size 32 --seq-len 32"
    )]
    Bench(bench::BenchArgs),
    /// Train a model, evaluating on the test split after every epoch; writes metrics.jsonl,
    /// config.json, curves.png, model.safetensors and optimizer.safetensors into --out. An
    /// option given twice takes its last value.
    #[command(
        args_override_self = true,
        after_help = "Examples:\n  padnet-wgpu train --model simple-cnn --dataset fashion-mnist --epochs 2 --out runs/cnn\n  padnet-wgpu train --model resnet10 --width 0.25 --stem cifar --mode pad --limit-train 10000 --epochs 3\n  padnet-wgpu train --optimizer adamw --lr 1e-3 --schedule constant --limit-train 5000\n  padnet-wgpu train --data-dir ~/data/fashion-mnist --batch-size 128 --lr 0.1\n  padnet-wgpu train --model resnet10 --mode pad --epochs 4 --out runs/r10 --resume runs/r10\n  padnet-wgpu train --model minilm-l6 --task debian-sections --epochs 2 --out runs/minilm\n  padnet-wgpu train --model bert --model-dir ~/bert-base-uncased --task sst2 --data-dir ~/glue/SST-2\n  padnet-wgpu train --model minilm-l6 --task debian-sections --mode pad --kappa 0.5 --out runs/minilm-pad\n  padnet-wgpu train --model minilm-l6 --task stsb --data-dir ~/glue/STS-B --out runs/minilm-stsb\n  padnet-wgpu train --model resnet10 --mode pad --adapters 0,1 --batch-size 32 --out runs/r10-dp\n  mpirun -np 2 padnet-wgpu train --model minilm-l6 --mode pad --batch-size 16 --out runs/moe-dp"
    )]
    Train(Box<TrainArgs>),
    /// Evaluate a checkpoint: images on a dataset's test split, text (BERT) checkpoints on
    /// their task's dev split; optionally write per-sample logits.
    #[command(
        after_help = "Examples:\n  padnet-wgpu eval --checkpoint runs/cnn/model.safetensors --dataset fashion-mnist\n  padnet-wgpu eval --checkpoint runs/r10/model.safetensors --logits-out logits.npy\n  padnet-wgpu eval --checkpoint torch.safetensors --model resnet10 --mode pad --width 0.25 --stem cifar\n  padnet-wgpu eval --checkpoint runs/r10-pad/deploy.safetensors --no-split   # the dense deploy path\n  padnet-wgpu eval --checkpoint runs/minilm-pad/model.safetensors\n  padnet-wgpu eval --checkpoint runs/minilm-stsb/model.safetensors --task stsb --data-dir ~/glue/STS-B\n  padnet-wgpu eval --checkpoint runs/minilm/model.safetensors --precision f16"
    )]
    Eval(Box<eval::EvalArgs>),
    /// Iterative Mode Partition of a PAD checkpoint (PAD-Conv or PAD-MoE): keep the top κ
    /// positions dynamic.
    #[command(
        after_help = "Examples:\n  padnet-wgpu imp --checkpoint runs/r10-pad/model.safetensors --kappa 0.3 --out r10-k03.safetensors\n  padnet-wgpu imp --checkpoint c.safetensors --kappa 0.5 --imp-scope local --imp-rounds 3 --out c-k05.safetensors\n  padnet-wgpu imp --checkpoint runs/minilm-pad/model.safetensors --kappa 0.3 --batch-size 32 --out runs/minilm-pad/k03.safetensors\n  padnet-wgpu imp --checkpoint runs/r10-pad/model.safetensors --kappa 0.3 --adapters 0,1 --batch-size 32 --out r10-k03.safetensors"
    )]
    Imp(Box<imp::ImpArgs>),
    /// Fold a PAD checkpoint for deployment: λ into the weights, static part merged, both
    /// parts stored sparsely around one shared bit mask per layer.
    #[command(
        after_help = "Examples:\n  padnet-wgpu export --checkpoint runs/r10-pad/model.safetensors --out deploy.safetensors\n  padnet-wgpu export --checkpoint runs/r10-pad --out deploy.safetensors   # a run directory: its model.safetensors\n  padnet-wgpu export --checkpoint runs/r10-pad/model.safetensors --out deploy-f16.safetensors --dtype f16\n  padnet-wgpu eval --checkpoint deploy.safetensors\n  padnet-wgpu export --checkpoint runs/minilm-pad/model.safetensors --out runs/minilm-pad/deploy.safetensors"
    )]
    Export(imp::ExportArgs),
    /// Static vs DY-Conv vs PAD at several κ (images), or dense vs MoE vs PAD-MoE (text),
    /// over several seeds: results table (Markdown, JSON) and charts (PNG) in --out. Training
    /// options as for `train`; an option given twice takes its last value (so scripts can
    /// pass the user's options after their defaults).
    #[command(
        args_override_self = true,
        after_help = "Examples:\n  padnet-wgpu experiment --model resnet10 --width 0.25 --stem cifar --limit-train 5000 --epochs 2 --kappas 0.3,0.5 --seeds 0,1,2 --out runs/experiment\n  padnet-wgpu experiment --model minilm-l6 --task debian-sections --epochs 2 --kappas 0.3,0.5 --seeds 0,1 --out runs/experiment-text\n  padnet-wgpu experiment --model resnet10 --adapters 0,1 --batch-size 32 --kappas 0.3 --out runs/experiment-dp"
    )]
    Experiment(Box<train::ExperimentArgs>),
}

/// Runs one parsed command line.
pub fn run(args: Args) -> anyhow::Result<()> {
    let adapter = args.adapter.as_deref();
    match args.command {
        Command::Info => info::info(adapter),
        Command::Bench(b) => bench::bench(adapter, b),
        Command::Train(t) => train::train(adapter, *t),
        Command::Eval(e) => eval::eval(adapter, *e),
        Command::Imp(i) => imp::imp(adapter, *i),
        Command::Export(e) => imp::export(&e),
        Command::Experiment(x) => train::experiment(adapter, *x),
    }
}

/// Exit code for an error: 2 when no GPU adapter is usable, 130 (as a shell reports
/// SIGINT) when training was interrupted and saved, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<Error>() {
        Some(Error::NoAdapter { .. }) | Some(Error::AdapterNotFound { .. }) => 2,
        Some(Error::Interrupted { .. }) => 130,
        _ => 1,
    }
}

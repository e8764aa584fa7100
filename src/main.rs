//! `padnet-wgpu` command line: parses arguments, then calls into the library.

use clap::{Parser, Subcommand};
use padnet_wgpu::cli;
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
    /// 3x3 64->64 at 32x32, batch 32) kernels on the selected adapter. Medians of 5 batches.
    Bench,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Info => cli::info(args.adapter.as_deref()),
        Command::Bench => cli::bench(args.adapter.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}

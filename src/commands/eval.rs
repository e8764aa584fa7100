//! `eval`: image checkpoints on a dataset's test split, text checkpoints (BERT, incl.
//! PAD-MoE deploy files) on their task's dev split.

use crate::data::FolderOpts;
use crate::eval::{EvalConfig, ModelOverrides};
use crate::gpu::tuning::Precision;
use crate::gpu::Gpu;
use crate::kernels::dynconv::Lambda;
use crate::models::Stem;
use crate::nn::dynamic::ConvMode;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// safetensors checkpoint (ours, or one written from the reference PyTorch modules), or a
    /// run directory (its model.safetensors).
    #[arg(long, value_parser = crate::run_dir::checkpoint_arg)]
    checkpoint: PathBuf,
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, value_parser = crate::values::count, default_value_t = 200)]
    batch_size: usize,
    /// Use only the first N test images.
    #[arg(long, value_parser = crate::values::count)]
    limit: Option<usize>,
    /// The precision GEMMs and convolutions multiply in: f16 (adapters with shader-f16) rounds
    /// operands to f16 and sums in f16 over short chunks, then in f32 (docs/numerics.md, "Half
    /// precision").
    #[arg(long, value_enum, default_value_t = Precision::F32, env = "PADNET_PRECISION")]
    precision: Precision,
    /// Write logits [N, classes] in dataset order: .npy, or .safetensors (tensor "logits").
    #[arg(long)]
    logits_out: Option<PathBuf>,
    /// Replace an existing --logits-out file.
    #[arg(long)]
    force: bool,
    /// Override (or supply, when the checkpoint has no metadata) the architecture.
    #[arg(long)]
    model: Option<String>,
    #[arg(long, value_enum)]
    mode: Option<ConvMode>,
    #[arg(long, value_parser = crate::values::positive)]
    width: Option<f32>,
    #[arg(long, value_enum)]
    stem: Option<Stem>,
    #[arg(long, value_parser = crate::values::count)]
    kernels: Option<usize>,
    #[arg(long, value_enum)]
    lambda: Option<Lambda>,
    /// Attention temperature (default: the checkpoint's, else 1).
    #[arg(long, value_parser = crate::values::positive)]
    temperature: Option<f32>,
    /// Input size of folder datasets.
    #[arg(long, value_parser = crate::values::count, default_value_t = 224)]
    input_size: usize,
    /// Stop at the first image that fails to decode.
    #[arg(long)]
    strict: bool,
    /// Deploy files: run every PAD layer through the dense path (a per-sample kernel of every
    /// filter; PAD-MoE as a plain MoE), also those whose dynamic positions are whole output
    /// filters or rows (`--mask-granularity filter`). By default those run split, faster on
    /// lavapipe: PAD-Conv assembles only its dynamic filters per sample (or, with few of them,
    /// mixes the outputs of batched convolutions), PAD-MoE runs one GEMM of every token over
    /// the static rows plus expert GEMMs over the dynamic rows only. Same logits either way
    /// (docs/method.md §5).
    #[arg(long)]
    no_split: bool,
    /// Text checkpoints: evaluate on the dev split of this task (default: the checkpoint's;
    /// its data directory is --data-dir).
    #[arg(long)]
    task: Option<String>,
    /// Text checkpoints: directory with bert_config.json (or config.json) and tokenizer.json
    /// (default: the checkpoint's directory).
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

pub fn eval(selector: Option<&str>, e: EvalArgs) -> anyhow::Result<()> {
    if let Some(out) = &e.logits_out {
        let inputs = super::imp::model_inputs(&e.checkpoint, e.model_dir.as_deref());
        let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
        crate::checkpoint::check_output("--logits-out", out, &inputs, e.force)?;
    }
    let meta = crate::checkpoint::load_metadata(&e.checkpoint)?;
    let gpu = Arc::new(Gpu::new(selector)?.with_precision(e.precision)?);
    if let Some(notice) = e.precision.notice() {
        println!("{notice}");
    }
    if crate::text::is_text_checkpoint(&meta) {
        let r = crate::text::evaluate(
            gpu,
            &crate::text::TextEvalConfig {
                checkpoint: e.checkpoint.clone(),
                task: e.task,
                data_dir: e.data_dir,
                model_dir: e.model_dir,
                batch_size: e.batch_size.min(64),
                limit: e.limit,
                logits_out: e.logits_out.clone(),
                split_filters: !e.no_split,
            },
        )?;
        println!(
            "{}{}: {} dev examples of {}, loss {:.4}, {}, {:.0} tokens/s inference",
            e.checkpoint.display(),
            deploy_note(r.deploy, r.split_layers, "rows"),
            r.examples,
            r.task,
            r.loss,
            r.scores,
            r.tokens_per_s
        );
    } else {
        let cfg = EvalConfig {
            checkpoint: e.checkpoint.clone(),
            dataset: e.dataset,
            data_dir: e.data_dir,
            batch_size: e.batch_size,
            limit: e.limit,
            logits_out: e.logits_out.clone(),
            overrides: ModelOverrides {
                model: e.model,
                mode: e.mode,
                width: e.width,
                stem: e.stem,
                kernels: e.kernels,
                lambda: e.lambda,
                temperature: e.temperature,
            },
            split_filters: !e.no_split,
            folder: FolderOpts {
                input_size: e.input_size,
                strict: e.strict,
            },
        };
        let r = crate::eval::eval(gpu, &cfg)?;
        println!(
            "{}{}: {} test images, loss {:.4}, accuracy {:.2}%, {:.0} img/s inference",
            e.checkpoint.display(),
            deploy_note(r.deploy, r.split_layers, "filters"),
            r.samples,
            r.loss,
            100.0 * r.accuracy,
            r.images_per_s
        );
    }
    if let Some(p) = &e.logits_out {
        println!("logits written to {}", p.display());
    }
    Ok(())
}

/// How a checkpoint ran, after its name: a deploy file, and how many layers ran split by whole
/// dynamic `groups` (filters, rows).
fn deploy_note(deploy: bool, split_layers: usize, groups: &str) -> String {
    match (deploy, split_layers) {
        (false, _) => String::new(),
        (true, 0) => " (deploy file)".into(),
        (true, n) => format!(" (deploy file, {n} layers split by whole dynamic {groups})"),
    }
}

//! `imp` and `export`: partition a PAD checkpoint's masks, fold it for deployment.

use crate::imp::{ImpCommand, ImpOptions};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ImpArgs {
    /// PAD checkpoint, or its run directory.
    #[arg(long, value_parser = crate::run_dir::checkpoint_arg)]
    checkpoint: PathBuf,
    /// Dynamic fraction to keep, in (0, 1].
    #[arg(long, value_parser = crate::values::kappa)]
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
    #[arg(long, value_parser = crate::values::count, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, value_parser = crate::values::below_one, default_value_t = 0.0)]
    label_smoothing: f32,
    #[command(flatten)]
    imp: ImpOptions,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace an existing --out file.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    parallel: super::parallel::ParallelArgs,
}

pub fn imp(selector: Option<&str>, i: ImpArgs) -> anyhow::Result<()> {
    let inputs = model_inputs(&i.checkpoint, i.model_dir.as_deref());
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    crate::checkpoint::check_output("--out", &i.out, &inputs, i.force)?;
    let cmd = ImpCommand {
        config: i.imp.config(i.kappa, i.seed)?,
        checkpoint: i.checkpoint,
        out: i.out,
        dataset: i.dataset,
        data_dir: i.data_dir,
        task: i.task,
        model_dir: i.model_dir,
        batch_size: i.batch_size,
        smoothing: i.label_smoothing,
    };
    let meta = crate::checkpoint::load_metadata(&cmd.checkpoint)?;
    let ranks = crate::dist::Ranks::new(selector, &i.parallel.adapters)?;
    let text = crate::text::is_text_checkpoint(&meta);
    let report = ranks.run(|adapter, comm| match text {
        true => crate::text::imp_command(adapter.open()?, &cmd, comm),
        false => crate::imp::command(adapter.open()?, &cmd, &comm),
    })?;
    if !ranks.is_root() {
        return Ok(());
    }
    report.print();
    println!(
        "wrote {} (report {})",
        cmd.out.display(),
        crate::imp::report_path(&cmd.report_dir(), "json").display()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// PAD training checkpoint, or its run directory.
    #[arg(long, value_parser = crate::run_dir::checkpoint_arg)]
    pub checkpoint: PathBuf,
    /// Deploy file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    pub force: bool,
    /// How the deploy file stores its weights: f16 halves its bytes (each value rounded to
    /// f16; widened to f32 again when loaded, so any adapter runs it).
    #[arg(long, value_enum, default_value_t = crate::checkpoint::Floats::F32)]
    pub dtype: crate::checkpoint::Floats,
}

/// The files a command reads a checkpoint's model from: the checkpoint, and a text model's
/// configuration and tokenizer (in `model_dir`, else beside the checkpoint). No output may
/// replace one of them.
pub(super) fn model_inputs(checkpoint: &Path, model_dir: Option<&Path>) -> Vec<PathBuf> {
    let dir = model_dir.unwrap_or_else(|| checkpoint.parent().unwrap_or(Path::new(".")));
    let mut inputs = vec![checkpoint.to_path_buf()];
    inputs.extend(
        ["bert_config.json", "config.json", "tokenizer.json"]
            .iter()
            .map(|f| dir.join(f)),
    );
    inputs
}

pub fn export(e: &ExportArgs) -> anyhow::Result<()> {
    let (src, dst) = (e.checkpoint.as_path(), e.out.as_path());
    crate::checkpoint::check_output(
        "--out",
        dst,
        &model_inputs(src, None)
            .iter()
            .map(PathBuf::as_path)
            .collect::<Vec<_>>(),
        e.force,
    )?;
    let r = crate::export::export(src, dst, e.dtype)?;
    let size = crate::export::file_size;
    let (pad, deploy) = (size(src), size(dst));
    println!(
        "{} PAD layers, κ = {:.4}: {} ({:.2} MB) -> {} ({:.2} MB, {:.1}% of the PAD checkpoint)",
        r.layers,
        r.dynamic_positions as f64 / r.positions.max(1) as f64,
        src.display(),
        pad as f64 / 1e6,
        dst.display(),
        deploy as f64 / 1e6,
        100.0 * deploy as f64 / pad.max(1) as f64
    );
    println!(
        "the same model fully dynamic (DY-Conv or MoE, no static part): {:.2} MB of tensors; the deploy file is {:.1}% of it",
        r.dyconv_bytes as f64 / 1e6,
        100.0 * deploy as f64 / r.dyconv_bytes.max(1) as f64
    );
    // The deploy file is written: a comparison that cannot be made only warns.
    let costs = match crate::text::is_text_checkpoint(&crate::checkpoint::load_metadata(dst)?) {
        true => crate::text::export_costs(src, dst, &r).map(|rows| (rows, "token")),
        false => crate::eval::export_costs(src, dst, &r).map(|rows| (rows, "image")),
    };
    match costs {
        Ok((rows, unit)) => print_costs(&rows, unit),
        Err(e) => eprintln!("warning: no cost comparison: {e}"),
    }
    Ok(())
}

/// The comparison table of `export` (parameters, bytes, multiply-accumulates per `unit`).
fn print_costs(rows: &[crate::export::Cost], unit: &str) {
    let Some(first) = rows.first() else { return };
    let (base, base_name) = (first.macs.max(1), &first.model);
    println!("\n| model | parameters | size | MACs per {unit} | MACs vs {base_name} |");
    println!("|---|---|---|---|---|");
    for r in rows {
        let size = match r.file {
            true => format!("{:.2} MB (file)", r.bytes as f64 / 1e6),
            false => format!("{:.2} MB (f32)", r.bytes as f64 / 1e6),
        };
        println!(
            "| {} | {:.3} M | {size} | {:.2} M | {:.2}× |",
            r.model,
            r.params as f64 / 1e6,
            r.macs as f64 / 1e6,
            r.macs as f64 / base as f64
        );
    }
}

//! `bench`: the benchmark suites (timed, checked, written as a record), the comparison of
//! records, or the training-step time of one model in each of its modes.

use super::Mode;
use crate::bench::models::StepTimes;
use crate::bench::{record::Record, Options, Suite};
use crate::gpu::tuning::Precision;
use crate::gpu::Gpu;
use crate::models::bert::BertConfig;
use crate::models::Stem;
use crate::names::Named;
use crate::train::TrainConfig;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    compare: Option<BenchCommand>,
    /// Which workloads: kernels (single ops vs the CPU reference), layers (one layer's forward
    /// and backward per mode), train (training steps of ResNet-10 and MiniLM in every mode),
    /// infer (ResNet-10 inference per mode and as a deploy file) or all.
    #[arg(long, value_enum, default_value_t = Suite::Kernels, help_heading = "Suites")]
    suite: Suite,
    /// Write the record (schema padnet-bench/1, docs/benchmarks.md) to this file.
    #[arg(long, help_heading = "Suites")]
    json: Option<PathBuf>,
    /// Replace an existing --json file.
    #[arg(long, help_heading = "Suites")]
    force: bool,
    /// Timed samples per workload (the median is reported).
    #[arg(long, value_parser = crate::values::count, default_value_t = 5, help_heading = "Suites")]
    samples: usize,
    /// Small shapes only: a smoke test of the suite, not a measurement.
    #[arg(long, help_heading = "Suites")]
    quick: bool,
    /// Only workloads whose name contains this text.
    #[arg(long, help_heading = "Suites")]
    filter: Option<String>,
    /// Time with the host clock around each submit even where GPU timestamps exist.
    #[arg(long, help_heading = "Suites")]
    wall_clock: bool,
    /// Skip measuring the adapter's FMA and bandwidth peaks.
    #[arg(long, help_heading = "Suites")]
    no_peaks: bool,
    /// The precision GEMMs and convolutions multiply in: f16 (adapters with shader-f16) rounds
    /// operands to f16 and sums in f16 over short chunks, then in f32; results are checked to
    /// 1e-2 instead of 1e-4 (docs/numerics.md, "Half precision").
    #[arg(long, value_enum, default_value_t = Precision::F32, env = "PADNET_PRECISION")]
    precision: Precision,
    /// Time training steps of this model (static, dynamic and pad) instead of a suite.
    #[arg(long, help_heading = "One model")]
    model: Option<String>,
    #[arg(long, value_parser = crate::values::count, default_value_t = 32, help_heading = "One model")]
    input_size: usize,
    #[arg(long, value_parser = crate::values::count, default_value_t = 3, help_heading = "One model")]
    channels: usize,
    #[arg(long, value_parser = crate::values::count, default_value_t = 64, help_heading = "One model")]
    batch_size: usize,
    #[arg(long, value_enum, default_value_t = Stem::Cifar, help_heading = "One model")]
    stem: Stem,
    #[arg(long, value_parser = crate::values::positive, default_value_t = 1.0, help_heading = "One model")]
    width: f32,
    /// Timed steps per mode (the median is reported).
    #[arg(long, value_parser = crate::values::count, default_value_t = 5, help_heading = "One model")]
    steps: usize,
    /// Modes to time (comma-separated) [default: static,dynamic,pad for images;
    /// dense,moe,pad for text].
    #[arg(long, value_enum, value_delimiter = ',', help_heading = "One model")]
    modes: Vec<Mode>,
    /// Text models: tokens per sequence.
    #[arg(long, value_parser = crate::values::count, default_value_t = 32, help_heading = "One model")]
    seq_len: usize,
    /// Text models: directory with config.json (default: all-MiniLM-L6-v2's configuration;
    /// no weights are needed).
    #[arg(long, help_heading = "One model")]
    model_dir: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum BenchCommand {
    /// Compare records (bench --json files): a Markdown table on stdout, and with --out the
    /// table and PNG charts (speed-up over the first record, % of each adapter's peak).
    #[command(
        after_help = "Examples:\n  padnet-wgpu bench compare results/lavapipe.json results/h200.json\n  padnet-wgpu bench compare results/*.json --out compare/"
    )]
    Compare {
        /// Records to compare; the first is the baseline.
        #[arg(required = true)]
        records: Vec<PathBuf>,
        /// Directory for compare.md, speedup.png and peak.png.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn bench(selector: Option<&str>, b: BenchArgs) -> anyhow::Result<()> {
    if let Some(BenchCommand::Compare { records, out }) = &b.compare {
        return compare(records, out.as_deref());
    }
    if let Some(json) = &b.json {
        crate::checkpoint::check_output("--json", json, &[], b.force)?;
    }
    let g = Arc::new(Gpu::new(selector)?.with_precision(b.precision)?);
    println!("adapter: {}", g.describe());
    let settings = crate::bench::record::Record::new(&g).settings();
    if !settings.is_empty() {
        println!("settings: {}", settings.join(", "));
    }
    let Some(model) = b.model.clone() else {
        return suite(&g, &b);
    };
    if crate::text::TEXT_MODELS.contains(&model.as_str()) {
        return bench_text(&g, &b);
    }
    let modes = match &b.modes[..] {
        [] => vec![Mode::Static, Mode::Dynamic, Mode::Pad],
        m => m.to_vec(),
    };
    let conv_modes = modes
        .iter()
        .map(|m| m.image())
        .collect::<crate::Result<Vec<_>>>()?;
    let cfg = TrainConfig {
        model,
        stem: b.stem,
        width: b.width,
        batch_size: b.batch_size,
        ..Default::default()
    };
    let sample = [b.channels, b.input_size, b.input_size];
    println!(
        "{} width {} stem {}, input {}x{}x{}, batch {}: median of {} training steps, modes interleaved",
        cfg.model, cfg.width, cfg.stem.name(), sample[0], sample[1], sample[2], cfg.batch_size, b.steps
    );
    let results = crate::bench::models::train_steps(&g, &cfg, &conv_modes, sample, 10, b.steps)?;
    report(&modes, &results, cfg.batch_size, "img/s");
    Ok(())
}

/// Training-step time of a BERT classifier at batch × seq-len tokens.
fn bench_text(g: &Arc<Gpu>, b: &BenchArgs) -> anyhow::Result<()> {
    let bert = match &b.model_dir {
        Some(dir) => BertConfig::load(&dir.join("config.json"))?,
        None => BertConfig::minilm_l6(),
    };
    let modes = match &b.modes[..] {
        [] => vec![Mode::Dense, Mode::Moe, Mode::Pad],
        m => m.to_vec(),
    };
    let text_modes = modes
        .iter()
        .map(|m| m.text())
        .collect::<crate::Result<Vec<_>>>()?;
    let (batch, len) = (b.batch_size, b.seq_len);
    println!(
        "BERT {} layers, hidden {}, {} heads, FFN {}; batch {batch} x {len} tokens: median of {} training steps, modes interleaved",
        bert.num_hidden_layers, bert.hidden_size, bert.num_attention_heads, bert.intermediate_size, b.steps
    );
    let results =
        crate::bench::models::text_train_steps(g, &bert, &text_modes, batch, len, b.steps)?;
    report(&modes, &results, batch * len, "tokens/s");
    Ok(())
}

/// One line per mode: ms per step, throughput, ratio to the first mode, peak memory.
fn report(modes: &[Mode], results: &[StepTimes], units_per_step: usize, unit: &str) {
    let base_ms = results.first().map_or(1.0, StepTimes::median_ms);
    for (mode, t) in modes.iter().zip(results) {
        let ms = t.median_ms();
        println!(
            "  {:<8} {ms:9.1} ms/step  {:9.1} {unit}  {:5.2}x the first mode  peak {:.0} MiB  {} dispatches",
            mode.name(),
            units_per_step as f64 / ms * 1e3,
            ms / base_ms,
            t.peak_bytes as f64 / (1 << 20) as f64,
            t.dispatches
        );
    }
}

/// Runs the suite, printing each workload as it finishes, and writes the record.
fn suite(g: &Arc<Gpu>, b: &BenchArgs) -> anyhow::Result<()> {
    let opts = Options {
        suite: b.suite,
        samples: b.samples,
        quick: b.quick,
        filter: b.filter.clone(),
        wall_clock: b.wall_clock,
        peaks: !b.no_peaks,
        ..Default::default()
    };
    println!(
        "suite {}: median of {} samples per workload; kernels, layers and inference checked against the f64 CPU reference (to {:.0e}), training steps for a finite loss",
        b.suite.name(),
        opts.samples,
        crate::bench::tolerance(g.precision)
    );
    if let Some(notice) = g.precision.notice() {
        println!("{notice}");
    }
    println!(
        "{:<58} {:>10} {:>12} {:>5} {:>7} {:>6}",
        "workload", "ms", "rate", "ranks", "% peak", "check"
    );
    let mut failed = vec![];
    let record = crate::bench::run(g, &opts, &mut |w| {
        let (rate, unit) = w.rate().unwrap_or((0.0, ""));
        // Model workloads are compute-bound without a FLOP count: their bandwidth share
        // says nothing.
        let pct = match w.throughput {
            Some(_) => None,
            None => w.pct_peak_flops.or(w.pct_peak_bandwidth),
        };
        // Training steps run on one rank or as data-parallel ranks (docs/distributed.md).
        let ranks = match w.suite.as_str() {
            "train" => w.shapes.get("ranks").map_or(1, |r| r[0]).to_string(),
            _ => "-".into(),
        };
        println!(
            "{:<58} {:>10.3} {:>12} {:>5} {:>7} {:>6}",
            w.name,
            w.stats.median_ms,
            format!("{rate:.1} {unit}"),
            ranks,
            pct.map_or("-".into(), |p| format!("{p:.1}")),
            if w.check.correct { "ok" } else { "FAILED" }
        );
        if !w.check.correct {
            failed.push(w.name.clone());
        }
    })?;
    if let Some(p) = &record.peaks {
        println!("peaks of this adapter: {p}");
    }
    // How each suite was timed, named as the record names it.
    let mut timing: Vec<String> = vec![];
    for w in &record.workloads {
        let method = serde_json::to_value(w.timing.method).expect("methods serialise");
        let line = format!("{} by {}", w.suite, method.as_str().unwrap_or_default());
        if !timing.contains(&line) {
            timing.push(line);
        }
    }
    println!("timing: {}", timing.join(", "));
    if let Some(json) = &b.json {
        record.save(json)?;
        println!("record written to {}", json.display());
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} workload(s) computed a wrong result: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

fn compare(paths: &[PathBuf], out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let records = paths
        .iter()
        .map(|p| Record::load(p))
        .collect::<crate::Result<Vec<_>>>()?;
    print!("{}", crate::bench::compare::markdown(&records));
    if let Some(out) = out {
        crate::bench::compare::write(&records, out)?;
        println!("wrote compare.md and charts to {}", out.display());
    }
    Ok(())
}

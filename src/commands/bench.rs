//! `bench`: kernel GFLOP/s, or the training-step time of a model in each of its modes.

use super::Mode;
use crate::gpu::Gpu;
use crate::models::bert::BertConfig;
use crate::models::Stem;
use crate::names::Named;
use crate::train::TrainConfig;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Time training steps of this model (static, dynamic and pad) instead of the kernels.
    #[arg(long)]
    model: Option<String>,
    #[arg(long, value_parser = crate::values::count, default_value_t = 32)]
    input_size: usize,
    #[arg(long, value_parser = crate::values::count, default_value_t = 3)]
    channels: usize,
    #[arg(long, value_parser = crate::values::count, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, value_enum, default_value_t = Stem::Cifar)]
    stem: Stem,
    #[arg(long, value_parser = crate::values::positive, default_value_t = 1.0)]
    width: f32,
    /// Timed steps per mode (the median is reported).
    #[arg(long, value_parser = crate::values::count, default_value_t = 5)]
    steps: usize,
    /// Modes to time (comma-separated) [default: static,dynamic,pad for images;
    /// dense,moe,pad for text].
    #[arg(long, value_enum, value_delimiter = ',')]
    modes: Vec<Mode>,
    /// Text models: tokens per sequence.
    #[arg(long, value_parser = crate::values::count, default_value_t = 32)]
    seq_len: usize,
    /// Text models: directory with config.json (default: all-MiniLM-L6-v2's configuration;
    /// no weights are needed).
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

pub fn bench(selector: Option<&str>, b: BenchArgs) -> anyhow::Result<()> {
    let g = Arc::new(Gpu::new(selector)?);
    println!("adapter: {}", g.describe());
    let Some(model) = b.model.clone() else {
        let blk = g.blocking;
        println!(
            "register blocking: {}x{} outputs per invocation, {}x{} invocations",
            blk.tm, blk.tn, blk.wx, blk.wy
        );
        println!("{:<42} {:>10} {:>10}", "kernel", "ms", "GFLOP/s");
        for r in crate::bench::run_all(&g)? {
            println!("{:<42} {:>10.3} {:>10.2}", r.name, r.ms, r.gflops);
        }
        return Ok(());
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
    let results = crate::bench::train_steps(&g, &cfg, &conv_modes, sample, 10, b.steps)?;
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
    let results = crate::bench::text_train_steps(g, &bert, &text_modes, batch, len, b.steps)?;
    report(&modes, &results, batch * len, "tokens/s");
    Ok(())
}

/// One line per mode: ms per step, throughput, ratio to the first mode, peak memory.
fn report(modes: &[Mode], results: &[(f64, u64)], units_per_step: usize, unit: &str) {
    let base_ms = results.first().map_or(1.0, |r| r.0);
    for (mode, (ms, mem)) in modes.iter().zip(results) {
        println!(
            "  {:<8} {ms:9.1} ms/step  {:9.1} {unit}  {:5.2}x the first mode  peak {:.0} MiB",
            mode.name(),
            units_per_step as f64 / ms * 1e3,
            ms / base_ms,
            *mem as f64 / (1 << 20) as f64
        );
    }
}

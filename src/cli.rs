//! Implementations of the CLI subcommands (kept in the library so they are testable).

use crate::error::Error;
use crate::gpu::{self, Gpu};

/// A clap argument group with every option at its declared default: so that a default is
/// written once, in the `#[arg]` attribute, and `Default` impls read it from there.
pub fn defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let cmd = T::augment_args(clap::Command::new("defaults"));
    let matches = cmd
        .try_get_matches_from(["defaults"])
        .expect("every option of a defaults() group has a default");
    T::from_arg_matches(&matches).expect("defaults match their own arguments")
}

/// Exit code for an error: 2 when no GPU adapter is usable, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<Error>() {
        Some(Error::NoAdapter { .. }) | Some(Error::AdapterNotFound { .. }) => 2,
        _ => 1,
    }
}

pub fn info(selector: Option<&str>) -> anyhow::Result<()> {
    let adapters = gpu::list_adapters();
    if adapters.is_empty() {
        return Err(Error::NoAdapter {
            details: "wgpu enumerated no adapter".into(),
        }
        .into());
    }
    println!("Adapters (best first is chosen unless --adapter / PADNET_ADAPTER says otherwise):");
    for (i, a) in adapters.iter().enumerate() {
        println!("  {}", gpu::describe_adapter(i, &a.get_info()));
    }
    let g = Gpu::new(selector)?;
    let l = &g.limits;
    println!("\nSelected: {}", g.describe());
    println!("Requested limits:");
    println!(
        "  max_storage_buffers_per_shader_stage  {}",
        l.max_storage_buffers_per_shader_stage
    );
    println!(
        "  max_storage_buffer_binding_size       {} MiB",
        l.max_storage_buffer_binding_size >> 20
    );
    println!(
        "  max_buffer_size                       {} MiB",
        l.max_buffer_size >> 20
    );
    println!(
        "  max_compute_invocations_per_workgroup {}",
        l.max_compute_invocations_per_workgroup
    );
    println!(
        "  max_compute_workgroup_storage_size    {} KiB",
        l.max_compute_workgroup_storage_size >> 10
    );
    println!(
        "  max_compute_workgroups_per_dimension  {}",
        l.max_compute_workgroups_per_dimension
    );
    Ok(())
}

pub fn bench(selector: Option<&str>) -> anyhow::Result<()> {
    let g = std::sync::Arc::new(Gpu::new(selector)?);
    println!("adapter: {}", g.describe());
    let b = g.blocking;
    println!(
        "register blocking: {}x{} outputs per invocation, {}x{} invocations",
        b.tm, b.tn, b.wx, b.wy
    );
    println!("{:<42} {:>10} {:>10}", "kernel", "ms", "GFLOP/s");
    for r in crate::bench::run_all(&g)? {
        println!("{:<42} {:>10.3} {:>10.2}", r.name, r.ms, r.gflops);
    }
    Ok(())
}

pub fn train(selector: Option<&str>, cfg: crate::train::TrainConfig) -> anyhow::Result<()> {
    let gpu = std::sync::Arc::new(Gpu::new(selector)?);
    let t0 = std::time::Instant::now();
    let history = crate::train::train(gpu, &cfg)?;
    if let Some(last) = history.last() {
        let best = history.iter().map(|m| m.test_acc).fold(0.0, f64::max);
        let img_s = history.iter().map(|m| m.train_img_per_s).sum::<f64>() / history.len() as f64;
        println!(
            "done in {:.1} s: final test accuracy {:.2}% (best {:.2}%), {:.0} img/s training; \
             checkpoint {}",
            t0.elapsed().as_secs_f64(),
            100.0 * last.test_acc,
            100.0 * best,
            img_s,
            cfg.out.join("model.safetensors").display()
        );
    }
    Ok(())
}

pub fn train_text(selector: Option<&str>, cfg: crate::text::TextTrainConfig) -> anyhow::Result<()> {
    if !cfg.model_dir.join("model.safetensors").is_file()
        && cfg.model_dir.ends_with("all-MiniLM-L6-v2")
    {
        anyhow::bail!(
            "{} lacks the pretrained MiniLM; fetch it with scripts/fetch-minilm.sh",
            cfg.model_dir.display()
        );
    }
    let gpu = std::sync::Arc::new(Gpu::new(selector)?);
    let t0 = std::time::Instant::now();
    let history = crate::text::train(gpu, &cfg)?;
    if let Some(last) = history.last() {
        println!(
            "done in {:.1} s: dev {}; {:.0} tokens/s training; checkpoint {}",
            t0.elapsed().as_secs_f64(),
            last.dev,
            history.iter().map(|m| m.tokens_per_s).sum::<f64>() / history.len() as f64,
            cfg.out.join("model.safetensors").display()
        );
    }
    Ok(())
}

/// `eval`: image checkpoints on a dataset's test split, text checkpoints (BERT, incl. PAD-MoE
/// deploy files) on their task's dev split.
pub fn eval(
    selector: Option<&str>,
    cfg: crate::eval::EvalConfig,
    task: Option<String>,
    model_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let meta = crate::checkpoint::load_metadata(&cfg.checkpoint)?;
    let gpu = std::sync::Arc::new(Gpu::new(selector)?);
    if crate::text::is_text_checkpoint(&meta) {
        let r = crate::text::evaluate(
            gpu,
            &crate::text::TextEvalConfig {
                checkpoint: cfg.checkpoint.clone(),
                task,
                data_dir: cfg.data_dir,
                model_dir,
                batch_size: cfg.batch_size.min(64),
                limit: cfg.limit,
                logits_out: cfg.logits_out.clone(),
            },
        )?;
        println!(
            "{}{}: {} dev examples of {}, loss {:.4}, {}, {:.0} tokens/s inference",
            cfg.checkpoint.display(),
            if r.deploy { " (deploy file)" } else { "" },
            r.examples,
            r.task,
            r.loss,
            r.scores,
            r.tokens_per_s
        );
    } else {
        let r = crate::eval::eval(gpu, &cfg)?;
        println!(
            "{}: {} test images, loss {:.4}, accuracy {:.2}%, {:.0} img/s inference",
            cfg.checkpoint.display(),
            r.samples,
            r.loss,
            100.0 * r.accuracy,
            r.images_per_s
        );
    }
    if let Some(p) = &cfg.logits_out {
        println!("logits written to {}", p.display());
    }
    Ok(())
}

/// Training-step time of a BERT classifier (`bert` dims) at batch × len tokens.
pub fn bench_text(
    selector: Option<&str>,
    bert: crate::models::bert::BertConfig,
    modes: &[String],
    batch: usize,
    len: usize,
    steps: usize,
) -> anyhow::Result<()> {
    let g = std::sync::Arc::new(Gpu::new(selector)?);
    println!("adapter: {}", g.describe());
    println!(
        "BERT {} layers, hidden {}, {} heads, FFN {}; batch {batch} x {len} tokens: median of {steps} training steps, modes interleaved",
        bert.num_hidden_layers, bert.hidden_size, bert.num_attention_heads, bert.intermediate_size
    );
    let results = crate::bench::text_train_steps(&g, &bert, modes, batch, len, steps)?;
    let base_ms = results.first().map_or(1.0, |r| r.0);
    for (mode, (ms, mem)) in modes.iter().zip(results) {
        println!(
            "  {mode:<8} {ms:9.1} ms/step  {:9.0} tokens/s  {:5.2}x the first mode  peak {:.0} MiB",
            (batch * len) as f64 / ms * 1e3,
            ms / base_ms,
            mem as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}

pub fn bench_steps(
    selector: Option<&str>,
    cfg: crate::train::TrainConfig,
    sample: [usize; 3],
    steps: usize,
    modes: &[String],
) -> anyhow::Result<()> {
    let g = std::sync::Arc::new(Gpu::new(selector)?);
    println!("adapter: {}", g.describe());
    println!(
        "{} width {} stem {}, input {}x{}x{}, batch {}: median of {steps} training steps, modes interleaved",
        cfg.model, cfg.width, cfg.stem, sample[0], sample[1], sample[2], cfg.batch_size
    );
    let results = crate::bench::train_steps(&g, &cfg, modes, sample, 10, steps)?;
    let base_ms = results.first().map_or(1.0, |r| r.0);
    for (mode, (ms, mem)) in modes.iter().zip(results) {
        println!(
            "  {mode:<8} {ms:9.1} ms/step  {:7.1} img/s  {:5.2}x the first mode  peak {:.0} MiB",
            cfg.batch_size as f64 / ms * 1e3,
            ms / base_ms,
            mem as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}

pub fn imp(
    selector: Option<&str>,
    cmd: anyhow::Result<crate::imp::ImpCommand>,
) -> anyhow::Result<()> {
    let cmd = cmd?;
    let gpu = std::sync::Arc::new(Gpu::new(selector)?);
    let meta = crate::checkpoint::load_metadata(&cmd.checkpoint)?;
    let report = if crate::text::is_text_checkpoint(&meta) {
        crate::text::imp_command(gpu, &cmd)?
    } else {
        crate::imp::command(gpu, &cmd)?
    };
    report.print();
    println!(
        "wrote {} (report {})",
        cmd.out.display(),
        crate::imp::report_path(&cmd.report_dir(), "json").display()
    );
    Ok(())
}

pub fn export(src: &std::path::Path, dst: &std::path::Path) -> anyhow::Result<()> {
    let r = crate::export::export(src, dst)?;
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
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
    Ok(())
}

pub fn experiment(
    selector: Option<&str>,
    cfg: crate::experiment::ExperimentConfig,
) -> anyhow::Result<()> {
    let gpu = std::sync::Arc::new(Gpu::new(selector)?);
    let rows = crate::experiment::run(gpu, &cfg)?;
    println!("\n{}", crate::experiment::markdown(&cfg, &rows));
    println!(
        "written to {}/results.md, results.json, results.png",
        cfg.out.display()
    );
    Ok(())
}

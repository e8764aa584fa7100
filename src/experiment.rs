//! `padnet-wgpu experiment`: static vs fully dynamic (DY-Conv) vs PAD at several κ, over
//! several seeds, on one dataset; writes a Markdown table, JSON and a PNG chart.

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{DType, Graph, Role};
use crate::models::{self, ModelConfig};
use crate::nn::Builder;
use crate::train::{self, TrainConfig};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct ExperimentConfig {
    /// Base training settings (model, dataset, epochs, ...); mode, κ, seed and out vary.
    pub base: TrainConfig,
    pub kappas: Vec<f64>,
    pub seeds: Vec<u64>,
    pub out: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub mode: String,
    pub kappa: Option<f64>,
    pub seed: u64,
    pub test_acc: f64,
    pub seconds: f64,
    /// Trainable parameters while training.
    pub params: usize,
    /// Parameters of the deployed model (PAD: static merged, dynamic sparse).
    pub deploy_params: usize,
    /// Bytes of the file one deploys: the checkpoint, or for PAD the exported deploy file.
    pub deploy_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub label: String,
    pub mode: String,
    pub kappa: Option<f64>,
    pub mean_acc: f64,
    pub std_acc: f64,
    pub accs: Vec<f64>,
    pub params: usize,
    pub deploy_params: usize,
    pub deploy_bytes: u64,
    pub mean_seconds: f64,
}

/// Trainable parameters of a model (graph construction only).
pub fn count_params(model: &ModelConfig, sample: [usize; 3], classes: usize) -> Result<usize> {
    let mut g = Graph::new();
    let x = g.input("images", &[1, sample[0], sample[1], sample[2]], DType::F32);
    models::build(model, &mut Builder::new(&mut g, true), x, classes)?;
    Ok(g.tensors
        .iter()
        .filter(|t| matches!(t.role, Role::Param(_)))
        .map(|t| t.numel())
        .sum())
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn one(
    gpu: &Arc<Gpu>,
    cfg: &ExperimentConfig,
    mode: &str,
    kappa: Option<f64>,
    seed: u64,
) -> Result<Run> {
    let tag = match kappa {
        Some(k) => format!("{mode}-k{k}-s{seed}"),
        None => format!("{mode}-s{seed}"),
    };
    let out = cfg.out.join(&tag);
    let tc = TrainConfig {
        mode: mode.into(),
        kappa,
        seed,
        out: out.clone(),
        progress: false,
        ..cfg.base.clone()
    };
    println!("== {tag}");
    let t = std::time::Instant::now();
    let history = train::train(gpu.clone(), &tc)?;
    let seconds = t.elapsed().as_secs_f64();
    let last = history
        .last()
        .ok_or_else(|| Error::Invalid("a run without epochs".into()))?;
    let ckpt = out.join("model.safetensors");
    let meta = checkpoint::load_metadata(&ckpt)?;
    let classes: usize = meta
        .get("classes")
        .and_then(|c| c.parse().ok())
        .unwrap_or(10);
    let shape: Vec<usize> = meta
        .get("input_shape")
        .map(|s| {
            s.trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .filter_map(|v| v.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let sample = [shape[0], shape[1], shape[2]];
    let params = count_params(&tc.model_config()?, sample, classes)?;
    let (deploy_params, deploy_bytes) = if mode == "pad" {
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("imp_report.json"))
                .map_err(|e| Error::io(out.join("imp_report.json"), e))?,
        )
        .map_err(|e| Error::data(out.join("imp_report.json"), e.to_string()))?;
        let deploy = out.join("deploy.safetensors");
        crate::export::export(&ckpt, &deploy)?;
        (
            report["deployable_params"].as_u64().unwrap_or(0) as usize,
            file_size(&deploy),
        )
    } else {
        (params, file_size(&ckpt))
    };
    Ok(Run {
        mode: mode.into(),
        kappa,
        seed,
        test_acc: last.test_acc,
        seconds,
        params,
        deploy_params,
        deploy_bytes,
    })
}

/// Runs every configuration for every seed; returns the aggregated rows.
pub fn run(gpu: Arc<Gpu>, cfg: &ExperimentConfig) -> Result<Vec<Row>> {
    if cfg.seeds.is_empty() {
        return Err(Error::Invalid("--seeds needs at least one seed".into()));
    }
    let mut configs: Vec<(String, Option<f64>)> =
        vec![("static".into(), None), ("dynamic".into(), None)];
    configs.extend(cfg.kappas.iter().map(|&k| ("pad".to_string(), Some(k))));
    let mut runs = vec![];
    for &seed in &cfg.seeds {
        for (mode, kappa) in &configs {
            runs.push(one(&gpu, cfg, mode, *kappa, seed)?);
            let json = serde_json::to_string_pretty(&runs).expect("runs serialise");
            checkpoint::write_atomic(&cfg.out.join("runs.json"), json.as_bytes())?;
        }
    }
    let rows: Vec<Row> = configs
        .iter()
        .map(|(mode, kappa)| {
            let rs: Vec<&Run> = runs
                .iter()
                .filter(|r| &r.mode == mode && r.kappa == *kappa)
                .collect();
            let accs: Vec<f64> = rs.iter().map(|r| r.test_acc).collect();
            let n = accs.len() as f64;
            let mean = accs.iter().sum::<f64>() / n;
            let std = if accs.len() > 1 {
                (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                0.0
            };
            let label = match kappa {
                Some(k) => format!("PAD κ={k}"),
                None if mode == "static" => "static".into(),
                None => "DY-Conv".into(),
            };
            Row {
                label,
                mode: mode.clone(),
                kappa: *kappa,
                mean_acc: mean,
                std_acc: std,
                accs,
                params: rs[0].params,
                deploy_params: rs[0].deploy_params,
                deploy_bytes: rs[0].deploy_bytes,
                mean_seconds: rs.iter().map(|r| r.seconds).sum::<f64>() / n,
            }
        })
        .collect();
    let json = serde_json::to_string_pretty(&rows).expect("rows serialise");
    checkpoint::write_atomic(&cfg.out.join("results.json"), json.as_bytes())?;
    checkpoint::write_atomic(&cfg.out.join("results.md"), markdown(cfg, &rows).as_bytes())?;
    crate::plot::bar_chart(
        &cfg.out.join("results.png"),
        "test accuracy (%), mean and std over seeds",
        &rows
            .iter()
            .map(|r| (r.label.clone(), 100.0 * r.mean_acc, 100.0 * r.std_acc))
            .collect::<Vec<_>>(),
    )?;
    Ok(rows)
}

pub fn markdown(cfg: &ExperimentConfig, rows: &[Row]) -> String {
    let b = &cfg.base;
    let mut s =
        format!(
        "{} (width {}, stem {}) on {} ({} training images{}), {} epochs, batch {}, seeds {:?}\n\n",
        b.model,
        b.width,
        b.stem,
        b.dataset,
        b.limit_train.map(|n| n.to_string()).unwrap_or_else(|| "all".into()),
        b.limit_test.map(|n| format!(", {n} test")).unwrap_or_default(),
        b.epochs,
        b.batch_size,
        cfg.seeds
    );
    s += "| model | test accuracy (mean ± std) | parameters (training) | parameters (deployed) | deployed file | train time |\n";
    s += "|---|---|---|---|---|---|\n";
    for r in rows {
        s += &format!(
            "| {} | {:.2} ± {:.2} % | {:.3} M | {:.3} M | {:.2} MB | {:.0} s |\n",
            r.label,
            100.0 * r.mean_acc,
            100.0 * r.std_acc,
            r.params as f64 / 1e6,
            r.deploy_params as f64 / 1e6,
            r.deploy_bytes as f64 / 1e6,
            r.mean_seconds
        );
    }
    s
}

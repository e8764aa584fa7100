//! `padnet-wgpu experiment`: the fully dynamic model against its static counterpart and PAD
//! at several κ, over several seeds, on one dataset or task — images: static vs DY-Conv vs
//! PAD-Conv; text: dense vs MoE vs PAD-MoE. Writes a Markdown table, JSON and a PNG chart.

use crate::checkpoint;
use crate::dist::Ranks;
use crate::error::{Error, Result};
use crate::export::file_size;
use crate::fit::RunConfig;
use crate::gpu::Gpu;
use crate::names::Named;
use crate::nn::dynamic::ConvMode;
use crate::text::{TextMode, TextTrainConfig};
use crate::train::TrainConfig;
use crate::trainer::RunOptions;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct ExperimentConfig {
    /// The training settings every run shares (model, data, epochs, ...); mode, κ, seed and
    /// out vary.
    pub base: RunConfig,
    /// The baseline modes trained beside PAD (None: both of [`RunConfig::baselines`]).
    pub baselines: Option<Vec<String>>,
    pub kappas: Vec<f64>,
    pub seeds: Vec<u64>,
    pub out: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub mode: String,
    pub kappa: Option<f64>,
    pub seed: u64,
    /// The task's score on its evaluation split: test accuracy for images, dev accuracy
    /// (classification) or Pearson's r (regression) for text.
    pub score: f64,
    pub seconds: f64,
    /// Trainable parameters while training.
    pub params: usize,
    /// Parameters of the deployed model (PAD: static merged, dynamic sparse).
    pub deploy_params: usize,
    /// Bytes of the training checkpoint (model.safetensors).
    pub train_bytes: u64,
    /// Bytes of the file one deploys: the checkpoint, or for PAD the exported deploy file.
    pub deploy_bytes: u64,
    /// Inference throughput of that file (`eval`): test images/s, or dev tokens/s for text.
    pub infer_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub label: String,
    pub mode: String,
    pub kappa: Option<f64>,
    pub mean_score: f64,
    pub std_score: f64,
    pub scores: Vec<f64>,
    pub params: usize,
    pub deploy_params: usize,
    pub train_bytes: u64,
    pub deploy_bytes: u64,
    pub mean_seconds: f64,
    /// Median over seeds of the deployed file's inference throughput.
    pub median_infer_per_s: f64,
}

impl RunConfig {
    /// (mode, label) of the runs without IMP: the static and the fully dynamic model (modes
    /// by name: `ConvMode` for images, `TextMode` for text).
    fn baselines(&self) -> [(&'static str, &'static str); 2] {
        match self {
            RunConfig::Image(_) => [("static", "static"), ("dynamic", "DY-Conv")],
            RunConfig::Text(_) => [("dense", "dense"), ("moe", "MoE")],
        }
    }

    /// The partially dynamic model's name: PAD (images) or PAD-MoE (text).
    fn pad_name(&self) -> &'static str {
        match self {
            RunConfig::Image(_) => "PAD",
            RunConfig::Text(_) => "PAD-MoE",
        }
    }

    /// "PAD κ=0.3", with the mask granularity when it is not element-wise ("… (filters)").
    fn pad_label(&self, kappa: f64) -> String {
        use crate::imp::Granularity;
        use crate::names::Named;
        let granularity = match self {
            RunConfig::Image(c) => c.imp.granularity,
            RunConfig::Text(c) => c.imp.granularity,
        };
        match granularity {
            Granularity::Element => format!("{} κ={kappa}", self.pad_name()),
            g => format!("{} κ={kappa} ({}s)", self.pad_name(), g.name()),
        }
    }

    pub fn score_name(&self) -> &'static str {
        match self {
            RunConfig::Image(_) => "test accuracy",
            RunConfig::Text(t) if crate::data::tsv::is_regression_task(&t.task) => "dev Pearson r",
            RunConfig::Text(_) => "dev accuracy",
        }
    }

    /// One run's configuration: the base with its mode, κ, seed and directory.
    fn with(&self, mode: &str, kappa: Option<f64>, seed: u64, out: &Path) -> Result<Self> {
        Ok(match self {
            RunConfig::Image(b) => RunConfig::Image(TrainConfig {
                mode: ConvMode::parse(mode)?,
                kappa,
                seed,
                run: run_options(&b.run, out),
                ..b.clone()
            }),
            RunConfig::Text(b) => RunConfig::Text(TextTrainConfig {
                mode: TextMode::parse(mode)?,
                kappa: kappa.unwrap_or(b.kappa),
                seed,
                run: run_options(&b.run, out),
                ..b.clone()
            }),
        })
    }

    /// Checks a run's options without a GPU, so that the experiment fails before its first
    /// run rather than after some.
    fn validate(&self) -> Result<()> {
        match self {
            RunConfig::Image(c) => crate::train::validate(c),
            RunConfig::Text(c) => c.bert_moe().map(|_| ()),
        }
    }

    /// Trains this run's configuration on `ranks`: (score, trainable parameters).
    fn train(&self, ranks: &Ranks) -> Result<(f64, usize)> {
        let fitted = ranks.run(|adapter, comm| self.fit_rank(adapter, comm))?;
        let score = fitted
            .history
            .last_score()
            .ok_or_else(|| Error::Invalid(format!("a run of {} epochs", self.run().epochs)))?;
        Ok((score, fitted.params))
    }

    /// Inference throughput of a trained or deployed file on the evaluation split, by `eval`
    /// (a warm-up batch, then one timed pass): images/s or tokens/s.
    fn infer(&self, gpu: &Arc<Gpu>, file: &Path) -> Result<f64> {
        match self {
            RunConfig::Image(b) => {
                let cfg = crate::eval::EvalConfig {
                    checkpoint: file.to_path_buf(),
                    dataset: b.dataset.clone(),
                    data_dir: b.data_dir.clone(),
                    batch_size: b.eval_batch_size,
                    limit: b.limit_test,
                    logits_out: None,
                    overrides: Default::default(),
                    split_filters: true,
                    folder: crate::data::FolderOpts {
                        input_size: b.input_size,
                        strict: b.strict,
                    },
                };
                Ok(crate::eval::eval(gpu.clone(), &cfg)?.images_per_s)
            }
            RunConfig::Text(b) => {
                let cfg = crate::text::TextEvalConfig {
                    checkpoint: file.to_path_buf(),
                    task: Some(b.task.clone()),
                    data_dir: b.data_dir.clone(),
                    model_dir: None,
                    batch_size: b.eval_batch_size,
                    limit: b.limit_dev,
                    logits_out: None,
                    split_filters: true,
                };
                Ok(crate::text::evaluate(gpu.clone(), &cfg)?.tokens_per_s)
            }
        }
    }

    fn eval_batch_size(&self) -> usize {
        match self {
            RunConfig::Image(b) => b.eval_batch_size,
            RunConfig::Text(b) => b.eval_batch_size,
        }
    }

    fn infer_unit(&self) -> &'static str {
        match self {
            RunConfig::Image(_) => "img/s",
            RunConfig::Text(_) => "tokens/s",
        }
    }

    /// The first line of results.md: what was trained, on what, for how long.
    fn describe(&self, seeds: &[u64]) -> String {
        let limit = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_else(|| "all".into());
        match self {
            RunConfig::Image(b) => format!(
                "{} (width {}, stem {}) on {} ({} training images{}), {} epoch(s), batch {}, seeds {seeds:?}",
                b.model,
                b.width,
                b.stem.name(),
                b.dataset,
                limit(b.limit_train),
                b.limit_test.map(|n| format!(", {n} test")).unwrap_or_default(),
                b.run.epochs,
                b.batch_size,
            ),
            RunConfig::Text(b) => format!(
                "BERT from {} ({} experts, top-{}) on {} ({} training examples{}), {} epoch(s), batch {}, seeds {seeds:?}",
                b.model_dir.display(),
                b.experts,
                b.top_k,
                b.task,
                limit(b.limit_train),
                b.limit_dev.map(|n| format!(", {n} dev")).unwrap_or_default(),
                b.run.epochs,
                b.batch_size,
            ),
        }
    }
}

/// The options of one run of the experiment: its own directory, no progress bar.
fn run_options(base: &RunOptions, out: &Path) -> RunOptions {
    RunOptions {
        out: out.to_path_buf(),
        progress: false,
        ..base.clone()
    }
}

/// Trains one run on `ranks`, then (on the reporting process only; others return None)
/// exports and times it.
fn one(
    ranks: &Ranks,
    cfg: &ExperimentConfig,
    mode: &str,
    kappa: Option<f64>,
    seed: u64,
) -> Result<Option<Run>> {
    let tag = match kappa {
        Some(k) => format!("{mode}-k{k}-s{seed}"),
        None => format!("{mode}-s{seed}"),
    };
    let out = cfg.out.join(&tag);
    if ranks.is_root() {
        println!("== {tag}");
    }
    let t = std::time::Instant::now();
    let (score, params) = cfg.base.with(mode, kappa, seed, &out)?.train(ranks)?;
    let seconds = t.elapsed().as_secs_f64();
    if !ranks.is_root() {
        return Ok(None);
    }
    let ckpt = out.join("model.safetensors");
    // What one deploys: PAD's exported deploy file, else the checkpoint itself.
    let (deploy_params, deployed) = if mode == "pad" {
        let path = crate::imp::report_path(&out, "json");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?)
                .map_err(|e| Error::data(&path, e.to_string()))?;
        let deploy = out.join("deploy.safetensors");
        crate::export::export(&ckpt, &deploy, crate::checkpoint::Floats::F32)?;
        let params = report["deployable_params"].as_u64().unwrap_or(0) as usize;
        (params, deploy)
    } else {
        (params, ckpt.clone())
    };
    let infer_per_s = cfg.base.infer(&ranks.gpu()?, &deployed)?;
    Ok(Some(Run {
        mode: mode.into(),
        kappa,
        seed,
        score,
        seconds,
        params,
        deploy_params,
        train_bytes: file_size(&ckpt),
        deploy_bytes: file_size(&deployed),
        infer_per_s,
    }))
}

/// Runs every configuration for every seed, each training on `ranks`; returns the aggregated
/// rows (none on MPI ranks other than 0, which only train).
pub fn run(ranks: &Ranks, cfg: &ExperimentConfig) -> Result<Vec<Row>> {
    if cfg.seeds.is_empty() {
        return Err(Error::Invalid("--seeds needs at least one seed".into()));
    }
    let known = cfg.base.baselines().map(|(mode, _)| mode);
    if let Some(unknown) = cfg
        .baselines
        .iter()
        .flatten()
        .find(|m| !known.contains(&m.as_str()))
    {
        return Err(Error::Invalid(format!(
            "unknown baseline '{unknown}'; valid baselines: {}",
            known.join(", ")
        )));
    }
    let mut configs: Vec<(String, Option<f64>)> = known
        .iter()
        .filter(|m| {
            cfg.baselines
                .as_ref()
                .is_none_or(|b| b.iter().any(|x| x == *m))
        })
        .map(|mode| (mode.to_string(), None))
        .collect();
    configs.extend(cfg.kappas.iter().map(|&k| ("pad".to_string(), Some(k))));
    for (mode, kappa) in &configs {
        cfg.base.with(mode, *kappa, 0, &cfg.out)?.validate()?;
    }
    let mut runs = vec![];
    for &seed in &cfg.seeds {
        for (mode, kappa) in &configs {
            let Some(run) = one(ranks, cfg, mode, *kappa, seed)? else {
                continue;
            };
            runs.push(run);
            let json = serde_json::to_string_pretty(&runs).expect("runs serialise");
            checkpoint::write_atomic(&cfg.out.join("runs.json"), json.as_bytes())?;
        }
    }
    if !ranks.is_root() {
        return Ok(vec![]);
    }
    let rows: Vec<Row> = configs
        .iter()
        .map(|(mode, kappa)| {
            let rs: Vec<&Run> = runs
                .iter()
                .filter(|r| &r.mode == mode && r.kappa == *kappa)
                .collect();
            let scores: Vec<f64> = rs.iter().map(|r| r.score).collect();
            let n = scores.len() as f64;
            let mean = scores.iter().sum::<f64>() / n;
            let std = if scores.len() > 1 {
                (scores.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                0.0
            };
            let label = match kappa {
                Some(k) => cfg.base.pad_label(*k),
                None => {
                    let baselines = cfg.base.baselines();
                    let found = baselines.iter().find(|(m, _)| m == mode);
                    found.map_or(mode.clone(), |(_, l)| l.to_string())
                }
            };
            Row {
                label,
                mode: mode.clone(),
                kappa: *kappa,
                mean_score: mean,
                std_score: std,
                scores,
                params: rs[0].params,
                deploy_params: rs[0].deploy_params,
                train_bytes: rs[0].train_bytes,
                deploy_bytes: rs[0].deploy_bytes,
                mean_seconds: rs.iter().map(|r| r.seconds).sum::<f64>() / n,
                median_infer_per_s: crate::bench::timing::median(
                    &rs.iter().map(|r| r.infer_per_s).collect::<Vec<_>>(),
                ),
            }
        })
        .collect();
    let json = serde_json::to_string_pretty(&rows).expect("rows serialise");
    checkpoint::write_atomic(&cfg.out.join("results.json"), json.as_bytes())?;
    checkpoint::write_atomic(&cfg.out.join("results.md"), markdown(cfg, &rows).as_bytes())?;
    crate::plot::bar_chart(
        &cfg.out.join("results.png"),
        &format!("{} (%), mean and std over seeds", cfg.base.score_name()),
        &rows
            .iter()
            .map(|r| (r.label.clone(), 100.0 * r.mean_score, 100.0 * r.std_score))
            .collect::<Vec<_>>(),
    )?;
    let points: Vec<crate::plot::Point> = rows
        .iter()
        .map(|r| crate::plot::Point {
            series: match r.kappa {
                Some(_) => cfg.base.pad_name().to_string(),
                None => r.label.clone(),
            },
            label: r.label.clone(),
            x: r.deploy_params as f64 / 1e6,
            y: 100.0 * r.mean_score,
            y_error: 100.0 * r.std_score,
        })
        .collect();
    crate::plot::scatter(
        &cfg.out.join("results_params.png"),
        &format!(
            "{} against deployed size (mean ± std over seeds)",
            cfg.base.score_name()
        ),
        "deployed parameters (M)",
        &format!("{} (%)", cfg.base.score_name()),
        &points,
    )?;
    Ok(rows)
}

pub fn markdown(cfg: &ExperimentConfig, rows: &[Row]) -> String {
    let mut s = cfg.base.describe(&cfg.seeds) + "\n\n";
    let seeds = cfg.seeds.len();
    let score_head = match seeds {
        1 => format!("{} (seed {})", cfg.base.score_name(), cfg.seeds[0]),
        n => format!("{} (mean ± std, {n} seeds)", cfg.base.score_name()),
    };
    s += &format!(
        "| model | {score_head} | parameters (training) | parameters (deployed) | training file | deployed file | inference {} | train time |\n",
        cfg.base.infer_unit()
    );
    s += "|---|---|---|---|---|---|---|---|\n";
    for r in rows {
        let score = match seeds {
            1 => format!("{:.2} %", 100.0 * r.mean_score),
            _ => format!("{:.2} ± {:.2} %", 100.0 * r.mean_score, 100.0 * r.std_score),
        };
        s += &format!(
            "| {} | {score} | {:.3} M | {:.3} M | {:.2} MB | {:.2} MB | {:.0} | {:.0} s |\n",
            r.label,
            r.params as f64 / 1e6,
            r.deploy_params as f64 / 1e6,
            r.train_bytes as f64 / 1e6,
            r.deploy_bytes as f64 / 1e6,
            r.median_infer_per_s,
            r.mean_seconds
        );
    }
    s += &format!(
        "\nInference: `eval` of the deployed file (PAD: the exported deploy file) on the evaluation split, batch {}, median over seeds.\n",
        cfg.base.eval_batch_size()
    );
    s
}

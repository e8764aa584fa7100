//! Iterative Mode Partition (docs/method.md §2): scores every position of every PAD mask and
//! keeps the top κ dynamic, in one or more rounds. The default scorer is SNIP, the loss's
//! sensitivity to switching a position static: |Σ over batches of ∂L/∂M|, with ∂L/∂M from
//! the PAD convolutions' backward and the sum accumulated on the GPU.

use crate::data::{self, ImageSet};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::autodiff::backward;
use crate::graph::compile::{Executable, ParamStore};
use crate::graph::{DType, Graph, Op, TensorId};
use crate::models::{self, ModelConfig};
use crate::nn::dynamic::INV_TEMPERATURE;
use crate::nn::Builder;
use crate::rng::Rng;
use serde::Serialize;
use std::sync::Arc;

/// Suffix of PAD mask tensors; the layer is the name before it.
pub const MASK_SUFFIX: &str = ".kernels_weights_mask";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scorer {
    /// |Σ_batches ∂L/∂M| (the PAD criterion).
    Snip,
    /// Gaussian noise (the reference's default; a baseline).
    Rand,
    /// mean_k |W_k| at the position.
    Mag,
    /// Var over samples of the aggregated kernel value D_n = Σ_k α_nk W_k (low = static).
    Variance,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// κ over all PAD layers together.
    Global,
    /// κ in every layer.
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RoundSchedule {
    /// κ_r = κ^(r/R)
    Exponential,
    /// κ_r = 1 − (1 − κ)·r/R
    Linear,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImpConfig {
    pub kappa: f64,
    pub scorer: Scorer,
    pub scope: Scope,
    pub rounds: usize,
    pub schedule: RoundSchedule,
    /// Batches of training data the scores are accumulated over.
    pub batches: usize,
    /// A position made static stays static in later rounds.
    pub monotone: bool,
    /// Score with BatchNorm in training mode (batch statistics) instead of eval mode.
    pub train_mode: bool,
    pub seed: u64,
}

impl ImpConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.kappa > 0.0 && self.kappa <= 1.0) {
            return Err(Error::Invalid(format!(
                "--kappa must be in (0, 1], got {}",
                self.kappa
            )));
        }
        if self.rounds == 0 || self.batches == 0 {
            return Err(Error::Invalid(
                "--imp-rounds and --imp-batches must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Dynamic fraction after round `r` of `rounds` (1-based).
    pub fn kappa_at(&self, r: usize) -> f64 {
        let t = r as f64 / self.rounds as f64;
        match self.schedule {
            RoundSchedule::Exponential => self.kappa.powf(t),
            RoundSchedule::Linear => 1.0 - (1.0 - self.kappa) * t,
        }
    }
}

/// IMP settings as given on the command line (shared by `train` and `imp`). The clap
/// attributes are the only place that holds the defaults (`Default` reads them).
#[derive(Clone, Debug, Serialize, clap::Args)]
pub struct ImpOptions {
    /// IMP scorer.
    #[arg(id = "imp_scorer", long = "imp-scorer", value_enum, default_value_t = Scorer::Snip)]
    pub scorer: Scorer,
    /// IMP scope.
    #[arg(id = "imp_scope", long = "imp-scope", value_enum, default_value_t = Scope::Global)]
    pub scope: Scope,
    /// IMP rounds R; round r keeps κ^(r/R) (exponential) or 1-(1-κ)r/R (linear).
    #[arg(id = "imp_rounds", long = "imp-rounds", default_value_t = 1)]
    pub rounds: usize,
    /// How κ shrinks over the rounds.
    #[arg(
        id = "imp_schedule",
        long = "imp-schedule",
        value_enum,
        default_value_t = RoundSchedule::Exponential
    )]
    pub schedule: RoundSchedule,
    /// Training batches the IMP scores are accumulated over.
    #[arg(id = "imp_batches", long = "imp-batches", default_value_t = 10)]
    pub batches: usize,
    /// Positions made static stay static in later IMP rounds.
    #[arg(id = "imp_monotone", long = "imp-monotone")]
    pub monotone: bool,
    /// Score with BatchNorm in training mode (default: eval mode, as the reference).
    #[arg(id = "imp_train_mode", long = "imp-train-mode")]
    pub train_mode: bool,
}

impl Default for ImpOptions {
    fn default() -> Self {
        crate::cli::defaults()
    }
}

impl ImpOptions {
    /// The checked configuration for dynamic fraction `kappa`.
    pub fn config(&self, kappa: f64, seed: u64) -> Result<ImpConfig> {
        let cfg = ImpConfig {
            kappa,
            scorer: self.scorer,
            scope: self.scope,
            rounds: self.rounds,
            schedule: self.schedule,
            batches: self.batches,
            monotone: self.monotone,
            train_mode: self.train_mode,
            seed,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// How a PAD layer's tensors are named, per layer family: (mask, dynamic tensors [K, ...],
/// static weight) suffixes after the layer's name. PAD-Conv keeps the reference's names; PAD-MoE
/// Hugging Face-style ones.
pub const PAD_NAMES: [(&str, &str, &str); 2] = [
    (MASK_SUFFIX, ".kernels_weights", ".weight"),
    (".mask", ".experts.weight", ".weight"),
];

/// A PAD layer (PAD-Conv or PAD-MoE), seen the same way by IMP, its report and deployment:
/// K dynamic tensors (kernels or experts) and one static weight mixed by one shared mask.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PadLayer {
    pub layer: String,
    pub mask: String,
    /// The K dynamic tensors, stacked [K, ...].
    pub dynamic: String,
    /// The static weight, shaped like one dynamic tensor.
    pub static_weight: String,
    /// Positions of one dynamic tensor (= mask entries).
    pub positions: usize,
    pub k: usize,
}

/// The PAD layers of a store, in name order.
pub fn pad_layers(store: &ParamStore) -> Vec<PadLayer> {
    let mut layers: Vec<PadLayer> = store
        .state_slots
        .iter()
        .filter_map(|(name, slot)| {
            PAD_NAMES.iter().find_map(|(mask, dynamic, static_weight)| {
                let layer = name.strip_suffix(mask)?;
                let dynamic = format!("{layer}{dynamic}");
                let k = store.param_slots.get(&dynamic)?.shape[0];
                Some(PadLayer {
                    layer: layer.to_string(),
                    mask: name.clone(),
                    dynamic,
                    static_weight: format!("{layer}{static_weight}"),
                    positions: slot.len(),
                    k,
                })
            })
        })
        .collect();
    layers.sort();
    layers
}

/// The `mag` score of each position of `k` stacked kernels (or experts) `w` [k, N]:
/// mean_k |W_k|.
pub fn mean_abs_over_kernels(w: &[f32], k: usize) -> Vec<f64> {
    let n = w.len() / k;
    (0..n)
        .map(|j| (0..k).map(|kk| w[kk * n + j].abs() as f64).sum::<f64>() / k as f64)
        .collect()
}

/// The scores that need no data, alike for PAD-Conv and PAD-MoE: `rand` (standard normal) and
/// `mag` (mean |W_k|); `None` for `snip` and `variance`, which run the model.
pub fn data_free_scores(
    store: &ParamStore,
    layers: &[PadLayer],
    scorer: Scorer,
    rng: &mut Rng,
) -> Option<Result<Vec<Vec<f64>>>> {
    match scorer {
        Scorer::Rand => Some(Ok(layers
            .iter()
            .map(|l| (0..l.positions).map(|_| rng.normal() as f64).collect())
            .collect())),
        Scorer::Mag => Some(
            layers
                .iter()
                .map(|l| Ok(mean_abs_over_kernels(&store.read(&l.dynamic)?, l.k)))
                .collect(),
        ),
        Scorer::Snip | Scorer::Variance => None,
    }
}

/// Zeroes the ∂L/∂M accumulators of a scoring graph before its batches run.
pub fn clear_accumulators(exe: &Executable, accs: &[TensorId]) -> Result<()> {
    for &acc in accs {
        exe.write(acc, &vec![0.0; exe.graph.tensors[acc].numel()])?;
    }
    Ok(())
}

/// SNIP scores |Σ_batches ∂L/∂M|, one vector per layer, from the accumulators.
pub fn snip_from_accumulators(
    exe: &Executable,
    store: &ParamStore,
    accs: &[TensorId],
) -> Result<Vec<Vec<f64>>> {
    accs.iter()
        .map(|&acc| {
            Ok(exe
                .read(acc, store)?
                .iter()
                .map(|v| v.abs() as f64)
                .collect())
        })
        .collect()
}

/// Masks keeping the top positions by score dynamic: exactly round(κ·N) positions in total
/// (`Global`) or per layer (`Local`). Ties break towards earlier layers and positions, so the
/// result is deterministic. With `previous` (monotone IMP), static positions stay static.
pub fn partition(
    scores: &[Vec<f64>],
    kappa: f64,
    scope: Scope,
    previous: Option<&[Vec<f32>]>,
) -> Vec<Vec<f32>> {
    let eligible = |l: usize, j: usize| previous.is_none_or(|p| p[l][j] > 0.5);
    let mut masks: Vec<Vec<f32>> = scores.iter().map(|s| vec![0.0; s.len()]).collect();
    let mut choose = |candidates: Vec<(usize, usize)>, keep: usize| {
        let mut c = candidates;
        c.sort_by(|&(la, ja), &(lb, jb)| {
            let (a, b) = (scores[la][ja], scores[lb][jb]);
            b.total_cmp(&a).then((la, ja).cmp(&(lb, jb)))
        });
        for &(l, j) in c.iter().take(keep) {
            masks[l][j] = 1.0;
        }
    };
    let count = |n: usize| (kappa * n as f64).round() as usize;
    match scope {
        Scope::Global => {
            let total: usize = scores.iter().map(Vec::len).sum();
            let all = (0..scores.len())
                .flat_map(|l| (0..scores[l].len()).map(move |j| (l, j)))
                .filter(|&(l, j)| eligible(l, j))
                .collect();
            choose(all, count(total));
        }
        Scope::Local => {
            for (l, s) in scores.iter().enumerate() {
                let own = (0..s.len())
                    .map(|j| (l, j))
                    .filter(|&(l, j)| eligible(l, j))
                    .collect();
                choose(own, count(s.len()));
            }
        }
    }
    masks
}

/// What IMP scores with: training images, batch size, loss smoothing, attention temperature.
pub struct ImpData<'a> {
    pub train: &'a Arc<ImageSet>,
    pub batch: usize,
    pub smoothing: f32,
    pub temperature: f32,
}

/// The model in scoring form: loss, backward, and per mask an accumulator of ∂L/∂M (and,
/// for the variance scorer, the attention weights α of each layer).
struct ScoreGraph {
    exe: Executable,
    x: TensorId,
    labels: TensorId,
    /// (Σ loss, #correct, #samples) over the scored batches.
    metrics: TensorId,
    accs: Vec<TensorId>,
    alphas: Vec<TensorId>,
}

impl ScoreGraph {
    fn new(
        gpu: Arc<Gpu>,
        store: &ParamStore,
        model: &ModelConfig,
        layers: &[PadLayer],
        data: &ImpData,
        train_mode: bool,
    ) -> Result<Self> {
        let t = data.train;
        let shape = [data.batch, t.channels, t.height, t.width];
        let (classes, smoothing) = (t.classes, data.smoothing);
        let mut g = Graph::new();
        let x = g.input("images", &shape, DType::F32);
        let labels = g.input("labels", &[shape[0]], DType::U32);
        let logits = models::build(model, &mut Builder::new(&mut g, train_mode), x, classes)?;
        let metrics = g.input("imp_metrics", &[3], DType::F32);
        let loss = g.push(Op::CrossEntropy { smoothing }, &[logits, labels, metrics])?[0];
        let seed = g.constant("loss_seed", &[1], vec![1.0])?;
        backward(&mut g, loss, seed)?;
        let mut accs = vec![];
        let mut alphas = vec![];
        for l in layers {
            let mask = g.find(&l.mask).expect("mask built by the model");
            let dm = *g
                .mask_grads
                .get(&mask)
                .expect("PAD backward records the mask gradient");
            let shape = g.shape(mask).to_vec();
            let acc = g.input(&format!("imp_score.{}", l.mask), &shape, DType::F32);
            g.push(Op::Accumulate, &[acc, dm])?;
            accs.push(acc);
            // α: the softmax feeding this layer's DynConv2d (its second input).
            let conv = g
                .nodes
                .iter()
                .find(|n| matches!(n.op, Op::DynConv2d(_)) && n.inputs.get(4) == Some(&mask));
            let alpha = conv.map(|n| n.inputs[1]).expect("PAD conv reads the mask");
            g.mark_output(alpha);
            alphas.push(alpha);
        }
        let exe = Executable::compile(gpu, g, store)?;
        Ok(ScoreGraph {
            exe,
            x,
            labels,
            metrics,
            accs,
            alphas,
        })
    }
}

/// Per-layer and total parameter accounting after a partition (docs/method.md §4).
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    pub layer: String,
    pub positions: usize,
    pub dynamic: usize,
    pub ratio: f64,
}

/// One IMP round: the dynamic fraction it targeted and what it produced.
#[derive(Clone, Debug, Serialize)]
pub struct RoundReport {
    pub round: usize,
    pub target_kappa: f64,
    /// Dynamic positions after the round, and round(κ_r · positions) they should equal
    /// (summed over layers; with local scope each layer is rounded on its own).
    pub dynamic: usize,
    pub expected: usize,
    /// Positions static before the round and dynamic after it.
    pub revived: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImpReport {
    pub config: ImpConfig,
    pub rounds: Vec<RoundReport>,
    pub layers: Vec<LayerReport>,
    /// Dynamic fraction over all PAD positions.
    pub kappa: f64,
    /// Parameters a fully dynamic (DY-Conv or MoE) model of this architecture holds.
    pub fully_dynamic_params: usize,
    /// Dynamic part of the deployed model: K per dynamic position.
    pub dynamic_params: usize,
    /// Static part of the deployed model: one per static position (merged over kernels).
    pub static_params: usize,
    /// Everything else (stem, BatchNorm, attention, classifier).
    pub other_params: usize,
    pub deployable_params: usize,
}

/// Parameter counts (docs/method.md §4) of a PAD model with `total` trainable parameters whose
/// PAD layers have (K, positions, dynamic positions) `layers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Accounting {
    /// A fully dynamic (DY-Conv or MoE) model of this architecture.
    pub fully_dynamic: usize,
    /// Dynamic part of the deployed model: K per dynamic position.
    pub dynamic: usize,
    /// Static part of the deployed model: one per static position (merged over kernels).
    pub static_: usize,
    /// Everything else (stem, BatchNorm, attention, classifier).
    pub other: usize,
    pub deployable: usize,
}

pub fn accounting(total: usize, layers: &[(usize, usize, usize)]) -> Accounting {
    // PAD training holds K kernels (experts), the static weight and φ per layer; φ folds at
    // export.
    let pad_total: usize = layers.iter().map(|&(k, n, _)| (k + 1) * n + 1).sum();
    let other = total - pad_total;
    let dynamic = layers.iter().map(|&(k, _, d)| k * d).sum();
    let static_ = layers.iter().map(|&(_, n, d)| n - d).sum();
    let fully_dynamic = other + layers.iter().map(|&(k, n, _)| k * n).sum::<usize>();
    Accounting {
        fully_dynamic,
        dynamic,
        static_,
        other,
        deployable: other + dynamic + static_,
    }
}

/// Parameter accounting of the masks currently in `store`.
pub fn report(store: &ParamStore, cfg: &ImpConfig) -> Result<ImpReport> {
    let layers = pad_layers(store);
    let mut rows = vec![];
    let mut counts = vec![];
    for l in &layers {
        let d = store.read(&l.mask)?.iter().filter(|&&v| v > 0.5).count();
        rows.push(LayerReport {
            layer: l.layer.clone(),
            positions: l.positions,
            dynamic: d,
            ratio: d as f64 / l.positions as f64,
        });
        counts.push((l.k, l.positions, d));
    }
    let a = accounting(store.num_params(), &counts);
    let positions: usize = layers.iter().map(|l| l.positions).sum();
    let dyn_positions: usize = rows.iter().map(|r| r.dynamic).sum();
    Ok(ImpReport {
        config: cfg.clone(),
        rounds: vec![],
        layers: rows,
        kappa: dyn_positions as f64 / positions.max(1) as f64,
        fully_dynamic_params: a.fully_dynamic,
        dynamic_params: a.dynamic,
        static_params: a.static_,
        other_params: a.other,
        deployable_params: a.deployable,
    })
}

/// File name (without extension) of the IMP report every command writes: `.json` and `.png`.
pub const REPORT_FILE: &str = "imp_report";

/// `dir/imp_report.EXT`.
pub fn report_path(dir: &std::path::Path, ext: &str) -> std::path::PathBuf {
    dir.join(REPORT_FILE).with_extension(ext)
}

impl ImpReport {
    /// Writes the report as `dir/imp_report.json` and its chart as `dir/imp_report.png`.
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("report serialises");
        crate::checkpoint::write_atomic(&report_path(dir, "json"), json.as_bytes())?;
        self.plot(&report_path(dir, "png"))
    }

    /// Bar chart of the dynamic ratio of every PAD layer.
    pub fn plot(&self, path: &std::path::Path) -> Result<()> {
        let bars: Vec<(String, f64, f64)> = self
            .layers
            .iter()
            .map(|l| (l.layer.clone(), 100.0 * l.ratio, 0.0))
            .collect();
        let title = format!(
            "dynamic positions per PAD layer (%), overall κ = {:.3}",
            self.kappa
        );
        crate::plot::bar_chart(path, &title, &bars)
    }

    pub fn print(&self) {
        println!(
            "{:<40} {:>10} {:>10} {:>7}",
            "PAD layer", "positions", "dynamic", "ratio"
        );
        for l in &self.layers {
            println!(
                "{:<40} {:>10} {:>10} {:>6.1}%",
                l.layer,
                l.positions,
                l.dynamic,
                100.0 * l.ratio
            );
        }
        let m = |v: usize| v as f64 / 1e6;
        println!(
            "κ = {:.4} over all PAD positions; deployable {:.3}M parameters = dynamic {:.3}M + static {:.3}M + other {:.3}M (fully dynamic: {:.3}M)",
            self.kappa,
            m(self.deployable_params),
            m(self.dynamic_params),
            m(self.static_params),
            m(self.other_params),
            m(self.fully_dynamic_params)
        );
    }
}

/// Runs IMP on the model whose weights are in `store`, scoring with up to `cfg.batches`
/// batches of `train` at temperature `temperature`, and writes the final masks to the store.
/// Runs IMP on the model whose weights are in `store`, scoring with up to `cfg.batches`
/// batches of training data, and writes the final masks to the store.
pub fn run(
    gpu: Arc<Gpu>,
    store: &ParamStore,
    model: &ModelConfig,
    data: &ImpData,
    cfg: &ImpConfig,
) -> Result<ImpReport> {
    cfg.validate()?;
    let layers = pad_layers(store);
    if layers.is_empty() {
        return Err(Error::Invalid(
            "IMP needs a PAD model (--mode pad): this one has no masks".into(),
        ));
    }
    let sg = ScoreGraph::new(gpu, store, model, &layers, data, cfg.train_mode)?;
    if let Some(t) = sg.exe.graph.find(INV_TEMPERATURE) {
        sg.exe.write(t, &[1.0 / data.temperature])?;
    }
    let names: Vec<String> = layers.iter().map(|l| l.mask.clone()).collect();
    let rounds = iterate(store, &names, cfg, |rng| {
        score(&sg, store, &layers, data, cfg, rng)
    })?;
    let mut rep = report(store, cfg)?;
    rep.rounds = rounds;
    Ok(rep)
}

/// The IMP round loop of every model family: each round writes the current masks (tensors
/// `masks` of `store`) back, asks `score` for a score per position of every mask (higher =
/// keep dynamic; it gets the run's seeded generator), and partitions to κ_r, globally or per
/// layer, keeping static positions static if `cfg.monotone`. The last partition stays in
/// `store`. Returns a report per round.
pub fn iterate(
    store: &ParamStore,
    masks: &[String],
    cfg: &ImpConfig,
    mut score: impl FnMut(&mut Rng) -> Result<Vec<Vec<f64>>>,
) -> Result<Vec<RoundReport>> {
    let mut rng = Rng::new(cfg.seed ^ 0x1337);
    let mut current: Vec<Vec<f32>> = masks.iter().map(|m| store.read(m)).collect::<Result<_>>()?;
    let mut rounds = vec![];
    for r in 1..=cfg.rounds {
        for (name, m) in masks.iter().zip(&current) {
            store.write(name, m)?;
        }
        let scores = score(&mut rng)?;
        let previous = cfg.monotone.then_some(&current[..]);
        let kappa = cfg.kappa_at(r);
        let next = partition(&scores, kappa, cfg.scope, previous);
        let count = |n: usize| (kappa * n as f64).round() as usize;
        let expected = match cfg.scope {
            Scope::Global => count(current.iter().map(Vec::len).sum()),
            Scope::Local => current.iter().map(|m| count(m.len())).sum(),
        };
        let flat = |m: &[Vec<f32>]| m.iter().flatten().copied().collect::<Vec<f32>>();
        let (before, after) = (flat(&current), flat(&next));
        rounds.push(RoundReport {
            round: r,
            target_kappa: kappa,
            dynamic: after.iter().filter(|&&v| v > 0.5).count(),
            expected,
            revived: before
                .iter()
                .zip(&after)
                .filter(|(b, a)| **b < 0.5 && **a > 0.5)
                .count(),
        });
        current = next;
    }
    for (name, m) in masks.iter().zip(&current) {
        store.write(name, m)?;
    }
    Ok(rounds)
}

/// SNIP scores of the masks currently in `store`, and the mean loss over the scored batches
/// (for tests and analysis: the loss responds to switching positions as the scores predict).
pub fn snip_scores(
    gpu: Arc<Gpu>,
    store: &ParamStore,
    model: &ModelConfig,
    data: &ImpData,
    cfg: &ImpConfig,
) -> Result<(f64, Vec<Vec<f64>>)> {
    let layers = pad_layers(store);
    let sg = ScoreGraph::new(gpu, store, model, &layers, data, cfg.train_mode)?;
    if let Some(t) = sg.exe.graph.find(INV_TEMPERATURE) {
        sg.exe.write(t, &[1.0 / data.temperature])?;
    }
    let cfg = ImpConfig {
        scorer: Scorer::Snip,
        ..cfg.clone()
    };
    let scores = score(&sg, store, &layers, data, &cfg, &mut Rng::new(0))?;
    let m = sg.exe.read(sg.metrics, store)?;
    Ok((m[0] as f64 / m[2].max(1.0) as f64, scores))
}

/// Scores of every mask position (higher = keep dynamic).
fn score(
    sg: &ScoreGraph,
    store: &ParamStore,
    layers: &[PadLayer],
    data: &ImpData,
    cfg: &ImpConfig,
    rng: &mut Rng,
) -> Result<Vec<Vec<f64>>> {
    let (train, batch) = (data.train, data.batch);
    if let Some(scores) = data_free_scores(store, layers, cfg.scorer, rng) {
        return scores;
    }
    clear_accumulators(&sg.exe, &sg.accs)?;
    // α moments per layer for the variance scorer: Σ α_k and Σ α_k α_k'.
    let mut moments: Vec<(Vec<f64>, Vec<f64>, usize)> = layers
        .iter()
        .map(|l| (vec![0.0; l.k], vec![0.0; l.k * l.k], 0))
        .collect();
    let mut seen = 0;
    for b in data::batches(train.clone(), batch, Some(cfg.seed), 2)
        .into_iter()
        .take(cfg.batches)
    {
        if let Some(e) = b.error {
            return Err(Error::Invalid(e));
        }
        sg.exe.write(sg.x, &b.images)?;
        sg.exe.write_u32(sg.labels, &b.labels)?;
        sg.exe.run()?;
        seen += 1;
        if cfg.scorer == Scorer::Variance {
            for ((l, &alpha), (s1, s2, n)) in layers.iter().zip(&sg.alphas).zip(moments.iter_mut())
            {
                let a = sg.exe.read(alpha, store)?;
                for row in a.chunks(l.k) {
                    for i in 0..l.k {
                        s1[i] += row[i] as f64;
                        for j in 0..l.k {
                            s2[i * l.k + j] += (row[i] * row[j]) as f64;
                        }
                    }
                    *n += 1;
                }
            }
        }
    }
    if seen == 0 {
        return Err(Error::Invalid(format!(
            "IMP needs at least one batch of {batch} training images"
        )));
    }
    if cfg.scorer == Scorer::Snip {
        return snip_from_accumulators(&sg.exe, store, &sg.accs);
    }
    // Var_n(D_nj) = Σ_kk' Cov(α_k, α_k') W_kj W_k'j
    layers
        .iter()
        .zip(&moments)
        .map(|(l, (s1, s2, n))| {
            let w = store.read(&l.dynamic)?;
            let nf = (*n).max(1) as f64;
            let cov = |i: usize, j: usize| s2[i * l.k + j] / nf - (s1[i] / nf) * (s1[j] / nf);
            Ok((0..l.positions)
                .map(|p| {
                    let mut v = 0.0;
                    for i in 0..l.k {
                        for j in 0..l.k {
                            v += cov(i, j)
                                * w[i * l.positions + p] as f64
                                * w[j * l.positions + p] as f64;
                        }
                    }
                    v
                })
                .collect())
        })
        .collect()
}

/// `padnet-wgpu imp`: partitions the masks of a PAD checkpoint and writes the result.
pub struct ImpCommand {
    pub checkpoint: std::path::PathBuf,
    pub out: std::path::PathBuf,
    /// Images: the dataset scored on.
    pub dataset: String,
    pub data_dir: Option<std::path::PathBuf>,
    /// Text: the task scored on (default: the checkpoint's) and the directory with
    /// bert_config.json and tokenizer.json (default: the checkpoint's).
    pub task: Option<String>,
    pub model_dir: Option<std::path::PathBuf>,
    pub batch_size: usize,
    pub smoothing: f32,
    pub config: ImpConfig,
}

impl ImpCommand {
    /// Where the report goes: the output checkpoint's directory.
    pub fn report_dir(&self) -> std::path::PathBuf {
        match self.out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        }
    }
}

pub fn command(gpu: Arc<Gpu>, c: &ImpCommand) -> Result<ImpReport> {
    c.config.validate()?;
    let (tensors, mut meta) = crate::checkpoint::load(&c.checkpoint)?;
    if crate::export::is_deploy(&meta) {
        return Err(Error::data(
            &c.checkpoint,
            "is a deploy file (exported for inference); IMP needs a PAD training checkpoint",
        ));
    }
    if meta.get("mode").map(String::as_str) != Some("pad") {
        return Err(Error::data(
            &c.checkpoint,
            format!(
                "is not a PAD checkpoint (mode {:?}); IMP partitions PAD models",
                meta.get("mode")
            ),
        ));
    }
    let (model, temperature) = crate::eval::model_from_meta(&meta, &Default::default())?;
    let folder = crate::data::FolderOpts::default();
    let (train, _, _) = crate::data::load_dataset(&c.dataset, c.data_dir.as_deref(), folder)?;
    let sample = [train.channels, train.height, train.width];
    let graph = crate::eval::Evaluator::graph(&model, c.batch_size, sample, train.classes)?;
    let store = ParamStore::new(gpu.clone(), &graph, 0)?;
    crate::checkpoint::into_store(&store, &tensors, &c.checkpoint)?;
    let train = Arc::new(train);
    let data = ImpData {
        train: &train,
        batch: c.batch_size,
        smoothing: c.smoothing,
        temperature,
    };
    let report = run(gpu, &store, &model, &data, &c.config)?;
    let out_tensors = crate::checkpoint::from_store(&store)?;
    meta.insert("kappa".into(), report.kappa.to_string());
    crate::checkpoint::save(&c.out, &out_tensors, meta)?;
    report.save(&c.report_dir())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_exact_and_deterministic() {
        let scores = vec![vec![0.5, 0.1, 0.9, 0.1], vec![0.1, 0.7, 0.1]];
        let g = partition(&scores, 0.43, Scope::Global, None); // round(0.43 * 7) = 3
        assert_eq!(g, vec![vec![1.0, 0.0, 1.0, 0.0], vec![0.0, 1.0, 0.0]]);
        let l = partition(&scores, 0.5, Scope::Local, None); // 2 of 4, round(1.5) = 2 of 3
        assert_eq!(l[0], vec![1.0, 0.0, 1.0, 0.0]);
        assert_eq!(l[1].iter().sum::<f32>(), 2.0);
        assert_eq!(l[1], vec![1.0, 1.0, 0.0]); // tie 0.1 vs 0.1: the earlier position
                                               // Monotone: a static position never comes back, even with the highest score.
        let prev = vec![vec![0.0, 1.0, 1.0, 1.0], vec![1.0, 1.0, 1.0]];
        let m = partition(&scores, 0.43, Scope::Global, Some(&prev));
        assert_eq!(m[0][0], 0.0);
        assert_eq!(m.iter().flatten().sum::<f32>(), 3.0);
    }
}

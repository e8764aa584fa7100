//! Iterative Mode Partition (docs/method.md §2): scores every position of every PAD mask and
//! keeps the top κ dynamic, in one or more rounds. The default scorer is SNIP, the loss's
//! sensitivity to switching a position static: |Σ over batches of ∂L/∂M|, with ∂L/∂M from
//! the PAD convolutions' backward and the sum accumulated on the GPU.
//!
//! - `mod.rs`: the one PAD core of PAD-Conv and PAD-MoE: layer description ([`PadLayer`]),
//!   settings, the data-free scorers, the partition and the round loop ([`iterate`]);
//! - `report.rs`: parameter accounting and the report every command writes;
//! - `vision.rs`: the data scorers of image models (SNIP, variance) and `padnet-wgpu imp` of
//!   image checkpoints (text has its own in `text::imp`).

mod report;
mod vision;

pub use report::{
    accounting, report, report_path, Accounting, ImpReport, LayerReport, RoundReport, REPORT_FILE,
};
pub use vision::{command, run, snip_scores, ImpCommand, ImpData};

use crate::error::{Error, Result};
use crate::executor::{Executable, ParamStore};
use crate::graph::TensorId;
pub use crate::nn::pad::{pad_layers, PadLayer, MASK_SUFFIX};
use crate::rng::Rng;
use serde::Serialize;

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

impl crate::names::Named for Scorer {
    const WHAT: &'static str = "IMP scorer";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// κ over all PAD layers together.
    Global,
    /// κ in every layer.
    Local,
}

/// The unit IMP keeps dynamic or makes static (docs/method.md §2.1). Groups are scored by the
/// mean score of their positions, and exactly round(κ·groups) groups are kept dynamic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// Single weight positions (the paper's IMP).
    Element,
    /// Whole kh×kw kernels: one output filter × one input channel (PAD-MoE: as element).
    Kernel,
    /// Whole output filters (PAD-MoE: output neurons, rows of the expert weights).
    Filter,
    /// Whole input channels (PAD-MoE: input features, columns).
    Channel,
}

impl crate::names::Named for Granularity {
    const WHAT: &'static str = "mask granularity";
}

impl Granularity {
    /// The group of every position of a mask of `dims` [outputs, inputs, spatial] (row-major),
    /// and the number of groups.
    pub fn groups(self, [o, i, s]: [usize; 3]) -> (Vec<usize>, usize) {
        let group = |p: usize| {
            let (oi, _) = (p / s, p % s);
            match self {
                Granularity::Element => p,
                Granularity::Kernel => oi,
                Granularity::Filter => oi / i,
                Granularity::Channel => oi % i,
            }
        };
        let count = match self {
            Granularity::Element => o * i * s,
            Granularity::Kernel => o * i,
            Granularity::Filter => o,
            Granularity::Channel => i,
        };
        ((0..o * i * s).map(group).collect(), count)
    }
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
    pub granularity: Granularity,
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
    /// What IMP keeps dynamic: single positions, or whole kernels, output filters or input
    /// channels (κ is then the fraction of those groups).
    #[arg(
        id = "mask_granularity",
        long = "mask-granularity",
        value_enum,
        default_value_t = Granularity::Element
    )]
    pub granularity: Granularity,
    /// IMP rounds R; round r keeps κ^(r/R) (exponential) or 1-(1-κ)r/R (linear).
    #[arg(value_parser = crate::values::count, id = "imp_rounds", long = "imp-rounds", default_value_t = 1)]
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
    #[arg(value_parser = crate::values::count, id = "imp_batches", long = "imp-batches", default_value_t = 10)]
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
        crate::names::defaults()
    }
}

impl ImpOptions {
    /// The checked configuration for dynamic fraction `kappa`.
    pub fn config(&self, kappa: f64, seed: u64) -> Result<ImpConfig> {
        let cfg = ImpConfig {
            kappa,
            scorer: self.scorer,
            scope: self.scope,
            granularity: self.granularity,
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

/// Running moments of a PAD layer's mixing weights (DY-Conv attention α per sample, MoE router
/// gates per token) for the variance scorer.
pub struct MixMoments {
    k: usize,
    s1: Vec<f64>,
    s2: Vec<f64>,
    n: usize,
}

impl MixMoments {
    pub fn new(k: usize) -> Self {
        MixMoments {
            k,
            s1: vec![0.0; k],
            s2: vec![0.0; k * k],
            n: 0,
        }
    }

    /// Adds rows `[*, k]`; all-zero rows (padding tokens, which no expert sees) are skipped.
    pub fn add(&mut self, rows: &[f32]) {
        let k = self.k;
        for row in rows.chunks(k) {
            if row.iter().all(|&v| v == 0.0) {
                continue;
            }
            for i in 0..k {
                self.s1[i] += row[i] as f64;
                for j in 0..k {
                    self.s2[i * k + j] += (row[i] * row[j]) as f64;
                }
            }
            self.n += 1;
        }
    }

    /// The variance over the added rows of the mixed value at every position of the stacked
    /// dynamic tensors `w` [k, positions]: Var(Σ_k a_k W_kj) = Σ_kk' Cov(a_k, a_k') W_kj W_k'j
    /// (low = the position may as well be static).
    pub fn variance_scores(&self, w: &[f32]) -> Vec<f64> {
        let (k, positions) = (self.k, w.len() / self.k);
        let nf = self.n.max(1) as f64;
        let cov =
            |i: usize, j: usize| self.s2[i * k + j] / nf - (self.s1[i] / nf) * (self.s1[j] / nf);
        (0..positions)
            .map(|p| {
                let mut v = 0.0;
                for i in 0..k {
                    for j in 0..k {
                        v += cov(i, j) * w[i * positions + p] as f64 * w[j * positions + p] as f64;
                    }
                }
                v
            })
            .collect()
    }
}

/// Zeroes the ∂L/∂M accumulators of a scoring graph before its batches run.
pub fn clear_accumulators(exe: &Executable, accs: &[TensorId]) -> Result<()> {
    for &acc in accs {
        exe.write(acc, &vec![0.0; exe.graph.tensors[acc].numel()])?;
    }
    Ok(())
}

/// SNIP scores |Σ_batches ∂L/∂M|, one vector per layer, from the accumulators: summed over
/// every data-parallel rank's batches (`comm`) before the magnitude is taken.
pub fn snip_from_accumulators(
    exe: &Executable,
    store: &ParamStore,
    accs: &[TensorId],
    comm: &crate::dist::Comm,
) -> Result<Vec<Vec<f64>>> {
    accs.iter()
        .map(|&acc| {
            let mut sum = exe.read(acc, store)?;
            comm.sum(&mut sum)?;
            Ok(sum.iter().map(|v| v.abs() as f64).collect())
        })
        .collect()
}

/// Masks keeping the top groups of positions (`granularity` over each layer's `dims`) by mean
/// score dynamic: exactly round(κ·G) of the G groups in total (`Global`) or per layer
/// (`Local`); see [`partition_units`]. With `previous` (monotone IMP), a group with no dynamic
/// position stays static.
pub fn partition(
    scores: &[Vec<f64>],
    dims: &[[usize; 3]],
    granularity: Granularity,
    kappa: f64,
    scope: Scope,
    previous: Option<&[Vec<f32>]>,
) -> Vec<Vec<f32>> {
    if granularity == Granularity::Element {
        return partition_units(scores, kappa, scope, previous);
    }
    let groups: Vec<(Vec<usize>, usize)> = dims.iter().map(|&d| granularity.groups(d)).collect();
    // Per layer: the sum over each group's positions of `value(position)`.
    let per_group = |l: usize, value: &dyn Fn(usize) -> f64| -> Vec<f64> {
        let (of, count) = &groups[l];
        let mut v = vec![0.0; *count];
        for (p, &g) in of.iter().enumerate() {
            v[g] += value(p);
        }
        v
    };
    let group_scores: Vec<Vec<f64>> = (0..scores.len())
        .map(|l| {
            let sums = per_group(l, &|p| scores[l][p]);
            let sizes = per_group(l, &|_| 1.0);
            sums.iter().zip(&sizes).map(|(s, n)| s / n).collect()
        })
        .collect();
    let group_previous: Option<Vec<Vec<f32>>> = previous.map(|prev| {
        groups
            .iter()
            .zip(prev)
            .map(|(g, m)| {
                dynamic_groups(m, g)
                    .iter()
                    .map(|&d| d as u8 as f32)
                    .collect()
            })
            .collect()
    });
    let chosen = partition_units(&group_scores, kappa, scope, group_previous.as_deref());
    groups
        .iter()
        .zip(&chosen)
        .map(|((of, _), keep)| of.iter().map(|&g| keep[g]).collect())
        .collect()
}

/// Whether each group of `mask` (grouped as [`Granularity::groups`] returns) has a dynamic
/// position.
fn dynamic_groups(mask: &[f32], (of, count): &(Vec<usize>, usize)) -> Vec<bool> {
    let mut dynamic = vec![false; *count];
    for (&g, &m) in of.iter().zip(mask) {
        dynamic[g] |= m > 0.5;
    }
    dynamic
}

/// Masks keeping the top units by score dynamic: exactly round(κ·N) units in total
/// (`Global`) or per layer (`Local`). Ties break towards earlier layers and units, so the
/// result is deterministic. With `previous` (monotone IMP), static units stay static.
fn partition_units(
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

/// The IMP round loop of every model family: each round writes the current masks (tensors
/// `masks` of `store`) back, asks `score` for a score per position of every mask (higher =
/// keep dynamic; it gets the run's seeded generator), and partitions to κ_r, globally or per
/// layer, keeping static positions static if `cfg.monotone`. The last partition stays in
/// `store`. Returns a report per round.
pub fn iterate(
    store: &ParamStore,
    layers: &[PadLayer],
    cfg: &ImpConfig,
    mut score: impl FnMut(&mut Rng) -> Result<Vec<Vec<f64>>>,
) -> Result<Vec<RoundReport>> {
    let masks: Vec<&String> = layers.iter().map(|l| &l.mask).collect();
    let dims: Vec<[usize; 3]> = layers.iter().map(|l| l.dims).collect();
    let groups: Vec<(Vec<usize>, usize)> =
        dims.iter().map(|&d| cfg.granularity.groups(d)).collect();
    let units: Vec<usize> = groups.iter().map(|g| g.1).collect();
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
        let next = partition(&scores, &dims, cfg.granularity, kappa, cfg.scope, previous);
        let count = |n: usize| (kappa * n as f64).round() as usize;
        let expected = match cfg.scope {
            Scope::Global => count(units.iter().sum()),
            Scope::Local => units.iter().map(|&n| count(n)).sum(),
        };
        let flat = |m: &[Vec<f32>]| m.iter().flatten().copied().collect::<Vec<f32>>();
        let (before, after) = (flat(&current), flat(&next));
        let dynamic_units = next
            .iter()
            .zip(&groups)
            .map(|(m, g)| dynamic_groups(m, g).iter().filter(|&&v| v).count())
            .sum();
        rounds.push(RoundReport {
            round: r,
            target_kappa: kappa,
            dynamic_positions: after.iter().filter(|&&v| v > 0.5).count(),
            dynamic: dynamic_units,
            expected,
            units: units.iter().sum(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_exact_and_deterministic() {
        let scores = vec![vec![0.5, 0.1, 0.9, 0.1], vec![0.1, 0.7, 0.1]];
        let g = partition_units(&scores, 0.43, Scope::Global, None); // round(0.43 * 7) = 3
        assert_eq!(g, vec![vec![1.0, 0.0, 1.0, 0.0], vec![0.0, 1.0, 0.0]]);
        let l = partition_units(&scores, 0.5, Scope::Local, None); // 2 of 4, round(1.5) = 2 of 3
        assert_eq!(l[0], vec![1.0, 0.0, 1.0, 0.0]);
        assert_eq!(l[1].iter().sum::<f32>(), 2.0);
        assert_eq!(l[1], vec![1.0, 1.0, 0.0]); // tie 0.1 vs 0.1: the earlier position
                                               // Monotone: a static position never comes back, even with the highest score.
        let prev = vec![vec![0.0, 1.0, 1.0, 1.0], vec![1.0, 1.0, 1.0]];
        let m = partition_units(&scores, 0.43, Scope::Global, Some(&prev));
        assert_eq!(m[0][0], 0.0);
        assert_eq!(m.iter().flatten().sum::<f32>(), 3.0);
    }

    #[test]
    fn groups_follow_the_mask_layout() {
        // A mask of 2 filters x 3 channels x 2 spatial positions.
        let dims = [2, 3, 2];
        assert_eq!(Granularity::Element.groups(dims).1, 12);
        assert_eq!(
            Granularity::Kernel.groups(dims),
            (vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5], 6)
        );
        assert_eq!(
            Granularity::Filter.groups(dims),
            (vec![0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 2)
        );
        assert_eq!(
            Granularity::Channel.groups(dims),
            (vec![0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2], 3)
        );
    }

    #[test]
    fn structured_partition_keeps_whole_groups_by_mean_score() {
        // Two layers: 2 filters x 2 channels x 1, and 3 filters x 1 channel x 2.
        let dims = [[2, 2, 1], [3, 1, 2]];
        let scores = vec![vec![0.9, 0.1, 0.2, 0.2], vec![0.0, 0.0, 0.6, 0.6, 0.3, 0.1]];
        // Filters: means 0.5, 0.2 | 0.0, 0.6, 0.2; κ = 0.4 of 5 filters -> 2 filters.
        let m = partition(
            &scores,
            &dims,
            Granularity::Filter,
            0.4,
            Scope::Global,
            None,
        );
        assert_eq!(
            m,
            vec![vec![1.0, 1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]]
        );
        // Channels of the first layer: means 0.55, 0.15; per layer, 1 of 2 and 0 of 1.
        let m = partition(
            &scores,
            &dims,
            Granularity::Channel,
            0.4,
            Scope::Local,
            None,
        );
        assert_eq!(m[0], vec![1.0, 0.0, 1.0, 0.0]);
        // Monotone: a filter with no dynamic position stays static.
        let prev = vec![vec![0.0, 0.0, 1.0, 1.0], vec![1.0; 6]];
        let m = partition(
            &scores,
            &dims,
            Granularity::Filter,
            0.4,
            Scope::Global,
            Some(&prev),
        );
        assert_eq!(m[0], vec![0.0, 0.0, 1.0, 1.0]);
    }
}

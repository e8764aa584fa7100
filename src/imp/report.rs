//! What a partition produced: per-layer and total parameter accounting (docs/method.md §4),
//! written by every command as `imp_report.json` and `.png`.

use super::{pad_layers, ImpConfig};
use crate::error::Result;
use crate::executor::ParamStore;
use crate::names::Named;
use serde::Serialize;

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
    /// Dynamic units after the round (positions, or groups under `--mask-granularity`), and
    /// round(κ_r · units) they should equal (summed over layers; with local scope each layer
    /// is rounded on its own).
    pub dynamic: usize,
    pub expected: usize,
    /// Units the partition chose among (positions, or groups), summed over layers.
    pub units: usize,
    /// Dynamic positions after the round.
    pub dynamic_positions: usize,
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
        if let (Some(r), false) = (
            self.rounds.last(),
            self.config.granularity == super::Granularity::Element,
        ) {
            println!(
                "{} of {} {}s dynamic (--mask-granularity {})",
                r.dynamic,
                r.units,
                self.config.granularity.name(),
                self.config.granularity.name()
            );
        }
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

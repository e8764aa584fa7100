//! Dev-set metrics of the text tasks and the metrics.jsonl line of a text run.

use crate::data::tsv::TextSet;
use crate::eval::loss_and_accuracy;
use serde::{Deserialize, Serialize};

/// Per-epoch results (one line of metrics.jsonl). Classification tasks report accuracy,
/// macro-F1 and MCC; regression tasks (STS-B) Pearson and Spearman correlation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TextEpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_acc: Option<f64>,
    pub dev_loss: f64,
    #[serde(flatten)]
    pub dev: DevScores,
    pub lr: f32,
    /// Real (non-padding) training tokens per second.
    pub tokens_per_s: f64,
    pub seconds: f64,
}

/// Dev-set scores beyond the loss (serialised as `dev_*`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DevScores {
    #[serde(rename = "dev_acc", default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(
        rename = "dev_macro_f1",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub macro_f1: Option<f64>,
    #[serde(rename = "dev_mcc", default, skip_serializing_if = "Option::is_none")]
    pub mcc: Option<f64>,
    #[serde(
        rename = "dev_pearson",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pearson: Option<f64>,
    #[serde(
        rename = "dev_spearman",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub spearman: Option<f64>,
}

impl std::fmt::Display for DevScores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        if let Some(a) = self.accuracy {
            parts.push(format!("accuracy {:.2}%", 100.0 * a));
        }
        if let Some(v) = self.macro_f1 {
            parts.push(format!("macro-F1 {:.2}%", 100.0 * v));
        }
        if let Some(v) = self.mcc {
            parts.push(format!("MCC {v:.4}"));
        }
        if let Some(v) = self.pearson {
            parts.push(format!("Pearson {v:.4}"));
        }
        if let Some(v) = self.spearman {
            parts.push(format!("Spearman {v:.4}"));
        }
        write!(f, "{}", parts.join(", "))
    }
}

/// Loss and scores of model outputs [N, outputs] on `set` (a regression head has one output
/// and its loss is the MSE).
pub fn dev_scores(outputs: &[f32], set: &TextSet) -> (f64, DevScores) {
    if set.is_regression() {
        let pred: Vec<f64> = outputs.iter().map(|&v| v as f64).collect();
        let gold: Vec<f64> = set.targets.iter().map(|&v| v as f64).collect();
        let mse = pred
            .iter()
            .zip(&gold)
            .map(|(p, t)| (p - t).powi(2))
            .sum::<f64>()
            / gold.len().max(1) as f64;
        let scores = DevScores {
            pearson: Some(pearson(&pred, &gold)),
            spearman: Some(spearman(&pred, &gold)),
            ..Default::default()
        };
        return (mse, scores);
    }
    let classes = set.classes.len();
    let (loss, acc) = loss_and_accuracy(outputs, &set.labels, classes);
    let pred = argmax_rows(outputs, classes);
    let (f1, mcc) = f1_and_mcc(&pred, &set.labels, classes);
    let scores = DevScores {
        accuracy: Some(acc),
        macro_f1: Some(f1),
        mcc: Some(mcc),
        ..Default::default()
    };
    (loss, scores)
}

/// Pearson's correlation coefficient (0 when either side is constant).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len()) as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx > 0.0 && syy > 0.0 {
        sxy / (sxx * syy).sqrt()
    } else {
        0.0
    }
}

/// Spearman's rank correlation: Pearson's of the ranks, ties given their mean rank (as
/// scipy.stats.spearmanr).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
                j += 1;
            }
            for &k in &order[i..=j] {
                r[k] = (i + j) as f64 / 2.0 + 1.0;
            }
            i = j + 1;
        }
        r
    }
    pearson(&ranks(x), &ranks(y))
}

/// Macro-averaged F1 over the classes and the multi-class Matthews correlation coefficient
/// (Gorodkin's R_K; the usual MCC for two classes), from predictions and labels.
pub fn f1_and_mcc(pred: &[u32], labels: &[u32], classes: usize) -> (f64, f64) {
    let mut conf = vec![0f64; classes * classes]; // [true, predicted]
    for (&p, &y) in pred.iter().zip(labels) {
        conf[y as usize * classes + p as usize] += 1.0;
    }
    let row = |k: usize| (0..classes).map(|j| conf[k * classes + j]).sum::<f64>();
    let col = |k: usize| (0..classes).map(|i| conf[i * classes + k]).sum::<f64>();
    let mut f1 = 0.0;
    for k in 0..classes {
        let tp = conf[k * classes + k];
        let denom = row(k) + col(k);
        f1 += if denom > 0.0 { 2.0 * tp / denom } else { 0.0 };
    }
    let n = pred.len() as f64;
    let correct: f64 = (0..classes).map(|k| conf[k * classes + k]).sum();
    let (pt, tt): (f64, f64) = (0..classes)
        .map(|k| (col(k) * row(k), col(k) * col(k)))
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let rr: f64 = (0..classes).map(|k| row(k) * row(k)).sum();
    let denom = ((n * n - tt) * (n * n - rr)).sqrt();
    let mcc = if denom > 0.0 {
        (correct * n - pt) / denom
    } else {
        0.0
    };
    (f1 / classes as f64, mcc)
}

fn argmax_rows(logits: &[f32], classes: usize) -> Vec<u32> {
    logits
        .chunks(classes)
        .map(|r| (0..classes).fold(0, |a, j| if r[j] > r[a] { j } else { a }) as u32)
        .collect()
}

//! Fine-tuning a pretrained BERT (e.g. all-MiniLM-L6-v2) for text classification: Hugging
//! Face's `BertForSequenceClassification` layout (encoder, tanh pooler on [CLS], `classifier`
//! linear) with AdamW, linear warm-up and decay. Batches are padded only to their longest
//! example: examples are sorted by length inside shuffled buckets, and one graph is compiled
//! per padded length (a multiple of 8), all sharing one parameter store.

use crate::checkpoint;
use crate::data::tokenize::{Encoded, TextTokenizer};
use crate::data::tsv::{self, TextSet, TsvColumns};
use crate::error::{Error, Result};
use crate::eval::loss_and_accuracy;
use crate::gpu::Gpu;
use crate::graph::autodiff::backward;
use crate::graph::compile::{Executable, ParamStore};
use crate::graph::{DType, Graph, Init, Op, TensorId};
use crate::models::bert::{self, BertConfig, BertFeed, BertInputs, BertMoe, MoePosition};
use crate::nn::moe::MoeConfig;
use crate::nn::{Builder, DROPOUT_SEED};
use crate::optim::{Decay, OptimConfig, OptimKind, Optimizer, Schedule};
use crate::rng::Rng;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// `--model` names of the text path.
pub const TEXT_MODELS: [&str; 2] = ["minilm-l6", "bert"];

const METRICS: &str = "_train_metrics";
/// Padded lengths are rounded up to a multiple of this, to bound the number of graphs.
const LEN_STEP: usize = 8;
/// Examples sorted by length together: this many batches' worth.
const BUCKET_BATCHES: usize = 50;

#[derive(Clone, Debug, Serialize)]
pub struct TextTrainConfig {
    /// Directory with config.json, tokenizer.json and model.safetensors (Hugging Face BERT).
    pub model_dir: PathBuf,
    /// dense, or moe (the FFN layers at `moe_position` become `experts` experts, top-k routed).
    pub mode: String,
    pub experts: usize,
    pub top_k: usize,
    /// out (FFN output projection), int (intermediate) or both.
    pub moe_position: String,
    /// Route padding tokens to experts too (the reference does; default keeps them out).
    pub route_padding: bool,
    /// GShard capacity factor (None: no token dropping), see `MoeConfig::capacity_factor`.
    pub capacity_factor: Option<f32>,
    /// Evaluating a folded PAD-MoE deploy file (`MoeConfig::deploy`); never set for training.
    #[serde(skip)]
    pub deploy: bool,
    /// PAD-MoE: λ variant (both, s, d, none, p).
    pub lambda: String,
    /// PAD-MoE: dynamic fraction κ kept by IMP (1 = no IMP, every position dynamic).
    pub kappa: f64,
    /// PAD-MoE: the static weight starts independent (random), as the pretrained weight, or
    /// (at IMP time) as the mean of the experts.
    pub static_init: String,
    /// PAD-MoE: IMP settings, the training examples it scores on, and the step it runs
    /// before (0: before training).
    pub imp: crate::imp::ImpOptions,
    pub imp_samples: usize,
    pub imp_after: usize,
    pub task: String,
    pub data_dir: Option<PathBuf>,
    pub text_col: String,
    pub pair_col: Option<String>,
    pub label_col: String,
    pub max_len: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub lr: f32,
    pub weight_decay: f32,
    /// Linear warm-up over this fraction of all steps, then linear decay to 0.
    pub warmup_ratio: f32,
    pub seed: u64,
    pub limit_train: Option<usize>,
    pub limit_dev: Option<usize>,
    pub log_every: usize,
    pub out: PathBuf,
    pub progress: bool,
}

impl Default for TextTrainConfig {
    fn default() -> Self {
        TextTrainConfig {
            model_dir: PathBuf::from("models/all-MiniLM-L6-v2"),
            mode: "dense".into(),
            experts: 8,
            top_k: 2,
            moe_position: "out".into(),
            route_padding: false,
            capacity_factor: None,
            deploy: false,
            lambda: "both".into(),
            kappa: 0.5,
            static_init: "independent".into(),
            imp: crate::imp::ImpOptions::default(),
            imp_samples: 320,
            imp_after: 0,
            task: "debian-sections".into(),
            data_dir: None,
            text_col: "sentence".into(),
            pair_col: None,
            label_col: "label".into(),
            max_len: 128,
            epochs: 2,
            batch_size: 32,
            eval_batch_size: 64,
            lr: 1e-4,
            weight_decay: 0.01,
            warmup_ratio: 0.1,
            seed: 0,
            limit_train: None,
            limit_dev: None,
            log_every: 20,
            out: PathBuf::from("runs/text"),
            progress: true,
        }
    }
}

impl TextTrainConfig {
    /// The MoE settings (None in dense mode); rejects unknown modes and impossible k.
    pub fn bert_moe(&self) -> Result<Option<BertMoe>> {
        let pad = match self.mode.as_str() {
            "pad" => {
                StaticInit::parse(&self.static_init)?;
                if !(self.kappa > 0.0 && self.kappa <= 1.0) {
                    return Err(Error::Invalid(format!(
                        "--kappa must be in (0, 1], got {}",
                        self.kappa
                    )));
                }
                Some(crate::ops::dynconv::Lambda::parse(&self.lambda)?)
            }
            _ => None,
        };
        match self.mode.as_str() {
            "dense" => Ok(None),
            "moe" | "pad" => {
                if let Some(f) = self.capacity_factor {
                    if !(f > 0.0 && f.is_finite()) {
                        return Err(Error::Invalid(format!(
                            "--capacity-factor must be positive, got {f}"
                        )));
                    }
                }
                if self.top_k == 0 || self.top_k > self.experts || self.experts > 32 {
                    return Err(Error::Invalid(format!(
                        "--top-k {} of --experts {} (need 1 ≤ k ≤ E ≤ 32)",
                        self.top_k, self.experts
                    )));
                }
                Ok(Some(BertMoe {
                    position: MoePosition::parse(&self.moe_position)?,
                    config: MoeConfig {
                        pad,
                        experts: self.experts,
                        top_k: self.top_k,
                        capacity_factor: self.capacity_factor,
                        deploy: self.deploy && pad.is_some(),
                    },
                }))
            }
            o => Err(Error::Invalid(format!(
                "unknown text mode '{o}'; valid: dense, moe, pad"
            ))),
        }
    }
}

/// Where PAD-MoE's static weight starts (docs/method.md §1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaticInit {
    /// Random (nn.Linear's init), as the reference's constructor leaves it.
    Independent,
    /// The pretrained FFN weight (every expert starts there too: SNIP scores are 0 until the
    /// experts move, so IMP needs --imp-after).
    Pretrained,
    /// The mean of the experts, set when IMP runs (after a warm-up).
    Mean,
}

impl StaticInit {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "independent" => Ok(StaticInit::Independent),
            "pretrained" => Ok(StaticInit::Pretrained),
            "mean" => Ok(StaticInit::Mean),
            o => Err(Error::Invalid(format!(
                "unknown --static-init '{o}'; valid: independent, pretrained, mean"
            ))),
        }
    }
}

/// Per-epoch results (one line of metrics.jsonl). Classification tasks report accuracy,
/// macro-F1 and MCC; regression tasks (STS-B) Pearson and Spearman correlation.
#[derive(Clone, Debug, Serialize)]
pub struct TextEpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Clone, Debug, Default, Serialize)]
pub struct DevScores {
    #[serde(rename = "dev_acc", skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(rename = "dev_macro_f1", skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    #[serde(rename = "dev_mcc", skip_serializing_if = "Option::is_none")]
    pub mcc: Option<f64>,
    #[serde(rename = "dev_pearson", skip_serializing_if = "Option::is_none")]
    pub pearson: Option<f64>,
    #[serde(rename = "dev_spearman", skip_serializing_if = "Option::is_none")]
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

/// Builds the classifier: BERT → pooled [CLS] → `classifier` linear → logits [B, classes].
/// Also returns the MoE balance penalties to add to the loss.
pub fn classifier(
    b: &mut Builder,
    cfg: &BertConfig,
    inputs: &BertInputs,
    classes: usize,
    moe: Option<BertMoe>,
) -> Result<(TensorId, Vec<TensorId>)> {
    let out = bert::build_with(b, cfg, inputs, moe)?;
    let pooled = b.dropout(out.pooled, cfg.hidden_dropout_prob)?;
    Ok((b.linear("classifier", pooled, classes, true)?, out.aux))
}

/// The training objective on `logits` [B, outputs] with its backward pass: cross-entropy
/// on class labels (u32) or, for a regression head, the MSE on real targets (f32), plus
/// every MoE layer's balance penalty. Returns (the labels input, the task loss).
fn objective(
    g: &mut Graph,
    logits: TensorId,
    aux: &[TensorId],
    regression: bool,
    metrics: TensorId,
) -> Result<(TensorId, TensorId)> {
    let batch = g.shape(logits)[0];
    let (labels, loss) = if regression {
        let t = g.input("labels", &[batch], DType::F32);
        (t, g.push1(Op::MseLoss, &[logits, t, metrics])?)
    } else {
        let t = g.input("labels", &[batch], DType::U32);
        let ce = Op::CrossEntropy { smoothing: 0.0 };
        (t, g.push(ce, &[logits, t, metrics])?[0])
    };
    let mut total = loss;
    for &a in aux {
        total = g.push1(Op::Add, &[total, a])?;
    }
    let seed = g.constant("loss_seed", &[1], vec![1.0])?;
    backward(g, total, seed)?;
    Ok((labels, loss))
}

/// Writes a batch's targets (class indices or real values, as f32) into the labels input.
fn write_targets(exe: &Executable, labels: TensorId, targets: &[f32]) -> Result<()> {
    if exe.graph.tensors[labels].dtype == DType::U32 {
        exe.write_u32(
            labels,
            &targets.iter().map(|&t| t as u32).collect::<Vec<_>>(),
        )
    } else {
        exe.write(labels, targets)
    }
}

/// One compiled graph for a (batch, padded length).
struct Compiled {
    exe: Executable,
    inputs: BertInputs,
    labels: Option<TensorId>,
    /// Loss (training) or logits (evaluation).
    out: TensorId,
}

pub struct TextSession {
    pub gpu: Arc<Gpu>,
    pub store: ParamStore,
    /// AdamW; None in evaluation sessions ([`TextSession::for_eval`]).
    optimizer: Option<Optimizer>,
    pub bert: BertConfig,
    /// Model outputs: classes, or 1 for a regression head.
    pub classes: usize,
    /// MSE on one output (STS-B) instead of cross-entropy.
    pub regression: bool,
    pub moe: Option<BertMoe>,
    route_padding: bool,
    static_init: StaticInit,
    batch: usize,
    eval_batch: usize,
    /// Run seed (dropout masks derive from it and the step).
    seed: u32,
    train: HashMap<usize, Compiled>,
    eval: HashMap<usize, Compiled>,
    /// `[CLS] [SEP]`: fills the last evaluation batch.
    filler: Encoded,
}

impl TextSession {
    /// A session that trains: the store is laid out from the training graph, with AdamW.
    pub fn new(
        gpu: Arc<Gpu>,
        bert: BertConfig,
        classes: usize,
        cfg: &TextTrainConfig,
        filler: Encoded,
    ) -> Result<Self> {
        Self::build(gpu, bert, classes, cfg, filler, true)
    }

    /// A session that only evaluates: no training graph is built and no optimizer state
    /// (two copies of every parameter) allocated.
    pub fn for_eval(
        gpu: Arc<Gpu>,
        bert: BertConfig,
        classes: usize,
        cfg: &TextTrainConfig,
        filler: Encoded,
    ) -> Result<Self> {
        Self::build(gpu, bert, classes, cfg, filler, false)
    }

    fn build(
        gpu: Arc<Gpu>,
        bert: BertConfig,
        classes: usize,
        cfg: &TextTrainConfig,
        filler: Encoded,
        train: bool,
    ) -> Result<Self> {
        if cfg.batch_size == 0 || cfg.eval_batch_size == 0 {
            return Err(Error::Invalid("batch sizes must be at least 1".into()));
        }
        let moe = cfg.bert_moe()?;
        let regression = tsv::is_regression_task(&cfg.task);
        let classes = if regression { 1 } else { classes };
        let (g, _, _, _) = Self::graph_of(
            &bert,
            classes,
            regression,
            moe,
            cfg.route_padding,
            cfg.batch_size,
            LEN_STEP,
            train,
        )?;
        let store = ParamStore::new(gpu.clone(), &g, cfg.seed)?;
        let optimizer = if train {
            Some(Optimizer::new(
                &store,
                OptimConfig {
                    kind: OptimKind::AdamW {
                        beta1: 0.9,
                        beta2: 0.999,
                        eps: 1e-8,
                    },
                    weight_decay: cfg.weight_decay,
                },
            )?)
        } else {
            None
        };
        Ok(TextSession {
            gpu,
            store,
            optimizer,
            bert,
            classes,
            regression,
            moe,
            route_padding: cfg.route_padding,
            static_init: StaticInit::parse(&cfg.static_init)?,
            batch: cfg.batch_size,
            eval_batch: cfg.eval_batch_size,
            seed: crate::ops::elementwise::pcg_hash(cfg.seed as u32),
            train: HashMap::new(),
            eval: HashMap::new(),
            filler,
        })
    }

    fn graph(
        &self,
        batch: usize,
        len: usize,
        train: bool,
    ) -> Result<(Graph, BertInputs, Option<TensorId>, TensorId)> {
        Self::graph_of(
            &self.bert,
            self.classes,
            self.regression,
            self.moe,
            self.route_padding,
            batch,
            len,
            train,
        )
    }

    /// The graph of a classifier (or regression head) over a [batch, len] token batch:
    /// training graphs add the objective and its backward pass and return the labels input
    /// and the loss; evaluation graphs return the logits.
    #[allow(clippy::too_many_arguments)]
    pub fn graph_of(
        bert: &BertConfig,
        classes: usize,
        regression: bool,
        moe: Option<BertMoe>,
        route_padding: bool,
        batch: usize,
        len: usize,
        train: bool,
    ) -> Result<(Graph, BertInputs, Option<TensorId>, TensorId)> {
        let mut g = Graph::new();
        let mut b = Builder::new(&mut g, train);
        let mut inputs = BertInputs::new(&mut b, batch, len);
        if moe.is_some() && !route_padding {
            inputs = inputs.with_token_mask(&mut b);
        }
        let (logits, aux) = classifier(&mut b, bert, &inputs, classes, moe)?;
        if !train {
            g.mark_output(logits);
            return Ok((g, inputs, None, logits));
        }
        let metrics = g.state(METRICS, &[3], Init::Zeros);
        let (labels, loss) = objective(&mut g, logits, &aux, regression, metrics)?;
        g.mark_output(loss);
        Ok((g, inputs, Some(labels), loss))
    }

    /// Compiles the graph for padded length `len` unless it exists.
    fn compile(&mut self, len: usize, train: bool) -> Result<()> {
        let have = if train { &self.train } else { &self.eval };
        if have.contains_key(&len) {
            return Ok(());
        }
        let batch = if train { self.batch } else { self.eval_batch };
        let (g, inputs, labels, out) = self.graph(batch, len, train)?;
        let exe = Executable::compile(self.gpu.clone(), g, &self.store)?;
        let compiled = Compiled {
            exe,
            inputs,
            labels,
            out,
        };
        if train {
            self.train.insert(len, compiled);
        } else {
            self.eval.insert(len, compiled);
        }
        Ok(())
    }

    /// Loads a pretrained BERT checkpoint (Hugging Face names, with or without a `bert.`
    /// prefix; pretraining heads `cls.*` ignored). Every encoder tensor must be present with
    /// the model's shape; the new `classifier` (and a pooler the checkpoint lacks) keep their
    /// fresh initialisation, and MoE experts missing from a dense checkpoint are upcycled from
    /// it (routers start at zero). Returns the names left fresh.
    pub fn load_pretrained(&self, path: &Path) -> Result<Vec<String>> {
        let (tensors, _) = checkpoint::load(path)?;
        let mut tensors: checkpoint::Tensors = tensors
            .into_iter()
            .filter(|(n, _)| !n.starts_with("cls."))
            .map(|(n, t)| (n.strip_prefix("bert.").map(str::to_string).unwrap_or(n), t))
            .collect();
        checkpoint::stack_experts(&mut tensors, self.store.param_slots.keys());
        let mut problems = vec![];
        // Upcycling: experts a dense checkpoint lacks start as copies of the pretrained
        // linear layer they replace (`X.weight` → every `X.experts.{e}.weight`, same for bias).
        for (name, slot) in &self.store.param_slots {
            let Some((prefix, leaf)) = name.rsplit_once(".experts.") else {
                continue;
            };
            if tensors.contains_key(name) {
                continue;
            }
            // PAD-MoE's static weight is `X.weight` itself: it keeps the pretrained weight
            // unless it starts independent.
            let source = format!("{prefix}.{leaf}");
            let keep = leaf == "weight"
                && self.store.param_slots.contains_key(&source)
                && self.static_init != StaticInit::Independent;
            let found = if keep {
                tensors.get(&source).cloned()
            } else {
                tensors.remove(&source)
            };
            if let Some((shape, data)) = found {
                if shape[..] != slot.shape[1..] {
                    problems.push(format!(
                        "'{prefix}.{leaf}' {shape:?} cannot seed experts {:?}",
                        slot.shape
                    ));
                    continue;
                }
                let copies = data.repeat(slot.shape[0]);
                tensors.insert(name.clone(), (slot.shape.clone(), copies));
            }
        }
        let mut fresh = vec![];
        for (name, slot) in &self.store.param_slots {
            let static_weight = name.strip_suffix(".weight").is_some_and(|l| {
                self.store
                    .param_slots
                    .contains_key(&format!("{l}.experts.weight"))
            });
            let new_part = name.starts_with("classifier.")
                || name.starts_with("pooler.")
                || name.ends_with(".w_gate")
                || name.ends_with(".w_noise")
                || name.ends_with(".phi_d")
                || (static_weight && self.static_init == StaticInit::Independent);
            match tensors.get(name) {
                Some((shape, _)) if *shape != slot.shape => problems.push(format!(
                    "'{name}': checkpoint {shape:?} vs model {:?}",
                    slot.shape
                )),
                Some(_) => {}
                None if new_part => fresh.push(name.clone()),
                None => problems.push(format!("missing '{name}' {:?}", slot.shape)),
            }
        }
        for name in tensors.keys() {
            if !self.store.param_slots.contains_key(name) {
                problems.push(format!("unexpected '{name}'"));
            }
        }
        if let Some(first) = problems.first() {
            return Err(Error::data(
                path,
                format!(
                    "not a checkpoint of this BERT ({} problems; first: {first})",
                    problems.len()
                ),
            ));
        }
        for (name, (_, data)) in &tensors {
            self.store.write(name, data)?;
        }
        Ok(fresh)
    }

    /// Iterative Mode Partition of the PAD-MoE masks (docs/method.md §2) on `examples` (batches
    /// of the training batch size, evaluation mode: no dropout, clean routing): scores per
    /// round, then exactly round(κ·N) positions stay dynamic (globally or per layer).
    pub fn imp(
        &mut self,
        tok: &TextTokenizer,
        examples: &[&Encoded],
        targets: &[f32],
        cfg: &crate::imp::ImpConfig,
        step: usize,
    ) -> Result<crate::imp::ImpReport> {
        use crate::imp::Scorer;
        let layers = crate::imp::pad_layers(&self.store);
        if layers.is_empty() {
            return Err(Error::Invalid("IMP needs --mode pad".into()));
        }
        if self.static_init == StaticInit::Mean {
            for l in &layers {
                let (w, n, e) = (self.store.read(&l.dynamic)?, l.positions, l.k);
                let mean: Vec<f32> = (0..n)
                    .map(|j| (0..e).map(|k| w[k * n + j]).sum::<f32>() / e as f32)
                    .collect();
                self.store.write(&l.static_weight, &mean)?;
            }
        }
        let batches = examples.len() / self.batch;
        if batches == 0 && cfg.scorer == Scorer::Snip {
            return Err(Error::Invalid(format!(
                "IMP needs at least one batch of {} examples (--imp-samples)",
                self.batch
            )));
        }
        let score_graph = match cfg.scorer {
            Scorer::Snip => Some(self.score_graph(examples, &layers)?),
            Scorer::Variance => {
                return Err(Error::Invalid(
                    "the variance scorer is for DY-Conv; PAD-MoE takes snip, rand or mag".into(),
                ))
            }
            _ => None,
        };
        let names: Vec<String> = layers.iter().map(|l| l.mask.clone()).collect();
        let this = &*self;
        let rounds = crate::imp::iterate(&this.store, &names, cfg, |rng| {
            if let Some(scores) =
                crate::imp::data_free_scores(&this.store, &layers, cfg.scorer, rng)
            {
                return scores;
            }
            let (exe, inputs, label_input, len, accs) = score_graph
                .as_ref()
                .expect("built for snip, the one data scorer here");
            crate::imp::clear_accumulators(exe, accs)?;
            for b in 0..batches {
                let idx = b * this.batch..(b + 1) * this.batch;
                let (feed, _) = tok.pad(&examples[idx.clone()], *len);
                feed.write(inputs, exe)?;
                write_targets(exe, *label_input, &targets[idx])?;
                exe.run()?;
            }
            let s = crate::imp::snip_from_accumulators(exe, &this.store, accs)?;
            if s.iter().flatten().all(|&v| v == 0.0) {
                return Err(Error::Invalid(
                    "every SNIP score is 0: the static weight equals every expert (pretrained or mean static init before the experts moved); run IMP after a warm-up (--imp-after STEPS) or use --static-init independent".into(),
                ));
            }
            Ok(s)
        })?;
        println!(
            "IMP of the PAD-MoE masks at training step {step} on {} examples (static init {}):",
            examples.len(),
            format!("{:?}", self.static_init).to_lowercase()
        );
        let mut report = crate::imp::report(&self.store, cfg)?;
        report.rounds = rounds;
        Ok(report)
    }

    /// The scoring graph of IMP: evaluation-mode classifier on batches padded to one length,
    /// its training objective (cross-entropy + balance penalties), the backward pass, and per
    /// mask an accumulator of ∂L/∂M over the scored batches.
    #[allow(clippy::type_complexity)]
    fn score_graph(
        &self,
        examples: &[&Encoded],
        layers: &[crate::imp::PadLayer],
    ) -> Result<(Executable, BertInputs, TensorId, usize, Vec<TensorId>)> {
        let longest = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1);
        let len = longest.div_ceil(LEN_STEP) * LEN_STEP;
        let mut g = Graph::new();
        let mut b = Builder::new(&mut g, false);
        let mut inputs = BertInputs::new(&mut b, self.batch, len);
        if !self.route_padding {
            inputs = inputs.with_token_mask(&mut b);
        }
        let (logits, aux) = classifier(&mut b, &self.bert, &inputs, self.classes, self.moe)?;
        let metrics = g.input("imp_metrics", &[3], DType::F32);
        let (labels, _) = objective(&mut g, logits, &aux, self.regression, metrics)?;
        let mut accs = vec![];
        for crate::imp::PadLayer { mask, .. } in layers {
            let m = g.find(mask).expect("mask built by the model");
            let dm = *g
                .mask_grads
                .get(&m)
                .expect("PAD-MoE records the mask gradient");
            let shape = g.shape(m).to_vec();
            let acc = g.input(&format!("imp_score.{mask}"), &shape, DType::F32);
            g.push(Op::Accumulate, &[acc, dm])?;
            accs.push(acc);
        }
        let exe = Executable::compile(self.gpu.clone(), g, &self.store)?;
        Ok((exe, inputs, labels, len, accs))
    }

    /// Encodes and submits one training step on `examples` (exactly the batch size).
    pub fn step(
        &mut self,
        tok: &TextTokenizer,
        examples: &[&Encoded],
        targets: &[f32],
        lr: f32,
    ) -> Result<()> {
        let (feed, len) = tok.pad(examples, LEN_STEP);
        self.step_feed(&feed, len, targets, lr)
    }

    /// One training step on a padded batch of length `len` (no host synchronisation).
    /// `targets`: class indices as f32, or the real values of a regression task.
    pub fn step_feed(
        &mut self,
        feed: &BertFeed,
        len: usize,
        targets: &[f32],
        lr: f32,
    ) -> Result<()> {
        if self.optimizer.is_none() {
            return Err(Error::Invalid(
                "an evaluation session (TextSession::for_eval) does not train".into(),
            ));
        }
        self.compile(len, true)?;
        let c = &self.train[&len];
        let optimizer = self.optimizer.as_mut().expect("checked above");
        feed.write(&c.inputs, &c.exe)?;
        write_targets(&c.exe, c.labels.expect("training graph"), targets)?;
        if let Some(t) = c.exe.graph.find(DROPOUT_SEED) {
            // A fresh mask every step, reproducible from the run's seed.
            let seed = crate::ops::elementwise::pcg_hash(self.seed ^ optimizer.step as u32);
            c.exe.write_u32(t, &[seed])?;
        }
        optimizer.prepare(&self.store, lr);
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            c.exe.encode(&mut pass);
            optimizer.encode(&mut pass);
        }
        self.gpu.queue.submit([enc.finish()]);
        Ok(())
    }

    /// Peak GPU memory of the training graph of padded length `len` (0 if not compiled).
    pub fn peak_bytes(&self, len: usize) -> u64 {
        self.train.get(&len).map_or(0, |c| c.exe.peak_bytes())
    }

    /// Per-kernel profile of the training graph of the longest padded length compiled so far.
    pub fn print_profile(&self) -> Result<()> {
        if let Some(len) = self.train.keys().max() {
            println!("training graph, batch {} x {len} tokens:", self.batch);
            crate::train::print_profile(&self.train[len].exe, 3)?;
            if let Some(opt) = &self.optimizer {
                crate::train::print_optimizer_profile(opt, &self.store, 3)?;
            }
        }
        Ok(())
    }

    /// (mean loss, accuracy) accumulated on the GPU since the last reset; syncs.
    pub fn train_metrics(&self) -> Result<(f64, f64)> {
        let m = self.store.read(METRICS)?;
        self.gpu.check()?;
        let n = m[2].max(1.0) as f64;
        Ok((m[0] as f64 / n, m[1] as f64 / n))
    }

    pub fn reset_train_metrics(&self) -> Result<()> {
        self.store.write(METRICS, &[0.0; 3])
    }

    /// Logits [N, classes] of `examples`, in order.
    pub fn logits(&mut self, tok: &TextTokenizer, examples: &[Encoded]) -> Result<Vec<f32>> {
        let mut order: Vec<usize> = (0..examples.len()).collect();
        order.sort_by_key(|&i| examples[i].ids.len());
        let mut out = vec![0f32; examples.len() * self.classes];
        for chunk in order.chunks(self.eval_batch) {
            let mut batch: Vec<&Encoded> = chunk.iter().map(|&i| &examples[i]).collect();
            let filler = self.filler.clone();
            batch.resize(self.eval_batch, &filler);
            let (feed, len) = tok.pad(&batch, LEN_STEP);
            self.compile(len, false)?;
            let c = &self.eval[&len];
            feed.write(&c.inputs, &c.exe)?;
            c.exe.run()?;
            let logits = c.exe.read(c.out, &self.store)?;
            for (k, &i) in chunk.iter().enumerate() {
                out[i * self.classes..(i + 1) * self.classes]
                    .copy_from_slice(&logits[k * self.classes..(k + 1) * self.classes]);
            }
        }
        Ok(out)
    }
}

/// Training batches of one epoch: shuffled, sorted by length inside buckets of
/// `BUCKET_BATCHES` batches (so a batch pads little), the batch order shuffled again; the
/// last incomplete batch is dropped.
pub fn epoch_batches(lengths: &[usize], batch: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut order);
    for bucket in order.chunks_mut(batch * BUCKET_BATCHES) {
        bucket.sort_by_key(|&i| lengths[i]);
    }
    let mut batches: Vec<Vec<usize>> = order.chunks_exact(batch).map(<[usize]>::to_vec).collect();
    rng.shuffle(&mut batches);
    batches
}

/// The model's config.json and tokenizer.json, checked against each other and `max_len`:
/// the texts must fit the model's positions and the tokenizer's ids its vocabulary.
fn load_model_files(
    config: &Path,
    tokenizer: &Path,
    max_len: usize,
) -> Result<(BertConfig, TextTokenizer)> {
    let bert_cfg = BertConfig::load(config)?;
    if max_len > bert_cfg.max_position_embeddings {
        return Err(Error::Invalid(format!(
            "--max-len {max_len} exceeds the model's {} positions",
            bert_cfg.max_position_embeddings
        )));
    }
    let tok = TextTokenizer::load(tokenizer, max_len)?;
    if tok.vocab_size() > bert_cfg.vocab_size {
        return Err(Error::data(
            tokenizer,
            format!(
                "vocabulary of {} tokens exceeds the model's {}",
                tok.vocab_size(),
                bert_cfg.vocab_size
            ),
        ));
    }
    Ok((bert_cfg, tok))
}

/// Tokenizes a split; prints a count of truncated texts.
fn encode_set(tok: &TextTokenizer, set: &TextSet, max_len: usize) -> Result<Vec<Encoded>> {
    let enc: Vec<Encoded> = set
        .texts
        .iter()
        .map(|(a, b)| tok.encode(a, b.as_deref()))
        .collect::<Result<_>>()?;
    let cut = enc.iter().filter(|e| e.truncated).count();
    if cut > 0 {
        eprintln!(
            "warning: {cut} of {} texts of {} truncated to {max_len} tokens",
            enc.len(),
            set.name
        );
    }
    Ok(enc)
}

/// Fine-tunes the BERT in `cfg.model_dir` on `cfg.task`, evaluating on the dev split after
/// every epoch; writes metrics.jsonl, config.json (the run's options), model.safetensors
/// (Hugging Face names + `classifier.*`, classes in the metadata), and copies the model's
/// config.json as bert_config.json and tokenizer.json, so `--out` is a complete model.
pub fn train(gpu: Arc<Gpu>, cfg: &TextTrainConfig) -> Result<Vec<TextEpochMetrics>> {
    if cfg.epochs == 0 {
        return Err(Error::Invalid("--epochs must be at least 1".into()));
    }
    let columns = TsvColumns {
        text: cfg.text_col.clone(),
        pair: cfg.pair_col.clone(),
        label: cfg.label_col.clone(),
    };
    let (mut train_set, mut dev_set) =
        tsv::load_task(&cfg.task, cfg.data_dir.as_deref(), &columns)?;
    if let Some(n) = cfg.limit_train {
        train_set.truncate(n);
    }
    if let Some(n) = cfg.limit_dev {
        dev_set.truncate(n);
    }
    if train_set.len() < cfg.batch_size {
        return Err(Error::Invalid(format!(
            "{} training examples are fewer than one batch of {}",
            train_set.len(),
            cfg.batch_size
        )));
    }
    let (bert_cfg, tok) = load_model_files(
        &cfg.model_dir.join("config.json"),
        &cfg.model_dir.join("tokenizer.json"),
        cfg.max_len,
    )?;
    let classes = train_set.classes.clone();
    let train_enc = encode_set(&tok, &train_set, cfg.max_len)?;
    let dev_enc = encode_set(&tok, &dev_set, cfg.max_len)?;
    let filler = tok.encode("", None)?;

    let mut s = TextSession::new(gpu.clone(), bert_cfg, classes.len(), cfg, filler)?;
    let weights = cfg.model_dir.join("model.safetensors");
    let fresh = s.load_pretrained(&weights)?;
    let moe = match s.moe {
        Some(m) => {
            let pad = match m.config.pad {
                Some(l) => format!(
                    "; PAD-MoE λ {}, κ {}, static weight {}",
                    l.name(),
                    cfg.kappa,
                    cfg.static_init
                ),
                None => String::new(),
            };
            format!(
                ", MoE {:?}: {} experts, top-{} (upcycled{pad})",
                m.position, m.config.experts, m.config.top_k
            )
        }
        None => String::new(),
    };
    println!(
        "model: BERT from {} ({} layers, hidden {}{moe}, {:.1}M parameters); newly initialised: {}",
        cfg.model_dir.display(),
        s.bert.num_hidden_layers,
        s.bert.hidden_size,
        s.store.num_params() as f64 / 1e6,
        fresh.join(", ")
    );
    println!(
        "task: {} ({}), {} train / {} dev examples; adapter: {}",
        cfg.task,
        if train_set.is_regression() {
            "regression".to_string()
        } else {
            format!("{} classes", classes.len())
        },
        train_set.len(),
        dev_set.len(),
        gpu.describe()
    );
    // PAD-MoE: IMP on a seeded random subset of the training set, before training or after
    // --imp-after warm-up steps of the fully dynamic model.
    let imp = match (&s.moe, cfg.mode.as_str()) {
        (Some(_), "pad") if cfg.kappa < 1.0 => {
            let imp_cfg = cfg.imp.config(cfg.kappa, cfg.seed)?;
            if cfg.imp_after == 0 && s.static_init != StaticInit::Independent {
                return Err(Error::Invalid(format!(
                    "--static-init {} starts the static weight equal to every expert, so every SNIP score is 0 before training: add --imp-after STEPS",
                    cfg.static_init
                )));
            }
            let mut order: Vec<usize> = (0..train_enc.len()).collect();
            Rng::new(cfg.seed ^ 0x1397).shuffle(&mut order);
            order.truncate(cfg.imp_samples.min(order.len()));
            Some((imp_cfg, order))
        }
        _ => None,
    };
    let run_imp = |s: &mut TextSession, step: usize| -> Result<()> {
        let Some((imp_cfg, order)) = &imp else {
            return Ok(());
        };
        let examples: Vec<&Encoded> = order.iter().map(|&i| &train_enc[i]).collect();
        let targets: Vec<f32> = order.iter().map(|&i| train_set.targets[i]).collect();
        let report = s.imp(&tok, &examples, &targets, imp_cfg, step)?;
        report.print();
        report.save(&cfg.out)
    };
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    if cfg.imp_after == 0 {
        run_imp(&mut s, 0)?;
    }
    let steps_per_epoch = train_set.len() / cfg.batch_size;
    let total = cfg.epochs * steps_per_epoch;
    let schedule = Schedule {
        base_lr: cfg.lr,
        warmup_steps: (cfg.warmup_ratio * total as f32).round() as usize,
        total_steps: total,
        steps_per_epoch,
        decay: Decay::Linear,
    };
    let lengths: Vec<usize> = train_enc.iter().map(|e| e.ids.len()).collect();
    let mut rng = Rng::new(cfg.seed ^ 0x7e47);
    let mut history = vec![];
    let mut step = 0;
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        s.reset_train_metrics()?;
        let batches = epoch_batches(&lengths, cfg.batch_size, &mut rng);
        let bar = crate::train::progress_bar(
            cfg.progress,
            (batches.len() * cfg.batch_size) as u64,
            epoch,
            cfg.epochs,
            "ex",
        );
        let mut tokens = 0usize;
        let mut lr = cfg.lr;
        for (k, idx) in batches.iter().enumerate() {
            let examples: Vec<&Encoded> = idx.iter().map(|&i| &train_enc[i]).collect();
            let targets: Vec<f32> = idx.iter().map(|&i| train_set.targets[i]).collect();
            if step > 0 && step == cfg.imp_after {
                bar.suspend(|| run_imp(&mut s, step))?;
            }
            lr = schedule.lr(step);
            s.step(&tok, &examples, &targets, lr)?;
            tokens += examples.iter().map(|e| e.ids.len()).sum::<usize>();
            step += 1;
            bar.inc(cfg.batch_size as u64);
            if (k + 1) % cfg.log_every.max(1) == 0 || k + 1 == batches.len() {
                let (loss, acc) = s.train_metrics()?;
                let tps = tokens as f64 / t0.elapsed().as_secs_f64();
                bar.set_message(format!(
                    "loss {loss:.4} acc {:.2}% {tps:.0} tok/s",
                    acc * 100.0
                ));
            }
        }
        let (train_loss, train_acc) = s.train_metrics()?;
        let seconds = t0.elapsed().as_secs_f64();
        if epoch == 1 && std::env::var_os("PADNET_PROFILE").is_some() {
            s.print_profile()?;
        }
        bar.finish_and_clear();
        let logits = s.logits(&tok, &dev_enc)?;
        let (dev_loss, dev) = dev_scores(&logits, &dev_set);
        let m = TextEpochMetrics {
            epoch,
            train_loss,
            train_acc: (!s.regression).then_some(train_acc),
            dev_loss,
            dev,
            lr,
            tokens_per_s: tokens as f64 / seconds,
            seconds,
        };
        let train_acc = m
            .train_acc
            .map_or(String::new(), |a| format!(" acc {:.2}%", a * 100.0));
        println!(
            "epoch {epoch}/{}: train loss {train_loss:.4}{train_acc} | dev loss {dev_loss:.4} {} | {:.0} tok/s, {seconds:.1} s",
            cfg.epochs, m.dev, m.tokens_per_s
        );
        history.push(m);
        save_run(&s, cfg, &classes, &history, step)?;
    }
    println!("wrote {}", cfg.out.display());
    Ok(history)
}

fn save_run(
    s: &TextSession,
    cfg: &TextTrainConfig,
    classes: &[String],
    history: &[TextEpochMetrics],
    step: usize,
) -> Result<()> {
    checkpoint::write_jsonl(&cfg.out.join("metrics.jsonl"), history)?;
    let config = serde_json::to_string_pretty(cfg).expect("config serialises");
    checkpoint::write_atomic(&cfg.out.join("config.json"), config.as_bytes())?;
    for (from, to) in [
        ("config.json", "bert_config.json"),
        ("tokenizer.json", "tokenizer.json"),
    ] {
        let src = cfg.model_dir.join(from);
        let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
        checkpoint::write_atomic(&cfg.out.join(to), &bytes)?;
    }
    let tensors = checkpoint::from_store(&s.store)?;
    let meta: HashMap<String, String> = [
        ("format", "padnet-wgpu".to_string()),
        ("arch", "bert".to_string()),
        ("mode", cfg.mode.clone()),
        ("experts", cfg.experts.to_string()),
        ("top_k", cfg.top_k.to_string()),
        ("moe_position", cfg.moe_position.clone()),
        ("route_padding", cfg.route_padding.to_string()),
        (
            "capacity_factor",
            cfg.capacity_factor.map_or("none".into(), |f| f.to_string()),
        ),
        ("lambda", cfg.lambda.clone()),
        ("kappa", cfg.kappa.to_string()),
        ("static_init", cfg.static_init.clone()),
        ("task", cfg.task.clone()),
        ("text_col", cfg.text_col.clone()),
        ("pair_col", cfg.pair_col.clone().unwrap_or_default()),
        ("label_col", cfg.label_col.clone()),
        (
            "classes",
            serde_json::to_string(classes).expect("strings serialise"),
        ),
        ("max_len", cfg.max_len.to_string()),
        ("epoch", history.len().to_string()),
        ("step", step.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    checkpoint::save(&cfg.out.join("model.safetensors"), &tensors, meta)
}

/// `padnet-wgpu eval` of a text checkpoint (a `train --out` directory's model.safetensors,
/// or a PAD-MoE deploy file exported from one).
#[derive(Clone, Debug, Default)]
pub struct TextEvalConfig {
    pub checkpoint: PathBuf,
    /// Task to evaluate on (default: the checkpoint's), its data directory and the model
    /// directory with bert_config.json (or config.json) and tokenizer.json (default: the
    /// checkpoint's directory).
    pub task: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub model_dir: Option<PathBuf>,
    pub batch_size: usize,
    pub limit: Option<usize>,
    pub logits_out: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TextEvalReport {
    pub task: String,
    pub examples: usize,
    pub loss: f64,
    #[serde(flatten)]
    pub scores: DevScores,
    /// Real (non-padding) tokens per second of the timed pass.
    pub tokens_per_s: f64,
    pub deploy: bool,
}

/// True for checkpoints written by the text path (`arch` bert in the metadata).
pub fn is_text_checkpoint(meta: &HashMap<String, String>) -> bool {
    meta.get("arch").map(String::as_str) == Some("bert")
}

/// Evaluates a text checkpoint on the dev split of its task.
pub fn evaluate(gpu: Arc<Gpu>, cfg: &TextEvalConfig) -> Result<TextEvalReport> {
    let (tensors, meta) = checkpoint::load(&cfg.checkpoint)?;
    let bad = |msg: String| Error::data(&cfg.checkpoint, msg);
    if !is_text_checkpoint(&meta) {
        return Err(bad("not a text (BERT) checkpoint".into()));
    }
    let get = |key: &str| {
        meta.get(key)
            .cloned()
            .ok_or_else(|| bad(format!("metadata lacks '{key}'")))
    };
    let num = |key: &str| -> Result<usize> {
        get(key)?
            .parse()
            .map_err(|_| bad(format!("metadata '{key}' is not a number")))
    };
    let classes: Vec<String> = serde_json::from_str(&get("classes")?)
        .map_err(|_| bad("metadata 'classes' is not a JSON list of names".into()))?;
    let deploy = crate::export::is_deploy(&meta);
    let d = TextTrainConfig::default();
    let mode = get("mode")?;
    let moe_mode = mode != "dense";
    let tcfg = TextTrainConfig {
        mode,
        experts: if moe_mode { num("experts")? } else { d.experts },
        top_k: if moe_mode { num("top_k")? } else { d.top_k },
        moe_position: meta.get("moe_position").cloned().unwrap_or(d.moe_position),
        route_padding: meta.get("route_padding").is_some_and(|v| v == "true"),
        capacity_factor: match meta.get("capacity_factor").map(String::as_str) {
            None | Some("none") => None,
            Some(v) => Some(
                v.parse()
                    .map_err(|_| bad(format!("metadata 'capacity_factor' {v:?}")))?,
            ),
        },
        // A deploy file has λ folded in; the folded layer has no λ.
        lambda: meta.get("lambda").cloned().unwrap_or(d.lambda),
        deploy,
        task: cfg.task.clone().unwrap_or(get("task")?),
        data_dir: cfg.data_dir.clone(),
        text_col: meta.get("text_col").cloned().unwrap_or(d.text_col),
        pair_col: meta.get("pair_col").filter(|c| !c.is_empty()).cloned(),
        label_col: meta.get("label_col").cloned().unwrap_or(d.label_col),
        max_len: num("max_len")?,
        eval_batch_size: cfg.batch_size,
        batch_size: cfg.batch_size,
        ..d
    };
    let dir = match &cfg.model_dir {
        Some(dir) => dir.clone(),
        None => cfg
            .checkpoint
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let bert_path = ["bert_config.json", "config.json"]
        .map(|f| dir.join(f))
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::data(
                dir.join("bert_config.json"),
                "not found (the model's config.json, written next to every text checkpoint; or give --model-dir)",
            )
        })?;
    let (bert_cfg, tok) = load_model_files(&bert_path, &dir.join("tokenizer.json"), tcfg.max_len)?;
    let columns = TsvColumns {
        text: tcfg.text_col.clone(),
        pair: tcfg.pair_col.clone(),
        label: tcfg.label_col.clone(),
    };
    let (train_set, mut dev_set) = tsv::load_task(&tcfg.task, tcfg.data_dir.as_deref(), &columns)?;
    if train_set.classes != classes {
        return Err(Error::Invalid(format!(
            "task {} has classes {:?}; the checkpoint was trained on {:?}",
            tcfg.task, train_set.classes, classes
        )));
    }
    if let Some(n) = cfg.limit {
        dev_set.truncate(n);
    }
    let dev_enc = encode_set(&tok, &dev_set, tcfg.max_len)?;
    let mut s = TextSession::for_eval(gpu, bert_cfg, classes.len(), &tcfg, tok.encode("", None)?)?;
    let tensors = if deploy {
        let layers = s
            .store
            .param_slots
            .iter()
            .filter_map(|(name, slot)| {
                let layer = name.strip_suffix(".experts.weight")?;
                let sh = &slot.shape;
                Some((layer.to_string(), (sh[0], sh[1], sh[2])))
            })
            .collect();
        crate::export::unpack_moe(tensors, &layers, &cfg.checkpoint)?
    } else {
        tensors
    };
    checkpoint::into_store(&s.store, &tensors, &cfg.checkpoint)?;
    // Warm-up (pipeline creation) on one batch, then the timed pass.
    let warm = dev_enc.len().min(cfg.batch_size);
    s.logits(&tok, &dev_enc[..warm])?;
    let t0 = Instant::now();
    let logits = s.logits(&tok, &dev_enc)?;
    let seconds = t0.elapsed().as_secs_f64();
    if let Some(path) = &cfg.logits_out {
        crate::eval::write_logits(path, &logits, dev_enc.len(), s.classes)?;
    }
    let (loss, scores) = dev_scores(&logits, &dev_set);
    let tokens: usize = dev_enc.iter().map(|e| e.ids.len()).sum();
    Ok(TextEvalReport {
        task: tcfg.task,
        examples: dev_enc.len(),
        loss,
        scores,
        tokens_per_s: tokens as f64 / seconds,
        deploy,
    })
}

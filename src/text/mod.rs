//! Fine-tuning a pretrained BERT (e.g. all-MiniLM-L6-v2) for text classification and
//! regression: Hugging Face's `BertForSequenceClassification` layout (encoder, tanh pooler on
//! [CLS], `classifier` linear) with AdamW, linear warm-up and decay, dense, MoE or PAD-MoE.
//! Batches are padded only to their longest example: examples are sorted by length inside
//! shuffled buckets, and one graph is compiled per padded length (a multiple of 8), all
//! sharing one parameter store.
//!
//! - `session.rs`: the compiled model (graphs per padded length, pretrained loading, IMP).
//! - `task.rs`: the text task the shared loop (`trainer/`) trains.
//! - `scores.rs`: dev metrics (accuracy, macro-F1, MCC, Pearson, Spearman).
//! - `eval.rs`: `padnet-wgpu eval` of text checkpoints.
//! - `imp.rs`: `padnet-wgpu imp` of text checkpoints.

mod eval;
mod imp;
mod scores;
mod session;
mod task;

pub use eval::{
    evaluate, export_costs, is_text_checkpoint, TextEvalConfig, TextEvalReport,
    TEXT_DEPLOY_SPLIT_ROW,
};
pub use imp::imp_command;
pub use scores::{dev_scores, f1_and_mcc, pearson, spearman, DevScores, TextEpochMetrics};
pub use session::{classifier, epoch_batches, TextSession};
pub use task::{train, TextTask};

use crate::data::tokenize::{Encoded, TextTokenizer};
use crate::data::tsv::TextSet;
use crate::error::{Error, Result};
use crate::kernels::dynconv::Lambda;
use crate::models::bert::{BertConfig, BertMoe, MoePosition};
use crate::nn::moe::MoeConfig;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `--model` names of the text path.
pub const TEXT_MODELS: [&str; 2] = ["minilm-l6", "bert"];

/// Padded lengths are rounded up to a multiple of this, to bound the number of graphs.
pub(crate) const LEN_STEP: usize = 8;
/// Examples sorted by length together: this many batches' worth.
pub(crate) const BUCKET_BATCHES: usize = 50;

#[derive(Clone, Debug, Serialize)]
pub struct TextTrainConfig {
    /// Directory with config.json, tokenizer.json and model.safetensors (Hugging Face BERT).
    pub model_dir: PathBuf,
    /// dense, moe (the FFN layers at `moe_position` become `experts` experts, top-k
    /// routed) or pad (PAD-MoE).
    pub mode: TextMode,
    pub experts: usize,
    pub top_k: usize,
    pub moe_position: MoePosition,
    /// Route padding tokens to experts too (the reference does; default keeps them out).
    pub route_padding: bool,
    /// GShard capacity factor (None: no token dropping), see `MoeConfig::capacity_factor`.
    pub capacity_factor: Option<f32>,
    /// PAD-MoE: λ variant.
    pub lambda: Lambda,
    /// PAD-MoE: dynamic fraction κ kept by IMP (1 = no IMP, every position dynamic).
    pub kappa: f64,
    /// PAD-MoE: the static weight starts independent (random), as the pretrained weight, or
    /// (at IMP time) as the mean of the experts.
    pub static_init: StaticInit,
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
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub lr: f32,
    pub weight_decay: f32,
    /// Linear warm-up over this fraction of all steps, then the schedule's decay.
    pub warmup_ratio: f32,
    pub schedule: crate::executor::optim::ScheduleKind,
    /// `milestones` schedule: epochs at which the rate is multiplied by `gamma`.
    pub milestones: Vec<usize>,
    pub gamma: f32,
    pub seed: u64,
    pub limit_train: Option<usize>,
    pub limit_dev: Option<usize>,
    /// Epochs, run directory, resume, saving and logging.
    #[serde(flatten)]
    pub run: crate::trainer::RunOptions,
}

impl Default for TextTrainConfig {
    fn default() -> Self {
        TextTrainConfig {
            model_dir: PathBuf::from("models/all-MiniLM-L6-v2"),
            mode: TextMode::Dense,
            experts: 8,
            top_k: 2,
            moe_position: MoePosition::Out,
            route_padding: false,
            capacity_factor: None,
            lambda: Lambda::Both,
            kappa: 0.5,
            static_init: StaticInit::Independent,
            imp: crate::imp::ImpOptions::default(),
            imp_samples: 320,
            imp_after: 0,
            task: "debian-sections".into(),
            data_dir: None,
            text_col: "sentence".into(),
            pair_col: None,
            label_col: "label".into(),
            max_len: 128,
            batch_size: 32,
            eval_batch_size: 64,
            lr: 1e-4,
            weight_decay: 0.01,
            warmup_ratio: 0.1,
            schedule: crate::executor::optim::ScheduleKind::Linear,
            milestones: vec![],
            gamma: 0.1,
            seed: 0,
            limit_train: None,
            limit_dev: None,
            run: crate::trainer::RunOptions::default(),
        }
    }
}

impl TextTrainConfig {
    /// The MoE settings (None in dense mode); rejects unknown modes and impossible k.
    pub fn bert_moe(&self) -> Result<Option<BertMoe>> {
        let pad = match self.mode {
            TextMode::Pad => {
                if !(self.kappa > 0.0 && self.kappa <= 1.0) {
                    return Err(Error::Invalid(format!(
                        "--kappa must be in (0, 1], got {}",
                        self.kappa
                    )));
                }
                Some(self.lambda)
            }
            _ => None,
        };
        match self.mode {
            TextMode::Dense => Ok(None),
            TextMode::Moe | TextMode::Pad => {
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
                    position: self.moe_position,
                    config: MoeConfig {
                        pad,
                        experts: self.experts,
                        top_k: self.top_k,
                        capacity_factor: self.capacity_factor,
                    },
                }))
            }
        }
    }
}

/// Where PAD-MoE's static weight starts (docs/method.md §1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StaticInit {
    /// Random (nn.Linear's init), as the reference's constructor leaves it.
    Independent,
    /// The pretrained FFN weight (every expert starts there too: SNIP scores are 0 until the
    /// experts move, so IMP needs --imp-after).
    Pretrained,
    /// The mean of the experts, set when IMP runs (after a warm-up).
    Mean,
}

impl crate::names::Named for StaticInit {
    const WHAT: &'static str = "static init";
}

/// What the FFN layers of a text model are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TextMode {
    /// The pretrained dense FFN.
    Dense,
    /// Mixtures of experts upcycled from the FFN, routed top-k.
    Moe,
    /// PAD-MoE: experts on a mask's dynamic positions, one static weight elsewhere.
    Pad,
}

impl crate::names::Named for TextMode {
    const WHAT: &'static str = "text mode";
}

/// The model's config.json and tokenizer.json, checked against each other and `max_len`:
/// the texts must fit the model's positions and the tokenizer's ids its vocabulary.
pub(crate) fn load_model_files(
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
pub(crate) fn encode_set(
    tok: &TextTokenizer,
    set: &TextSet,
    max_len: usize,
) -> Result<Vec<Encoded>> {
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

/// The training examples IMP scores on: `samples` of `n`, a seeded random subset (the same
/// rule in training and in the `imp` command).
pub(crate) fn imp_subset(n: usize, samples: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    crate::rng::Rng::new(seed ^ 0x1397).shuffle(&mut order);
    order.truncate(samples.min(n));
    order
}

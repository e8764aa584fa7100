//! Text classification and regression as a [`Task`] of the shared training loop.

use super::{
    dev_scores, encode_set, load_model_files, StaticInit, TextEpochMetrics, TextMode, TextSession,
    TextTrainConfig,
};
use crate::checkpoint;
use crate::data::tokenize::{Encoded, TextTokenizer};
use crate::data::tsv::{self, TextSet, TsvColumns};
use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::executor::optim::{Optimizer, Schedule};
use crate::executor::ParamStore;
use crate::gpu::Gpu;
use crate::imp::{ImpConfig, ImpReport};
use crate::names::Named;
use crate::rng::Rng;
use crate::trainer::{self, Batches, EpochStats, LoopConfig, Task};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A BERT fine-tuned on a GLUE-format task: the session, the tokenized splits, and the
/// shuffling state of the epochs.
pub struct TextTask<'a> {
    cfg: &'a TextTrainConfig,
    pub session: TextSession,
    tok: TextTokenizer,
    train_set: TextSet,
    dev_set: TextSet,
    train_enc: Vec<Encoded>,
    dev_enc: Vec<Encoded>,
    /// PAD-MoE: IMP's settings and the training examples it scores on.
    imp: Option<(ImpConfig, Vec<usize>)>,
    /// Epoch shuffles come from one generator: `rng` has drawn those of `drawn` epochs.
    rng: Rng,
    drawn: usize,
}

impl<'a> TextTask<'a> {
    /// Loads the task's splits, the tokenizer and the pretrained model (MoE experts upcycled
    /// from its FFN layers).
    pub fn new(gpu: Arc<Gpu>, cfg: &'a TextTrainConfig) -> Result<Self> {
        Self::new_rank(gpu, cfg, Arc::new(Comm::solo()))
    }

    /// [`new`](Self::new) as one rank of a data-parallel group: it trains on its shard of
    /// every global batch of `batch_size` × ranks examples (docs/distributed.md).
    pub fn new_rank(gpu: Arc<Gpu>, cfg: &'a TextTrainConfig, comm: Arc<Comm>) -> Result<Self> {
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
        let global_batch = cfg.batch_size * comm.size();
        if train_set.len() < global_batch {
            return Err(Error::Invalid(format!(
                "{} training examples are fewer than one batch of {global_batch}",
                train_set.len(),
            )));
        }
        let (bert_cfg, tok) = load_model_files(
            &cfg.model_dir.join("config.json"),
            &cfg.model_dir.join("tokenizer.json"),
            cfg.max_len,
        )?;
        let classes = train_set.classes.len();
        let train_enc = encode_set(&tok, &train_set, cfg.max_len)?;
        let dev_enc = encode_set(&tok, &dev_set, cfg.max_len)?;
        let filler = tok.encode("", None)?;

        let session =
            TextSession::new_rank(gpu.clone(), bert_cfg, classes, cfg, filler, comm.clone())?;
        let fresh = session.load_pretrained(&cfg.model_dir.join("model.safetensors"))?;
        session.store.broadcast_from_root(&comm)?;
        let moe = match session.moe {
            Some(m) => {
                let pad = match m.config.pad {
                    Some(l) => format!(
                        "; PAD-MoE λ {}, κ {}, static weight {}",
                        l.name(),
                        cfg.kappa,
                        cfg.static_init.name()
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
        if comm.size() > 1 {
            println!(
                "rank {}/{}: adapter {}",
                comm.rank(),
                comm.size(),
                gpu.describe()
            );
        }
        let say = |line: String| {
            if comm.is_root() {
                println!("{line}");
            }
        };
        say(format!(
            "model: BERT from {} ({} layers, hidden {}{moe}, {:.1}M parameters); newly initialised: {}",
            cfg.model_dir.display(),
            session.bert.num_hidden_layers,
            session.bert.hidden_size,
            session.store.num_params() as f64 / 1e6,
            fresh.join(", ")
        ));
        say(format!(
            "task: {} ({}), {} train / {} dev examples; adapter: {}",
            cfg.task,
            if train_set.is_regression() {
                "regression".to_string()
            } else {
                format!("{classes} classes")
            },
            train_set.len(),
            dev_set.len(),
            gpu.describe()
        ));
        // PAD-MoE: IMP on a seeded random subset of the training set, before training or
        // after --imp-after warm-up steps of the fully dynamic model.
        let imp = match (&session.moe, cfg.mode) {
            (Some(_), TextMode::Pad) if cfg.kappa < 1.0 => {
                let imp_cfg = cfg.imp.config(cfg.kappa, cfg.seed)?;
                if cfg.imp_after == 0 && session.static_init != StaticInit::Independent {
                    return Err(Error::Invalid(format!(
                        "--static-init {} starts the static weight equal to every expert, so every SNIP score is 0 before training: add --imp-after STEPS",
                        cfg.static_init.name()
                    )));
                }
                let order = super::imp_subset(train_enc.len(), cfg.imp_samples, cfg.seed);
                Some((imp_cfg, order))
            }
            _ => None,
        };
        Ok(TextTask {
            cfg,
            session,
            tok,
            train_set,
            dev_set,
            train_enc,
            dev_enc,
            imp,
            rng: Rng::new(cfg.seed ^ 0x7e47),
            drawn: 0,
        })
    }
}

impl TextTask<'_> {
    /// The dev split's logits, in order. With several data-parallel ranks each computes those
    /// of its contiguous share and the ranks gather them (the scores need every example's).
    fn dev_logits(&mut self) -> Result<Vec<f32>> {
        let comm = self.session.comm.clone();
        if comm.size() == 1 {
            return self.session.logits(&self.tok, &self.dev_enc);
        }
        let (n, classes) = (self.dev_enc.len(), self.session.classes);
        let share = n.div_ceil(comm.size());
        let start = (comm.rank() * share).min(n);
        let end = (start + share).min(n);
        let mut mine = self.session.logits(&self.tok, &self.dev_enc[start..end])?;
        mine.resize(share * classes, 0.0);
        let mut all = comm.gather(&mine)?;
        all.truncate(n * classes);
        Ok(all)
    }
}

/// The encoded examples `idx` of a split and their targets.
fn gather<'e>(enc: &'e [Encoded], set: &TextSet, idx: &[usize]) -> (Vec<&'e Encoded>, Vec<f32>) {
    let examples = idx.iter().map(|&i| &enc[i]).collect();
    let targets = idx.iter().map(|&i| set.targets[i]).collect();
    (examples, targets)
}

/// This rank's share of a global training batch: its examples' indices, and the length the
/// whole global batch pads to (so every rank's tensors are rows of one rank's).
pub struct TextBatch {
    examples: Vec<usize>,
    padded_len: usize,
}

impl Task for TextTask<'_> {
    type Batch = TextBatch;
    type Metrics = TextEpochMetrics;
    const UNIT: &'static str = "ex";

    /// How the shared loop runs this configuration (no temperature: MoE routers have none).
    fn loop_config(&self) -> LoopConfig {
        let cfg = self.cfg;
        LoopConfig {
            run: cfg.run.clone(),
            imp_at: self.imp.as_ref().map(|_| cfg.imp_after),
            anneal: None,
        }
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    fn steps_per_epoch(&self) -> usize {
        self.train_set.len() / (self.cfg.batch_size * self.session.comm.size())
    }

    fn comm(&self) -> Arc<Comm> {
        self.session.comm.clone()
    }

    fn store(&self) -> &ParamStore {
        &self.session.store
    }

    fn trainable(&mut self) -> (&ParamStore, &mut Optimizer) {
        let s = &mut self.session;
        let opt = s.optimizer.as_mut().expect("a training session has AdamW");
        (&s.store, opt)
    }

    fn schedule(&self) -> Result<Schedule> {
        let steps_per_epoch = self.steps_per_epoch();
        let total = self.cfg.run.epochs * steps_per_epoch;
        Ok(Schedule {
            base_lr: self.cfg.lr,
            warmup_steps: (self.cfg.warmup_ratio * total as f32).round() as usize,
            total_steps: total,
            steps_per_epoch,
            decay: self
                .cfg
                .schedule
                .decay(&self.cfg.milestones, self.cfg.gamma),
        })
    }

    fn config_json(&self) -> serde_json::Value {
        trainer::options_json(self.cfg)
    }

    /// The model's config.json as bert_config.json, and tokenizer.json, so the run
    /// directory is a complete model.
    fn write_run_files(&self, out: &Path) -> Result<()> {
        for (from, to) in [
            ("config.json", "bert_config.json"),
            ("tokenizer.json", "tokenizer.json"),
        ] {
            let src = self.cfg.model_dir.join(from);
            let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
            checkpoint::write_atomic(&out.join(to), &bytes)?;
        }
        Ok(())
    }

    /// The epoch's global batches (of `batch_size` × ranks, as one rank would draw them),
    /// each cut into the ranks' shares: rank r takes the r-th `batch_size` examples.
    fn batches(&mut self, epoch: usize, skip: usize) -> Result<Batches<TextBatch>> {
        let lengths: Vec<usize> = self.train_enc.iter().map(|e| e.ids.len()).collect();
        let comm = &self.session.comm;
        let (b, rank) = (self.cfg.batch_size, comm.rank());
        // A resumed run draws (and drops) the shuffles of the epochs it already holds.
        loop {
            let batches = super::epoch_batches(&lengths, b * comm.size(), &mut self.rng);
            self.drawn += 1;
            if self.drawn >= epoch {
                let shares = batches.into_iter().skip(skip).map(move |global| {
                    let longest = global.iter().map(|&i| lengths[i]).max().unwrap_or(1);
                    Ok(TextBatch {
                        examples: global[rank * b..(rank + 1) * b].to_vec(),
                        padded_len: longest.div_ceil(super::LEN_STEP) * super::LEN_STEP,
                    })
                });
                return Ok(Box::new(shares));
            }
        }
    }

    fn step(&mut self, batch: &TextBatch, lr: f32) -> Result<usize> {
        let (examples, targets) = gather(&self.train_enc, &self.train_set, &batch.examples);
        // Padded to the global batch's length: `pad` rounds the longest up to a multiple of it.
        let (feed, len) = self.tok.pad(&examples, batch.padded_len);
        self.session.step_feed(&feed, len, &targets, lr)?;
        Ok(examples.iter().map(|e| e.ids.len()).sum())
    }

    fn imp(&mut self, step: usize) -> Result<ImpReport> {
        let (imp_cfg, order) = self.imp.as_ref().expect("IMP configured");
        let (examples, targets) = gather(&self.train_enc, &self.train_set, order);
        self.session
            .imp(&self.tok, &examples, &targets, imp_cfg, step)
    }

    fn evaluate(&mut self, st: &EpochStats) -> Result<(TextEpochMetrics, String)> {
        let logits = self.dev_logits()?;
        let (dev_loss, dev) = dev_scores(&logits, &self.dev_set);
        let m = TextEpochMetrics {
            epoch: st.epoch,
            train_loss: st.train_loss,
            train_acc: (!self.session.regression).then_some(st.train_acc),
            dev_loss,
            dev,
            lr: st.lr,
            tokens_per_s: st.throughput,
            seconds: st.train_seconds,
        };
        let train_acc = m
            .train_acc
            .map_or(String::new(), |a| format!(" acc {:.2}%", a * 100.0));
        let line = format!(
            "train loss {:.4}{train_acc} | dev loss {dev_loss:.4} {} | {:.0} tok/s, {:.1} s",
            m.train_loss, m.dev, m.tokens_per_s, m.seconds
        );
        Ok((m, line))
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        let cfg = self.cfg;
        vec![
            ("arch", "bert".to_string()),
            ("mode", cfg.mode.name()),
            ("experts", cfg.experts.to_string()),
            ("top_k", cfg.top_k.to_string()),
            ("moe_position", cfg.moe_position.name()),
            ("route_padding", cfg.route_padding.to_string()),
            (
                "capacity_factor",
                cfg.capacity_factor.map_or("none".into(), |f| f.to_string()),
            ),
            ("lambda", cfg.lambda.name()),
            ("kappa", cfg.kappa.to_string()),
            ("static_init", cfg.static_init.name()),
            ("task", cfg.task.clone()),
            ("text_col", cfg.text_col.clone()),
            ("pair_col", cfg.pair_col.clone().unwrap_or_default()),
            ("label_col", cfg.label_col.clone()),
            (
                "classes",
                serde_json::to_string(&self.train_set.classes).expect("strings serialise"),
            ),
            ("max_len", cfg.max_len.to_string()),
        ]
    }

    fn restore(&mut self, meta: &HashMap<String, String>, path: &Path) -> Result<()> {
        let classes = serde_json::to_string(&self.train_set.classes).expect("strings serialise");
        let expected = [
            ("arch", "bert".to_string()),
            ("mode", self.cfg.mode.name()),
            ("task", self.cfg.task.clone()),
            ("classes", classes),
        ];
        trainer::check_metadata(meta, path, &expected)
    }

    fn print_profile(&self) -> Result<()> {
        self.session.print_profile()
    }
}

/// Fine-tunes the BERT in `cfg.model_dir` on `cfg.task`, evaluating on the dev split after
/// every epoch; writes metrics.jsonl, config.json (the run's options), model.safetensors
/// (Hugging Face names + `classifier.*`, classes in the metadata), optimizer.safetensors, and
/// copies the model's config.json as bert_config.json and tokenizer.json.
pub fn train(gpu: Arc<Gpu>, cfg: &TextTrainConfig) -> Result<Vec<TextEpochMetrics>> {
    let dir = trainer::open_run(&cfg.run)?;
    let mut task = TextTask::new(gpu, cfg)?;
    let history = trainer::fit(&mut task, &dir)?;
    println!("wrote {}", cfg.run.out.display());
    Ok(history)
}

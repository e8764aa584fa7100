//! The compiled text model: one graph per padded length over one parameter store, loading
//! of pretrained BERT checkpoints (MoE experts upcycled); IMP of the PAD-MoE masks is in
//! `session/imp.rs`.

use super::{StaticInit, TextTrainConfig, BUCKET_BATCHES, LEN_STEP};
use crate::checkpoint;
use crate::data::tokenize::{Encoded, TextTokenizer};
use crate::data::tsv;
use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::executor::optim::{OptimConfig, OptimKind, Optimizer};
use crate::executor::{Executable, ParamStore};
use crate::gpu::Gpu;
use crate::graph::autodiff::backward;
use crate::graph::{DType, Graph, Init, Op, TensorId};
use crate::imp::MixMoments;
use crate::models::bert::{self, BertConfig, BertFeed, BertInputs, BertMoe};
use crate::names::Named;
use crate::nn::{dynamic::DeployFilters, Builder, DROPOUT_SEED};
use crate::rng::Rng;
use crate::trainer::{self, TRAIN_METRICS as METRICS};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

mod imp;

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
    pub(super) optimizer: Option<Optimizer>,
    pub bert: BertConfig,
    /// Model outputs: classes, or 1 for a regression head.
    pub classes: usize,
    /// MSE on one output (STS-B) instead of cross-entropy.
    pub regression: bool,
    pub moe: Option<BertMoe>,
    route_padding: bool,
    pub(super) static_init: StaticInit,
    batch: usize,
    eval_batch: usize,
    /// Run seed (dropout masks derive from it and the step).
    seed: u32,
    /// Check every node's output for NaN/±Inf in each step (`--detect-anomaly`).
    detect_anomaly: bool,
    /// This rank's data-parallel group (docs/distributed.md).
    pub(super) comm: Arc<Comm>,
    train: HashMap<usize, Compiled>,
    eval: HashMap<usize, Compiled>,
    /// `[CLS] [SEP]`: fills the last evaluation batch.
    filler: Encoded,
    /// Deploy files: the PAD-MoE layers built split by whole dynamic rows.
    deploy_filters: Option<DeployFilters>,
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
        Self::new_rank(gpu, bert, classes, cfg, filler, Arc::new(Comm::solo()))
    }

    /// [`new`](Self::new) for one rank of a data-parallel group: its training graphs take the
    /// rank's share of every global batch, and their MoE balance sums span all ranks.
    pub fn new_rank(
        gpu: Arc<Gpu>,
        bert: BertConfig,
        classes: usize,
        cfg: &TextTrainConfig,
        filler: Encoded,
        comm: Arc<Comm>,
    ) -> Result<Self> {
        Self::build(gpu, bert, classes, cfg, filler, Some(comm), None, true)
    }

    /// A session that only evaluates: no training graph is built and no optimizer state
    /// (two copies of every parameter) allocated, nor gradients unless `gradients` (IMP's
    /// scores need them).
    pub fn for_eval(
        gpu: Arc<Gpu>,
        bert: BertConfig,
        classes: usize,
        cfg: &TextTrainConfig,
        filler: Encoded,
        deploy_filters: Option<DeployFilters>,
        gradients: bool,
    ) -> Result<Self> {
        Self::build(
            gpu,
            bert,
            classes,
            cfg,
            filler,
            None,
            deploy_filters,
            gradients,
        )
    }

    /// A training session in the group `comm`, or (None) an evaluation session, with
    /// gradients if it trains or `gradients`.
    #[allow(clippy::too_many_arguments)]
    fn build(
        gpu: Arc<Gpu>,
        bert: BertConfig,
        classes: usize,
        cfg: &TextTrainConfig,
        filler: Encoded,
        comm: Option<Arc<Comm>>,
        deploy_filters: Option<DeployFilters>,
        gradients: bool,
    ) -> Result<Self> {
        let train = comm.is_some();
        let comm = comm.unwrap_or_else(|| Arc::new(Comm::solo()));
        if comm.size() > 1 && cfg.capacity_factor.is_some() {
            return Err(Error::Invalid(
                "--capacity-factor drops tokens by their place in one batch; data-parallel ranks would drop others than one rank of the global batch: leave it out".into(),
            ));
        }
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
            comm.size(),
            deploy_filters.as_ref(),
        )?;
        let store = ParamStore::with_gradients(gpu.clone(), &g, cfg.seed, train || gradients)?;
        let optimizer = if train {
            Some(Optimizer::new(
                &store,
                OptimConfig {
                    kind: OptimKind::ADAMW,
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
            static_init: cfg.static_init,
            batch: cfg.batch_size,
            eval_batch: cfg.eval_batch_size,
            seed: crate::kernels::elementwise::pcg_hash(cfg.seed as u32),
            detect_anomaly: cfg.run.detect_anomaly,
            comm,
            train: HashMap::new(),
            eval: HashMap::new(),
            filler,
            deploy_filters,
        })
    }

    /// The graph of a classifier (or regression head) over a [batch, len] token batch:
    /// training graphs add the objective and its backward pass and return the labels input
    /// and the loss; evaluation graphs return the logits. `ranks`: the data-parallel ranks
    /// a training graph is one of (1 alone).
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
        ranks: usize,
        deploy_filters: Option<&DeployFilters>,
    ) -> Result<(Graph, BertInputs, Option<TensorId>, TensorId)> {
        let mut g = Graph::new();
        let mut b = Builder::new(&mut g, train);
        b.ranks = ranks;
        b.deploy_filters = deploy_filters.cloned();
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
        // Evaluation graphs run on each rank alone.
        let ranks = if train { self.comm.size() } else { 1 };
        let (g, inputs, labels, out) = Self::graph_of(
            &self.bert,
            self.classes,
            self.regression,
            self.moe,
            self.route_padding,
            batch,
            len,
            train,
            ranks,
            self.deploy_filters.as_ref(),
        )?;
        let exe = Executable::compile_ranks(self.gpu.clone(), g, &self.store, ranks)?;
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
            // A fresh mask every step, reproducible from the run's seed; each rank draws its
            // part of the global batch's.
            let seed = crate::kernels::elementwise::pcg_hash(self.seed ^ optimizer.step as u32);
            c.exe
                .write_u32(t, &crate::nn::step_seed(seed, self.comm.rank()))?;
        }
        optimizer.prepare(&self.store, lr);
        crate::executor::submit_step(
            &c.exe,
            optimizer,
            &self.store,
            self.detect_anomaly,
            &self.comm,
        )
    }

    /// The training graph of padded length `len`, once compiled.
    pub fn train_graph(&self, len: usize) -> Option<&Executable> {
        self.train.get(&len).map(|c| &c.exe)
    }

    /// Per-kernel profile of the training graph of the longest padded length compiled so far.
    pub fn print_profile(&self) -> Result<()> {
        if let Some(len) = self.train.keys().max() {
            println!("training graph, batch {} x {len} tokens:", self.batch);
            crate::executor::profile::print(&self.train[len].exe, 3)?;
            if let Some(opt) = &self.optimizer {
                crate::executor::profile::print_optimizer(opt, &self.store, 3)?;
            }
        }
        Ok(())
    }

    /// (mean loss, accuracy) accumulated on the GPU since the last reset; syncs.
    pub fn train_metrics(&self) -> Result<(f64, f64)> {
        let (loss, acc, _) = trainer::train_metrics(&self.store)?;
        Ok((loss, acc))
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

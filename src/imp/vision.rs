//! IMP of image models: SNIP and variance scores from the PAD convolutions' backward pass
//! (∂L/∂M accumulated on the GPU), and `padnet-wgpu imp` of image checkpoints.

use super::{
    clear_accumulators, data_free_scores, iterate, pad_layers, report, snip_from_accumulators,
    ImpConfig, ImpReport, MixMoments, PadLayer, Scorer,
};
use crate::data::{self, ImageSet};
use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::executor::{Executable, ParamStore};
use crate::gpu::Gpu;
use crate::graph::autodiff::backward;
use crate::graph::TensorId;
use crate::graph::{DType, Graph, Op};
use crate::models::{self, ModelConfig};
use crate::nn::dynamic::{DyForm, INV_TEMPERATURE};
use crate::nn::Builder;
use crate::rng::Rng;
use std::sync::Arc;

/// What IMP scores with: training images, batch size, loss smoothing, attention temperature.
pub struct ImpData<'a> {
    pub train: &'a Arc<ImageSet>,
    pub batch: usize,
    pub smoothing: f32,
    pub temperature: f32,
    /// The data-parallel group that scores together: each rank its shard of every batch
    /// (`batch` per rank), the sums of ∂L/∂M added over the ranks before the partition.
    pub comm: &'a Comm,
    /// Train-mode BatchNorm on each rank's own batch, as the run trains (`--local-bn`).
    pub local_bn: bool,
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
        // Scored through PAD-Conv's own op (its mask gradient and α), whatever PADNET_DY_FORM says.
        let mut b = Builder::new(&mut g, train_mode);
        b.dy_form = Some(DyForm::PerSample);
        let logits = models::build(model, &mut b, x, classes)?;
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
        // Train-mode BatchNorm spans the ranks' batches, as in training (SyncBN), unless the
        // run keeps each rank's own.
        let ranks = match train_mode && !data.local_bn {
            true => data.comm.size(),
            false => 1,
        };
        let exe = Executable::compile_ranks(gpu, g, store, ranks)?;
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

/// Runs IMP on the image model whose weights are in `store`, scoring with up to `cfg.batches`
/// batches of `data` at its temperature, and writes the final masks to the store.
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
    let rounds = iterate(store, &layers, cfg, |rng| {
        score(&sg, store, &layers, data, cfg, rng)
    })?;
    let mut rep = report(store, cfg)?;
    rep.rounds = rounds;
    Ok(rep)
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
    let mut m = sg.exe.read(sg.metrics, store)?;
    data.comm.sum(&mut m)?;
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
    let comm = data.comm;
    if cfg.scorer == Scorer::Variance && comm.size() > 1 {
        return Err(Error::Invalid(
            "the variance scorer runs on one rank; use --imp-scorer snip with several".into(),
        ));
    }
    clear_accumulators(&sg.exe, &sg.accs)?;
    // α moments per layer for the variance scorer.
    let mut moments: Vec<MixMoments> = layers.iter().map(|l| MixMoments::new(l.k)).collect();
    let mut seen = 0;
    let shard = data::Shard {
        rank: comm.rank(),
        ranks: comm.size(),
    };
    for b in data::shard_batches(train.clone(), batch, Some(cfg.seed), 0, 2, shard)
        .into_iter()
        .take(cfg.batches)
    {
        if let Some(e) = b.error {
            return Err(Error::Invalid(e));
        }
        sg.exe.write(sg.x, &b.images)?;
        sg.exe.write_u32(sg.labels, &b.labels)?;
        sg.exe.run_as(comm)?;
        seen += 1;
        if cfg.scorer == Scorer::Variance {
            for (&alpha, m) in sg.alphas.iter().zip(moments.iter_mut()) {
                m.add(&sg.exe.read(alpha, store)?);
            }
        }
    }
    if seen == 0 {
        return Err(Error::Invalid(format!(
            "IMP needs at least one batch of {batch} training images"
        )));
    }
    if cfg.scorer == Scorer::Snip {
        return snip_from_accumulators(&sg.exe, store, &sg.accs, comm);
    }
    // Var_n(D_nj): the aggregated kernel's variance over samples.
    layers
        .iter()
        .zip(&moments)
        .map(|(l, m)| Ok(m.variance_scores(&store.read(&l.dynamic)?)))
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

/// With several data-parallel ranks (`comm`), each scores its share of every batch of
/// `batch_size` × ranks images; rank 0 alone writes.
pub fn command(gpu: Arc<Gpu>, c: &ImpCommand, comm: &Comm) -> Result<ImpReport> {
    c.config.validate()?;
    let (tensors, mut meta) = crate::checkpoint::load(&c.checkpoint)?;
    if crate::checkpoint::is_deploy(&meta) {
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
    // The scores are gradients: the store needs a gradient arena the evaluation graph lacks.
    let store = ParamStore::with_gradients(gpu.clone(), &graph, 0, true)?;
    crate::checkpoint::into_store(&store, &tensors, &c.checkpoint)?;
    let train = Arc::new(train);
    let data = ImpData {
        train: &train,
        batch: c.batch_size,
        smoothing: c.smoothing,
        temperature,
        comm,
        local_bn: false,
    };
    let report = run(gpu, &store, &model, &data, &c.config)?;
    if comm.is_root() {
        let out_tensors = crate::checkpoint::from_store(&store)?;
        meta.insert("kappa".into(), report.kappa.to_string());
        crate::checkpoint::save(&c.out, &out_tensors, meta)?;
        report.save(&c.report_dir())?;
    }
    Ok(report)
}

//! `padnet-wgpu eval` of text checkpoints (training checkpoints and PAD-MoE deploy files).

use super::{dev_scores, encode_set, load_model_files, DevScores, TextSession, TextTrainConfig};
use super::{StaticInit, TextMode};
use crate::checkpoint::{self, Tensors};
use crate::data::tokenize::TextTokenizer;
use crate::data::tsv::{self, TextSet, TsvColumns};
use crate::error::{Error, Result};
use crate::export::{Cost, ExportReport};
use crate::gpu::Gpu;
use crate::graph::cost::param_count;
use crate::graph::Graph;
use crate::kernels::dynconv::Lambda;
use crate::models::bert::{BertConfig, MoePosition};
use crate::names::Named;
use crate::nn::dynamic::DeployFilters;
use crate::nn::pad::PAD_MOE;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

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
    /// Deploy files: run PAD-MoE layers whose dynamic positions are whole rows as one GEMM of
    /// every token over the static rows plus expert GEMMs over the dynamic rows only (`eval`'s
    /// default).
    pub split_filters: bool,
}

/// `export`'s row for a PAD-MoE deploy file with split layers, as `eval` runs it (the row
/// "PAD-MoE deploy file" is then the folded MoE, `eval --no-split`).
pub const TEXT_DEPLOY_SPLIT_ROW: &str = "PAD-MoE deploy file, split (as eval runs it)";

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
    /// PAD-MoE layers run split by whole dynamic rows (`split_filters`, `eval`'s default).
    pub split_layers: usize,
}

/// True for checkpoints written by the text path (`arch` bert in the metadata).
pub fn is_text_checkpoint(meta: &HashMap<String, String>) -> bool {
    meta.get("arch").map(String::as_str) == Some("bert")
}

/// A text checkpoint opened on its task: the session holding its weights (PAD-MoE deploy
/// files unpacked), the tokenizer, the task's splits and the configuration it was trained with.
pub(crate) struct Opened {
    pub session: TextSession,
    pub tok: TextTokenizer,
    pub train_set: TextSet,
    pub dev_set: TextSet,
    pub cfg: TextTrainConfig,
    pub deploy: bool,
    /// PAD-MoE layers of a deploy file built split by whole dynamic rows.
    pub split_layers: usize,
    pub meta: HashMap<String, String>,
}

/// What a text checkpoint's metadata says of its model: the training configuration it
/// implies (for evaluation at batch `c.batch_size`), its class names, and the model files
/// (bert_config.json or config.json, and tokenizer.json) in `c.model_dir` or beside it.
pub(crate) struct TextModelFiles {
    pub cfg: TextTrainConfig,
    pub classes: Vec<String>,
    pub bert_config: PathBuf,
    pub tokenizer: PathBuf,
}

/// Reads [`TextModelFiles`] from a text checkpoint's metadata.
pub(crate) fn model_files(
    meta: &HashMap<String, String>,
    c: &TextEvalConfig,
) -> Result<TextModelFiles> {
    let bad = |msg: String| Error::data(&c.checkpoint, msg);
    if !is_text_checkpoint(meta) {
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
    let deploy = crate::checkpoint::is_deploy(meta);
    let d = TextTrainConfig::default();
    // A PAD-MoE deploy file runs as a plain MoE: `open` folds W_S into its experts.
    let mode = match TextMode::parse(&get("mode")?)? {
        TextMode::Pad if deploy => TextMode::Moe,
        mode => mode,
    };
    let moe_mode = mode != TextMode::Dense;
    let tcfg =
        TextTrainConfig {
            mode,
            experts: if moe_mode { num("experts")? } else { d.experts },
            top_k: if moe_mode { num("top_k")? } else { d.top_k },
            moe_position: MoePosition::parse_or(meta.get("moe_position"), d.moe_position)?,
            route_padding: meta.get("route_padding").is_some_and(|v| v == "true"),
            capacity_factor: match meta.get("capacity_factor").map(String::as_str) {
                None | Some("none") => None,
                Some(v) => Some(v.parse().map_err(|_| {
                    bad(format!("metadata 'capacity_factor' is '{v}', not a number"))
                })?),
            },
            lambda: Lambda::parse_or(meta.get("lambda"), d.lambda)?,
            static_init: StaticInit::parse_or(meta.get("static_init"), d.static_init)?,
            task: c.task.clone().unwrap_or(get("task")?),
            data_dir: c.data_dir.clone(),
            text_col: meta.get("text_col").cloned().unwrap_or(d.text_col),
            pair_col: meta.get("pair_col").filter(|c| !c.is_empty()).cloned(),
            label_col: meta.get("label_col").cloned().unwrap_or(d.label_col),
            max_len: num("max_len")?,
            eval_batch_size: c.batch_size,
            batch_size: c.batch_size,
            ..d
        };
    let dir = match &c.model_dir {
        Some(dir) => dir.clone(),
        None => c
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
    Ok(TextModelFiles {
        cfg: tcfg,
        classes,
        tokenizer: dir.join("tokenizer.json"),
        bert_config: bert_path,
    })
}

/// What the PAD-MoE deploy file at `dst`, exported from `src` (`report`), costs beside the
/// same BERT dense, as MoE and as trained: parameters, bytes and multiply-accumulates per
/// token of a `--max-len` sequence (the deploy graph as `eval` runs it; MoE products counted
/// over every routing slot, see `graph::cost::forward_macs`).
pub fn export_costs(src: &Path, dst: &Path, report: &ExportReport) -> Result<Vec<Cost>> {
    let meta = checkpoint::load_metadata(src)?;
    let c = TextEvalConfig {
        checkpoint: src.to_path_buf(),
        batch_size: 1,
        ..Default::default()
    };
    let files = model_files(&meta, &c)?;
    let (bert, _) = load_model_files(&files.bert_config, &files.tokenizer, files.cfg.max_len)?;
    let len = files.cfg.max_len;
    let classes = files.classes.len();
    let graph_split = |mode: TextMode, split: Option<&DeployFilters>| {
        eval_graph(&bert, classes, &files.cfg, mode, len, split)
    };
    let graph = |mode: TextMode| graph_split(mode, None);
    let (experts, k) = (files.cfg.experts, files.cfg.top_k);
    let moe = graph(TextMode::Moe)?;
    let mut rows = vec![
        Cost::of_graph("dense", &graph(TextMode::Dense)?, len),
        Cost::of_graph(format!("MoE ({experts} experts, top-{k})"), &moe, len),
        Cost::of_graph("PAD-MoE training checkpoint", &graph(TextMode::Pad)?, len).stored(src),
        // `eval` runs a deploy file as this MoE graph (W_S folded into the experts at load).
        Cost {
            params: report.deploy_params(param_count(&moe), experts),
            ..Cost::of_graph("PAD-MoE deploy file", &moe, len).stored(dst)
        },
    ];
    let split = split_rows(&checkpoint::load(dst)?.0, &expert_shapes(&moe), &files.cfg);
    if !split.is_empty() {
        let split = DeployFilters::Layers(Arc::new(split));
        let split = graph_split(TextMode::Moe, Some(&split))?;
        rows.push(Cost {
            model: TEXT_DEPLOY_SPLIT_ROW.into(),
            macs: Cost::of_graph("", &split, len).macs,
            ..rows[3]
        });
    }
    Ok(rows)
}

/// The evaluation graph of `cfg` in `mode` for one sequence of `len` tokens (`classes`
/// outputs, one for a regression task), PAD-MoE layers of a deploy file split as `split` says.
fn eval_graph(
    bert: &BertConfig,
    classes: usize,
    cfg: &TextTrainConfig,
    mode: TextMode,
    len: usize,
    split: Option<&DeployFilters>,
) -> Result<Graph> {
    let regression = tsv::is_regression_task(&cfg.task);
    let cfg = TextTrainConfig {
        mode,
        ..cfg.clone()
    };
    let classes = if regression { 1 } else { classes };
    let (g, ..) = TextSession::graph_of(
        bert,
        classes,
        regression,
        cfg.bert_moe()?,
        cfg.route_padding,
        1,
        len,
        false,
        1,
        split,
    )?;
    Ok(g)
}

/// Each MoE layer of `g` with its stacked experts' shape `[E, d_out, d_in]`.
fn expert_shapes(g: &Graph) -> BTreeMap<String, Vec<usize>> {
    let named = g.tensors.iter().map(|t| (t.name.as_str(), &t.shape[..]));
    crate::export::layer_shapes(named, PAD_MOE.dynamic)
}

/// The layers of `layers` whose dynamic positions in the deploy file's `tensors` are whole
/// rows, each with those rows: what `eval` splits (unless `--no-split`). None under a capacity
/// limit, where the split would not drop what the experts drop (`nn::moe`).
fn split_rows(
    tensors: &Tensors,
    layers: &BTreeMap<String, Vec<usize>>,
    cfg: &TextTrainConfig,
) -> BTreeMap<String, Vec<usize>> {
    if cfg.capacity_factor.is_some() {
        return BTreeMap::new();
    }
    crate::export::whole_filter_layers(tensors, layers)
}

/// Opens `c.checkpoint` (a `train --out` directory's model.safetensors or a deploy file
/// exported from one) with sessions of batch `c.batch_size`, with a gradient arena if
/// `gradients` (IMP).
pub(crate) fn open(gpu: Arc<Gpu>, c: &TextEvalConfig, gradients: bool) -> Result<Opened> {
    let (tensors, meta) = checkpoint::load(&c.checkpoint)?;
    let TextModelFiles {
        cfg: tcfg,
        classes,
        bert_config,
        tokenizer,
    } = model_files(&meta, c)?;
    let deploy = checkpoint::is_deploy(&meta);
    let (bert_cfg, tok) = load_model_files(&bert_config, &tokenizer, tcfg.max_len)?;
    let columns = TsvColumns {
        text: tcfg.text_col.clone(),
        pair: tcfg.pair_col.clone(),
        label: tcfg.label_col.clone(),
    };
    let (train_set, dev_set) = tsv::load_task(&tcfg.task, tcfg.data_dir.as_deref(), &columns)?;
    if train_set.classes != classes {
        return Err(Error::Invalid(format!(
            "task {} has classes {:?}; the checkpoint was trained on {:?}",
            tcfg.task, train_set.classes, classes
        )));
    }
    let (split, tensors) = if deploy {
        // Each PAD-MoE layer's [experts, d_out, d_in], from the MoE graph it deploys as.
        let moe = eval_graph(
            &bert_cfg,
            classes.len(),
            &tcfg,
            tcfg.mode,
            tcfg.max_len,
            None,
        )?;
        let layers = expert_shapes(&moe);
        let split = if c.split_filters {
            split_rows(&tensors, &layers, &tcfg)
        } else {
            BTreeMap::new()
        };
        let tensors = crate::export::unpack_moe(tensors, &layers, &split, &c.checkpoint)?;
        (split, tensors)
    } else {
        (BTreeMap::new(), tensors)
    };
    let split_layers = split.len();
    let filters = (!split.is_empty()).then(|| DeployFilters::Layers(Arc::new(split)));
    let filler = tok.encode("", None)?;
    let session = TextSession::for_eval(
        gpu,
        bert_cfg,
        classes.len(),
        &tcfg,
        filler,
        filters,
        gradients,
    )?;
    checkpoint::into_store(&session.store, &tensors, &c.checkpoint)?;
    Ok(Opened {
        session,
        tok,
        train_set,
        dev_set,
        cfg: tcfg,
        deploy,
        split_layers,
        meta,
    })
}

/// Evaluates a text checkpoint on the dev split of its task.
pub fn evaluate(gpu: Arc<Gpu>, cfg: &TextEvalConfig) -> Result<TextEvalReport> {
    let Opened {
        session: mut s,
        tok,
        mut dev_set,
        cfg: tcfg,
        deploy,
        split_layers,
        ..
    } = open(gpu, cfg, false)?;
    if let Some(n) = cfg.limit {
        dev_set.truncate(n);
    }
    let dev_enc = encode_set(&tok, &dev_set, tcfg.max_len)?;
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
        split_layers,
    })
}

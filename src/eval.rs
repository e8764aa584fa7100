//! Evaluation: a model compiled in inference mode (BatchNorm on running statistics), the
//! `padnet-wgpu eval` command, and per-sample logits written as .npy or .safetensors.

use crate::checkpoint;
use crate::data::{self, ImageSet};
use crate::error::{Error, Result};
use crate::executor::{Executable, ParamStore};
use crate::export::{Cost, ExportReport};
use crate::gpu::Gpu;
use crate::graph::cost::{forward_macs, param_count};
use crate::graph::{DType, Graph, TensorId};
use crate::kernels::dynconv::Lambda;
use crate::models::{self, ModelConfig, Stem};
use crate::names::Named;
use crate::nn::dynamic::{ConvMode, DeployFilters, DynConfig, INV_TEMPERATURE};
use crate::nn::Builder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The inference graph of a model: batch `[B, C, H, W]` → logits `[B, classes]`.
pub struct Evaluator {
    pub exe: Executable,
    x: TensorId,
    logits: TensorId,
    inv_temperature: Option<TensorId>,
    pub classes: usize,
}

impl Evaluator {
    pub fn graph(
        model: &ModelConfig,
        batch: usize,
        sample: [usize; 3],
        classes: usize,
    ) -> Result<Graph> {
        Self::deploy_graph(model, batch, sample, classes, None)
    }

    /// The inference graph of a deploy file, whose PAD layers with whole dynamic filters
    /// split (`DeployFilters`).
    pub fn deploy_graph(
        model: &ModelConfig,
        batch: usize,
        sample: [usize; 3],
        classes: usize,
        filters: Option<DeployFilters>,
    ) -> Result<Graph> {
        let [c, h, w] = sample;
        let mut g = Graph::new();
        let x = g.input("images", &[batch, c, h, w], DType::F32);
        let mut b = Builder::new(&mut g, false);
        b.deploy_filters = filters;
        let logits = models::build(model, &mut b, x, classes)?;
        g.mark_output(logits);
        Ok(g)
    }

    /// Compiles `graph` (from `Evaluator::graph`) against the weights in `store`.
    pub fn compile(
        gpu: Arc<Gpu>,
        graph: Graph,
        store: &ParamStore,
        classes: usize,
    ) -> Result<Self> {
        let x = graph.find("images").expect("built by Evaluator::graph");
        let logits = *graph.outputs.last().expect("logits are the graph output");
        let inv_temperature = graph.find(INV_TEMPERATURE);
        let exe = Executable::compile(gpu, graph, store)?;
        Ok(Evaluator {
            exe,
            x,
            logits,
            inv_temperature,
            classes,
        })
    }

    /// Sets the attention temperature (no-op for static models).
    pub fn set_temperature(&self, t: f32) -> Result<()> {
        match self.inv_temperature {
            Some(id) => self.exe.write(id, &[1.0 / t]),
            None => Ok(()),
        }
    }

    /// Logits of every sample of `set`, in dataset order ([N, classes], row-major).
    pub fn logits(&self, store: &ParamStore, set: &Arc<ImageSet>) -> Result<Vec<f32>> {
        Ok(self.shard_logits(store, set, data::Shard::WHOLE)?.0)
    }

    /// Logits and labels of one data-parallel rank's share of `set` (`shard`; the whole set
    /// for `Shard::WHOLE`), in order.
    pub fn shard_logits(
        &self,
        store: &ParamStore,
        set: &Arc<ImageSet>,
        shard: data::Shard,
    ) -> Result<(Vec<f32>, Vec<u32>)> {
        let eb = self.exe.graph.shape(self.x)[0];
        let (mut logits, mut labels) = (vec![], vec![]);
        for batch in data::shard_batches(set.clone(), eb, None, 0, 2, shard) {
            if let Some(e) = batch.error {
                return Err(Error::Invalid(e));
            }
            if batch.valid == 0 {
                continue; // past the end of the set: another rank's last batch is short
            }
            self.exe.write(self.x, &batch.images)?;
            self.exe.run()?;
            let l = self.exe.read(self.logits, store)?;
            logits.extend_from_slice(&l[..batch.valid * self.classes]);
            labels.extend_from_slice(&batch.labels[..batch.valid]);
        }
        Ok((logits, labels))
    }
}

/// Plain cross-entropy and top-1 accuracy of row-major logits.
pub fn loss_and_accuracy(logits: &[f32], labels: &[u32], classes: usize) -> (f64, f64) {
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for (row, &y) in logits.chunks(classes).zip(labels) {
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        loss += lse - row[y as usize] as f64;
        let arg = (0..classes).fold(0, |a, j| if row[j] > row[a] { j } else { a });
        correct += (arg == y as usize) as usize;
    }
    let n = labels.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// Model settings from checkpoint metadata, each overridable (for checkpoints written
/// elsewhere, e.g. by PyTorch, that carry none).
#[derive(Clone, Debug, Default)]
pub struct ModelOverrides {
    pub model: Option<String>,
    pub mode: Option<ConvMode>,
    pub width: Option<f32>,
    pub stem: Option<Stem>,
    pub kernels: Option<usize>,
    pub lambda: Option<Lambda>,
    pub temperature: Option<f32>,
}

fn meta_or<T: std::str::FromStr>(
    meta: &HashMap<String, String>,
    key: &str,
    over: Option<T>,
    default: T,
) -> Result<T> {
    if let Some(v) = over {
        return Ok(v);
    }
    match meta.get(key) {
        Some(s) => s.parse().map_err(|_| {
            Error::Invalid(format!("checkpoint metadata '{key}' = '{s}' is not valid"))
        }),
        None => Ok(default),
    }
}

/// A typed option from the override, else the metadata, else `default`.
fn named_or<T: Named>(
    meta: &HashMap<String, String>,
    key: &str,
    over: Option<T>,
    default: T,
) -> Result<T> {
    match over {
        Some(v) => Ok(v),
        None => T::parse_or(meta.get(key), default),
    }
}

/// (model config, temperature) of a checkpoint's metadata with overrides applied.
pub fn model_from_meta(
    meta: &HashMap<String, String>,
    o: &ModelOverrides,
) -> Result<(ModelConfig, f32)> {
    let arch = o
        .model
        .clone()
        .or_else(|| meta.get("arch").cloned())
        .ok_or_else(|| {
            Error::Invalid("the checkpoint names no architecture; pass --model".into())
        })?;
    // Deploy files carry λ folded into their weights.
    let lambda = if crate::checkpoint::is_deploy(meta) {
        Lambda::None
    } else {
        named_or(meta, "lambda", o.lambda, Lambda::Both)?
    };
    let cfg = ModelConfig {
        arch,
        width: meta_or(meta, "width", o.width, 1.0)?,
        stem: named_or(meta, "stem", o.stem, Stem::Imagenet)?,
        dynamic: DynConfig {
            mode: named_or(meta, "mode", o.mode, ConvMode::Static)?,
            kernels: meta_or(meta, "kernels", o.kernels, 4)?,
            reduction: meta_or(meta, "reduction", None, 16)?,
            lambda,
        },
    };
    cfg.validate()?;
    // A checkpoint without a stored temperature is evaluated at T = 1 (docs/method.md §3).
    let t = meta_or(meta, "temperature", o.temperature, 1.0)?;
    Ok((cfg, t))
}

/// What the image deploy file at `dst`, exported from `src` (`report`), costs beside the same
/// network static, fully dynamic (DY-Conv) and as trained: parameters, bytes and
/// multiply-accumulates per image, the deploy file as `eval` runs it: split where its dynamic
/// positions are whole filters, else (and with `eval --no-split`) the dense path.
pub fn export_costs(src: &Path, dst: &Path, report: &ExportReport) -> Result<Vec<Cost>> {
    let (tensors, meta) = checkpoint::load(dst)?;
    let (deploy, _) = model_from_meta(&meta, &ModelOverrides::default())?;
    let number = |key: &str| -> Result<Vec<usize>> {
        let text = meta.get(key).map(String::as_str).unwrap_or_default();
        text.trim_matches(['[', ']'])
            .split(',')
            .map(|v| v.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::data(dst, format!("bad or missing '{key}' metadata '{text}'")))
    };
    let (shape, classes) = (number("input_shape")?, number("classes")?);
    let (sample, classes) = match (&shape[..], &classes[..]) {
        (&[c, h, w], &[k]) => ([c, h, w], k),
        _ => return Err(Error::data(dst, "bad 'input_shape' or 'classes' metadata")),
    };
    let graph = |mode: ConvMode, lambda: Lambda, filters: Option<DeployFilters>| {
        let mut m = deploy.clone();
        (m.dynamic.mode, m.dynamic.lambda) = (mode, lambda);
        Evaluator::deploy_graph(&m, 1, sample, classes, filters)
    };
    let trained = Lambda::parse_or(meta.get("lambda"), Lambda::Both)?;
    let dynamic = graph(ConvMode::Dynamic, Lambda::None, None)?;
    let deployed = graph(ConvMode::Pad, Lambda::None, None)?;
    let kernels = deploy.dynamic.kernels;
    let mut rows = vec![
        Cost::of_graph("static", &graph(ConvMode::Static, Lambda::None, None)?, 1),
        Cost::of_graph(format!("DY-Conv (K = {kernels})"), &dynamic, 1),
        Cost::of_graph(
            "PAD training checkpoint",
            &graph(ConvMode::Pad, trained, None)?,
            1,
        )
        .stored(src),
        Cost {
            params: report.deploy_params(param_count(&dynamic), kernels),
            ..Cost::of_graph("PAD deploy file", &deployed, 1).stored(dst)
        },
    ];
    let whole =
        crate::export::whole_filter_layers(&tensors, &crate::export::kernel_shapes(&deployed));
    if !whole.is_empty() {
        let split = graph(
            ConvMode::Pad,
            Lambda::None,
            Some(DeployFilters::Layers(Arc::new(whole))),
        )?;
        rows.push(Cost {
            model: DEPLOY_SPLIT_ROW.into(),
            macs: forward_macs(&split),
            ..rows[3]
        });
    }
    Ok(rows)
}

/// `export`'s row for a deploy file with split layers, as `eval` runs it (the row "PAD deploy
/// file" is then the dense path, `eval --no-split`).
pub const DEPLOY_SPLIT_ROW: &str = "PAD deploy file, split (as eval runs it)";

pub struct EvalConfig {
    pub checkpoint: PathBuf,
    pub dataset: String,
    pub data_dir: Option<PathBuf>,
    pub batch_size: usize,
    pub limit: Option<usize>,
    pub logits_out: Option<PathBuf>,
    pub overrides: ModelOverrides,
    pub folder: crate::data::FolderOpts,
    /// Deploy files: run PAD layers whose dynamic positions are whole filters split
    /// (`DeployFilters`) instead of as dense per-sample kernels (`eval`'s default).
    pub split_filters: bool,
}

pub struct EvalReport {
    pub loss: f64,
    pub accuracy: f64,
    pub samples: usize,
    /// Inference throughput of the evaluation pass (batches assembled on the host included).
    pub images_per_s: f64,
    /// Whether the checkpoint is a deploy file, and how many of its layers ran split.
    pub deploy: bool,
    pub split_layers: usize,
}

/// Evaluates a checkpoint on the test split of a dataset.
pub fn eval(gpu: Arc<Gpu>, cfg: &EvalConfig) -> Result<EvalReport> {
    let (tensors, meta) = checkpoint::load(&cfg.checkpoint)?;
    let (model, temperature) = model_from_meta(&meta, &cfg.overrides)?;
    let (_, mut test, _) =
        crate::data::load_dataset(&cfg.dataset, cfg.data_dir.as_deref(), cfg.folder)?;
    if let Some(n) = cfg.limit {
        test.truncate(n);
    }
    let classes = match meta.get("classes") {
        Some(c) => c
            .parse()
            .map_err(|_| Error::Invalid(format!("bad 'classes' metadata '{c}'")))?,
        None => test.classes,
    };
    // The loss and accuracy index logits by label: every label must be a class of the model.
    if let Some(&label) = test.labels.iter().max().filter(|&&l| l as usize >= classes) {
        return Err(Error::data(
            &cfg.checkpoint,
            format!(
                "the model has {classes} classes, but {} has label {label}; evaluate on the dataset it was trained on",
                cfg.dataset
            ),
        ));
    }
    let sample = [test.channels, test.height, test.width];
    let graph = Evaluator::graph(&model, cfg.batch_size, sample, classes)?;
    let deploy = crate::checkpoint::is_deploy(&meta);
    let (graph, tensors, split_layers) = if deploy {
        let kernel_shapes = crate::export::kernel_shapes(&graph);
        let filters = match cfg.split_filters {
            true => crate::export::whole_filter_layers(&tensors, &kernel_shapes),
            false => Default::default(),
        };
        // Split layers change the graph; otherwise the graph above is the deploy file's.
        let split_layers = filters.len();
        let graph = if split_layers > 0 {
            let split = DeployFilters::Layers(Arc::new(filters));
            Evaluator::deploy_graph(&model, cfg.batch_size, sample, classes, Some(split))?
        } else {
            graph
        };
        let tensors = crate::export::unpack(tensors, &kernel_shapes, &graph, &cfg.checkpoint)?;
        (graph, tensors, split_layers)
    } else {
        (graph, tensors, 0)
    };
    let store = ParamStore::new(gpu.clone(), &graph, 0)?;
    checkpoint::into_store(&store, &tensors, &cfg.checkpoint)?;
    let ev = Evaluator::compile(gpu, graph, &store, classes)?;
    ev.set_temperature(temperature)?;
    let test = Arc::new(test);
    // Warm-up batch (pipeline creation, first uploads), then the timed pass.
    let mut first = (*test).clone();
    first.truncate(cfg.batch_size);
    ev.logits(&store, &Arc::new(first))?;
    if crate::executor::profile::wanted() {
        crate::executor::profile::print(&ev.exe, 3)?;
    }
    let t0 = std::time::Instant::now();
    let logits = ev.logits(&store, &test)?;
    let seconds = t0.elapsed().as_secs_f64();
    if let Some(path) = &cfg.logits_out {
        write_logits(path, &logits, test.len(), classes)?;
    }
    warn_decode_failures(&test);
    let (loss, accuracy) = loss_and_accuracy(&logits, &test.labels, classes);
    Ok(EvalReport {
        loss,
        accuracy,
        samples: test.len(),
        images_per_s: test.len() as f64 / seconds,
        deploy,
        split_layers,
    })
}

/// Writes `[n, classes]` f32 logits: NumPy `.npy` (little-endian, C order), or safetensors
/// (tensor `logits`) when the file name ends in `.safetensors`.
pub fn write_logits(path: &Path, logits: &[f32], n: usize, classes: usize) -> Result<()> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        let t = checkpoint::Tensors::from([(
            "logits".to_string(),
            (vec![n, classes], logits.to_vec()),
        )]);
        return checkpoint::save(path, &t, HashMap::new());
    }
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {classes}), }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in logits {
        bytes.extend(v.to_le_bytes());
    }
    checkpoint::write_atomic(path, &bytes)
}

/// Prints how many images of a file dataset failed to decode (each was replaced by a blank).
pub fn warn_decode_failures(set: &ImageSet) {
    if let Some(f) = &set.files {
        let n = f.failures.load(std::sync::atomic::Ordering::Relaxed);
        if n > 0 {
            eprintln!(
                "warning: {n} image(s) of {} failed to decode and were replaced by blank images",
                set.name
            );
        }
    }
}

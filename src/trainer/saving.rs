//! What the loop commits and reads back: the checkpoint of a run (model, optimizer state,
//! metrics, loop state) and the checks a resumed run passes first.

use super::{RunOptions, Task};
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::run_dir::{RunDir, CONFIG, CURVES, METRICS, MODEL, OPTIMIZER, STATE};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Where the loop stands, committed with every checkpoint (state.json).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Training steps taken.
    pub step: usize,
    /// Epochs finished: the lines of metrics.jsonl.
    pub epochs: usize,
    /// Batches of the next epoch already trained (checkpoints taken within an epoch).
    pub batches: usize,
    /// That epoch's training-metric sums so far (the `_train_metrics` accumulator).
    pub train_metrics: Vec<f32>,
}

impl LoopState {
    pub fn start() -> Self {
        Self::after_epoch(0, 0)
    }

    pub fn after_epoch(step: usize, epochs: usize) -> Self {
        LoopState {
            step,
            epochs,
            batches: 0,
            train_metrics: vec![0.0; 3],
        }
    }
}

/// Commits the run's checkpoint: model.safetensors (with the task's metadata),
/// optimizer.safetensors, metrics.jsonl, the run's `config` (config.json) and state.json, as
/// one unit; never one with a non-finite value (the guard runs first).
pub fn save<T: Task>(
    task: &mut T,
    dir: &RunDir,
    config: &str,
    history: &[T::Metrics],
    state: &LoopState,
) -> Result<()> {
    // Rank 0's own values (it alone saves): a non-finite gradient on any rank reaches every
    // rank's parameters through the gradient average.
    super::guard(task, dir, state.step, crate::dist::Comm::alone())?;
    let mut meta: HashMap<String, String> = task
        .metadata()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    meta.insert("format".into(), checkpoint::TRAIN_FORMAT.into());
    meta.insert("epoch".into(), history.len().to_string());
    meta.insert("step".into(), state.step.to_string());
    let none = Default::default();
    let model = checkpoint::serialize(&checkpoint::from_store(task.store())?, &none, meta)?;
    let (store, opt) = task.trainable();
    let opt_state: checkpoint::Tensors = opt
        .state(store)?
        .into_iter()
        .map(|(n, d)| (n, (vec![d.len()], d)))
        .collect();
    let opt_meta = HashMap::from([("step".to_string(), opt.step.to_string())]);
    let optimizer = checkpoint::serialize(&opt_state, &none, opt_meta)?;
    let metrics = checkpoint::jsonl(history);
    let title = dir
        .path()
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into());
    let curves = super::curves::draw(&title, history)?;
    let step = state.step;
    let state = serde_json::to_vec_pretty(state).expect("plain data serialises");
    dir.commit(
        step,
        &[
            (MODEL, &model),
            (OPTIMIZER, &optimizer),
            (METRICS, metrics.as_bytes()),
            (CONFIG, config.as_bytes()),
            (STATE, &state),
            (CURVES, &curves),
        ],
    )
}

/// Loads the committed checkpoint of `dir` into `task`: weights and statistics, optimizer
/// state and the task's run state; returns the metrics history and where the loop stood.
pub fn resume<T: Task>(
    task: &mut T,
    dir: &RunDir,
    steps_per_epoch: usize,
) -> Result<(Vec<T::Metrics>, LoopState)> {
    let ckpt = dir.latest()?;
    let model_path = ckpt.join(MODEL);
    let (tensors, meta) = checkpoint::load(&model_path)?;
    if checkpoint::is_deploy(&meta) {
        return Err(Error::data(
            &model_path,
            "is a deploy file (exported for inference); training resumes from training checkpoints",
        ));
    }
    task.restore(&meta, &model_path)?;
    checkpoint::into_store(task.store(), &tensors, &model_path)?;
    let opt_path = ckpt.join(OPTIMIZER);
    let (opt, opt_meta) = checkpoint::load(&opt_path)?;
    let opt_step: u64 = opt_meta
        .get("step")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let state: Vec<(String, Vec<f32>)> = opt.into_iter().map(|(k, (_, v))| (k, v)).collect();
    let (store, opt) = task.trainable();
    opt.load_state(store, &state, opt_step)
        .map_err(|e| Error::data(&opt_path, e.to_string()))?;
    let step: usize = meta
        .get("step")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::data(&model_path, "metadata 'step' missing or invalid"))?;
    let metrics_path = ckpt.join(METRICS);
    let text = std::fs::read_to_string(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
    let history = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::data(&metrics_path, format!("line {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<T::Metrics>>>()?;
    // Runs from before checkpoints were committed as a unit have no state.json: they were
    // saved at the end of an epoch.
    let state_path = ckpt.join(STATE);
    let state = match std::fs::read(&state_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::data(&state_path, format!("not a loop state: {e}")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            LoopState::after_epoch(step, history.len())
        }
        Err(e) => return Err(Error::io(&state_path, e)),
    };
    let LoopState {
        epochs, batches, ..
    } = state;
    if state.step != step
        || epochs != history.len()
        || state.train_metrics.len() != 3
        || batches >= steps_per_epoch.max(1)
    {
        return Err(Error::data(
            &ckpt,
            format!(
                "inconsistent checkpoint: model at step {step}, {} epochs of metrics, loop state {state:?} ({steps_per_epoch} steps per epoch)",
                history.len()
            ),
        ));
    }
    let at = match batches {
        0 => format!("epoch {epochs}"),
        b => format!("epoch {} batch {b}/{steps_per_epoch}", epochs + 1),
    };
    println!("resumed {} at {at}, step {step}", dir.path().display());
    Ok((history, state))
}

/// `--resume`: this run's options against those in the saved run's config.json. The loop's
/// own options ([`RunOptions`]: epochs, output, logging, saving) may differ, but not its
/// precision, which changes the arithmetic; any other difference is an error naming each
/// option, unless `force`.
pub fn check_options(dir: &RunDir, config: &serde_json::Value, force: bool) -> Result<()> {
    let path = dir.latest()?.join(CONFIG);
    let saved: serde_json::Value = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Error::data(&path, format!("is not JSON: {e}")))?,
        // Directories holding only a checkpoint have no options to compare.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let mut loop_options = serde_json::to_value(RunOptions::default()).expect("serialises");
    if let Some(o) = loop_options.as_object_mut() {
        o.remove(PRECISION);
    }
    let (Some(saved), Some(now), Some(loop_options)) = (
        saved.as_object().map(global_batch),
        config.as_object().map(global_batch),
        loop_options.as_object(),
    ) else {
        return Err(Error::data(&path, "is not a JSON object of options"));
    };
    let show = |v: Option<&serde_json::Value>| v.map_or("(none)".to_string(), |v| v.to_string());
    let differ: Vec<String> = saved
        .keys()
        .chain(now.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| !loop_options.contains_key(*k) && saved.get(*k) != now.get(*k))
        .map(|k| {
            format!(
                "{k}: saved {}, now {}",
                show(saved.get(k)),
                show(now.get(k))
            )
        })
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    let list = differ.join("\n  ");
    if force {
        eprintln!(
            "warning: resuming with options that differ from the saved run's (--force):\n  {list}"
        );
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "--resume {}: options differ from the saved run's {} (give the same ones, or --force to resume anyway):\n  {list}",
        dir.path().display(),
        CONFIG
    )))
}

/// The key of `RunOptions::precision` in config.json.
const PRECISION: &str = "precision";

/// Options as [`check_options`] compares them: the number of data-parallel ranks may change
/// between a run and its resumption, the global batch (per-rank batch × ranks) may not; runs
/// saved before the precision was kept ran in f32.
fn global_batch(
    options: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut options = options.clone();
    options.entry(PRECISION).or_insert_with(|| "f32".into());
    let ranks = options
        .remove("ranks")
        .and_then(|r| r.as_u64())
        .unwrap_or(1);
    if let Some(b) = options.remove("batch_size").and_then(|b| b.as_u64()) {
        options.insert(
            "global batch (--batch-size × ranks)".into(),
            (b * ranks).into(),
        );
    }
    options
}

/// Checks that a saved run's metadata holds the `expected` values: a run resumes only into
/// the same model and task. Errors name the key, the saved value and this run's.
pub fn check_metadata(
    meta: &HashMap<String, String>,
    path: &Path,
    expected: &[(&str, String)],
) -> Result<()> {
    for (key, want) in expected {
        if meta.get(*key) != Some(want) {
            let saved = meta
                .get(*key)
                .map_or("missing".into(), |v| format!("'{v}'"));
            return Err(Error::data(
                path,
                format!("{key} is {saved}, this run is '{want}'"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::global_batch;

    /// Runs saved before the precision was kept compare as f32 runs (and resume), not as f16
    /// ones; the global batch is what counts, not how ranks share it.
    #[test]
    fn options_compare_as_resumption_sees_them() {
        let map = |v: serde_json::Value| v.as_object().unwrap().clone();
        let old = map(serde_json::json!({"batch_size": 64, "lr": 0.05}));
        let f32_run =
            map(serde_json::json!({"batch_size": 32, "ranks": 2, "lr": 0.05, "precision": "f32"}));
        let f16_run = map(serde_json::json!({"batch_size": 64, "lr": 0.05, "precision": "f16"}));
        assert_eq!(global_batch(&old), global_batch(&f32_run));
        assert_ne!(global_batch(&old), global_batch(&f16_run));
    }
}

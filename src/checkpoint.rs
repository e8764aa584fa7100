//! safetensors checkpoints: every parameter and state tensor under its PyTorch name, metadata as
//! string pairs, written atomically (temporary file + rename) so a crash never leaves a
//! half-written checkpoint where a good one was.

use crate::error::{Error, Result};
use crate::executor::ParamStore;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Metadata `format` of training checkpoints (every task's `model.safetensors`).
pub const TRAIN_FORMAT: &str = "padnet-wgpu";
/// Metadata `format` of deploy files (`padnet-wgpu export`: PAD layers folded).
pub const DEPLOY_FORMAT: &str = "padnet-wgpu-deploy";

pub fn is_deploy(meta: &HashMap<String, String>) -> bool {
    meta.get("format").map(String::as_str) == Some(DEPLOY_FORMAT)
}

/// Checks that writing `out` (given as `option`) loses nothing: it must not be any of
/// `inputs`, by whatever path (symbolic or hard links included), and an existing file is
/// replaced only with `force`.
pub fn check_output(option: &str, out: &Path, inputs: &[&Path], force: bool) -> Result<()> {
    for input in inputs {
        if same_file::is_same_file(out, input).unwrap_or(false) {
            return Err(Error::Invalid(format!(
                "{option} {} is the input {}; write to another file",
                out.display(),
                input.display()
            )));
        }
    }
    if out.exists() && !force {
        return Err(Error::Invalid(format!(
            "{option} {} exists; give --force to replace it",
            out.display()
        )));
    }
    Ok(())
}

/// `rows` as JSON Lines (one object per line, e.g. metrics.jsonl).
pub fn jsonl<T: serde::Serialize>(rows: &[T]) -> String {
    rows.iter()
        .map(|m| serde_json::to_string(m).expect("plain data serialises") + "\n")
        .collect()
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = temporary_path(path);
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })?;
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Where a file is written before it is renamed into place: `NAME.tmp-PID`.
pub fn temporary_path(path: &Path) -> std::path::PathBuf {
    path.with_extension(format!("tmp-{}", std::process::id()))
}

/// Whether `path` is a [`temporary_path`] (of any process): what a write stopped half-way
/// leaves behind.
pub fn is_temporary(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .and_then(|e| e.strip_prefix("tmp-"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Makes a directory's entries (new names, renames) durable; a no-op where directories
/// cannot be opened (Windows).
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

pub fn save(path: &Path, tensors: &Tensors, metadata: HashMap<String, String>) -> Result<()> {
    write_atomic(path, &serialize(tensors, &BTreeMap::new(), metadata)?)
}

/// `save` plus U8 tensors (packed bit masks), the float tensors stored as `floats`.
pub fn save_with_bytes(
    path: &Path,
    tensors: &Tensors,
    bytes: &BTreeMap<String, (Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
    floats: Floats,
) -> Result<()> {
    write_atomic(path, &serialize_as(tensors, bytes, metadata, floats)?)
}

/// How a file stores its float tensors. `load` widens F16 to f32 again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Floats {
    #[default]
    F32,
    /// Half the bytes; each value rounded to f16 (relative error ≤ 2^-11, ±65504 at most).
    F16,
}

/// The safetensors file of F32 `tensors`, U8 `bytes` and `metadata`.
pub fn serialize(
    tensors: &Tensors,
    bytes: &BTreeMap<String, (Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    serialize_as(tensors, bytes, metadata, Floats::F32)
}

/// `serialize` with the float tensors stored as `floats`; a value beyond f16's range is an
/// error that names its tensor (never stored as infinity).
pub fn serialize_as(
    tensors: &Tensors,
    bytes: &BTreeMap<String, (Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
    floats: Floats,
) -> Result<Vec<u8>> {
    let halves: BTreeMap<&String, Vec<u8>> = match floats {
        Floats::F32 => BTreeMap::new(),
        Floats::F16 => tensors
            .iter()
            .map(|(name, (_, data))| {
                let mut out = Vec::with_capacity(2 * data.len());
                for &v in data {
                    let h = half::f16::from_f32(v);
                    if !h.is_finite() {
                        return Err(Error::Invalid(format!(
                            "tensor '{name}' holds {v}, beyond f16's range (±65504): store it as f32"
                        )));
                    }
                    out.extend_from_slice(&h.to_le_bytes());
                }
                Ok((name, out))
            })
            .collect::<Result<_>>()?,
    };
    let mut views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, (shape, data))| {
            let view = match halves.get(name) {
                Some(h) => {
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F16, shape.clone(), h)
                }
                None => safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytemuck::cast_slice(data),
                ),
            }
            .map_err(|e| Error::Invalid(format!("tensor '{name}': {e}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<_>>()?;
    for (name, (shape, data)) in bytes {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::U8, shape.clone(), data)
                .map_err(|e| Error::Invalid(format!("tensor '{name}': {e}")))?;
        views.push((name.clone(), view));
    }
    safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|e| Error::Invalid(format!("serialising a checkpoint: {e}")))
}

/// Reads only the metadata of a safetensors file (its header), not the tensors.
pub fn load_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let bad = |msg: String| Error::data(path, format!("not a valid safetensors file: {msg}"));
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|e| bad(format!("no header length ({e})")))?;
    let len = u64::from_le_bytes(len);
    // safetensors caps headers at 100 MB.
    if len > 100_000_000 {
        return Err(bad(format!("header of {len} bytes")));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header)
        .map_err(|e| bad(format!("header shorter than {len} bytes ({e})")))?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON ({e})")))?;
    match header.get("__metadata__") {
        None => Ok(HashMap::new()),
        Some(m) => serde_json::from_value(m.clone())
            .map_err(|e| bad(format!("metadata is not a map of strings ({e})"))),
    }
}

/// Reads every tensor (as F32) and the metadata of a safetensors file.
pub fn load(path: &Path) -> Result<(Tensors, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::data(path, format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::data(path, format!("bad safetensors header: {e}")))?;
    let mut out = Tensors::new();
    for (name, view) in st.tensors() {
        // PyTorch's BatchNorm counter (int64) carries nothing the model uses.
        // Hugging Face's `embeddings.position_ids` (int64 arange) is recomputed by the model.
        if name.ends_with("num_batches_tracked") || name.ends_with("position_ids") {
            continue;
        }
        let data: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => bytemuck::pod_collect_to_vec(view.data()),
            // Packed bit masks of deploy files: each byte as its value.
            safetensors::Dtype::U8 => view.data().iter().map(|&b| b as f32).collect(),
            // Half-precision checkpoints are widened once on load.
            safetensors::Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            safetensors::Dtype::BF16 => view
                .data()
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::data(
                    path,
                    format!(
                        "tensor '{name}' is {other:?}; only F32, F16, BF16 and U8 are supported"
                    ),
                ))
            }
        };
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::data(
                path,
                format!(
                    "tensor '{name}' holds {} at index {i}; a checkpoint must be finite",
                    data[i]
                ),
            ));
        }
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// Underscore-prefixed state (metric accumulators) is run bookkeeping, not model state: it is
/// neither written to nor expected in checkpoints.
pub fn is_bookkeeping(name: &str) -> bool {
    name.starts_with('_')
}

/// Stacked MoE expert tensors (`X.experts.weight` [E, …], one grouped GEMM operand) are
/// written as one tensor per expert, `X.experts.{e}.weight`, as the reference's and Hugging
/// Face's per-expert modules name them.
pub fn split_experts(tensors: &mut Tensors) {
    let stacked: Vec<String> = tensors
        .keys()
        .filter(|n| n.ends_with(".experts.weight") || n.ends_with(".experts.bias"))
        .cloned()
        .collect();
    for name in stacked {
        let (shape, data) = tensors.remove(&name).expect("listed");
        let (prefix, leaf) = name.rsplit_once('.').expect("has a dot");
        let each = data.len() / shape[0].max(1);
        for (e, chunk) in data.chunks(each.max(1)).enumerate() {
            tensors.insert(
                format!("{prefix}.{e}.{leaf}"),
                (shape[1..].to_vec(), chunk.to_vec()),
            );
        }
    }
}

/// The inverse of [`split_experts`] for the stacked tensors `wanted` names (absent ones stay
/// absent).
pub fn stack_experts<'a>(tensors: &mut Tensors, wanted: impl Iterator<Item = &'a String>) {
    for name in wanted {
        let Some((prefix, leaf)) = name.rsplit_once('.') else {
            continue;
        };
        if !prefix.ends_with(".experts") || tensors.contains_key(name) {
            continue;
        }
        let mut parts = vec![];
        while let Some(t) = tensors.remove(&format!("{prefix}.{}.{leaf}", parts.len())) {
            parts.push(t);
        }
        if let Some((shape, _)) = parts.first() {
            let mut full = vec![parts.len()];
            full.extend(shape);
            let data = parts.iter().flat_map(|(_, d)| d.iter().copied()).collect();
            tensors.insert(name.clone(), (full, data));
        }
    }
}

/// Every parameter and state tensor of the store, by name (bookkeeping excluded).
pub fn from_store(store: &ParamStore) -> Result<Tensors> {
    let (params, state) = store.read_all()?;
    let mut out = Tensors::new();
    for (slots, arena) in [(&store.param_slots, &params), (&store.state_slots, &state)] {
        for (name, s) in slots.iter().filter(|(n, _)| !is_bookkeeping(n)) {
            out.insert(
                name.clone(),
                (
                    s.shape.clone(),
                    arena[s.offset..s.offset + s.len()].to_vec(),
                ),
            );
        }
    }
    split_experts(&mut out);
    Ok(out)
}

/// A name as torchvision-style modules spell it: the reference's container modules insert
/// `.layers.` (`layer1.layers.0.conv1.weight`), torchvision's do not (`layer1.0.conv1.weight`).
pub fn torchvision_name(name: &str) -> String {
    name.replace(".layers.", ".")
}

/// Loads `tensors` into the store, accepting the reference's names and their torchvision-style
/// spelling; any missing, unexpected or mis-shaped tensor is an error that lists all of them.
pub fn into_store(store: &ParamStore, tensors: &Tensors, source: &Path) -> Result<()> {
    let stacked;
    let tensors = if store.param_slots.keys().any(|n| n.contains(".experts.")) {
        let mut t = tensors.clone();
        stack_experts(&mut t, store.param_slots.keys());
        stacked = t;
        &stacked
    } else {
        tensors
    };
    let find = |name: &str| {
        tensors
            .get(name)
            .or_else(|| tensors.get(&torchvision_name(name)))
    };
    let mut problems = vec![];
    let slots = store
        .param_slots
        .iter()
        .chain(&store.state_slots)
        .filter(|(n, _)| !is_bookkeeping(n));
    for (name, slot) in slots.clone() {
        match find(name) {
            None => problems.push(format!("missing '{name}' {:?}", slot.shape)),
            Some((shape, _)) if *shape != slot.shape => problems.push(format!(
                "'{name}': checkpoint {shape:?} vs model {:?}",
                slot.shape
            )),
            _ => {}
        }
    }
    let known: std::collections::HashSet<String> = store
        .param_slots
        .keys()
        .chain(store.state_slots.keys())
        .flat_map(|n| [n.clone(), torchvision_name(n)])
        .collect();
    for name in tensors.keys() {
        if !known.contains(name) {
            problems.push(format!("unexpected '{name}'"));
        }
    }
    if !problems.is_empty() {
        return Err(Error::data(
            source,
            format!(
                "checkpoint does not fit the model:\n  {}",
                problems.join("\n  ")
            ),
        ));
    }
    for (name, _) in slots {
        store.write(name, &find(name).expect("checked above").1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_files_round_and_refuse_what_f16_cannot_hold() {
        let path =
            std::env::temp_dir().join(format!("padnet-f16-{}.safetensors", std::process::id()));
        let values = vec![1.0, -0.1, 3.0e-6, 65504.0];
        let tensors = Tensors::from([("w".to_string(), (vec![4], values.clone()))]);
        let none = BTreeMap::new();
        let bytes = serialize_as(&tensors, &none, HashMap::new(), Floats::F16).unwrap();
        write_atomic(&path, &bytes).unwrap();
        let (read, _) = load(&path).unwrap();
        // Each value back within f16's rounding: 2^-11 relative, or 2^-25 below the normal range.
        for (&got, &want) in read["w"].1.iter().zip(&values) {
            let bound = (want.abs() * 2f32.powi(-11)).max(2f32.powi(-25));
            assert!((got - want).abs() <= bound, "{got} for {want}");
        }
        let big = Tensors::from([("big.weight".to_string(), (vec![2], vec![1.0, 7.0e4]))]);
        let err = serialize_as(&big, &none, HashMap::new(), Floats::F16).unwrap_err();
        assert!(
            err.to_string().contains("'big.weight' holds 70000"),
            "{err}"
        );
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn a_non_finite_tensor_is_an_error_naming_it() {
        let path =
            std::env::temp_dir().join(format!("padnet-nan-{}.safetensors", std::process::id()));
        let tensors = Tensors::from([
            ("ok.weight".to_string(), (vec![2], vec![1.0, 2.0])),
            (
                "bad.weight".to_string(),
                (vec![3], vec![0.0, f32::NAN, 1.0]),
            ),
        ]);
        save(&path, &tensors, HashMap::new()).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.contains("tensor 'bad.weight' holds NaN at index 1"),
            "{e}"
        );
        std::fs::remove_file(&path).ok();
    }
}

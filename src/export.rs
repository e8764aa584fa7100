//! Deployment fold (docs/method.md §1.2): λ folded into the weights, the static part merged into
//! one kernel per layer, and both parts stored sparsely around one shared bit mask, since M
//! is shared by the K kernels:
//!
//!   W_S  = λ_s (1 − M) ⊙ W_s    → `{layer}.static`   [positions with M = 0]
//!   W'_k = λ_d M ⊙ W_k          → `{layer}.dynamic`  [K, positions with M = 1]
//!   M                            → `{layer}.mask_bits` (U8, bit j of byte j/8 = M_j)
//!
//! Per sample the deployed layer assembles W~_n = W_S + Σ_k α_nk W'_k. Storage per layer is
//! (1 − κ)N + KκN values + N/8 bytes instead of the fully dynamic KN.

use crate::checkpoint::{self, Tensors};
use crate::error::{Error, Result};
use crate::graph::cost::{forward_macs, param_count};
use crate::graph::Graph;
use crate::kernels::dynconv::Lambda;
use crate::names::Named;
use crate::nn::pad::{MASK_SUFFIX, PAD_CONV, PAD_MOE};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Debug)]
pub struct ExportReport {
    pub layers: usize,
    pub dynamic_positions: usize,
    pub positions: usize,
    /// Tensor bytes of the fully dynamic (DY-Conv) model: the PAD checkpoint without its
    /// static weights, masks and φ.
    pub dyconv_bytes: u64,
}

/// One layer folded: the static values at M = 0, the dynamic ones [K, positions with M = 1]
/// and the packed mask.
struct Folded {
    stat: Vec<f32>,
    dynamic: Vec<f32>,
    dynamic_positions: usize,
    bits: Vec<u8>,
}

/// Folds λ into one layer of N positions: mask M, kernels/experts W_k [K·N], static W_s [N].
fn fold(m: &[f32], wk: &[f32], ws: &[f32], phi: f32, lambda: Lambda) -> Folded {
    let n = m.len();
    let k = wk.len() / n.max(1);
    let (ld, ls, _, _) = lambda.eval(phi as f64);
    let dynamic: Vec<usize> = (0..n).filter(|&j| m[j] > 0.5).collect();
    let mut bits = vec![0u8; n.div_ceil(8)];
    for &j in &dynamic {
        bits[j / 8] |= 1 << (j % 8);
    }
    let stat = (0..n)
        .filter(|&j| m[j] <= 0.5)
        .map(|j| (ls * ws[j] as f64) as f32)
        .collect();
    let dyn_vals = (0..k)
        .flat_map(|kk| dynamic.iter().map(move |&j| (kk, j)))
        .map(|(kk, j)| (ld * wk[kk * n + j] as f64) as f32)
        .collect();
    Folded {
        stat,
        dynamic: dyn_vals,
        dynamic_positions: dynamic.len(),
        bits,
    }
}

/// The inverse of [`fold`] with λ ≡ 1: (M, W'_k [K·N] zero where M = 0, W_S [N] zero where
/// M = 1) from a layer's deploy tensors (bits stored as f32 bytes), or None if their sizes do
/// not fit K kernels of N positions.
fn unfold(
    bits: &[f32],
    stat: &[f32],
    dyn_vals: &[f32],
    k: usize,
    n: usize,
) -> Option<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    if bits.len() != n.div_ceil(8) {
        return None;
    }
    let m: Vec<f32> = (0..n)
        .map(|j| ((bits[j / 8] as u8 >> (j % 8)) & 1) as f32)
        .collect();
    let d = m.iter().filter(|&&v| v > 0.5).count();
    if stat.len() != n - d || dyn_vals.len() != k * d {
        return None;
    }
    let (mut wk, mut ws) = (vec![0.0; k * n], vec![0.0; n]);
    let (mut si, mut di) = (0, 0);
    for j in 0..n {
        if m[j] > 0.5 {
            for kk in 0..k {
                wk[kk * n + j] = dyn_vals[kk * d + di];
            }
            di += 1;
        } else {
            ws[j] = stat[si];
            si += 1;
        }
    }
    Some((m, wk, ws))
}

/// Where a PAD checkpoint keeps a layer's tensors: PAD-Conv (`kernels_weights` [K, …],
/// `kernels_weights_mask`) or PAD-MoE (`experts.{e}.weight`, `mask`); both have `weight`
/// (static) and `phi_d`.
struct Layout {
    mask_suffix: &'static str,
    /// Experts stored one tensor per expert (PAD-MoE) rather than stacked.
    experts: bool,
}

const CONV_LAYOUT: Layout = Layout {
    mask_suffix: PAD_CONV.mask,
    experts: false,
};
const MOE_LAYOUT: Layout = Layout {
    mask_suffix: PAD_MOE.mask,
    experts: true,
};

fn layout(meta: &HashMap<String, String>) -> &'static Layout {
    if meta.get("arch").map(String::as_str) == Some("bert") {
        &MOE_LAYOUT
    } else {
        &CONV_LAYOUT
    }
}

/// Folds the PAD checkpoint at `src` (PAD-Conv or PAD-MoE) into a deploy file at `dst`, its
/// float tensors stored as `floats` (f16: half the bytes).
pub fn export(src: &Path, dst: &Path, floats: checkpoint::Floats) -> Result<ExportReport> {
    let (mut tensors, meta) = checkpoint::load(src)?;
    if checkpoint::is_deploy(&meta) {
        return Err(Error::data(src, "is already a deploy file"));
    }
    let lay = layout(&meta);
    let layers: Vec<String> = tensors
        .keys()
        .filter_map(|k| k.strip_suffix(lay.mask_suffix).map(String::from))
        .collect();
    if layers.is_empty() || meta.get("mode").is_some_and(|m| m != "pad") {
        return Err(Error::data(
            src,
            format!(
                "not a PAD checkpoint (no *{} tensors); export folds PAD models",
                lay.mask_suffix
            ),
        ));
    }
    let lambda = Lambda::parse_or(meta.get("lambda"), Lambda::Both)?;
    let mut bits = BTreeMap::new();
    let (mut dynamic_positions, mut positions) = (0, 0);
    let mut dyconv_floats: usize = tensors.values().map(|(_, v)| v.len()).sum();
    for layer in &layers {
        let take = |t: &mut Tensors, name: &str| {
            t.remove(&format!("{layer}.{name}"))
                .ok_or_else(|| Error::data(src, format!("PAD layer {layer} lacks '{name}'")))
        };
        let (_, m) = take(&mut tensors, lay.mask_suffix.trim_start_matches('.'))?;
        let (kshape, wk) = if lay.experts {
            let mut parts = vec![];
            while let Ok(t) = take(&mut tensors, &format!("experts.{}.weight", parts.len())) {
                parts.push(t);
            }
            let wk: Vec<f32> = parts.iter().flat_map(|(_, d)| d.iter().copied()).collect();
            (vec![parts.len()], wk)
        } else {
            take(&mut tensors, "kernels_weights")?
        };
        let (_, ws) = take(&mut tensors, "weight")?;
        let (_, phi) = take(&mut tensors, "phi_d")?;
        let n = m.len();
        dyconv_floats -= m.len() + ws.len() + phi.len();
        let k = kshape[0];
        if k == 0 || wk.len() != k * n || ws.len() != n || phi.len() != 1 {
            return Err(Error::data(
                src,
                format!("PAD layer {layer}: inconsistent shapes"),
            ));
        }
        let f = fold(&m, &wk, &ws, phi[0], lambda);
        tensors.insert(format!("{layer}.static"), (vec![f.stat.len()], f.stat));
        tensors.insert(
            format!("{layer}.dynamic"),
            (vec![k, f.dynamic_positions], f.dynamic),
        );
        bits.insert(format!("{layer}.mask_bits"), (vec![f.bits.len()], f.bits));
        dynamic_positions += f.dynamic_positions;
        positions += n;
    }
    let mut out_meta = meta.clone();
    out_meta.insert("format".into(), checkpoint::DEPLOY_FORMAT.into());
    out_meta.insert("folded_lambda".into(), lambda.name());
    checkpoint::save_with_bytes(dst, &tensors, &bits, out_meta, floats)?;
    Ok(ExportReport {
        layers: layers.len(),
        dynamic_positions,
        positions,
        dyconv_bytes: (dyconv_floats * 4) as u64,
    })
}

/// One model in `export`'s comparison of what a deploy file saves.
#[derive(Debug)]
pub struct Cost {
    pub model: String,
    /// Trainable parameters (for the deploy file: the values it stores, bit mask aside).
    pub params: usize,
    /// Bytes of the file when `file`, else of the parameters in f32.
    pub bytes: u64,
    pub file: bool,
    /// Multiply-accumulates per sample (`graph::cost::forward_macs`).
    pub macs: u64,
}

impl Cost {
    /// The network of inference graph `g`, its parameters counted in f32 and its
    /// multiply-accumulates divided over the `samples` one run of `g` processes.
    pub fn of_graph(model: impl Into<String>, g: &Graph, samples: usize) -> Cost {
        let params = param_count(g);
        Cost {
            model: model.into(),
            params,
            bytes: 4 * params as u64,
            file: false,
            macs: forward_macs(g) / samples.max(1) as u64,
        }
    }

    /// The same network as stored in the file at `path`.
    pub fn stored(self, path: &Path) -> Cost {
        Cost {
            bytes: file_size(path),
            file: true,
            ..self
        }
    }
}

impl ExportReport {
    /// Values the deploy file stores of a network whose fully dynamic form (DY-Conv or MoE,
    /// `k` kernels or experts per PAD layer) has `dynamic_params` parameters: of each layer's
    /// k·N values it keeps the N − D static ones and the k·D dynamic ones.
    pub fn deploy_params(&self, dynamic_params: usize, k: usize) -> usize {
        let (n, d) = (self.positions, self.dynamic_positions);
        dynamic_params - k * n + (n - d) + k * d
    }
}

/// Bytes of the file at `path` (0 if it cannot be read).
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Each PAD-Conv layer's `[K, O, C/g, kh, kw]` in a graph built for a PAD model.
pub fn kernel_shapes(graph: &Graph) -> BTreeMap<String, Vec<usize>> {
    let named = graph
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), &t.shape[..]));
    layer_shapes(named, PAD_CONV.dynamic)
}

/// Layer → shape of its tensor named `{layer}{suffix}`, among `named` (name, shape) pairs:
/// with `PAD_MOE.dynamic`, each MoE layer's stacked experts `[E, d_out, d_in]`.
pub fn layer_shapes<'a>(
    named: impl IntoIterator<Item = (&'a str, &'a [usize])>,
    suffix: &str,
) -> BTreeMap<String, Vec<usize>> {
    named
        .into_iter()
        .filter_map(|(name, shape)| Some((name.strip_suffix(suffix)?.to_string(), shape.to_vec())))
        .collect()
}

/// Removes a layer's deploy tensors (`mask_bits`, `static`, `dynamic`) from `tensors` and
/// unfolds them (see [`unfold`]) for `k` kernels of `n` positions; `fits` describes that
/// shape in the error.
fn take_unfolded(
    tensors: &mut Tensors,
    layer: &str,
    k: usize,
    n: usize,
    fits: &str,
    source: &Path,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let mut take = |name: &str| {
        tensors
            .remove(&format!("{layer}.{name}"))
            .map(|(_, v)| v)
            .ok_or_else(|| Error::data(source, format!("deploy file lacks '{layer}.{name}'")))
    };
    let (bits, stat, dyn_vals) = (take("mask_bits")?, take("static")?, take("dynamic")?);
    unfold(&bits, &stat, &dyn_vals, k, n).ok_or_else(|| {
        Error::data(
            source,
            format!("deploy layer {layer}: sizes do not fit {fits}"),
        )
    })
}

/// The PAD-Conv layers of a deploy file whose dynamic positions are whole output filters
/// (`--mask-granularity filter`, or any mask that happens to be so), each with its dynamic
/// filters in ascending order. `kernel_shapes` gives each layer's `[K, O, C/g, kh, kw]`;
/// layers whose tensors do not fit it are left out (`unpack` reports them).
pub fn whole_filter_layers(
    tensors: &Tensors,
    kernel_shapes: &BTreeMap<String, Vec<usize>>,
) -> BTreeMap<String, Vec<usize>> {
    let mut out = BTreeMap::new();
    for (layer, shape) in kernel_shapes {
        let Some((_, bits)) = tensors.get(&format!("{layer}.mask_bits")) else {
            continue;
        };
        let (filters, n) = (shape[1], shape[1..].iter().product::<usize>());
        if bits.len() != n.div_ceil(8) || filters == 0 {
            continue;
        }
        let bit = |j: usize| (bits[j / 8] as u8 >> (j % 8)) & 1 == 1;
        let per = n / filters;
        let whole = |f: usize| (f * per..(f + 1) * per).all(|j| bit(j) == bit(f * per));
        if (0..filters).all(whole) {
            out.insert(
                layer.clone(),
                (0..filters).filter(|&f| bit(f * per)).collect(),
            );
        }
    }
    out
}

/// Rows `rows` (of `per` values each) of every block of `len` values of `w`, in order: the
/// filters of each kernel, or the rows of each expert.
fn gather_rows(w: &[f32], len: usize, per: usize, rows: &[usize]) -> Vec<f32> {
    w.chunks(len.max(1))
        .flat_map(|block| {
            rows.iter()
                .flat_map(move |&r| block[r * per..][..per].iter().copied())
        })
        .collect()
}

/// Unpacks deploy tensors into the layers of `graph` (built for the deploy file, see
/// `eval::Evaluator::deploy_graph`), λ ≡ 1 (`--lambda none`). A PAD layer built dense gets
/// kernels = W'_k (zero at static positions), static weight = W_S (zero at dynamic
/// positions), mask from the bits and φ = 0, so that it computes exactly
/// W~_n = W_S + Σ_k α_nk W'_k; a layer built split (whole dynamic filters, no mask in the
/// graph) gets W_S of its static filters and the W'_k of its dynamic filters only.
/// `kernel_shapes` gives each PAD layer's full `[K, O, C/g, kh, kw]`.
pub fn unpack(
    mut tensors: Tensors,
    kernel_shapes: &BTreeMap<String, Vec<usize>>,
    graph: &crate::graph::Graph,
    source: &Path,
) -> Result<Tensors> {
    for (layer, shape) in kernel_shapes {
        let k = shape[0];
        let n: usize = shape[1..].iter().product();
        let fits = format!("its kernel {shape:?}");
        let (m, wk, ws) = take_unfolded(&mut tensors, layer, k, n, &fits, source)?;
        let mut one = shape.clone();
        one[0] = 1;
        let weight = format!("{layer}.weight");
        if graph.find(&format!("{layer}{MASK_SUFFIX}")).is_some() {
            tensors.insert(weight, (one.clone(), ws));
            tensors.insert(format!("{layer}.kernels_weights"), (shape.clone(), wk));
            tensors.insert(format!("{layer}{MASK_SUFFIX}"), (one, m));
            tensors.insert(format!("{layer}.phi_d"), (vec![1], vec![0.0]));
            continue;
        }
        // Split: W_S of the static filters, [1, O_s, C/g, kh, kw] (none when every filter is
        // dynamic), and the dynamic filters' kernels, [K, O_d, C/g, kh, kw].
        let per = n / shape[1].max(1);
        let (dynamic, statics): (Vec<usize>, Vec<usize>) =
            (0..shape[1]).partition(|&f| m[f * per] > 0.5);
        if !statics.is_empty() {
            one[1] = statics.len();
            tensors.insert(weight, (one, gather_rows(&ws, n, per, &statics)));
        }
        if dynamic.is_empty() {
            // All static: one convolution, no attention branch.
            tensors.retain(|name, _| !name.starts_with(&format!("{layer}.attention.")));
            continue;
        }
        let mut kshape = shape.clone();
        kshape[1] = dynamic.len();
        tensors.insert(
            format!("{layer}.kernels_weights"),
            (kshape, gather_rows(&wk, n, per, &dynamic)),
        );
    }
    Ok(tensors)
}

/// Unpacks the PAD-MoE layers of a deploy file (see `export`) into a plain MoE layer's
/// tensors: `{layer}.experts.{e}.weight` = W'_e + W_S, with W'_e = λ_d M⊙W_e (zero where
/// M = 0) and W_S = λ_s (1−M)⊙W_s. Exact, because a token's gates sum to 1, and done once at
/// load so a token costs what it costs in MoE (docs/method.md §5). `layers` gives each
/// layer's `[experts, d_out, d_in]`. A layer in `split` (its dynamic rows, ascending; built
/// by `nn::moe`'s `static_rows`) instead gets W'_e of the dynamic rows as its experts, W_S of
/// the static rows as `{layer}.weight` and the experts' biases on the static rows as
/// `{layer}.static_bias` [E, d_static].
pub fn unpack_moe(
    mut tensors: Tensors,
    layers: &BTreeMap<String, Vec<usize>>,
    split: &BTreeMap<String, Vec<usize>>,
    source: &Path,
) -> Result<Tensors> {
    for (layer, shape) in layers {
        let [e, d_out, d_in] = shape[..] else {
            return Err(Error::Invalid(format!(
                "MoE layer {layer}: shape {shape:?}"
            )));
        };
        let n = d_out * d_in;
        let fits = format!("{e} experts of [{d_out}, {d_in}]");
        let (_, wk, ws) = take_unfolded(&mut tensors, layer, e, n, &fits, source)?;
        let Some(dynamic) = split.get(layer) else {
            for (x, w) in wk.chunks(n).enumerate() {
                let folded = w.iter().zip(&ws).map(|(d, s)| d + s).collect();
                tensors.insert(
                    format!("{layer}.experts.{x}.weight"),
                    (vec![d_out, d_in], folded),
                );
            }
            continue;
        };
        let statics = crate::nn::dynamic::static_filters(d_out, dynamic);
        let mut static_bias = Vec::with_capacity(e * statics.len());
        for x in 0..e {
            let bias_name = format!("{layer}.experts.{x}.bias");
            let Some((_, bias)) = tensors.remove(&bias_name) else {
                return Err(Error::data(
                    source,
                    format!("deploy file lacks '{bias_name}'"),
                ));
            };
            if bias.len() != d_out {
                return Err(Error::data(
                    source,
                    format!("'{bias_name}' is not [{d_out}]"),
                ));
            }
            static_bias.extend(statics.iter().map(|&r| bias[r]));
            if !dynamic.is_empty() {
                let w = &wk[x * n..][..n];
                let kept = dynamic.iter().map(|&r| bias[r]).collect();
                tensors.insert(bias_name, (vec![dynamic.len()], kept));
                tensors.insert(
                    format!("{layer}.experts.{x}.weight"),
                    (vec![dynamic.len(), d_in], gather_rows(w, n, d_in, dynamic)),
                );
            }
        }
        if !statics.is_empty() {
            tensors.insert(
                format!("{layer}.weight"),
                (
                    vec![statics.len(), d_in],
                    gather_rows(&ws, n, d_in, &statics),
                ),
            );
            tensors.insert(
                format!("{layer}.{}", crate::nn::moe::STATIC_BIAS),
                (vec![e, statics.len()], static_bias),
            );
        }
    }
    Ok(tensors)
}

//! Deployment fold (PADNET-SPEC §1.2): λ folded into the weights, the static part merged into
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
use crate::imp::MASK_SUFFIX;
use crate::ops::dynconv::Lambda;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Metadata `format` of deploy files.
pub const DEPLOY_FORMAT: &str = "padnet-wgpu-deploy";

pub fn is_deploy(meta: &HashMap<String, String>) -> bool {
    meta.get("format").map(String::as_str) == Some(DEPLOY_FORMAT)
}

#[derive(Debug)]
pub struct ExportReport {
    pub layers: usize,
    pub dynamic_positions: usize,
    pub positions: usize,
    /// Tensor bytes of the fully dynamic (DY-Conv) model: the PAD checkpoint without its
    /// static weights, masks and φ.
    pub dyconv_bytes: u64,
}

/// Folds the PAD checkpoint at `src` into a deploy file at `dst`.
pub fn export(src: &Path, dst: &Path) -> Result<ExportReport> {
    let (mut tensors, meta) = checkpoint::load(src)?;
    if is_deploy(&meta) {
        return Err(Error::data(src, "is already a deploy file"));
    }
    let layers: Vec<String> = tensors
        .keys()
        .filter_map(|k| k.strip_suffix(MASK_SUFFIX).map(String::from))
        .collect();
    if layers.is_empty() || meta.get("mode").is_some_and(|m| m != "pad") {
        return Err(Error::data(
            src,
            "not a PAD checkpoint (no kernels_weights_mask tensors); export folds PAD models",
        ));
    }
    let lambda = Lambda::parse(meta.get("lambda").map(String::as_str).unwrap_or("both"))?;
    let mut bits = BTreeMap::new();
    let (mut dynamic_positions, mut positions) = (0, 0);
    let mut dyconv_floats: usize = tensors.values().map(|(_, v)| v.len()).sum();
    for layer in &layers {
        let take = |t: &mut Tensors, name: &str| {
            t.remove(&format!("{layer}.{name}"))
                .ok_or_else(|| Error::data(src, format!("PAD layer {layer} lacks '{name}'")))
        };
        let (_, m) = take(&mut tensors, "kernels_weights_mask")?;
        let (kshape, wk) = take(&mut tensors, "kernels_weights")?;
        let (_, ws) = take(&mut tensors, "weight")?;
        let (_, phi) = take(&mut tensors, "phi_d")?;
        let n = m.len();
        dyconv_floats -= m.len() + ws.len() + phi.len();
        let k = kshape[0];
        if wk.len() != k * n || ws.len() != n || phi.len() != 1 {
            return Err(Error::data(
                src,
                format!("PAD layer {layer}: inconsistent shapes"),
            ));
        }
        let (ld, ls, _, _) = lambda.eval(phi[0] as f64);
        let dynamic: Vec<usize> = (0..n).filter(|&j| m[j] > 0.5).collect();
        let mut packed = vec![0u8; n.div_ceil(8)];
        for &j in &dynamic {
            packed[j / 8] |= 1 << (j % 8);
        }
        let stat: Vec<f32> = (0..n)
            .filter(|&j| m[j] <= 0.5)
            .map(|j| (ls * ws[j] as f64) as f32)
            .collect();
        let dyn_vals: Vec<f32> = (0..k)
            .flat_map(|kk| dynamic.iter().map(move |&j| (kk, j)))
            .map(|(kk, j)| (ld * wk[kk * n + j] as f64) as f32)
            .collect();
        tensors.insert(format!("{layer}.static"), (vec![stat.len()], stat));
        tensors.insert(
            format!("{layer}.dynamic"),
            (vec![k, dynamic.len()], dyn_vals),
        );
        bits.insert(format!("{layer}.mask_bits"), (vec![packed.len()], packed));
        dynamic_positions += dynamic.len();
        positions += n;
    }
    let mut out_meta = meta.clone();
    out_meta.insert("format".into(), DEPLOY_FORMAT.into());
    out_meta.insert("folded_lambda".into(), lambda.name().into());
    checkpoint::save_with_bytes(dst, &tensors, &bits, out_meta)?;
    Ok(ExportReport {
        layers: layers.len(),
        dynamic_positions,
        positions,
        dyconv_bytes: (dyconv_floats * 4) as u64,
    })
}

/// Unpacks deploy tensors into the PAD parameterisation with λ ≡ 1 (`--lambda none`):
/// kernels = W'_k (zero at static positions), static weight = W_S (zero at dynamic
/// positions), mask from the bits, φ = 0. The PAD layer then computes exactly
/// W~_n = W_S + Σ_k α_nk W'_k. `kernel_shapes` gives each PAD layer's `[K, O, C/g, kh, kw]`.
pub fn unpack(
    mut tensors: Tensors,
    kernel_shapes: &BTreeMap<String, Vec<usize>>,
    source: &Path,
) -> Result<Tensors> {
    for (layer, shape) in kernel_shapes {
        let take = |t: &mut Tensors, name: &str| {
            t.remove(&format!("{layer}.{name}"))
                .ok_or_else(|| Error::data(source, format!("deploy file lacks '{layer}.{name}'")))
        };
        let (_, bits) = take(&mut tensors, "mask_bits")?;
        let (_, stat) = take(&mut tensors, "static")?;
        let (dshape, dyn_vals) = take(&mut tensors, "dynamic")?;
        let k = shape[0];
        let n: usize = shape[1..].iter().product();
        let m: Vec<f32> = (0..n)
            .map(|j| ((bits[j / 8] as u8 >> (j % 8)) & 1) as f32)
            .collect();
        let d = m.iter().filter(|&&v| v > 0.5).count();
        if bits.len() != n.div_ceil(8) || stat.len() != n - d || dshape != [k, d] {
            return Err(Error::data(
                source,
                format!("deploy layer {layer}: sizes do not fit its kernel {shape:?}"),
            ));
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
        let mut one = shape.clone();
        one[0] = 1;
        tensors.insert(format!("{layer}.kernels_weights"), (shape.clone(), wk));
        tensors.insert(format!("{layer}.weight"), (one.clone(), ws));
        tensors.insert(format!("{layer}{MASK_SUFFIX}"), (one, m));
        tensors.insert(format!("{layer}.phi_d"), (vec![1], vec![0.0]));
    }
    Ok(tensors)
}

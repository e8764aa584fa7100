//! The one description of a PAD layer, PAD-Conv or PAD-MoE alike (docs/method.md §1): a mask
//! M, K dynamic tensors and one static weight, under names declared here once. The layer
//! builders name their tensors with it; IMP, its report, deployment and evaluation find the
//! layers of a parameter store through [`pad_layers`].

use crate::executor::ParamStore;

/// How a PAD layer's tensors are named: suffixes after the layer's name.
#[derive(Clone, Copy, Debug)]
pub struct PadNames {
    /// The binary mask M (1 = dynamic position).
    pub mask: &'static str,
    /// The K dynamic tensors (kernels or experts), stacked [K, ...].
    pub dynamic: &'static str,
    /// The static weight W_s, shaped like one dynamic tensor.
    pub static_weight: &'static str,
}

/// PAD-Conv keeps the reference's names.
pub const PAD_CONV: PadNames = PadNames {
    mask: ".kernels_weights_mask",
    dynamic: ".kernels_weights",
    static_weight: ".weight",
};

/// PAD-MoE uses Hugging Face-style names.
pub const PAD_MOE: PadNames = PadNames {
    mask: ".mask",
    dynamic: ".experts.weight",
    static_weight: ".weight",
};

pub const PAD_NAMES: [PadNames; 2] = [PAD_CONV, PAD_MOE];

/// Suffix of PAD-Conv mask tensors; the layer is the name before it.
pub const MASK_SUFFIX: &str = PAD_CONV.mask;

/// A suffix without its leading dot: the name a layer builder gives the tensor.
pub fn leaf(suffix: &'static str) -> &'static str {
    suffix.trim_start_matches('.')
}

/// A PAD layer (PAD-Conv or PAD-MoE), seen the same way by IMP, its report and deployment:
/// K dynamic tensors (kernels or experts) and one static weight mixed by one shared mask.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PadLayer {
    pub layer: String,
    pub mask: String,
    /// The K dynamic tensors, stacked [K, ...].
    pub dynamic: String,
    /// The static weight, shaped like one dynamic tensor.
    pub static_weight: String,
    /// Positions of one dynamic tensor (= mask entries).
    pub positions: usize,
    pub k: usize,
    /// The mask as [outputs, inputs, spatial]: PAD-Conv [1, O, C/g, kh, kw] is [O, C/g,
    /// kh·kw], PAD-MoE [d_out, d_in] is [d_out, d_in, 1] (structured IMP groups along these).
    pub dims: [usize; 3],
}

/// The PAD layers of a store, in name order.
pub fn pad_layers(store: &ParamStore) -> Vec<PadLayer> {
    let mut layers: Vec<PadLayer> = store
        .state_slots
        .iter()
        .filter_map(|(name, slot)| {
            PAD_NAMES.iter().find_map(|names| {
                let layer = name.strip_suffix(names.mask)?;
                let dynamic = format!("{layer}{}", names.dynamic);
                let k = store.param_slots.get(&dynamic)?.shape[0];
                Some(PadLayer {
                    layer: layer.to_string(),
                    mask: name.clone(),
                    dynamic,
                    static_weight: format!("{layer}{}", names.static_weight),
                    positions: slot.len(),
                    k,
                    dims: match slot.shape[..] {
                        [_, o, i, kh, kw] => [o, i, kh * kw],
                        [o, i] => [o, i, 1],
                        _ => [1, slot.len(), 1],
                    },
                })
            })
        })
        .collect();
    layers.sort();
    layers
}

//! Dynamic convolution layers (docs/method.md §1.1–1.2): the attention branch (global average
//! pool → fc1 (C → max(1, C/r), no bias) → ReLU → fc2 (+bias) → softmax(z / T)) and the DY-Conv
//! or PAD-Conv op. Parameter names follow the authors' PyTorch modules.

use super::pad::{leaf, PAD_CONV};
use super::Builder;
use crate::error::{Error, Result};
use crate::graph::op::Act;
use crate::graph::{DType, Init, Op, TensorId};
use crate::kernels::conv::{ConvGeom, ConvOpts};
use crate::kernels::dynconv::{DynSpec, Lambda, MixSpec};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a model's convolutions inside its blocks are built.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ConvMode {
    /// Plain convolutions.
    Static,
    /// DY-Conv: K kernels mixed per sample by an attention branch.
    Dynamic,
    /// PAD-Conv: DY-Conv on a mask's dynamic positions, one static weight elsewhere.
    Pad,
}

impl crate::names::Named for ConvMode {
    const WHAT: &'static str = "mode";
}

/// Settings of the dynamic layers of a model.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DynConfig {
    pub mode: ConvMode,
    /// Number of kernels K.
    pub kernels: usize,
    /// Attention reduction r: hidden width max(1, C / r).
    pub reduction: usize,
    pub lambda: Lambda,
}

impl Default for DynConfig {
    fn default() -> Self {
        DynConfig {
            mode: ConvMode::Static,
            kernels: 4,
            reduction: 16,
            lambda: Lambda::Both,
        }
    }
}

/// PAD layers whose dynamic positions are whole output filters (`--mask-granularity filter`)
/// deploy as one static convolution of the batch with W_S plus a per-sample convolution over
/// the dynamic filters only (docs/method.md §5), instead of a per-sample kernel of every filter:
/// the work over a static network grows with the number of dynamic filters. PAD-MoE layers
/// split the same way by whole rows (`nn::moe`'s `static_rows`).
#[derive(Clone, Debug, PartialEq)]
pub enum DeployFilters {
    /// Layer name → its dynamic filters, ascending (read from a deploy file's masks).
    Layers(Arc<BTreeMap<String, Vec<usize>>>),
    /// Every PAD layer keeps its first round(f · O) filters dynamic (benchmarks).
    Leading(f64),
}

impl DeployFilters {
    /// The dynamic filters of `layer` (of `out`), if it splits.
    pub(crate) fn of(&self, layer: &str, out: usize) -> Option<Vec<usize>> {
        match self {
            DeployFilters::Layers(m) => m.get(layer).cloned(),
            DeployFilters::Leading(f) => Some((0..(f * out as f64).round() as usize).collect()),
        }
    }
}

/// Name of the graph input holding 1/T, the inverse attention temperature.
pub const INV_TEMPERATURE: &str = "inv_temperature";

impl Builder<'_> {
    /// The [1] input 1/T shared by every attention branch of the graph (created on first use).
    pub fn inv_temperature(&mut self) -> TensorId {
        match self.g.find(INV_TEMPERATURE) {
            Some(t) => t,
            None => self.g.input(INV_TEMPERATURE, &[1], DType::F32),
        }
    }

    /// A convolution inside a model's blocks: static, DY-Conv or PAD-Conv per `self.dynamic`.
    pub fn block_conv(
        &mut self,
        name: &str,
        x: TensorId,
        out: usize,
        opts: ConvOpts,
    ) -> Result<TensorId> {
        let layer = self.name(name);
        let split = match (&self.deploy_filters, self.dynamic.mode) {
            // Grouped (depthwise) convolutions have no per-filter split: their dynamic filters
            // would need their own input channels.
            (Some(d), ConvMode::Pad) if opts.groups == 1 => d.of(&layer, out),
            _ => None,
        };
        match (self.dynamic.mode, split) {
            (ConvMode::Static, _) => self.conv2d(name, x, out, opts, false),
            (_, Some(filters)) => self.scope(name, |b| b.filter_split_conv(x, out, opts, &filters)),
            (mode, None) => self.scope(name, |b| b.dyn_conv2d(x, out, opts, mode == ConvMode::Pad)),
        }
    }

    /// Attention: [B, C, H, W] → alpha [B, K] = softmax(fc2(relu(fc1(mean_hw x))) / T).
    fn attention(&mut self, x: TensorId, k: usize) -> Result<TensorId> {
        let c = self.g.shape(x)[1];
        let hidden = (c / self.dynamic.reduction).max(1);
        let inv_t = self.inv_temperature();
        self.scope("attention", |b| {
            let pooled = b.global_avg_pool(x)?;
            let w1 = b.g.param(
                &b.name("fc1.weight"),
                &[hidden, c, 1, 1],
                Init::Normal((2.0 / hidden as f32).sqrt()),
            );
            let w1 = b.g.reshape(w1, &[hidden, c])?;
            let h = b.g.matmul(pooled, w1, false, true)?;
            let h = b.act(h, Act::Relu)?;
            let w2 = b.g.param(
                &b.name("fc2.weight"),
                &[k, hidden, 1, 1],
                Init::Normal((2.0 / k as f32).sqrt()),
            );
            let w2 = b.g.reshape(w2, &[k, hidden])?;
            let bias = b.g.param(&b.name("fc2.bias"), &[k], Init::Zeros);
            let z = b.g.matmul(h, w2, false, true)?;
            let z = b.g.push1(Op::BiasAdd, &[z, bias])?;
            let z = b.g.push1(Op::Mul, &[z, inv_t])?;
            b.g.push1(Op::Softmax, &[z])
        })
    }

    /// DY-Conv (`pad` = false: kernels stored as `weight` [K, O, C/g, kh, kw]) or PAD-Conv
    /// (`kernels_weights` [K, ...], static `weight` [1, ...], mask `kernels_weights_mask`
    /// [1, ...], `phi_d` [1]), under the current name scope. No bias, as every model of the
    /// reference builds its convolutions.
    pub fn dyn_conv2d(
        &mut self,
        x: TensorId,
        out: usize,
        opts: ConvOpts,
        pad: bool,
    ) -> Result<TensorId> {
        let geom = ConvGeom::new(self.g.shape(x), out, opts)?;
        let cfg = self.dynamic;
        let spec = DynSpec {
            geom,
            k: cfg.kernels,
            pad,
            lambda: cfg.lambda,
            max_chunk: 0,
        };
        let alpha = self.attention(x, cfg.kernels)?;
        let he = Init::Normal((2.0 / (geom.kh * geom.kw * out) as f32).sqrt());
        let kernels_name = leaf(if pad { PAD_CONV.dynamic } else { ".weight" });
        let wk = self
            .g
            .param(&self.name(kernels_name), &spec.kernels_shape(), he.clone());
        let mut ins = vec![x, alpha, wk];
        if pad {
            let ws = self.g.param(
                &self.name(leaf(PAD_CONV.static_weight)),
                &spec.static_shape(),
                he,
            );
            let mask = self.g.state(
                &self.name(leaf(PAD_CONV.mask)),
                &spec.static_shape(),
                Init::Ones,
            );
            let phi = self.g.param(&self.name("phi_d"), &[1], Init::Zeros);
            ins.extend([ws, mask, phi]);
        }
        // Read from the environment once per graph, at its first DY-Conv or PAD-Conv layer.
        let form = match self.dy_form {
            Some(form) => form,
            None => *self.dy_form.insert(DyForm::from_env()?),
        };
        if !form.mixes(&geom) {
            return Ok(self.g.push(Op::DynConv2d(spec), &ins)?[0]);
        }
        // PAD-Conv's W~_k = λ_s (1 − M) ⊙ W_s + λ_d M ⊙ W_k (as PAD-MoE's experts): α sums to 1
        // (a softmax), so Σ_k α_k W~_k is PAD-Conv's kernel; IMP's score is PadMix's ∂L/∂M.
        let kernels = match pad {
            true => {
                let mix = MixSpec {
                    experts: cfg.kernels,
                    n: geom.w_shape().iter().product(),
                    lambda: cfg.lambda,
                };
                self.g.push1(Op::PadMix(mix), &ins[2..])?
            }
            false => wk,
        };
        self.mixed_outputs(x, alpha, kernels, spec)
    }

    /// A deployed PAD-Conv whose dynamic positions are the whole filters `filters` (see
    /// [`DeployFilters`]), under the current name scope: `weight` [1, O_s, C, kh, kw] holds W_S
    /// of the O_s static filters and `kernels_weights` [K, O_d, C, kh, kw] the folded W'_k of
    /// the dynamic ones, λ folded in. Run in the cheapest `SplitForm` (docs/method.md §5): one
    /// per-sample convolution over all O filters, whose static filters read W_S and whose
    /// dynamic ones are assembled per sample (`Op::SplitDynConv2d`), or a batched convolution
    /// over the static filters beside the dynamic filters' outputs, mixed by α after batched
    /// convolutions (`mixed_outputs`) or from a per-sample DY-Conv; a layer without dynamic
    /// filters is a plain convolution, one without static filters a DY-Conv.
    pub fn filter_split_conv(
        &mut self,
        x: TensorId,
        out: usize,
        opts: ConvOpts,
        filters: &[usize],
    ) -> Result<TensorId> {
        let k = self.dynamic.kernels;
        let statics = static_filters(out, filters);
        let ws = match statics.len() {
            0 => None,
            n => {
                let geom = ConvGeom::new(self.g.shape(x), n, opts)?;
                let shape = [&[1], &geom.w_shape()[..]].concat();
                let ws = self.g.param(
                    &self.name(leaf(PAD_CONV.static_weight)),
                    &shape,
                    Init::Zeros,
                );
                Some((ws, geom))
            }
        };
        if filters.is_empty() {
            let (ws, geom) = ws.expect("a layer has filters");
            return self.batched_conv(x, ws, geom);
        }
        let alpha = self.attention(x, k)?;
        let spec = DynSpec {
            geom: ConvGeom::new(self.g.shape(x), filters.len(), opts)?,
            k,
            pad: false,
            lambda: Lambda::None,
            max_chunk: 0,
        };
        let wk = self.g.param(
            &self.name(leaf(PAD_CONV.dynamic)),
            &spec.kernels_shape(),
            Init::Zeros,
        );
        let Some((ws, ws_geom)) = ws else {
            // Every filter dynamic, in order.
            return Ok(self.g.push(Op::DynConv2d(spec), &[x, alpha, wk])?[0]);
        };
        let form = self.split_form.unwrap_or_else(|| {
            let (positions, taps) = (ws_geom.oh * ws_geom.ow, ws_geom.kh * ws_geom.kw);
            let windowed = crate::kernels::conv::windowed_on_cpu(&ws_geom);
            SplitForm::choose(out, filters.len(), k, (positions, taps), windowed)
        });
        let dynamic_part = match form {
            SplitForm::RowMap => {
                let order = self.filter_order(&statics, filters, true)?;
                let split = Op::SplitDynConv2d {
                    spec,
                    statics: statics.len(),
                };
                return self.g.push1(split, &[x, alpha, wk, ws, order]);
            }
            SplitForm::MixedOutputs => self.mixed_outputs(x, alpha, wk, spec)?,
            SplitForm::BatchedStatic => self.g.push(Op::DynConv2d(spec), &[x, alpha, wk])?[0],
        };
        // The static filters as one batched convolution, the outputs put back in filter order.
        let static_part = self.batched_conv(x, ws, ws_geom)?;
        self.merge_filters(static_part, dynamic_part, &statics, filters)
    }

    /// One convolution shared by the batch, with `w` (any shape of `geom`'s weight size).
    fn batched_conv(&mut self, x: TensorId, w: TensorId, geom: ConvGeom) -> Result<TensorId> {
        let w = self.g.reshape(w, &geom.w_shape())?;
        self.g.push1(Op::Conv2d(geom), &[x, w])
    }

    /// The dynamic filters' outputs without a per-sample convolution: by linearity
    /// conv(x, Σ_k α_k W'_k) = Σ_k α_k conv(x, W'_k), so one batched convolution with the K·O_d
    /// filters of every W'_k, mixed by α: a batched [1, K] · [K, O_d·P] product per sample, or
    /// in training graphs α ⊙ outputs summed over k. Split PAD layers (`filter_split_conv`)
    /// and the mixed form of DY-Conv and PAD-Conv (`DyForm`) run here.
    fn mixed_outputs(
        &mut self,
        x: TensorId,
        alpha: TensorId,
        wk: TensorId,
        spec: DynSpec,
    ) -> Result<TensorId> {
        let (k, od) = (spec.k, spec.geom.o);
        let stacked = ConvGeom {
            o: k * od,
            ..spec.geom
        };
        let per_kernel = self.batched_conv(x, wk, stacked)?;
        let (b, positions) = (spec.geom.n, spec.geom.oh * spec.geom.ow);
        let per_kernel = self.g.reshape(per_kernel, &[b, k, od * positions])?;
        let mixed = if self.train {
            // α ⊙ outputs summed over k, not a product: the product's gradient would sum each
            // α_nk's O·P terms in one invocation, in order (a GEMM of one row), where `SumTo`
            // sums them in parts (the attention's gradients erred up to 20× PyTorch's f32
            // error as a product; docs/architecture.md, "Two forms of DY-Conv").
            let alpha = self.g.reshape(alpha, &[b, k, 1])?;
            let weighted = self.g.push1(Op::Mul, &[per_kernel, alpha])?;
            let sum = Op::Sum {
                start: 1,
                end: 2,
                mean: false,
                over_ranks: false,
            };
            self.g.push1(sum, &[weighted])?
        } else {
            let alpha = self.g.reshape(alpha, &[b, 1, k])?;
            self.g.matmul(alpha, per_kernel, false, false)?
        };
        self.g.reshape(mixed, &[b, od, spec.geom.oh, spec.geom.ow])
    }

    /// The channels of `static_part` (the filters `statics`) and `dynamic_part` (the filters
    /// `dynamic`), both ascending, put back in filter order (`Op::MergeChannels`).
    pub(crate) fn merge_filters(
        &mut self,
        static_part: TensorId,
        dynamic_part: TensorId,
        statics: &[usize],
        dynamic: &[usize],
    ) -> Result<TensorId> {
        let from = self.filter_order(statics, dynamic, false)?;
        self.g
            .push1(Op::MergeChannels, &[static_part, dynamic_part, from])
    }

    /// The constant `from` of `Op::MergeChannels`: output filter f comes from channel
    /// `from[f]` of [static filters, dynamic filters]; `with_inverse` appends the inverse
    /// (channel j is filter `filter_of[j]`), the [2, O] `order` of `Op::SplitDynConv2d`.
    fn filter_order(
        &mut self,
        statics: &[usize],
        dynamic: &[usize],
        with_inverse: bool,
    ) -> Result<TensorId> {
        let filter_of: Vec<usize> = statics.iter().chain(dynamic).copied().collect();
        let out = filter_of.len();
        let mut order = vec![0.0; out];
        for (j, &f) in filter_of.iter().enumerate() {
            order[f] = j as f32;
        }
        let mut shape = vec![out];
        if with_inverse {
            order.extend(filter_of.iter().map(|&f| f as f32));
            shape.insert(0, 2);
        }
        self.g.constant(&self.name("filter_order"), &shape, order)
    }
}

/// How a DY-Conv or PAD-Conv layer runs, in training and inference graphs alike
/// (docs/architecture.md, "Two forms of DY-Conv"). Per sample (the default): the kernels
/// Σ_k α_k W_k assembled for each sample, then a per-sample convolution (`Op::DynConv2d`).
/// Mixed outputs: by linearity conv(x, Σ_k α_k W_k) = Σ_k α_k conv(x, W_k), one batched
/// convolution with the K·O filters of every W_k whose outputs α mixes
/// (`Builder::mixed_outputs`) — K times the static layer's multiply-adds, but in the batched
/// kernels, with K times their workgroups, and no per-sample kernels in memory. Grouped
/// convolutions stay per sample (a stacked filter would leave its group), and so do IMP's
/// scoring graphs. Same parameters, same function: the forms only change the graph. The
/// mixed form's f32 gradients err more than the per-sample form's (likely a sum over the whole
/// batch's positions where the per-sample form sums each sample's first), so it is not the
/// default: a switch to measure on GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DyForm {
    PerSample,
    /// Mixed outputs in the layers of at most `max_positions` output positions per sample.
    MixedOutputs {
        max_positions: usize,
    },
}

impl DyForm {
    pub const ENV: &'static str = "PADNET_DY_FORM";

    /// `per-sample`, `mixed` (every layer) or `mixed:N` (layers of at most N output positions
    /// per sample, e.g. 16 for ResNet-18's 4×4 stage on 32×32 images).
    pub fn parse(text: &str) -> Result<DyForm> {
        let bad = || {
            Error::Invalid(format!(
                "{}={text}: expected per-sample, mixed, or mixed:N (N ≥ 1 output positions)",
                Self::ENV
            ))
        };
        match text.trim() {
            "per-sample" => Ok(DyForm::PerSample),
            "mixed" => Ok(DyForm::MixedOutputs {
                max_positions: usize::MAX,
            }),
            other => {
                let n = other.strip_prefix("mixed:").ok_or_else(bad)?;
                match n.parse::<usize>() {
                    Ok(max_positions) if max_positions >= 1 => {
                        Ok(DyForm::MixedOutputs { max_positions })
                    }
                    _ => Err(bad()),
                }
            }
        }
    }

    /// The form `PADNET_DY_FORM` names; per sample where it is unset.
    pub fn from_env() -> Result<DyForm> {
        match std::env::var(Self::ENV) {
            Ok(text) => Self::parse(&text),
            Err(_) => Ok(DyForm::PerSample),
        }
    }

    /// How bench records and labels name it.
    pub fn name(self) -> String {
        match self {
            DyForm::PerSample => "per-sample".into(),
            DyForm::MixedOutputs {
                max_positions: usize::MAX,
            } => "mixed".into(),
            DyForm::MixedOutputs { max_positions } => format!("mixed:{max_positions}"),
        }
    }

    /// Whether the layer of `geom` runs as mixed outputs.
    pub fn mixes(self, geom: &ConvGeom) -> bool {
        match self {
            DyForm::PerSample => false,
            DyForm::MixedOutputs { max_positions } => {
                geom.groups == 1 && geom.oh * geom.ow <= max_positions
            }
        }
    }
}

/// How a split layer with both static and dynamic filters runs (docs/method.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitForm {
    /// One per-sample convolution over all filters, the static ones reading W_S
    /// (`Op::SplitDynConv2d`).
    RowMap,
    /// A batched convolution with W_S and one with the K·O_d filters of every W'_k, the
    /// latter's outputs mixed by α (`Builder::mixed_outputs`).
    MixedOutputs,
    /// A batched convolution with W_S and a per-sample one over the dynamic filters
    /// (a DY-Conv).
    BatchedStatic,
}

impl SplitForm {
    pub const ALL: [SplitForm; 3] = [
        SplitForm::RowMap,
        SplitForm::MixedOutputs,
        SplitForm::BatchedStatic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SplitForm::RowMap => "row-map",
            SplitForm::MixedOutputs => "mixed-outputs",
            SplitForm::BatchedStatic => "batched-static",
        }
    }

    /// The cheapest form of a layer of `out` filters, `dynamic` of them dynamic, `k` kernels,
    /// `positions` output positions per sample and `taps` = kh·kw, by a cost model in units
    /// of the static layer's time fitted to lavapipe (`bench --suite infer --filter split`,
    /// docs/method.md §5): a per-sample convolution over all filters costs about 1.1× the
    /// batched one from 196 positions up and 1.85× below; one over only the few dynamic
    /// filters fills its register blocks worse (2.5× at 7×7, 3× from 14×14 up; 1.5× at 4×4,
    /// where it runs with samples as lanes, `conv::forward_call`; 13× before that);
    /// mixing K·O_d outputs costs K× their share; the channel merge and the α product about
    /// 0.2 of a 3×3 layer, as much per output of a 1×1 one, so 9× that share. Where the
    /// per-sample convolution runs as a sliding window (`windowed`: `conv::windowed_on_cpu`, 8
    /// samples or more), it costs what a batched one does, and the row map 1.05–1.15× the
    /// static layer (`results/lavapipe.json` at 8331b6c: 1.06 at 14×14, 1.02–1.19 at 7×7,
    /// 1.13–1.19 at 4×4), which no other form beat by more than 1 %.
    pub fn choose(
        out: usize,
        dynamic: usize,
        k: usize,
        (positions, taps): (usize, usize),
        windowed: bool,
    ) -> SplitForm {
        let d = dynamic as f64 / out as f64;
        let merge = 0.2 * 9.0 / taps.clamp(1, 9) as f64;
        let (row_map, thin) = match (positions, windowed) {
            (196.., false) => (1.1, 3.0),
            (17..196, false) => (1.85, 2.5),
            (_, false) => (1.85, 1.5),
            (196.., true) => (1.05, 3.0),
            (17..196, true) => (1.1, 2.5),
            (_, true) => (1.15, 1.5),
        };
        let costs = [
            (row_map, SplitForm::RowMap),
            (1.0 + (k - 1) as f64 * d + merge, SplitForm::MixedOutputs),
            (1.0 + (thin - 1.0) * d + merge, SplitForm::BatchedStatic),
        ];
        let cheapest = costs.iter().min_by(|a, b| a.0.total_cmp(&b.0));
        cheapest.expect("three forms").1
    }
}

/// The filters (or rows) of `0..out` not in `dynamic`: a split layer's static ones.
pub(crate) fn static_filters(out: usize, dynamic: &[usize]) -> Vec<usize> {
    (0..out).filter(|f| !dynamic.contains(f)).collect()
}

#[cfg(test)]
mod tests {
    use super::SplitForm;

    #[test]
    fn dy_forms_parse_name_and_pick_layers() {
        use super::DyForm;
        use crate::kernels::conv::{ConvGeom, ConvOpts};
        let geom = |hw: usize, groups: usize| {
            let opts = ConvOpts::k(3).pad(1).groups(groups);
            ConvGeom::new(&[2, 8, hw, hw], 8, opts).unwrap()
        };
        for text in ["per-sample", "mixed", "mixed:16"] {
            assert_eq!(DyForm::parse(text).unwrap().name(), text);
        }
        let small = DyForm::parse("mixed:16").unwrap();
        assert!(small.mixes(&geom(4, 1)));
        assert!(!small.mixes(&geom(8, 1)));
        assert!(!small.mixes(&geom(4, 8)), "grouped layers stay per sample");
        assert!(DyForm::parse("mixed").unwrap().mixes(&geom(32, 1)));
        assert!(!DyForm::PerSample.mixes(&geom(4, 1)));
        for bad in ["", "mixed:0", "mixed:x", "mixed16", "outputs"] {
            let e = DyForm::parse(bad).unwrap_err().to_string();
            assert!(e.contains("PADNET_DY_FORM"), "{e}");
        }
    }

    /// The forms `bench --suite infer --filter split` measured fastest on lavapipe (ResNet-18
    /// ×0.25's shapes, medians of the per-round ratio to the static layer, 4 rounds, 4
    /// December) are the ones the cost model picks.
    #[test]
    fn split_form_follows_the_measured_costs() {
        let cases = [
            // (filters, dynamic, positions, taps)
            ((32, 10, 196, 9), SplitForm::RowMap),
            ((64, 3, 49, 9), SplitForm::BatchedStatic),
            ((64, 9, 49, 9), SplitForm::BatchedStatic),
            ((64, 24, 49, 9), SplitForm::BatchedStatic),
            ((128, 6, 16, 9), SplitForm::BatchedStatic),
            ((128, 11, 16, 9), SplitForm::BatchedStatic),
            // 1×1 shortcut with most filters dynamic: the merge would cost more than it saves.
            ((64, 56, 49, 1), SplitForm::RowMap),
        ];
        for ((out, dynamic, positions, taps), want) in cases {
            let got = SplitForm::choose(out, dynamic, 4, (positions, taps), false);
            assert_eq!(
                got, want,
                "{dynamic}/{out} filters at {positions} positions"
            );
        }
    }

    /// With the sliding window (results/lavapipe.json at 8331b6c) the row map was fastest, or
    /// within 1 % of the fastest, at every shape of the test above.
    #[test]
    fn windowed_split_layers_take_the_row_map() {
        for (out, dynamic, positions) in [
            (32, 10, 196),
            (64, 3, 49),
            (64, 9, 49),
            (64, 24, 49),
            (128, 6, 16),
            (128, 11, 16),
        ] {
            let got = SplitForm::choose(out, dynamic, 4, (positions, 9), true);
            assert_eq!(got, SplitForm::RowMap, "{dynamic}/{out} at {positions}");
        }
    }
}

//! A mixture-of-experts linear layer (docs/method.md §1.3): Shazeer et al.'s noisy top-k gating
//! over E experts that are each one linear map. Tokens are routed to k experts, grouped per
//! expert, multiplied by one grouped GEMM, and combined weighted by their gates.
//!
//! Parameters, under the layer's name (`…output.dense`): `w_gate` and `w_noise` [d_in, E]
//! (zero-initialised), `experts.weight` [E, d_out, d_in] and `experts.bias` [E, d_out]
//! (checkpoints spell these `experts.{e}.weight` / `.bias`, see `checkpoint`). PAD-MoE adds
//! `weight` (the static weight), `mask` and `phi_d`, and the experts multiply by their
//! effective weights W~_e = λ_d M⊙W_e + λ_s (1−M)⊙W_s.

use super::dynamic::static_filters;
use super::pad::{leaf, PAD_MOE};
use super::Builder;
use crate::error::Result;
use crate::graph::op::Act;
use crate::graph::{Init, Op, TensorId};
use crate::kernels::dynconv::{Lambda, MixSpec};

/// Weight of the balance penalty, as the reference.
pub const AUX_WEIGHT: f32 = 0.01;
/// Floor of the noise scale σ = softplus(x·W_n) + 0.01.
const NOISE_FLOOR: f32 = 0.01;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeConfig {
    pub experts: usize,
    pub top_k: usize,
    /// PAD-MoE (docs/method.md §1.4) under this λ variant: the experts share a static weight
    /// `weight` [d_out, d_in], a mask `mask` (1 = dynamic) and a scalar `phi_d`.
    pub pad: Option<Lambda>,
    /// GShard's capacity factor: each expert takes at most ⌈factor · N·k / E⌉ of the N
    /// tokens of a batch (the first ones); the others skip it (their output from it is 0).
    /// `None`: no limit, as the reference.
    pub capacity_factor: Option<f32>,
}

impl MoeConfig {
    /// Most tokens one expert takes from a batch of `tokens`.
    pub fn capacity(&self, tokens: usize) -> usize {
        match self.capacity_factor {
            Some(f) => {
                let fair = (tokens * self.top_k) as f64 / self.experts as f64;
                ((f as f64 * fair).ceil() as usize).clamp(1, tokens)
            }
            None => tokens,
        }
    }
}

/// The layer's outputs: y [N, d_out] and its balance penalty [1]
/// (0.01·(cv²(importance) + cv²(load))).
pub struct MoeOut {
    pub y: TensorId,
    pub aux: TensorId,
}

/// MoE linear on x [N, d_in]. `token_mask` [N, 1] (1 = token, 0 = padding) keeps padding out
/// of the routing when given. Training graphs add the router noise (seeded by the graph's
/// step seed, as dropout); evaluation graphs route on the clean logits.
pub fn moe_linear(
    b: &mut Builder,
    name: &str,
    x: TensorId,
    d_out: usize,
    cfg: MoeConfig,
    token_mask: Option<TensorId>,
) -> Result<MoeOut> {
    let (n, d_in) = {
        let s = b.g.shape(x);
        (s[0], s[1])
    };
    let (e, k) = (cfg.experts, cfg.top_k);
    // A deploy file's PAD-MoE layer with whole dynamic rows (built as MoE, see `DeployFilters`).
    // Not under a capacity limit: a token an expert drops would still get the static rows.
    let split = match (&b.deploy_filters, cfg.pad, cfg.capacity_factor) {
        (Some(d), None, None) => d.of(&b.name(name), d_out),
        _ => None,
    };
    b.scope(name, |b| {
        let w_gate = b.g.param(&b.name("w_gate"), &[d_in, e], Init::Zeros);
        let w_noise = b.g.param(&b.name("w_noise"), &[d_in, e], Init::Zeros);
        let bound = 1.0 / (d_in as f32).sqrt();
        let d_dyn = split.as_ref().map_or(d_out, Vec::len);
        let experts = (d_dyn > 0).then(|| {
            let w = b.g.param(
                &b.name(leaf(PAD_MOE.dynamic)),
                &[e, d_dyn, d_in],
                Init::Uniform(bound),
            );
            let bias =
                b.g.param(&b.name("experts.bias"), &[e, d_dyn], Init::Uniform(bound));
            (w, bias)
        });
        let experts = match (experts, cfg.pad) {
            (Some((w, bias)), Some(lambda)) => {
                let ws = b.g.param(
                    &b.name(leaf(PAD_MOE.static_weight)),
                    &[d_out, d_in],
                    Init::Uniform(bound),
                );
                let mask =
                    b.g.state(&b.name(leaf(PAD_MOE.mask)), &[d_out, d_in], Init::Ones);
                let phi = b.g.param(&b.name("phi_d"), &[1], Init::Zeros);
                let spec = MixSpec {
                    experts: e,
                    n: d_out * d_in,
                    lambda,
                };
                Some((b.g.push1(Op::PadMix(spec), &[w, ws, mask, phi])?, bias))
            }
            (experts, _) => experts,
        };

        // Router: clean logits, and in training the noisy ones.
        let clean = b.g.matmul(x, w_gate, false, false)?;
        let noise = if b.train && k < e {
            let u = b.g.matmul(x, w_noise, false, false)?;
            let soft = b.act(u, Act::Softplus)?;
            let floor =
                b.g.constant(&b.name("noise_floor"), &[1], vec![NOISE_FLOOR])?;
            let sigma = b.add(soft, floor)?;
            let seed = b.step_seed();
            // Salted by the layer's name, so the noise of a layer is the same in every graph
            // (and reproducible outside, see tests/golden/make_moe_fixture.py).
            let salt = fnv1a(&b.name("router_noise"));
            let eps = b.g.push1(
                Op::RandomNormal {
                    shape: vec![n, e],
                    salt,
                },
                &[seed],
            )?;
            let scaled = b.g.push1(Op::Mul, &[eps, sigma])?;
            Some((b.add(clean, scaled)?, sigma))
        } else {
            None
        };
        let logits = noise.map_or(clean, |(noisy, _)| noisy);
        let mut gates = b.g.push1(Op::TopKGates { k }, &[logits])?;
        if let Some(m) = token_mask {
            gates = b.g.push1(Op::Mul, &[gates, m])?;
        }

        // Dispatch, expert GEMMs, combine (weighted by the gates, with the expert biases).
        let y = match experts {
            Some((w, bias)) => {
                let capacity = cfg.capacity(n);
                let route = b.g.push(Op::MoeRoute { k, capacity }, &[gates])?;
                let (order, slot_expert, token_slots, groups) =
                    (route[0], route[1], route[2], route[3]);
                let xs = b.g.push1(Op::MoeDispatch, &[x, order, token_slots])?;
                let grouped = Op::GroupedMatMul {
                    trans_a: false,
                    trans_b: true,
                    by_k: false,
                };
                let ys = b.g.push1(grouped, &[xs, w, groups])?;
                Some(b.g.push1(
                    Op::MoeCombine { weighted: true },
                    &[ys, token_slots, order, gates, slot_expert, bias, groups],
                )?)
            }
            None => None,
        };
        let y = match split {
            None => y.expect("a MoE layer has rows"),
            Some(rows) => static_rows(b, x, gates, y, &rows, d_out)?,
        };

        // Balance penalty: cv² of the importance (Σ gates) and of the smooth load. Without
        // noise the reference's load is a count of routed tokens, constant in every
        // parameter; it is left out (the loss value differs, no gradient does). Both sums span
        // the global batch of data-parallel ranks.
        let sum_tokens = |b: &mut Builder, t| {
            b.g.push1(
                Op::Sum {
                    start: 0,
                    end: 1,
                    mean: false,
                    over_ranks: true,
                },
                &[t],
            )
        };
        let importance = sum_tokens(b, gates)?;
        let mut aux = b.g.push1(Op::CvSquared, &[importance])?;
        if let Some((noisy, sigma)) = noise {
            let mut p = b.g.push1(Op::MoeLoadProb { k }, &[clean, noisy, sigma])?;
            if let Some(m) = token_mask {
                p = b.g.push1(Op::Mul, &[p, m])?;
            }
            let load = sum_tokens(b, p)?;
            let cv = b.g.push1(Op::CvSquared, &[load])?;
            aux = b.add(aux, cv)?;
        }
        // N ranks average their gradients, and each rank's penalty (of the global sums) already
        // gives its tokens their full share: weighting it N times undoes the average.
        let aux = b.g.push1(Op::Scale(AUX_WEIGHT * b.ranks as f32), &[aux])?;
        Ok(MoeOut { y, aux })
    })
}

/// A deploy file's layer with whole dynamic rows `rows` (ascending; docs/method.md §5): the
/// other rows are static, W_S's, the same for every expert, so they are one GEMM of every
/// token, x·W_Sᵀ, plus the gate-weighted expert biases G·B_S (a token's gates sum to 1, so
/// Σ_e g_e (x·W_S,rᵀ + b_e,r) is that; padding tokens, whose gates are 0, get x·W_Sᵀ instead
/// of 0, which no real token's output depends on). `y_dynamic` [N, |rows|] is the experts'
/// output over the dynamic rows; the result [N, d_out] puts every row back in its place.
fn static_rows(
    b: &mut Builder,
    x: TensorId,
    gates: TensorId,
    y_dynamic: Option<TensorId>,
    rows: &[usize],
    d_out: usize,
) -> Result<TensorId> {
    let (n, d_in) = {
        let s = b.g.shape(x);
        (s[0], s[1])
    };
    let e = b.g.shape(gates)[1];
    let statics = static_filters(d_out, rows);
    if statics.is_empty() {
        return Ok(y_dynamic.expect("a layer has rows"));
    }
    let ws = b.g.param(
        &b.name(leaf(PAD_MOE.static_weight)),
        &[statics.len(), d_in],
        Init::Zeros,
    );
    let bs =
        b.g.param(&b.name(STATIC_BIAS), &[e, statics.len()], Init::Zeros);
    let shared = b.g.matmul(x, ws, false, true)?;
    let biases = b.g.matmul(gates, bs, false, false)?;
    let y_static = b.add(shared, biases)?;
    let Some(y_dynamic) = y_dynamic else {
        return Ok(y_static);
    };
    // Rows merged as the channels of [N, rows, 1, 1] tensors.
    let as_channels = |b: &mut Builder, t: TensorId| {
        let c = b.g.shape(t)[1];
        b.g.reshape(t, &[n, c, 1, 1])
    };
    let (ys, yd) = (as_channels(b, y_static)?, as_channels(b, y_dynamic)?);
    let y = b.merge_filters(ys, yd, &statics, rows)?;
    b.g.reshape(y, &[n, d_out])
}

/// A split layer's expert biases on its static rows, [E, d_out − |rows|] (see `static_rows`).
pub const STATIC_BIAS: &str = "static_bias";

/// 32-bit FNV-1a of a name (a stable salt for the router noise).
pub fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c9dc5u32, |h, c| {
        (h ^ c as u32).wrapping_mul(0x01000193)
    })
}

//! BERT encoder (Hugging Face `BertModel` layout and tensor names, no prefix): embeddings
//! (word + position + token type, LayerNorm), `num_hidden_layers` × (self-attention with the
//! padding mask, output projection + residual + LayerNorm, erf-GELU FFN + residual +
//! LayerNorm), and the tanh pooler on the first token. Reads `config.json`. Training graphs
//! apply dropout where Hugging Face does (embeddings, attention probabilities, each
//! sublayer's output).

use crate::error::{Error, Result};
use crate::executor::Executable;
use crate::graph::op::Act;
use crate::graph::{DType, Init, Op, TensorId};
use crate::nn::moe::{moe_linear, MoeConfig};
use crate::nn::Builder;
use serde::Deserialize;
use std::path::Path;

#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "ln_eps")]
    pub layer_norm_eps: f32,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// Dropout after the embeddings, each sublayer and on the pooled output (training only).
    #[serde(default = "dropout")]
    pub hidden_dropout_prob: f32,
    /// Dropout on the attention probabilities (training only).
    #[serde(default = "dropout")]
    pub attention_probs_dropout_prob: f32,
}

fn dropout() -> f32 {
    0.1
}

fn two() -> usize {
    2
}
fn ln_eps() -> f32 {
    1e-12
}
fn gelu() -> String {
    "gelu".into()
}

impl BertConfig {
    /// all-MiniLM-L6-v2's configuration (for benchmarks without the checkpoint at hand).
    pub fn minilm_l6() -> Self {
        BertConfig {
            vocab_size: 30522,
            hidden_size: 384,
            num_hidden_layers: 6,
            num_attention_heads: 12,
            intermediate_size: 1536,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
        }
    }

    /// Reads and checks a Hugging Face `config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and checks config JSON; `origin` names where it came from in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let c: BertConfig = serde_json::from_str(text)
            .map_err(|e| Error::data(origin, format!("not a BERT config: {e}")))?;
        for (name, n) in [
            ("vocab_size", c.vocab_size),
            ("hidden_size", c.hidden_size),
            ("num_hidden_layers", c.num_hidden_layers),
            ("num_attention_heads", c.num_attention_heads),
            ("intermediate_size", c.intermediate_size),
            ("max_position_embeddings", c.max_position_embeddings),
            ("type_vocab_size", c.type_vocab_size),
        ] {
            if n == 0 {
                return Err(Error::data(
                    origin,
                    format!("{name} is 0; it must be at least 1"),
                ));
            }
        }
        if !(c.layer_norm_eps.is_finite() && c.layer_norm_eps > 0.0) {
            return Err(Error::data(
                origin,
                format!(
                    "layer_norm_eps {} must be a finite number > 0",
                    c.layer_norm_eps
                ),
            ));
        }
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(Error::data(
                origin,
                format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    c.hidden_size, c.num_attention_heads
                ),
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", c.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                c.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::data(origin, format!("{name} {p} is not in [0, 1)")));
            }
        }
        if c.hidden_act != "gelu" {
            return Err(Error::data(
                origin,
                format!(
                    "hidden_act '{}' unsupported (only erf 'gelu')",
                    c.hidden_act
                ),
            ));
        }
        Ok(c)
    }
}

/// The graph inputs of a BERT batch `[B, L]`.
pub struct BertInputs {
    pub input_ids: TensorId,
    pub token_type_ids: TensorId,
    pub position_ids: TensorId,
    /// Additive attention mask [B, 1, 1, L]: 0 for tokens, a large negative value for padding.
    pub mask_bias: TensorId,
    /// Row of each sequence's first token in the flattened [B·L] batch: `b·L` (u32 [B]).
    pub cls_rows: TensorId,
    /// 1 for tokens, 0 for padding, [B·L, 1] (keeps padding out of MoE routing; present only
    /// when [`BertInputs::with_token_mask`] asked for it).
    pub token_mask: Option<TensorId>,
}

/// Value added to the attention scores of padding positions.
pub const MASK_NEG: f32 = -1e30;

impl BertInputs {
    pub fn new(b: &mut Builder, batch: usize, len: usize) -> Self {
        BertInputs {
            input_ids: b.g.input("input_ids", &[batch, len], DType::U32),
            token_type_ids: b.g.input("token_type_ids", &[batch, len], DType::U32),
            position_ids: b.g.input("position_ids", &[batch, len], DType::U32),
            mask_bias: b
                .g
                .input("attention_mask_bias", &[batch, 1, 1, len], DType::F32),
            cls_rows: b.g.input("cls_rows", &[batch], DType::U32),
            token_mask: None,
        }
    }

    /// Adds the [B·L, 1] token mask input.
    pub fn with_token_mask(mut self, b: &mut Builder) -> Self {
        let [batch, len] = [0, 1].map(|i| b.g.shape(self.input_ids)[i]);
        self.token_mask = Some(b.g.input("token_mask", &[batch * len, 1], DType::F32));
        self
    }
}

/// Host values of a tokenized batch for [`BertInputs`].
pub struct BertFeed {
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    pub position_ids: Vec<u32>,
    pub mask_bias: Vec<f32>,
    pub cls_rows: Vec<u32>,
    pub token_mask: Vec<f32>,
}

impl BertFeed {
    /// From row-major [B, L] token ids, segment ids and attention mask (1 = token, 0 = padding).
    pub fn new(
        input_ids: Vec<u32>,
        token_type_ids: Vec<u32>,
        attention_mask: &[u32],
        len: usize,
    ) -> Self {
        let batch = input_ids.len() / len;
        BertFeed {
            position_ids: (0..batch).flat_map(|_| 0..len as u32).collect(),
            mask_bias: attention_mask
                .iter()
                .map(|&m| if m == 0 { MASK_NEG } else { 0.0 })
                .collect(),
            cls_rows: (0..batch).map(|i| (i * len) as u32).collect(),
            token_mask: attention_mask
                .iter()
                .map(|&m| (m != 0) as u8 as f32)
                .collect(),
            input_ids,
            token_type_ids,
        }
    }

    pub fn write(&self, inp: &BertInputs, exe: &Executable) -> Result<()> {
        exe.write_u32(inp.input_ids, &self.input_ids)?;
        exe.write_u32(inp.token_type_ids, &self.token_type_ids)?;
        exe.write_u32(inp.position_ids, &self.position_ids)?;
        exe.write(inp.mask_bias, &self.mask_bias)?;
        if let Some(t) = inp.token_mask {
            exe.write(t, &self.token_mask)?;
        }
        exe.write_u32(inp.cls_rows, &self.cls_rows)
    }
}

fn layer_norm(b: &mut Builder, name: &str, x: TensorId, eps: f32) -> Result<TensorId> {
    let d = *b.g.shape(x).last().expect("hidden axis");
    let gamma =
        b.g.param(&b.name(&format!("{name}.weight")), &[d], Init::Ones);
    let beta =
        b.g.param(&b.name(&format!("{name}.bias")), &[d], Init::Zeros);
    Ok(b.g.push(Op::LayerNorm { eps }, &[x, gamma, beta])?[0])
}

fn embedding(
    b: &mut Builder,
    name: &str,
    ids: TensorId,
    rows: usize,
    d: usize,
) -> Result<TensorId> {
    let table = b.g.param(
        &b.name(&format!("{name}.weight")),
        &[rows, d],
        Init::Normal(0.02),
    );
    b.g.push1(Op::Embedding, &[table, ids])
}

/// Which FFN linear layers become mixtures of experts (docs/method.md §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MoePosition {
    /// `output.dense` (the FFN's output projection; the reference's experiments).
    Out,
    /// `intermediate.dense`.
    Int,
    Both,
}

impl crate::names::Named for MoePosition {
    const WHAT: &'static str = "MoE position";
}

impl MoePosition {
    fn has(self, out: bool) -> bool {
        self == MoePosition::Both || (self == MoePosition::Out) == out
    }
}

/// MoE settings of an encoder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BertMoe {
    pub position: MoePosition,
    pub config: MoeConfig,
}

/// What [`build_with`] returns.
pub struct BertOut {
    /// Last hidden state [B, L, D].
    pub hidden: TensorId,
    /// Pooled output [B, D].
    pub pooled: TensorId,
    /// Balance penalty of every MoE layer ([1] each), to add to the loss.
    pub aux: Vec<TensorId>,
}

/// Builds the dense encoder; returns (last hidden state [B, L, D], pooled output [B, D]).
pub fn build(b: &mut Builder, cfg: &BertConfig, inp: &BertInputs) -> Result<(TensorId, TensorId)> {
    let out = build_with(b, cfg, inp, None)?;
    Ok((out.hidden, out.pooled))
}

/// A linear layer of the FFN: dense, or a mixture of experts over the [B·L] tokens.
fn ffn_linear(
    b: &mut Builder,
    x: TensorId,
    out: usize,
    moe: Option<MoeConfig>,
    inp: &BertInputs,
    aux: &mut Vec<TensorId>,
) -> Result<TensorId> {
    let Some(cfg) = moe else {
        return b.linear("dense", x, out, true);
    };
    let s = b.g.shape(x).to_vec();
    let tokens = b.g.reshape(x, &[s[0] * s[1], s[2]])?;
    let m = moe_linear(b, "dense", tokens, out, cfg, inp.token_mask)?;
    aux.push(m.aux);
    b.g.reshape(m.y, &[s[0], s[1], out])
}

/// Builds the encoder, with MoE FFN layers when `moe` is given.
pub fn build_with(
    b: &mut Builder,
    cfg: &BertConfig,
    inp: &BertInputs,
    moe: Option<BertMoe>,
) -> Result<BertOut> {
    let mut aux = vec![];
    let moe_at = |out: bool| moe.filter(|m| m.position.has(out)).map(|m| m.config);
    let s = b.g.shape(inp.input_ids).to_vec();
    let (batch, len, d) = (s[0], s[1], cfg.hidden_size);
    let (heads, dh) = (
        cfg.num_attention_heads,
        cfg.hidden_size / cfg.num_attention_heads,
    );
    let eps = cfg.layer_norm_eps;
    let mut h = b.scope("embeddings", |b| {
        let w = embedding(b, "word_embeddings", inp.input_ids, cfg.vocab_size, d)?;
        let p = embedding(
            b,
            "position_embeddings",
            inp.position_ids,
            cfg.max_position_embeddings,
            d,
        )?;
        let t = embedding(
            b,
            "token_type_embeddings",
            inp.token_type_ids,
            cfg.type_vocab_size,
            d,
        )?;
        let sum = b.add(w, p)?;
        let sum = b.add(sum, t)?;
        let h = layer_norm(b, "LayerNorm", sum, eps)?;
        b.dropout(h, cfg.hidden_dropout_prob)
    })?;
    let scale = 1.0 / (dh as f32).sqrt();
    for i in 0..cfg.num_hidden_layers {
        h = b.scope("encoder", |b| {
            b.scope("layer", |b| {
                b.scope(&i.to_string(), |b| {
                    let attn = b.scope("attention", |b| {
                        let ctx = b.scope("self", |b| {
                            // [B, L, D] -> [B, H, L, dh]
                            let heads_of = |b: &mut Builder, name: &str| -> Result<TensorId> {
                                let y = b.linear(name, h, d, true)?;
                                let y = b.g.reshape(y, &[batch, len, heads, dh])?;
                                b.g.push1(
                                    Op::Permute {
                                        perm: vec![0, 2, 1, 3],
                                    },
                                    &[y],
                                )
                            };
                            let q = heads_of(b, "query")?;
                            let k = heads_of(b, "key")?;
                            let v = heads_of(b, "value")?;
                            let scores = b.g.matmul(q, k, false, true)?; // [B, H, L, L]
                            let scores = b.g.push1(Op::Scale(scale), &[scores])?;
                            let scores = b.g.push1(Op::Add, &[scores, inp.mask_bias])?;
                            let probs = b.g.push1(Op::Softmax, &[scores])?;
                            let probs = b.dropout(probs, cfg.attention_probs_dropout_prob)?;
                            let ctx = b.g.matmul(probs, v, false, false)?; // [B, H, L, dh]
                            let ctx = b.g.push1(
                                Op::Permute {
                                    perm: vec![0, 2, 1, 3],
                                },
                                &[ctx],
                            )?;
                            b.g.reshape(ctx, &[batch, len, d])
                        })?;
                        b.scope("output", |b| {
                            let o = b.linear("dense", ctx, d, true)?;
                            let o = b.dropout(o, cfg.hidden_dropout_prob)?;
                            let o = b.add(o, h)?;
                            layer_norm(b, "LayerNorm", o, eps)
                        })
                    })?;
                    let inter = b.scope("intermediate", |b| {
                        let size = cfg.intermediate_size;
                        let y = ffn_linear(b, attn, size, moe_at(false), inp, &mut aux)?;
                        b.act(y, Act::Gelu)
                    })?;
                    b.scope("output", |b| {
                        let o = ffn_linear(b, inter, d, moe_at(true), inp, &mut aux)?;
                        let o = b.dropout(o, cfg.hidden_dropout_prob)?;
                        let o = b.add(o, attn)?;
                        layer_norm(b, "LayerNorm", o, eps)
                    })
                })
            })
        })?;
    }
    // Pooler: tanh(dense(h[:, 0])); the first tokens are gathered as rows of [B·L, D].
    let rows = b.g.reshape(h, &[batch * len, d])?;
    let first = b.g.push1(Op::Embedding, &[rows, inp.cls_rows])?;
    let pooled = b.scope("pooler", |b| {
        let y = b.linear("dense", first, d, true)?;
        b.act(y, Act::Tanh)
    })?;
    Ok(BertOut {
        hidden: h,
        pooled,
        aux,
    })
}

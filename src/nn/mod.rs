//! Layers, as graph-building functions with PyTorch parameter names and initialisation.
//! A `Builder` carries the graph, whether it is built for training, the dynamic-layer
//! settings, and a name prefix.

pub mod dynamic;
pub mod moe;
pub mod pad;

use crate::error::Result;
use crate::graph::op::Act;
use crate::graph::{Graph, Init, Op, TensorId};
use crate::kernels::conv::{ConvGeom, ConvOpts};
use crate::kernels::pool::PoolGeom;

/// Name of the u32 [2] graph input that seeds every dropout mask (and the MoE router noise) of
/// a step: [`step_seed`].
pub const DROPOUT_SEED: &str = "dropout_seed";

/// The values of [`DROPOUT_SEED`]: the step's seed, and this rank's index in its data-parallel
/// group. Rank r draws the elements r·n … (r+1)·n − 1 of the global batch's tensor (n = its
/// own tensor's size), so N ranks of batch B draw what one rank of batch N·B draws
/// (docs/distributed.md).
pub fn step_seed(seed: u32, rank: usize) -> [u32; 2] {
    [seed, rank as u32]
}

pub struct Builder<'g> {
    pub g: &'g mut Graph,
    /// Training graphs use batch statistics in BatchNorm and update the running ones.
    pub train: bool,
    /// How block convolutions are built (static, DY-Conv, PAD-Conv).
    pub dynamic: dynamic::DynConfig,
    /// Deploy files with whole dynamic filters: which PAD layers split (see `DeployFilters`).
    pub deploy_filters: Option<dynamic::DeployFilters>,
    /// How split layers run; None: chosen per layer (`dynamic::SplitForm::choose`).
    pub split_form: Option<dynamic::SplitForm>,
    /// How DY-Conv and PAD-Conv layers run; None: as `PADNET_DY_FORM` says (`dynamic::DyForm`,
    /// read at the first such layer and kept here).
    pub dy_form: Option<dynamic::DyForm>,
    /// The data-parallel ranks the graph trains on (1 alone): terms of the loss computed from
    /// sums over every rank's batch (MoE balance) are weighted by it (docs/distributed.md).
    pub ranks: usize,
    prefix: Vec<String>,
}

impl<'g> Builder<'g> {
    pub fn new(g: &'g mut Graph, train: bool) -> Self {
        Builder {
            g,
            train,
            dynamic: dynamic::DynConfig::default(),
            deploy_filters: None,
            split_form: None,
            dy_form: None,
            ranks: 1,
            prefix: vec![],
        }
    }

    /// Full parameter name of `leaf` under the current prefix ("layer1.0.conv1.weight").
    pub fn name(&self, leaf: &str) -> String {
        let mut parts = self.prefix.clone();
        parts.push(leaf.to_string());
        parts.join(".")
    }

    /// Runs `f` with `part` appended to the name prefix.
    pub fn scope<T>(&mut self, part: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.prefix.push(part.to_string());
        let r = f(self);
        self.prefix.pop();
        r
    }

    pub fn shape(&self, t: TensorId) -> Vec<usize> {
        self.g.shape(t).to_vec()
    }

    /// `nn.Conv2d(c, out, k, stride, padding, dilation, groups, bias)`, weight He-normal with
    /// fan-out (std = sqrt(2 / (k·k·out))), as the PAD-Net reference initialises convolutions.
    pub fn conv2d(
        &mut self,
        name: &str,
        x: TensorId,
        out: usize,
        opts: ConvOpts,
        bias: bool,
    ) -> Result<TensorId> {
        let geom = ConvGeom::new(self.g.shape(x), out, opts)?;
        let std = (2.0 / (geom.kh * geom.kw * out) as f32).sqrt();
        let (wname, bname) = (
            self.name(&format!("{name}.weight")),
            self.name(&format!("{name}.bias")),
        );
        let w = self.g.param(&wname, &geom.w_shape(), Init::Normal(std));
        let y = self.g.push1(Op::Conv2d(geom), &[x, w])?;
        if bias {
            let b = self.g.param(&bname, &[out], Init::Zeros);
            return self.g.push1(Op::BiasAdd, &[y, b]);
        }
        Ok(y)
    }

    /// `nn.BatchNorm2d` / `nn.BatchNorm1d` (eps 1e-5, momentum 0.1).
    pub fn batchnorm(&mut self, name: &str, x: TensorId) -> Result<TensorId> {
        self.batchnorm_act(name, x, None)
    }

    /// BatchNorm followed by `act` (ReLU or ReLU6), fused into the same kernels.
    pub fn batchnorm_act(&mut self, name: &str, x: TensorId, act: Option<Act>) -> Result<TensorId> {
        let c = self.g.shape(x)[1];
        let n = |s: &str| self.name(&format!("{name}.{s}"));
        let (wn, bn, mn, vn) = (n("weight"), n("bias"), n("running_mean"), n("running_var"));
        let gamma = self.g.param(&wn, &[c], Init::Ones);
        let beta = self.g.param(&bn, &[c], Init::Zeros);
        let rm = self.g.state(&mn, &[c], Init::Zeros);
        let rv = self.g.state(&vn, &[c], Init::Ones);
        let op = Op::BatchNorm {
            eps: 1e-5,
            momentum: 0.1,
            train: self.train,
            act,
        };
        Ok(self.g.push(op, &[x, gamma, beta, rm, rv])?[0])
    }

    /// `nn.Linear(in, out)` on the last axis of x (any rank): weight [out, in] and bias
    /// U(±1/√in), as PyTorch initialises it.
    pub fn linear(&mut self, name: &str, x: TensorId, out: usize, bias: bool) -> Result<TensorId> {
        let inp = *self
            .g
            .shape(x)
            .last()
            .expect("linear input has a feature axis");
        let bound = 1.0 / (inp as f32).sqrt();
        let (wname, bname) = (
            self.name(&format!("{name}.weight")),
            self.name(&format!("{name}.bias")),
        );
        let w = self.g.param(&wname, &[out, inp], Init::Uniform(bound));
        let y = self.g.matmul(x, w, false, true)?;
        if bias {
            let b = self.g.param(&bname, &[out], Init::Uniform(bound));
            // The bias broadcasts over every leading axis.
            return self.g.push1(Op::Add, &[y, b]);
        }
        Ok(y)
    }

    pub fn act(&mut self, x: TensorId, act: Act) -> Result<TensorId> {
        self.g.push1(Op::Unary(act), &[x])
    }

    pub fn relu(&mut self, x: TensorId) -> Result<TensorId> {
        self.act(x, Act::Relu)
    }

    pub fn max_pool(
        &mut self,
        x: TensorId,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<TensorId> {
        let geom = PoolGeom::new(self.g.shape(x), k, stride, pad)?;
        Ok(self.g.push(Op::MaxPool2d(geom), &[x])?[0])
    }

    pub fn avg_pool(
        &mut self,
        x: TensorId,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<TensorId> {
        let geom = PoolGeom::new(self.g.shape(x), k, stride, pad)?;
        self.g.push1(Op::AvgPool2d(geom), &[x])
    }

    /// [N, C, H, W] → [N, C].
    pub fn global_avg_pool(&mut self, x: TensorId) -> Result<TensorId> {
        self.g.push1(
            Op::Sum {
                start: 2,
                end: 4,
                mean: true,
                over_ranks: false,
            },
            &[x],
        )
    }

    /// [N, ...] → [N, prod(...)].
    pub fn flatten(&mut self, x: TensorId) -> Result<TensorId> {
        let s = self.shape(x);
        let rest = s[1..].iter().product();
        self.g.reshape(x, &[s[0], rest])
    }

    /// Dropout with probability `p` in training graphs (identity in evaluation graphs or at
    /// p = 0). All sites share the graph input [`DROPOUT_SEED`], which the trainer sets each
    /// step; each site hashes its own salt (its node index, the same in every graph built the
    /// same way).
    pub fn dropout(&mut self, x: TensorId, p: f32) -> Result<TensorId> {
        if !self.train || p == 0.0 {
            return Ok(x);
        }
        let seed = self.step_seed();
        let salt = self.g.nodes.len() as u32;
        self.g.push1(Op::Dropout { p, salt }, &[x, seed])
    }

    /// The graph input [`DROPOUT_SEED`] (created on first use): randomness that changes every
    /// step (dropout masks, MoE router noise), as [`step_seed`].
    pub fn step_seed(&mut self) -> TensorId {
        match self.g.find(DROPOUT_SEED) {
            Some(t) => t,
            None => self.g.input(DROPOUT_SEED, &[2], crate::graph::DType::U32),
        }
    }

    pub fn add(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.g.push1(Op::Add, &[a, b])
    }
}

//! Parameter types of the ops (IR): convolution and pooling geometry, the DY-Conv / PAD-Conv
//! and PAD-MoE specs, the λ variants; with their shape rules. How a kernel launches them is
//! the kernel layer's business (`kernels::*`).

use super::Tensor;
use crate::error::{Error, Result};

/// Static geometry of a convolution (NCHW input, OIHW weight; PyTorch conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub pad: (usize, usize),
    pub dil: (usize, usize),
    pub groups: usize,
    pub oh: usize,
    pub ow: usize,
}

/// Square-kernel convenience options, as `nn.Conv2d(c, o, k, stride, padding, dilation, groups)`.
#[derive(Clone, Copy, Debug)]
pub struct ConvOpts {
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub dil: usize,
    pub groups: usize,
}

impl ConvOpts {
    pub fn k(k: usize) -> Self {
        ConvOpts {
            k,
            stride: 1,
            pad: 0,
            dil: 1,
            groups: 1,
        }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }
    pub fn pad(mut self, p: usize) -> Self {
        self.pad = p;
        self
    }
    pub fn dil(mut self, d: usize) -> Self {
        self.dil = d;
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

impl ConvGeom {
    pub fn new(x: &[usize], o: usize, opts: ConvOpts) -> Result<Self> {
        Self::new2d(
            x,
            o,
            (opts.k, opts.k),
            (opts.stride, opts.stride),
            (opts.pad, opts.pad),
            (opts.dil, opts.dil),
            opts.groups,
        )
    }

    pub fn new2d(
        x: &[usize],
        o: usize,
        k: (usize, usize),
        stride: (usize, usize),
        pad: (usize, usize),
        dil: (usize, usize),
        groups: usize,
    ) -> Result<Self> {
        let err = |m: String| Error::shape("conv2d", m);
        if x.len() != 4 {
            return Err(err(format!("input {x:?} is not NCHW")));
        }
        let (n, c, h, w) = (x[0], x[1], x[2], x[3]);
        if groups == 0 || !c.is_multiple_of(groups) || !o.is_multiple_of(groups) || o == 0 {
            return Err(err(format!(
                "groups {groups} must divide in {c} and out {o} channels"
            )));
        }
        if stride.0 == 0 || stride.1 == 0 || dil.0 == 0 || dil.1 == 0 || k.0 == 0 || k.1 == 0 {
            return Err(err(format!(
                "kernel {k:?}, stride {stride:?}, dilation {dil:?} must be ≥ 1"
            )));
        }
        let span_h = dil.0 * (k.0 - 1) + 1;
        let span_w = dil.1 * (k.1 - 1) + 1;
        if h + 2 * pad.0 < span_h || w + 2 * pad.1 < span_w {
            return Err(err(format!("input {x:?} with padding {pad:?} is smaller than the kernel span ({span_h}, {span_w})")));
        }
        let oh = (h + 2 * pad.0 - span_h) / stride.0 + 1;
        let ow = (w + 2 * pad.1 - span_w) / stride.1 + 1;
        Ok(ConvGeom {
            n,
            c,
            h,
            w,
            o,
            kh: k.0,
            kw: k.1,
            stride,
            pad,
            dil,
            groups,
            oh,
            ow,
        })
    }

    pub fn x_shape(&self) -> Vec<usize> {
        vec![self.n, self.c, self.h, self.w]
    }
    pub fn w_shape(&self) -> Vec<usize> {
        vec![self.o, self.c / self.groups, self.kh, self.kw]
    }
    pub fn y_shape(&self) -> Vec<usize> {
        vec![self.n, self.o, self.oh, self.ow]
    }
    /// Multiply-accumulates of the forward pass (each backward pass costs the same).
    pub fn macs(&self) -> u64 {
        (self.n * self.o * self.oh * self.ow * (self.c / self.groups) * self.kh * self.kw) as u64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: (usize, usize),
    pub stride: (usize, usize),
    pub pad: (usize, usize),
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    /// As `nn.MaxPool2d(k, stride, padding)` / `nn.AvgPool2d`, floor mode.
    pub fn new(x: &[usize], k: usize, stride: usize, pad: usize) -> Result<Self> {
        let err = |m: String| Error::shape("pool2d", m);
        if x.len() != 4 {
            return Err(err(format!("input {x:?} is not NCHW")));
        }
        if k == 0 || stride == 0 || 2 * pad > k {
            return Err(err(format!(
                "kernel {k}, stride {stride}, padding {pad}: need k, stride ≥ 1 and padding ≤ k/2"
            )));
        }
        let (h, w) = (x[2], x[3]);
        if h + 2 * pad < k || w + 2 * pad < k {
            return Err(err(format!(
                "input {x:?} is smaller than the {k}x{k} window"
            )));
        }
        Ok(PoolGeom {
            n: x[0],
            c: x[1],
            h,
            w,
            k: (k, k),
            stride: (stride, stride),
            pad: (pad, pad),
            oh: (h + 2 * pad - k) / stride + 1,
            ow: (w + 2 * pad - k) / stride + 1,
        })
    }
    pub fn x_shape(&self) -> Vec<usize> {
        vec![self.n, self.c, self.h, self.w]
    }
    pub fn y_shape(&self) -> Vec<usize> {
        vec![self.n, self.c, self.oh, self.ow]
    }
}

/// How the scale factors λ_d, λ_s derive from the layer's scalar φ.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Lambda {
    /// λ_d = 2σ(φ), λ_s = 2 − λ_d.
    Both,
    /// λ_d = 1, λ_s = 2 − 2σ(φ).
    S,
    /// λ_d = 2σ(φ), λ_s = 1.
    D,
    /// λ_d = λ_s = 1 (φ unused).
    None,
    /// Pure pruning, no static part: λ_d = 1, λ_s = 0 (φ and the static weight unused).
    P,
}

impl crate::names::Named for Lambda {
    const WHAT: &'static str = "λ variant";
}

impl Lambda {
    /// (λ_d, λ_s, dλ_d/dφ, dλ_s/dφ) at φ.
    pub fn eval(self, phi: f64) -> (f64, f64, f64, f64) {
        let s = 1.0 / (1.0 + (-phi).exp());
        let ds = 2.0 * s * (1.0 - s);
        match self {
            Lambda::Both => (2.0 * s, 2.0 - 2.0 * s, ds, -ds),
            Lambda::S => (1.0, 2.0 - 2.0 * s, 0.0, -ds),
            Lambda::D => (2.0 * s, 1.0, ds, 0.0),
            Lambda::None => (1.0, 1.0, 0.0, 0.0),
            Lambda::P => (1.0, 0.0, 0.0, 0.0),
        }
    }
}

/// A dynamic convolution: `k` kernels mixed per sample; `pad` adds the mask, the static kernel
/// and the scale factors of PAD-Net.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DynSpec {
    pub geom: ConvGeom,
    pub k: usize,
    pub pad: bool,
    pub lambda: Lambda,
    /// Most samples whose per-sample weight gradients live at once in the backward pass
    /// (0: as many as fit in 96 MiB).
    pub max_chunk: usize,
}

impl DynSpec {
    /// Elements of one kernel.
    pub fn n(&self) -> usize {
        self.geom.w_shape().iter().product()
    }
    pub fn kernels_shape(&self) -> Vec<usize> {
        let mut s = vec![self.k];
        s.extend(self.geom.w_shape());
        s
    }
    /// The whole layer of a split PAD-Conv (`Op::SplitDynConv2d`) whose dynamic filters are
    /// this DY-Conv's, with `statics` static filters besides.
    pub fn split_geom(&self, statics: usize) -> ConvGeom {
        ConvGeom {
            o: self.geom.o + statics,
            ..self.geom
        }
    }
    /// Shape of the static kernel and of the mask: `[1, O, C/g, kh, kw]`.
    pub fn static_shape(&self) -> Vec<usize> {
        let mut s = vec![1];
        s.extend(self.geom.w_shape());
        s
    }
    /// Expected input shapes of the forward op, in order.
    pub fn input_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let mut v = vec![
            ("input", self.geom.x_shape()),
            ("alpha", vec![self.geom.n, self.k]),
            ("kernels", self.kernels_shape()),
        ];
        if self.pad {
            v.push(("static weight", self.static_shape()));
            v.push(("mask", self.static_shape()));
            v.push(("phi", vec![1]));
        }
        v
    }

    pub fn check_inputs(
        &self,
        op: &str,
        ins: &[&Tensor],
        extra: &[(&'static str, Vec<usize>)],
    ) -> Result<()> {
        let mut want = self.input_shapes();
        want.extend_from_slice(extra);
        if ins.len() != want.len() {
            return Err(Error::shape(
                op,
                format!("expects {} inputs, got {}", want.len(), ins.len()),
            ));
        }
        for (t, (what, shape)) in ins.iter().zip(&want) {
            if &t.shape != shape {
                return Err(Error::shape(
                    op,
                    format!("{what}: {:?} vs expected {shape:?}", t.shape),
                ));
            }
        }
        if self.k == 0 {
            return Err(Error::shape(op, "needs at least one kernel"));
        }
        Ok(())
    }
}

/// PAD-MoE's effective experts (docs/method.md §1.4): `experts` weights of `n` elements share one
/// static weight and one mask; `(W_e [E, ...], W_s, M, φ) → W~ [E, ...]` with
/// W~_e = λ_d M⊙W_e + λ_s (1−M)⊙W_s. Its gradient is `dynconv.wgsl`'s `combine` with the
/// experts' gradients as A (Σ_e G_e = 1 per token makes the algebra that of DY-Conv).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixSpec {
    pub experts: usize,
    pub n: usize,
    pub lambda: Lambda,
}

impl MixSpec {
    /// Checks `(experts [E, ...], static, mask, phi[, dy])`: the static weight and the mask
    /// have the experts' shape without the leading E, or with a leading 1 in its place (as
    /// PAD-Conv keeps them); returns the experts' shape.
    pub fn check_inputs(&self, op: &str, ins: &[&Tensor], with_dy: bool) -> Result<Vec<usize>> {
        let want = 4 + with_dy as usize;
        if ins.len() != want {
            return Err(Error::shape(
                op,
                format!("expects {want} inputs, got {}", ins.len()),
            ));
        }
        let experts = &ins[0].shape;
        if experts.first() != Some(&self.experts) || ins[0].numel() != self.experts * self.n {
            return Err(Error::shape(
                op,
                format!(
                    "experts {experts:?} vs {} experts of {} elements",
                    self.experts, self.n
                ),
            ));
        }
        for (what, t) in [("static weight", ins[1]), ("mask", ins[2])] {
            let one = t.shape.split_first().filter(|(lead, _)| **lead == 1);
            if t.shape[..] != experts[1..] && one.is_none_or(|(_, rest)| rest != &experts[1..]) {
                return Err(Error::shape(
                    op,
                    format!("{what} {:?} vs expert {:?}", t.shape, &experts[1..]),
                ));
            }
        }
        if ins[3].shape != [1] {
            return Err(Error::shape(op, format!("phi {:?} vs [1]", ins[3].shape)));
        }
        if with_dy && ins[4].shape != *experts {
            return Err(Error::shape(
                op,
                format!("dy {:?} vs experts {experts:?}", ins[4].shape),
            ));
        }
        Ok(experts.clone())
    }
}

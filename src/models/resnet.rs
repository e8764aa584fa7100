//! ResNet-10/18/34/50 (docs/method.md §4, `resnet_dyconv_pad.py`): static stem, every convolution
//! inside the residual stages (including the 1×1 projection shortcut) static, DY-Conv or
//! PAD-Conv per the builder's mode, each followed by BatchNorm; global average pool and a
//! 1×1-conv classifier with bias. Names match the reference modules (`layer1.layers.0.conv1`).

use super::{Stem, MODELS};
use crate::error::{Error, Result};
use crate::graph::op::Act;
use crate::graph::{Init, TensorId};
use crate::kernels::conv::ConvOpts;
use crate::nn::Builder;

#[derive(Clone, Copy)]
enum Block {
    Basic,
    Bottleneck,
}

fn layout(depth: usize) -> Result<(Block, [usize; 4])> {
    Ok(match depth {
        10 => (Block::Basic, [1, 1, 1, 1]),
        18 => (Block::Basic, [2, 2, 2, 2]),
        34 => (Block::Basic, [3, 4, 6, 3]),
        50 => (Block::Bottleneck, [3, 4, 6, 3]),
        d => {
            return Err(Error::Invalid(format!(
                "no ResNet of depth {d}; valid models: {}",
                MODELS.join(", ")
            )))
        }
    })
}

/// Channels scaled by the width multiplier (at least 1).
pub fn scaled(c: usize, width: f32) -> usize {
    ((c as f32 * width).round() as usize).max(1)
}

pub fn build(
    b: &mut Builder,
    x: TensorId,
    classes: usize,
    depth: usize,
    width: f32,
    stem: Stem,
) -> Result<TensorId> {
    let (block, layers) = layout(depth)?;
    let expansion = match block {
        Block::Basic => 1,
        Block::Bottleneck => 4,
    };
    let mut in_ch = scaled(64, width);
    let mut x = match stem {
        Stem::Cifar => b.conv2d("conv1", x, in_ch, ConvOpts::k(3).pad(1), false)?,
        Stem::Imagenet => b.conv2d("conv1", x, in_ch, ConvOpts::k(7).stride(2).pad(3), false)?,
    };
    x = b.batchnorm_act("bn1", x, Some(Act::Relu))?;
    if stem == Stem::Imagenet {
        x = b.max_pool(x, 3, 2, 1)?;
    }
    for (i, (&n, planes)) in layers.iter().zip([64, 128, 256, 512]).enumerate() {
        let planes = scaled(planes, width);
        x = b.scope(&format!("layer{}", i + 1), |b| {
            b.scope("layers", |b| {
                let mut x = x;
                for j in 0..n {
                    let stride = if i > 0 && j == 0 { 2 } else { 1 };
                    x = b.scope(&j.to_string(), |b| match block {
                        Block::Basic => basic(b, x, in_ch, planes, stride),
                        Block::Bottleneck => bottleneck(b, x, in_ch, planes, stride),
                    })?;
                    in_ch = planes * expansion;
                }
                Ok(x)
            })
        })?;
    }
    let pooled = b.global_avg_pool(x)?;
    classifier(b, pooled, classes, HeadInit::FanOut)
}

/// How the classifier's weights start (zero-mean normal, He's variance by fan-out or fan-in).
#[derive(Clone, Copy, Debug)]
pub enum HeadInit {
    /// 2 / classes: the reference's rule for every convolution.
    FanOut,
    /// 2 / features: logits of about unit scale however many features (MobileNetV2's 1 280
    /// would start with logits of std 7 by fan-out over 10 classes; docs/results/README.md).
    FanIn,
}

/// The reference's classifier: a 1×1 convolution with bias on the pooled features, stored as
/// `linear.weight` [classes, C, 1, 1] and `linear.bias` (zero bias).
pub fn classifier(
    b: &mut Builder,
    pooled: TensorId,
    classes: usize,
    init: HeadInit,
) -> Result<TensorId> {
    let c = b.g.shape(pooled)[1];
    let fan = match init {
        HeadInit::FanOut => classes,
        HeadInit::FanIn => c,
    };
    let w = b.g.param(
        &b.name("linear.weight"),
        &[classes, c, 1, 1],
        Init::Normal((2.0 / fan as f32).sqrt()),
    );
    let bias = b.g.param(&b.name("linear.bias"), &[classes], Init::Zeros);
    let w = b.g.reshape(w, &[classes, c])?;
    let y = b.g.matmul(pooled, w, false, true)?;
    b.g.push1(crate::graph::Op::BiasAdd, &[y, bias])
}

/// Projection shortcut (1×1 conv, stride, BN) when the shape changes, else identity.
fn shortcut(
    b: &mut Builder,
    x: TensorId,
    in_ch: usize,
    out: usize,
    stride: usize,
) -> Result<TensorId> {
    if stride == 1 && in_ch == out {
        return Ok(x);
    }
    b.scope("shortcut", |b| {
        b.scope("layers", |b| {
            let s = b.block_conv("0", x, out, ConvOpts::k(1).stride(stride))?;
            b.batchnorm("1", s)
        })
    })
}

fn basic(
    b: &mut Builder,
    x: TensorId,
    in_ch: usize,
    planes: usize,
    stride: usize,
) -> Result<TensorId> {
    let out = b.block_conv("conv1", x, planes, ConvOpts::k(3).stride(stride).pad(1))?;
    let out = b.batchnorm_act("bn1", out, Some(Act::Relu))?;
    let out = b.block_conv("conv2", out, planes, ConvOpts::k(3).pad(1))?;
    let out = b.batchnorm("bn2", out)?;
    let sc = shortcut(b, x, in_ch, planes, stride)?;
    let sum = b.add(out, sc)?;
    b.relu(sum)
}

fn bottleneck(
    b: &mut Builder,
    x: TensorId,
    in_ch: usize,
    planes: usize,
    stride: usize,
) -> Result<TensorId> {
    let out = b.block_conv("conv1", x, planes, ConvOpts::k(1))?;
    let out = b.batchnorm_act("bn1", out, Some(Act::Relu))?;
    let out = b.block_conv("conv2", out, planes, ConvOpts::k(3).stride(stride).pad(1))?;
    let out = b.batchnorm_act("bn2", out, Some(Act::Relu))?;
    let out = b.block_conv("conv3", out, planes * 4, ConvOpts::k(1))?;
    let out = b.batchnorm("bn3", out)?;
    let sc = shortcut(b, x, in_ch, planes * 4, stride)?;
    let sum = b.add(out, sc)?;
    b.relu(sum)
}

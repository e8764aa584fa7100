//! MobileNetV2 (docs/method.md §4, `mobilenetv2_dyconv_pad.py`): static stem (3×3 conv, stride 2;
//! stride 1 with the cifar stem) + BN + ReLU6; inverted residual blocks whose every convolution
//! — 1×1 expansion (absent when t = 1), 3×3 depthwise, 1×1 linear projection — is static,
//! DY-Conv or PAD-Conv per the builder's mode, each followed by BatchNorm; a final 1×1 conv to
//! 1280 (also dynamic/PAD); average pool and a static 1×1-conv classifier with bias (He fan-in
//! init, [`HeadInit::FanIn`]).
//! Names: `conv1`/`bn1` (stem), `layers.layers.{i}.conv{1,2,3}`/`bn{1,2,3}`, `conv2`/`bn2`
//! (final 1×1), `linear`.

use super::resnet::{classifier, HeadInit};
use super::Stem;
use crate::error::Result;
use crate::graph::op::Act;
use crate::graph::TensorId;
use crate::kernels::conv::ConvOpts;
use crate::nn::Builder;

/// (expansion t, channels c, repeats n, first stride s).
const CONFIG: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Channels rounded to a multiple of 8, never more than 10% below `v` (torchvision's rule).
pub fn make_divisible(v: f32) -> usize {
    let d = 8.0;
    let mut r = ((v + d / 2.0) / d).floor() * d;
    r = r.max(d);
    if r < 0.9 * v {
        r += d;
    }
    r as usize
}

pub fn build(
    b: &mut Builder,
    x: TensorId,
    classes: usize,
    width: f32,
    stem: Stem,
) -> Result<TensorId> {
    let mut c = make_divisible(32.0 * width);
    let stride = if stem == Stem::Cifar { 1 } else { 2 };
    let mut x = b.conv2d("conv1", x, c, ConvOpts::k(3).stride(stride).pad(1), false)?;
    x = b.batchnorm_act("bn1", x, Some(Act::Relu6))?;
    let mut i = 0;
    for (t, ch, n, s) in CONFIG {
        let out = make_divisible(ch as f32 * width);
        for j in 0..n {
            let s = if j == 0 { s } else { 1 };
            x = b.scope("layers", |b| {
                b.scope("layers", |b| {
                    b.scope(&i.to_string(), |b| inverted_residual(b, x, c, out, t, s))
                })
            })?;
            c = out;
            i += 1;
        }
    }
    let last = make_divisible(1280.0 * width.max(1.0));
    x = b.block_conv("conv2", x, last, ConvOpts::k(1))?;
    x = b.batchnorm_act("bn2", x, Some(Act::Relu6))?;
    let pooled = b.global_avg_pool(x)?;
    classifier(b, pooled, classes, HeadInit::FanIn)
}

fn inverted_residual(
    b: &mut Builder,
    x: TensorId,
    inp: usize,
    out: usize,
    t: usize,
    stride: usize,
) -> Result<TensorId> {
    let hidden = inp * t;
    let mut h = x;
    if t != 1 {
        h = b.block_conv("conv1", h, hidden, ConvOpts::k(1))?;
        h = b.batchnorm_act("bn1", h, Some(Act::Relu6))?;
    }
    h = b.block_conv(
        "conv2",
        h,
        hidden,
        ConvOpts::k(3).stride(stride).pad(1).groups(hidden),
    )?;
    h = b.batchnorm_act("bn2", h, Some(Act::Relu6))?;
    h = b.block_conv("conv3", h, out, ConvOpts::k(1))?;
    h = b.batchnorm("bn3", h)?;
    if stride == 1 && inp == out {
        h = b.add(h, x)?;
    }
    Ok(h)
}

//! Model definitions. Each architecture reads top to bottom in one file.

pub mod bert;
pub mod mobilenetv2;
pub mod resnet;
pub mod simple_cnn;

use crate::error::{Error, Result};
use crate::graph::TensorId;
use crate::nn::dynamic::{ConvMode, DynConfig};
use crate::nn::Builder;
use serde::{Deserialize, Serialize};

/// Architectures `train` can build.
pub const MODELS: [&str; 6] = [
    "simple-cnn",
    "resnet10",
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenetv2",
];

/// Stem of the ResNets: `imagenet` (7×7/2 conv + 3×3/2 max-pool) or `cifar` (3×3/1 conv, no
/// pool; for 28–32 px inputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    Imagenet,
    Cifar,
}

impl crate::names::Named for Stem {
    const WHAT: &'static str = "stem";
}

/// Everything that determines a model's graph and parameter set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: String,
    pub width: f32,
    pub stem: Stem,
    pub dynamic: DynConfig,
}

impl ModelConfig {
    pub fn validate(&self) -> Result<()> {
        if !MODELS.contains(&self.arch.as_str()) {
            return Err(Error::Invalid(format!(
                "unknown model '{}'; valid models: {}",
                self.arch,
                MODELS.join(", ")
            )));
        }
        if self.arch == "simple-cnn" && self.dynamic.mode != ConvMode::Static {
            return Err(Error::Invalid(
                "simple-cnn is static only; use a resnet for dynamic/pad".into(),
            ));
        }
        if !(self.width > 0.0 && self.width.is_finite()) {
            return Err(Error::Invalid(format!(
                "--width must be positive, got {}",
                self.width
            )));
        }
        if self.dynamic.kernels == 0 || self.dynamic.reduction == 0 {
            return Err(Error::Invalid(
                "--kernels and --reduction must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Builds the model on input `x` [B, C, H, W] and returns logits [B, classes].
pub fn build(cfg: &ModelConfig, b: &mut Builder, x: TensorId, classes: usize) -> Result<TensorId> {
    cfg.validate()?;
    b.dynamic = cfg.dynamic;
    match cfg.arch.as_str() {
        "simple-cnn" => simple_cnn::build(b, x, classes),
        "mobilenetv2" => mobilenetv2::build(b, x, classes, cfg.width, cfg.stem),
        name => {
            let depth: usize = name
                .trim_start_matches("resnet")
                .parse()
                .expect("listed in MODELS");
            resnet::build(b, x, classes, depth, cfg.width, cfg.stem)
        }
    }
}

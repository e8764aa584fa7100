//! Model definitions. Each architecture reads top to bottom in one function.

pub mod simple_cnn;

use crate::error::{Error, Result};
use crate::graph::TensorId;
use crate::nn::Builder;

/// Architectures `train` can build.
pub const MODELS: [&str; 1] = ["simple-cnn"];

/// Builds `model` on input `x` [B, C, H, W] and returns logits [B, classes].
pub fn build(model: &str, b: &mut Builder, x: TensorId, classes: usize) -> Result<TensorId> {
    match model {
        "simple-cnn" => simple_cnn::build(b, x, classes),
        other => Err(Error::Invalid(format!(
            "unknown model '{other}'; valid models: {}",
            MODELS.join(", ")
        ))),
    }
}

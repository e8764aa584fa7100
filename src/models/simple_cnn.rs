//! A small static CNN for 28×28 inputs: two conv-BN-ReLU-maxpool blocks and a 2-layer head.
//! Forward ≈ 8.5 MFLOP per image at 28×28.

use crate::error::Result;
use crate::graph::op::Act;
use crate::graph::TensorId;
use crate::kernels::conv::ConvOpts;
use crate::nn::Builder;

pub fn build(b: &mut Builder, x: TensorId, classes: usize) -> Result<TensorId> {
    let x = b.conv2d("conv1", x, 32, ConvOpts::k(3).pad(1), false)?;
    let x = b.batchnorm_act("bn1", x, Some(Act::Relu))?;
    let x = b.max_pool(x, 2, 2, 0)?;
    let x = b.conv2d("conv2", x, 64, ConvOpts::k(3).pad(1), false)?;
    let x = b.batchnorm_act("bn2", x, Some(Act::Relu))?;
    let x = b.max_pool(x, 2, 2, 0)?;
    let x = b.flatten(x)?;
    let x = b.linear("fc1", x, 128, true)?;
    let x = b.relu(x)?;
    b.linear("fc2", x, classes, true)
}

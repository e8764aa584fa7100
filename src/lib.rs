//! padnet-wgpu: PAD-Net (partially dynamic networks) with hand-written WGSL kernels on wgpu.

pub mod bench;
pub mod cli;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod ops;
pub mod reference;
pub mod rng;

pub use error::{Error, Result};

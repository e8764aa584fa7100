//! padnet-wgpu: PAD-Net (partially dynamic networks) with hand-written WGSL kernels on wgpu.

pub mod bench;
pub mod checkpoint;
pub mod commands;
pub mod data;
pub mod dist;
pub mod error;
pub mod eval;
pub mod executor;
pub mod experiment;
pub mod export;
pub mod fit;
pub mod gpu;
pub mod graph;
pub mod imp;
pub mod kernels;
pub mod models;
pub mod names;
pub mod nn;
pub mod plot;
pub mod rng;
pub mod run_dir;
pub mod text;
pub mod train;
pub mod trainer;
pub mod values;

pub use error::{Error, Result};

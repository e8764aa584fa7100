//! The executor: a graph compiled for a device (parameter, gradient and state arenas,
//! activation buffers pooled by liveness, every pipeline and bind group created once, one
//! dispatch list a step replays), the optimizers that update the parameter arena in one
//! dispatch, and the f64 CPU interpreter of the same graphs (tests).

pub mod compile;
pub mod interp;
pub mod optim;

pub use compile::{Executable, ParamStore};

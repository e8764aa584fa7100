//! The executor: the parameter store (parameter, gradient and state arenas shared by a
//! model's graphs), a graph compiled for a device (activation buffers pooled by liveness,
//! every pipeline and bind group created once, one dispatch list a step replays), the
//! optimizers that update the parameter arena in one dispatch, and the f64 CPU interpreter of
//! the same graphs (tests).

mod autotune;
mod compile;
pub mod interp;
pub mod optim;
pub mod profile;
mod ranks;
mod store;

pub use compile::Executable;
pub(crate) use store::init_values;
pub use store::{ParamStore, Slot};

use crate::dist::Comm;
use crate::error::{Error, Result};
use optim::Optimizer;

/// Submits one training step: the compiled graph's dispatches, then the optimizer's, in one
/// encoder — or, with `detect_anomaly`, the graph node by node with every output checked for
/// NaN/±Inf ([`Executable::run_checked`]), then the optimizer. No host synchronisation
/// otherwise. The optimizer must be prepared (`Optimizer::prepare`) first.
///
/// With several data-parallel ranks (`comm`), the graph stops for its SyncBN sums, and the
/// gradients are averaged over the ranks before the optimizer runs (docs/distributed.md).
pub fn submit_step(
    exe: &Executable,
    optimizer: &Optimizer,
    store: &ParamStore,
    detect_anomaly: bool,
    comm: &Comm,
) -> Result<()> {
    if comm.size() > 1 {
        if detect_anomaly {
            return Err(Error::Invalid(
                "--detect-anomaly checks one rank's graph node by node; run it with one rank"
                    .into(),
            ));
        }
        exe.run_ranks_averaging(comm, store)?;
        let mut enc = exe.gpu.device.create_command_encoder(&Default::default());
        optimizer.encode(&mut enc.begin_compute_pass(&Default::default()));
        exe.gpu.queue.submit([enc.finish()]);
        return Ok(());
    }
    let graph_done = if detect_anomaly {
        exe.run_checked(store)?;
        true
    } else if exe.take_first_run_log() {
        exe.run_logging_slow_dispatches()?;
        true
    } else {
        false
    };
    let mut enc = exe.gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        if !graph_done {
            exe.encode(&mut pass);
        }
        optimizer.encode(&mut pass);
    }
    exe.gpu.queue.submit([enc.finish()]);
    Ok(())
}

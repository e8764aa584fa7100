//! Training a run's configuration on its ranks (docs/distributed.md): one rank, ranks as
//! threads of this process one per adapter (`--adapters`), or this process as one rank of an
//! MPI job (`mpirun -np N`) — see [`crate::dist::Ranks`].

use super::train::RunConfig;
use crate::dist::{Adapter, Comm};
use crate::error::Result;
use crate::text::TextTask;
use crate::train::ImageTask;
use crate::trainer;
use std::sync::Arc;

/// Data-parallel training (docs/distributed.md).
#[derive(clap::Args, Clone, Debug, Default)]
#[command(next_help_heading = "Data-parallel training")]
pub struct ParallelArgs {
    /// Run data-parallel in this process, one rank per listed adapter (an index or part of a
    /// name, as for --adapter; list one twice for two ranks on it), e.g. `--adapters 0,1`.
    /// Each rank takes --batch-size images (or examples) of every global batch; BatchNorm
    /// statistics, MoE balance sums and IMP scores span all of them and the gradients are
    /// averaged, so N ranks train as one rank with N times the batch. Under mpirun each
    /// process is one rank.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub adapters: Vec<String>,
}

/// What one rank's training loop returns: the metrics history of its kind of model.
pub(super) enum History {
    Image(Vec<crate::train::EpochMetrics>),
    Text(Vec<crate::text::TextEpochMetrics>),
}

/// Trains `config` as the rank `comm` on `adapter`: rank 0 opens (locks, refuses or
/// overwrites) the run directory and alone writes to it.
pub(super) fn fit_rank(config: &RunConfig, adapter: Adapter, comm: Arc<Comm>) -> Result<History> {
    let dir = trainer::open_run_ranks(config.run(), &comm)?;
    if comm.is_root() && !config.run().resume {
        println!("run directory {}", config.run().out.display());
    }
    let gpu = adapter.open()?;
    Ok(match config {
        RunConfig::Image(cfg) => {
            let mut task = ImageTask::new_rank(gpu, cfg, comm)?;
            History::Image(trainer::fit(&mut task, &dir)?)
        }
        RunConfig::Text(cfg) => {
            let mut task = TextTask::new_rank(gpu, cfg, comm)?;
            History::Text(trainer::fit(&mut task, &dir)?)
        }
    })
}

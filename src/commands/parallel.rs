//! Data-parallel `train` (docs/distributed.md): ranks as threads of this process, one per
//! adapter (`--adapters`), or this process as one rank of an MPI job (`mpirun -np N`).

use super::train::{open_run, RunConfig};
use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::run_dir::RunDir;
use crate::text::TextTask;
use crate::train::ImageTask;
use crate::trainer;
use std::sync::Arc;

/// Data-parallel training (docs/distributed.md).
#[derive(clap::Args, Clone, Debug, Default)]
#[command(next_help_heading = "Data-parallel training")]
pub struct ParallelArgs {
    /// Train data-parallel in this process, one rank per listed adapter (an index or part of
    /// a name, as for --adapter; list one twice for two ranks on it), e.g. `--adapters 0,1`.
    /// Each rank takes --batch-size images (or examples) of every global batch; BatchNorm
    /// statistics and MoE balance sums span all of them and the gradients are averaged, so N
    /// ranks train as one rank with N times the batch.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub adapters: Vec<String>,
}

/// What one rank's training loop returns: the metrics history of its kind of model.
pub(super) enum History {
    Image(Vec<crate::train::EpochMetrics>),
    Text(Vec<crate::text::TextEpochMetrics>),
}

/// Trains `config` as the rank `comm` on `gpu`, in the run directory `dir`.
fn fit_rank(config: &RunConfig, gpu: Arc<Gpu>, comm: Arc<Comm>, dir: &RunDir) -> Result<History> {
    Ok(match config {
        RunConfig::Image(cfg) => {
            let mut task = ImageTask::new_rank(gpu, cfg, comm)?;
            History::Image(trainer::fit(&mut task, dir)?)
        }
        RunConfig::Text(cfg) => {
            let mut task = TextTask::new_rank(gpu, cfg, comm)?;
            History::Text(trainer::fit(&mut task, dir)?)
        }
    })
}

/// Trains `config` on one rank (`adapters` empty: the adapter `selector`), or data-parallel
/// with one rank per adapter of `adapters`, each a thread of this process; rank 0's history.
/// A rank that fails stops the others (its error is the one reported).
pub(super) fn fit(
    config: &RunConfig,
    dir: &RunDir,
    selector: Option<&str>,
    adapters: &[String],
) -> Result<History> {
    if adapters.is_empty() {
        let gpu = Arc::new(Gpu::new(selector)?);
        return fit_rank(config, gpu, Arc::new(Comm::solo()), dir);
    }
    crate::dist::run_threads(adapters.len(), |comm| {
        let gpu = Arc::new(Gpu::new(Some(&adapters[comm.rank()]))?);
        fit_rank(config, gpu, comm, dir)
    })
}

/// One rank of `mpirun -np N padnet-wgpu train …`: rank 0 opens (locks, refuses or
/// overwrites) the run directory and alone writes to it; every rank takes the adapter of its
/// rank on this machine among the best kind (or `--adapter`). An error on any rank ends the job.
pub(super) fn train_mpi_rank(
    selector: Option<&str>,
    adapters: &[String],
    config: RunConfig,
) -> anyhow::Result<()> {
    if !adapters.is_empty() {
        anyhow::bail!("--adapters runs ranks as threads; under mpirun each process is one rank");
    }
    let (_, local_rank) = crate::dist::launched_by_mpi().expect("checked by the caller");
    let comm = Arc::new(Comm::mpi()?);
    let run = || -> Result<History> {
        // Rank 0 opens the directory first (a refusal comes at once); the others then read it.
        let run = config.run();
        let dir = match comm.is_root() {
            true => Some(open_run(run)?),
            false => None,
        };
        comm.barrier()?;
        let dir = dir.unwrap_or_else(|| RunDir::follower(&run.out));
        let gpu = Arc::new(Gpu::for_local_rank(selector, local_rank)?);
        fit_rank(&config, gpu, comm.clone(), &dir)
    };
    match run() {
        Ok(_) => Ok(()),
        // Ctrl-C: every rank stopped at the same step and rank 0 committed the checkpoint.
        Err(e @ Error::Interrupted { .. }) => Err(e.into()),
        Err(e) => {
            comm.abort(&e.to_string());
            Err(e.into())
        }
    }
}

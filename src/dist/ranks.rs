//! Where a command's ranks run: one rank on one adapter, thread ranks one per adapter
//! (`--adapters`), or this process as one rank of an MPI job (`mpirun`). Commands that train
//! (`train`, `experiment`) run each training through [`Ranks::run`].

use super::Comm;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use std::sync::Arc;

pub enum Ranks {
    /// One rank, on the adapter `--adapter` chooses (or the best).
    One(Option<String>),
    /// Ranks as threads of this process, one per listed adapter.
    Threads(Vec<String>),
    /// This process is one rank of an MPI job: its group, its rank on this machine, and
    /// `--adapter` if given (which then chooses for every rank).
    Mpi {
        comm: Arc<Comm>,
        local_rank: usize,
        selector: Option<String>,
    },
}

/// The adapter a rank trains on, opened by the rank when it needs it: after the run
/// directory, so that a refused directory is reported before any device starts.
pub struct Adapter<'a> {
    selector: Option<&'a str>,
    /// An MPI rank's place on its machine (it takes that adapter among the best kind).
    local_rank: Option<usize>,
}

impl Adapter<'_> {
    pub fn open(&self) -> Result<Arc<Gpu>> {
        Ok(Arc::new(match self.local_rank {
            Some(local_rank) => Gpu::for_local_rank(self.selector, local_rank)?,
            None => Gpu::new(self.selector)?,
        }))
    }
}

impl Ranks {
    /// The ranks of a command given `--adapter` (`selector`) and `--adapters`: an MPI rank
    /// when a launcher started this process, thread ranks when `adapters` lists some.
    pub fn new(selector: Option<&str>, adapters: &[String]) -> Result<Ranks> {
        let mpi = super::launched_by_mpi();
        match (selector, adapters.is_empty(), mpi) {
            (Some(_), false, _) => Err(Error::Invalid(
                "--adapter and --adapters both choose adapters; give one of them".into(),
            )),
            (_, false, Some(_)) => Err(Error::Invalid(
                "--adapters runs ranks as threads; under mpirun each process is one rank".into(),
            )),
            (_, true, Some((_, local_rank))) => Ok(Ranks::Mpi {
                comm: Arc::new(Comm::mpi()?),
                local_rank,
                selector: selector.map(str::to_string),
            }),
            (_, false, None) => Ok(Ranks::Threads(adapters.to_vec())),
            (_, true, None) => Ok(Ranks::One(selector.map(str::to_string))),
        }
    }

    /// Whether this process reports and writes: every process but MPI ranks other than 0.
    pub fn is_root(&self) -> bool {
        match self {
            Ranks::Mpi { comm, .. } => comm.is_root(),
            _ => true,
        }
    }

    /// The adapter of thread rank `rank` (the chosen one, or this MPI rank's).
    fn adapter(&self, rank: usize) -> Adapter<'_> {
        match self {
            Ranks::One(selector) => Adapter {
                selector: selector.as_deref(),
                local_rank: None,
            },
            Ranks::Threads(adapters) => Adapter {
                selector: Some(&adapters[rank]),
                local_rank: None,
            },
            Ranks::Mpi {
                local_rank,
                selector,
                ..
            } => Adapter {
                selector: selector.as_deref(),
                local_rank: Some(*local_rank),
            },
        }
    }

    /// The adapter this process uses for its own work besides training (evaluation, export):
    /// the chosen one, the first listed, or this MPI rank's.
    pub fn gpu(&self) -> Result<Arc<Gpu>> {
        self.adapter(0).open()
    }

    /// Runs `rank(adapter, comm)` on every rank of this process: rank 0's result, or the
    /// error of the rank that failed (which stops the others: thread ranks return, an MPI
    /// job ends).
    pub fn run<T: Send>(&self, rank: impl Fn(Adapter, Arc<Comm>) -> Result<T> + Sync) -> Result<T> {
        match self {
            Ranks::One(_) => rank(self.adapter(0), Arc::new(Comm::solo())),
            Ranks::Threads(adapters) => {
                super::run_threads(adapters.len(), |comm| rank(self.adapter(comm.rank()), comm))
            }
            Ranks::Mpi { comm, .. } => {
                let result = rank(self.adapter(0), comm.clone());
                match &result {
                    // Ctrl-C: every rank stopped at the same step and rank 0 committed.
                    Ok(_) | Err(Error::Interrupted { .. }) => {}
                    Err(e) => comm.abort(&e.to_string()),
                }
                result
            }
        }
    }
}

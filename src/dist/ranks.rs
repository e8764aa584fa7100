//! Where a command's ranks run: one rank on one adapter, thread ranks one per adapter
//! (`--adapters`), or this process as one rank of an MPI job (`mpirun`). Commands that train
//! (`train`, `experiment`, `imp`) run each training through [`Ranks::run`].

use super::Comm;
use crate::error::{Error, Result};
use crate::gpu::tuning::Precision;
use crate::gpu::Gpu;
use std::sync::{Arc, Mutex};

/// A command's ranks and the devices they run on: each opened once, by its rank when it first
/// needs it, and kept for the command's later runs (an experiment's runs share them).
pub struct Ranks {
    place: Place,
    /// One per rank of this process (thread ranks), else one.
    devices: Vec<Mutex<Option<Arc<Gpu>>>>,
    /// What the devices' forward GEMMs and convolutions multiply in.
    precision: Precision,
}

enum Place {
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
    device: &'a Mutex<Option<Arc<Gpu>>>,
    precision: Precision,
}

impl Adapter<'_> {
    /// The rank's device: opened on first use, the same one afterwards.
    pub fn open(&self) -> Result<Arc<Gpu>> {
        let mut device = self.device.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(gpu) = &*device {
            return Ok(gpu.clone());
        }
        let gpu = match self.local_rank {
            Some(local_rank) => Gpu::for_local_rank(self.selector, local_rank)?,
            None => Gpu::new(self.selector)?,
        };
        let gpu = Arc::new(gpu.with_precision(self.precision)?);
        *device = Some(gpu.clone());
        Ok(gpu)
    }
}

impl Ranks {
    /// The ranks of a command given `--adapter` (`selector`) and `--adapters`: an MPI rank
    /// when a launcher started this process, thread ranks when `adapters` lists some.
    pub fn new(selector: Option<&str>, adapters: &[String]) -> Result<Ranks> {
        let mpi = super::launched_by_mpi();
        let place = match (selector, adapters.is_empty(), mpi) {
            (Some(_), false, _) => {
                return Err(Error::Invalid(
                    "--adapter and --adapters both choose adapters; give one of them".into(),
                ))
            }
            (_, false, Some(_)) => {
                return Err(Error::Invalid(
                    "--adapters runs ranks as threads; under mpirun each process is one rank"
                        .into(),
                ))
            }
            (_, true, Some((_, local_rank))) => Place::Mpi {
                comm: Arc::new(Comm::mpi()?),
                local_rank,
                selector: selector.map(str::to_string),
            },
            (_, false, None) => Place::Threads(adapters.to_vec()),
            (_, true, None) => Place::One(selector.map(str::to_string)),
        };
        let devices = match &place {
            Place::Threads(adapters) => adapters.len(),
            _ => 1,
        };
        Ok(Ranks {
            place,
            devices: (0..devices).map(|_| Mutex::new(None)).collect(),
            precision: Precision::F32,
        })
    }

    /// These ranks with their devices' forward GEMMs and convolutions multiplying in
    /// `precision` (f16 training, docs/architecture.md "Half precision").
    pub fn with_precision(mut self, precision: Precision) -> Ranks {
        self.precision = precision;
        self
    }

    /// Whether this process reports and writes: every process but MPI ranks other than 0.
    pub fn is_root(&self) -> bool {
        match &self.place {
            Place::Mpi { comm, .. } => comm.is_root(),
            _ => true,
        }
    }

    /// The adapter of thread rank `rank` (the chosen one, or this MPI rank's).
    fn adapter(&self, rank: usize) -> Adapter<'_> {
        let (selector, local_rank) = match &self.place {
            Place::One(selector) => (selector.as_deref(), None),
            Place::Threads(adapters) => (Some(adapters[rank].as_str()), None),
            Place::Mpi {
                local_rank,
                selector,
                ..
            } => (selector.as_deref(), Some(*local_rank)),
        };
        Adapter {
            selector,
            local_rank,
            device: &self.devices[rank],
            precision: self.precision,
        }
    }

    /// The device this process uses for its own work besides training (evaluation, export):
    /// rank 0's of this process.
    pub fn gpu(&self) -> Result<Arc<Gpu>> {
        self.adapter(0).open()
    }

    /// Runs `rank(adapter, comm)` on every rank of this process: rank 0's result, or the
    /// error of the rank that failed (which stops the others: thread ranks return, an MPI
    /// job ends).
    pub fn run<T: Send>(&self, rank: impl Fn(Adapter, Arc<Comm>) -> Result<T> + Sync) -> Result<T> {
        match &self.place {
            Place::One(_) => rank(self.adapter(0), Arc::new(Comm::solo())),
            Place::Threads(adapters) => {
                super::run_threads(adapters.len(), |comm| rank(self.adapter(comm.rank()), comm))
            }
            Place::Mpi { comm, .. } => {
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

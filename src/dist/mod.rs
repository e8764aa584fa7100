//! Data-parallel training's collective interface (docs/distributed.md): every rank runs the
//! same loop on its shard of each global batch and meets the others at sums — gradients after
//! the backward, BatchNorm statistics inside it (SyncBN), training metrics, IMP scores.
//!
//! A [`Comm`] is one rank's handle. Its backends: one rank alone ([`Comm::solo`]), ranks as
//! threads of one process, one per adapter ([`Comm::threads`]), and MPI ranks (`mpi`).
//! Sums are exact-order deterministic: every rank gets the same bits.

#[cfg(feature = "mpi")]
mod mpi;
mod ranks;
mod threads;

pub use ranks::{Adapter, Ranks};

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One rank's handle on its group.
pub struct Comm {
    rank: usize,
    size: usize,
    backend: Backend,
    /// Nanoseconds spent in collectives (waiting for the other ranks included), for the
    /// per-step communication time.
    waited_ns: AtomicU64,
}

enum Backend {
    Solo,
    Threads(Arc<threads::Group>),
    #[cfg(feature = "mpi")]
    Mpi(mpi::Mpi),
}

/// Environment variables that MPI launchers (OpenMPI's mpirun, and PMI-based ones such as
/// MPICH's and Slurm's) set in every rank; (world size, local rank).
const LAUNCHERS: [(&str, &str); 2] = [
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("PMI_SIZE", "MPI_LOCALRANKID"),
];

/// This process's place in an MPI job, when an MPI launcher started it: (world size, rank on
/// this machine).
pub fn launched_by_mpi() -> Option<(usize, usize)> {
    LAUNCHERS.iter().find_map(|(size, local)| {
        let size = std::env::var(size).ok()?.parse().ok()?;
        let local = std::env::var(local)
            .ok()
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        Some((size, local))
    })
}

impl Comm {
    /// A group of one: every collective is the identity.
    pub const fn solo() -> Comm {
        Comm {
            rank: 0,
            size: 1,
            backend: Backend::Solo,
            waited_ns: AtomicU64::new(0),
        }
    }

    /// A shared group of one, for code that runs alone.
    pub fn alone() -> &'static Comm {
        static ALONE: Comm = Comm::solo();
        &ALONE
    }

    /// `n` ranks that are threads of this process; hand one to each thread.
    pub fn threads(n: usize) -> Vec<Comm> {
        let group = Arc::new(threads::Group::new(n));
        (0..n)
            .map(|rank| Comm {
                rank,
                size: n,
                backend: Backend::Threads(group.clone()),
                waited_ns: AtomicU64::new(0),
            })
            .collect()
    }

    /// This process's rank of the MPI job that started it (`mpirun -np N`); an error naming
    /// the fix where this build has no MPI.
    pub fn mpi() -> Result<Comm> {
        #[cfg(feature = "mpi")]
        {
            let (backend, rank, size) = mpi::Mpi::init()?;
            Ok(Comm {
                rank,
                size,
                backend: Backend::Mpi(backend),
                waited_ns: AtomicU64::new(0),
            })
        }
        #[cfg(not(feature = "mpi"))]
        Err(Error::Invalid(
            "started by an MPI launcher, but this padnet-wgpu was built without MPI: install \
             OpenMPI (Debian/Ubuntu: libopenmpi-dev openmpi-bin libclang-dev) and build with \
             `cargo build --release --features mpi`"
                .into(),
        ))
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Rank 0: the one that writes checkpoints, metrics, plots and progress.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Replaces `data` by its element-wise sum over all ranks (the same bits on every rank:
    /// summed in rank order).
    pub fn sum(&self, data: &mut [f32]) -> Result<()> {
        let start = Instant::now();
        let done = match &self.backend {
            Backend::Solo => return Ok(()),
            Backend::Threads(g) => g.sum(self.rank, data),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.sum(data),
        };
        let ns = start.elapsed().as_nanos() as u64;
        self.waited_ns.fetch_add(ns, Ordering::Relaxed);
        done
    }

    /// Seconds spent in collectives since the last call (the host staging around them not
    /// included).
    pub fn take_seconds(&self) -> f64 {
        self.waited_ns.swap(0, Ordering::Relaxed) as f64 * 1e-9
    }

    /// Every rank's `local` (all of the same length), concatenated in rank order.
    pub fn gather(&self, local: &[f32]) -> Result<Vec<f32>> {
        let mut all = vec![0.0; local.len() * self.size];
        all[self.rank * local.len()..(self.rank + 1) * local.len()].copy_from_slice(local);
        self.sum(&mut all)?;
        Ok(all)
    }

    /// Waits for every rank.
    pub fn barrier(&self) -> Result<()> {
        self.sum(&mut [])
    }

    /// Marks this rank failed: every other rank's pending and future collectives return an
    /// error naming it instead of waiting for ever. MPI ranks cannot be told: the whole job
    /// ends here (MPI_Abort), after `why` is printed.
    pub fn abort(&self, why: &str) {
        match &self.backend {
            Backend::Solo => {}
            Backend::Threads(g) => g.abort(self.rank, why),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => {
                eprintln!(
                    "error on rank {}: {why}; ending every rank (MPI_Abort)",
                    self.rank
                );
                m.abort()
            }
        }
    }
}

/// Runs `rank(comm)` on `n` ranks that are threads of this process (each with its own
/// [`Comm`]) and returns rank 0's result, or the failing rank's own error: a rank whose
/// `rank` fails aborts the group, so the others stop instead of waiting for it.
pub fn run_threads<T: Send>(n: usize, rank: impl Fn(Arc<Comm>) -> Result<T> + Sync) -> Result<T> {
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = Comm::threads(n)
            .into_iter()
            .map(|comm| {
                let rank = &rank;
                scope.spawn(move || {
                    let comm = Arc::new(comm);
                    let result = rank(comm.clone());
                    if let Err(e) = &result {
                        comm.abort(&e.to_string());
                    }
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Invalid("a rank panicked".into())))
            })
            .collect()
    });
    root_result(results)
}

/// What a group of ranks (threads) returns: rank 0's value, or the error of the rank that
/// failed first-hand rather than another rank's echo of it ([`Error::RankStopped`]).
fn root_result<T>(results: Vec<Result<T>>) -> Result<T> {
    let (mut root, mut echo, mut own) = (None, None, None);
    for (rank, r) in results.into_iter().enumerate() {
        match r {
            Ok(v) if rank == 0 => root = Some(v),
            Ok(_) => {}
            Err(e @ Error::RankStopped { .. }) => echo = echo.or(Some(e)),
            Err(e) => own = own.or(Some(e)),
        }
    }
    match (own.or(echo), root) {
        (Some(e), _) => Err(e),
        (None, Some(v)) => Ok(v),
        (None, None) => Err(Error::Invalid("no rank 0 in the group".into())),
    }
}

/// A rank's collective failed because another rank stopped.
fn peer_failed(rank: usize, why: &str) -> Error {
    Error::RankStopped {
        rank,
        why: why.into(),
    }
}

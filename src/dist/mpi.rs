//! MPI ranks (`mpirun -np N padnet-wgpu train …`), through the `mpi` crate (rsmpi) over the
//! system's MPI library (OpenMPI from the distribution); built with `--features mpi`.
//! MPI runs at the "serialized" threading level and every call holds one lock, so a rank's
//! collectives may come from any of its threads.

use crate::error::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::sync::Mutex;

/// OpenMPI's switch to yield the CPU while waiting (read by MPI_Init).
const YIELD: &str = "OMPI_MCA_mpi_yield_when_idle";

pub struct Mpi {
    world: Mutex<World>,
}

struct World {
    comm: SimpleCommunicator,
    /// Finalises MPI when dropped (at the end of the process).
    _universe: mpi::environment::Universe,
}

// SAFETY: MPI is initialised at the serialized threading level, which allows calls from any
// thread one at a time; the mutex makes them one at a time.
unsafe impl Send for World {}

impl Mpi {
    /// Initialises MPI; returns this rank's world handle with (rank, size).
    pub fn init() -> Result<(Mpi, usize, usize)> {
        // OpenMPI busy-polls in a collective by default: a rank waiting for the others then
        // takes a core from them (and from lavapipe's threads). Yield instead, unless told.
        if std::env::var_os(YIELD).is_none() {
            std::env::set_var(YIELD, "1");
        }
        let (universe, level) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| Error::Invalid("MPI is already initialised in this process".into()))?;
        if level < mpi::Threading::Serialized {
            return Err(Error::Invalid(format!(
                "this MPI library offers threading level {level:?}; padnet-wgpu needs Serialized"
            )));
        }
        let comm = universe.world();
        let (rank, size) = (comm.rank() as usize, comm.size() as usize);
        let world = World {
            comm,
            _universe: universe,
        };
        Ok((
            Mpi {
                world: Mutex::new(world),
            },
            rank,
            size,
        ))
    }

    pub fn sum(&self, data: &mut [f32]) -> Result<()> {
        let w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        if data.is_empty() {
            w.comm.barrier();
            return Ok(());
        }
        let local = data.to_vec();
        w.comm
            .all_reduce_into(&local[..], data, SystemOperation::sum());
        Ok(())
    }

    /// Ends every rank of the job (MPI_Abort): the others may be waiting in a collective
    /// that will never complete.
    pub fn abort(&self) -> ! {
        let w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        w.comm.abort(1)
    }
}

//! Training a run's configuration on its ranks (docs/distributed.md): one rank, ranks as
//! threads of this process one per adapter (`--adapters`), or this process as one rank of an
//! MPI job (`mpirun -np N`) — see [`crate::dist::Ranks`].

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

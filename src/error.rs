//! Error types shared by the library. Every user-facing failure is one of these, so the CLI can
//! print one clear line and pick an exit code instead of panicking.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable GPU adapter: the CLI exits with code 2 and names the fix for each backend
    /// searched.
    #[error(
        "no GPU adapter found on the backends searched ({searched}; WGPU_BACKEND narrows them). Install one of:{advice}"
    )]
    NoAdapter { searched: String, advice: String },

    #[error("adapter '{selector}' not found; available adapters:\n{available}")]
    AdapterNotFound { selector: String, available: String },

    #[error("GPU device error: {0}")]
    Device(String),

    #[error("shape error in op '{op}': {msg}")]
    Shape { op: String, msg: String },

    #[error("{path}: {msg}")]
    Data { path: PathBuf, msg: String },

    #[error("{0}")]
    Invalid(String),

    /// A NaN or ±Inf in training (loss, gradient or parameter): the run stops, saving nothing.
    #[error(
        "training diverged at step {step}: {what} became NaN or infinite; the last committed checkpoint in {dir} is untouched (try a lower --lr)"
    )]
    NonFinite {
        step: u64,
        what: String,
        dir: PathBuf,
    },

    /// Training stopped by Ctrl-C (SIGINT) or SIGTERM after committing a checkpoint; the
    /// CLI exits with code 130.
    #[error(
        "interrupted after step {step}; the checkpoint is committed in {dir}. Continue with --resume {dir}"
    )]
    Interrupted { step: usize, dir: PathBuf },

    /// Another data-parallel rank failed (its own error says why); this one stopped too.
    #[error("rank {rank} stopped ({why}); stopping this rank too")]
    RankStopped { rank: usize, why: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn shape(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Shape {
            op: op.into(),
            msg: msg.into(),
        }
    }
    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

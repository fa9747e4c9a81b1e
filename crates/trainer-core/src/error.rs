use std::path::PathBuf;

/// Errors of the training loop. Every variant names the file, key or step it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The recipe is invalid (unknown key, bad value, contradictory settings).
    #[error("recipe {origin}: {message}")]
    Recipe {
        /// File or override that is wrong.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// Training data could not be read or is unusable.
    #[error("data {origin}: {message}")]
    Data {
        /// Dataset path or description.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint is missing, incomplete or does not match the run.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// Checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss or gradient norm became NaN or infinite; training stopped without applying the
    /// update or writing a checkpoint.
    #[error(
        "non-finite {what} ({value}) at step {step}: training stopped; the last good checkpoint is {}",
        last_checkpoint.as_ref().map_or_else(|| "none (no checkpoint was written yet)".to_owned(), |p| p.display().to_string())
    )]
    NonFinite {
        /// `loss`, `grad_norm` or `parameters`.
        what: String,
        /// The offending value.
        value: f64,
        /// The optimizer step (1-based) that failed.
        step: u64,
        /// The newest checkpoint written before the failure.
        last_checkpoint: Option<PathBuf>,
    },
    /// Model error (loading, forward, saving).
    #[error(transparent)]
    Model(#[from] infuse_llama_model::Error),
    /// Token store error.
    #[error(transparent)]
    TokenStore(#[from] infuse_data_prep::Error),
    /// A tensor operation failed (readback, dtype).
    #[error("tensor: {0}")]
    Tensor(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn recipe(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Recipe { origin: origin.into(), message: message.into() }
    }
}

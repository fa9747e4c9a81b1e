//! The crate's error type.

use std::path::PathBuf;

/// Error a model implementation returns through [`crate::LogLikelihoodModel`] or
/// [`crate::CompletionModel`]; boxed so that any backend error converts with `?` / `.into()`.
pub type ModelError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while evaluating.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A record in an input file is malformed.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The input file.
        path: PathBuf,
        /// 1-based line number (0 when the whole file is at fault).
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// An argument or configuration value is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The model implementation failed.
    #[error("model: {0}")]
    Model(#[source] ModelError),
    /// The sandbox could not start or supervise a program (not a failure of the program itself).
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// JSON (de)serialization of a result failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

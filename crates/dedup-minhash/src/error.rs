//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while deduplicating.
///
/// Bad input *records* (malformed JSON lines, a missing text field) are not errors: they are counted
/// and listed in [`crate::DedupReport::skipped`]. Errors are reserved for things that stop the run:
/// an invalid configuration, unreadable files, inconsistent shard files.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// The configuration is inconsistent (names the field and the problem).
    #[error("invalid dedup config: {field}: {message}")]
    Config {
        /// The offending field, e.g. `threshold`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// An I/O operation on a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("reading", "creating", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A shard signature file is malformed, truncated, or does not match the others.
    #[error("signature file {path}: {message}")]
    Signatures {
        /// The signature file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The input has no usable files (empty directory, no `.jsonl` files).
    #[error("no input files under {0}")]
    NoInput(PathBuf),
    /// The input changed between passes (a record read back does not match the first pass).
    #[error("input changed between passes: {path} line {line}: {message}")]
    InputChanged {
        /// The input file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What differs.
        message: String,
    },
    /// The distributed environment variables are inconsistent (e.g. `RANK` >= `WORLD_SIZE`).
    #[error("distributed environment: {0}")]
    Environment(String),
    /// A record source reported an error of its own (used by sources outside this crate).
    #[error("record source: {0}")]
    Source(String),
    /// Serializing a report or cluster line failed.
    #[error("serializing {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// Building the rayon thread pool failed.
    #[error("building thread pool: {0}")]
    ThreadPool(String),
}

impl DedupError {
    /// Shorthand for an I/O error on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { op, path: path.into(), source }
    }

    /// Shorthand for a configuration error.
    pub(crate) fn config(field: &'static str, message: impl Into<String>) -> Self {
        Self::Config { field, message: message.into() }
    }
}

/// Result alias for this crate.
pub type Result<T, E = DedupError> = std::result::Result<T, E>;

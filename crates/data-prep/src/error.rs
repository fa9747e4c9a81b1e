//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in data preparation.
///
/// Bad *records* (invalid UTF-8, malformed JSON, missing fields, over-long lines) are not errors:
/// readers report them as [`crate::ReadIssue`]s and the pipeline counts them. Errors are reserved
/// for problems that stop a step: unreadable configuration, unwritable output, a broken tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("cannot read", "cannot write", ...).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The configuration is invalid (unknown key, wrong type, inconsistent values).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A Parquet file could not be read or written.
    #[error("parquet {path}: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What polars reported.
        message: String,
    },
    /// A record failed validation (used by the single-record SFT/preference parsers).
    #[error("line {line}: field `{field}`: {message}")]
    InvalidRecord {
        /// 1-based line number (0 when unknown).
        line: u64,
        /// The offending field, as a path such as `conversations[2].from`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A token store is missing a file, has an inconsistent index, or an unknown version.
    #[error("token store {path}: {message}")]
    TokenStore {
        /// The store directory or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Tokenizing or chat-template rendering failed.
    #[error(transparent)]
    Text(#[from] infuse_text::Error),
    /// Near-duplicate detection failed.
    #[error("dedup: {0}")]
    Dedup(String),
    /// JSON serialization of an output failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

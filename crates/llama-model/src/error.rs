use std::path::PathBuf;

/// Errors of the model crate: every variant names the file (or origin) and the problem.
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
    /// `config.json` (or GGUF metadata) does not describe a valid Llama model.
    #[error("invalid model config {origin}: {message}")]
    InvalidConfig {
        /// File or description.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A safetensors file is malformed (truncated, bad header, offsets past the end, ...).
    #[error("invalid safetensors file {path}: {message}")]
    InvalidSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A GGUF file is malformed or uses something this loader does not support.
    #[error("invalid GGUF file {path}: {message}")]
    InvalidGguf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A weight the model needs is missing from the checkpoint.
    #[error("{origin}: missing tensor `{name}`")]
    MissingTensor {
        /// Checkpoint.
        origin: String,
        /// Tensor name in the checkpoint's naming.
        name: String,
    },
    /// A weight has the wrong shape.
    #[error("{origin}: tensor `{name}` has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Checkpoint.
        origin: String,
        /// Tensor name.
        name: String,
        /// Shape found.
        got: Vec<usize>,
        /// Shape the config implies.
        expected: Vec<usize>,
    },
    /// A tensor dtype that cannot be loaded.
    #[error("{origin}: tensor `{name}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// Checkpoint.
        origin: String,
        /// Tensor name.
        name: String,
        /// The dtype.
        dtype: String,
    },
    /// The model directory has no tokenizer.
    #[error("no tokenizer for {origin}: expected {expected}")]
    MissingTokenizer {
        /// Model path.
        origin: String,
        /// What was looked for.
        expected: String,
    },
    /// Tokenizer or chat template error.
    #[error(transparent)]
    Text(#[from] infuse_text::Error),
    /// The path is neither a HF model directory nor a `.gguf` file.
    #[error("{path}: not a model (expected a directory with config.json and *.safetensors, or a .gguf file)")]
    NotAModel {
        /// The path.
        path: PathBuf,
    },
    /// Invalid input to a model call (token id out of range, sequence too long, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A device that this build does not support.
    #[error("device `{0}` is not available in this build (enable the matching cargo feature: cuda, tch)")]
    UnsupportedDevice(String),
    /// Serialization failure while saving.
    #[error("saving {path}: {message}")]
    Save {
        /// Output path.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

use std::path::PathBuf;

/// Everything that can go wrong while loading tokenizers or rendering chat templates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `tokenizer.json` (or a tokenizer built from metadata) is not a valid tokenizer.
    #[error("invalid tokenizer {origin}: {message}")]
    InvalidTokenizer {
        /// File or other origin of the tokenizer.
        origin: String,
        /// What the tokenizers library reported.
        message: String,
    },
    /// `tokenizer_config.json` is not valid JSON or has a field of the wrong type.
    #[error("invalid tokenizer config {path}: {message}")]
    InvalidTokenizerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Encoding or decoding failed.
    #[error("tokenization failed: {0}")]
    Tokenize(String),
    /// A special token named in the configuration is not in the vocabulary.
    #[error("special token {token:?} ({role}) is not in the vocabulary")]
    UnknownSpecialToken {
        /// The token text.
        token: String,
        /// Its role: bos, eos, pad.
        role: &'static str,
    },
    /// The chat template does not compile.
    #[error("chat template does not compile: {0}")]
    TemplateSyntax(String),
    /// The chat template failed while rendering (including `raise_exception` calls in the template).
    #[error("chat template failed to render: {0}")]
    TemplateRender(String),
    /// The conversation cannot be split into segments because the template is not prefix-stable.
    #[error(
        "chat template is not prefix-stable at message {index}: rendering the first {index} messages \
         is not a prefix of rendering the first {next}; cannot compute assistant loss masks"
    )]
    NotPrefixStable {
        /// Number of messages in the shorter rendering.
        index: usize,
        /// Number of messages in the longer rendering.
        next: usize,
    },
}

//! The uniform document record and the issues readers report instead of failing.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One document, whatever it was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Stable identifier: the input's id field when configured and present, otherwise
    /// `FILE:LINE` (JSONL), `FILE:ROW` (Parquet) or the path relative to the folder root.
    pub id: String,
    /// The document text.
    pub text: String,
    /// Name of the source it came from (the config's source name).
    pub source: String,
    /// Every other field of the input record (JSONL/Parquet), or facts about the file
    /// (`path`, `language`) for folder readers.
    pub metadata: Map<String, Value>,
}

impl Record {
    /// A record with empty metadata.
    pub fn new(id: impl Into<String>, text: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            text: text.into(),
            source: source.into(),
            metadata: Map::new(),
        }
    }
}

/// Kinds of bad input a reader can meet. Each is counted and reported; none stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// The file or directory could not be opened or read.
    Unreadable,
    /// The file is empty (0 bytes, or no record in it).
    EmptyFile,
    /// A line or file is not valid UTF-8.
    InvalidUtf8,
    /// A line is not valid JSON.
    MalformedJson,
    /// A JSON line is valid but not an object.
    NotAnObject,
    /// The configured text field is absent.
    MissingField,
    /// The text field (or another required field) has the wrong type.
    WrongType,
    /// A line or file exceeds the configured size limit.
    TooLong,
    /// A file looks binary (contains NUL bytes).
    Binary,
    /// The text field is empty.
    EmptyText,
    /// A record failed format validation (SFT and preference data).
    Invalid,
}

impl IssueKind {
    /// The snake_case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable",
            Self::EmptyFile => "empty_file",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::MalformedJson => "malformed_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::TooLong => "too_long",
            Self::Binary => "binary",
            Self::EmptyText => "empty_text",
            Self::Invalid => "invalid",
        }
    }
}

/// A piece of bad input, located by file and (where it applies) 1-based line or row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIssue {
    /// The file.
    pub path: PathBuf,
    /// 1-based line (JSONL) or row (Parquet), if the issue is about one record.
    pub line: Option<u64>,
    /// The field concerned, if any (e.g. `text`, `conversations[1].from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What kind of issue.
    pub kind: IssueKind,
    /// A human-readable description.
    pub message: String,
}

impl ReadIssue {
    /// `path:line: kind: message` for logs and reports.
    pub fn location(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{line}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }
}

impl std::fmt::Display for ReadIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location(), self.kind.as_str())?;
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`)")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What a reader yields: a record, or an issue in place of one.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadItem {
    /// A good record.
    Record(Record),
    /// Bad input that was skipped.
    Issue(ReadIssue),
}

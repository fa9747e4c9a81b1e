//! Parquet input and output through polars.
//!
//! The reader takes the text column (a string column, configurable), an optional id column and
//! keeps every other column as metadata (scalars as JSON values; a string column named `metadata`
//! holding JSON objects, as written by [`ParquetRecordWriter`], is expanded back into fields).
//! Files are read in slices of rows, so memory is bounded by the slice size, not the file size.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde_json::{Map, Value};

use crate::record::{IssueKind, ReadIssue, ReadItem, Record};
use crate::shard::Shard;
use crate::write::AtomicFile;
use crate::{Error, Result};

/// Options of the Parquet reader.
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    /// Source name written into each record.
    pub source: String,
    /// Text column (default `text`).
    pub text_field: String,
    /// Id column; `None` or a null value gives `FILE:ROW`.
    pub id_field: Option<String>,
    /// Rows decoded at a time.
    pub batch_rows: usize,
    /// Keep only the rows this shard owns (by global row number over all files, 0-based).
    pub shard: Shard,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        Self {
            source: "default".into(),
            text_field: "text".into(),
            id_field: Some("id".into()),
            batch_rows: 8192,
            shard: Shard::single(),
        }
    }
}

/// Streams records out of Parquet files.
pub struct ParquetReader {
    files: VecDeque<PathBuf>,
    opts: ParquetOptions,
    current: Option<(PathBuf, usize, usize)>, // path, rows, next row
    /// Decoded items with the 1-based row of each record (`None` for issues).
    pending: VecDeque<(Option<u64>, ReadItem)>,
    global_row: u64,
}

impl std::fmt::Debug for ParquetReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetReader")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

fn issue(
    path: &Path,
    line: Option<u64>,
    kind: IssueKind,
    field: Option<&str>,
    message: String,
) -> ReadItem {
    ReadItem::Issue(ReadIssue {
        path: path.to_owned(),
        line,
        field: field.map(str::to_owned),
        kind,
        message,
    })
}

impl ParquetReader {
    /// Read `files` in order.
    pub fn new(files: Vec<PathBuf>, opts: ParquetOptions) -> Self {
        Self {
            files: files.into(),
            opts,
            current: None,
            pending: VecDeque::new(),
            global_row: 0,
        }
    }

    fn open(path: &Path) -> std::result::Result<usize, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let mut reader = polars::prelude::ParquetReader::new(file);
        reader.num_rows().map_err(|e| e.to_string())
    }

    /// The next item, with the 1-based row (in its file) for a record and `None` for an issue
    /// (issues carry their own row, if any). Lets a converter keep row numbers, e.g. a blank
    /// line in place of each skipped row; the plain [`Iterator`] drops the row.
    pub fn next_with_row(&mut self) -> Option<(Option<u64>, ReadItem)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            match self.current.take() {
                None => {
                    let path = self.files.pop_front()?;
                    match Self::open(&path) {
                        Ok(0) => {
                            return Some((
                                None,
                                issue(&path, None, IssueKind::EmptyFile, None, "no rows in file".into()),
                            ));
                        }
                        Ok(rows) => self.current = Some((path, rows, 0)),
                        Err(e) => {
                            return Some((None, issue(&path, None, IssueKind::Unreadable, None, e)));
                        }
                    }
                }
                Some((path, rows, next)) => {
                    let len = self.opts.batch_rows.max(1).min(rows - next);
                    let whole_file_bad = self.read_batch(&path, next, len);
                    if whole_file_bad {
                        // Every slice of the file would fail the same way: one issue per file.
                        self.global_row += (rows - next - len) as u64;
                    } else if next + len < rows {
                        self.current = Some((path, rows, next + len));
                    }
                }
            }
        }
    }

    /// Decode rows `start..start + len` into `pending`; `true` when the whole file is unusable
    /// (the text column is missing).
    fn read_batch(&mut self, path: &Path, start: usize, len: usize) -> bool {
        let df = File::open(path).map_err(|e| e.to_string()).and_then(|f| {
            polars::prelude::ParquetReader::new(f)
                .with_slice(Some((start, len)))
                .finish()
                .map_err(|e| e.to_string())
        });
        let df = match df {
            Ok(df) => df,
            Err(e) => {
                self.pending.push_back((
                    None,
                    issue(
                        path,
                        Some(start as u64 + 1),
                        IssueKind::Unreadable,
                        None,
                        format!("rows {}..={}: {e}", start + 1, start + len),
                    ),
                ));
                self.global_row += len as u64;
                return false;
            }
        };
        let tf = self.opts.text_field.as_str();
        let text_col = match df.column(tf) {
            Ok(c) => c,
            Err(_) => {
                self.pending.push_back((
                    None,
                    issue(
                        path,
                        None,
                        IssueKind::MissingField,
                        Some(tf),
                        "column is missing".into(),
                    ),
                ));
                self.global_row += len as u64;
                return true;
            }
        };
        let other: Vec<&Column> = df
            .columns()
            .iter()
            .filter(|c| c.name().as_str() != tf)
            .collect();
        for row in 0..df.height() {
            let global = self.global_row;
            self.global_row += 1;
            if !self.opts.shard.owns(global) {
                continue;
            }
            let line = (start + row + 1) as u64;
            let text = match text_col.get(row) {
                Ok(AnyValue::String(s)) => s.to_owned(),
                Ok(AnyValue::StringOwned(s)) => s.to_string(),
                Ok(AnyValue::Null) => {
                    self.pending.push_back((None, issue(
                        path,
                        Some(line),
                        IssueKind::MissingField,
                        Some(tf),
                        "text is null".into(),
                    )));
                    continue;
                }
                Ok(other) => {
                    self.pending.push_back((None, issue(
                        path,
                        Some(line),
                        IssueKind::WrongType,
                        Some(tf),
                        format!("expected a string, found {}", other.dtype()),
                    )));
                    continue;
                }
                Err(e) => {
                    self.pending.push_back((None, issue(
                        path,
                        Some(line),
                        IssueKind::Unreadable,
                        Some(tf),
                        e.to_string(),
                    )));
                    continue;
                }
            };
            if text.trim().is_empty() {
                self.pending.push_back((None, issue(
                    path,
                    Some(line),
                    IssueKind::EmptyText,
                    Some(tf),
                    "text is empty".into(),
                )));
                continue;
            }
            let mut metadata = Map::new();
            let mut id = None;
            for col in &other {
                let name = col.name().as_str();
                let value = col.get(row).map(|v| any_to_json(&v)).unwrap_or(Value::Null);
                if Some(name) == self.opts.id_field.as_deref() {
                    id = match value {
                        Value::String(s) => Some(s),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    };
                    continue;
                }
                if name == "metadata"
                    && let Value::String(s) = &value
                    && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(s)
                {
                    metadata.extend(m);
                    continue;
                }
                metadata.insert(name.to_owned(), value);
            }
            let id = id.unwrap_or_else(|| format!("{}:{line}", path.display()));
            self.pending.push_back((
                Some(line),
                ReadItem::Record(Record {
                    id,
                    text,
                    source: self.opts.source.clone(),
                    metadata,
                }),
            ));
        }
        false
    }
}

/// A polars value as JSON (numbers, strings, booleans, null; anything else as its text).
fn any_to_json(v: &AnyValue<'_>) -> Value {
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::String(s) => Value::String((*s).to_owned()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::UInt8(x) => Value::from(*x),
        AnyValue::UInt16(x) => Value::from(*x),
        AnyValue::UInt32(x) => Value::from(*x),
        AnyValue::UInt64(x) => Value::from(*x),
        AnyValue::Int8(x) => Value::from(*x),
        AnyValue::Int16(x) => Value::from(*x),
        AnyValue::Int32(x) => Value::from(*x),
        AnyValue::Int64(x) => Value::from(*x),
        AnyValue::Float32(x) => {
            serde_json::Number::from_f64(f64::from(*x)).map_or(Value::Null, Value::Number)
        }
        AnyValue::Float64(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        AnyValue::List(s) => Value::Array(
            (0..s.len())
                .map(|i| s.get(i).map(|v| any_to_json(&v)).unwrap_or(Value::Null))
                .collect(),
        ),
        other => Value::String(other.to_string()),
    }
}

impl Iterator for ParquetReader {
    type Item = ReadItem;

    fn next(&mut self) -> Option<ReadItem> {
        self.next_with_row().map(|(_, item)| item)
    }
}

/// Writes records to one Parquet file (columns `id`, `text`, `source`, `metadata` as a JSON
/// string) in row groups of 8192 rows, atomically: nothing appears at the path until
/// [`ParquetRecordWriter::finish`].
pub struct ParquetRecordWriter {
    path: PathBuf,
    out: AtomicFile,
    writer: polars::prelude::BatchedWriter<File>,
    ids: Vec<String>,
    texts: Vec<String>,
    sources: Vec<String>,
    metadata: Vec<String>,
    rows: usize,
}

impl std::fmt::Debug for ParquetRecordWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetRecordWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

const PARQUET_BATCH: usize = 8192;

impl ParquetRecordWriter {
    /// Start a writer for `path`.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let out = AtomicFile::create(&path)?;
        let file = out
            .file()
            .try_clone()
            .map_err(|e| Error::io("cannot write", &path, e))?;
        let schema = Schema::from_iter([
            Field::new("id".into(), DataType::String),
            Field::new("text".into(), DataType::String),
            Field::new("source".into(), DataType::String),
            Field::new("metadata".into(), DataType::String),
        ]);
        let writer = ParquetWriter::new(file)
            .batched(&schema)
            .map_err(|e| Error::Parquet {
                path: path.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            path,
            out,
            writer,
            ids: Vec::new(),
            texts: Vec::new(),
            sources: Vec::new(),
            metadata: Vec::new(),
            rows: 0,
        })
    }

    /// Add a record.
    pub fn write(&mut self, r: &Record) -> Result<()> {
        self.ids.push(r.id.clone());
        self.texts.push(r.text.clone());
        self.sources.push(r.source.clone());
        self.metadata.push(serde_json::to_string(&r.metadata)?);
        self.rows += 1;
        if self.ids.len() >= PARQUET_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let n = self.ids.len();
        let perr = |e: PolarsError| Error::Parquet {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let df = DataFrame::new(
            n,
            vec![
                Column::new("id".into(), std::mem::take(&mut self.ids)),
                Column::new("text".into(), std::mem::take(&mut self.texts)),
                Column::new("source".into(), std::mem::take(&mut self.sources)),
                Column::new("metadata".into(), std::mem::take(&mut self.metadata)),
            ],
        )
        .map_err(perr)?;
        self.writer.write_batch(&df).map_err(perr)
    }

    /// Write the remaining rows and the footer, fsync and rename. Returns the number of rows.
    pub fn finish(mut self) -> Result<usize> {
        self.flush()?;
        self.writer.finish().map_err(|e| Error::Parquet {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        self.out.commit()?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_round_trip_keeps_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.parquet");
        let mut w = ParquetRecordWriter::create(&path).expect("create");
        let mut r = Record::new("doc-1", "hello world", "src");
        r.metadata.insert("lang".into(), Value::String("en".into()));
        r.metadata.insert("score".into(), Value::from(3));
        w.write(&r).expect("write");
        w.write(&Record::new("doc-2", "second", "src"))
            .expect("write");
        assert_eq!(w.finish().expect("finish"), 2);
        let opts = ParquetOptions {
            source: "src".into(),
            batch_rows: 1,
            ..ParquetOptions::default()
        };
        let items: Vec<ReadItem> = ParquetReader::new(vec![path.clone()], opts).collect();
        assert_eq!(items.len(), 2);
        let ReadItem::Record(back) = &items[0] else {
            panic!("record expected: {items:?}")
        };
        assert_eq!(back.id, "doc-1");
        assert_eq!(back.text, "hello world");
        assert_eq!(back.metadata.get("lang"), Some(&Value::String("en".into())));
        assert_eq!(back.metadata.get("score"), Some(&Value::from(3)));
        // Missing column and garbage file are issues, not crashes.
        let opts = ParquetOptions {
            text_field: "body".into(),
            ..ParquetOptions::default()
        };
        let items: Vec<ReadItem> = ParquetReader::new(vec![path], opts).collect();
        assert!(matches!(&items[0], ReadItem::Issue(i) if i.kind == IssueKind::MissingField));
        let junk = dir.path().join("junk.parquet");
        std::fs::write(&junk, b"not parquet at all").expect("write");
        let items: Vec<ReadItem> =
            ParquetReader::new(vec![junk], ParquetOptions::default()).collect();
        assert!(matches!(&items[0], ReadItem::Issue(i) if i.kind == IssueKind::Unreadable));
    }
}

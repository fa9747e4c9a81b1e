//! Atomic output files and record writers (JSONL, Parquet).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::parquet::ParquetRecordWriter;
use crate::record::Record;
use crate::{Error, Result};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file written under a temporary name in the target directory, then fsynced and renamed over
/// the target by [`AtomicFile::commit`]. Dropped without commit, the temporary file is removed and
/// the target is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    inner: Option<BufWriter<File>>,
}

/// A temporary sibling path for `target` (same directory, so the final rename is atomic).
pub(crate) fn tmp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// fsync a directory so a rename inside it is durable (best effort on platforms without it).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl AtomicFile {
    /// Create the temporary file (and the target's parent directories).
    pub fn create(target: impl AsRef<Path>) -> Result<Self> {
        let target = target.as_ref().to_owned();
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("cannot create directory", parent, e))?;
        }
        let tmp = tmp_path(&target);
        let file = File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
        Ok(Self {
            target,
            tmp,
            inner: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The target path.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// The underlying file (e.g. to clone its handle for a library that wants to own a writer).
    pub fn file(&self) -> &File {
        #[allow(clippy::unwrap_used)] // `inner` is only taken by commit/drop, which consume self
        self.inner.as_ref().unwrap().get_ref()
    }

    /// Flush, fsync, rename over the target, fsync the directory.
    pub fn commit(mut self) -> Result<()> {
        let Some(inner) = self.inner.take() else {
            return Ok(());
        };
        let file = inner
            .into_inner()
            .map_err(|e| Error::io("cannot write", &self.tmp, e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", &self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.target)
            .map_err(|e| Error::io("cannot rename into", &self.target, e))?;
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent);
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.inner.as_mut() {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.inner.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path.as_ref())?;
    f.write_all(bytes)
        .map_err(|e| Error::io("cannot write", path.as_ref(), e))?;
    f.commit()
}

/// Field names used when writing records as JSON objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordLayout {
    /// Name of the text field (default `text`).
    pub text_field: String,
    /// Name of the id field; `None` leaves the id out (the single-step commands use this to write
    /// back exactly the input's fields).
    pub id_field: Option<String>,
    /// Name of the source field; `None` leaves it out.
    pub source_field: Option<String>,
}

impl Default for RecordLayout {
    fn default() -> Self {
        Self {
            text_field: "text".into(),
            id_field: Some("id".into()),
            source_field: Some("source".into()),
        }
    }
}

impl RecordLayout {
    /// Only the text field and the metadata (every other input field).
    pub fn passthrough(text_field: impl Into<String>) -> Self {
        Self {
            text_field: text_field.into(),
            id_field: None,
            source_field: None,
        }
    }

    /// The record as one JSON line (no newline): id, text, source, then metadata fields in order,
    /// skipping metadata keys that collide with the three.
    pub fn to_json_line(&self, r: &Record) -> Result<String> {
        let mut out = String::with_capacity(r.text.len() + 64);
        out.push('{');
        let mut first = true;
        let mut field = |out: &mut String, key: &str, value: &dyn erased::ToJson| -> Result<()> {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&serde_json::to_string(key)?);
            out.push(':');
            value.write(out)?;
            Ok(())
        };
        if let Some(k) = &self.id_field {
            field(&mut out, k, &r.id.as_str())?;
        }
        field(&mut out, &self.text_field, &r.text.as_str())?;
        if let Some(k) = &self.source_field {
            field(&mut out, k, &r.source.as_str())?;
        }
        for (k, v) in &r.metadata {
            if Some(k) == self.id_field.as_ref()
                || *k == self.text_field
                || Some(k) == self.source_field.as_ref()
            {
                continue;
            }
            field(&mut out, k, v)?;
        }
        out.push('}');
        Ok(out)
    }
}

mod erased {
    /// Something that serializes to JSON text.
    pub(super) trait ToJson {
        fn write(&self, out: &mut String) -> crate::Result<()>;
    }
    impl ToJson for &str {
        fn write(&self, out: &mut String) -> crate::Result<()> {
            out.push_str(&serde_json::to_string(self)?);
            Ok(())
        }
    }
    impl ToJson for serde_json::Value {
        fn write(&self, out: &mut String) -> crate::Result<()> {
            out.push_str(&serde_json::to_string(self)?);
            Ok(())
        }
    }
}

/// Writes JSON lines atomically.
#[derive(Debug)]
pub struct JsonlWriter {
    out: AtomicFile,
    layout: RecordLayout,
    count: u64,
}

impl JsonlWriter {
    /// Start writing `path` with the given record layout.
    pub fn create(path: impl AsRef<Path>, layout: RecordLayout) -> Result<Self> {
        Ok(Self {
            out: AtomicFile::create(path)?,
            layout,
            count: 0,
        })
    }

    /// Write a record.
    pub fn write_record(&mut self, r: &Record) -> Result<()> {
        let line = self.layout.to_json_line(r)?;
        self.write_line(&line)
    }

    /// Write any JSON value as one line.
    pub fn write_value(&mut self, v: &Value) -> Result<()> {
        let line = serde_json::to_string(v)?;
        self.write_line(&line)
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        let path = self.out.path().to_owned();
        self.out
            .write_all(line.as_bytes())
            .map_err(|e| Error::io("cannot write", &path, e))?;
        self.out
            .write_all(b"\n")
            .map_err(|e| Error::io("cannot write", &path, e))?;
        self.count += 1;
        Ok(())
    }

    /// Lines written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Commit the file; returns the number of lines.
    pub fn finish(self) -> Result<u64> {
        let n = self.count;
        self.out.commit()?;
        Ok(n)
    }
}

/// Output format for cleaned records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// JSON lines.
    #[default]
    Jsonl,
    /// Parquet (columns id, text, source, metadata-as-JSON).
    Parquet,
}

impl OutputFormat {
    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Parquet => "parquet",
        }
    }
}

/// A JSONL or Parquet record writer.
#[derive(Debug)]
pub enum RecordWriter {
    /// JSON lines.
    Jsonl(JsonlWriter),
    /// Parquet.
    Parquet(Box<ParquetRecordWriter>),
}

impl RecordWriter {
    /// Start writing `path` in `format`.
    pub fn create(
        path: impl AsRef<Path>,
        format: OutputFormat,
        layout: RecordLayout,
    ) -> Result<Self> {
        Ok(match format {
            OutputFormat::Jsonl => Self::Jsonl(JsonlWriter::create(path, layout)?),
            OutputFormat::Parquet => {
                Self::Parquet(Box::new(ParquetRecordWriter::create(path.as_ref())?))
            }
        })
    }

    /// Write a record.
    pub fn write(&mut self, r: &Record) -> Result<()> {
        match self {
            Self::Jsonl(w) => w.write_record(r),
            Self::Parquet(w) => w.write(r),
        }
    }

    /// Commit the file.
    pub fn finish(self) -> Result<()> {
        match self {
            Self::Jsonl(w) => w.finish().map(|_| ()),
            Self::Parquet(w) => w.finish().map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("sub/out.txt");
        {
            let mut f = AtomicFile::create(&target).expect("create");
            f.write_all(b"partial").expect("write");
            // dropped without commit
        }
        assert!(!target.exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub"))
                .expect("dir")
                .count(),
            0,
            "temp file removed"
        );
        write_atomic(&target, b"done").expect("write");
        assert_eq!(std::fs::read(&target).expect("read"), b"done");
    }

    #[test]
    fn jsonl_layouts() {
        let mut r = Record::new("i1", "hi \"there\"", "web");
        r.metadata
            .insert("url".into(), Value::String("http://x".into()));
        r.metadata
            .insert("text".into(), Value::String("shadowed".into()));
        let full = RecordLayout::default().to_json_line(&r).expect("json");
        assert_eq!(
            full,
            r#"{"id":"i1","text":"hi \"there\"","source":"web","url":"http://x"}"#
        );
        let pass = RecordLayout::passthrough("body")
            .to_json_line(&r)
            .expect("json");
        assert_eq!(
            pass,
            r#"{"body":"hi \"there\"","text":"shadowed","url":"http://x"}"#
        );
    }
}

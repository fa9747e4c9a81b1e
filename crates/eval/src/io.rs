//! File helpers: (gzipped) JSONL reading with line numbers, atomic writes.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use crate::error::{EvalError, Result};

/// Open a file for reading, transparently decompressing `.gz`.
pub(crate) fn open_maybe_gz(path: &Path) -> Result<Box<dyn BufRead>> {
    let f = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    Ok(if gz {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::new(f))
    })
}

/// Read a whole (possibly gzipped) UTF-8 file.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let mut s = String::new();
    open_maybe_gz(path)?
        .read_to_string(&mut s)
        .map_err(|e| EvalError::io(path, e))?;
    Ok(s)
}

/// Parse every non-blank line of a (possibly gzipped) JSONL file with `parse(line_no, value)`.
pub(crate) fn read_jsonl<T>(
    path: &Path,
    mut parse: impl FnMut(usize, serde_json::Value) -> std::result::Result<T, String>,
) -> Result<Vec<T>> {
    let reader = open_maybe_gz(path)?;
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| EvalError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| EvalError::Parse {
                path: path.to_path_buf(),
                line: line_no,
                message: format!("invalid JSON: {e}"),
            })?;
        let item = parse(line_no, value).map_err(|message| EvalError::Parse {
            path: path.to_path_buf(),
            line: line_no,
            message,
        })?;
        out.push(item);
    }
    Ok(out)
}

/// Deserialize a JSON object into `T`, with an error message naming the bad field.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
) -> std::result::Result<T, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| EvalError::io(dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| EvalError::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| EvalError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| EvalError::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_errors_name_the_line() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| EvalError::io("tmp", e))?;
        let p = dir.path().join("x.jsonl");
        write_atomic(&p, b"{\"a\": 1}\n\n{\"a\": \n")?;
        let err = read_jsonl(&p, |_, v| Ok(v))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("x.jsonl:3"), "{err}");
        write_atomic(&p, b"{\"a\": 1}\n\n{\"a\": 2}\n")?;
        let v = read_jsonl(&p, |n, v| Ok((n, v["a"].as_i64())))?;
        assert_eq!(v, vec![(1, Some(1)), (3, Some(2))]);
        Ok(())
    }

    #[test]
    fn gzip_is_transparent() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| EvalError::io("tmp", e))?;
        let p = dir.path().join("x.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"{\"a\": 5}\n")
            .map_err(|e| EvalError::io(&p, e))?;
        let bytes = enc.finish().map_err(|e| EvalError::io(&p, e))?;
        write_atomic(&p, &bytes)?;
        let v = read_jsonl(&p, |_, v| Ok(v["a"].as_i64()))?;
        assert_eq!(v, vec![Some(5)]);
        Ok(())
    }
}

//! JSONL input and output: [`JsonlSource`] (a [`RecordSource`] over a file or a directory of
//! `.jsonl` / `.json` / `.ndjson` files, optionally gzip-compressed) and [`write_jsonl`].
//!
//! Lines are read in large chunks and parsed in parallel; only the text, id and score fields are
//! decoded (borrowed from the line when they contain no escapes), every other field is skipped.
//! Output lines are the input lines byte for byte (kept records), or the input object with only
//! the text field replaced (span granularities), keys and all other values in their original
//! order and spelling.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::Granularity;
use crate::engine::{DedupOutcome, RecordDecision};
use crate::error::{DedupError, Result};
use crate::io::atomic_write_with;
use crate::source::{FetchRequest, RecordKey, RecordSource, ScanBatch, ShardSpec, SkippedRecord, SourceRecord};

/// Which JSON fields hold the text, the id and the (optional) score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldNames {
    /// The text field (a string; records without it are skipped).
    pub text: String,
    /// The id field (a string or number; when absent the id is `FILE:LINE`).
    pub id: Option<String>,
    /// A numeric quality score for [`crate::KeepRule::HighestScore`].
    pub score: Option<String>,
}

impl Default for FieldNames {
    fn default() -> Self {
        Self { text: "text".to_owned(), id: Some("id".to_owned()), score: None }
    }
}

/// Receives `(chunk of whole lines, byte offset of the chunk, index of its first line)`.
type ChunkFn<'a> = dyn FnMut(&[u8], u64, u64) -> Result<()> + 'a;

/// Bytes read per chunk (lines are parsed in parallel per chunk; small enough to stay in cache
/// between parsing and signing).
const CHUNK: usize = 256 << 10;

/// A file or a directory (searched recursively, files sorted by path) of JSON Lines files.
#[derive(Debug, Clone)]
pub struct JsonlSource {
    files: Vec<PathBuf>,
    names: Vec<String>,
    sizes: Vec<u64>,
    fields: FieldNames,
}

fn is_jsonl_name(name: &str) -> bool {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    [".jsonl", ".json", ".ndjson"].iter().any(|ext| name.ends_with(ext))
}

fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DedupError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DedupError::io("listing", dir, e))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| DedupError::io("inspecting", &path, e))?;
        if ft.is_dir() {
            collect_files(&path, out)?;
        } else if is_jsonl_name(&entry.file_name().to_string_lossy()) {
            out.push(path);
        }
    }
    Ok(())
}

impl JsonlSource {
    /// Opens `input`: one file (any name), or a directory whose `*.jsonl`, `*.json`, `*.ndjson`
    /// files (and their `.gz` versions) are read in path order.
    ///
    /// # Errors
    /// [`DedupError::Io`] when `input` cannot be read, [`DedupError::NoInput`] for a directory
    /// without such files.
    pub fn open(input: &Path, fields: FieldNames) -> Result<Self> {
        let meta = std::fs::metadata(input).map_err(|e| DedupError::io("reading", input, e))?;
        let mut files = Vec::new();
        if meta.is_dir() {
            collect_files(input, &mut files)?;
            files.sort();
            if files.is_empty() {
                return Err(DedupError::NoInput(input.to_path_buf()));
            }
        } else {
            files.push(input.to_path_buf());
        }
        let mut sizes = Vec::with_capacity(files.len());
        for f in &files {
            sizes.push(std::fs::metadata(f).map_err(|e| DedupError::io("reading", f, e))?.len());
        }
        let names = files.iter().map(|p| p.display().to_string()).collect();
        Ok(Self { files, names, sizes, fields })
    }

    /// A source over exactly these files, read in the given order, each reported under its own
    /// name (in generated `NAME:LINE` ids, skipped-record entries and the fingerprint) instead of
    /// its path. For callers that convert other formats into temporary JSONL files and want the
    /// report to name the original file (line = row): `infuse dedup` on Parquet does this.
    ///
    /// # Errors
    /// [`DedupError::NoInput`] for an empty list, [`DedupError::Io`] when a file cannot be read.
    pub fn with_names(parts: Vec<(PathBuf, String)>, fields: FieldNames) -> Result<Self> {
        if parts.is_empty() {
            return Err(DedupError::NoInput(PathBuf::new()));
        }
        let mut sizes = Vec::with_capacity(parts.len());
        for (f, _) in &parts {
            sizes.push(std::fs::metadata(f).map_err(|e| DedupError::io("reading", f, e))?.len());
        }
        let (files, names) = parts.into_iter().unzip();
        Ok(Self { files, names, sizes, fields })
    }

    /// The names the parts are reported under (their paths unless given by
    /// [`JsonlSource::with_names`]).
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The input files in order.
    #[must_use]
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The field mapping.
    #[must_use]
    pub fn fields(&self) -> &FieldNames {
        &self.fields
    }

    fn open_reader(&self, part: usize) -> Result<Box<dyn Read + Send>> {
        let path = &self.files[part];
        let file = File::open(path).map_err(|e| DedupError::io("opening", path, e))?;
        Ok(if is_gz(path) { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) })
    }

    /// Calls `f(chunk, offset_of_chunk, index_of_first_line)` with chunks of whole lines.
    fn for_each_chunk(&self, part: usize, f: &mut ChunkFn<'_>) -> Result<()> {
        let path = &self.files[part];
        let mut reader = self.open_reader(part)?;
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + (64 << 10));
        let mut offset = 0u64;
        let mut line_index = 0u64;
        let mut eof = false;
        while !eof || !buf.is_empty() {
            // Fill up to CHUNK bytes (or EOF).
            while !eof && buf.len() < CHUNK {
                let old = buf.len();
                buf.resize(CHUNK.max(old + (64 << 10)), 0);
                let n = loop {
                    match reader.read(&mut buf[old..]) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(DedupError::io("reading", path, e)),
                    }
                };
                buf.truncate(old + n);
                eof = n == 0;
            }
            let end = match memchr::memrchr(b'\n', &buf) {
                Some(p) => p + 1,
                None if eof => buf.len(),
                None => {
                    // A line longer than the buffer: read more.
                    buf.reserve(buf.len());
                    let old = buf.len();
                    buf.resize(old * 2, 0);
                    let n = reader.read(&mut buf[old..]).map_err(|e| DedupError::io("reading", path, e))?;
                    buf.truncate(old + n);
                    eof = n == 0;
                    continue;
                }
            };
            if end == 0 {
                break;
            }
            let lines = memchr::memchr_iter(b'\n', &buf[..end]).count() as u64 + u64::from(buf[end - 1] != b'\n');
            f(&buf[..end], offset, line_index)?;
            offset += end as u64;
            line_index += lines;
            buf.drain(..end);
        }
        Ok(())
    }
}

/// Splits a chunk into `(line_index, byte_offset, line)` (line without `\n` and trailing `\r`).
fn split_lines(chunk: &[u8], offset: u64, first_line: u64) -> Vec<(u64, u64, &[u8])> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut idx = first_line;
    let mut push = |s: usize, e: usize, idx: u64| {
        let mut line = &chunk[s..e];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        out.push((idx, offset + s as u64, line));
    };
    for nl in memchr::memchr_iter(b'\n', chunk) {
        push(start, nl, idx);
        idx += 1;
        start = nl + 1;
    }
    if start < chunk.len() {
        push(start, chunk.len(), idx);
    }
    out
}

/// Reads exactly `buf.len()` bytes at `offset` (one `pread` on Unix).
fn read_at(file: &mut File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }
}

/// The locator of a JSONL line: byte offset (< 2^39) in the high bits and the line's length
/// (without the line break, < 2^24) in the low 24 bits; otherwise the top bit is set and only the
/// offset is kept (the line is then read up to its newline).
fn pack_locator(offset: u64, len: usize) -> u64 {
    if offset < (1 << 39) && len < (1 << 24) {
        (offset << 24) | len as u64
    } else {
        (1 << 63) | offset
    }
}

/// Inverse of [`pack_locator`]: (offset, length if known).
fn unpack_locator(locator: u64) -> (u64, Option<usize>) {
    if locator >> 63 == 1 {
        (locator & !(1 << 63), None)
    } else {
        (locator >> 24, Some((locator & 0xff_ffff) as usize))
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The fields picked out of one line.
#[derive(Debug)]
pub(crate) struct Picked<'de> {
    pub(crate) text: Cow<'de, str>,
    pub(crate) id: Option<Cow<'de, str>>,
    pub(crate) score: Option<f64>,
}

/// Parses one JSONL line, picking the configured fields; `Err` holds the reason to report.
pub(crate) fn parse_line<'a>(line: &'a [u8], fields: &FieldNames) -> std::result::Result<Picked<'a>, String> {
    let line = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8: {e}"))?;
    let picker = Picker { fields };
    let mut de = serde_json::Deserializer::from_str(line);
    let raw = picker.deserialize(&mut de).map_err(|e| format!("invalid JSON: {e}"))?;
    de.end().map_err(|e| format!("invalid JSON: {e}"))?;
    let text = match raw.text {
        Some(AnyValue::Str(s)) => s,
        Some(other) => return Err(format!("field `{}` is {}, not a string", fields.text, other.kind())),
        None => return Err(format!("missing field `{}`", fields.text)),
    };
    let id = match raw.id {
        None | Some(AnyValue::Null) => None,
        Some(AnyValue::Str(s)) => Some(s),
        Some(AnyValue::Num(_, repr)) => Some(Cow::Owned(repr)),
        Some(other) => {
            let name = fields.id.as_deref().unwrap_or_default();
            return Err(format!("field `{name}` is {}, not a string or number", other.kind()));
        }
    };
    let score = match raw.score {
        Some(AnyValue::Num(x, _)) => Some(x),
        _ => None,
    };
    Ok(Picked { text, id, score })
}

struct Picker<'f> {
    fields: &'f FieldNames,
}

struct RawPicked<'de> {
    text: Option<AnyValue<'de>>,
    id: Option<AnyValue<'de>>,
    score: Option<AnyValue<'de>>,
}

impl<'de> DeserializeSeed<'de> for Picker<'_> {
    type Value = RawPicked<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Picker<'_> {
    type Value = RawPicked<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let mut out = RawPicked { text: None, id: None, score: None };
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let key = key.0;
            if key == self.fields.text {
                out.text = Some(map.next_value()?);
            } else if self.fields.id.as_deref() == Some(&*key) {
                out.id = Some(map.next_value()?);
            } else if self.fields.score.as_deref() == Some(&*key) {
                out.score = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// A string, borrowed from the input when it has no escapes.
struct CowStr<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, keeping only what the picker needs.
enum AnyValue<'de> {
    Str(Cow<'de, str>),
    Num(f64, String),
    Null,
    Other(&'static str),
}

impl AnyValue<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Self::Str(_) => "a string",
            Self::Num(..) => "a number",
            Self::Null => "null",
            Self::Other(k) => k,
        }
    }
}

impl<'de> Deserialize<'de> for AnyValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(AnyValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(AnyValue::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(AnyValue::Str(Cow::Owned(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
                Ok(AnyValue::Num(v as f64, v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
                Ok(AnyValue::Num(v as f64, v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
                Ok(AnyValue::Num(v, v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<Self::Value, E> {
                Ok(AnyValue::Other("a boolean"))
            }
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
                Ok(AnyValue::Null)
            }
            fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
                Ok(AnyValue::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnyValue::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyValue::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Replaces the value of `field` in the JSON object `line` with the string `new_text`, keeping
/// every other key and value exactly as written.
pub(crate) fn replace_text_field(line: &str, field: &str, new_text: &str) -> std::result::Result<String, String> {
    struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);
    impl<'de> Deserialize<'de> for Fields<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Fields<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some(k) = map.next_key::<CowStr<'de>>()? {
                        out.push((k.0, map.next_value::<&'de RawValue>()?));
                    }
                    Ok(Fields(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    let fields: Fields<'_> = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(line.len());
    out.push('{');
    for (i, (k, v)) in fields.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).map_err(|e| e.to_string())?);
        out.push(':');
        if k == field {
            out.push_str(&serde_json::to_string(new_text).map_err(|e| e.to_string())?);
        } else {
            out.push_str(v.get());
        }
    }
    out.push('}');
    Ok(out)
}

impl RecordSource for JsonlSource {
    fn parts(&self) -> &[String] {
        &self.names
    }

    fn fingerprint(&self) -> String {
        let files: Vec<String> = self.names.iter().zip(&self.sizes).map(|(n, s)| format!("{n}({s} bytes)")).collect();
        format!(
            "jsonl text={:?} id={:?} score={:?} files=[{}]",
            self.fields.text,
            self.fields.id,
            self.fields.score,
            files.join(", ")
        )
    }

    fn scan(&self, shard: ShardSpec, sink: &mut dyn FnMut(ScanBatch<'_>) -> Result<()>) -> Result<()> {
        // Many files: whole files per shard. Few files: every world-th line of each file.
        let by_file = self.files.len() >= shard.world;
        for part in 0..self.files.len() {
            if by_file && part % shard.world != shard.rank {
                continue;
            }
            let name = &self.names[part];
            let fields = &self.fields;
            self.for_each_chunk(part, &mut |chunk, offset, first_line| {
                let lines: Vec<(u64, u64, &[u8])> = split_lines(chunk, offset, first_line)
                    .into_iter()
                    .filter(|(idx, _, line)| (by_file || *idx % shard.world as u64 == shard.rank as u64) && !is_blank(line))
                    .collect();
                let parsed: Vec<std::result::Result<Picked<'_>, String>> =
                    lines.par_iter().with_min_len(64).map(|(_, _, line)| parse_line(line, fields)).collect();
                let mut batch = ScanBatch { records: Vec::with_capacity(parsed.len()), skipped: Vec::new() };
                for ((idx, off, line), p) in lines.iter().zip(parsed) {
                    match p {
                        Ok(p) => batch.records.push(SourceRecord {
                            key: RecordKey { part: part as u32, index: *idx },
                            locator: pack_locator(*off, line.len()),
                            id: p.id,
                            text: p.text,
                            score: p.score,
                        }),
                        Err(reason) => batch.skipped.push(SkippedRecord { file: name.clone(), line: idx + 1, reason }),
                    }
                }
                sink(batch)
            })?;
        }
        Ok(())
    }

    fn fetch(&self, wanted: &[FetchRequest], visit: &mut dyn FnMut(usize, &str) -> Result<()>) -> Result<()> {
        let mut order: Vec<usize> = (0..wanted.len()).collect();
        order.sort_by_key(|&i| wanted[i].key);
        let mut i = 0;
        while i < order.len() {
            let part = wanted[order[i]].key.part as usize;
            let mut j = i;
            while j < order.len() && wanted[order[j]].key.part as usize == part {
                j += 1;
            }
            let group = &order[i..j];
            let path = self.files.get(part).ok_or_else(|| DedupError::Source(format!("no input part {part}")))?;
            let changed = |line: u64, message: String| DedupError::InputChanged { path: path.clone(), line, message };
            let mut handle = |w: &FetchRequest, k: usize, line: &[u8]| -> Result<()> {
                let mut line = line.strip_suffix(b"\n").unwrap_or(line);
                line = line.strip_suffix(b"\r").unwrap_or(line);
                let picked = parse_line(line, &self.fields).map_err(|e| changed(w.key.index + 1, e))?;
                visit(k, &picked.text)
            };
            if is_gz(path) {
                // No random access: stream the file and pick the wanted lines.
                let mut next = 0;
                self.for_each_chunk(part, &mut |chunk, offset, first_line| {
                    for (idx, _, line) in split_lines(chunk, offset, first_line) {
                        if next < group.len() && wanted[group[next]].key.index < idx {
                            let w = &wanted[group[next]];
                            return Err(changed(w.key.index + 1, "line not found".to_owned()));
                        }
                        if next < group.len() && wanted[group[next]].key.index == idx {
                            handle(&wanted[group[next]], group[next], line)?;
                            next += 1;
                        }
                    }
                    Ok(())
                })?;
                if next < group.len() {
                    return Err(changed(wanted[group[next]].key.index + 1, "line not found (file shorter)".to_owned()));
                }
            } else {
                // Positional reads of exactly the recorded line length (falling back to reading up
                // to the newline when the length was not recorded).
                let mut file = File::open(path).map_err(|e| DedupError::io("opening", path, e))?;
                let mut line = Vec::new();
                for &k in group {
                    let w = &wanted[k];
                    let (offset, len) = unpack_locator(w.locator);
                    line.clear();
                    match len {
                        Some(len) => {
                            line.resize(len, 0);
                            read_at(&mut file, &mut line, offset).map_err(|e| DedupError::io("reading", path, e))?;
                        }
                        None => {
                            file.seek(SeekFrom::Start(offset)).map_err(|e| DedupError::io("seeking", path, e))?;
                            BufReader::new(&mut file).read_until(b'\n', &mut line).map_err(|e| DedupError::io("reading", path, e))?;
                        }
                    }
                    handle(w, k, &line)?;
                }
            }
            i = j;
        }
        Ok(())
    }
}

/// Counts of what [`write_jsonl`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Lines written.
    pub written: u64,
    /// Of those, lines whose text field was rewritten (spans removed).
    pub edited: u64,
}

/// Writes the kept records of `source` to `output` (atomically; gzip when it ends in `.gz`):
/// kept lines byte for byte (line breaks included), edited lines with only the text field
/// replaced; dropped, malformed and blank lines are left out.
///
/// # Errors
/// I/O errors, or [`DedupError::InputChanged`] when a record no longer matches the first pass.
pub fn write_jsonl(source: &JsonlSource, outcome: &DedupOutcome, granularity: Granularity, output: &Path) -> Result<WriteCounts> {
    for f in source.files() {
        if same_file(f, output) {
            return Err(DedupError::config("output", format!("{} is also an input file", output.display())));
        }
    }
    let mut counts = WriteCounts::default();
    atomic_write_with(output, |w| {
        if is_gz(output) {
            let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
            write_lines(source, outcome, granularity, output, &mut gz, &mut counts)?;
            gz.try_finish().map_err(|e| DedupError::io("writing", output, e))
        } else {
            write_lines(source, outcome, granularity, output, w, &mut counts)
        }
    })?;
    Ok(counts)
}

/// The body of [`write_jsonl`]: runs of consecutive kept lines are copied as one slice.
fn write_lines(
    source: &JsonlSource,
    outcome: &DedupOutcome,
    granularity: Granularity,
    output: &Path,
    w: &mut dyn Write,
    counts: &mut WriteCounts,
) -> Result<()> {
    let werr = |e| DedupError::io("writing", output, e);
    let mut decisions = outcome.decisions().peekable();
    for part in 0..source.files().len() {
        let path = &source.files()[part];
        source.for_each_chunk(part, &mut |chunk, _offset, first_line| {
            // `run` is a byte range of `chunk` made of whole kept lines (with their line breaks).
            let mut run = 0..0;
            let mut start = 0;
            let mut idx = first_line;
            while start < chunk.len() {
                let (end, next) = match memchr::memchr(b'\n', &chunk[start..]) {
                    Some(p) => (start + p, start + p + 1),
                    None => (chunk.len(), chunk.len()),
                };
                let raw = &chunk[start..end];
                let line = raw.strip_suffix(b"\r").unwrap_or(raw);
                let key = RecordKey { part: part as u32, index: idx };
                while decisions.peek().is_some_and(|(k, _)| *k < key) {
                    decisions.next();
                }
                let decision = decisions.peek().filter(|(k, _)| *k == key).map(|(_, d)| *d);
                match decision {
                    Some(RecordDecision::Keep) if next > end => {
                        // Kept and terminated by a line break: extend the run.
                        if run.end != start {
                            w.write_all(&chunk[run.clone()]).map_err(werr)?;
                            run = start..start;
                        }
                        run.end = next;
                        counts.written += 1;
                    }
                    Some(RecordDecision::Keep) => {
                        // The last line of a file without a final line break.
                        w.write_all(&chunk[run.clone()]).map_err(werr)?;
                        run = next..next;
                        w.write_all(line).map_err(werr)?;
                        w.write_all(b"\n").map_err(werr)?;
                        counts.written += 1;
                    }
                    Some(decision @ RecordDecision::RemoveSpans(_)) => {
                        w.write_all(&chunk[run.clone()]).map_err(werr)?;
                        run = next..next;
                        let changed = |m: String| DedupError::InputChanged { path: path.clone(), line: idx + 1, message: m };
                        let picked = parse_line(line, &source.fields).map_err(changed)?;
                        if Some(picked.text.len() as u64) != outcome.text_len(key) {
                            return Err(changed("text length differs from the first pass".to_owned()));
                        }
                        let new_text = decision.apply(&picked.text, granularity).unwrap_or_default();
                        let line_str = std::str::from_utf8(line).map_err(|e| changed(e.to_string()))?;
                        let new_line = replace_text_field(line_str, &source.fields.text, &new_text).map_err(changed)?;
                        w.write_all(new_line.as_bytes()).map_err(werr)?;
                        w.write_all(b"\n").map_err(werr)?;
                        counts.written += 1;
                        counts.edited += 1;
                    }
                    // Dropped, malformed or blank: leave it out.
                    _ => {
                        w.write_all(&chunk[run.clone()]).map_err(werr)?;
                        run = next..next;
                    }
                }
                start = next;
                idx += 1;
            }
            w.write_all(&chunk[run]).map_err(werr)
        })?;
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_fields_and_reports_problems() {
        let f = FieldNames { score: Some("q".into()), ..FieldNames::default() };
        let p = parse_line(br#"{"id": 7, "meta": {"x": [1, 2]}, "text": "a\nb", "q": 0.5}"#, &f).ok().unwrap_or_else(|| panic!("parse"));
        assert_eq!(p.text, "a\nb");
        assert_eq!(p.id.as_deref(), Some("7"));
        assert_eq!(p.score, Some(0.5));
        let borrowed = parse_line(br#"{"text": "plain"}"#, &f).ok().unwrap_or_else(|| panic!("parse"));
        assert!(matches!(borrowed.text, Cow::Borrowed(_)));
        let err = |l: &[u8]| parse_line(l, &f).err().unwrap_or_default();
        assert!(err(br#"{"id": 1}"#).contains("missing field `text`"));
        assert!(err(br#"{"text": 3}"#).contains("is a number, not a string"));
        assert!(err(br#"{"text": "x"} trailing"#).contains("invalid JSON"));
        assert!(err(b"[1, 2]").contains("invalid JSON"));
        assert!(err(b"{\"text\": \"\xff\"}").contains("invalid UTF-8"));
        assert!(err(br#"{"text": "x", "id": [1]}"#).contains("not a string or number"));
    }

    #[test]
    fn replaces_only_the_text_field() {
        let line = r#"{"id":"a","text":"old \"x\"","meta":{"k": [1, 2.50]},"n":null}"#;
        let out = replace_text_field(line, "text", "new\nline").unwrap_or_default();
        assert_eq!(out, r#"{"id":"a","text":"new\nline","meta":{"k": [1, 2.50]},"n":null}"#);
    }

    #[test]
    fn locators_round_trip() {
        assert_eq!(unpack_locator(pack_locator(12345, 678)), (12345, Some(678)));
        assert_eq!(unpack_locator(pack_locator(1 << 40, 5)), (1 << 40, None));
        assert_eq!(unpack_locator(pack_locator(7, 1 << 25)), (7, None));
    }

    #[test]
    fn named_parts_name_ids_and_skips() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (a, b) = (dir.path().join("a.tmp"), dir.path().join("b.tmp"));
        std::fs::write(&a, "{\"text\": \"one two\"}\n\n{\"text\": \"three\"}\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&b, "not json\n").unwrap_or_else(|e| panic!("{e}"));
        let src = JsonlSource::with_names(vec![(b, "second.parquet".into()), (a, "first.parquet".into())], FieldNames::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(src.names(), ["second.parquet", "first.parquet"]);
        let mut ids = Vec::new();
        let mut skipped = Vec::new();
        src.scan(ShardSpec::SINGLE, &mut |batch| {
            ids.extend(batch.records.iter().map(|r| (r.key.part, r.key.index)));
            skipped.extend(batch.skipped);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        // Blank lines keep their line numbers (so a converter can keep row numbers aligned).
        assert_eq!(ids, [(1, 0), (1, 2)]);
        assert_eq!(skipped.len(), 1);
        assert_eq!((skipped[0].file.as_str(), skipped[0].line), ("second.parquet", 1));
        assert!(src.fingerprint().contains("first.parquet"));
        assert!(matches!(JsonlSource::with_names(Vec::new(), FieldNames::default()), Err(DedupError::NoInput(_))));
    }

    #[test]
    fn lines_with_offsets() {
        let chunk = b"a\r\nbb\n\nccc";
        let lines = split_lines(chunk, 100, 5);
        assert_eq!(lines, vec![(5, 100, &b"a"[..]), (6, 103, &b"bb"[..]), (7, 106, &b""[..]), (8, 107, &b"ccc"[..])]);
    }
}

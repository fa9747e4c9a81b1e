//! Readers: JSONL (optionally gzipped), Parquet, folders of text/Markdown, source-code repositories.
//!
//! Every reader is an iterator of [`ReadItem`]s. Bad input never stops it: an unreadable file, a
//! line that is not JSON, invalid UTF-8, a missing text field or a line longer than the limit each
//! become a [`ReadIssue`] naming the file and line, and reading goes on with the next line or file.
//! Files and directory entries are visited in sorted order, so a re-run sees the same sequence.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::code::{self, CodeSkip};
use crate::record::{IssueKind, ReadIssue, ReadItem, Record};
use crate::shard::Shard;

/// Default cap on one JSONL line or one text file: 64 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 << 20;

/// Options of the JSONL reader.
#[derive(Debug, Clone)]
pub struct JsonlOptions {
    /// Source name written into each record.
    pub source: String,
    /// Field holding the text (default `text`).
    pub text_field: String,
    /// Field holding the id; `None` or absent in a record gives `FILE:LINE`.
    pub id_field: Option<String>,
    /// Longer lines are skipped and reported as [`IssueKind::TooLong`] (without being held in memory).
    pub max_line_bytes: usize,
    /// Keep only the lines this shard owns (by global line number over all files, 0-based).
    pub shard: Shard,
}

impl Default for JsonlOptions {
    fn default() -> Self {
        Self {
            source: "default".into(),
            text_field: "text".into(),
            id_field: Some("id".into()),
            max_line_bytes: DEFAULT_MAX_RECORD_BYTES,
            shard: Shard::single(),
        }
    }
}

/// What a capped line read produced.
enum Line {
    /// The line is in the buffer, without its line terminator.
    Complete,
    /// The line was longer than the cap; its length in bytes.
    TooLong(u64),
}

/// Read one line into `buf` (terminator stripped), never buffering more than `cap` bytes of it.
/// `Ok(None)` at end of input.
fn read_line_capped<R: BufRead + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<Line>> {
    buf.clear();
    let mut total: u64 = 0;
    let mut too_long = false;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            if total == 0 {
                return Ok(None);
            }
            break;
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if !too_long {
            if buf.len() + take > cap.saturating_add(1) {
                too_long = true;
                buf.clear();
                buf.shrink_to(1 << 16);
            } else {
                buf.extend_from_slice(&available[..take]);
            }
        }
        total += take as u64;
        r.consume(take);
        if done {
            break;
        }
    }
    if too_long {
        return Ok(Some(Line::TooLong(total)));
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(Some(Line::Complete))
}

/// Open a file for buffered reading, transparently gunzipping `*.gz`.
pub(crate) fn open_maybe_gz(path: &Path) -> std::io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path)?;
    let is_gz = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    Ok(if is_gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(file),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, file))
    })
}

/// One JSON line of a file: a parsed object with its location, or the issue replacing it.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonLine {
    /// A JSON object.
    Object {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The object.
        map: Map<String, Value>,
    },
    /// Bad input.
    Issue(ReadIssue),
}

/// Streams JSON objects out of JSON-lines files (gzipped when named `*.gz`), one line at a time
/// with a cap on line length, reporting every bad line as a [`ReadIssue`].
pub struct JsonLines {
    files: VecDeque<PathBuf>,
    max_line_bytes: usize,
    shard: Shard,
    current: Option<(PathBuf, Box<dyn BufRead + Send>)>,
    line: u64,
    nonblank_in_file: u64,
    global_line: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for JsonLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLines")
            .field("files", &self.files)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl JsonLines {
    /// Read `files` in order, keeping the lines `shard` owns (by global line number, 0-based).
    pub fn new(files: Vec<PathBuf>, max_line_bytes: usize, shard: Shard) -> Self {
        Self {
            files: files.into(),
            max_line_bytes,
            shard,
            current: None,
            line: 0,
            nonblank_in_file: 0,
            global_line: 0,
            buf: Vec::new(),
        }
    }

    fn issue(&self, path: &Path, kind: IssueKind, message: String) -> JsonLine {
        JsonLine::Issue(ReadIssue {
            path: path.to_owned(),
            line: Some(self.line),
            field: None,
            kind,
            message,
        })
    }

    fn parse_line(&self, path: &Path) -> JsonLine {
        let text = match std::str::from_utf8(&self.buf) {
            Ok(t) => t,
            Err(e) => {
                return self.issue(
                    path,
                    IssueKind::InvalidUtf8,
                    format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                );
            }
        };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => JsonLine::Object {
                path: path.to_owned(),
                line: self.line,
                map,
            },
            Ok(_) => self.issue(
                path,
                IssueKind::NotAnObject,
                "a JSONL line must be a JSON object".into(),
            ),
            Err(e) => self.issue(path, IssueKind::MalformedJson, e.to_string()),
        }
    }
}

impl Iterator for JsonLines {
    type Item = JsonLine;

    fn next(&mut self) -> Option<JsonLine> {
        loop {
            if self.current.is_none() {
                let path = self.files.pop_front()?;
                self.line = 0;
                self.nonblank_in_file = 0;
                match open_maybe_gz(&path) {
                    Ok(r) => self.current = Some((path, r)),
                    Err(e) => {
                        return Some(JsonLine::Issue(ReadIssue {
                            path,
                            line: None,
                            field: None,
                            kind: IssueKind::Unreadable,
                            message: e.to_string(),
                        }));
                    }
                }
            }
            let (path, reader) = self.current.as_mut()?;
            let path = path.clone();
            let res = read_line_capped(reader.as_mut(), &mut self.buf, self.max_line_bytes);
            match res {
                Ok(None) => {
                    self.current = None;
                    if self.nonblank_in_file == 0 {
                        return Some(JsonLine::Issue(ReadIssue {
                            path,
                            line: None,
                            field: None,
                            kind: IssueKind::EmptyFile,
                            message: "no records in file".into(),
                        }));
                    }
                }
                Err(e) => {
                    self.current = None;
                    self.line += 1;
                    return Some(self.issue(
                        &path,
                        IssueKind::Unreadable,
                        format!("read error: {e}"),
                    ));
                }
                Ok(Some(line)) => {
                    self.line += 1;
                    let global = self.global_line;
                    self.global_line += 1;
                    if self.line == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
                        self.buf.drain(..3);
                    }
                    match line {
                        Line::TooLong(len) => {
                            self.nonblank_in_file += 1;
                            if self.shard.owns(global) {
                                let cap = self.max_line_bytes;
                                return Some(self.issue(
                                    &path,
                                    IssueKind::TooLong,
                                    format!("line of {len} bytes exceeds the limit of {cap} bytes"),
                                ));
                            }
                        }
                        Line::Complete => {
                            if self.buf.iter().all(u8::is_ascii_whitespace) {
                                continue;
                            }
                            self.nonblank_in_file += 1;
                            if self.shard.owns(global) {
                                return Some(self.parse_line(&path));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// JSONL reader over one or more files: records with the configured text and id fields, every
/// other field kept as metadata.
#[derive(Debug)]
pub struct JsonlReader {
    lines: JsonLines,
    opts: JsonlOptions,
}

impl JsonlReader {
    /// Read `files` in the given order.
    pub fn new(files: Vec<PathBuf>, opts: JsonlOptions) -> Self {
        Self {
            lines: JsonLines::new(files, opts.max_line_bytes, opts.shard),
            opts,
        }
    }

    fn to_record(&self, path: &Path, line: u64, mut map: Map<String, Value>) -> ReadItem {
        let issue = |kind, field: &str, message: String| {
            ReadItem::Issue(ReadIssue {
                path: path.to_owned(),
                line: Some(line),
                field: Some(field.to_owned()),
                kind,
                message,
            })
        };
        let tf = self.opts.text_field.as_str();
        let text = match map.remove(tf) {
            Some(Value::String(s)) => s,
            Some(other) => {
                return issue(
                    IssueKind::WrongType,
                    tf,
                    format!("expected a string, found {}", json_type(&other)),
                );
            }
            None => return issue(IssueKind::MissingField, tf, "field is missing".into()),
        };
        if text.trim().is_empty() {
            return issue(IssueKind::EmptyText, tf, "text is empty".into());
        }
        let id = self
            .opts
            .id_field
            .as_deref()
            .and_then(|f| map.remove(f))
            .and_then(|v| match v {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| format!("{}:{line}", path.display()));
        ReadItem::Record(Record {
            id,
            text,
            source: self.opts.source.clone(),
            metadata: map,
        })
    }
}

/// Human-readable JSON type name for messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Iterator for JsonlReader {
    type Item = ReadItem;

    fn next(&mut self) -> Option<ReadItem> {
        match self.lines.next()? {
            JsonLine::Object { path, line, map } => Some(self.to_record(&path, line, map)),
            JsonLine::Issue(i) => Some(ReadItem::Issue(i)),
        }
    }
}

/// Expand input specs into a sorted file list: a file is taken as is, a directory is walked
/// recursively for files whose name ends with one of `suffixes`, and a `*` in the last path
/// component matches any run of characters. A spec that matches nothing is an issue.
pub fn expand_inputs(specs: &[PathBuf], suffixes: &[&str]) -> (Vec<PathBuf>, Vec<ReadIssue>) {
    let mut files = Vec::new();
    let mut issues = Vec::new();
    let unreadable = |path: &Path, message: String| ReadIssue {
        path: path.to_owned(),
        line: None,
        field: None,
        kind: IssueKind::Unreadable,
        message,
    };
    for spec in specs {
        let name = spec.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.contains('*') {
            let dir = spec
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut matched: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok())
                        .filter(|e| {
                            e.file_name()
                                .to_str()
                                .is_some_and(|n| wildcard_match(name, n))
                        })
                        .map(|e| e.path())
                        .filter(|p| p.is_file())
                        .collect();
                    matched.sort();
                    if matched.is_empty() {
                        issues.push(unreadable(spec, "pattern matches no file".into()));
                    }
                    files.extend(matched);
                }
                Err(e) => issues.push(unreadable(dir, e.to_string())),
            }
        } else if spec.is_dir() {
            let (found, walk_issues) = walk(spec, &|_| true);
            issues.extend(walk_issues);
            let before = files.len();
            files.extend(found.into_iter().filter(|p| {
                let n = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                suffixes.iter().any(|s| n.ends_with(s))
            }));
            if files.len() == before {
                issues.push(unreadable(
                    spec,
                    format!("directory has no file ending in {}", suffixes.join(", ")),
                ));
            }
        } else if spec.is_file() {
            files.push(spec.clone());
        } else {
            issues.push(unreadable(spec, "no such file or directory".into()));
        }
    }
    (files, issues)
}

/// `*` wildcard matching (no other metacharacters).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(pos) = rest.find(part) else {
                return false;
            };
            rest = &rest[pos + part.len()..];
        }
    }
    rest.is_empty()
}

/// Walk `root` recursively in sorted order without following symlinks; `enter_dir(name)` decides
/// whether to descend into a directory. Returns files and unreadable-directory issues.
pub(crate) fn walk(
    root: &Path,
    enter_dir: &dyn Fn(&str) -> bool,
) -> (Vec<PathBuf>, Vec<ReadIssue>) {
    let mut files = Vec::new();
    let mut issues = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                issues.push(ReadIssue {
                    path: dir,
                    line: None,
                    field: None,
                    kind: IssueKind::Unreadable,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for entry in entries {
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                if entry.file_name().to_str().is_some_and(enter_dir) {
                    subdirs.push(entry.path());
                }
            } else if ft.is_file() {
                files.push(entry.path());
            }
        }
        // Depth-first in sorted order: push in reverse so the smallest name is visited first.
        stack.extend(subdirs.into_iter().rev());
    }
    files.sort();
    (files, issues)
}

/// Read a whole file with a size cap, checking for binary content and UTF-8.
/// Returns the text or the issue that replaces it.
pub(crate) fn read_text_file(path: &Path, max_bytes: usize) -> Result<String, ReadIssue> {
    let issue = |kind, message: String| ReadIssue {
        path: path.to_owned(),
        line: None,
        field: None,
        kind,
        message,
    };
    let file = File::open(path).map_err(|e| issue(IssueKind::Unreadable, e.to_string()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > max_bytes as u64 {
        return Err(issue(
            IssueKind::TooLong,
            format!("file of {len} bytes exceeds the limit of {max_bytes} bytes"),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| issue(IssueKind::Unreadable, e.to_string()))?;
    if bytes.len() > max_bytes {
        return Err(issue(
            IssueKind::TooLong,
            format!("file exceeds the limit of {max_bytes} bytes"),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(issue(IssueKind::EmptyFile, "file is empty".into()));
    }
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Err(issue(IssueKind::Binary, "file contains NUL bytes".into()));
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|e| {
        issue(
            IssueKind::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
        )
    })
}

/// Options of the plain-text / Markdown folder reader.
#[derive(Debug, Clone)]
pub struct FolderOptions {
    /// Source name written into each record.
    pub source: String,
    /// File name suffixes to read (lower case), default `.txt .md .markdown .rst .text`.
    pub extensions: Vec<String>,
    /// Larger files are skipped as [`IssueKind::TooLong`].
    pub max_file_bytes: usize,
    /// Keep only the files this shard owns (by position in the sorted file list).
    pub shard: Shard,
}

impl Default for FolderOptions {
    fn default() -> Self {
        Self {
            source: "default".into(),
            extensions: [".txt", ".md", ".markdown", ".rst", ".text"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            max_file_bytes: DEFAULT_MAX_RECORD_BYTES,
            shard: Shard::single(),
        }
    }
}

/// Reads every matching file under one or more roots as one record; id = path relative to its root.
#[derive(Debug)]
pub struct FolderReader {
    pending: VecDeque<ReadItem>,
    files: VecDeque<(PathBuf, PathBuf, u64)>,
    opts: FolderOptions,
}

impl FolderReader {
    /// Walk `roots` (directories or single files).
    pub fn new(roots: &[PathBuf], opts: FolderOptions) -> Self {
        let mut pending = VecDeque::new();
        let mut files = VecDeque::new();
        let mut index = 0u64;
        for root in roots {
            let (found, issues) = if root.is_file() {
                (vec![root.clone()], Vec::new())
            } else if root.is_dir() {
                walk(root, &|name| !name.starts_with('.'))
            } else {
                (
                    Vec::new(),
                    vec![ReadIssue {
                        path: root.clone(),
                        line: None,
                        field: None,
                        kind: IssueKind::Unreadable,
                        message: "no such file or directory".into(),
                    }],
                )
            };
            pending.extend(issues.into_iter().map(ReadItem::Issue));
            for f in found {
                let name = f
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if root.is_file() || opts.extensions.iter().any(|e| name.ends_with(e.as_str())) {
                    files.push_back((root.clone(), f, index));
                    index += 1;
                }
            }
        }
        Self {
            pending,
            files,
            opts,
        }
    }
}

fn relative_id(root: &Path, path: &Path) -> String {
    if root == path {
        return path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

impl Iterator for FolderReader {
    type Item = ReadItem;

    fn next(&mut self) -> Option<ReadItem> {
        if let Some(item) = self.pending.pop_front() {
            return Some(item);
        }
        loop {
            let (root, path, index) = self.files.pop_front()?;
            if !self.opts.shard.owns(index) {
                continue;
            }
            return Some(match read_text_file(&path, self.opts.max_file_bytes) {
                Ok(text) => {
                    let id = relative_id(&root, &path);
                    let mut metadata = Map::new();
                    metadata.insert("path".into(), Value::String(id.clone()));
                    ReadItem::Record(Record {
                        id,
                        text,
                        source: self.opts.source.clone(),
                        metadata,
                    })
                }
                Err(issue) => ReadItem::Issue(issue),
            });
        }
    }
}

/// Options of the source-code repository reader.
#[derive(Debug, Clone)]
pub struct CodeOptions {
    /// Source name written into each record.
    pub source: String,
    /// Only these languages (names as in [`crate::code::language_for`]); empty = all known.
    pub languages: Vec<String>,
    /// Extra directory names to skip, on top of [`crate::code::VENDORED_DIRS`].
    pub skip_dirs: Vec<String>,
    /// Larger files are skipped (reason `too_large`). Default 1 MiB: bigger source files are
    /// almost always data or generated.
    pub max_file_bytes: usize,
    /// Keep only the files this shard owns (by position in the sorted file list).
    pub shard: Shard,
}

impl Default for CodeOptions {
    fn default() -> Self {
        Self {
            source: "code".into(),
            languages: Vec::new(),
            skip_dirs: Vec::new(),
            max_file_bytes: 1 << 20,
            shard: Shard::single(),
        }
    }
}

/// Reads source files of a repository: language from the extension (or file name), skipping
/// vendored directories, lock files, generated files and binaries, each reported as a
/// [`CodeItem::Skipped`] with its reason.
#[derive(Debug)]
pub struct CodeReader {
    pending: VecDeque<CodeItem>,
    files: VecDeque<(PathBuf, PathBuf, &'static str, u64)>,
    opts: CodeOptions,
}

/// What the code reader yields.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeItem {
    /// A record or a read issue.
    Item(ReadItem),
    /// A file deliberately skipped, with the reason.
    Skipped {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: CodeSkip,
    },
}

impl CodeReader {
    /// Walk `roots` (repository directories).
    pub fn new(roots: &[PathBuf], opts: CodeOptions) -> Self {
        let mut pending = VecDeque::new();
        let mut files = VecDeque::new();
        let mut index = 0u64;
        for root in roots {
            if !root.is_dir() {
                pending.push_back(CodeItem::Item(ReadItem::Issue(ReadIssue {
                    path: root.clone(),
                    line: None,
                    field: None,
                    kind: IssueKind::Unreadable,
                    message: "not a directory".into(),
                })));
                continue;
            }
            let skip_dirs = opts.skip_dirs.clone();
            let (found, issues) = walk(root, &move |name| {
                !code::is_vendored_dir(name) && !skip_dirs.iter().any(|d| d == name)
            });
            pending.extend(
                issues
                    .into_iter()
                    .map(|i| CodeItem::Item(ReadItem::Issue(i))),
            );
            for f in found {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if code::is_lock_file(name) {
                    pending.push_back(CodeItem::Skipped {
                        path: f,
                        reason: CodeSkip::LockFile,
                    });
                    continue;
                }
                if code::is_generated_name(name) {
                    pending.push_back(CodeItem::Skipped {
                        path: f,
                        reason: CodeSkip::Generated,
                    });
                    continue;
                }
                match code::language_for(name) {
                    Some(lang)
                        if opts.languages.is_empty()
                            || opts.languages.iter().any(|l| l.eq_ignore_ascii_case(lang)) =>
                    {
                        files.push_back((root.clone(), f, lang, index));
                        index += 1;
                    }
                    _ => pending.push_back(CodeItem::Skipped {
                        path: f,
                        reason: CodeSkip::UnknownLanguage,
                    }),
                }
            }
        }
        Self {
            pending,
            files,
            opts,
        }
    }
}

impl Iterator for CodeReader {
    type Item = CodeItem;

    fn next(&mut self) -> Option<CodeItem> {
        if let Some(item) = self.pending.pop_front() {
            return Some(item);
        }
        loop {
            let (root, path, lang, index) = self.files.pop_front()?;
            if !self.opts.shard.owns(index) {
                continue;
            }
            return Some(match read_text_file(&path, self.opts.max_file_bytes) {
                Ok(text) => {
                    if code::has_generated_marker(&text) {
                        CodeItem::Skipped {
                            path,
                            reason: CodeSkip::Generated,
                        }
                    } else {
                        let id = relative_id(&root, &path);
                        let mut metadata = Map::new();
                        metadata.insert("path".into(), Value::String(id.clone()));
                        metadata.insert("language".into(), Value::String(lang.to_owned()));
                        if let Some(repo) = root.file_name() {
                            metadata.insert(
                                "repo".into(),
                                Value::String(repo.to_string_lossy().into_owned()),
                            );
                        }
                        CodeItem::Item(ReadItem::Record(Record {
                            id,
                            text,
                            source: self.opts.source.clone(),
                            metadata,
                        }))
                    }
                }
                Err(issue) => match issue.kind {
                    IssueKind::Binary | IssueKind::InvalidUtf8 => CodeItem::Skipped {
                        path,
                        reason: CodeSkip::Binary,
                    },
                    IssueKind::TooLong => CodeItem::Skipped {
                        path,
                        reason: CodeSkip::TooLarge,
                    },
                    _ => CodeItem::Item(ReadItem::Issue(issue)),
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(files: Vec<PathBuf>, opts: JsonlOptions) -> (Vec<Record>, Vec<ReadIssue>) {
        let mut recs = Vec::new();
        let mut issues = Vec::new();
        for item in JsonlReader::new(files, opts) {
            match item {
                ReadItem::Record(r) => recs.push(r),
                ReadItem::Issue(i) => issues.push(i),
            }
        }
        (recs, issues)
    }

    #[test]
    fn jsonl_bad_lines_are_issues_with_line_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.jsonl");
        let mut data = Vec::new();
        data.extend_from_slice(b"{\"id\": 7, \"text\": \"hello\", \"lang\": \"en\"}\n");
        data.extend_from_slice(b"{not json\n");
        data.extend_from_slice(b"\n");
        data.extend_from_slice(b"{\"text\": \"bad \xff utf8\"}\r\n");
        data.extend_from_slice(b"[1,2]\n");
        data.extend_from_slice(b"{\"body\": \"x\"}\n");
        data.extend_from_slice(b"{\"text\": 5}\n");
        data.extend_from_slice(b"{\"text\": \"ok two\"}");
        std::fs::write(&p, data).expect("write");
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "").expect("write");
        let missing = dir.path().join("missing.jsonl");
        let (recs, issues) = collect(
            vec![p.clone(), empty.clone(), missing],
            JsonlOptions::default(),
        );
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].id, "7");
        assert_eq!(
            recs[0].metadata.get("lang"),
            Some(&Value::String("en".into()))
        );
        assert_eq!(recs[1].id, format!("{}:8", p.display()));
        assert_eq!(recs[1].text, "ok two");
        let kinds: Vec<(Option<u64>, IssueKind)> =
            issues.iter().map(|i| (i.line, i.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (Some(2), IssueKind::MalformedJson),
                (Some(4), IssueKind::InvalidUtf8),
                (Some(5), IssueKind::NotAnObject),
                (Some(6), IssueKind::MissingField),
                (Some(7), IssueKind::WrongType),
                (None, IssueKind::EmptyFile),
                (None, IssueKind::Unreadable),
            ]
        );
        assert_eq!(issues[3].field.as_deref(), Some("text"));
    }

    #[test]
    fn over_long_line_is_skipped_without_buffering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("big.jsonl");
        let mut data = b"{\"text\": \"".to_vec();
        data.extend(std::iter::repeat_n(b'a', 5000));
        data.extend_from_slice(b"\"}\n{\"text\": \"after\"}\n");
        std::fs::write(&p, data).expect("write");
        let opts = JsonlOptions {
            max_line_bytes: 1000,
            ..JsonlOptions::default()
        };
        let (recs, issues) = collect(vec![p], opts);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].text, "after");
        assert_eq!(issues.len(), 1);
        assert_eq!(
            (issues[0].line, issues[0].kind),
            (Some(1), IssueKind::TooLong)
        );
        assert!(
            issues[0].message.contains("5013 bytes"),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn gzip_and_sharding() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&p).expect("create"),
            flate2::Compression::fast(),
        );
        for i in 0..10 {
            writeln!(enc, "{{\"id\": \"d{i}\", \"text\": \"t{i}\"}}").expect("write");
        }
        enc.finish().expect("finish");
        let mut all = Vec::new();
        for rank in 0..3 {
            let opts = JsonlOptions {
                shard: Shard::new(rank, 3).expect("shard"),
                ..JsonlOptions::default()
            };
            let (recs, issues) = collect(vec![p.clone()], opts);
            assert!(issues.is_empty());
            all.extend(recs.into_iter().map(|r| r.id));
        }
        all.sort();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0], "d0");
    }

    #[test]
    fn wildcard_and_folder_reader() {
        assert!(wildcard_match("*.jsonl", "a.jsonl"));
        assert!(wildcard_match("part-*-of-*.jsonl", "part-1-of-3.jsonl"));
        assert!(!wildcard_match("*.jsonl", "a.json"));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("b.md"), "# Title\n\nBody").expect("write");
        std::fs::write(dir.path().join("sub/a.txt"), "plain").expect("write");
        std::fs::write(dir.path().join("c.bin"), b"\0\0").expect("write");
        std::fs::write(dir.path().join("d.txt"), b"bad \xfe").expect("write");
        std::fs::write(dir.path().join("e.txt"), b"").expect("write");
        let items: Vec<ReadItem> =
            FolderReader::new(&[dir.path().to_owned()], FolderOptions::default()).collect();
        let ids: Vec<String> = items
            .iter()
            .filter_map(|i| {
                if let ReadItem::Record(r) = i {
                    Some(r.id.clone())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(ids, vec!["b.md", "sub/a.txt"]);
        let kinds: Vec<IssueKind> = items
            .iter()
            .filter_map(|i| {
                if let ReadItem::Issue(x) = i {
                    Some(x.kind)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(kinds, vec![IssueKind::InvalidUtf8, IssueKind::EmptyFile]);
    }
}

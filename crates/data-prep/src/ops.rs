//! Single steps over JSON lines, for quick use (`infuse anonymize`, `infuse filter`): every field
//! of every record is kept; only the text field changes (or the record is removed).

use std::collections::BTreeMap;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::filters::{FILTER_NAMES, FilterChain, FilterConfig};
use crate::normalize::{NormalizeConfig, normalize};
use crate::pii::{Anonymizer, PiiConfig, PiiCounts};
use crate::read::{DEFAULT_MAX_RECORD_BYTES, JsonlOptions, JsonlReader, expand_inputs};
use crate::record::{ReadIssue, ReadItem, Record};
use crate::report::MAX_LISTED_ISSUES;
use crate::shard::Shard;
use crate::write::{JsonlWriter, RecordLayout, write_atomic};
use crate::{Error, Result};

/// What a single step did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Records read successfully.
    pub records_in: u64,
    /// Records written.
    pub records_out: u64,
    /// Removed records per reason.
    pub removed: BTreeMap<String, u64>,
    /// Records whose text changed.
    pub modified: u64,
    /// Bad input per kind.
    pub issues: BTreeMap<String, u64>,
    /// The first bad inputs, with file and line.
    pub issue_list: Vec<ReadIssue>,
    /// PII replacements per type.
    pub pii: PiiCounts,
    /// Records with at least one replacement.
    pub pii_documents: u64,
}

impl StepReport {
    fn issue(&mut self, i: ReadIssue) {
        *self.issues.entry(i.kind.as_str().to_owned()).or_default() += 1;
        if self.issue_list.len() < MAX_LISTED_ISSUES {
            self.issue_list.push(i);
        }
    }

    /// Write as pretty JSON (atomically).
    pub fn write_json(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        write_atomic(path, s.as_bytes())
    }
}

/// Input, output and text field of a single step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepIo {
    /// A JSONL file (optionally `.gz`), a directory of them, or a `dir/*.jsonl` pattern.
    pub input: PathBuf,
    /// The JSONL file to write.
    pub output: PathBuf,
    /// The text field.
    pub text_field: String,
    /// Batch size for parallel processing.
    pub batch_size: usize,
}

impl StepIo {
    /// Input and output with the `text` field.
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        Self {
            input: input.into(),
            output: output.into(),
            text_field: "text".into(),
            batch_size: 4096,
        }
    }
}

/// Outcome of a step on one text.
enum StepOut {
    Keep(Option<String>, PiiCounts),
    Drop(String),
}

fn run_step(io: &StepIo, f: &(dyn Fn(&str) -> StepOut + Sync)) -> Result<StepReport> {
    let (files, issues) = expand_inputs(
        std::slice::from_ref(&io.input),
        &[".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz"],
    );
    let mut rep = StepReport::default();
    for i in issues {
        rep.issue(i);
    }
    if files.is_empty() {
        return Err(Error::Config(format!(
            "{}: no JSONL input found",
            io.input.display()
        )));
    }
    let opts = JsonlOptions {
        source: "input".into(),
        text_field: io.text_field.clone(),
        id_field: None,
        max_line_bytes: DEFAULT_MAX_RECORD_BYTES,
        shard: Shard::single(),
    };
    let mut out =
        JsonlWriter::create(&io.output, RecordLayout::passthrough(io.text_field.clone()))?;
    let mut batch: Vec<Record> = Vec::new();
    let flush =
        |batch: &mut Vec<Record>, rep: &mut StepReport, out: &mut JsonlWriter| -> Result<()> {
            let results: Vec<StepOut> = batch.par_iter().map(|r| f(&r.text)).collect();
            for (mut r, o) in std::mem::take(batch).into_iter().zip(results) {
                match o {
                    StepOut::Drop(reason) => *rep.removed.entry(reason).or_default() += 1,
                    StepOut::Keep(text, counts) => {
                        if let Some(t) = text {
                            rep.modified += 1;
                            r.text = t;
                        }
                        if counts.total() > 0 {
                            rep.pii_documents += 1;
                        }
                        rep.pii.merge(&counts);
                        out.write_record(&r)?;
                        rep.records_out += 1;
                    }
                }
            }
            Ok(())
        };
    for item in JsonlReader::new(files, opts) {
        match item {
            ReadItem::Issue(i) => rep.issue(i),
            ReadItem::Record(r) => {
                rep.records_in += 1;
                batch.push(r);
                if batch.len() >= io.batch_size.max(1) {
                    flush(&mut batch, &mut rep, &mut out)?;
                }
            }
        }
    }
    flush(&mut batch, &mut rep, &mut out)?;
    out.finish()?;
    Ok(rep)
}

/// Replace PII in the text field of every record (`infuse anonymize`).
pub fn anonymize_jsonl(io: &StepIo, pii: &PiiConfig) -> Result<StepReport> {
    let a = Anonymizer::new(pii)?;
    run_step(io, &|text| {
        let (t, c) = a.anonymize(text);
        StepOut::Keep((t != text).then_some(t), c)
    })
}

/// Expand rule names for `--rules`: filter names, plus `gopher` (quality and repetition) and
/// `all` (every prose filter).
pub fn expand_rules(rules: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for r in rules
        .iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        match r {
            "gopher" => out.extend(["gopher_quality".to_owned(), "gopher_repetition".to_owned()]),
            "all" => out.extend(
                [
                    "gopher_quality",
                    "gopher_repetition",
                    "c4",
                    "fineweb",
                    "scorer",
                ]
                .map(String::from),
            ),
            n if FILTER_NAMES.contains(&n) => out.push(n.to_owned()),
            n => {
                return Err(Error::Config(format!(
                    "unknown rule `{n}`; known: gopher, all, {}",
                    FILTER_NAMES.join(", ")
                )));
            }
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(Error::Config("no filter rules given".into()));
    }
    Ok(out)
}

/// Settings of [`filter_jsonl`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterJob {
    /// Rule names (see [`expand_rules`]); named filters run even if disabled in `filters`.
    pub rules: Vec<String>,
    /// Thresholds.
    pub filters: FilterConfig,
    /// Normalize text before filtering (the normalized text is written).
    pub normalize: Option<NormalizeConfig>,
}

/// Drop records failing the named quality filters (`infuse filter`).
pub fn filter_jsonl(io: &StepIo, job: &FilterJob) -> Result<StepReport> {
    let names = expand_rules(&job.rules)?;
    let mut cfg = job.filters.clone();
    for n in &names {
        match n.as_str() {
            "gopher_quality" => cfg.gopher_quality.enabled = true,
            "gopher_repetition" => cfg.gopher_repetition.enabled = true,
            "c4" => cfg.c4.enabled = true,
            "fineweb" => cfg.fineweb.enabled = true,
            "code" => cfg.code.enabled = true,
            "scorer" => cfg.scorer.enabled = true,
            _ => {}
        }
    }
    let chain: FilterChain = cfg.build(&names)?;
    let norm = job.normalize.clone();
    run_step(io, &|text| {
        let normalized = norm.as_ref().map(|n| normalize(text, n));
        let t = normalized.as_deref().unwrap_or(text);
        match chain.apply(t) {
            Err(reason) => StepOut::Drop(reason.into_owned()),
            Ok(Some(new)) => StepOut::Keep(Some(new), PiiCounts::default()),
            Ok(None) => StepOut::Keep(normalized.filter(|n| n != text), PiiCounts::default()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymize_keeps_other_fields_and_counts_bad_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{\"id\": 1, \"body\": \"mail bob@example.com now\", \"lang\": \"en\"}\n{oops\n{\"id\": 2, \"body\": \"nothing here\"}\n")
            .expect("write");
        let io = StepIo {
            text_field: "body".into(),
            ..StepIo::new(&input, dir.path().join("out.jsonl"))
        };
        let rep = anonymize_jsonl(&io, &PiiConfig::default()).expect("run");
        let out = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("read");
        assert_eq!(
            out,
            "{\"body\":\"mail <EMAIL> now\",\"id\":1,\"lang\":\"en\"}\n{\"body\":\"nothing here\",\"id\":2}\n"
        );
        assert_eq!(
            (rep.records_in, rep.records_out, rep.pii_documents),
            (2, 2, 1)
        );
        assert_eq!(rep.issues.get("malformed_json"), Some(&1));
        assert_eq!(rep.issue_list[0].line, Some(2));
    }

    #[test]
    fn filter_rules_and_aliases() {
        assert_eq!(
            expand_rules(&["gopher,c4".into()]).expect("ok"),
            vec!["c4", "gopher_quality", "gopher_repetition"]
        );
        assert!(expand_rules(&["nope".into()]).is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.jsonl");
        let good = "The history of the town goes back to the twelfth century, when a small group of farmers settled near the river. \
                    Over the following centuries the settlement grew into a market town with a church, a mill and a bridge that \
                    connected it with the villages on the other side of the valley, and that is why it matters to the people today.";
        std::fs::write(
            &input,
            format!(
                "{}\n{}\n",
                serde_json::json!({"text": good, "k": 1}),
                serde_json::json!({"text": "too short", "k": 2})
            ),
        )
        .expect("write");
        let io = StepIo::new(&input, dir.path().join("out.jsonl"));
        let rep = filter_jsonl(
            &io,
            &FilterJob {
                rules: vec!["gopher".into()],
                ..FilterJob::default()
            },
        )
        .expect("run");
        assert_eq!(rep.records_out, 1);
        assert_eq!(rep.removed.get("gopher_short_doc"), Some(&1));
        let out = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("read");
        assert!(out.contains("\"k\":1") && !out.contains("\"k\":2"));
    }
}

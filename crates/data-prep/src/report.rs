//! The run report: `report.json` and a self-contained `report.html` (inline SVG, no scripts).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::dedup::DedupSummary;
use crate::mix::MixPlan;
use crate::pack::PackStats;
use crate::pii::PiiCounts;
use crate::record::ReadIssue;

/// At most this many read issues are listed per source (all are counted).
pub const MAX_LISTED_ISSUES: usize = 50;

/// Log2-bucketed histogram: bucket `k` counts values in `[2^k - 1, 2^(k+1) - 1)`, i.e. bucket 0
/// is 0, bucket 1 is 1-2, bucket 2 is 3-6, ...
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Counts per bucket.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Count one value.
    pub fn add(&mut self, v: u64) {
        let k = (64 - (v + 1).leading_zeros() - 1) as usize;
        if self.counts.len() <= k {
            self.counts.resize(k + 1, 0);
        }
        self.counts[k] += 1;
    }

    /// Add another histogram.
    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// `[lo, hi]` of bucket `k`.
    pub fn bucket_range(k: usize) -> (u64, u64) {
        ((1u64 << k) - 1, (1u64 << (k + 1)) - 2)
    }
}

/// A removed (or replaced) document shown in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// Document id.
    pub id: String,
    /// The first characters of its text (anonymized).
    pub snippet: String,
    /// Extra detail (e.g. the blocklist terms, the cluster it duplicates).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Documents removed for one reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Documents.
    pub count: u64,
    /// Text bytes.
    pub bytes: u64,
    /// A few examples.
    pub examples: Vec<Example>,
}

/// Everything about one pre-training source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    /// Source name.
    pub name: String,
    /// Records read successfully.
    pub records_in: u64,
    /// Text bytes of those records.
    pub bytes_in: u64,
    /// Tokens of those records (no BOS/EOS), measured on their normalized text, removed
    /// records included; `None` without a tokenizer or with `count_tokens_in = false` (see
    /// [`crate::PrepConfig::count_tokens_in`]). `tokens_out` counts the final texts with BOS/EOS.
    #[serde(default)]
    pub tokens_in: Option<u64>,
    /// Bad input counted per kind (`malformed_json`, `invalid_utf8`, ...).
    pub issues: BTreeMap<String, u64>,
    /// The first bad inputs with file and line.
    pub issue_list: Vec<ReadIssue>,
    /// Files skipped by the code reader, per reason.
    pub skipped_files: BTreeMap<String, u64>,
    /// Documents whose text normalization changed.
    pub normalized: u64,
    /// Documents a filter rewrote (C4 line removal).
    pub modified_by_filters: u64,
    /// Removed documents per reason.
    pub removed: BTreeMap<String, Removed>,
    /// PII replacements.
    pub pii: PiiCounts,
    /// Documents with at least one replacement.
    pub pii_documents: u64,
    /// Documents after cleaning and dedup.
    pub records_out: u64,
    /// Text bytes after cleaning and dedup.
    pub bytes_out: u64,
    /// Tokens of the kept documents (BOS/EOS included).
    pub tokens_out: u64,
    /// Documents in the training split.
    pub train_documents: u64,
    /// Documents held out.
    pub valid_documents: u64,
    /// Tokens per document (kept documents).
    pub token_lengths: Histogram,
    /// Bytes per document as read.
    pub byte_lengths_in: Histogram,
}

impl SourceReport {
    /// Count a removal.
    pub fn remove(
        &mut self,
        reason: &str,
        id: &str,
        text_snippet: String,
        bytes: u64,
        detail: String,
        max_examples: usize,
    ) {
        let r = self.removed.entry(reason.to_owned()).or_default();
        r.count += 1;
        r.bytes += bytes;
        if r.examples.len() < max_examples {
            r.examples.push(Example {
                id: id.to_owned(),
                snippet: text_snippet,
                detail,
            });
        }
    }

    /// Count a read issue.
    pub fn issue(&mut self, issue: ReadIssue) {
        *self
            .issues
            .entry(issue.kind.as_str().to_owned())
            .or_default() += 1;
        if self.issue_list.len() < MAX_LISTED_ISSUES {
            self.issue_list.push(issue);
        }
    }

    /// Add the counts of another shard's report of the same source.
    pub fn merge(&mut self, o: &SourceReport, max_examples: usize) {
        self.records_in += o.records_in;
        self.bytes_in += o.bytes_in;
        self.tokens_in = match (self.tokens_in, o.tokens_in) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        for (k, v) in &o.issues {
            *self.issues.entry(k.clone()).or_default() += v;
        }
        for i in &o.issue_list {
            if self.issue_list.len() < MAX_LISTED_ISSUES {
                self.issue_list.push(i.clone());
            }
        }
        for (k, v) in &o.skipped_files {
            *self.skipped_files.entry(k.clone()).or_default() += v;
        }
        self.normalized += o.normalized;
        self.modified_by_filters += o.modified_by_filters;
        for (k, r) in &o.removed {
            let e = self.removed.entry(k.clone()).or_default();
            e.count += r.count;
            e.bytes += r.bytes;
            for ex in &r.examples {
                if e.examples.len() < max_examples {
                    e.examples.push(ex.clone());
                }
            }
        }
        self.pii.merge(&o.pii);
        self.pii_documents += o.pii_documents;
        self.records_out += o.records_out;
        self.bytes_out += o.bytes_out;
        self.tokens_out += o.tokens_out;
        self.train_documents += o.train_documents;
        self.valid_documents += o.valid_documents;
        self.token_lengths.merge(&o.token_lengths);
        self.byte_lengths_in.merge(&o.byte_lengths_in);
    }

    /// Total removed documents.
    pub fn removed_total(&self) -> u64 {
        self.removed.values().map(|r| r.count).sum()
    }
}

/// A written token store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreReport {
    /// Directory, relative to the output directory.
    pub path: String,
    /// Sequences.
    pub sequences: u64,
    /// Tokens.
    pub tokens: u64,
    /// Loss tokens.
    pub loss_tokens: u64,
    /// Packing statistics.
    pub packing: PackStats,
}

/// SFT or preference source report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatSourceReport {
    /// Source name.
    pub name: String,
    /// Records read (valid JSON objects).
    pub records_in: u64,
    /// Invalid records per kind, and the first few with line and field.
    pub issues: BTreeMap<String, u64>,
    /// First invalid records.
    pub issue_list: Vec<ReadIssue>,
    /// Valid records.
    pub valid: u64,
    /// Samples/pairs written (train + valid, augmentations included).
    pub written: u64,
    /// Samples skipped at encoding per reason (`too_long`, `no_trainable_tokens`).
    pub skipped: BTreeMap<String, u64>,
    /// Samples truncated.
    pub truncated: u64,
    /// Augmented variants added.
    pub augmented: u64,
    /// Task types.
    pub task_types: BTreeMap<String, u64>,
    /// PII replacements in message contents.
    pub pii: PiiCounts,
    /// Tokens per sample.
    pub token_lengths: Histogram,
}

impl ChatSourceReport {
    /// Count an invalid record.
    pub fn issue(&mut self, issue: ReadIssue) {
        *self
            .issues
            .entry(issue.kind.as_str().to_owned())
            .or_default() += 1;
        if self.issue_list.len() < MAX_LISTED_ISSUES {
            self.issue_list.push(issue);
        }
    }
}

/// The report of an `infuse prep` run (or of one shard's clean stage).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrepReport {
    /// Seed used.
    pub seed: u64,
    /// Number of shards the clean stage ran on.
    pub shards: usize,
    /// Chat template used for SFT/preference data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// Pre-training sources in configuration order.
    pub sources: Vec<SourceReport>,
    /// Dedup counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<DedupSummary>,
    /// PII replacements over all sources.
    pub pii: PiiCounts,
    /// Mixing plan and achieved proportions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<MixPlan>,
    /// Token stores written, by name (`cpt/train`, `sft/valid`, ...).
    pub stores: BTreeMap<String, StoreReport>,
    /// SFT sources.
    pub sft: Vec<ChatSourceReport>,
    /// Preference sources.
    pub preference: Vec<ChatSourceReport>,
    /// Other files written, relative to the output directory.
    pub outputs: Vec<String>,
    /// Warnings.
    pub notes: Vec<String>,
}

impl PrepReport {
    /// Serialize as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> crate::Result<String> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }

    /// A self-contained HTML page (inline CSS and SVG, no scripts).
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>infuse prep report</title>\n<style>\n");
        h.push_str("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}h1,h2,h3{font-weight:600}\n");
        h.push_str("table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}\n");
        h.push_str("th{background:#f3f3f3}td.l,th.l{text-align:left}code,pre{font-size:12px}pre{white-space:pre-wrap;margin:0;max-width:600px}\n");
        h.push_str("svg text{font-size:11px;font-family:system-ui,sans-serif}.note{color:#a60}\n</style></head><body>\n");
        h.push_str("<h1>infuse prep report</h1>\n");
        let _ = writeln!(
            h,
            "<p>seed {} &middot; {} shard(s)</p>",
            self.seed,
            self.shards.max(1)
        );
        for n in &self.notes {
            let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(n));
        }
        if !self.sources.is_empty() {
            h.push_str("<h2>Pre-training sources</h2>\n<table><tr><th class=\"l\">source</th><th>records in</th><th>MB in</th><th>tokens in</th><th>bad input</th><th>removed</th><th>records out</th><th>MB out</th><th>tokens out</th><th>train / valid docs</th></tr>\n");
            for s in &self.sources {
                let _ = writeln!(
                    h,
                    "<tr><td class=\"l\">{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{} / {}</td></tr>",
                    esc(&s.name),
                    s.records_in,
                    s.bytes_in as f64 / 1e6,
                    s.tokens_in.map_or("-".to_owned(), |t| t.to_string()),
                    s.issues.values().sum::<u64>(),
                    s.removed_total(),
                    s.records_out,
                    s.bytes_out as f64 / 1e6,
                    s.tokens_out,
                    s.train_documents,
                    s.valid_documents
                );
            }
            h.push_str("</table>\n");
            let bars: Vec<(String, f64)> = self
                .sources
                .iter()
                .flat_map(|s| {
                    [
                        (format!("{} in", s.name), s.records_in as f64),
                        (format!("{} out", s.name), s.records_out as f64),
                    ]
                })
                .collect();
            h.push_str(&bar_chart("Records in / out", &bars));
            for s in &self.sources {
                let _ = writeln!(h, "<h3>{}</h3>", esc(&s.name));
                if !s.removed.is_empty() {
                    h.push_str("<table><tr><th class=\"l\">removed because</th><th>documents</th><th>MB</th><th class=\"l\">examples</th></tr>\n");
                    for (reason, r) in &s.removed {
                        let ex: String = r
                            .examples
                            .iter()
                            .map(|e| {
                                let detail = if e.detail.is_empty() {
                                    String::new()
                                } else {
                                    format!(" ({})", esc(&e.detail))
                                };
                                format!(
                                    "<pre><b>{}</b>{}: {}</pre>",
                                    esc(&e.id),
                                    detail,
                                    esc(&e.snippet)
                                )
                            })
                            .collect();
                        let _ = writeln!(
                            h,
                            "<tr><td class=\"l\"><code>{}</code></td><td>{}</td><td>{:.3}</td><td class=\"l\">{}</td></tr>",
                            esc(reason),
                            r.count,
                            r.bytes as f64 / 1e6,
                            ex
                        );
                    }
                    h.push_str("</table>\n");
                }
                if !s.issues.is_empty() {
                    h.push_str("<table><tr><th class=\"l\">bad input</th><th>count</th></tr>\n");
                    for (k, v) in &s.issues {
                        let _ = writeln!(h, "<tr><td class=\"l\">{}</td><td>{v}</td></tr>", esc(k));
                    }
                    h.push_str("</table>\n<pre>");
                    for i in s.issue_list.iter().take(10) {
                        let _ = writeln!(h, "{}", esc(&i.to_string()));
                    }
                    h.push_str("</pre>\n");
                }
                if !s.skipped_files.is_empty() {
                    let bars: Vec<(String, f64)> = s
                        .skipped_files
                        .iter()
                        .map(|(k, v)| (k.clone(), *v as f64))
                        .collect();
                    h.push_str(&bar_chart("Skipped files", &bars));
                }
                if !s.token_lengths.counts.is_empty() {
                    h.push_str(&histogram_chart(
                        &format!("{}: tokens per kept document", s.name),
                        &s.token_lengths,
                    ));
                }
            }
        }
        if let Some(d) = &self.dedup {
            let _ = writeln!(
                h,
                "<h2>Dedup</h2><p>{} records examined; {} near-duplicate documents removed in {} clusters; {} paragraphs cut from {} documents ({} emptied).</p>",
                d.records_in,
                d.documents_removed,
                d.document_clusters,
                d.paragraphs_removed,
                d.documents_edited,
                d.documents_emptied
            );
        }
        if self.pii.total() > 0 {
            h.push_str("<h2>PII replaced</h2>\n");
            let bars: Vec<(String, f64)> = self
                .pii
                .0
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), *v as f64))
                .collect();
            h.push_str(&bar_chart("Replacements per type", &bars));
        }
        if let Some(m) = &self.mix {
            h.push_str("<h2>Mix</h2>\n<table><tr><th class=\"l\">source</th><th>available tokens</th><th>target</th><th>achieved</th><th>epochs</th><th>documents</th></tr>\n");
            for e in &m.sources {
                let _ = writeln!(
                    h,
                    "<tr><td class=\"l\">{}</td><td>{}</td><td>{:.1}% ({})</td><td>{:.1}% ({})</td><td>{:.2}</td><td>{}</td></tr>",
                    esc(&e.name),
                    e.available_tokens,
                    e.target_fraction * 100.0,
                    e.target_tokens,
                    e.achieved_fraction * 100.0,
                    e.achieved_tokens,
                    e.epochs,
                    e.documents
                );
            }
            h.push_str("</table>\n");
            for n in &m.notes {
                let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(n));
            }
        }
        if !self.stores.is_empty() {
            h.push_str("<h2>Token stores</h2>\n<table><tr><th class=\"l\">store</th><th>sequences</th><th>tokens</th><th>loss tokens</th><th>documents</th><th>fill</th></tr>\n");
            for (name, s) in &self.stores {
                let _ = writeln!(
                    h,
                    "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td></tr>",
                    esc(name),
                    s.sequences,
                    s.tokens,
                    s.loss_tokens,
                    s.packing.documents,
                    s.packing.fill * 100.0
                );
            }
            h.push_str("</table>\n");
        }
        for (title, list) in [
            ("SFT sources", &self.sft),
            ("Preference sources", &self.preference),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(h, "<h2>{title}</h2>");
            h.push_str("<table><tr><th class=\"l\">source</th><th>records</th><th>invalid</th><th>valid</th><th>written</th><th>skipped</th><th>truncated</th><th>augmented</th></tr>\n");
            for s in list.iter() {
                let _ = writeln!(
                    h,
                    "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&s.name),
                    s.records_in,
                    s.issues.values().sum::<u64>(),
                    s.valid,
                    s.written,
                    s.skipped.values().sum::<u64>(),
                    s.truncated,
                    s.augmented
                );
            }
            h.push_str("</table>\n");
            for s in list.iter() {
                if !s.task_types.is_empty() {
                    let bars: Vec<(String, f64)> = s
                        .task_types
                        .iter()
                        .map(|(k, v)| (k.clone(), *v as f64))
                        .collect();
                    h.push_str(&bar_chart(&format!("{}: task types", s.name), &bars));
                }
                if !s.issue_list.is_empty() {
                    h.push_str("<pre>");
                    for i in s.issue_list.iter().take(10) {
                        let _ = writeln!(h, "{}", esc(&i.to_string()));
                    }
                    h.push_str("</pre>\n");
                }
                if !s.token_lengths.counts.is_empty() {
                    h.push_str(&histogram_chart(
                        &format!("{}: tokens per sample", s.name),
                        &s.token_lengths,
                    ));
                }
            }
        }
        if !self.outputs.is_empty() {
            h.push_str("<h2>Outputs</h2><ul>\n");
            for o in &self.outputs {
                let _ = writeln!(h, "<li><code>{}</code></li>", esc(o));
            }
            h.push_str("</ul>\n");
        }
        h.push_str("</body></html>\n");
        h
    }
}

/// HTML-escape text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Horizontal bar chart as inline SVG.
fn bar_chart(title: &str, bars: &[(String, f64)]) -> String {
    let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1.0);
    let row = 18.0;
    let (label_w, bar_w) = (220.0, 420.0);
    let height = 24.0 + row * bars.len() as f64;
    let mut s = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\">",
        esc(title),
        label_w + bar_w + 90.0
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = 8.0 + row * i as f64;
        let w = (v / max * bar_w).max(if *v > 0.0 { 1.0 } else { 0.0 });
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"#4a7bd0\"/><text x=\"{}\" y=\"{}\">{}</text>",
            label_w - 6.0,
            y + 12.0,
            esc(label),
            row - 4.0,
            label_w + w + 4.0,
            y + 12.0,
            fmt_num(*v)
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

fn histogram_chart(title: &str, h: &Histogram) -> String {
    let bars: Vec<(String, f64)> = h
        .counts
        .iter()
        .enumerate()
        .map(|(k, &c)| {
            let (lo, hi) = Histogram::bucket_range(k);
            (
                if lo == hi {
                    format!("{lo}")
                } else {
                    format!("{lo}-{hi}")
                },
                c as f64,
            )
        })
        .collect();
    bar_chart(title, &bars)
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as u64)
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let mut h = Histogram::default();
        for v in [0, 1, 2, 3, 6, 7, 1000] {
            h.add(v);
        }
        assert_eq!(h.counts[..4], [1, 2, 2, 1]);
        assert_eq!(Histogram::bucket_range(2), (3, 6));
        assert_eq!(h.counts.iter().sum::<u64>(), 7);
        let mut g = Histogram::default();
        g.add(0);
        g.merge(&h);
        assert_eq!(g.counts[0], 2);
    }

    #[test]
    fn html_is_self_contained_and_escaped() {
        let mut s = SourceReport {
            name: "web<1>".into(),
            records_in: 3,
            records_out: 1,
            ..SourceReport::default()
        };
        s.remove(
            "gopher_short_doc",
            "d1",
            "<script>alert(1)</script>".into(),
            30,
            String::new(),
            3,
        );
        s.token_lengths.add(100);
        let r = PrepReport {
            sources: vec![s],
            ..PrepReport::default()
        };
        let html = r.to_html();
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script"));
        assert!(html.contains("<svg"));
        assert!(html.contains("web&lt;1&gt;"));
        let json = r.to_json().expect("json");
        let back: PrepReport = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, r);
    }
}

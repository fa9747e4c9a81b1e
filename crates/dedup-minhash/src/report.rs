//! The typed result: [`DedupReport`], [`Cluster`]s, and their JSON / JSONL writers.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::DedupConfig;
use crate::error::{DedupError, Result};
use crate::io::atomic_write;
use crate::source::{RecordKey, SkippedRecord};

/// Counts and clusters of one deduplication run. Serialized as the JSON report (without the
/// clusters, which go to the clusters file, see [`write_clusters`]). Contains no timings, so the
/// same input and config always give the same report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DedupReport {
    /// The configuration used.
    pub config: DedupConfig,
    /// (bands, rows) of the MinHash index (`None` for other methods).
    pub lsh: Option<crate::config::LshParams>,
    /// Records read successfully.
    pub records_in: u64,
    /// Records written (kept whole or with spans cut out).
    pub records_out: u64,
    /// Records dropped as duplicates (document granularity).
    pub records_removed: u64,
    /// Records that lost some spans (span granularities).
    pub records_edited: u64,
    /// Records dropped because every span was a duplicate (span granularities).
    pub records_emptied: u64,
    /// Malformed records that were skipped (all of them; see `skipped`).
    pub records_skipped: u64,
    /// Units compared (documents, or spans with at least `min_span_words` words).
    pub units_in: u64,
    /// Units removed as duplicates.
    pub units_removed: u64,
    /// UTF-8 bytes of text read (records_in).
    pub text_bytes_in: u64,
    /// UTF-8 bytes of text removed (dropped records and cut spans, separators not counted).
    pub text_bytes_removed: u64,
    /// Candidate pairs from the index.
    pub candidate_pairs: u64,
    /// Candidate pairs confirmed by verification (the edges of the clusters).
    pub verified_pairs: u64,
    /// Number of clusters (groups of at least two units).
    pub clusters: u64,
    /// Size of the largest cluster.
    pub largest_cluster: u64,
    /// The first `max_reported_skips` skipped records, with file, line and reason.
    pub skipped: Vec<SkippedRecord>,
    /// The clusters themselves (written to the clusters file, not to the JSON report).
    #[serde(skip)]
    pub cluster_list: Vec<Cluster>,
}

/// One group of near-duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Sequential id, in order of the clusters' first members.
    pub cluster: u64,
    /// Id of the surviving member.
    pub kept: String,
    /// The members in key order.
    pub members: Vec<ClusterMember>,
    /// The verified pairs inside the cluster (indices into `members`, similarity).
    pub pairs: Vec<VerifiedPair>,
}

/// A member of a [`Cluster`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterMember {
    /// Record id.
    pub id: String,
    /// Record position.
    pub key: RecordKey,
    /// Byte range of the span in the record's text (span granularities only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<(u32, u32)>,
    /// Whether this member survives.
    pub kept: bool,
    /// Similarity to the kept member when that pair was verified directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity_to_kept: Option<f64>,
}

/// A verified pair inside a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VerifiedPair {
    /// Index of the first member in [`Cluster::members`].
    pub a: u32,
    /// Index of the second member.
    pub b: u32,
    /// Similarity: exact or estimated Jaccard (SimHash without exact verification:
    /// `1 - hamming / 64`; exact method: 1).
    pub similarity: f64,
}

impl DedupReport {
    /// All verified pairs as `(id_a, id_b, similarity)`.
    pub fn verified_id_pairs(&self) -> impl Iterator<Item = (&str, &str, f64)> + '_ {
        self.cluster_list.iter().flat_map(|c| {
            c.pairs.iter().filter_map(move |p| {
                let a = c.members.get(p.a as usize)?;
                let b = c.members.get(p.b as usize)?;
                Some((a.id.as_str(), b.id.as_str(), p.similarity))
            })
        })
    }
}

/// Writes the JSON report (pretty, atomically).
///
/// # Errors
/// I/O or serialization errors.
pub fn write_report(path: &Path, report: &DedupReport) -> Result<()> {
    let json = serde_json::to_vec_pretty(report).map_err(|source| DedupError::Serialize { what: "report", source })?;
    atomic_write(path, |w| {
        w.write_all(&json)?;
        w.write_all(b"\n")
    })
}

/// Writes the clusters file: one JSON object per line,
/// `{"cluster", "kept", "members": [{"id", "key", "span"?, "kept", "similarity_to_kept"?}], "pairs": [{"a", "b", "similarity"}]}`.
///
/// # Errors
/// I/O or serialization errors.
pub fn write_clusters(path: &Path, clusters: &[Cluster]) -> Result<()> {
    let mut lines = Vec::new();
    for c in clusters {
        serde_json::to_writer(&mut lines, c).map_err(|source| DedupError::Serialize { what: "cluster", source })?;
        lines.push(b'\n');
    }
    atomic_write(path, |w| w.write_all(&lines))
}

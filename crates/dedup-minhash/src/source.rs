//! Where records come from: the [`RecordSource`] abstraction, shards, and an in-memory source.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::{DedupError, Result};

/// The position of a record: part (file, table, ...) and index inside it (0-based line number
/// for JSONL, row number for tables). Records are ordered by key; "first" means smallest key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordKey {
    /// Index into [`RecordSource::parts`].
    pub part: u32,
    /// Index inside the part.
    pub index: u64,
}

/// One record handed to the deduplicator.
#[derive(Debug, Clone)]
pub struct SourceRecord<'a> {
    /// Position (unique within a source).
    pub key: RecordKey,
    /// Opaque value the source needs to find the record again in [`RecordSource::fetch`]
    /// (the byte offset of a JSONL line, a row number, ...).
    pub locator: u64,
    /// The record's id (`None`: one is made from the part name and position).
    pub id: Option<Cow<'a, str>>,
    /// The text to deduplicate.
    pub text: Cow<'a, str>,
    /// Quality score for [`crate::KeepRule::HighestScore`].
    pub score: Option<f64>,
}

/// A record that could not be used (malformed line, missing field); counted and reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRecord {
    /// The part (file) name.
    pub file: String,
    /// 1-based line (or row) number.
    pub line: u64,
    /// Why it was skipped.
    pub reason: String,
}

/// What a source passes to the deduplicator per batch.
#[derive(Debug, Default)]
pub struct ScanBatch<'a> {
    /// Usable records, in key order.
    pub records: Vec<SourceRecord<'a>>,
    /// Unusable ones.
    pub skipped: Vec<SkippedRecord>,
}

/// A record to read again for verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequest {
    /// Its key.
    pub key: RecordKey,
    /// The locator it was scanned with.
    pub locator: u64,
}

/// Which share of the input this process handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    /// 0-based rank.
    pub rank: usize,
    /// Number of shards.
    pub world: usize,
}

impl Default for ShardSpec {
    fn default() -> Self {
        Self::SINGLE
    }
}

impl ShardSpec {
    /// The whole input in one process.
    pub const SINGLE: Self = Self { rank: 0, world: 1 };

    /// A shard; `rank < world`.
    ///
    /// # Errors
    /// [`DedupError::Environment`] when `world == 0` or `rank >= world`.
    pub fn new(rank: usize, world: usize) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(DedupError::Environment(format!("rank {rank} is not in 0..{world}")));
        }
        Ok(Self { rank, world })
    }

    /// Rank and world size from the process environment; see [`ShardSpec::from_lookup`].
    ///
    /// # Errors
    /// As [`ShardSpec::from_lookup`].
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Rank and world size from environment variables, first match wins:
    /// `RANK` + `WORLD_SIZE` (torchrun), `OMPI_COMM_WORLD_RANK` + `OMPI_COMM_WORLD_SIZE`
    /// (OpenMPI), `SLURM_ARRAY_TASK_ID` + `SLURM_ARRAY_TASK_COUNT` (a Slurm job array; the rank is
    /// counted from `SLURM_ARRAY_TASK_MIN`, default 0), `SLURM_PROCID` + `SLURM_NTASKS`; else a
    /// single process.
    ///
    /// # Errors
    /// [`DedupError::Environment`] when a variable is not a number, only one of a pair is set, or
    /// the rank is out of range.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let num = |name: &str| -> Result<Option<usize>> {
            match get(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .map(Some)
                    .map_err(|_| DedupError::Environment(format!("{name}={v:?} is not a non-negative integer"))),
            }
        };
        let pairs = [
            ("RANK", "WORLD_SIZE"),
            ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
            ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"),
            ("SLURM_PROCID", "SLURM_NTASKS"),
        ];
        for (rank_var, world_var) in pairs {
            match (num(rank_var)?, num(world_var)?) {
                (None, None) => continue,
                (Some(rank), Some(world)) => {
                    let rank = if rank_var == "SLURM_ARRAY_TASK_ID" {
                        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                        rank.checked_sub(min).ok_or_else(|| {
                            DedupError::Environment(format!("SLURM_ARRAY_TASK_ID={rank} is below SLURM_ARRAY_TASK_MIN={min}"))
                        })?
                    } else {
                        rank
                    };
                    return Self::new(rank, world).map_err(|_| {
                        DedupError::Environment(format!("{rank_var}={rank} is not below {world_var}={world}"))
                    });
                }
                (Some(_), None) => return Err(DedupError::Environment(format!("{rank_var} is set but {world_var} is not"))),
                (None, Some(_)) => return Err(DedupError::Environment(format!("{world_var} is set but {rank_var} is not"))),
            }
        }
        Ok(Self::SINGLE)
    }
}

/// A re-readable collection of records (JSONL files, Parquet row groups, an in-memory vector).
///
/// The deduplicator reads a source up to three times: [`RecordSource::scan`] once for signatures,
/// [`RecordSource::fetch`] for the records in candidate pairs (exact verification), and the
/// caller's writer once more to emit the kept records. The source must return the same records
/// every time.
pub trait RecordSource: Sync {
    /// Names of the parts (e.g. file paths); [`RecordKey::part`] indexes this list.
    fn parts(&self) -> &[String];

    /// A description of the source's layout and field mapping, stored in shard signature files
    /// and compared when they are merged.
    fn fingerprint(&self) -> String;

    /// Streams the records of `shard` in key order, in batches, to `sink`.
    ///
    /// # Errors
    /// I/O errors of the source, or the first error returned by `sink`.
    fn scan(&self, shard: ShardSpec, sink: &mut dyn FnMut(ScanBatch<'_>) -> Result<()>) -> Result<()>;

    /// Reads the given records again (sorted by key) and calls `visit(i, text)` for each, where
    /// `i` indexes `wanted`; any order.
    ///
    /// # Errors
    /// I/O errors, a record that no longer parses ([`DedupError::InputChanged`]), or the first
    /// error returned by `visit`.
    fn fetch(&self, wanted: &[FetchRequest], visit: &mut dyn FnMut(usize, &str) -> Result<()>) -> Result<()>;
}

/// A record for the in-memory API ([`crate::dedup_records`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Id (used in clusters).
    pub id: String,
    /// Text.
    pub text: String,
    /// Optional quality score for [`crate::KeepRule::HighestScore`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

impl Record {
    /// A record without a score.
    #[must_use]
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Self {
        Self { id: id.into(), text: text.into(), score: None }
    }
}

/// A [`RecordSource`] over records held in memory (one part, key index = position).
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    records: Vec<Record>,
    parts: Vec<String>,
}

impl MemorySource {
    /// Wraps `records`.
    #[must_use]
    pub fn new(records: Vec<Record>) -> Self {
        Self { records, parts: vec!["memory".to_owned()] }
    }

    /// The records.
    #[must_use]
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Unwraps the records.
    #[must_use]
    pub fn into_records(self) -> Vec<Record> {
        self.records
    }
}

impl RecordSource for MemorySource {
    fn parts(&self) -> &[String] {
        &self.parts
    }

    fn fingerprint(&self) -> String {
        format!("memory:{}", self.records.len())
    }

    fn scan(&self, shard: ShardSpec, sink: &mut dyn FnMut(ScanBatch<'_>) -> Result<()>) -> Result<()> {
        const BATCH: usize = 4096;
        let mut batch = ScanBatch::default();
        for (i, r) in self.records.iter().enumerate() {
            if i % shard.world != shard.rank {
                continue;
            }
            batch.records.push(SourceRecord {
                key: RecordKey { part: 0, index: i as u64 },
                locator: i as u64,
                id: Some(Cow::Borrowed(&r.id)),
                text: Cow::Borrowed(&r.text),
                score: r.score,
            });
            if batch.records.len() == BATCH {
                sink(std::mem::take(&mut batch))?;
            }
        }
        if !batch.records.is_empty() {
            sink(batch)?;
        }
        Ok(())
    }

    fn fetch(&self, wanted: &[FetchRequest], visit: &mut dyn FnMut(usize, &str) -> Result<()>) -> Result<()> {
        for (i, w) in wanted.iter().enumerate() {
            let r = self
                .records
                .get(w.locator as usize)
                .ok_or_else(|| DedupError::Source(format!("no record at position {}", w.locator)))?;
            visit(i, &r.text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<ShardSpec> {
        let map: std::collections::HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ShardSpec::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn environment_order_and_errors() {
        assert_eq!(env(&[]).ok(), Some(ShardSpec::SINGLE));
        assert_eq!(env(&[("RANK", "2"), ("WORLD_SIZE", "4"), ("SLURM_PROCID", "0"), ("SLURM_NTASKS", "9")]).ok(), Some(ShardSpec { rank: 2, world: 4 }));
        assert_eq!(env(&[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "3")]).ok(), Some(ShardSpec { rank: 1, world: 3 }));
        assert_eq!(
            env(&[("SLURM_ARRAY_TASK_ID", "11"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "10")]).ok(),
            Some(ShardSpec { rank: 1, world: 4 })
        );
        assert_eq!(env(&[("SLURM_PROCID", "5"), ("SLURM_NTASKS", "8")]).ok(), Some(ShardSpec { rank: 5, world: 8 }));
        assert!(env(&[("RANK", "4"), ("WORLD_SIZE", "4")]).is_err());
        assert!(env(&[("RANK", "x"), ("WORLD_SIZE", "4")]).is_err());
        assert!(env(&[("RANK", "1")]).is_err());
    }
}

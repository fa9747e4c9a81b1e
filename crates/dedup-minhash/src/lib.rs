//! Near-duplicate removal for training text: MinHash + LSH with verified candidates, SimHash,
//! and exact hashing, at document, paragraph, line or sentence granularity.
//!
//! # How it works
//! 1. **Shingling** ([`shingle`]): lowercase, split on non-word characters, word n-grams (default
//!    5) or character n-grams, each hashed with xxh3-64 (or SHA-1 for datasketch compatibility).
//! 2. **Signatures**: MinHash with `num_perm` slots ([`MinHasher`]; one-permutation hashing with
//!    optimal densification by default, or the datasketch `affine32` / `legacy` Mersenne-61
//!    families bit for bit), a 64-bit SimHash, or a 128-bit hash of the normalized text.
//! 3. **Candidates**: LSH banding with (bands, rows) chosen by [`optimal_params`] with a high
//!    false-negative weight, or SimHash blocked tables.
//! 4. **Verification**: every candidate pair is confirmed by exact Jaccard similarity of the
//!    shingle sets (the candidates' texts are read back) or by the signature estimate.
//! 5. **Clusters**: union-find over the confirmed pairs; one member per cluster survives by a
//!    deterministic [`KeepRule`]; spans are cut out of records at span granularities.
//!
//! Outputs do not depend on the number of threads, and the cluster partition does not depend on
//! the input order (only which member is "first" does).
//!
//! # Entry points
//! * [`dedup_records`]: records in memory.
//! * [`dedup_source`] + [`RecordSource`]: any re-readable source (data-prep feeds Parquet rows).
//! * [`dedup_jsonl`]: JSONL file or directory to a JSONL file, streaming, with a clusters file
//!   and a JSON report.
//! * [`sign_shard`] / [`sign_jsonl_shard`] on each rank ([`ShardSpec::from_env`]) and
//!   [`merge_shards`] / [`merge_jsonl_shards`] once, for Slurm job arrays and the like.
//! * [`Deduper`] for incremental use, [`LshIndex`] and [`MinHasher`] as building blocks.

mod config;
mod engine;
mod error;
mod io;
mod jsonl;
mod lsh;
mod minhash;
mod numpy_rng;
mod persist;
mod pipeline;
mod report;
pub mod shingle;
mod simhash;
mod source;
mod span;

pub use config::{BaseHash, DedupConfig, Family, Granularity, KeepRule, LshParams, MAX_NUM_PERM, Method, Shingle, SimHashConfig, Verify};
pub use engine::{DedupOutcome, Deduper, RecordDecision};
pub use error::{DedupError, Result};
pub use io::atomic_write;
pub use jsonl::{FieldNames, JsonlSource, WriteCounts, write_jsonl};
pub use lsh::{LshIndex, band_key, optimal_params};
pub use minhash::{MERSENNE_61, MinHasher, estimate_jaccard, fmix32, fmix64, jaccard_sorted};
pub use persist::ShardSummary;
pub use pipeline::{
    InMemoryOutcome, JsonlJob, dedup_jsonl, dedup_records, dedup_source, find_signature_files, merge_jsonl_shards, merge_shards, sign_jsonl_shard,
    sign_shard, signatures_file_name, write_jsonl_outputs,
};
pub use report::{Cluster, ClusterMember, DedupReport, VerifiedPair, write_clusters, write_report};
pub use shingle::Shingler;
pub use simhash::{SimHashAccumulator, hamming, simhash, simhash_pairs, table_masks};
pub use source::{FetchRequest, MemorySource, Record, RecordKey, RecordSource, ScanBatch, ShardSpec, SkippedRecord, SourceRecord};
pub use span::{remove_spans, split_spans};

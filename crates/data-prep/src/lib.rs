//! Data preparation for infuse: raw corpora to clean, anonymized, mixed, packed training data,
//! with a report of everything removed.
//!
//! # Pipeline
//! [`run_prep`] runs the whole thing from a [`PrepConfig`] (TOML or YAML, unknown keys rejected,
//! `key=value` overrides):
//!
//! 1. **Read** ([`read`], [`parquet`]): JSONL (text/id fields configurable, every other field kept
//!    as metadata, `.gz` transparently), Parquet (polars), folders of text/Markdown, source-code
//!    repositories (language from the extension; vendored directories, lock files, generated and
//!    binary files skipped). Bad input (invalid UTF-8, malformed JSON, missing fields, empty files,
//!    over-long lines) becomes a [`ReadIssue`] with file and line, never an error.
//! 2. **Normalize** ([`normalize`]): mojibake repair, line endings, NFC, control characters, whitespace.
//! 3. **Compliance** ([`compliance`]): word/phrase and URL-domain blocklists with thresholds.
//! 4. **Quality filters** ([`filters`], [`code`]): Gopher quality and repetition, C4, FineWeb,
//!    code rules, and a [`filters::QualityScorer`] (a character n-gram model ships) for garbled text.
//! 5. **Anonymize** ([`pii`]): typed placeholders (`<EMAIL>`, `<PHONE>`, `<SECRET>`, ...), counts per type.
//! 6. **Dedup** ([`dedup`]): near-duplicate documents and paragraphs through `infuse-dedup-minhash`.
//! 7. **Tokenize, split, mix, order, pack** ([`mix`], [`pack`], [`tokstore`]): `[BOS] text [EOS]`,
//!    a validation split by a hash of the id, token-proportional mixing with up/down-sampling,
//!    seeded shuffle / curriculum / In-Context Pretraining order, fixed-length packing into a
//!    memory-mapped [`TokenStore`].
//! 8. **SFT and preference data** ([`sft`]): Alpaca, ShareGPT, OpenAI messages, preference pairs;
//!    validation per field, task types, chat-template rendering with loss masks (through
//!    `infuse-text`), truncation, packing with sample boundaries.
//! 9. **Report** ([`report`]): `report.json` and a self-contained `report.html`.
//!
//! Steps 1-5 run per shard ([`Shard::from_env`]: torchrun, OpenMPI, Slurm arrays and tasks), in
//! batches with rayon, so memory is bounded by the batch size; the merge stage needs all shards
//! and keeps only small per-document facts in memory (plus MinHash signatures for ICP). Every
//! output is written to a temporary name and renamed; the same inputs and configuration give
//! byte-identical outputs.
//!
//! # Output directory
//! ```text
//! OUT/clean/SOURCE.jsonl|parquet   cleaned, deduplicated records (id, text, source, metadata...)
//! OUT/cpt/train, OUT/cpt/valid     token stores for continued pre-training
//! OUT/sft/train, OUT/sft/valid     token stores with loss masks for SFT
//! OUT/dpo/SPLIT/{chosen,rejected}  aligned token stores (pair i = sequence i in both), pairs.jsonl
//! OUT/report.json, report.html
//! ```
//!
//! # Token store format (version 1)
//! A directory with `tokens.bin` (`u32` little-endian token ids), `index.bin` (`num_sequences + 1`
//! rows of two little-endian `u64`: first token, first boundary), `boundaries.bin` (`u32` offsets
//! inside each sequence where a document or sample starts, first always 0), optional
//! `loss_mask.bin` (one byte per token, 1 = trained) and `meta.json` ([`StoreMeta`]). Open it with
//! [`TokenStore::open`]; [`TokenStore::sequence`] gives tokens, the loss mask and boundaries
//! without reading the whole store, and [`SequenceView::position_ids`] /
//! [`SequenceView::segment_ids`] give what block-diagonal attention needs.
//!
//! ```no_run
//! use infuse_data_prep::{PrepConfig, TokenStore, run_prep};
//! # fn main() -> infuse_data_prep::Result<()> {
//! let config = PrepConfig::load("prep.toml", &["mix.order=icp".to_owned()])?;
//! let report = run_prep(&config)?;
//! println!("{} documents kept", report.sources.iter().map(|s| s.records_out).sum::<u64>());
//! let store = TokenStore::open(config.output_dir.join("cpt/train"))?;
//! let seq = store.sequence(0)?;
//! println!("{} tokens, positions {:?}", seq.len(), &seq.position_ids()[..4]);
//! # Ok(()) }
//! ```

pub mod code;
pub mod compliance;
pub mod config;
pub mod dedup;
mod error;
pub mod filters;
pub mod mix;
pub mod normalize;
pub mod ops;
pub mod pack;
pub mod parquet;
pub mod pii;
pub mod pipeline;
pub mod read;
mod record;
pub mod report;
pub mod rng;
pub mod sft;
pub mod shard;
pub mod tokstore;
pub mod write;

pub use config::{ConfigFormat, PrepConfig};
pub use error::{Error, Result};
/// The tokenizer and chat-template crate this one renders and tokenizes with.
pub use infuse_text;
pub use ops::{FilterJob, StepIo, StepReport, anonymize_jsonl, filter_jsonl};
pub use pipeline::{clean_shard, merge_shards, run_prep};
pub use record::{IssueKind, ReadIssue, ReadItem, Record};
pub use report::PrepReport;
pub use shard::Shard;
pub use tokstore::{SequenceView, StoreMeta, TokenStore};

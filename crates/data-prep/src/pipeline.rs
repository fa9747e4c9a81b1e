//! `run_prep`: the whole pipeline, split into a per-shard clean stage and a global merge stage.
//!
//! Clean (per rank, streaming in batches, rayon inside a batch): read -> normalize -> compliance
//! -> quality filters -> anonymize -> `work/clean/.../shard-R-of-W.jsonl` + a partial report.
//!
//! Merge (once): check every shard is present -> dedup across all shards and sources -> final
//! cleaned records (`clean/NAME.jsonl|parquet`) -> tokenize (`[BOS] text [EOS]`) -> hold out a
//! validation split by a hash of the id -> mix by token proportions -> order (shuffle,
//! curriculum, ICP) -> pack into `cpt/train` and `cpt/valid` -> SFT and preference data ->
//! `report.json` and `report.html`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use infuse_text::{ChatTemplate, Message, Tokenizer};
use memmap2::Mmap;
use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::code::CodeSkip;
use crate::compliance::ComplianceChecker;
use crate::config::{ChatSourceConfig, PrepConfig, SourceConfig, SourceKind, Stage};
use crate::dedup::{Applied, DedupDecisions, Deduplicator, MinHashDeduplicator};
use crate::filters::{CharNgramScorer, FilterChain, QualityScorer};
use crate::mix::{
    IcpHasher, Instance, Order, SourceBudget, icp_chain, order_instances, plan_mix,
    select_documents,
};
use crate::normalize::normalize;
use crate::pack::{CptPacker, SftPacker};
use crate::parquet::{ParquetOptions, ParquetReader};
use crate::pii::{Anonymizer, PiiCounts};
use crate::read::{
    CodeItem, CodeOptions, CodeReader, FolderOptions, FolderReader, JsonLine, JsonLines,
    JsonlOptions, JsonlReader, expand_inputs,
};
use crate::record::{IssueKind, ReadIssue, ReadItem, Record};
use crate::report::{ChatSourceReport, PrepReport, SourceReport, StoreReport};
use crate::rng::{SplitMix64, unit_hash};
use crate::sft::{
    EncodeSkip, ParseOptions, augment, choose_template, encode_conversation, parse_preference,
    parse_sft,
};
use crate::shard::Shard;
use crate::tokstore::{StoreSpec, TokenStore, TokenStoreWriter};
use crate::write::{JsonlWriter, RecordLayout, RecordWriter, write_atomic};
use crate::{Error, Result};

const SPLIT_SALT: u64 = 0x5EED_0001;
const SFT_SALT: u64 = 0x5EED_0002;
const SHUFFLE_SALT: u64 = 0x5EED_0003;
const SNIPPET_CHARS: usize = 240;
/// Work-record marker (clean stage -> merge stage): this record's `tokens_in` was already
/// counted by the clean stage (its text changed after normalization). Never in an output.
const TOKENS_IN_COUNTED: &str = "__infuse_tokens_in_counted";

/// Run `infuse prep`: the clean stage, the merge stage, or both (see [`Stage`]).
pub fn run_prep(config: &PrepConfig) -> Result<PrepReport> {
    config.validate()?;
    let shard = match config.shard {
        Some(s) => Shard::new(s.rank, s.world_size)?,
        None => Shard::from_env()?.0,
    };
    let stage = match config.stage {
        Stage::Auto if shard.world_size > 1 => Stage::Clean,
        Stage::Auto => Stage::All,
        s => s,
    };
    match stage {
        Stage::Clean => clean_shard(config, shard),
        Stage::Merge => merge_shards(config),
        Stage::All | Stage::Auto => {
            if shard.world_size > 1 {
                return Err(Error::Config(format!(
                    "stage = \"all\" with {} ranks: run stage = \"clean\" on every rank, then stage = \"merge\" once",
                    shard.world_size
                )));
            }
            let work = config.output_dir.join("work");
            if work.exists() {
                std::fs::remove_dir_all(&work).map_err(|e| Error::io("cannot clear", &work, e))?;
            }
            clean_shard(config, shard)?;
            merge_shards(config)
        }
    }
}

fn work_dir(cfg: &PrepConfig) -> PathBuf {
    cfg.output_dir.join("work")
}

fn clean_dir(cfg: &PrepConfig, idx: usize, src: &SourceConfig) -> PathBuf {
    let group = if src.dedup && cfg.dedup.enabled {
        "dedup"
    } else {
        "nodedup"
    };
    work_dir(cfg)
        .join("clean")
        .join(group)
        .join(format!("{idx:03}-{}", src.name))
}

fn snippet(text: &str, anon: Option<&Anonymizer>) -> String {
    let mut end = text.len();
    if let Some((i, _)) = text.char_indices().nth(SNIPPET_CHARS) {
        end = i;
    }
    let s = &text[..end];
    match anon {
        Some(a) => a.anonymize(s).0,
        None => s.to_owned(),
    }
}

/// What the cleaning of one record produced.
enum Cleaned {
    Kept {
        rec: Record,
        normalized: bool,
        modified: bool,
        pii: PiiCounts,
    },
    Removed {
        id: String,
        reason: String,
        detail: String,
        snippet: String,
        bytes: u64,
    },
}

struct CleanCtx<'a> {
    cfg: &'a PrepConfig,
    compliance: ComplianceChecker,
    anonymizer: Option<Anonymizer>,
    /// Counts `tokens_in` (see [`PrepConfig::count_tokens_in`]).
    counter: Option<Tokenizer>,
}

impl CleanCtx<'_> {
    /// Clean one record; also its contribution to `tokens_in` counted here: tokens of the
    /// normalized text for a removed record or one whose text changes after normalization
    /// (marked [`TOKENS_IN_COUNTED`]); 0 for one kept unchanged, counted by the merge stage.
    fn clean(&self, filters: &FilterChain, pii: bool, rec: Record) -> Result<(Cleaned, u64)> {
        let bytes = rec.text.len() as u64;
        let text = normalize(&rec.text, &self.cfg.normalize);
        let normalized = text != rec.text;
        let count = |t: &str| -> Result<u64> {
            Ok(match &self.counter {
                Some(tok) => tok.encode(t)?.len() as u64,
                None => 0,
            })
        };
        let removed = |reason: &str, detail: String, shown: &str| -> Result<(Cleaned, u64)> {
            Ok((
                Cleaned::Removed {
                    id: rec.id.clone(),
                    reason: reason.to_owned(),
                    detail,
                    snippet: snippet(shown, self.anonymizer.as_ref()),
                    bytes,
                },
                count(&text)?,
            ))
        };
        if text.trim().is_empty() {
            return removed("empty_after_normalization", String::new(), &rec.text);
        }
        if let Some(v) = self.compliance.check(&text, &rec.metadata) {
            return removed(v.reason, v.detail, &text);
        }
        let (filtered, modified) = match filters.apply(&text) {
            Err(reason) => return removed(&reason, String::new(), &text),
            Ok(Some(new)) => (Some(new), true),
            Ok(None) => (None, false),
        };
        let (anonymized, counts) = match (&self.anonymizer, pii) {
            (Some(a), true) => {
                let (t, c) = a.anonymize(filtered.as_deref().unwrap_or(&text));
                (Some(t), c)
            }
            _ => (None, PiiCounts::default()),
        };
        let mut rec = rec;
        let changed = modified || anonymized.as_ref().is_some_and(|t| *t != text);
        let tokens_in = if changed && self.counter.is_some() {
            rec.metadata.insert(TOKENS_IN_COUNTED.into(), Value::Bool(true));
            count(&text)?
        } else {
            0
        };
        rec.text = anonymized.or(filtered).unwrap_or(text);
        Ok((
            Cleaned::Kept {
                rec,
                normalized,
                modified,
                pii: counts,
            },
            tokens_in,
        ))
    }
}

/// One item from any reader.
enum Input {
    Record(Record),
    Issue(ReadIssue),
    Skipped(CodeSkip),
}

fn open_source(src: &SourceConfig, shard: Shard) -> Box<dyn Iterator<Item = Input> + Send> {
    let from_read = |i: ReadItem| match i {
        ReadItem::Record(r) => Input::Record(r),
        ReadItem::Issue(i) => Input::Issue(i),
    };
    match src.kind {
        SourceKind::Jsonl => {
            let (files, issues) = expand_inputs(
                &src.paths,
                &[
                    ".jsonl",
                    ".json",
                    ".ndjson",
                    ".jsonl.gz",
                    ".json.gz",
                    ".ndjson.gz",
                ],
            );
            let opts = JsonlOptions {
                source: src.name.clone(),
                text_field: src.text_field.clone(),
                id_field: src.id_field.clone(),
                max_line_bytes: src.max_record_bytes,
                shard,
            };
            Box::new(
                issues
                    .into_iter()
                    .map(Input::Issue)
                    .chain(JsonlReader::new(files, opts).map(from_read)),
            )
        }
        SourceKind::Parquet => {
            let (files, issues) = expand_inputs(&src.paths, &[".parquet"]);
            let opts = ParquetOptions {
                source: src.name.clone(),
                text_field: src.text_field.clone(),
                id_field: src.id_field.clone(),
                shard,
                ..ParquetOptions::default()
            };
            Box::new(
                issues
                    .into_iter()
                    .map(Input::Issue)
                    .chain(ParquetReader::new(files, opts).map(from_read)),
            )
        }
        SourceKind::Text => {
            let opts = FolderOptions {
                source: src.name.clone(),
                max_file_bytes: src.max_record_bytes,
                shard,
                ..FolderOptions::default()
            };
            Box::new(FolderReader::new(&src.paths, opts).map(from_read))
        }
        SourceKind::Code => {
            let opts = CodeOptions {
                source: src.name.clone(),
                languages: src.languages.clone(),
                shard,
                max_file_bytes: src
                    .max_record_bytes
                    .min(CodeOptions::default().max_file_bytes),
                ..CodeOptions::default()
            };
            Box::new(CodeReader::new(&src.paths, opts).map(move |i| match i {
                CodeItem::Item(x) => from_read(x),
                CodeItem::Skipped { reason, .. } => Input::Skipped(reason),
            }))
        }
    }
}

/// The clean stage for one shard: writes `work/clean/**/SHARD.jsonl` and `work/reports/SHARD.json`.
pub fn clean_shard(cfg: &PrepConfig, shard: Shard) -> Result<PrepReport> {
    let anonymizer = if cfg.pii.enabled {
        Some(Anonymizer::new(&cfg.pii)?)
    } else {
        None
    };
    let counter = match (&cfg.tokenizer, cfg.count_tokens_in) {
        (Some(p), true) => Some(Tokenizer::from_file(p)?),
        _ => None,
    };
    let counting = counter.is_some();
    let ctx = CleanCtx {
        cfg,
        compliance: ComplianceChecker::new(&cfg.compliance)?,
        anonymizer,
        counter,
    };
    let mut report = PrepReport {
        seed: cfg.seed,
        shards: shard.world_size,
        ..PrepReport::default()
    };
    for (idx, src) in cfg.sources.iter().enumerate() {
        let filters = cfg.filters.build(&src.filter_names())?;
        let mut sr = SourceReport {
            name: src.name.clone(),
            tokens_in: counting.then_some(0),
            ..SourceReport::default()
        };
        let out_path = clean_dir(cfg, idx, src).join(format!("{}.jsonl", shard.dir_name()));
        let mut out = JsonlWriter::create(&out_path, RecordLayout::default())?;
        let mut batch: Vec<Record> = Vec::with_capacity(cfg.batch_size);
        let flush =
            |batch: &mut Vec<Record>, sr: &mut SourceReport, out: &mut JsonlWriter| -> Result<()> {
                let results: Vec<(Cleaned, u64)> = std::mem::take(batch)
                    .into_par_iter()
                    .map(|r| ctx.clean(&filters, src.pii, r))
                    .collect::<Result<_>>()?;
                for (c, tokens_in) in results {
                    if let Some(n) = sr.tokens_in.as_mut() {
                        *n += tokens_in;
                    }
                    match c {
                        Cleaned::Kept {
                            rec,
                            normalized,
                            modified,
                            pii,
                        } => {
                            sr.normalized += u64::from(normalized);
                            sr.modified_by_filters += u64::from(modified);
                            if pii.total() > 0 {
                                sr.pii_documents += 1;
                            }
                            sr.pii.merge(&pii);
                            out.write_record(&rec)?;
                        }
                        Cleaned::Removed {
                            id,
                            reason,
                            detail,
                            snippet,
                            bytes,
                        } => {
                            sr.remove(&reason, &id, snippet, bytes, detail, cfg.report_examples);
                        }
                    }
                }
                Ok(())
            };
        for item in open_source(src, shard) {
            match item {
                Input::Record(r) => {
                    sr.records_in += 1;
                    sr.bytes_in += r.text.len() as u64;
                    sr.byte_lengths_in.add(r.text.len() as u64);
                    batch.push(r);
                    if batch.len() >= cfg.batch_size {
                        flush(&mut batch, &mut sr, &mut out)?;
                    }
                }
                Input::Issue(i) => {
                    tracing::debug!(target: "infuse_data_prep", "{i}");
                    sr.issue(i);
                }
                Input::Skipped(reason) => {
                    *sr.skipped_files
                        .entry(reason.as_str().to_owned())
                        .or_default() += 1
                }
            }
        }
        flush(&mut batch, &mut sr, &mut out)?;
        out.finish()?;
        tracing::info!(source = %src.name, records = sr.records_in, removed = sr.removed_total(), "cleaned");
        report.pii.merge(&sr.pii);
        report.sources.push(sr);
    }
    let path = work_dir(cfg)
        .join("reports")
        .join(format!("{}.json", shard.dir_name()));
    write_atomic(&path, report.to_json()?.as_bytes())?;
    Ok(report)
}

/// Read the partial reports and check that every rank of one world size is present.
fn load_partial_reports(cfg: &PrepConfig) -> Result<(usize, Vec<PrepReport>)> {
    let dir = work_dir(cfg).join("reports");
    let entries =
        std::fs::read_dir(&dir).map_err(|e| Error::io("no clean-stage output in", &dir, e))?;
    let mut found: BTreeMap<usize, (usize, PathBuf)> = BTreeMap::new();
    let mut worlds = std::collections::BTreeSet::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix("shard-")
            .and_then(|r| r.strip_suffix(".json"))
        else {
            continue;
        };
        let Some((r, w)) = rest.split_once("-of-") else {
            continue;
        };
        let (Ok(r), Ok(w)) = (r.parse::<usize>(), w.parse::<usize>()) else {
            continue;
        };
        worlds.insert(w);
        found.insert(r, (w, e.path()));
    }
    if worlds.len() != 1 {
        return Err(Error::Config(format!(
            "{}: expected the clean-stage reports of one run, found world sizes {worlds:?} (delete {} and re-run)",
            dir.display(),
            work_dir(cfg).display()
        )));
    }
    let world = worlds.into_iter().next().unwrap_or(1);
    let missing: Vec<usize> = (0..world).filter(|r| !found.contains_key(r)).collect();
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "merge: shards {missing:?} of {world} have not finished the clean stage"
        )));
    }
    let mut reports = Vec::new();
    for (_, (_, path)) in found {
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        reports.push(serde_json::from_str(&text)?);
    }
    Ok((world, reports))
}

/// A re-read record after dedup: kept record, or the removal (id, detail, snippet, bytes); its
/// tokens, ICP signature, curriculum score, and `tokens_in` counted here.
type Merged = (
    Option<Record>,
    Option<(String, String, String, u64)>,
    Vec<u32>,
    Option<Vec<u32>>,
    f64,
    u64,
);

/// Per-document facts kept in memory by the merge stage.
struct Doc {
    source: usize,
    valid: bool,
    offset: u64,
    len: u32,
    score: f64,
}

/// The merge stage.
pub fn merge_shards(cfg: &PrepConfig) -> Result<PrepReport> {
    let (world, partials) = load_partial_reports(cfg)?;
    let mut report = PrepReport {
        seed: cfg.seed,
        shards: world,
        ..PrepReport::default()
    };
    for src in &cfg.sources {
        let mut sr = SourceReport {
            name: src.name.clone(),
            ..SourceReport::default()
        };
        for p in &partials {
            if let Some(x) = p.sources.iter().find(|s| s.name == src.name) {
                sr.merge(x, cfg.report_examples);
            }
        }
        report.pii.merge(&sr.pii);
        report.sources.push(sr);
    }
    let tok = match &cfg.tokenizer {
        Some(p) => Some(Tokenizer::from_file(p)?),
        None => None,
    };
    let anonymizer = if cfg.pii.enabled {
        Some(Anonymizer::new(&cfg.pii)?)
    } else {
        None
    };
    let out = &cfg.output_dir;

    // Dedup over every source that takes part.
    let dedup_dir = work_dir(cfg).join("clean").join("dedup");
    let decisions: Option<DedupDecisions> = if cfg.dedup.enabled && has_jsonl(&dedup_dir) {
        let d = MinHashDeduplicator::new(cfg.dedup.clone()).run(&dedup_dir)?;
        report.dedup = Some(d.summary.clone());
        Some(d)
    } else {
        None
    };
    let file_index: HashMap<PathBuf, usize> = decisions
        .as_ref()
        .map(|d| {
            d.files()
                .iter()
                .enumerate()
                .map(|(i, p)| (p.clone(), i))
                .collect()
        })
        .unwrap_or_default();

    // Final cleaned records, tokens, split.
    let tokens_dir = work_dir(cfg).join("tokens");
    std::fs::create_dir_all(&tokens_dir)
        .map_err(|e| Error::io("cannot create directory", &tokens_dir, e))?;
    let (bos, eos) = match &tok {
        Some(t) => {
            let bos = if cfg.mix.add_bos.unwrap_or(t.special().bos.is_some()) {
                t.special().bos
            } else {
                None
            };
            let eos = if cfg.mix.add_eos {
                Some(t.special().eos.first().copied().ok_or_else(|| {
                    Error::Config(format!(
                        "tokenizer {} has no EOS token; set mix.add_eos = false",
                        t.origin()
                    ))
                })?)
            } else {
                None
            };
            (bos, eos)
        }
        None => (None, None),
    };
    let icp_hasher = (cfg.mix.order == Order::Icp).then(|| IcpHasher::new(&cfg.mix.icp, cfg.seed));
    let curriculum_scorer = (cfg.mix.order == Order::Curriculum
        && cfg.mix.curriculum_field.is_none())
    .then(CharNgramScorer::english);
    let mut docs: Vec<Doc> = Vec::new();
    let mut sig_texts_docs: Vec<usize> = Vec::new();
    let mut sigs: Vec<Vec<u32>> = Vec::new();
    for (si, src) in cfg.sources.iter().enumerate() {
        let dir = clean_dir(cfg, si, src);
        let files: Vec<PathBuf> = (0..world)
            .map(|r| dir.join(format!("shard-{r:05}-of-{world:05}.jsonl")))
            .collect();
        let final_path =
            out.join("clean")
                .join(format!("{}.{}", src.name, cfg.output_format.extension()));
        let mut writer =
            RecordWriter::create(&final_path, cfg.output_format, RecordLayout::default())?;
        let tok_path = tokens_dir.join(format!("{si:03}.bin"));
        let mut tok_out = if tok.is_some() {
            Some(std::io::BufWriter::new(
                std::fs::File::create(&tok_path)
                    .map_err(|e| Error::io("cannot create", &tok_path, e))?,
            ))
        } else {
            None
        };
        let mut offset = 0u64;
        let sr = &mut report.sources[si];
        // The clean stage counted `tokens_in` of removed and changed records; the rest (marked
        // by the absence of TOKENS_IN_COUNTED) are counted here, from the tokenization that
        // packing does anyway when the record is kept unchanged.
        let counting = tok.is_some() && sr.tokens_in.is_some();
        for file in &files {
            let fidx = file_index.get(file).copied();
            let mut line_no = 0u64;
            let mut batch: Vec<(u64, Record)> = Vec::new();
            let reader = JsonlReader::new(
                vec![file.clone()],
                JsonlOptions {
                    source: src.name.clone(),
                    ..JsonlOptions::default()
                },
            );
            let mut process =
                |batch: &mut Vec<(u64, Record)>, sr: &mut SourceReport| -> Result<()> {
                    let items: Vec<Merged> = std::mem::take(batch)
                        .into_par_iter()
                        .map(|(line, mut rec)| -> Result<_> {
                            let pending =
                                counting && rec.metadata.remove(TOKENS_IN_COUNTED).is_none();
                            // Tokens of the text as the clean stage left it (= normalized),
                            // when dedup drops or edits it; unchanged texts are counted below.
                            let count = |t: &str| -> Result<u64> {
                                match (&tok, pending) {
                                    (Some(tk), true) => Ok(tk.encode(t)?.len() as u64),
                                    _ => Ok(0),
                                }
                            };
                            let (rec, dropped, mut tokens_in) = match (&decisions, fidx) {
                                (Some(d), Some(f)) => match d.apply(f, line, &rec.text) {
                                    Applied::Keep(t) => {
                                        let edited = matches!(&t, std::borrow::Cow::Owned(o) if *o != rec.text);
                                        let t = t.into_owned();
                                        let n = if edited { count(&rec.text)? } else { 0 };
                                        let pending_here = pending && !edited;
                                        ((Some(Record { text: t, ..rec }), pending_here), None, n)
                                    }
                                    Applied::Drop { duplicate_of } => {
                                        let detail = duplicate_of
                                            .map(|k| format!("duplicate of {k}"))
                                            .unwrap_or_default();
                                        let sn = snippet(&rec.text, anonymizer.as_ref());
                                        let bytes = rec.text.len() as u64;
                                        let n = count(&rec.text)?;
                                        ((None, false), Some((rec.id, detail, sn, bytes)), n)
                                    }
                                },
                                _ => ((Some(rec), pending), None, 0),
                            };
                            let (rec, count_kept) = rec;
                            let Some(rec) = rec else {
                                return Ok((None, dropped, Vec::new(), None, 0.0, tokens_in));
                            };
                            let ids = match &tok {
                                Some(t) => {
                                    let body = t.encode(&rec.text)?;
                                    if count_kept {
                                        tokens_in += body.len() as u64;
                                    }
                                    let mut ids = Vec::with_capacity(body.len() + 2);
                                    ids.extend(bos);
                                    ids.extend(body);
                                    ids.extend(eos);
                                    ids
                                }
                                None => Vec::new(),
                            };
                            let sig = icp_hasher.as_ref().map(|h| h.signature(&rec.text));
                            let score = match (&cfg.mix.curriculum_field, &curriculum_scorer) {
                                (Some(f), _) => rec
                                    .metadata
                                    .get(f)
                                    .and_then(Value::as_f64)
                                    .map_or(f64::NEG_INFINITY, |x| -x),
                                (None, Some(s)) => s.score(&rec.text),
                                _ => 0.0,
                            };
                            Ok((Some(rec), None, ids, sig, score, tokens_in))
                        })
                        .collect::<Result<_>>()?;
                    for (rec, dropped, ids, sig, score, tokens_in) in items {
                        if let Some(n) = sr.tokens_in.as_mut() {
                            *n += tokens_in;
                        }
                        if let Some((id, detail, sn, bytes)) = dropped {
                            sr.remove(
                                "near_duplicate",
                                &id,
                                sn,
                                bytes,
                                detail,
                                cfg.report_examples,
                            );
                            continue;
                        }
                        let Some(mut rec) = rec else { continue };
                        rec.metadata.remove("source");
                        rec.metadata.remove(TOKENS_IN_COUNTED);
                        sr.records_out += 1;
                        sr.bytes_out += rec.text.len() as u64;
                        writer.write(&rec)?;
                        if let Some(w) = tok_out.as_mut() {
                            let valid = unit_hash(
                                cfg.seed ^ SPLIT_SALT,
                                &format!("{}\u{0}{}", src.name, rec.id),
                            ) < cfg.mix.valid_fraction;
                            w.write_all(bytemuck::cast_slice(
                                &ids.iter().map(|x| x.to_le()).collect::<Vec<u32>>(),
                            ))
                            .map_err(|e| Error::io("cannot write", &tok_path, e))?;
                            sr.tokens_out += ids.len() as u64;
                            sr.token_lengths.add(ids.len() as u64);
                            if valid {
                                sr.valid_documents += 1;
                            } else {
                                sr.train_documents += 1;
                                if let Some(s) = sig {
                                    sig_texts_docs.push(docs.len());
                                    sigs.push(s);
                                }
                            }
                            docs.push(Doc {
                                source: si,
                                valid,
                                offset,
                                len: ids.len() as u32,
                                score,
                            });
                            offset += ids.len() as u64;
                        }
                    }
                    Ok(())
                };
            for item in reader {
                line_no += 1;
                if let ReadItem::Record(r) = item {
                    batch.push((line_no - 1, r));
                    if batch.len() >= cfg.batch_size {
                        process(&mut batch, sr)?;
                    }
                }
            }
            process(&mut batch, sr)?;
        }
        writer.finish()?;
        if let Some(w) = tok_out {
            let f = w
                .into_inner()
                .map_err(|e| Error::io("cannot write", &tok_path, e.into_error()))?;
            f.sync_all()
                .map_err(|e| Error::io("cannot sync", &tok_path, e))?;
        }
        report.outputs.push(format!(
            "clean/{}.{}",
            src.name,
            cfg.output_format.extension()
        ));
    }

    if let Some(t) = &tok {
        if !cfg.sources.is_empty() {
            pack_cpt(
                cfg,
                t,
                &docs,
                &sig_texts_docs,
                &sigs,
                &tokens_dir,
                &mut report,
            )?;
        }
        let chat = !cfg.sft.is_empty() || !cfg.preference.is_empty();
        if chat {
            let (template, name) = choose_template(&cfg.chat.chat_template, t)?;
            report.chat_template = Some(name);
            if !cfg.sft.is_empty() {
                run_sft(cfg, t, &template, anonymizer.as_ref(), &mut report)?;
            }
            if !cfg.preference.is_empty() {
                run_preference(cfg, t, &template, anonymizer.as_ref(), &mut report)?;
            }
        }
    } else if !cfg.sft.is_empty() || !cfg.preference.is_empty() || !cfg.sources.is_empty() {
        report
            .notes
            .push("no tokenizer configured: cleaned records written, no token stores".into());
    }

    report.outputs.push("report.json".into());
    report.outputs.push("report.html".into());
    write_atomic(out.join("report.json"), report.to_json()?.as_bytes())?;
    write_atomic(out.join("report.html"), report.to_html().as_bytes())?;
    if !cfg.keep_work {
        let _ = std::fs::remove_dir_all(work_dir(cfg));
    }
    Ok(report)
}

fn has_jsonl(dir: &Path) -> bool {
    crate::read::walk(dir, &|_| true)
        .0
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "jsonl"))
}

fn store_spec(
    cfg: &PrepConfig,
    tok: &Tokenizer,
    kind: &str,
    split: &str,
    mask: bool,
    seq_len: usize,
) -> StoreSpec {
    StoreSpec {
        kind: kind.into(),
        split: split.into(),
        tokenizer: cfg
            .tokenizer
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| tok.origin().to_owned()),
        vocab_size: tok.vocab_size(),
        seq_len,
        seed: cfg.seed,
        has_loss_mask: mask,
    }
}

/// Write `tmp` to `dest` in a seeded random sequence order, then remove `tmp`.
fn shuffle_store(tmp: &Path, dest: &Path, seed: u64) -> Result<crate::tokstore::StoreMeta> {
    let store = TokenStore::open(tmp)?;
    let mut order: Vec<usize> = (0..store.num_sequences()).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let meta = store.write_reordered(dest, &order, true)?;
    drop(store);
    let _ = std::fs::remove_dir_all(tmp);
    Ok(meta)
}

fn pack_cpt(
    cfg: &PrepConfig,
    tok: &Tokenizer,
    docs: &[Doc],
    sig_docs: &[usize],
    sigs: &[Vec<u32>],
    tokens_dir: &Path,
    report: &mut PrepReport,
) -> Result<()> {
    let maps: Vec<Option<Mmap>> = (0..cfg.sources.len())
        .map(|si| {
            let p = tokens_dir.join(format!("{si:03}.bin"));
            let f = std::fs::File::open(&p).map_err(|e| Error::io("cannot open", &p, e))?;
            if f.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
                return Ok(None);
            }
            // SAFETY: the token file was written and synced above by this process and is not
            // modified while mapped; it lives in the private work directory.
            #[allow(unsafe_code)]
            let m = unsafe { Mmap::map(&f) }.map_err(|e| Error::io("cannot map", &p, e))?;
            Ok(Some(m))
        })
        .collect::<Result<_>>()?;
    let doc_tokens = |d: &Doc| -> Vec<u32> {
        let Some(m) = &maps[d.source] else {
            return Vec::new();
        };
        let a = (d.offset * 4) as usize;
        let b = a + d.len as usize * 4;
        m[a..b]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    // Mix the training documents.
    let mut per_source: Vec<Vec<(usize, u64)>> = vec![Vec::new(); cfg.sources.len()];
    for (i, d) in docs.iter().enumerate() {
        if !d.valid {
            per_source[d.source].push((i, u64::from(d.len)));
        }
    }
    let budgets: Vec<SourceBudget> = cfg
        .sources
        .iter()
        .zip(&per_source)
        .map(|(s, l)| SourceBudget {
            name: s.name.clone(),
            tokens: l.iter().map(|x| x.1).sum(),
            weight: s.weight,
            max_epochs: s.max_epochs,
        })
        .collect();
    let mut plan = plan_mix(&budgets, cfg.mix.total_tokens)?;
    let instances = select_documents(&per_source, &mut plan, cfg.seed);
    let scores: Vec<f64> = docs.iter().map(|d| d.score).collect();
    let chain: Vec<usize> = if cfg.mix.order == Order::Icp {
        icp_chain(sigs, &cfg.mix.icp, cfg.seed)
            .into_iter()
            .map(|i| sig_docs[i])
            .collect()
    } else {
        Vec::new()
    };
    let ordered: Vec<Instance> =
        order_instances(instances, cfg.mix.order, cfg.seed, &scores, &chain);
    report.notes.extend(plan.notes.iter().cloned());
    report.mix = Some(plan);
    let shuffle = cfg
        .mix
        .shuffle_sequences
        .unwrap_or(!matches!(cfg.mix.order, Order::Curriculum | Order::Input));
    let extra = |order: Order| {
        let mut m = Map::new();
        m.insert(
            "order".into(),
            serde_json::to_value(order).unwrap_or(Value::Null),
        );
        m.insert(
            "last_partial".into(),
            serde_json::to_value(cfg.mix.last_partial).unwrap_or(Value::Null),
        );
        m
    };
    let out = &cfg.output_dir;
    let train_dest = out.join("cpt").join("train");
    let train_tmp = work_dir(cfg).join("cpt-train-unshuffled");
    {
        let dest = if shuffle { &train_tmp } else { &train_dest };
        let mut w = TokenStoreWriter::create(
            dest,
            store_spec(cfg, tok, "cpt", "train", false, cfg.seq_len),
        )?;
        let mut p = CptPacker::new(&mut w, cfg.seq_len, cfg.mix.last_partial);
        for inst in &ordered {
            let d = &docs[inst.doc];
            p.add_document(&doc_tokens(d), &cfg.sources[d.source].name)?;
        }
        let stats = p.finish()?;
        let meta = w.finish(false, extra(cfg.mix.order))?;
        let meta = if shuffle {
            shuffle_store(&train_tmp, &train_dest, cfg.seed ^ SHUFFLE_SALT)?
        } else {
            meta
        };
        report.stores.insert(
            "cpt/train".into(),
            StoreReport {
                path: "cpt/train".into(),
                sequences: meta.num_sequences,
                tokens: meta.num_tokens,
                loss_tokens: meta.num_loss_tokens,
                packing: stats,
            },
        );
    }
    if docs.iter().any(|d| d.valid) {
        let dest = out.join("cpt").join("valid");
        let mut w = TokenStoreWriter::create(
            &dest,
            store_spec(cfg, tok, "cpt", "valid", false, cfg.seq_len),
        )?;
        let mut p = CptPacker::new(&mut w, cfg.seq_len, cfg.mix.last_partial);
        for d in docs.iter().filter(|d| d.valid) {
            p.add_document(&doc_tokens(d), &cfg.sources[d.source].name)?;
        }
        let stats = p.finish()?;
        let meta = w.finish(false, extra(Order::Input))?;
        report.stores.insert(
            "cpt/valid".into(),
            StoreReport {
                path: "cpt/valid".into(),
                sequences: meta.num_sequences,
                tokens: meta.num_tokens,
                loss_tokens: meta.num_loss_tokens,
                packing: stats,
            },
        );
    }
    Ok(())
}

fn chat_files(src: &ChatSourceConfig, rep: &mut ChatSourceReport) -> Vec<PathBuf> {
    let (files, issues) = expand_inputs(
        &src.paths,
        &[".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz"],
    );
    for i in issues {
        rep.issue(i);
    }
    files
}

fn anonymize_messages(messages: &mut [Message], anon: Option<&Anonymizer>, counts: &mut PiiCounts) {
    if let Some(a) = anon {
        for m in messages {
            let (t, c) = a.anonymize(&m.content);
            m.content = t;
            counts.merge(&c);
        }
    }
}

fn invalid(path: &Path, line: u64, field: String, message: String) -> ReadIssue {
    ReadIssue {
        path: path.to_owned(),
        line: Some(line),
        field: Some(field),
        kind: IssueKind::Invalid,
        message,
    }
}

fn run_sft(
    cfg: &PrepConfig,
    tok: &Tokenizer,
    template: &ChatTemplate,
    anon: Option<&Anonymizer>,
    report: &mut PrepReport,
) -> Result<()> {
    let max_len = cfg.chat.max_len.unwrap_or(cfg.seq_len);
    let out = &cfg.output_dir;
    let train_tmp = work_dir(cfg).join("sft-train-unshuffled");
    let mut train_w = TokenStoreWriter::create(
        &train_tmp,
        store_spec(cfg, tok, "sft", "train", true, max_len),
    )?;
    let mut valid_w = TokenStoreWriter::create(
        out.join("sft").join("valid"),
        store_spec(cfg, tok, "sft", "valid", true, max_len),
    )?;
    let mut train_p = SftPacker::new(&mut train_w, max_len, cfg.chat.packing);
    let mut valid_p = SftPacker::new(&mut valid_w, max_len, cfg.chat.packing);
    for src in &cfg.sft {
        let mut rep = ChatSourceReport {
            name: src.name.clone(),
            ..ChatSourceReport::default()
        };
        let files = chat_files(src, &mut rep);
        let opts = ParseOptions {
            format: src.format,
            system_prompt: src.system_prompt.clone(),
            task_type_field: src.task_type_field.clone(),
        };
        let mut convs = Vec::new();
        for item in JsonLines::new(
            files,
            crate::read::DEFAULT_MAX_RECORD_BYTES,
            Shard::single(),
        ) {
            match item {
                JsonLine::Issue(i) => rep.issue(i),
                JsonLine::Object { path, line, map } => {
                    rep.records_in += 1;
                    match parse_sft(
                        &Value::Object(map),
                        &format!("{}:{line}", path.display()),
                        &opts,
                    ) {
                        Err(e) => rep.issue(invalid(&path, line, e.field, e.message)),
                        Ok(mut c) => {
                            rep.valid += 1;
                            *rep.task_types.entry(c.task_type.clone()).or_default() += 1;
                            if src.pii {
                                anonymize_messages(&mut c.messages, anon, &mut rep.pii);
                            }
                            let valid = unit_hash(
                                cfg.seed ^ SFT_SALT,
                                &format!("{}\u{0}{}", src.name, c.id),
                            ) < cfg.chat.valid_fraction;
                            let variants = if valid {
                                Vec::new()
                            } else {
                                augment(&c, &cfg.chat.augment, cfg.seed)
                            };
                            rep.augmented += variants.len() as u64;
                            convs.push((valid, c));
                            convs.extend(variants.into_iter().map(|v| (false, v)));
                        }
                    }
                }
            }
            if convs.len() >= cfg.batch_size {
                encode_and_pack(
                    tok,
                    template,
                    max_len,
                    cfg,
                    &src.name,
                    std::mem::take(&mut convs),
                    &mut rep,
                    &mut train_p,
                    &mut valid_p,
                )?;
            }
        }
        encode_and_pack(
            tok,
            template,
            max_len,
            cfg,
            &src.name,
            convs,
            &mut rep,
            &mut train_p,
            &mut valid_p,
        )?;
        report.pii.merge(&rep.pii);
        report.sft.push(rep);
    }
    let train_stats = train_p.finish()?;
    let valid_stats = valid_p.finish()?;
    let mut extra = Map::new();
    extra.insert(
        "chat_template".into(),
        Value::String(report.chat_template.clone().unwrap_or_default()),
    );
    extra.insert("packing".into(), Value::Bool(cfg.chat.packing));
    train_w.finish(false, extra.clone())?;
    let train_meta = shuffle_store(
        &train_tmp,
        &out.join("sft").join("train"),
        cfg.seed ^ SHUFFLE_SALT,
    )?;
    let valid_meta = valid_w.finish(false, extra)?;
    for (name, meta, stats) in [
        ("sft/train", train_meta, train_stats),
        ("sft/valid", valid_meta, valid_stats),
    ] {
        report.stores.insert(
            name.into(),
            StoreReport {
                path: name.into(),
                sequences: meta.num_sequences,
                tokens: meta.num_tokens,
                loss_tokens: meta.num_loss_tokens,
                packing: stats,
            },
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn encode_and_pack(
    tok: &Tokenizer,
    template: &ChatTemplate,
    max_len: usize,
    cfg: &PrepConfig,
    source: &str,
    convs: Vec<(bool, crate::sft::Conversation)>,
    rep: &mut ChatSourceReport,
    train: &mut SftPacker<'_>,
    valid: &mut SftPacker<'_>,
) -> Result<()> {
    let encoded: Vec<_> = convs
        .par_iter()
        .map(|(_, c)| encode_conversation(tok, template, &c.messages, max_len, cfg.chat.truncation))
        .collect::<Result<_>>()?;
    for ((is_valid, _), e) in convs.iter().zip(encoded) {
        match e {
            Err(EncodeSkip::TooLong) => *rep.skipped.entry("too_long".into()).or_default() += 1,
            Err(EncodeSkip::NoTrainableTokens) => {
                *rep.skipped.entry("no_trainable_tokens".into()).or_default() += 1
            }
            Ok(enc) => {
                rep.truncated += u64::from(enc.truncated);
                rep.written += 1;
                rep.token_lengths.add(enc.ids.len() as u64);
                if *is_valid {
                    valid.add_sample(&enc.ids, &enc.mask, source)?;
                } else {
                    train.add_sample(&enc.ids, &enc.mask, source)?;
                }
            }
        }
    }
    Ok(())
}

fn run_preference(
    cfg: &PrepConfig,
    tok: &Tokenizer,
    template: &ChatTemplate,
    anon: Option<&Anonymizer>,
    report: &mut PrepReport,
) -> Result<()> {
    let max_len = cfg.chat.max_len.unwrap_or(cfg.seq_len);
    let out = cfg.output_dir.join("dpo");
    let mut writers = Vec::new();
    for split in ["train", "valid"] {
        let chosen = TokenStoreWriter::create(
            out.join(split).join("chosen"),
            store_spec(cfg, tok, "dpo_chosen", split, true, max_len),
        )?;
        let rejected = TokenStoreWriter::create(
            out.join(split).join("rejected"),
            store_spec(cfg, tok, "dpo_rejected", split, true, max_len),
        )?;
        let pairs =
            JsonlWriter::create(out.join(split).join("pairs.jsonl"), RecordLayout::default())?;
        writers.push((chosen, rejected, pairs));
    }
    for src in &cfg.preference {
        let mut rep = ChatSourceReport {
            name: src.name.clone(),
            ..ChatSourceReport::default()
        };
        let files = chat_files(src, &mut rep);
        let opts = ParseOptions {
            format: src.format,
            system_prompt: src.system_prompt.clone(),
            task_type_field: src.task_type_field.clone(),
        };
        for item in JsonLines::new(
            files,
            crate::read::DEFAULT_MAX_RECORD_BYTES,
            Shard::single(),
        ) {
            let (path, line, map) = match item {
                JsonLine::Issue(i) => {
                    rep.issue(i);
                    continue;
                }
                JsonLine::Object { path, line, map } => (path, line, map),
            };
            rep.records_in += 1;
            let mut pair = match parse_preference(
                &Value::Object(map),
                &format!("{}:{line}", path.display()),
                &opts,
            ) {
                Err(e) => {
                    rep.issue(invalid(&path, line, e.field, e.message));
                    continue;
                }
                Ok(p) => p,
            };
            rep.valid += 1;
            *rep.task_types.entry(pair.task_type.clone()).or_default() += 1;
            if src.pii {
                anonymize_messages(&mut pair.prompt, anon, &mut rep.pii);
                let mut answers = [
                    Message::assistant(pair.chosen.clone()),
                    Message::assistant(pair.rejected.clone()),
                ];
                anonymize_messages(&mut answers, anon, &mut rep.pii);
                let [c, r] = answers;
                pair.chosen = c.content;
                pair.rejected = r.content;
            }
            let enc = |answer: &str| {
                let mut m = pair.prompt.clone();
                m.push(Message::assistant(answer));
                encode_conversation(tok, template, &m, max_len, cfg.chat.truncation)
            };
            let (c, r) = (enc(&pair.chosen)?, enc(&pair.rejected)?);
            let (c, r) = match (c, r) {
                (Ok(c), Ok(r)) => (c, r),
                (Err(EncodeSkip::TooLong), _) | (_, Err(EncodeSkip::TooLong)) => {
                    *rep.skipped.entry("too_long".into()).or_default() += 1;
                    continue;
                }
                _ => {
                    *rep.skipped.entry("no_trainable_tokens".into()).or_default() += 1;
                    continue;
                }
            };
            let valid = unit_hash(
                cfg.seed ^ SFT_SALT,
                &format!("{}\u{0}{}", src.name, pair.id),
            ) < cfg.chat.valid_fraction;
            let (cw, rw, pw) = &mut writers[usize::from(valid)];
            cw.push(&c.ids, Some(&c.mask), &[0])?;
            rw.push(&r.ids, Some(&r.mask), &[0])?;
            cw.add_source_tokens(&src.name, c.ids.len() as u64);
            rw.add_source_tokens(&src.name, r.ids.len() as u64);
            pw.write_value(&serde_json::to_value(&pair)?)?;
            rep.written += 1;
            rep.truncated += u64::from(c.truncated || r.truncated);
            rep.token_lengths
                .add((c.ids.len() + r.ids.len()) as u64 / 2);
        }
        report.pii.merge(&rep.pii);
        report.preference.push(rep);
    }
    for (split, (c, r, p)) in ["train", "valid"].into_iter().zip(writers) {
        let n = p.finish()?;
        let cm = c.finish(false, Map::new())?;
        let rm = r.finish(false, Map::new())?;
        for (name, meta) in [
            (format!("dpo/{split}/chosen"), cm),
            (format!("dpo/{split}/rejected"), rm),
        ] {
            report.stores.insert(
                name.clone(),
                StoreReport {
                    path: name,
                    sequences: meta.num_sequences,
                    tokens: meta.num_tokens,
                    loss_tokens: meta.num_loss_tokens,
                    packing: crate::pack::PackStats {
                        documents: n,
                        sequences: meta.num_sequences,
                        tokens: meta.num_tokens,
                        ..Default::default()
                    },
                },
            );
        }
        report.outputs.push(format!("dpo/{split}/pairs.jsonl"));
    }
    Ok(())
}

//! `cargo xtask bench prep`: data-prep throughput on the Brown corpus.
//!
//! 1. Loads the Brown corpus (NLTK `word/TAG` files; tags stripped, tokens detokenized, one
//!    document per file, paragraphs kept) and optionally repeats it `--scale` times with distinct
//!    ids (the copies are exact duplicates, so dedup has work to do).
//! 2. **Clean**: normalize + the default prose filters (Gopher quality and repetition, FineWeb,
//!    char n-gram scorer) + PII anonymization, on one thread: MB per CPU-second.
//! 3. **Dedup**: MinHash document dedup (infuse-dedup-minhash through the data-prep adapter) with
//!    one worker thread: MB per CPU-second, and clean + dedup combined.
//! 4. **Tokenize + pack**: Llama 3 `tokenizer.json`, `[BOS] text [EOS]`, packed into a 2048-token
//!    store, one thread: MB and tokens per CPU-second.
//! 5. **End to end**: `run_prep` over the corpus as JSONL with all cores: MB per wall-second.
//!
//! CPU time is process time from `/proc/self/stat` (Linux). Timings need optimized code: a debug
//! build re-runs itself with `cargo run --release`.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use infuse_data_prep::config::{PrepConfig, SourceConfig, SourceKind};
use infuse_data_prep::dedup::{DedupStepConfig, Deduplicator, MinHashDeduplicator};
use infuse_data_prep::filters::FilterConfig;
use infuse_data_prep::infuse_text::Tokenizer;
use infuse_data_prep::normalize::{NormalizeConfig, normalize};
use infuse_data_prep::pack::{CptPacker, LastPartial};
use infuse_data_prep::pii::{Anonymizer, PiiConfig};
use infuse_data_prep::tokstore::{StoreSpec, TokenStoreWriter};
use infuse_data_prep::write::{JsonlWriter, RecordLayout};
use infuse_data_prep::{Record, run_prep};

/// Options of `cargo xtask bench prep`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct BenchPrepOpts {
    /// Brown corpus directory (default: .cache/assets/data/brown).
    #[arg(long)]
    pub(crate) corpus: Option<PathBuf>,
    /// tokenizer.json (default: .cache/assets/tokenizers/llama3/tokenizer.json).
    #[arg(long)]
    pub(crate) tokenizer: Option<PathBuf>,
    /// Copies of the corpus (exact duplicates with distinct ids).
    #[arg(long, default_value_t = 1)]
    pub(crate) scale: usize,
    /// Timed repetitions of each single-thread measurement (the fastest is reported).
    #[arg(long, default_value_t = 2)]
    pub(crate) reps: usize,
    /// Working directory (default: a directory under the system temp dir).
    #[arg(long)]
    pub(crate) workdir: Option<PathBuf>,
}

fn repo_root() -> PathBuf {
    let start = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    start
        .ancestors()
        .find(|d| d.join("xtask").is_dir() && d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(start)
}

fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .context("reading /proc/self/stat (CPU time needs Linux)")?;
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 2..])
        .context("malformed /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields
        .get(11)
        .and_then(|f| f.parse().ok())
        .context("utime")?;
    let stime: f64 = fields
        .get(12)
        .and_then(|f| f.parse().ok())
        .context("stime")?;
    let clk = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    Ok((utime + stime) / clk)
}

/// Detokenize one Brown line: strip `/tag`, join tokens, glue punctuation.
fn brown_line(line: &str) -> String {
    let mut out = String::new();
    for tok in line.split_whitespace() {
        let word = tok.rsplit_once('/').map_or(tok, |(w, _)| w);
        let word = match word {
            "``" | "''" => "\"",
            w => w,
        };
        let glue_left = matches!(
            word,
            "." | "," | ";" | ":" | "!" | "?" | ")" | "'s" | "n't" | "'"
        );
        if !out.is_empty() && !glue_left && !out.ends_with('(') {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The Brown corpus as documents (one per file, paragraphs separated by blank lines).
pub(crate) fn load_brown(dir: &Path) -> Result<Vec<Record>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {} (run `cargo xtask fetch-assets`)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 4 && n.starts_with('c'))
        })
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let raw =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let mut paragraphs: Vec<String> = Vec::new();
        let mut cur = String::new();
        for line in raw.lines() {
            if line.trim().is_empty() {
                if !cur.is_empty() {
                    paragraphs.push(std::mem::take(&mut cur));
                }
                continue;
            }
            let s = brown_line(line);
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(&s);
        }
        if !cur.is_empty() {
            paragraphs.push(cur);
        }
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        docs.push(Record::new(name, paragraphs.join("\n\n"), "brown"));
    }
    if docs.is_empty() {
        bail!("no Brown files (ca01 ...) in {}", dir.display());
    }
    Ok(docs)
}

/// Fastest of `reps` runs in CPU seconds (process time, all threads), with its wall time.
fn timed<T>(reps: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, f64, T)> {
    let (mut best, mut best_wall) = (f64::INFINITY, 0.0);
    let mut last = None;
    for _ in 0..reps.max(1) {
        let (t0, w0) = (cpu_seconds()?, Instant::now());
        let v = f()?;
        let cpu = cpu_seconds()? - t0;
        if cpu < best {
            best = cpu;
            best_wall = w0.elapsed().as_secs_f64();
        }
        last = Some(v);
    }
    Ok((
        best.max(1e-9),
        best_wall,
        last.context("no repetition ran")?,
    ))
}

/// [`timed`] without the wall time.
fn best_of<T>(reps: usize, f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    timed(reps, f).map(|(c, _, v)| (c, v))
}

/// Runs the benchmark.
pub(crate) fn run(opts: BenchPrepOpts) -> Result<()> {
    if cfg!(debug_assertions) && std::env::var_os("INFUSE_BENCH_REEXEC").is_none() {
        println!("(debug build: re-running with --release so that the timings mean something)");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let args: Vec<String> = std::env::args().skip(1).collect();
        let status = Command::new(cargo)
            .args(["run", "--release", "--quiet", "--package", "xtask", "--"])
            .args(&args)
            .env("INFUSE_BENCH_REEXEC", "1")
            .status()
            .context("running cargo run --release")?;
        if !status.success() {
            bail!("release run failed with {status}");
        }
        return Ok(());
    }
    let root = repo_root();
    let corpus = opts
        .corpus
        .clone()
        .unwrap_or_else(|| root.join(".cache/assets/data/brown"));
    let tok_path = opts
        .tokenizer
        .clone()
        .unwrap_or_else(|| root.join(".cache/assets/tokenizers/llama3/tokenizer.json"));
    let work = opts
        .workdir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("infuse-bench-prep"));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    let base = load_brown(&corpus)?;
    let mut docs = Vec::with_capacity(base.len() * opts.scale.max(1));
    for copy in 0..opts.scale.max(1) {
        for d in &base {
            docs.push(Record::new(
                format!("{}#{copy}", d.id),
                d.text.clone(),
                "brown",
            ));
        }
    }
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    let mb = bytes as f64 / 1e6;
    println!(
        "corpus: {} documents, {:.2} MB ({}x Brown)",
        docs.len(),
        mb,
        opts.scale.max(1)
    );

    // 2. clean, one thread.
    let filters = FilterConfig::default();
    let names: Vec<String> = ["gopher_quality", "gopher_repetition", "fineweb", "scorer"]
        .map(String::from)
        .to_vec();
    let chain = filters.build(&names)?;
    let anon = Anonymizer::new(&PiiConfig::default())?;
    let ncfg = NormalizeConfig::default();
    let (clean_cpu, (kept, reasons, pii)) = best_of(opts.reps, || {
        let mut kept = 0usize;
        let mut reasons = std::collections::BTreeMap::<String, usize>::new();
        let mut pii = 0u64;
        for d in &docs {
            let t = normalize(&d.text, &ncfg);
            match chain.apply(&t) {
                Err(r) => *reasons.entry(r.into_owned()).or_default() += 1,
                Ok(new) => {
                    let (_, c) = anon.anonymize(new.as_deref().unwrap_or(&t));
                    pii += c.total();
                    kept += 1;
                }
            }
        }
        Ok((kept, reasons, pii))
    })?;
    println!(
        "clean (normalize + gopher + fineweb + scorer + PII), 1 thread: {:.2} MB/CPU-s; kept {kept}/{}, removed {reasons:?}, {pii} PII replacements",
        mb / clean_cpu,
        docs.len()
    );
    // Breakdown: each step alone over the whole corpus.
    let mut parts = Vec::new();
    let (t, _) = best_of(1, || {
        Ok(docs
            .iter()
            .map(|d| normalize(&d.text, &ncfg).len())
            .sum::<usize>())
    })?;
    parts.push(("normalize".to_owned(), t));
    for n in &names {
        let one = filters.build(std::slice::from_ref(n))?;
        let (t, _) = best_of(1, || {
            Ok(docs.iter().filter(|d| one.apply(&d.text).is_ok()).count())
        })?;
        parts.push((n.clone(), t));
    }
    let (t, _) = best_of(1, || {
        Ok(docs
            .iter()
            .map(|d| anon.anonymize(&d.text).1.total())
            .sum::<u64>())
    })?;
    parts.push(("pii".to_owned(), t));
    for (name, t) in &parts {
        println!("    {name:<18} {:>8.2} MB/CPU-s", mb / t);
    }

    // 3. dedup, one thread.
    let dedup_dir = work.join("dedup-input");
    std::fs::create_dir_all(&dedup_dir)?;
    let mut w = JsonlWriter::create(dedup_dir.join("docs.jsonl"), RecordLayout::default())?;
    for d in &docs {
        w.write_record(d)?;
    }
    w.finish()?;
    let dd = MinHashDeduplicator::new(DedupStepConfig {
        threads: Some(1),
        ..DedupStepConfig::default()
    });
    let (dedup_cpu, dedup_wall, decisions) = timed(opts.reps, || Ok(dd.run(&dedup_dir)?))?;
    println!(
        "dedup (MinHash 128 x word 5-grams, verified), 1 thread: {:.2} MB/CPU-s ({:.3} CPU-s, {:.3} s wall); {} of {} documents removed",
        mb / dedup_cpu,
        dedup_cpu,
        dedup_wall,
        decisions.summary.documents_removed,
        decisions.summary.records_in
    );
    let pipeline = mb / (clean_cpu + dedup_cpu);
    println!("filter + PII + dedup: {pipeline:.2} MB per CPU-second (per core)");

    // 4. tokenize + pack, one thread.
    let tok = Tokenizer::from_file(&tok_path)
        .with_context(|| format!("loading {}", tok_path.display()))?;
    let (bos, eos) = (tok.special().bos, tok.special().eos.first().copied());
    let (tok_cpu, ntok) = best_of(opts.reps, || {
        let spec = StoreSpec {
            kind: "cpt".into(),
            split: "train".into(),
            tokenizer: tok_path.display().to_string(),
            vocab_size: tok.vocab_size(),
            seq_len: 2048,
            seed: 0,
            has_loss_mask: false,
        };
        let mut w = TokenStoreWriter::create(work.join("store"), spec)?;
        let mut p = CptPacker::new(&mut w, 2048, LastPartial::Keep);
        let mut n = 0u64;
        for d in &docs {
            let mut ids = Vec::new();
            ids.extend(bos);
            ids.extend(tok.encode(&d.text)?);
            ids.extend(eos);
            n += ids.len() as u64;
            p.add_document(&ids, "brown")?;
        }
        p.finish()?;
        w.finish(false, serde_json::Map::new())?;
        Ok(n)
    })?;
    println!(
        "tokenize + pack (Llama 3), 1 thread: {:.2} MB/CPU-s, {:.0} tokens/CPU-s ({ntok} tokens)",
        mb / tok_cpu,
        ntok as f64 / tok_cpu
    );

    // 5. end to end, all cores.
    let input = work.join("brown.jsonl");
    let mut w = JsonlWriter::create(&input, RecordLayout::default())?;
    for d in &docs {
        w.write_record(d)?;
    }
    w.finish()?;
    let mut cfg = PrepConfig::new(work.join("out"));
    cfg.tokenizer = Some(tok_path.clone());
    cfg.sources
        .push(SourceConfig::new("brown", SourceKind::Jsonl, vec![input]));
    let t0 = Instant::now();
    let c0 = cpu_seconds()?;
    let report = run_prep(&cfg)?;
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds()? - c0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "run_prep end to end ({threads} threads): {:.2} MB/s wall, {:.2} MB/CPU-s; {} of {} documents kept, {} tokens in cpt/train",
        mb / wall,
        mb / cpu,
        report.sources[0].records_out,
        report.sources[0].records_in,
        report.stores.get("cpt/train").map_or(0, |s| s.tokens)
    );
    let summary = serde_json::json!({
        "documents": docs.len(),
        "mb": mb,
        "clean_mb_per_cpu_s": mb / clean_cpu,
        "dedup_mb_per_cpu_s": mb / dedup_cpu,
        "filter_pii_dedup_mb_per_cpu_s": pipeline,
        "tokenize_pack_mb_per_cpu_s": mb / tok_cpu,
        "tokenize_pack_tokens_per_cpu_s": ntok as f64 / tok_cpu,
        "end_to_end_mb_per_wall_s": mb / wall,
        "end_to_end_threads": threads,
        "kept_by_filters": kept,
    });
    println!("{summary}");
    Ok(())
}

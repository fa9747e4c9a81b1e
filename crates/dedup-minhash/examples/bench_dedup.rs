//! The infuse side of `cargo xtask bench dedup`: deduplicates a corpus written by
//! `datasketch_reference.py --write-jsonl`, measures process CPU time, and scores the verified
//! pairs against the exact ground truth.
//!
//! ```text
//! cargo run --release -p infuse-dedup-minhash --example bench_dedup -- CORPUS.jsonl [--reps 5] [--threads 1] [--threshold 0.8] [--out DIR]
//! ```
//! Human-readable lines go to stderr; the last stdout line is one JSON object with the figures.
//!
//! * CPU time: the process CPU-time clock (`CLOCK_PROCESS_CPUTIME_ID`: user + system time of
//!   all threads, nanoseconds) around each of `--reps` runs after one warm-up run; the median is
//!   the figure (min and mean are printed too). `--threads 1` runs everything on one core, like
//!   the datasketch script.
//! * Scopes: end to end (JSONL file -> JSONL file + clusters file + JSON report) and in memory
//!   (texts already loaded as records, the scope of datasketch's figure).
//! * Ground truth: every pair of documents whose word-5-gram shingle sets (as strings) have
//!   Jaccard similarity >= the threshold, by an exact all-pairs similarity join.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use infuse_dedup_minhash::{BaseHash, DedupConfig, JsonlJob, Record, Shingle, Shingler, dedup_jsonl, dedup_records};
use serde_json::json;

type Error = Box<dyn std::error::Error>;

struct Args {
    corpus: PathBuf,
    reps: usize,
    threads: usize,
    threshold: f64,
    out: PathBuf,
}

fn parse_args() -> Result<Args, Error> {
    let mut it = std::env::args().skip(1);
    let mut args = Args { corpus: PathBuf::new(), reps: 7, threads: 1, threshold: 0.8, out: std::env::temp_dir().join("infuse-bench-dedup") };
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--reps" => args.reps = value()?.parse()?,
            "--threads" => args.threads = value()?.parse()?,
            "--threshold" => args.threshold = value()?.parse()?,
            "--out" => args.out = PathBuf::from(value()?),
            _ if a.starts_with("--") => return Err(format!("unknown option {a}").into()),
            _ => args.corpus = PathBuf::from(a),
        }
    }
    if args.corpus.as_os_str().is_empty() {
        return Err("usage: bench_dedup CORPUS.jsonl [--reps N] [--threads N] [--threshold T] [--out DIR]".into());
    }
    Ok(args)
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.out)?;
    let records = load(&args.corpus)?;
    let n = records.len();

    let t0 = Instant::now();
    let truth = exact_pairs(&records, 5, args.threshold);
    eprintln!("ground truth: {} pairs with word-5-gram Jaccard >= {} among {n} documents (exact join, {:.1} s)", truth.len(), args.threshold, t0.elapsed().as_secs_f64());

    let config = DedupConfig { threshold: args.threshold, threads: Some(args.threads.max(1)), ..DedupConfig::default() };
    let mut job = JsonlJob::new(&args.corpus, args.out.join("infuse_out.jsonl"));
    job.clusters = Some(args.out.join("infuse_clusters.jsonl"));
    job.report = Some(args.out.join("infuse_report.json"));
    let reps = args.reps.max(1);

    // End to end, file to file (one warm-up run: page cache, memoized LSH parameters).
    let mut report = dedup_jsonl(&config, &job)?;
    let mut file_runs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let c = cpu_seconds();
        report = dedup_jsonl(&config, &job)?;
        file_runs.push(cpu_seconds() - c);
    }

    // In memory: the records are cloned outside the timed region.
    let _ = dedup_records(&config, records.clone())?;
    let mut mem_runs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let input = records.clone();
        let c = cpu_seconds();
        let out = dedup_records(&config, input)?;
        mem_runs.push(cpu_seconds() - c);
        drop(out);
    }
    let (file_cpu, file_min, file_mean) = stats(&mut file_runs);
    let (mem_cpu, mem_min, mem_mean) = stats(&mut mem_runs);

    // Wall clock on all cores, end to end.
    let w = Instant::now();
    dedup_jsonl(&DedupConfig { threads: None, ..config.clone() }, &job)?;
    let wall_all = w.elapsed().as_secs_f64();

    let predicted: Vec<(u32, u32)> = report
        .verified_id_pairs()
        .filter_map(|(a, b, _)| {
            let (a, b) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
            Some(if a < b { (a, b) } else { (b, a) })
        })
        .collect();
    let q = quality(&predicted, &truth);
    eprintln!(
        "infuse: end to end median {file_cpu:.4} CPU-s ({:.0} docs/CPU-s; min {file_min:.4}, mean {file_mean:.4}), in memory median {mem_cpu:.4} CPU-s ({:.0} docs/CPU-s; min {mem_min:.4}, mean {mem_mean:.4}), all cores {wall_all:.3} s wall; P={:.4} R={:.4}",
        n as f64 / file_cpu,
        n as f64 / mem_cpu,
        q.precision,
        q.recall
    );
    let result = json!({
        "docs": n,
        "threads": args.threads.max(1),
        "reps": reps,
        "num_perm": report.config.num_perm,
        "family": report.config.family,
        "lsh": report.lsh,
        "file_cpu_s": file_cpu,
        "file_cpu_s_min": file_min,
        "file_cpu_s_mean": file_mean,
        "memory_cpu_s": mem_cpu,
        "memory_cpu_s_min": mem_min,
        "memory_cpu_s_mean": mem_mean,
        "file_docs_per_cpu_s": n as f64 / file_cpu,
        "memory_docs_per_cpu_s": n as f64 / mem_cpu,
        "all_cores_wall_s": wall_all,
        "records_out": report.records_out,
        "clusters": report.clusters,
        "candidate_pairs": report.candidate_pairs,
        "verified_pairs": report.verified_pairs,
        "truth_pairs": truth.len(),
        "tp": q.tp,
        "fp": q.fp,
        "fn": q.fn_,
        "precision": q.precision,
        "recall": q.recall,
    });
    println!("{result}");
    Ok(())
}

fn load(corpus: &Path) -> Result<Vec<Record>, Error> {
    let text = std::fs::read_to_string(corpus).map_err(|e| format!("reading {}: {e}", corpus.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).map_err(|e| format!("{} line {}: {e}", corpus.display(), i + 1))?;
            let id = v["id"].as_str().map(str::to_owned).unwrap_or_else(|| i.to_string());
            Ok(Record::new(id, v["text"].as_str().unwrap_or_default()))
        })
        .collect()
}

/// Process CPU time (user + system, all threads, including finished ones) in seconds.
fn cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// (median, min, mean) of the run times.
fn stats(runs: &mut [f64]) -> (f64, f64, f64) {
    runs.sort_by(f64::total_cmp);
    let n = runs.len();
    let median = if n % 2 == 1 { runs[n / 2] } else { (runs[n / 2 - 1] + runs[n / 2]) / 2.0 };
    (median, runs[0], runs.iter().sum::<f64>() / n as f64)
}

/// All pairs `(i, j)`, `i < j`, of records whose word-n-gram shingle sets (as strings) have
/// Jaccard similarity >= `t` (computed `|A∩B| / |A∪B| >= t` in f64 like the script), by an exact
/// prefix-filtering similarity join: a pair at or above `t` always shares a token among the first
/// `|x| - ceil(t |x|) + 1` tokens of both sets in a global rare-first order; every candidate is
/// then checked exactly.
fn exact_pairs(records: &[Record], n: usize, t: f64) -> Vec<(u32, u32)> {
    let mut intern: HashMap<String, u32> = HashMap::new();
    let mut shingler = Shingler::new(Shingle::Words(n), BaseHash::Xxh3);
    let sets: Vec<Vec<u32>> = records
        .iter()
        .map(|r| {
            let mut ids: Vec<u32> = shingler
                .shingles(&r.text)
                .into_iter()
                .map(|s| {
                    let next = intern.len() as u32;
                    *intern.entry(s).or_insert(next)
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        })
        .collect();
    drop(intern);
    let mut freq = vec![0u32; sets.iter().flatten().map(|&x| x as usize + 1).max().unwrap_or(0)];
    for s in &sets {
        for &x in s {
            freq[x as usize] += 1;
        }
    }
    // Tokens of each set in (frequency, id) order: rare first.
    let ordered: Vec<Vec<u32>> = sets
        .iter()
        .map(|s| {
            let mut o = s.clone();
            o.sort_unstable_by_key(|&x| (freq[x as usize], x));
            o
        })
        .collect();
    let mut by_size: Vec<usize> = (0..sets.len()).collect();
    by_size.sort_by_key(|&i| (sets[i].len(), i));
    let prefix_len = |len: usize| len - ((t * len as f64 - 1e-9).ceil() as usize).min(len) + 1;
    let mut index: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut seen = vec![u32::MAX; sets.len()];
    let mut out = Vec::new();
    for &x in &by_size {
        let lx = sets[x].len();
        for &tok in ordered[x].iter().take(prefix_len(lx).min(lx)) {
            if let Some(list) = index.get(&tok) {
                for &y in list {
                    let y = y as usize;
                    if seen[y] == x as u32 || (sets[y].len() as f64) < t * lx as f64 - 1e-9 {
                        continue;
                    }
                    seen[y] = x as u32;
                    let inter = intersection(&sets[x], &sets[y]);
                    let union = lx + sets[y].len() - inter;
                    if union > 0 && inter as f64 / union as f64 >= t {
                        out.push(if x < y { (x as u32, y as u32) } else { (y as u32, x as u32) });
                    }
                }
            }
        }
        for &tok in ordered[x].iter().take(prefix_len(lx).min(lx)) {
            index.entry(tok).or_default().push(x as u32);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn intersection(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

struct Quality {
    tp: usize,
    fp: usize,
    fn_: usize,
    precision: f64,
    recall: f64,
}

fn quality(predicted: &[(u32, u32)], truth: &[(u32, u32)]) -> Quality {
    let mut p = predicted.to_vec();
    p.sort_unstable();
    p.dedup();
    let tp = p.iter().filter(|x| truth.binary_search(x).is_ok()).count();
    let fp = p.len() - tp;
    let fn_ = truth.len() - tp;
    Quality {
        tp,
        fp,
        fn_,
        precision: if p.is_empty() { 1.0 } else { tp as f64 / p.len() as f64 },
        recall: if truth.is_empty() { 1.0 } else { tp as f64 / truth.len() as f64 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_join_matches_brute_force() {
        let words: Vec<String> = (0..60).map(|i| format!("w{}", i % 23)).collect();
        let base = words.join(" ");
        let texts = [base.clone(), base.replacen("w5", "zz", 1), base.replacen("w5", "zz", 3), "completely different text here and there".to_owned(), base.clone()];
        let records: Vec<Record> = texts.iter().enumerate().map(|(i, t)| Record::new(i.to_string(), t.clone())).collect();
        for t in [0.5, 0.8, 0.95] {
            let got = exact_pairs(&records, 5, t);
            let mut sh = Shingler::new(Shingle::Words(5), BaseHash::Xxh3);
            let sets: Vec<Vec<String>> = records.iter().map(|r| sh.shingles(&r.text)).collect();
            let mut want = Vec::new();
            for i in 0..sets.len() {
                for j in i + 1..sets.len() {
                    let inter = sets[i].iter().filter(|s| sets[j].contains(s)).count();
                    let union = sets[i].len() + sets[j].len() - inter;
                    if inter as f64 / union as f64 >= t {
                        want.push((i as u32, j as u32));
                    }
                }
            }
            assert_eq!(got, want, "t={t}");
        }
    }
}

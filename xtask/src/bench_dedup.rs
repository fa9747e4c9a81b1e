//! `cargo xtask bench dedup`: infuse's near-duplicate removal next to datasketch, in one run.
//!
//! 1. Runs the reference script `shared/bench/datasketch_reference.py --write-jsonl`, which
//!    builds the 20,000-document corpus with planted near-duplicates and times datasketch MinHash +
//!    LSH on it (single process); its "CPU-time basis" line gives datasketch's documents per
//!    CPU-second.
//! 2. Runs the release example `infuse-dedup-minhash/examples/bench_dedup` on the same file: it
//!    computes the exact ground truth (all pairs with word-5-gram Jaccard >= the threshold, exact
//!    all-pairs join), deduplicates with process CPU time measured (`CLOCK_PROCESS_CPUTIME_ID`,
//!    all threads, median of `--reps` runs after a warm-up), end to end (JSONL file -> JSONL file +
//!    clusters + report) and in memory (texts already loaded: the scope of datasketch's figure),
//!    and scores infuse's verified pairs against the truth.
//! 3. Prints both throughputs, the ratios, precision and recall, and the targets
//!    (ratio >= 50, precision >= 0.99, recall >= 0.99).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use crate::bench::{python, run_json};
use crate::{cargo, repo_root};

/// Options of `cargo xtask bench dedup`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct BenchDedupOpts {
    /// Python with datasketch installed (else `$PYTHON`, else `python3`), e.g. /work/venv-ref/bin/python.
    #[arg(long)]
    pub(crate) python: Option<PathBuf>,
    /// The reference script (default: ../shared/bench/datasketch_reference.py next to the repository).
    #[arg(long)]
    pub(crate) script: Option<PathBuf>,
    /// Documents in the corpus.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) n_docs: usize,
    /// Jaccard threshold (the script's and infuse's).
    #[arg(long, default_value_t = 0.8)]
    pub(crate) threshold: f64,
    /// Timed repetitions of each infuse measurement (after one warm-up run); the median counts.
    #[arg(long, default_value_t = 7)]
    pub(crate) reps: usize,
    /// Worker threads for infuse's CPU-time measurements (1 = one core, like the script).
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// Skip the script: reuse this corpus (needs --datasketch-docs-per-cpu-s).
    #[arg(long, requires = "datasketch_docs_per_cpu_s")]
    pub(crate) corpus: Option<PathBuf>,
    /// datasketch's documents per CPU-second when the script is skipped.
    #[arg(long)]
    pub(crate) datasketch_docs_per_cpu_s: Option<f64>,
    /// Exit with an error when a target is missed.
    #[arg(long)]
    pub(crate) check: bool,
}

/// Runs the benchmark.
pub(crate) fn run(opts: BenchDedupOpts) -> Result<()> {
    let dir = repo_root().join(".cache/bench/dedup");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (corpus, ds_rate, ds_lines) = match (&opts.corpus, opts.datasketch_docs_per_cpu_s) {
        (Some(c), Some(rate)) => (c.clone(), rate, Vec::new()),
        _ => {
            let corpus = dir.join("corpus.jsonl");
            let (rate, lines) = run_datasketch(&opts, &corpus)?;
            (corpus, rate, lines)
        }
    };

    eprintln!("== infuse (release build of the bench_dedup example)");
    let ours = run_json(
        cargo()
            .args(["run", "--release", "-q", "-p", "infuse-dedup-minhash", "--example", "bench_dedup", "--"])
            .arg(&corpus)
            .args(["--reps", &opts.reps.to_string(), "--threads", &opts.threads.to_string(), "--threshold", &opts.threshold.to_string()])
            .arg("--out")
            .arg(dir.join("out")),
    )?;
    let num = |k: &str| ours[k].as_f64().unwrap_or(f64::NAN);
    let (file_rate, mem_rate) = (num("file_docs_per_cpu_s"), num("memory_docs_per_cpu_s"));
    let (ratio_file, ratio_mem) = (file_rate / ds_rate, mem_rate / ds_rate);

    println!();
    for l in &ds_lines {
        println!("datasketch | {l}");
    }
    println!("datasketch 2.0 MinHash + MinHashLSH (script, one process): {ds_rate:.0} docs per CPU-second");
    println!(
        "infuse ({} thread(s), {} slots {}, lsh {}; process CPU time, median of {} runs):",
        ours["threads"], ours["num_perm"], ours["family"].as_str().unwrap_or("?"), ours["lsh"], ours["reps"]
    );
    println!(
        "  end to end, JSONL file -> JSONL file + clusters + report: {:.3} CPU-s (min {:.3}, mean {:.3}) -> {file_rate:.0} docs per CPU-second = {ratio_file:.1}x datasketch",
        num("file_cpu_s"),
        num("file_cpu_s_min"),
        num("file_cpu_s_mean")
    );
    println!(
        "  in memory, texts already loaded (datasketch's scope):     {:.3} CPU-s (min {:.3}, mean {:.3}) -> {mem_rate:.0} docs per CPU-second = {ratio_mem:.1}x datasketch",
        num("memory_cpu_s"),
        num("memory_cpu_s_min"),
        num("memory_cpu_s_mean")
    );
    println!("  end to end on all cores: {:.3} s wall", num("all_cores_wall_s"));
    println!(
        "  {} docs in, {} out, {} clusters, {} candidate pairs, {} verified",
        ours["docs"], ours["records_out"], ours["clusters"], ours["candidate_pairs"], ours["verified_pairs"]
    );
    println!(
        "quality of infuse's verified pairs vs exact truth ({} pairs with word-5-gram Jaccard >= {}): TP={} FP={} FN={} precision={:.4} recall={:.4}",
        ours["truth_pairs"], opts.threshold, ours["tp"], ours["fp"], ours["fn"], num("precision"), num("recall")
    );
    let (ok_ratio, ok_p, ok_r) = (ratio_file >= 50.0, num("precision") >= 0.99, num("recall") >= 0.99);
    let mark = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!(
        "targets: ratio >= 50 (end to end {ratio_file:.1}x, in memory {ratio_mem:.1}x): {}; precision >= 0.99: {}; recall >= 0.99: {}",
        mark(ok_ratio),
        mark(ok_p),
        mark(ok_r)
    );
    if opts.check && !(ok_ratio && ok_p && ok_r) {
        bail!("dedup benchmark missed a target");
    }
    Ok(())
}

/// Runs the reference script; returns datasketch's docs per CPU-second and its key output lines.
fn run_datasketch(opts: &BenchDedupOpts, corpus: &Path) -> Result<(f64, Vec<String>)> {
    let py = python(opts.python.as_deref());
    let script = opts.script.clone().unwrap_or_else(|| repo_root().join("../shared/bench/datasketch_reference.py"));
    anyhow::ensure!(script.is_file(), "{} not found (pass --script)", script.display());
    let probe = Command::new(&py).args(["-c", "import datasketch"]).output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        bail!("{} cannot import datasketch (pass --python VENV/bin/python or set PYTHON)", py.display());
    }
    eprintln!("== datasketch: {} {} --write-jsonl {}", py.display(), script.display(), corpus.display());
    let out = Command::new(&py)
        .arg(&script)
        .arg("--write-jsonl")
        .arg(corpus)
        .args(["--n-docs", &opts.n_docs.to_string(), "--threshold", &opts.threshold.to_string(), "--skip-rust-libs"])
        .output()
        .with_context(|| format!("running {} {}", py.display(), script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{} failed ({}):\n{stdout}\n{}", script.display(), out.status, String::from_utf8_lossy(&out.stderr));
    }
    let rate = parse_docs_per_cpu_s(&stdout).with_context(|| format!("no 'docs/cpu-s' figure in the script output:\n{stdout}"))?;
    let lines = stdout
        .lines()
        .filter(|l| ["host:", "datasketch ", "corpus:", "CPU-time basis", "pairwise vs truth"].iter().any(|k| l.contains(k)))
        .map(str::to_owned)
        .collect();
    Ok((rate, lines))
}

/// The number before "docs/cpu-s" on the script's "CPU-time basis" line (`-> 1,741 docs/cpu-s`).
fn parse_docs_per_cpu_s(stdout: &str) -> Option<f64> {
    let line = stdout.lines().find(|l| l.contains("CPU-time basis"))?;
    let before = &line[..line.find(" docs/cpu-s")?];
    before.rsplit(' ').next()?.replace(',', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_script_line() {
        let out = "x\nCPU-time basis (single core, immune to other load): 10.95 cpu-s -> 1,826 docs/cpu-s, 11.82 GB per cpu-hour\n";
        assert_eq!(parse_docs_per_cpu_s(out), Some(1826.0));
        assert_eq!(parse_docs_per_cpu_s("nothing"), None);
    }
}

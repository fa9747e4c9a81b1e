//! `infuse eval CONFIG`: a TOML file naming the suites to run, a runner that fills an
//! [`EvalReport`], and the before/after comparison of two reports.
//!
//! ```toml
//! title = "after SFT"
//!
//! [[perplexity]]
//! name = "domain-text"
//! path = "data/heldout.jsonl"   # .jsonl: one document per line (text_field); else the whole file
//! text_field = "text"
//! max_length = 2048             # optional; default: the model's context
//!
//! [[code]]
//! name = "humaneval"
//! path = ".cache/assets/data/HumanEval.jsonl.gz"   # HumanEval or generic JSONL
//! limit = 20
//! [code.config]
//! samples_per_problem = 1
//! decoding = { temperature = 0.0, max_new_tokens = 384 }
//!
//! [[choice]]
//! name = "general_knowledge"    # no path: the bundled set
//! [choice.config]
//! shots = 5
//!
//! [grid]
//! name = "decoding"
//! path = "data/code-dev.jsonl"
//! k = 1
//! grid = { temperature = [0.0, 0.2, 0.8], top_p = [0.95] }
//! config = { samples_per_problem = 4 }
//!
//! [compare]
//! regression_threshold = 0.02
//! ```
//!
//! Relative paths are resolved against the directory of the config file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::choice::{ChoiceConfig, evaluate_choice, general_knowledge, load_items};
use crate::code::{CodeEvalConfig, evaluate_code, load_tasks};
use crate::compare::{CompareConfig, Comparison, Direction, MetricScores, compare};
use crate::error::{EvalError, Result};
use crate::grid::{DecodingGrid, grid_search_code};
use crate::model::{CompletionModel, LogLikelihoodModel};
use crate::perplexity::{PerplexityConfig, evaluate_perplexity, read_documents};
use crate::report::{EvalReport, Named};

/// A perplexity suite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerplexitySuite {
    /// Suite name.
    pub name: String,
    /// Text file or JSONL.
    pub path: PathBuf,
    /// JSONL field holding the text.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Window length (default: the model's context).
    #[serde(default)]
    pub max_length: Option<usize>,
}

fn default_text_field() -> String {
    "text".into()
}

/// A code suite (HumanEval or generic JSONL).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSuite {
    /// Suite name.
    pub name: String,
    /// Task file.
    pub path: PathBuf,
    /// Only the first `limit` tasks.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Samples, decoding, sandbox, languages.
    #[serde(default)]
    pub config: CodeEvalConfig,
}

/// A multiple-choice suite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceSuite {
    /// Suite name.
    pub name: String,
    /// Question file; `None` = the bundled general-knowledge set.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Few-shot examples file (default: the evaluated file itself).
    #[serde(default)]
    pub dev_path: Option<PathBuf>,
    /// Shots, default subject, limit.
    #[serde(default)]
    pub config: ChoiceConfig,
}

/// A decoding grid search on a code dev set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSuite {
    /// Suite name.
    pub name: String,
    /// Code task file.
    pub path: PathBuf,
    /// Only the first `limit` tasks.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Objective pass@k.
    #[serde(default = "one")]
    pub k: u64,
    /// The grid.
    #[serde(default)]
    pub grid: DecodingGrid,
    /// Everything but the decoding parameters.
    #[serde(default)]
    pub config: CodeEvalConfig,
}

fn one() -> u64 {
    1
}

/// The whole `infuse eval` configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Report title.
    pub title: Option<String>,
    /// Perplexity suites.
    pub perplexity: Vec<PerplexitySuite>,
    /// Code suites.
    pub code: Vec<CodeSuite>,
    /// Multiple-choice suites.
    pub choice: Vec<ChoiceSuite>,
    /// Optional grid search.
    pub grid: Option<GridSuite>,
    /// Before/after comparison settings.
    pub compare: CompareConfig,
}

impl EvalConfig {
    /// Parse TOML; unknown keys are rejected with their name.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| EvalError::Parse {
            path: PathBuf::from("<eval config>"),
            line: 0,
            message: e.to_string(),
        })
    }

    /// Read a TOML file and resolve relative paths against its directory.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        let mut cfg: Self = toml::from_str(&text).map_err(|e| EvalError::Parse {
            path: path.to_path_buf(),
            line: 0,
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        Ok(cfg)
    }

    /// Make every relative path absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.perplexity.iter_mut().for_each(|s| fix(&mut s.path));
        self.code.iter_mut().for_each(|s| fix(&mut s.path));
        for s in &mut self.choice {
            if let Some(p) = &mut s.path {
                fix(p);
            }
            if let Some(p) = &mut s.dev_path {
                fix(p);
            }
        }
        if let Some(g) = &mut self.grid {
            fix(&mut g.path);
        }
    }
}

/// A model usable by every suite (blanket-implemented).
pub trait EvalModel: LogLikelihoodModel + CompletionModel {}
impl<T: LogLikelihoodModel + CompletionModel + ?Sized> EvalModel for T {}

/// Run every suite of `cfg` on `model`.
pub fn run(model: &mut dyn EvalModel, model_name: &str, cfg: &EvalConfig) -> Result<EvalReport> {
    let mut report = EvalReport {
        title: cfg
            .title
            .clone()
            .unwrap_or_else(|| "infuse evaluation".into()),
        model: model_name.to_string(),
        ..Default::default()
    };
    for s in &cfg.perplexity {
        let docs = read_documents(&s.path, &s.text_field)?;
        let r = evaluate_perplexity(
            model,
            &docs,
            &PerplexityConfig {
                max_length: s.max_length,
            },
        )?;
        report.perplexity.push(Named {
            name: s.name.clone(),
            result: r,
        });
    }
    for s in &cfg.code {
        let mut tasks = load_tasks(&s.path)?;
        tasks.truncate(s.limit.unwrap_or(tasks.len()));
        let r = evaluate_code(model, &tasks, &s.config)?;
        report.code.push(Named {
            name: s.name.clone(),
            result: r,
        });
    }
    for s in &cfg.choice {
        let items = match &s.path {
            Some(p) => load_items(p)?,
            None => general_knowledge()?,
        };
        let dev = s.dev_path.as_deref().map(load_items).transpose()?;
        let r = evaluate_choice(model, &items, dev.as_deref(), &s.config)?;
        report.choice.push(Named {
            name: s.name.clone(),
            result: r,
        });
    }
    if let Some(g) = &cfg.grid {
        let mut tasks = load_tasks(&g.path)?;
        tasks.truncate(g.limit.unwrap_or(tasks.len()));
        let r = grid_search_code(model, &tasks, &g.grid, &g.config, g.k)?;
        report.grid.push(Named {
            name: g.name.clone(),
            result: r,
        });
    }
    Ok(report)
}

impl EvalReport {
    /// Per-item scores of every suite, for [`compare_reports`]: `{suite}/loglik_per_token`
    /// (perplexity documents), `{suite}/pass@1` (code tasks, `c / n`), `{suite}/acc` (questions).
    pub fn metric_scores(&self) -> Vec<MetricScores> {
        let mut out = Vec::new();
        for p in &self.perplexity {
            out.push(MetricScores {
                metric: format!("{}/loglik_per_token", p.name),
                direction: Direction::HigherIsBetter,
                items: p.result.item_scores(),
            });
        }
        for c in &self.code {
            out.push(MetricScores {
                metric: format!("{}/pass@1", c.name),
                direction: Direction::HigherIsBetter,
                items: c.result.item_scores(),
            });
        }
        for c in &self.choice {
            out.push(MetricScores {
                metric: format!("{}/acc", c.name),
                direction: Direction::HigherIsBetter,
                items: c.result.item_scores(),
            });
        }
        out
    }
}

/// Compare the suites present in both reports (a suite in only one is skipped with a warning).
pub fn compare_reports(
    before: &EvalReport,
    after: &EvalReport,
    cfg: &CompareConfig,
) -> Result<Vec<Comparison>> {
    let after_scores = after.metric_scores();
    let mut out = Vec::new();
    for b in before.metric_scores() {
        match after_scores.iter().find(|a| a.metric == b.metric) {
            Some(a) => out.push(compare(&b, a, cfg)?),
            None => {
                tracing::warn!(metric = %b.metric, "metric missing in the second report; not compared")
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DecodingParams;
    use crate::perplexity::tests::Uniform;

    /// Uniform scorer + a completion model that always answers `return x * x`.
    struct Both(Uniform);

    impl LogLikelihoodModel for Both {
        fn token_logprobs(
            &mut self,
            tokens: &[u32],
        ) -> std::result::Result<Vec<f64>, crate::ModelError> {
            self.0.token_logprobs(tokens)
        }
        fn max_context_len(&self) -> usize {
            self.0.max_context_len()
        }
        fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, crate::ModelError> {
            self.0.encode(text)
        }
        fn bos_token_id(&self) -> Option<u32> {
            Some(1)
        }
        fn eos_token_id(&self) -> Option<u32> {
            None
        }
    }

    impl CompletionModel for Both {
        fn complete(
            &mut self,
            _prompt: &str,
            _params: &DecodingParams,
            n: usize,
        ) -> std::result::Result<Vec<String>, crate::ModelError> {
            Ok(vec!["    return x * x\n".to_string(); n])
        }
    }

    #[test]
    fn config_parses_resolves_and_rejects_unknown_keys() -> Result<()> {
        let text = r#"
title = "t"
[[perplexity]]
name = "p"
path = "doc.txt"
[[code]]
name = "c"
path = "/abs/tasks.jsonl"
limit = 2
[code.config]
samples_per_problem = 3
decoding = { temperature = 0.2, max_new_tokens = 64 }
[[choice]]
name = "gk"
[choice.config]
shots = 5
[grid]
name = "g"
path = "dev.jsonl"
grid = { temperature = [0.0, 0.5] }
[compare]
regression_threshold = 0.05
"#;
        let mut cfg = EvalConfig::from_toml(text)?;
        cfg.resolve_paths(Path::new("/base"));
        assert_eq!(cfg.perplexity[0].path, Path::new("/base/doc.txt"));
        assert_eq!(cfg.perplexity[0].text_field, "text");
        assert_eq!(cfg.code[0].path, Path::new("/abs/tasks.jsonl"));
        assert_eq!(cfg.code[0].config.samples_per_problem, 3);
        assert_eq!(cfg.code[0].config.decoding.temperature, 0.2);
        assert_eq!(cfg.choice[0].config.shots, 5);
        assert_eq!(
            cfg.grid.as_ref().map(|g| g.path.clone()),
            Some(PathBuf::from("/base/dev.jsonl"))
        );
        assert_eq!(cfg.compare.regression_threshold, 0.05);
        let err = EvalConfig::from_toml("[[choice]]\nname = \"x\"\nshotz = 1\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("shotz"), "{err}");
        Ok(())
    }

    #[test]
    fn run_and_compare_reports() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| EvalError::io("tmp", e))?;
        crate::io::write_atomic(&dir.path().join("doc.txt"), b"some held-out domain text")?;
        crate::io::write_atomic(&dir.path().join("tasks.jsonl"), b"{\"task_id\": \"sq\", \"prompt\": \"def sq(x):\\n\", \"tests\": \"assert sq(3) == 9\\n\"}\n")?;
        let python = crate::sandbox::resolve_program("python3").is_ok();
        let toml = format!(
            "[[perplexity]]\nname = \"p\"\npath = \"doc.txt\"\n[[choice]]\nname = \"gk\"\n[choice.config]\nlimit = 12\n{}",
            if python {
                "[[code]]\nname = \"c\"\npath = \"tasks.jsonl\"\n"
            } else {
                ""
            }
        );
        crate::io::write_atomic(&dir.path().join("eval.toml"), toml.as_bytes())?;
        let cfg = EvalConfig::from_file(&dir.path().join("eval.toml"))?;
        let mut model = Both(Uniform {
            vocab: 10,
            max: 64,
            seen: Vec::new(),
        });
        let report = run(&mut model, "fake", &cfg)?;
        assert!((report.perplexity[0].result.token_perplexity - 10.0).abs() < 1e-9);
        assert_eq!(report.choice[0].result.n, 12);
        if python {
            assert_eq!(report.code[0].result.pass_at(1), Some(1.0));
        }
        let comparisons = compare_reports(&report, &report, &CompareConfig::default())?;
        assert_eq!(comparisons.len(), if python { 3 } else { 2 });
        assert!(comparisons.iter().all(|c| c.delta == 0.0 && !c.regression));
        Ok(())
    }
}

//! Evaluation for infuse: perplexity (lm-evaluation-harness `loglikelihood_rolling`), pass@k on
//! code tasks with sandboxed execution (human-eval), multiple-choice log-likelihood accuracy
//! (lm-eval MMLU format), before/after comparison with bootstrap confidence intervals,
//! decoding-parameter grid search, and JSON + HTML reports.
//!
//! The evaluators are model independent: they talk to a model through [`LogLikelihoodModel`]
//! (scoring: [`perplexity`], [`choice`]) and [`CompletionModel`] (generation: [`code`], [`grid`]),
//! which a backend implements once.
//!
//! | module | what |
//! |---|---|
//! | [`passk`] | unbiased pass@k estimator (Chen et al. 2021) |
//! | [`sandbox`] | contained execution: namespaces, rlimits, timeout, temp dir |
//! | [`code`] | HumanEval and generic unit-test tasks, generation + execution harness |
//! | [`perplexity`] | rolling-window token/word/byte perplexity, bits per byte |
//! | [`choice`] | MMLU-format multiple choice, acc / acc_norm; bundled general-knowledge set |
//! | [`compare`] | before/after deltas, paired bootstrap intervals, regression flags |
//! | [`grid`] | decoding-parameter grid search |
//! | [`report`] | JSON + self-contained HTML report |
//! | [`progress`] | progress bar / log lines |
//! | [`suite`] | `infuse eval CONFIG`: TOML suites, runner, report comparison |

pub mod choice;
pub mod code;
pub mod compare;
mod error;
pub mod grid;
mod io;
pub mod llama;
pub mod model;
pub mod passk;
pub mod perplexity;
pub mod progress;
pub mod report;
pub mod sandbox;
pub mod suite;

pub use error::{EvalError, ModelError, Result};
pub use io::write_atomic;
pub use model::{CompletionModel, DecodingParams, LogLikelihoodModel};

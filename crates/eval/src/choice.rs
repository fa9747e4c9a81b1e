//! Multiple-choice log-likelihood scoring in the lm-evaluation-harness MMLU format.
//!
//! Prompt of one question (`doc_to_text`):
//! `"{question.strip()}\nA. {c0}\nB. {c1}\nC. {c2}\nD. {c3}\nAnswer:"`. The context is the
//! description `"The following are multiple choice questions (with answers) about {subject}.\n\n"`
//! (`_` in the subject becomes a space), then `shots` solved examples
//! (`doc_to_text + " " + letter`) each followed by `"\n\n"`, then the question. Every choice `i` is
//! scored as the log-likelihood of the continuation `" " + letter_i` after the context
//! (lm-eval `_encode_pair`: trailing whitespace of the context moves to the continuation; the
//! continuation tokens are `encode(context + continuation)[len(encode(context)):]`).
//!
//! Metrics (lm-eval `process_results`, ties broken by the first maximum like `np.argmax`):
//! `acc` = argmax of the log-likelihoods is the answer; `acc_norm` = argmax of log-likelihood /
//! character length of the choice string (the letter, so `acc_norm == acc` in this format);
//! `acc_bytes` = the same with UTF-8 byte length. Few-shot examples are the first `shots` items of
//! the same subject from the dev set (lm-eval `first_n`), or from the evaluated set itself with the
//! question excluded.
//!
//! Input JSONL: `question` (string), `choices` (2..=26 strings), `answer` (0-based index, or a
//! letter `"A"`…), optional `subject` and `id`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::io::read_jsonl;
use crate::model::LogLikelihoodModel;
use crate::progress::Progress;

/// One multiple-choice question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceItem {
    /// Identifier (`id` field, else `file:line`).
    pub id: String,
    /// Subject (with `_` as in MMLU, e.g. `high_school_physics`), if given.
    pub subject: Option<String>,
    /// The question.
    pub question: String,
    /// The answer options, in letter order.
    pub choices: Vec<String>,
    /// Index of the correct option.
    pub answer: usize,
}

/// The bundled offline general-knowledge set (66 questions, 4 options, 14 subjects), written for
/// infuse.
pub const GENERAL_KNOWLEDGE_JSONL: &str = include_str!("../data/general_knowledge.jsonl");

fn letter(i: usize) -> char {
    char::from(b'A' + i as u8)
}

fn parse_item(default_id: String, v: serde_json::Value) -> std::result::Result<ChoiceItem, String> {
    let obj = v.as_object().ok_or("a line must be a JSON object")?;
    for k in obj.keys() {
        if !["id", "subject", "question", "choices", "answer"].contains(&k.as_str()) {
            return Err(format!(
                "unknown field `{k}` (expected question, choices, answer, subject, id)"
            ));
        }
    }
    let question = obj
        .get("question")
        .and_then(|q| q.as_str())
        .ok_or("field `question` missing or not a string")?
        .to_string();
    let choices: Vec<String> = obj
        .get("choices")
        .and_then(|c| c.as_array())
        .ok_or("field `choices` missing or not an array")?
        .iter()
        .map(|c| {
            c.as_str()
                .map(str::to_string)
                .ok_or("field `choices` must contain strings")
        })
        .collect::<std::result::Result<_, _>>()?;
    if !(2..=26).contains(&choices.len()) {
        return Err(format!(
            "field `choices` has {} options, need 2..=26",
            choices.len()
        ));
    }
    let answer = match obj.get("answer") {
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .map(|n| n as usize)
            .ok_or("field `answer` must be a non-negative integer")?,
        Some(serde_json::Value::String(s)) => {
            let s = s.trim();
            match s.as_bytes() {
                [b] if b.is_ascii_uppercase() => usize::from(b - b'A'),
                _ => s.parse::<usize>().map_err(|_| {
                    format!("field `answer` = {s:?}: expected an index or a letter A-Z")
                })?,
            }
        }
        _ => return Err("field `answer` missing (index or letter)".into()),
    };
    if answer >= choices.len() {
        return Err(format!(
            "field `answer` = {answer} ({}) but only {} choices",
            letter(answer.min(25)),
            choices.len()
        ));
    }
    let subject = match obj.get("subject") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("field `subject` must be a string".into()),
    };
    let id = match obj.get("id") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) if !other.is_null() => other.to_string(),
        _ => default_id,
    };
    Ok(ChoiceItem {
        id,
        subject,
        question,
        choices,
        answer,
    })
}

/// Read a multiple-choice JSONL file (`.gz` allowed).
pub fn load_items(path: &Path) -> Result<Vec<ChoiceItem>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    read_jsonl(path, |line, v| parse_item(format!("{name}:{line}"), v))
}

/// Parse multiple-choice JSONL from a string (`source` names it in errors).
pub fn parse_items(source: &str, jsonl: &str) -> Result<Vec<ChoiceItem>> {
    let mut out = Vec::new();
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| EvalError::Parse {
            path: source.into(),
            line: i + 1,
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| err(format!("invalid JSON: {e}")))?;
        out.push(parse_item(format!("{source}:{}", i + 1), v).map_err(err)?);
    }
    Ok(out)
}

/// The bundled general-knowledge set, parsed.
pub fn general_knowledge() -> Result<Vec<ChoiceItem>> {
    parse_items("general_knowledge.jsonl", GENERAL_KNOWLEDGE_JSONL)
}

/// lm-eval MMLU `doc_to_text`.
pub fn doc_to_text(item: &ChoiceItem) -> String {
    let mut s = item.question.trim().to_string();
    for (i, c) in item.choices.iter().enumerate() {
        s.push('\n');
        s.push(letter(i));
        s.push_str(". ");
        s.push_str(c);
    }
    s.push_str("\nAnswer:");
    s
}

/// MMLU description line for `subject` (`_` → space), ending in `"\n\n"`.
pub fn description(subject: &str) -> String {
    format!(
        "The following are multiple choice questions (with answers) about {}.\n\n",
        subject.replace('_', " ")
    )
}

/// The full context for `item` with the given solved examples.
pub fn build_context(item: &ChoiceItem, shots: &[&ChoiceItem], subject: &str) -> String {
    let mut s = description(subject);
    for shot in shots {
        s.push_str(&doc_to_text(shot));
        s.push(' ');
        s.push(letter(shot.answer));
        s.push_str("\n\n");
    }
    s.push_str(&doc_to_text(item));
    s
}

fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Token ids of `(context, continuation)` as lm-eval's `loglikelihood` builds them.
pub fn encode_pair(
    model: &dyn LogLikelihoodModel,
    context: &str,
    continuation: &str,
) -> Result<(Vec<u32>, Vec<u32>)> {
    if context.is_empty() {
        let prefix = model.prefix_token_id().ok_or_else(|| {
            EvalError::InvalidArgument("empty context needs a BOS or EOS token".into())
        })?;
        return Ok((
            vec![prefix],
            model.encode(continuation).map_err(EvalError::Model)?,
        ));
    }
    let trimmed = context.trim_end_matches(is_py_space);
    let (context, continuation) = if trimmed.len() < context.len() {
        (
            trimmed.to_string(),
            format!("{}{continuation}", &context[trimmed.len()..]),
        )
    } else {
        (context.to_string(), continuation.to_string())
    };
    let whole = model
        .encode(&format!("{context}{continuation}"))
        .map_err(EvalError::Model)?;
    let ctx = model.encode(&context).map_err(EvalError::Model)?;
    let cont = whole.get(ctx.len()..).unwrap_or_default().to_vec();
    Ok((ctx, cont))
}

/// The model input for a pair: `(context + continuation)[-(max_length + 1):]`.
fn pair_input(ctx: &[u32], cont: &[u32], max_length: usize) -> Vec<u32> {
    let mut all = ctx.to_vec();
    all.extend_from_slice(cont);
    let cut = all.len().saturating_sub(max_length + 1);
    all.drain(..cut);
    all
}

/// Log-likelihoods of several continuations after one context (one batched model call).
pub fn loglikelihoods(
    model: &mut dyn LogLikelihoodModel,
    context: &str,
    continuations: &[String],
) -> Result<Vec<f64>> {
    let max_length = model.max_context_len();
    let mut inputs = Vec::with_capacity(continuations.len());
    let mut cont_lens = Vec::with_capacity(continuations.len());
    for c in continuations {
        let (ctx, cont) = encode_pair(model, context, c)?;
        if cont.is_empty() {
            return Err(EvalError::InvalidArgument(format!(
                "continuation {c:?} encodes to no tokens"
            )));
        }
        if cont.len() > max_length {
            return Err(EvalError::InvalidArgument(format!(
                "continuation {c:?} is longer than the model's context"
            )));
        }
        let input = pair_input(&ctx, &cont, max_length);
        if input.len() < 2 {
            return Err(EvalError::InvalidArgument(
                "context and continuation together need at least 2 tokens".into(),
            ));
        }
        cont_lens.push(cont.len());
        inputs.push(input);
    }
    let refs: Vec<&[u32]> = inputs.iter().map(Vec::as_slice).collect();
    let outs = model
        .token_logprobs_batch(&refs)
        .map_err(EvalError::Model)?;
    if outs.len() != inputs.len() {
        return Err(EvalError::Model(
            format!(
                "model returned {} results for {} sequences",
                outs.len(),
                inputs.len()
            )
            .into(),
        ));
    }
    outs.iter()
        .zip(&inputs)
        .zip(&cont_lens)
        .map(|((lp, inp), &n)| {
            if lp.len() != inp.len() - 1 {
                return Err(EvalError::Model(
                    format!(
                        "model returned {} log-probs for {} tokens",
                        lp.len(),
                        inp.len()
                    )
                    .into(),
                ));
            }
            Ok(lp[lp.len() - n..].iter().sum())
        })
        .collect()
}

/// First index of the maximum (`np.argmax`); NaN never wins.
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() {
            best = i;
        }
    }
    best
}

/// Settings of a multiple-choice evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChoiceConfig {
    /// Number of solved examples in the context (MMLU convention: 5; lm-eval's default: 0).
    pub shots: usize,
    /// Subject used for items without one.
    pub default_subject: String,
    /// Evaluate at most this many items (in file order).
    pub limit: Option<usize>,
}

impl Default for ChoiceConfig {
    fn default() -> Self {
        Self {
            shots: 0,
            default_subject: "general knowledge".into(),
            limit: None,
        }
    }
}

/// Result of one question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChoiceItemResult {
    /// Item id.
    pub id: String,
    /// Subject used in the prompt.
    pub subject: String,
    /// Correct option.
    pub gold: usize,
    /// argmax of the log-likelihoods.
    pub pred: usize,
    /// argmax of the length-normalized log-likelihoods.
    pub pred_norm: usize,
    /// Log-likelihood of each option's continuation.
    pub loglikelihoods: Vec<f64>,
    /// Number of few-shot examples actually used.
    pub shots: usize,
}

/// Accuracy of one subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubjectScore {
    /// Subject.
    pub subject: String,
    /// Questions.
    pub n: usize,
    /// Accuracy.
    pub acc: f64,
    /// Length-normalized accuracy.
    pub acc_norm: f64,
}

/// Result of a multiple-choice evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChoiceResult {
    /// Few-shot examples requested.
    pub shots: usize,
    /// Questions scored.
    pub n: usize,
    /// Accuracy (micro-average over questions).
    pub acc: f64,
    /// Standard error of `acc` (lm-eval `mean_stderr`: sample std / sqrt(n)).
    pub acc_stderr: f64,
    /// Accuracy with log-likelihood / character length of the choice.
    pub acc_norm: f64,
    /// Accuracy with log-likelihood / UTF-8 byte length of the choice.
    pub acc_bytes: f64,
    /// Per subject, sorted by name.
    pub per_subject: Vec<SubjectScore>,
    /// Per question.
    pub items: Vec<ChoiceItemResult>,
}

impl ChoiceResult {
    /// Per-question scores (1 correct, 0 wrong) keyed by id (for [`crate::compare`]).
    pub fn item_scores(&self) -> Vec<(String, f64)> {
        self.items
            .iter()
            .map(|i| (i.id.clone(), f64::from(u8::from(i.pred == i.gold))))
            .collect()
    }
}

fn mean_stderr(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n < 2 {
        return 0.0;
    }
    let mu = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (n - 1) as f64;
    (var / n as f64).sqrt()
}

/// Score `items` with `model`. Few-shot examples come from `dev` (first of the same subject) or,
/// when `dev` is `None`, from `items` with the question itself excluded.
pub fn evaluate_choice(
    model: &mut dyn LogLikelihoodModel,
    items: &[ChoiceItem],
    dev: Option<&[ChoiceItem]>,
    cfg: &ChoiceConfig,
) -> Result<ChoiceResult> {
    let items = &items[..cfg.limit.unwrap_or(items.len()).min(items.len())];
    if items.is_empty() {
        return Err(EvalError::InvalidArgument(
            "no multiple-choice items to evaluate".into(),
        ));
    }
    let subject_of = |it: &ChoiceItem| {
        it.subject
            .clone()
            .unwrap_or_else(|| cfg.default_subject.clone())
    };
    let pool = dev.unwrap_or(items);
    let progress = Progress::new("multiple choice", items.len() as u64);
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let subject = subject_of(item);
        let shots: Vec<&ChoiceItem> = pool
            .iter()
            .filter(|s| subject_of(s) == subject && !(dev.is_none() && std::ptr::eq(*s, item)))
            .take(cfg.shots)
            .collect();
        let context = build_context(item, &shots, &subject);
        let continuations: Vec<String> = (0..item.choices.len())
            .map(|i| format!(" {}", letter(i)))
            .collect();
        let lls = loglikelihoods(model, &context, &continuations)?;
        // lm-eval normalizes by the length of doc_to_choice (the letter, without the delimiter).
        let norm: Vec<f64> = lls
            .iter()
            .enumerate()
            .map(|(i, ll)| ll / letter(i).len_utf8() as f64)
            .collect();
        results.push(ChoiceItemResult {
            id: item.id.clone(),
            subject,
            gold: item.answer,
            pred: argmax(&lls),
            pred_norm: argmax(&norm),
            loglikelihoods: lls,
            shots: shots.len(),
        });
        progress.inc(1);
    }
    progress.finish();
    Ok(summarize(cfg.shots, results))
}

/// Aggregate per-item results.
fn summarize(shots: usize, items: Vec<ChoiceItemResult>) -> ChoiceResult {
    let hits: Vec<f64> = items
        .iter()
        .map(|r| f64::from(u8::from(r.pred == r.gold)))
        .collect();
    let hits_norm: Vec<f64> = items
        .iter()
        .map(|r| f64::from(u8::from(r.pred_norm == r.gold)))
        .collect();
    // Byte-length normalization: the choice strings are single ASCII letters, so it equals acc;
    // computed explicitly so that a change of choice strings keeps it honest.
    let hits_bytes: Vec<f64> = items
        .iter()
        .map(|r| {
            let v: Vec<f64> = r
                .loglikelihoods
                .iter()
                .enumerate()
                .map(|(i, ll)| ll / letter(i).to_string().len() as f64)
                .collect();
            f64::from(u8::from(argmax(&v) == r.gold))
        })
        .collect();
    let n = items.len();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut by_subject: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    for (i, r) in items.iter().enumerate() {
        let e = by_subject.entry(r.subject.as_str()).or_default();
        e.0 += 1;
        e.1 += hits[i];
        e.2 += hits_norm[i];
    }
    let per_subject = by_subject
        .into_iter()
        .map(|(s, (k, a, an))| SubjectScore {
            subject: s.to_string(),
            n: k,
            acc: a / k as f64,
            acc_norm: an / k as f64,
        })
        .collect();
    ChoiceResult {
        shots,
        n,
        acc: mean(&hits),
        acc_stderr: mean_stderr(&hits),
        acc_norm: mean(&hits_norm),
        acc_bytes: mean(&hits_bytes),
        per_subject,
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelError;

    #[test]
    fn bundled_set_is_valid() -> Result<()> {
        let items = general_knowledge()?;
        assert!(items.len() >= 60);
        let subjects: std::collections::BTreeSet<_> =
            items.iter().filter_map(|i| i.subject.clone()).collect();
        assert!(subjects.len() >= 8);
        let mut ids = std::collections::HashSet::new();
        for it in &items {
            assert_eq!(it.choices.len(), 4, "{}", it.id);
            assert!(ids.insert(it.id.clone()), "duplicate id {}", it.id);
            let distinct: std::collections::HashSet<_> = it.choices.iter().collect();
            assert_eq!(distinct.len(), 4, "{}", it.id);
        }
        // Answers spread over all letters.
        for a in 0..4 {
            assert!(items.iter().filter(|i| i.answer == a).count() >= 10);
        }
        Ok(())
    }

    #[test]
    fn prompt_format_matches_lm_eval_mmlu() {
        let q = ChoiceItem {
            id: "1".into(),
            subject: Some("high_school_physics".into()),
            question: "  What is 1+1? ".into(),
            choices: vec!["1".into(), "2".into(), "3".into(), "4".into()],
            answer: 1,
        };
        let shot = ChoiceItem {
            question: "Q0".into(),
            answer: 3,
            ..q.clone()
        };
        assert_eq!(
            doc_to_text(&q),
            "What is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:"
        );
        assert_eq!(
            build_context(&q, &[&shot], "high_school_physics"),
            "The following are multiple choice questions (with answers) about high school physics.\n\n\
             Q0\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: D\n\n\
             What is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:"
        );
        assert_eq!(
            build_context(&q, &[], "x_y"),
            "The following are multiple choice questions (with answers) about x y.\n\nWhat is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:"
        );
    }

    #[test]
    fn answer_as_index_or_letter_and_errors() -> Result<()> {
        let items = parse_items(
            "t",
            "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": \"B\"}\n{\"question\": \"q\", \"choices\": [\"a\", \"b\", \"c\"], \"answer\": 2, \"subject\": \"s\", \"id\": 7}\n",
        )?;
        assert_eq!(items[0].answer, 1);
        assert_eq!(items[0].id, "t:1");
        assert_eq!(items[1].answer, 2);
        assert_eq!(items[1].id, "7");
        for bad in [
            "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": \"C\"}",
            "{\"question\": \"q\", \"choices\": [\"a\"], \"answer\": 0}",
            "{\"question\": \"q\", \"choices\": [\"a\", \"b\"]}",
            "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0, \"extra\": 1}",
        ] {
            let err = parse_items("f.jsonl", bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("f.jsonl:1"), "{bad}: {err}");
        }
        Ok(())
    }

    /// Character-level "tokenizer" (one token per byte); a model that knows the answers of the
    /// bundled set: the log-prob of the letter after "Answer:" is high for `answers[question]`.
    struct Oracle {
        answers: std::collections::HashMap<String, usize>,
        wrong_for: std::collections::HashSet<String>,
        max: usize,
        calls: usize,
    }

    impl LogLikelihoodModel for Oracle {
        fn token_logprobs(&mut self, tokens: &[u32]) -> std::result::Result<Vec<f64>, ModelError> {
            self.calls += 1;
            let text: String = tokens.iter().map(|&t| char::from(t as u8)).collect();
            // The last question in the text decides.
            let last_q = text
                .rsplit("\n\n")
                .next()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let mut lp = vec![-1.0; tokens.len() - 1];
            if let Some(&a) = self.answers.get(&last_q) {
                let chosen = text
                    .chars()
                    .last()
                    .map(|c| (c as u8 - b'A') as usize)
                    .unwrap_or(0);
                let good = if self.wrong_for.contains(&last_q) {
                    (a + 1) % 4
                } else {
                    a
                };
                if let Some(last) = lp.last_mut() {
                    *last = if chosen == good { -0.1 } else { -3.0 };
                }
            }
            Ok(lp)
        }
        fn max_context_len(&self) -> usize {
            self.max
        }
        fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, ModelError> {
            Ok(text.bytes().map(u32::from).collect())
        }
        fn bos_token_id(&self) -> Option<u32> {
            Some(1)
        }
        fn eos_token_id(&self) -> Option<u32> {
            None
        }
    }

    #[test]
    fn oracle_scores_and_shots() -> Result<()> {
        let items = general_knowledge()?;
        let answers = items
            .iter()
            .map(|i| (i.question.clone(), i.answer))
            .collect();
        let wrong_for: std::collections::HashSet<String> =
            items.iter().take(6).map(|i| i.question.clone()).collect();
        let mut m = Oracle {
            answers,
            wrong_for,
            max: 4096,
            calls: 0,
        };
        let r = evaluate_choice(
            &mut m,
            &items,
            None,
            &ChoiceConfig {
                shots: 2,
                ..Default::default()
            },
        )?;
        assert_eq!(r.n, items.len());
        let want = (items.len() - 6) as f64 / items.len() as f64;
        assert!((r.acc - want).abs() < 1e-12, "{} vs {want}", r.acc);
        assert_eq!(r.acc_norm, r.acc);
        assert_eq!(r.acc_bytes, r.acc);
        // lm-eval mean_stderr.
        let p = want;
        let n = items.len() as f64;
        assert!((r.acc_stderr - (p * (1.0 - p) * n / (n - 1.0) / n).sqrt()).abs() < 1e-12);
        // The first 6 items are all geography (9 items), which scores 3/9.
        let geo = r
            .per_subject
            .iter()
            .find(|s| s.subject == "geography")
            .map(|s| s.acc);
        assert_eq!(geo, Some(3.0 / 9.0));
        // Shots: min(2, other questions of the same subject), never the question itself.
        for it in &r.items {
            let others = items
                .iter()
                .filter(|i| i.subject.as_deref() == Some(it.subject.as_str()))
                .count()
                - 1;
            assert_eq!(it.shots, others.min(2), "{}", it.id);
        }
        assert_eq!(r.items.iter().filter(|i| i.shots == 0).count(), 3);
        // One batched model call per question (default batch = loop: 4 calls).
        assert_eq!(m.calls, 4 * items.len());
        // Scores for compare.
        assert_eq!(
            r.item_scores().iter().filter(|(_, s)| *s == 1.0).count(),
            items.len() - 6
        );
        Ok(())
    }

    #[test]
    fn encode_pair_moves_trailing_space_and_handles_empty_context() -> Result<()> {
        let m = Oracle {
            answers: Default::default(),
            wrong_for: Default::default(),
            max: 8,
            calls: 0,
        };
        let (ctx, cont) = encode_pair(&m, "Answer: ", "A")?;
        assert_eq!(
            ctx,
            b"Answer:".iter().map(|&b| u32::from(b)).collect::<Vec<_>>()
        );
        assert_eq!(cont, vec![u32::from(b' '), u32::from(b'A')]);
        let (ctx, cont) = encode_pair(&m, "", " B")?;
        assert_eq!(ctx, vec![1]);
        assert_eq!(cont, vec![32, 66]);
        // Left truncation to max_length + 1.
        assert_eq!(
            pair_input(&[1, 2, 3, 4, 5, 6, 7, 8], &[9, 10], 8),
            vec![2, 3, 4, 5, 6, 7, 8, 9, 10]
        );
        Ok(())
    }

    #[test]
    fn argmax_is_first_maximum() {
        assert_eq!(argmax(&[-1.0, -0.5, -0.5, -2.0]), 1);
        assert_eq!(argmax(&[f64::NAN, -3.0, -4.0]), 1);
    }
}

//! Perplexity exactly as lm-evaluation-harness defines it for `loglikelihood_rolling` tasks
//! (e.g. `wikitext`).
//!
//! Per document: the text is tokenized without special tokens, split into rolling windows of the
//! model's max length with [`get_rolling_token_windows`] (prefix token = BOS, else EOT;
//! `context_len = 1`) and [`make_disjoint_window`], and the log-likelihood `LL` of every token is
//! summed. Aggregates over documents (lm-eval `weighted_perplexity`, `bits_per_byte`):
//!
//! | metric | formula |
//! |---|---|
//! | `token_perplexity` | `exp(-ΣLL / Σtokens)` |
//! | `word_perplexity` | `exp(-ΣLL / Σwords)`, words = pieces of Python's `re.split(r"\s+", text)` |
//! | `byte_perplexity` | `exp(-ΣLL / Σbytes)`, bytes = UTF-8 length |
//! | `bits_per_byte` | `-ΣLL / (Σbytes · ln 2)` |

use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::io::{read_jsonl, read_text};
use crate::model::LogLikelihoodModel;
use crate::progress::Progress;

/// A (context, continuation) pair of token ids: the continuation tokens are scored given the
/// context tokens before them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Conditioning tokens.
    pub context: Vec<u32>,
    /// Scored tokens.
    pub continuation: Vec<u32>,
}

/// lm-eval's `utils.get_rolling_token_windows`: windows of at most `max_seq_len` inputs that
/// predict every token of `tokens` exactly once; the first is conditioned on `prefix_token`.
///
/// Errors unless `1 <= context_len <= max_seq_len`.
pub fn get_rolling_token_windows(
    tokens: &[u32],
    prefix_token: u32,
    max_seq_len: usize,
    context_len: usize,
) -> Result<Vec<Window>> {
    if !(1 <= context_len && context_len <= max_seq_len) {
        return Err(EvalError::InvalidArgument(format!(
            "rolling windows need 1 <= context_len ({context_len}) <= max_seq_len ({max_seq_len})"
        )));
    }
    let mut out = Vec::new();
    if tokens.is_empty() {
        return Ok(out);
    }
    let pred_len = max_seq_len - context_len + 1;
    let first_seq_len = max_seq_len.min(tokens.len());
    let mut context = Vec::with_capacity(first_seq_len);
    context.push(prefix_token);
    context.extend_from_slice(&tokens[..first_seq_len - 1]);
    out.push(Window {
        context,
        continuation: tokens[..first_seq_len].to_vec(),
    });
    let mut predicted = first_seq_len;
    while predicted < tokens.len() {
        let window_pred_len = (tokens.len() - predicted).min(pred_len);
        let window_end = predicted + window_pred_len;
        // window_end > max_seq_len here, so the start is never negative.
        let start = window_end - max_seq_len - 1;
        out.push(Window {
            context: tokens[start..window_end - 1].to_vec(),
            continuation: tokens[window_end - window_pred_len..window_end].to_vec(),
        });
        predicted += window_pred_len;
    }
    Ok(out)
}

/// lm-eval's `utils.make_disjoint_window`: drop the part of the context that overlaps the
/// continuation, so `context + continuation` is the exact token run the model sees.
pub fn make_disjoint_window(w: Window) -> Window {
    let keep = (w.context.len() + 1).saturating_sub(w.continuation.len().max(1));
    let mut context = w.context;
    context.truncate(keep);
    Window {
        context,
        continuation: w.continuation,
    }
}

/// Number of words as lm-eval counts them: `len(re.split(r"\s+", text))` with Python's Unicode
/// `\s` (which, unlike Rust's, includes U+001C..U+001F). Leading/trailing whitespace adds an
/// empty piece, as in Python; the empty string has 1 word.
pub fn word_count(text: &str) -> usize {
    static RE: OnceLock<Option<regex::Regex>> = OnceLock::new();
    match RE.get_or_init(|| regex::Regex::new(r"[\s\x1c-\x1f]+").ok()) {
        Some(re) => re.find_iter(text).count() + 1,
        // The pattern is a constant that compiles; this branch is unreachable in practice.
        None => text
            .split(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
            .count(),
    }
}

/// Sum of log-likelihoods of every token of `tokens` under rolling disjoint windows of
/// `max_length` (lm-eval `loglikelihood_rolling` for one document).
pub fn loglikelihood_rolling(
    model: &mut dyn LogLikelihoodModel,
    tokens: &[u32],
    prefix_token: u32,
    max_length: usize,
) -> Result<f64> {
    let windows: Vec<Window> = get_rolling_token_windows(tokens, prefix_token, max_length, 1)?
        .into_iter()
        .map(make_disjoint_window)
        .collect();
    let inputs: Vec<Vec<u32>> = windows
        .iter()
        .map(|w| {
            let mut all = w.context.clone();
            all.extend_from_slice(&w.continuation);
            // lm-eval: (context + continuation)[-(max_length + 1):]
            let cut = all.len().saturating_sub(max_length + 1);
            all.drain(..cut);
            all
        })
        .collect();
    let refs: Vec<&[u32]> = inputs.iter().map(Vec::as_slice).collect();
    let outputs = if refs.is_empty() {
        Vec::new()
    } else {
        model
            .token_logprobs_batch(&refs)
            .map_err(EvalError::Model)?
    };
    if outputs.len() != windows.len() {
        return Err(EvalError::Model(
            format!(
                "model returned {} results for {} sequences",
                outputs.len(),
                windows.len()
            )
            .into(),
        ));
    }
    let mut total = 0.0;
    for ((w, input), lp) in windows.iter().zip(&inputs).zip(&outputs) {
        if lp.len() != input.len() - 1 {
            return Err(EvalError::Model(
                format!(
                    "model returned {} log-probs for {} tokens (expected len - 1)",
                    lp.len(),
                    input.len()
                )
                .into(),
            ));
        }
        total += lp[lp.len() - w.continuation.len()..].iter().sum::<f64>();
    }
    Ok(total)
}

/// A document to score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Identifier (file name, JSONL `id` field or `file:line`).
    pub id: String,
    /// The text.
    pub text: String,
}

/// Read documents: a `.jsonl` / `.jsonl.gz` file gives one document per line (`text_field`, and
/// `id` when present); any other file is one document (its whole text, `.gz` decompressed).
pub fn read_documents(path: &Path, text_field: &str) -> Result<Vec<Document>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") {
        read_jsonl(path, |line, v| {
            let text = v
                .get(text_field)
                .and_then(|t| t.as_str())
                .ok_or_else(|| format!("field `{text_field}` missing or not a string"))?
                .to_string();
            let id = match v.get("id") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) if !other.is_null() => other.to_string(),
                _ => format!("{name}:{line}"),
            };
            Ok(Document { id, text })
        })
    } else {
        Ok(vec![Document {
            id: name,
            text: read_text(path)?,
        }])
    }
}

/// Settings of a perplexity evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerplexityConfig {
    /// Window length; `None` = the model's [`LogLikelihoodModel::max_context_len`]. Must not exceed it.
    pub max_length: Option<usize>,
}

/// Score of one document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentScore {
    /// Document id.
    pub id: String,
    /// Sum of token log-likelihoods (natural log).
    pub loglikelihood: f64,
    /// Tokens scored.
    pub tokens: usize,
    /// Words (see [`word_count`]); 0 when only tokens were given.
    pub words: usize,
    /// UTF-8 bytes; 0 when only tokens were given.
    pub bytes: usize,
}

/// Aggregate perplexity metrics over documents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerplexityResult {
    /// Window length used.
    pub max_length: usize,
    /// Prefix token of the first window.
    pub prefix_token_id: u32,
    /// Σ log-likelihood.
    pub loglikelihood: f64,
    /// Σ tokens.
    pub tokens: usize,
    /// Σ words.
    pub words: usize,
    /// Σ bytes.
    pub bytes: usize,
    /// `exp(-ΣLL / Σtokens)`.
    pub token_perplexity: f64,
    /// `exp(-ΣLL / Σwords)` (`None` without text).
    pub word_perplexity: Option<f64>,
    /// `exp(-ΣLL / Σbytes)` (`None` without text).
    pub byte_perplexity: Option<f64>,
    /// `-ΣLL / (Σbytes · ln 2)` (`None` without text).
    pub bits_per_byte: Option<f64>,
    /// Per-document scores.
    pub documents: Vec<DocumentScore>,
}

impl PerplexityResult {
    /// Aggregate document scores (lm-eval's weighted means). Errors when no token was scored.
    pub fn from_documents(
        documents: Vec<DocumentScore>,
        max_length: usize,
        prefix_token_id: u32,
    ) -> Result<Self> {
        let loglikelihood: f64 = documents.iter().map(|d| d.loglikelihood).sum();
        let tokens: usize = documents.iter().map(|d| d.tokens).sum();
        let words: usize = documents.iter().map(|d| d.words).sum();
        let bytes: usize = documents.iter().map(|d| d.bytes).sum();
        if tokens == 0 {
            return Err(EvalError::InvalidArgument(
                "perplexity over zero tokens".into(),
            ));
        }
        let per = |n: usize| (n > 0).then(|| (-loglikelihood / n as f64).exp());
        Ok(Self {
            max_length,
            prefix_token_id,
            loglikelihood,
            tokens,
            words,
            bytes,
            token_perplexity: (-loglikelihood / tokens as f64).exp(),
            word_perplexity: per(words),
            byte_perplexity: per(bytes),
            bits_per_byte: (bytes > 0)
                .then(|| -loglikelihood / (bytes as f64 * std::f64::consts::LN_2)),
            documents,
        })
    }

    /// Per-document scores as `(id, log-likelihood per token)` (for [`crate::compare`]; higher is better).
    pub fn item_scores(&self) -> Vec<(String, f64)> {
        self.documents
            .iter()
            .map(|d| {
                (
                    d.id.clone(),
                    if d.tokens == 0 {
                        0.0
                    } else {
                        d.loglikelihood / d.tokens as f64
                    },
                )
            })
            .collect()
    }
}

fn window_len(model: &dyn LogLikelihoodModel, cfg: &PerplexityConfig) -> Result<(usize, u32)> {
    let model_max = model.max_context_len();
    let max_length = cfg.max_length.unwrap_or(model_max);
    if max_length == 0 || max_length > model_max {
        return Err(EvalError::InvalidArgument(format!(
            "perplexity window {max_length} must be in 1..={model_max} (the model's max context)"
        )));
    }
    let prefix = model.prefix_token_id().ok_or_else(|| {
        EvalError::InvalidArgument(
            "model has neither a BOS nor an EOS token for the rolling-window prefix".into(),
        )
    })?;
    Ok((max_length, prefix))
}

/// Perplexity of `model` over text documents.
pub fn evaluate_perplexity(
    model: &mut dyn LogLikelihoodModel,
    docs: &[Document],
    cfg: &PerplexityConfig,
) -> Result<PerplexityResult> {
    let (max_length, prefix) = window_len(model, cfg)?;
    let progress = Progress::new("perplexity", docs.len() as u64);
    let mut scores = Vec::with_capacity(docs.len());
    for doc in docs {
        let tokens = model.encode(&doc.text).map_err(EvalError::Model)?;
        let loglikelihood = loglikelihood_rolling(model, &tokens, prefix, max_length)?;
        scores.push(DocumentScore {
            id: doc.id.clone(),
            loglikelihood,
            tokens: tokens.len(),
            words: word_count(&doc.text),
            bytes: doc.text.len(),
        });
        progress.inc(1);
    }
    progress.finish();
    PerplexityResult::from_documents(scores, max_length, prefix)
}

/// Perplexity over already tokenized documents (e.g. from a token store): only
/// `token_perplexity` is defined (words and bytes are unknown).
pub fn evaluate_perplexity_tokens(
    model: &mut dyn LogLikelihoodModel,
    docs: &[(String, Vec<u32>)],
    cfg: &PerplexityConfig,
) -> Result<PerplexityResult> {
    let (max_length, prefix) = window_len(model, cfg)?;
    let progress = Progress::new("perplexity", docs.len() as u64);
    let mut scores = Vec::with_capacity(docs.len());
    for (id, tokens) in docs {
        let loglikelihood = loglikelihood_rolling(model, tokens, prefix, max_length)?;
        scores.push(DocumentScore {
            id: id.clone(),
            loglikelihood,
            tokens: tokens.len(),
            words: 0,
            bytes: 0,
        });
        progress.inc(1);
    }
    progress.finish();
    PerplexityResult::from_documents(scores, max_length, prefix)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ModelError;

    fn w(context: &[u32], continuation: &[u32]) -> Window {
        Window {
            context: context.to_vec(),
            continuation: continuation.to_vec(),
        }
    }

    #[test]
    fn windows_match_lm_eval_golden() -> Result<()> {
        // Golden values printed by lm-eval's algorithm (Python, see fixtures/perplexity).
        let toks: Vec<u32> = (100..110).collect();
        assert_eq!(
            get_rolling_token_windows(&toks, 1, 4, 1)?,
            vec![
                w(&[1, 100, 101, 102], &[100, 101, 102, 103]),
                w(&[103, 104, 105, 106], &[104, 105, 106, 107]),
                w(&[105, 106, 107, 108], &[108, 109])
            ]
        );
        let disjoint: Vec<Window> = get_rolling_token_windows(&toks, 1, 4, 1)?
            .into_iter()
            .map(make_disjoint_window)
            .collect();
        assert_eq!(
            disjoint,
            vec![
                w(&[1], &[100, 101, 102, 103]),
                w(&[103], &[104, 105, 106, 107]),
                w(&[105, 106, 107], &[108, 109])
            ]
        );
        let disjoint: Vec<Window> = get_rolling_token_windows(&toks, 1, 4, 2)?
            .into_iter()
            .map(make_disjoint_window)
            .collect();
        assert_eq!(
            disjoint,
            vec![
                w(&[1], &[100, 101, 102, 103]),
                w(&[102, 103], &[104, 105, 106]),
                w(&[105, 106], &[107, 108, 109])
            ]
        );
        let toks: Vec<u32> = (100..107).collect();
        let disjoint: Vec<Window> = get_rolling_token_windows(&toks, 1, 3, 3)?
            .into_iter()
            .map(make_disjoint_window)
            .collect();
        assert_eq!(
            disjoint,
            vec![
                w(&[1], &[100, 101, 102]),
                w(&[100, 101, 102], &[103]),
                w(&[101, 102, 103], &[104]),
                w(&[102, 103, 104], &[105]),
                w(&[103, 104, 105], &[106])
            ]
        );
        assert_eq!(
            get_rolling_token_windows(&[100, 101, 102], 1, 5, 1)?,
            vec![w(&[1, 100, 101], &[100, 101, 102])]
        );
        assert!(get_rolling_token_windows(&[], 1, 5, 1)?.is_empty());
        assert!(get_rolling_token_windows(&[1], 1, 5, 6).is_err());
        assert!(get_rolling_token_windows(&[1], 1, 5, 0).is_err());
        Ok(())
    }

    #[test]
    fn window_shape_of_the_smollm2_reference() -> Result<()> {
        // fixtures/perplexity/reference.json: 247 tokens, max length 128 -> (ctx 1, cont 128), (ctx 10, cont 119).
        let toks: Vec<u32> = (0..247).collect();
        let ws: Vec<Window> = get_rolling_token_windows(&toks, 1, 128, 1)?
            .into_iter()
            .map(make_disjoint_window)
            .collect();
        let shape: Vec<(usize, usize)> = ws
            .iter()
            .map(|w| (w.context.len(), w.continuation.len()))
            .collect();
        assert_eq!(shape, vec![(1, 128), (10, 119)]);
        Ok(())
    }

    #[test]
    fn word_count_matches_python_re_split() {
        // Values from Python: len(re.split(r"\s+", s)).
        let cases = [
            ("", 1),
            ("a", 1),
            (" a", 2),
            ("a b", 2),
            (" a  b\n", 4),
            ("a \u{a0}b", 2),
            ("a\x1cb", 2),
            ("a\u{200b}b", 1),
            ("x\u{3000}y\u{2028}z", 3),
            ("\t\n", 2),
        ];
        for (s, n) in cases {
            assert_eq!(word_count(s), n, "{s:?}");
        }
    }

    /// Uniform over `vocab` tokens; tokenizes one token per byte. Records every input and checks
    /// that each is a contiguous run of `[prefix] + document` no longer than `max + 1`.
    pub(crate) struct Uniform {
        pub(crate) vocab: usize,
        pub(crate) max: usize,
        pub(crate) seen: Vec<Vec<u32>>,
    }

    impl LogLikelihoodModel for Uniform {
        fn token_logprobs(&mut self, tokens: &[u32]) -> std::result::Result<Vec<f64>, ModelError> {
            if tokens.len() < 2 || tokens.len() > self.max + 1 {
                return Err(format!("bad input length {}", tokens.len()).into());
            }
            self.seen.push(tokens.to_vec());
            Ok(vec![-(self.vocab as f64).ln(); tokens.len() - 1])
        }
        fn max_context_len(&self) -> usize {
            self.max
        }
        fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, ModelError> {
            Ok(text.bytes().map(|b| u32::from(b) + 10).collect())
        }
        fn bos_token_id(&self) -> Option<u32> {
            Some(1)
        }
        fn eos_token_id(&self) -> Option<u32> {
            Some(2)
        }
    }

    /// log p(t) = -t / 1000 for the predicted token t, regardless of context: the total is
    /// `-Σ t / 1000` iff every token is scored exactly once.
    struct ByToken {
        max: usize,
    }

    impl LogLikelihoodModel for ByToken {
        fn token_logprobs(&mut self, tokens: &[u32]) -> std::result::Result<Vec<f64>, ModelError> {
            if tokens.len() < 2 || tokens.len() > self.max + 1 {
                return Err(format!("bad input length {}", tokens.len()).into());
            }
            Ok(tokens[1..]
                .iter()
                .map(|&t| -f64::from(t) / 1000.0)
                .collect())
        }
        fn max_context_len(&self) -> usize {
            self.max
        }
        fn encode(&self, _text: &str) -> std::result::Result<Vec<u32>, ModelError> {
            Ok(Vec::new())
        }
        fn bos_token_id(&self) -> Option<u32> {
            None
        }
        fn eos_token_id(&self) -> Option<u32> {
            Some(0)
        }
    }

    #[test]
    fn every_token_scored_exactly_once() -> Result<()> {
        for n in [1usize, 2, 5, 16, 17, 100, 257] {
            for max in [1usize, 2, 3, 7, 16, 64, 300] {
                let toks: Vec<u32> = (1..=n as u32).map(|i| i * 7 % 1009 + 3).collect();
                let want: f64 = -toks.iter().map(|&t| f64::from(t) / 1000.0).sum::<f64>();
                let mut m = ByToken { max };
                let got = loglikelihood_rolling(&mut m, &toks, 0, max)?;
                assert!(
                    (got - want).abs() < 1e-9,
                    "n={n} max={max}: {got} vs {want}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn uniform_model_closed_form() -> Result<()> {
        let text = "The quick brown fox jumps over the lazy dog.\nPack my box with five dozen liquor jugs. ";
        let docs = vec![
            Document {
                id: "a".into(),
                text: text.into(),
            },
            Document {
                id: "b".into(),
                text: "héllo wörld".into(),
            },
        ];
        let vocab = 50;
        let mut m = Uniform {
            vocab,
            max: 16,
            seen: Vec::new(),
        };
        let r = evaluate_perplexity(&mut m, &docs, &PerplexityConfig::default())?;
        let n_tokens = text.len() + "héllo wörld".len();
        assert_eq!(r.tokens, n_tokens);
        assert!((r.token_perplexity - vocab as f64).abs() < 1e-9);
        let ll = -(n_tokens as f64) * (vocab as f64).ln();
        assert!((r.loglikelihood - ll).abs() < 1e-9);
        let words = word_count(text) + 2;
        assert_eq!(r.words, words);
        assert_eq!(r.bytes, n_tokens); // one token per byte
        assert!((r.word_perplexity.unwrap_or(0.0) - (-ll / words as f64).exp()).abs() < 1e-6);
        assert!((r.byte_perplexity.unwrap_or(0.0) - vocab as f64).abs() < 1e-9);
        assert!((r.bits_per_byte.unwrap_or(0.0) - (vocab as f64).log2()).abs() < 1e-12);
        // Inputs: contiguous runs of [BOS] + doc, never longer than max + 1.
        assert!(m.seen.iter().all(|inp| inp.len() <= 17));
        let first_doc: Vec<u32> = text.bytes().map(|b| u32::from(b) + 10).collect();
        for inp in m.seen.iter().take(6) {
            let body = if inp[0] == 1 { &inp[1..] } else { &inp[..] };
            assert!(
                first_doc.windows(body.len()).any(|w| w == body),
                "input is not a contiguous run of the document"
            );
        }
        // The model's max length is a hard bound.
        assert!(
            evaluate_perplexity(
                &mut m,
                &docs,
                &PerplexityConfig {
                    max_length: Some(17)
                }
            )
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn token_documents_have_no_word_metrics() -> Result<()> {
        let mut m = Uniform {
            vocab: 8,
            max: 4,
            seen: Vec::new(),
        };
        let r = evaluate_perplexity_tokens(
            &mut m,
            &[("d".into(), vec![5, 6, 7, 8, 9])],
            &PerplexityConfig::default(),
        )?;
        assert!((r.token_perplexity - 8.0).abs() < 1e-12);
        assert_eq!(r.word_perplexity, None);
        assert_eq!(r.bits_per_byte, None);
        assert!(evaluate_perplexity_tokens(&mut m, &[], &PerplexityConfig::default()).is_err());
        Ok(())
    }

    #[test]
    fn reads_text_and_jsonl_documents() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| EvalError::io("tmp", e))?;
        let t = dir.path().join("a.txt");
        crate::io::write_atomic(&t, "hello\nworld\n".as_bytes())?;
        assert_eq!(
            read_documents(&t, "text")?,
            vec![Document {
                id: "a.txt".into(),
                text: "hello\nworld\n".into()
            }]
        );
        let j = dir.path().join("d.jsonl");
        crate::io::write_atomic(
            &j,
            b"{\"id\": \"x\", \"content\": \"one\"}\n{\"content\": \"two\"}\n",
        )?;
        let docs = read_documents(&j, "content")?;
        assert_eq!(
            docs[0],
            Document {
                id: "x".into(),
                text: "one".into()
            }
        );
        assert_eq!(
            docs[1],
            Document {
                id: "d.jsonl:2".into(),
                text: "two".into()
            }
        );
        let err = read_documents(&j, "text")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("d.jsonl:1") && err.contains("`text`"), "{err}");
        Ok(())
    }
}

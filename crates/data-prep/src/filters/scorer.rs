//! Pluggable quality scorers and a fast character n-gram model for "garbled vs fluent".
//!
//! [`QualityScorer`] is the extension point: anything that maps a text to a number where higher
//! means better (a model-based classifier, a KenLM perplexity, ...). [`CharNgramScorer`] is the
//! model-free default: an interpolated character trigram model over 42 character classes (letters
//! case-folded, digits merged, common punctuation kept apart). Its score is the mean log2
//! probability per character, i.e. minus the bits per character: fluent English scores about
//! -2.5 to -3.3, keyboard mash, mojibake, base64 blobs and symbol soup score below -4.
//! The built-in model is trained on a short English passage shipped with the crate; train one on
//! your own clean text with [`CharNgramScorer::train`] for other languages or domains (text in a
//! non-Latin script scores as garbled under the English model).

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

use super::{FilterOutcome, TextFilter};

/// A document quality score; higher is better.
pub trait QualityScorer: Send + Sync {
    /// Name used in reports.
    fn name(&self) -> &str;
    /// Score one text.
    fn score(&self, text: &str) -> f64;
}

const V: usize = 42;

fn class(c: char) -> usize {
    match c {
        'a'..='z' => c as usize - 'a' as usize,
        'A'..='Z' => c as usize - 'A' as usize,
        '0'..='9' => 26,
        ' ' | '\t' => 27,
        '\n' => 28,
        '.' => 29,
        ',' => 30,
        '\'' | '\u{2019}' | '\u{2018}' => 31,
        '"' | '\u{201c}' | '\u{201d}' => 32,
        '!' => 33,
        '?' => 34,
        '-' | '\u{2013}' | '\u{2014}' => 35,
        ':' => 36,
        ';' => 37,
        '(' | ')' => 38,
        c if c.is_ascii() => 39,
        c if c.is_alphabetic() => 40,
        _ => 41,
    }
}

/// Interpolated character-class trigram model.
#[derive(Clone)]
pub struct CharNgramScorer {
    /// log2 P(c | a, b) for every (a, b, c), flattened.
    logp: Vec<f32>,
}

impl std::fmt::Debug for CharNgramScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CharNgramScorer")
            .field("classes", &V)
            .finish()
    }
}

const ENGLISH_SAMPLE: &str = include_str!("scorer_en.txt");

static ENGLISH: LazyLock<CharNgramScorer> =
    LazyLock::new(|| CharNgramScorer::train([ENGLISH_SAMPLE]));

impl CharNgramScorer {
    /// The model trained on the bundled English passage (built once, shared).
    pub fn english() -> Self {
        ENGLISH.clone()
    }

    /// Train a model on clean texts.
    pub fn train<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut tri = vec![0u32; V * V * V];
        let mut bi = vec![0u32; V * V];
        let mut uni = [0u32; V];
        for text in texts {
            let (mut a, mut b) = (27usize, 27usize);
            for ch in text.chars() {
                let c = class(ch);
                tri[(a * V + b) * V + c] += 1;
                bi[b * V + c] += 1;
                uni[c] += 1;
                a = b;
                b = c;
            }
        }
        let n: u64 = uni.iter().map(|&x| u64::from(x)).sum::<u64>().max(1);
        let bi_ctx: Vec<u64> = (0..V)
            .map(|b| (0..V).map(|c| u64::from(bi[b * V + c])).sum())
            .collect();
        let (l3, l2, l1, l0) = (0.5f64, 0.3f64, 0.15f64, 0.05f64);
        let mut logp = vec![0f32; V * V * V];
        for a in 0..V {
            for b in 0..V {
                let ctx3: u64 = (0..V).map(|c| u64::from(tri[(a * V + b) * V + c])).sum();
                for c in 0..V {
                    let mut p = 0.0;
                    let mut w = 0.0;
                    if ctx3 > 0 {
                        p += l3 * f64::from(tri[(a * V + b) * V + c]) / ctx3 as f64;
                        w += l3;
                    }
                    if bi_ctx[b] > 0 {
                        p += l2 * f64::from(bi[b * V + c]) / bi_ctx[b] as f64;
                        w += l2;
                    }
                    p += l1 * f64::from(uni[c]) / n as f64 + l0 / V as f64;
                    w += l1 + l0;
                    logp[(a * V + b) * V + c] = (p / w).log2() as f32;
                }
            }
        }
        Self { logp }
    }

    /// Mean log2 probability per character (minus bits per character); 0 for empty text.
    pub fn mean_log2_prob(&self, text: &str) -> f64 {
        let (mut a, mut b) = (27usize, 27usize);
        let (mut sum, mut n) = (0f64, 0usize);
        for ch in text.chars() {
            let c = class(ch);
            sum += f64::from(self.logp[(a * V + b) * V + c]);
            n += 1;
            a = b;
            b = c;
        }
        if n == 0 { 0.0 } else { sum / n as f64 }
    }
}

impl QualityScorer for CharNgramScorer {
    fn name(&self) -> &str {
        "char_ngram"
    }

    fn score(&self, text: &str) -> f64 {
        self.mean_log2_prob(text)
    }
}

/// Settings of the scorer filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScorerConfig {
    /// Apply the filter.
    pub enabled: bool,
    /// Drop documents scoring below this (for the char n-gram model: minus bits per character).
    pub min_score: f64,
    /// Texts shorter than this many characters are kept without scoring (too little evidence).
    pub min_chars: usize,
}

impl Default for ScorerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_score: -4.0,
            min_chars: 40,
        }
    }
}

/// Drops documents whose [`QualityScorer`] score is below a threshold (reason `garbled_text`).
#[derive(Clone)]
pub struct ScorerFilter {
    scorer: Arc<dyn QualityScorer>,
    cfg: ScorerConfig,
}

impl std::fmt::Debug for ScorerFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScorerFilter")
            .field("scorer", &self.scorer.name())
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl ScorerFilter {
    /// Wrap a scorer.
    pub fn new(scorer: Arc<dyn QualityScorer>, cfg: ScorerConfig) -> Self {
        Self { scorer, cfg }
    }
}

impl TextFilter for ScorerFilter {
    fn name(&self) -> &'static str {
        "scorer"
    }

    fn apply(&self, text: &str) -> FilterOutcome {
        if text.chars().count() < self.cfg.min_chars {
            return FilterOutcome::Keep;
        }
        if self.scorer.score(text) < self.cfg.min_score {
            FilterOutcome::drop("garbled_text")
        } else {
            FilterOutcome::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLUENT: &[&str] = &[
        "The committee will publish its final report next month, after the public consultation has closed and all comments have been reviewed.",
        "To install the package, download the archive, unpack it into a folder of your choice and run the setup script from a terminal.",
        "Yesterday afternoon a small boat carrying four fishermen was found drifting near the northern coast; all of them were safe.",
        "If the server does not respond within thirty seconds, the client retries the request twice before reporting an error to the user.",
    ];

    const GARBLED: &[&str] = &[
        "xkqz vbnm wrtp lkjh qwzx cvbn mnbv zxcv qwer tyui pqzx jkvb nmqw xzcv bnmq wqzx kjvb",
        "Ã©tÃ© Ã  la maison, câ€™est trÃ¨s bien Ã§a, lâ€™Ã©cole est fermÃ©e aujourdâ€™hui pour Ã©tÃ©",
        "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgZW5jb2RlZCBkYXRhIHRoYXQgbG9va3MgbGlrZSBnYXJiYWdl",
        "#@!$%^&*()_+{}|:<>?~`-=[]\\;',./ #@!$%^&*()_+{}|:<>?~`-=[]\\;',./ #@!$%^&*()_+",
        "\u{fffd}\u{fffd}\u{25a1}\u{25a1} \u{fffd}\u{2592}\u{2593} \u{fffd}\u{fffd}\u{25a1} \u{2592}\u{2593}\u{fffd}\u{25a1}\u{2592}\u{2593}\u{fffd} \u{fffd}\u{fffd}\u{25a1}\u{25a1} \u{fffd}\u{2592}\u{2593} \u{fffd}\u{fffd}\u{25a1} \u{2592}\u{2593}\u{fffd}\u{25a1}\u{2592}\u{2593}\u{fffd}",
    ];

    #[test]
    fn fluent_scores_above_garbled() {
        let s = CharNgramScorer::english();
        let cfg = ScorerConfig::default();
        let worst_fluent = FLUENT
            .iter()
            .map(|t| s.score(t))
            .fold(f64::INFINITY, f64::min);
        let best_garbled = GARBLED
            .iter()
            .map(|t| s.score(t))
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(
            worst_fluent > cfg.min_score,
            "fluent text scored {worst_fluent}"
        );
        assert!(
            best_garbled < cfg.min_score,
            "garbled text scored {best_garbled}"
        );
        let f = ScorerFilter::new(Arc::new(s), cfg);
        for t in FLUENT {
            assert_eq!(f.apply(t), FilterOutcome::Keep, "{t}");
        }
        for t in GARBLED {
            assert_eq!(f.apply(t), FilterOutcome::drop("garbled_text"), "{t}");
        }
        assert_eq!(f.apply("zq xv"), FilterOutcome::Keep, "too short to judge");
    }

    #[test]
    fn training_on_other_text_changes_the_model() {
        let code = CharNgramScorer::train(
            ["fn main() { let x = vec![1, 2, 3]; println!(\"{x:?}\"); }\n"; 20],
        );
        let line = "fn main() { let y = vec![4, 5]; }";
        assert!(code.score(line) > CharNgramScorer::english().score(line));
    }
}

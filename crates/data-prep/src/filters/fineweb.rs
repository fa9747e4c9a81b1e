//! FineWeb's four quality rules (datatrove `FineWebQualityFilter`).

use serde::{Deserialize, Serialize};

use super::gopher::find_duplicates;
use super::{FilterOutcome, TextFilter, words};

/// FineWeb thresholds (datatrove defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FineWebConfig {
    /// Apply the filter.
    pub enabled: bool,
    /// Drop when the fraction of lines ending in `.'"!?` is `<=` this (0.12).
    pub line_punct_thr: f64,
    /// Do not apply the punctuation rule when no line ends in punctuation.
    pub line_punct_exclude_zero: bool,
    /// Drop when the fraction of short lines is `>=` this (0.67).
    pub short_line_thr: f64,
    /// A line of at most this many characters is short (30).
    pub short_line_length: usize,
    /// Drop when duplicated-line characters / characters (newlines excluded) is `>=` this (0.01).
    pub char_duplicates_ratio: f64,
    /// Drop when newlines / words is `>` this (0.3).
    pub new_line_ratio: f64,
}

impl Default for FineWebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            line_punct_thr: 0.12,
            line_punct_exclude_zero: false,
            short_line_thr: 0.67,
            short_line_length: 30,
            char_duplicates_ratio: 0.01,
            new_line_ratio: 0.3,
        }
    }
}

/// The FineWeb quality filter.
#[derive(Debug, Clone)]
pub struct FineWebFilter {
    cfg: FineWebConfig,
}

impl FineWebFilter {
    /// A filter with these thresholds.
    pub fn new(cfg: FineWebConfig) -> Self {
        Self { cfg }
    }
}

impl TextFilter for FineWebFilter {
    fn name(&self) -> &'static str {
        "fineweb"
    }

    fn apply(&self, text: &str) -> FilterOutcome {
        let c = &self.cfg;
        let lines: Vec<&str> = text.split('\n').collect();
        let n = lines.len() as f64;
        let punct = lines
            .iter()
            .filter(|l| l.ends_with(['.', '\'', '"', '!', '?']))
            .count() as f64
            / n;
        if punct <= c.line_punct_thr && !(punct == 0.0 && c.line_punct_exclude_zero) {
            return FilterOutcome::drop("line_punct_ratio");
        }
        let short = lines
            .iter()
            .filter(|l| l.chars().count() <= c.short_line_length)
            .count() as f64
            / n;
        if short >= c.short_line_thr {
            return FilterOutcome::drop("short_line_ratio");
        }
        let (_, dup_chars) =
            find_duplicates(lines.iter().copied().filter(|l| !l.trim().is_empty()));
        let chars_no_nl = text.chars().filter(|&ch| ch != '\n').count();
        if chars_no_nl == 0 || dup_chars as f64 / chars_no_nl as f64 >= c.char_duplicates_ratio {
            return FilterOutcome::drop("char_dup_ratio");
        }
        let n_words = words(text).len();
        let newlines = text.matches('\n').count();
        if n_words == 0 || newlines as f64 / n_words as f64 > c.new_line_ratio {
            return FilterOutcome::drop("list_ratio");
        }
        FilterOutcome::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f() -> FineWebFilter {
        FineWebFilter::new(FineWebConfig::default())
    }

    fn line(i: usize, end: &str) -> String {
        // 40+ characters, distinct per i.
        format!("line number {i:03} has quite a few words in it{end}")
    }

    #[test]
    fn punctuation_ratio_bound() {
        // 100 lines; 12 end with '.' -> 0.12 <= 0.12 dropped; 13 -> kept.
        let doc = |k: usize| {
            (0..100)
                .map(|i| line(i, if i < k { "." } else { "" }))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(f().apply(&doc(12)), FilterOutcome::drop("line_punct_ratio"));
        assert_eq!(f().apply(&doc(13)), FilterOutcome::Keep);
        let ez = FineWebFilter::new(FineWebConfig {
            line_punct_exclude_zero: true,
            ..FineWebConfig::default()
        });
        assert_eq!(ez.apply(&doc(0)), FilterOutcome::Keep);
    }

    #[test]
    fn short_line_bound() {
        // 100 lines, k short (<= 30 chars, distinct): 0.67 dropped, 0.66 kept.
        let doc = |k: usize| {
            (0..100)
                .map(|i| {
                    if i < k {
                        format!("short {i:03} words here.")
                    } else {
                        line(i, ".")
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(format!("short {:03} words here.", 1).len(), 21);
        assert_eq!(f().apply(&doc(66)), FilterOutcome::Keep);
        assert_eq!(f().apply(&doc(67)), FilterOutcome::drop("short_line_ratio"));
        // Exactly 30 characters counts as short, 31 does not.
        let l30 = "abcde fghij klmno pqrst uvwxy.";
        assert_eq!(l30.len(), 30);
        let all30 = [l30; 3].join("\n");
        let thirty = FineWebFilter::new(FineWebConfig {
            short_line_thr: 1.0,
            char_duplicates_ratio: 1.1,
            ..FineWebConfig::default()
        });
        assert_eq!(
            thirty.apply(&all30),
            FilterOutcome::drop("short_line_ratio")
        );
        let all31 = vec![format!("{l30}x.")[..31].to_owned(); 3].join("\n");
        assert_ne!(
            thirty.apply(&all31),
            FilterOutcome::drop("short_line_ratio")
        );
    }

    #[test]
    fn duplicate_char_ratio_bound() {
        // 99 distinct lines of 44 chars + one duplicate of a 44-char line:
        // dup chars 44 / (100 * 44) = 0.01 -> dropped (>=). Shorter duplicate -> kept.
        let mut lines: Vec<String> = (0..99).map(|i| line(i, ".")).collect();
        assert_eq!(lines[0].len(), 44);
        let mut with_dup = lines.clone();
        with_dup.push(lines[5].clone());
        assert_eq!(
            f().apply(&with_dup.join("\n")),
            FilterOutcome::drop("char_dup_ratio")
        );
        lines.push("A short duplicate.".into());
        lines.push("A short duplicate.".into());
        // 18 / (99*44 + 36) = 0.0041 kept
        assert_eq!(f().apply(&lines.join("\n")), FilterOutcome::Keep);
    }

    #[test]
    fn list_ratio_bound() {
        // 10 lines of 3 words + 1 punctuation token = 40 words... use exact counts:
        // each line "wa wb wc." -> tokens wa, wb, wc, . = 4 tokens; newlines = lines - 1.
        let doc = |lines: usize, words_per_line: usize| {
            (0..lines)
                .map(|i| {
                    let ws: Vec<String> =
                        (0..words_per_line).map(|j| format!("w{i}x{j}")).collect();
                    format!("{} and some more filler text.", ws.join(" "))
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let relaxed = |t: &str| {
            FineWebFilter::new(FineWebConfig {
                short_line_thr: 1.1,
                char_duplicates_ratio: 1.1,
                ..FineWebConfig::default()
            })
            .apply(t)
        };
        // words per line = k + 5 ("and some more filler text" 5 words + "." token) -> k + 6 tokens.
        // 11 lines -> 10 newlines; tokens = 11 * (k + 6). k = 0 -> 66 tokens: 10/66 = 0.15 kept.
        assert_eq!(relaxed(&doc(11, 0)), FilterOutcome::Keep);
        let terse = (0..11)
            .map(|i| format!("w{i}."))
            .collect::<Vec<_>>()
            .join("\n");
        // 22 tokens, 10 newlines: 0.4545 > 0.3 dropped.
        assert_eq!(relaxed(&terse), FilterOutcome::drop("list_ratio"));
        // 10 newlines / 33 tokens = 0.303 dropped; / 34 tokens = 0.294 kept.
        let mk = |extra: usize| {
            let mut t = terse.clone();
            for k in 0..extra {
                t.push_str(&format!(" e{k}"));
            }
            t
        };
        assert_eq!(relaxed(&mk(11)), FilterOutcome::drop("list_ratio"));
        assert_eq!(relaxed(&mk(12)), FilterOutcome::Keep);
    }
}

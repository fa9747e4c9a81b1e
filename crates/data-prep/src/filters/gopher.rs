//! Gopher quality and repetition rules (Rae et al. 2021), as datatrove implements them.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{FilterOutcome, TextFilter, is_punct, splitlines, words};

/// Gopher quality thresholds (datatrove `GopherQualityFilter` defaults). A threshold of 0 disables
/// its rule, as in datatrove.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GopherQualityConfig {
    /// Apply the filter.
    pub enabled: bool,
    /// Minimum number of non-symbol words (50).
    pub min_doc_words: usize,
    /// Maximum number of non-symbol words (100,000).
    pub max_doc_words: usize,
    /// Minimum mean length of non-symbol words (3).
    pub min_avg_word_length: f64,
    /// Maximum mean length of non-symbol words (10).
    pub max_avg_word_length: f64,
    /// Maximum `#` count per word, and `...`/`…` count per word (0.1).
    pub max_symbol_word_ratio: f64,
    /// Maximum fraction of lines starting with `•` or `-` (0.9).
    pub max_bullet_lines_ratio: f64,
    /// Maximum fraction of lines ending with `...` or `…` (0.3).
    pub max_ellipsis_lines_ratio: f64,
    /// Minimum fraction of words containing an alphabetic character (0.8; datatrove's name).
    pub max_non_alpha_words_ratio: f64,
    /// Minimum number of stop-word occurrences (2).
    pub min_stop_words: usize,
    /// The stop words (Gopher's 8: the, be, to, of, and, that, have, with), matched case-sensitively.
    pub stop_words: Vec<String>,
}

impl Default for GopherQualityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_doc_words: 50,
            max_doc_words: 100_000,
            min_avg_word_length: 3.0,
            max_avg_word_length: 10.0,
            max_symbol_word_ratio: 0.1,
            max_bullet_lines_ratio: 0.9,
            max_ellipsis_lines_ratio: 0.3,
            max_non_alpha_words_ratio: 0.8,
            min_stop_words: 2,
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// The Gopher quality filter.
#[derive(Debug, Clone)]
pub struct GopherQualityFilter {
    cfg: GopherQualityConfig,
    stop: HashSet<String>,
}

impl GopherQualityFilter {
    /// A filter with these thresholds.
    pub fn new(cfg: GopherQualityConfig) -> Self {
        let stop = cfg.stop_words.iter().cloned().collect();
        Self { cfg, stop }
    }
}

impl TextFilter for GopherQualityFilter {
    fn name(&self) -> &'static str {
        "gopher_quality"
    }

    fn apply(&self, text: &str) -> FilterOutcome {
        let c = &self.cfg;
        let words = words(text);
        let n_words = words.len();
        if n_words == 0 {
            return FilterOutcome::drop("gopher_short_doc");
        }
        let (mut n_non_symbol, mut non_symbol_chars) = (0usize, 0usize);
        for w in &words {
            if w.chars().any(|ch| !is_punct(ch)) {
                n_non_symbol += 1;
                non_symbol_chars += w.chars().count();
            }
        }
        if c.min_doc_words > 0 && n_non_symbol < c.min_doc_words {
            return FilterOutcome::drop("gopher_short_doc");
        }
        if c.max_doc_words > 0 && n_non_symbol > c.max_doc_words {
            return FilterOutcome::drop("gopher_long_doc");
        }
        // NaN when there is no non-symbol word: both comparisons are false, as with numpy.
        let avg = non_symbol_chars as f64 / n_non_symbol as f64;
        if c.min_avg_word_length > 0.0 && avg < c.min_avg_word_length {
            return FilterOutcome::drop("gopher_below_avg_threshold");
        }
        if c.max_avg_word_length > 0.0 && avg > c.max_avg_word_length {
            return FilterOutcome::drop("gopher_above_avg_threshold");
        }
        let nw = n_words as f64;
        if c.max_symbol_word_ratio > 0.0 {
            if text.matches('#').count() as f64 / nw > c.max_symbol_word_ratio {
                return FilterOutcome::drop("gopher_too_many_hashes");
            }
            let ellipses = text.matches("...").count() + text.matches('…').count();
            if ellipses as f64 / nw > c.max_symbol_word_ratio {
                return FilterOutcome::drop("gopher_too_many_ellipsis");
            }
        }
        let lines = splitlines(text);
        let n_lines = lines.len().max(1) as f64;
        if c.max_bullet_lines_ratio > 0.0 {
            let bullets = lines
                .iter()
                .filter(|l| {
                    let t = l.trim_start();
                    t.starts_with('•') || t.starts_with('-')
                })
                .count();
            if bullets as f64 / n_lines > c.max_bullet_lines_ratio {
                return FilterOutcome::drop("gopher_too_many_bullets");
            }
        }
        if c.max_ellipsis_lines_ratio > 0.0 {
            let ends = lines
                .iter()
                .filter(|l| {
                    let t = l.trim_end();
                    t.ends_with("...") || t.ends_with('…')
                })
                .count();
            if ends as f64 / n_lines > c.max_ellipsis_lines_ratio {
                return FilterOutcome::drop("gopher_too_many_end_ellipsis");
            }
        }
        if c.max_non_alpha_words_ratio > 0.0 {
            let alpha = words
                .iter()
                .filter(|w| w.chars().any(char::is_alphabetic))
                .count();
            if (alpha as f64) / nw < c.max_non_alpha_words_ratio {
                return FilterOutcome::drop("gopher_below_alpha_threshold");
            }
        }
        if c.min_stop_words > 0 {
            let stops = words.iter().filter(|w| self.stop.contains(**w)).count();
            if stops < c.min_stop_words {
                return FilterOutcome::drop("gopher_enough_stop_words");
            }
        }
        FilterOutcome::Keep
    }
}

/// Gopher repetition thresholds (Gopher Table A1, datatrove `GopherRepetitionFilter` defaults);
/// 0 disables a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GopherRepetitionConfig {
    /// Apply the filter.
    pub enabled: bool,
    /// Maximum fraction of duplicate lines (0.3).
    pub dup_line_frac: f64,
    /// Maximum fraction of duplicate paragraphs (0.3).
    pub dup_para_frac: f64,
    /// Maximum fraction of characters in duplicate lines (0.2).
    pub dup_line_char_frac: f64,
    /// Maximum fraction of characters in duplicate paragraphs (0.2).
    pub dup_para_char_frac: f64,
    /// `(n, max fraction)` for the most frequent n-gram's characters: (2, 0.2), (3, 0.18), (4, 0.16).
    pub top_n_grams: Vec<(usize, f64)>,
    /// `(n, max fraction)` for characters in duplicated n-grams: (5, 0.15) ... (10, 0.10).
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetitionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dup_line_frac: 0.3,
            dup_para_frac: 0.3,
            dup_line_char_frac: 0.2,
            dup_para_char_frac: 0.2,
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![
                (5, 0.15),
                (6, 0.14),
                (7, 0.13),
                (8, 0.12),
                (9, 0.11),
                (10, 0.10),
            ],
        }
    }
}

/// The Gopher repetition filter.
#[derive(Debug, Clone)]
pub struct GopherRepetitionFilter {
    cfg: GopherRepetitionConfig,
}

impl GopherRepetitionFilter {
    /// A filter with these thresholds.
    pub fn new(cfg: GopherRepetitionConfig) -> Self {
        Self { cfg }
    }
}

/// `(duplicate elements, characters in duplicates)`: an element counts when seen before.
pub(crate) fn find_duplicates<'a>(items: impl IntoIterator<Item = &'a str>) -> (usize, usize) {
    let mut seen = HashSet::new();
    let (mut dup, mut chars) = (0usize, 0usize);
    for item in items {
        if !seen.insert(item) {
            dup += 1;
            chars += item.chars().count();
        }
    }
    (dup, chars)
}

/// Split on runs of `sep_min` or more `\n` (Python `re.split("\n{k,}", text)`).
fn split_newline_runs(text: &str, min_run: usize) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            let mut j = i;
            while j < bytes.len() && bytes[j] == b'\n' {
                j += 1;
            }
            if j - i >= min_run {
                out.push(&text[start..i]);
                start = j;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out.push(&text[start..]);
    out
}

impl TextFilter for GopherRepetitionFilter {
    fn name(&self) -> &'static str {
        "gopher_repetition"
    }

    fn apply(&self, text: &str) -> FilterOutcome {
        let c = &self.cfg;
        let n_chars = text.chars().count();
        if n_chars == 0 {
            return FilterOutcome::drop("empty");
        }
        let len = n_chars as f64;
        let paragraphs = split_newline_runs(text.trim(), 2);
        let (para_dup, para_chars) = find_duplicates(paragraphs.iter().copied());
        if c.dup_para_frac > 0.0 && para_dup as f64 / paragraphs.len() as f64 > c.dup_para_frac {
            return FilterOutcome::drop("dup_para_frac");
        }
        if c.dup_para_char_frac > 0.0 && para_chars as f64 / len > c.dup_para_char_frac {
            return FilterOutcome::drop("dup_para_char_frac");
        }
        let lines = split_newline_runs(text, 1);
        let (line_dup, line_chars) = find_duplicates(lines.iter().copied());
        if c.dup_line_frac > 0.0 && line_dup as f64 / lines.len() as f64 > c.dup_line_frac {
            return FilterOutcome::drop("dup_line_frac");
        }
        if c.dup_line_char_frac > 0.0 && line_chars as f64 / len > c.dup_line_char_frac {
            return FilterOutcome::drop("dup_line_char_frac");
        }
        let words = words(text);
        let word_chars: Vec<usize> = words.iter().map(|w| w.chars().count()).collect();
        let wh = WordHashes::new(&words);
        for &(n, frac) in &c.top_n_grams {
            if frac <= 0.0 || n == 0 || words.len() < n {
                continue;
            }
            if top_ngram_chars(&wh, &word_chars, n) as f64 / len > frac {
                return FilterOutcome::Drop(format!("top_{n}_gram").into());
            }
        }
        for &(n, frac) in &c.dup_n_grams {
            if frac <= 0.0 || n == 0 {
                continue;
            }
            if dup_ngram_chars(&wh, &word_chars, n) as f64 / len > frac {
                return FilterOutcome::Drop(format!("duplicated_{n}_n_grams").into());
            }
        }
        FilterOutcome::Keep
    }
}

/// Polynomial hashes of words, composable under concatenation:
/// `H(x ++ y) = H(x) * B^len(y) + H(y)` (mod 2^64), so an n-gram's hash is a fold over its words'
/// precomputed `(H, B^len)` and equals the hash of its joined bytes exactly as datatrove builds
/// the string (`" ".join` for top n-grams, `"".join` for duplicated n-grams).
struct WordHashes {
    h: Vec<u64>,
    pow: Vec<u64>,
}

const POLY_B: u64 = 0x9E37_79B9_7F4A_7C15 | 1;

impl WordHashes {
    fn new(words: &[&str]) -> Self {
        let mut h = Vec::with_capacity(words.len());
        let mut pow = Vec::with_capacity(words.len());
        for w in words {
            let (mut x, mut p) = (0u64, 1u64);
            for &b in w.as_bytes() {
                x = x.wrapping_mul(POLY_B).wrapping_add(u64::from(b) + 1);
                p = p.wrapping_mul(POLY_B);
            }
            h.push(x);
            pow.push(p);
        }
        Self { h, pow }
    }

    /// Hash of `words[i..i + n]` joined with `sep` (`Some(b' ')` or none).
    fn ngram(&self, i: usize, n: usize, sep: Option<u8>) -> u64 {
        let mut x = self.h[i];
        for k in i + 1..i + n {
            if let Some(s) = sep {
                x = x.wrapping_mul(POLY_B).wrapping_add(u64::from(s) + 1);
            }
            x = x.wrapping_mul(self.pow[k]).wrapping_add(self.h[k]);
        }
        // Final avalanche so the identity-hashed maps below see well-mixed keys.
        let mut z = x ^ (x >> 33);
        z = z.wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^= z >> 33;
        z = z.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        z ^ (z >> 33)
    }
}

/// A hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type IdBuild = std::hash::BuildHasherDefault<IdHasher>;

/// Characters of the most frequent space-joined n-gram times its count (ties: first seen).
fn top_ngram_chars(wh: &WordHashes, word_chars: &[usize], n: usize) -> usize {
    let len = wh.h.len();
    let mut counts: HashMap<u64, (usize, usize), IdBuild> =
        HashMap::with_capacity_and_hasher(len, IdBuild::default());
    for i in 0..=(len - n) {
        let e = counts.entry(wh.ngram(i, n, Some(b' '))).or_insert((0, i));
        e.0 += 1;
    }
    let Some(&(count, first)) = counts
        .values()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
    else {
        return 0;
    };
    let chars: usize = word_chars[first..first + n].iter().sum::<usize>() + (n - 1);
    chars * count
}

/// Characters in duplicated n-grams (concatenated without separator), scanning left to right and
/// jumping over a duplicate once found (datatrove `find_all_duplicate`).
fn dup_ngram_chars(wh: &WordHashes, word_chars: &[usize], n: usize) -> usize {
    let len = wh.h.len();
    if len < n {
        return 0;
    }
    let mut seen: HashSet<u64, IdBuild> =
        HashSet::with_capacity_and_hasher(len, IdBuild::default());
    let (mut repeated, mut idx) = (0usize, 0usize);
    while idx < len - n + 1 {
        if seen.insert(wh.ngram(idx, n, None)) {
            idx += 1;
        } else {
            repeated += word_chars[idx..idx + n].iter().sum::<usize>();
            idx += n;
        }
    }
    repeated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(f: &dyn TextFilter, text: &str) -> Option<String> {
        match f.apply(text) {
            FilterOutcome::Drop(r) => Some(r.into_owned()),
            _ => None,
        }
    }

    /// `n` distinct 4-letter words + 2 stop words, one line.
    fn doc(n: usize) -> String {
        let mut w: Vec<String> = (0..n.saturating_sub(2)).map(word4).collect();
        w.push("the".into());
        w.push("and".into());
        w.join(" ")
    }

    /// A distinct 4-letter lowercase word for each index.
    fn word4(i: usize) -> String {
        let a = b'a' + (i % 26) as u8;
        let b = b'a' + ((i / 26) % 26) as u8;
        let c = b'a' + ((i / 676) % 26) as u8;
        String::from_utf8(vec![b'w', a, b, c]).expect("ascii")
    }

    #[test]
    fn gopher_word_count_bounds() {
        let f = GopherQualityFilter::new(GopherQualityConfig::default());
        assert_eq!(reason(&f, &doc(50)), None);
        assert_eq!(reason(&f, &doc(49)).as_deref(), Some("gopher_short_doc"));
        // Punctuation-only tokens do not count as words.
        assert_eq!(
            reason(&f, &format!("{} , ; !", doc(49))).as_deref(),
            Some("gopher_short_doc")
        );
        let small = GopherQualityFilter::new(GopherQualityConfig {
            max_doc_words: 60,
            ..Default::default()
        });
        assert_eq!(reason(&small, &doc(60)), None);
        assert_eq!(reason(&small, &doc(61)).as_deref(), Some("gopher_long_doc"));
    }

    #[test]
    fn gopher_mean_word_length_bounds() {
        let f = GopherQualityFilter::new(GopherQualityConfig {
            min_stop_words: 0,
            ..Default::default()
        });
        // 50 words of length 3: mean 3 exactly is kept.
        let three: Vec<String> = (0..50).map(|i| word4(i)[1..].to_owned()).collect();
        assert_eq!(reason(&f, &three.join(" ")), None);
        // One word of length 2 pulls the mean below 3.
        let mut below = three.clone();
        below[0] = "ab".into();
        assert_eq!(
            reason(&f, &below.join(" ")).as_deref(),
            Some("gopher_below_avg_threshold")
        );
        // Mean of exactly 10 is kept, above 10 is dropped.
        let ten: Vec<String> = (0..50).map(|i| format!("{}xxxxxx", word4(i))).collect();
        assert_eq!(reason(&f, &ten.join(" ")), None);
        let mut above = ten.clone();
        above[0].push('y');
        assert_eq!(
            reason(&f, &above.join(" ")).as_deref(),
            Some("gopher_above_avg_threshold")
        );
    }

    #[test]
    fn gopher_symbol_ratios() {
        let f = GopherQualityFilter::new(GopherQualityConfig::default());
        // 100 words; `#` tokens are words too (punctuation-only, so not counted as doc words).
        let base = doc(90);
        let with = |k: usize, sym: &str| format!("{} {base}", vec![sym; k].join(" "));
        // 10 hashes among 100 tokens: ratio 0.1 is kept, 11 among 101 is > 0.1.
        assert_eq!(reason(&f, &with(10, "#")), None);
        assert_eq!(
            reason(&f, &with(11, "#")).as_deref(),
            Some("gopher_too_many_hashes")
        );
        assert_eq!(reason(&f, &with(10, "…")), None);
        assert_eq!(
            reason(&f, &with(11, "…")).as_deref(),
            Some("gopher_too_many_ellipsis")
        );
    }

    #[test]
    fn gopher_line_ratios() {
        let f = GopherQualityFilter::new(GopherQualityConfig::default());
        let words: Vec<String> = (0..100).map(word4).collect();
        let lines_with = |k: usize, prefix: &str, suffix: &str| -> String {
            (0..10)
                .map(|i| {
                    let body = words[i * 10..i * 10 + 10].join(" ");
                    let body = if i == 0 {
                        format!("the and {body}")
                    } else {
                        body
                    };
                    if i < k {
                        format!("{prefix}{body}{suffix}")
                    } else {
                        body
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(reason(&f, &lines_with(9, "• ", "")), None);
        assert_eq!(
            reason(&f, &lines_with(10, "- ", "")).as_deref(),
            Some("gopher_too_many_bullets")
        );
        assert_eq!(reason(&f, &lines_with(3, "", "…")), None);
        assert_eq!(
            reason(&f, &lines_with(4, "", "…")).as_deref(),
            Some("gopher_too_many_end_ellipsis")
        );
    }

    #[test]
    fn gopher_alpha_and_stop_words() {
        let f = GopherQualityFilter::new(GopherQualityConfig::default());
        let base = doc(80); // 80 alphabetic words
        // 20 numeric words: 80/100 = 0.8 kept; 21: 80/101 < 0.8 dropped.
        let nums = |k: usize| {
            (0..k)
                .map(|i| format!("{}", 1000 + i))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(reason(&f, &format!("{base} {}", nums(20))), None);
        assert_eq!(
            reason(&f, &format!("{base} {}", nums(21))).as_deref(),
            Some("gopher_below_alpha_threshold")
        );
        let one_stop: Vec<String> = (0..60).map(word4).chain(["the".to_owned()]).collect();
        assert_eq!(
            reason(&f, &one_stop.join(" ")).as_deref(),
            Some("gopher_enough_stop_words")
        );
        // Stop words are case-sensitive, as in datatrove.
        let upper: Vec<String> = (0..60)
            .map(word4)
            .chain(["The".to_owned(), "And".to_owned()])
            .collect();
        assert_eq!(
            reason(&f, &upper.join(" ")).as_deref(),
            Some("gopher_enough_stop_words")
        );
    }

    fn rep() -> GopherRepetitionFilter {
        GopherRepetitionFilter::new(GopherRepetitionConfig::default())
    }

    /// A paragraph of `k` distinct words starting at word index `start`.
    fn para(start: usize, k: usize) -> String {
        (start..start + k).map(word4).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn repetition_duplicate_paragraphs_and_lines() {
        let f = rep();
        // 10 paragraphs, 3 duplicates: 0.3 kept (but char fraction must stay <= 0.2: make dups short).
        let long: Vec<String> = (0..7).map(|i| para(100 + i * 40, 40)).collect();
        let mut paras = long.clone();
        paras.extend(["aaa bbb", "aaa bbb", "aaa bbb"].map(String::from));
        paras.insert(7, "aaa bbb".into());
        paras.truncate(10);
        // paras = 7 long + "aaa bbb" x3 -> 2 duplicates of 10.
        let text = paras.join("\n\n");
        assert_eq!(reason(&f, &text), None);
        let mut more = paras.clone();
        more.extend(["aaa bbb", "aaa bbb"].map(String::from)); // 4 dups of 12 = 0.333
        assert_eq!(
            reason(&f, &more.join("\n\n")).as_deref(),
            Some("dup_para_frac")
        );
        // Lines (single newlines): 3 dups of 10 kept, 4 of 11 dropped.
        let mut lines: Vec<String> = (0..7).map(|i| para(500 + i * 40, 40)).collect();
        lines.extend(["x y", "x y", "x y", "x y"].map(String::from));
        assert_eq!(reason(&f, &lines.join("\n")), None);
        lines.push("x y".into());
        assert_eq!(
            reason(&f, &lines.join("\n")).as_deref(),
            Some("dup_line_frac")
        );
    }

    #[test]
    fn repetition_char_fractions() {
        let f = rep();
        // Three unique lines of 99 chars and one line of L chars twice (1 duplicate of 5 lines):
        // chars = 3 * 99 + 2L + 4 newlines, duplicate chars L.
        let unique = format!("{}\n{}\n{}", para(0, 20), para(20, 20), para(40, 20));
        assert_eq!(unique.chars().count(), 299);
        let dup = "q".repeat(100); // 100 / 501 = 0.1996 -> kept
        assert_eq!(reason(&f, &format!("{unique}\n{dup}\n{dup}")), None);
        let dup = "q".repeat(101); // 101 / 503 = 0.2008 -> dropped
        assert_eq!(
            reason(&f, &format!("{unique}\n{dup}\n{dup}")).as_deref(),
            Some("dup_line_char_frac")
        );
    }

    #[test]
    fn repetition_top_and_duplicated_ngrams() {
        // Only the n-gram rules.
        let only = |top: Vec<(usize, f64)>, dupn: Vec<(usize, f64)>| {
            GopherRepetitionFilter::new(GopherRepetitionConfig {
                dup_line_frac: 0.0,
                dup_para_frac: 0.0,
                dup_line_char_frac: 0.0,
                dup_para_char_frac: 0.0,
                top_n_grams: top,
                dup_n_grams: dupn,
                enabled: true,
            })
        };
        let f = only(vec![(2, 0.2)], vec![]);
        // "ab cd" (5 chars) x k among distinct filler; total length chosen so the fraction brackets 0.2.
        let filler = para(0, 40); // 40*4+39 = 199 chars
        let make = |k: usize| format!("{filler} {}", vec!["ab cd"; k].join(" "));
        // k=10: text = 199 + 1 + 10*5 + 9 = 259 chars; top 2-gram "ab cd" x10 = 50 -> 0.193 kept.
        assert_eq!(reason(&f, &make(10)), None);
        // k=12: 199+1+60+11 = 271; 60/271 = 0.221 dropped.
        assert_eq!(reason(&f, &make(12)).as_deref(), Some("top_2_gram"));
        // Duplicated 5-grams: a 5-word phrase repeated.
        let g = only(vec![], vec![(5, 0.15)]);
        let phrase = "one two three four five"; // 19 chars, 15 without spaces
        let text_k = |k: usize| format!("{} {}", para(0, 60), vec![phrase; k].join(" "));
        // k=2: 299 + 1 + 39 = 339 chars, one duplicate 5-gram = 15 chars -> 0.044 kept.
        assert_eq!(reason(&g, &text_k(2)), None);
        // k=6: 299 + 1 + 6*19 + 5 = 419; 5 duplicates * 15 = 75 -> 0.179 dropped.
        assert_eq!(
            reason(&g, &text_k(6)).as_deref(),
            Some("duplicated_5_n_grams")
        );
    }

    #[test]
    fn ngram_hashes_follow_the_joined_strings() {
        // "".join(["ab", "c"]) == "".join(["a", "bc"]), but " ".join differs.
        let a = WordHashes::new(&["ab", "c"]);
        let b = WordHashes::new(&["a", "bc"]);
        assert_eq!(a.ngram(0, 2, None), b.ngram(0, 2, None));
        assert_ne!(a.ngram(0, 2, Some(b' ')), b.ngram(0, 2, Some(b' ')));
        let c = WordHashes::new(&["x", "ab", "c"]);
        assert_eq!(c.ngram(1, 2, None), a.ngram(0, 2, None));
        assert_ne!(c.ngram(0, 2, None), c.ngram(1, 2, None));
    }

    #[test]
    fn newline_run_split_matches_python() {
        assert_eq!(split_newline_runs("a\n\nb\n\n\nc", 2), vec!["a", "b", "c"]);
        assert_eq!(split_newline_runs("a\nb", 2), vec!["a\nb"]);
        assert_eq!(split_newline_runs("a\n\nb\n", 1), vec!["a", "b", ""]);
    }
}

//! C4 line and document rules (datatrove `C4QualityFilter`, after tensorflow_datasets `c4_utils`).

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{FilterOutcome, TextFilter, splitlines};

static CITATION: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern
    Regex::new(r"\[\d*]|\[edit]|\[citation needed]").unwrap()
});

const END_PUNCTUATION: [char; 5] = ['.', '?', '!', '"', '\''];
const POLICY_SUBSTRINGS: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// C4 thresholds (datatrove defaults). Integer thresholds of 0 disable their rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct C4Config {
    /// Apply the filter. Off by default: it rewrites documents (drops lines) and removes any page
    /// with a `{`, which suits web text more than technical material.
    pub enabled: bool,
    /// Remove Wikipedia-style citations `[1]`, `[edit]`, `[citation needed]`.
    pub remove_citations: bool,
    /// Drop lines not ending in terminal punctuation (or ending in `...`). FineWeb turned this off.
    pub filter_no_terminal_punct: bool,
    /// Drop documents with fewer sentences left (5).
    pub min_num_sentences: usize,
    /// Drop lines with fewer words (3).
    pub min_words_per_line: usize,
    /// Drop lines with a longer word (1000 characters).
    pub max_word_length: usize,
    /// Drop documents containing "lorem ipsum".
    pub filter_lorem_ipsum: bool,
    /// Drop lines containing "javascript".
    pub filter_javascript: bool,
    /// Drop documents containing `{`.
    pub filter_curly_bracket: bool,
    /// Drop lines containing cookie/terms-of-use phrases.
    pub filter_policy: bool,
}

impl Default for C4Config {
    fn default() -> Self {
        Self {
            enabled: false,
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: 5,
            min_words_per_line: 3,
            max_word_length: 1000,
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

/// The C4 quality filter. Keeps only the lines that pass, so it can modify the text.
#[derive(Debug, Clone)]
pub struct C4Filter {
    cfg: C4Config,
}

impl C4Filter {
    /// A filter with these settings.
    pub fn new(cfg: C4Config) -> Self {
        Self { cfg }
    }
}

/// Sentences in a line: terminal punctuation followed by whitespace or the end, at least 1.
/// (A rule-based stand-in for NLTK's punkt `sent_tokenize`.)
pub(crate) fn count_sentences(line: &str) -> usize {
    let chars: Vec<char> = line.chars().collect();
    let mut n = 0;
    let mut i = 0;
    while i < chars.len() {
        if matches!(chars[i], '.' | '!' | '?') {
            let mut j = i;
            while j < chars.len() && matches!(chars[j], '.' | '!' | '?' | '"' | '\'' | ')' | ']') {
                j += 1;
            }
            if j == chars.len() || chars[j].is_whitespace() {
                n += 1;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    n.max(usize::from(!line.trim().is_empty()))
}

impl TextFilter for C4Filter {
    fn name(&self) -> &'static str {
        "c4"
    }

    fn apply(&self, text: &str) -> FilterOutcome {
        let c = &self.cfg;
        let mut kept: Vec<String> = Vec::new();
        let mut sentences = 0usize;
        for raw in splitlines(text) {
            let line = raw.trim();
            let words: Vec<&str> = line.split_whitespace().collect();
            if c.max_word_length > 0 && words.iter().any(|w| w.chars().count() > c.max_word_length)
            {
                continue;
            }
            let line = if c.remove_citations {
                CITATION.replace_all(line, "").into_owned()
            } else {
                line.to_owned()
            };
            if c.filter_no_terminal_punct
                && (!line.ends_with(END_PUNCTUATION) || line.ends_with("..."))
            {
                continue;
            }
            if words.len() < c.min_words_per_line {
                continue;
            }
            let lower = line.to_lowercase();
            if c.filter_lorem_ipsum && lower.contains("lorem ipsum") {
                return FilterOutcome::drop("lorem_ipsum");
            }
            if c.filter_javascript && lower.contains("javascript") {
                continue;
            }
            if c.filter_curly_bracket && line.contains('{') {
                return FilterOutcome::drop("curly_bracket");
            }
            if c.filter_policy && POLICY_SUBSTRINGS.iter().any(|p| lower.contains(p)) {
                continue;
            }
            sentences += count_sentences(&line);
            kept.push(line);
        }
        if sentences < c.min_num_sentences {
            return FilterOutcome::drop("too_few_sentences");
        }
        let new = kept.join("\n").trim().to_owned();
        if new == text {
            FilterOutcome::Keep
        } else {
            FilterOutcome::Modified(new)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c4() -> C4Filter {
        C4Filter::new(C4Config {
            enabled: true,
            ..C4Config::default()
        })
    }

    #[test]
    fn sentence_counting() {
        assert_eq!(count_sentences("One two three. Four five six! Seven?"), 3);
        assert_eq!(count_sentences("Version 3.14 is out."), 1);
        assert_eq!(count_sentences("no punctuation"), 1);
        assert_eq!(count_sentences(""), 0);
    }

    #[test]
    fn min_sentences_bound() {
        let five = "This is one. This is two.\nThis is three.\nThis is four. This is five.";
        assert_eq!(c4().apply(five), FilterOutcome::Keep);
        let four = "This is one. This is two.\nThis is three.\nThis is four.";
        assert_eq!(c4().apply(four), FilterOutcome::drop("too_few_sentences"));
    }

    #[test]
    fn line_rules_modify_text() {
        let text = "Menu\nThis line has no end\nThis is a fine sentence. And another one!\n\
                    Read our privacy policy here.\nEnable javascript to see this.\n\
                    Two words.\nIt ends badly...\nGood line with a citation[12] here.\n\
                    The third good line is here. The fourth one too.";
        let FilterOutcome::Modified(out) = c4().apply(text) else {
            panic!("expected modification")
        };
        assert_eq!(
            out,
            "This is a fine sentence. And another one!\nGood line with a citation here.\n\
             The third good line is here. The fourth one too."
        );
    }

    #[test]
    fn word_length_bound() {
        let ok = format!(
            "A {} word. Then more text here. And more. And more. And even more.",
            "x".repeat(1000)
        );
        assert!(matches!(c4().apply(&ok), FilterOutcome::Keep));
        let long = format!(
            "A {} word.\nThen more text here. And more. And more. And even more.",
            "x".repeat(1001)
        );
        let FilterOutcome::Drop(r) = c4().apply(&long) else {
            panic!("expected too few sentences")
        };
        assert_eq!(r, "too_few_sentences");
    }

    #[test]
    fn document_rules() {
        let lorem = "Lorem ipsum dolor sit amet. A. B. C. D. E. F.";
        assert_eq!(c4().apply(lorem), FilterOutcome::drop("lorem_ipsum"));
        let code = "Use the map {a: 1} here. One more. Two more. Three more. Four more.";
        assert_eq!(c4().apply(code), FilterOutcome::drop("curly_bracket"));
        // Curly brackets only matter on lines that survived the line rules.
        let ok = "x = {\nThis is one. This is two. This is three. This is four. This is five.";
        assert!(matches!(c4().apply(ok), FilterOutcome::Modified(_)));
        let no_punct = C4Filter::new(C4Config {
            enabled: true,
            filter_no_terminal_punct: false,
            ..C4Config::default()
        });
        assert_eq!(
            no_punct.apply("a b c\nd e f\ng h i\nj k l\nm n o"),
            FilterOutcome::Keep
        );
    }
}

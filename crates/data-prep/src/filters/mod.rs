//! Quality filters: Gopher quality and repetition, C4, FineWeb, code, and a statistical
//! garbled-text scorer.
//!
//! Thresholds and the order of checks follow datatrove's implementations (the anchors in
//! `reference/dataprep.md` §5), including which comparisons are strict. Drop reasons use
//! datatrove's names (`gopher_short_doc`, `dup_line_frac`, `top_2_gram`, `line_punct_ratio`, ...).
//! One difference is documented: word tokenization is a fast rule-based splitter ([`words`])
//! instead of NLTK/spaCy, so word counts can differ by a few percent on unusual punctuation.

mod c4;
mod fineweb;
mod gopher;
mod scorer;

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use c4::{C4Config, C4Filter};
pub use fineweb::{FineWebConfig, FineWebFilter};
pub use gopher::{
    GopherQualityConfig, GopherQualityFilter, GopherRepetitionConfig, GopherRepetitionFilter,
};
pub use scorer::{CharNgramScorer, QualityScorer, ScorerConfig, ScorerFilter};

use crate::code::{CodeFilter, CodeFilterConfig};

/// What a filter decided about one document.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterOutcome {
    /// Keep the text unchanged.
    Keep,
    /// Keep, with this new text (e.g. C4 removes lines).
    Modified(String),
    /// Remove the document, for this reason.
    Drop(Cow<'static, str>),
}

impl FilterOutcome {
    /// A drop with a static reason.
    pub fn drop(reason: &'static str) -> Self {
        Self::Drop(Cow::Borrowed(reason))
    }
}

/// A document-level filter.
pub trait TextFilter: Send + Sync {
    /// Short name (`gopher_quality`, `c4`, ...).
    fn name(&self) -> &'static str;
    /// Decide about one text.
    fn apply(&self, text: &str) -> FilterOutcome;
}

/// Names accepted in filter lists (config `filters = [...]`, CLI `--rules`).
pub const FILTER_NAMES: &[&str] = &[
    "gopher_quality",
    "gopher_repetition",
    "c4",
    "fineweb",
    "code",
    "scorer",
];

/// Thresholds of every filter. Each section can be disabled; which filters run for a source is
/// chosen by name (see [`FilterConfig::build`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Gopher quality rules.
    pub gopher_quality: GopherQualityConfig,
    /// Gopher repetition rules.
    pub gopher_repetition: GopherRepetitionConfig,
    /// C4 line and document rules.
    pub c4: C4Config,
    /// FineWeb's four rules.
    pub fineweb: FineWebConfig,
    /// Code rules.
    pub code: CodeFilterConfig,
    /// Garbled-text scorer.
    pub scorer: ScorerConfig,
}

impl FilterConfig {
    /// Read thresholds from a TOML file (the `[filters]` section of a prep config without its
    /// header); unknown keys are rejected by name.
    pub fn load_toml(path: impl AsRef<std::path::Path>) -> crate::Result<Self> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| crate::Error::io("cannot read", path, e))?;
        toml::from_str(&text).map_err(|e| crate::Error::Config(format!("{}: {e}", path.display())))
    }

    /// Build the chain of filters named in `names` (in the canonical order of [`FILTER_NAMES`]:
    /// cheap quality rules first, so a short document is reported as `gopher_short_doc` rather
    /// than as repetitive; the set of removed documents does not depend on the order), skipping
    /// sections whose `enabled` is false. Unknown names are a configuration error.
    pub fn build(&self, names: &[String]) -> crate::Result<FilterChain> {
        for n in names {
            if !FILTER_NAMES.contains(&n.as_str()) {
                return Err(crate::Error::Config(format!(
                    "unknown filter `{n}`; known filters: {}",
                    FILTER_NAMES.join(", ")
                )));
            }
        }
        let wanted = |n: &str| names.iter().any(|x| x == n);
        let mut filters: Vec<Arc<dyn TextFilter>> = Vec::new();
        if wanted("gopher_quality") && self.gopher_quality.enabled {
            filters.push(Arc::new(GopherQualityFilter::new(
                self.gopher_quality.clone(),
            )));
        }
        if wanted("gopher_repetition") && self.gopher_repetition.enabled {
            filters.push(Arc::new(GopherRepetitionFilter::new(
                self.gopher_repetition.clone(),
            )));
        }
        if wanted("c4") && self.c4.enabled {
            filters.push(Arc::new(C4Filter::new(self.c4.clone())));
        }
        if wanted("fineweb") && self.fineweb.enabled {
            filters.push(Arc::new(FineWebFilter::new(self.fineweb.clone())));
        }
        if wanted("code") && self.code.enabled {
            filters.push(Arc::new(CodeFilter::new(self.code.clone())));
        }
        if wanted("scorer") && self.scorer.enabled {
            filters.push(Arc::new(ScorerFilter::new(
                Arc::new(CharNgramScorer::english()),
                self.scorer.clone(),
            )));
        }
        Ok(FilterChain { filters })
    }
}

/// Filters applied in sequence; the first drop wins, modifications carry over.
#[derive(Clone, Default)]
pub struct FilterChain {
    filters: Vec<Arc<dyn TextFilter>>,
}

impl std::fmt::Debug for FilterChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.filters.iter().map(|x| x.name()))
            .finish()
    }
}

impl FilterChain {
    /// A chain of the given filters.
    pub fn new(filters: Vec<Arc<dyn TextFilter>>) -> Self {
        Self { filters }
    }

    /// Append a filter (e.g. a custom [`ScorerFilter`] around a model scorer).
    pub fn push(&mut self, filter: Arc<dyn TextFilter>) {
        self.filters.push(filter);
    }

    /// Names of the filters, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    /// Run every filter: `Err(reason)` when one drops the document, otherwise the final text
    /// (`None` when no filter changed it).
    pub fn apply(&self, text: &str) -> Result<Option<String>, Cow<'static, str>> {
        let mut current: Option<String> = None;
        for f in &self.filters {
            let t = current.as_deref().unwrap_or(text);
            match f.apply(t) {
                FilterOutcome::Keep => {}
                FilterOutcome::Modified(new) => current = Some(new),
                FilterOutcome::Drop(reason) => return Err(reason),
            }
        }
        Ok(current)
    }
}

/// Punctuation or symbol: neither alphanumeric nor whitespace.
pub(crate) fn is_punct(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace()
}

/// Split text into words the way NLTK's `word_tokenize` roughly does: whitespace-separated chunks,
/// with leading and trailing punctuation split off (a run of the same punctuation character,
/// like `...` or `--`, stays one token) and inner punctuation kept (`don't`, `e-mail`, `3.14`).
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for chunk in text.split_whitespace() {
        split_chunk(chunk, &mut out);
    }
    out
}

fn split_chunk<'a>(chunk: &'a str, out: &mut Vec<&'a str>) {
    // Leading punctuation.
    let mut start = 0;
    let bytes_len = chunk.len();
    let mut trailing: Vec<&'a str> = Vec::new();
    let mut end = bytes_len;
    loop {
        let rest = &chunk[start..end];
        let Some(c) = rest.chars().next() else { break };
        if !is_punct(c) {
            break;
        }
        let run = rest
            .chars()
            .take_while(|&x| x == c)
            .map(char::len_utf8)
            .sum::<usize>();
        out.push(&rest[..run]);
        start += run;
    }
    // Trailing punctuation (collected in reverse).
    loop {
        let rest = &chunk[start..end];
        let Some(c) = rest.chars().next_back() else {
            break;
        };
        if !is_punct(c) {
            break;
        }
        let run = rest
            .chars()
            .rev()
            .take_while(|&x| x == c)
            .map(char::len_utf8)
            .sum::<usize>();
        trailing.push(&rest[rest.len() - run..]);
        end -= run;
    }
    if start < end {
        out.push(&chunk[start..end]);
    }
    out.extend(trailing.into_iter().rev());
}

/// Python's `str.splitlines()` (without keepends): splits on `\n`, `\r`, `\r\n`, `\v`, `\f`,
/// `\x1c`-`\x1e`, `\x85`, U+2028, U+2029; no empty last element after a final terminator.
pub(crate) fn splitlines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            out.push(&text[start..i]);
            let mut next = i + c.len_utf8();
            if c == '\r'
                && let Some(&(j, '\n')) = iter.peek()
            {
                iter.next();
                next = j + 1;
            }
            start = next;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_splitting() {
        assert_eq!(
            words("Hello, world... (don't) e-mail 3.14!"),
            vec![
                "Hello", ",", "world", "...", "(", "don't", ")", "e-mail", "3.14", "!"
            ]
        );
        assert_eq!(words("  # ## …"), vec!["#", "##", "…"]);
        assert_eq!(words(""), Vec::<&str>::new());
    }

    #[test]
    fn python_splitlines() {
        assert_eq!(splitlines("a\nb\r\nc\rd\n"), vec!["a", "b", "c", "d"]);
        assert_eq!(splitlines("a\n\nb"), vec!["a", "", "b"]);
        assert_eq!(splitlines(""), Vec::<&str>::new());
        assert_eq!(splitlines("x\u{2028}y"), vec!["x", "y"]);
    }

    #[test]
    fn unknown_filter_name_is_rejected() {
        let err = FilterConfig::default()
            .build(&["gopher".into()])
            .expect_err("unknown");
        assert!(err.to_string().contains("gopher_quality"), "{err}");
        let chain = FilterConfig::default()
            .build(&["fineweb".into(), "gopher_quality".into(), "c4".into()])
            .expect("ok");
        // c4 is disabled by default; the order is canonical, not the order given.
        assert_eq!(chain.names(), vec!["gopher_quality", "fineweb"]);
    }
}

//! Compliance: blocklists of words/phrases and of URL domains, with thresholds, and a decision with
//! a reason per document.

use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Blocklist settings. With empty lists nothing is removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplianceConfig {
    /// Apply the checks.
    pub enabled: bool,
    /// Words or phrases (case-insensitive, whole words; spaces match any whitespace).
    pub blocklist: Vec<String>,
    /// A file with one word/phrase per line (`#` comments), added to `blocklist`.
    pub blocklist_file: Option<PathBuf>,
    /// Keep documents with at most this many blocklist hits (0: any hit removes the document).
    pub max_blocklist_hits: usize,
    /// Also remove documents whose hits per word exceed this fraction (0 disables).
    pub max_blocklist_ratio: f64,
    /// Domains whose URLs are not allowed (subdomains included).
    pub blocked_domains: Vec<String>,
    /// A file with one domain per line, added to `blocked_domains`.
    pub blocked_domains_file: Option<PathBuf>,
    /// Keep documents with at most this many URLs on blocked domains (0: any removes it).
    pub max_blocked_urls: usize,
    /// Metadata field holding the document's own URL, checked against `blocked_domains`.
    pub url_field: String,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            blocklist: Vec::new(),
            blocklist_file: None,
            max_blocklist_hits: 0,
            max_blocklist_ratio: 0.0,
            blocked_domains: Vec::new(),
            blocked_domains_file: None,
            max_blocked_urls: 0,
            url_field: "url".into(),
        }
    }
}

/// Why a document was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceViolation {
    /// Reason key for reports: `compliance_blocklist` or `compliance_blocked_domain`.
    pub reason: &'static str,
    /// Details: the matched terms or domains and counts.
    pub detail: String,
}

static URL_HOST: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // constant pattern
    Regex::new(r"(?i)\b(?:https?|ftp)://(?:[^\s/@]+@)?([a-z0-9.-]+)").unwrap()
});

/// Compiled compliance checks.
#[derive(Debug, Clone)]
pub struct ComplianceChecker {
    cfg: ComplianceConfig,
    words: Option<Regex>,
    domains: Vec<String>,
}

fn read_list(path: &PathBuf) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read list", path, e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

impl ComplianceChecker {
    /// Compile the lists (reading the list files).
    pub fn new(cfg: &ComplianceConfig) -> Result<Self> {
        let mut words = cfg.blocklist.clone();
        if let Some(p) = &cfg.blocklist_file {
            words.extend(read_list(p)?);
        }
        words.retain(|w| !w.trim().is_empty());
        words.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        words.dedup();
        let words = if words.is_empty() {
            None
        } else {
            let alts: Vec<String> = words
                .iter()
                .map(|w| {
                    w.split_whitespace()
                        .map(regex::escape)
                        .collect::<Vec<_>>()
                        .join(r"\s+")
                })
                .collect();
            Some(
                Regex::new(&format!(r"(?i)\b(?:{})\b", alts.join("|")))
                    .map_err(|e| Error::Config(format!("compliance.blocklist: {e}")))?,
            )
        };
        let mut domains: Vec<String> = cfg
            .blocked_domains
            .iter()
            .map(|d| d.trim().trim_start_matches('.').to_lowercase())
            .collect();
        if let Some(p) = &cfg.blocked_domains_file {
            domains.extend(
                read_list(p)?
                    .into_iter()
                    .map(|d| d.trim_start_matches('.').to_lowercase()),
            );
        }
        domains.retain(|d| !d.is_empty());
        domains.sort();
        domains.dedup();
        Ok(Self {
            cfg: cfg.clone(),
            words,
            domains,
        })
    }

    /// True when there is nothing to check.
    pub fn is_noop(&self) -> bool {
        !self.cfg.enabled || (self.words.is_none() && self.domains.is_empty())
    }

    fn blocked_domain(&self, host: &str) -> Option<&str> {
        let host = host.trim_end_matches('.').to_lowercase();
        self.domains
            .iter()
            .find(|d| {
                host == **d
                    || (host.ends_with(d.as_str()) && host[..host.len() - d.len()].ends_with('.'))
            })
            .map(String::as_str)
    }

    /// Check one document (text plus metadata for the URL field).
    pub fn check(&self, text: &str, metadata: &Map<String, Value>) -> Option<ComplianceViolation> {
        if self.is_noop() {
            return None;
        }
        if !self.domains.is_empty() {
            let mut hits: Vec<String> = Vec::new();
            if let Some(Value::String(url)) = metadata.get(&self.cfg.url_field)
                && let Some(c) = URL_HOST.captures(url)
                && let Some(d) = c.get(1).and_then(|h| self.blocked_domain(h.as_str()))
            {
                return Some(ComplianceViolation {
                    reason: "compliance_blocked_domain",
                    detail: format!("document URL is on blocked domain {d}"),
                });
            }
            for c in URL_HOST.captures_iter(text) {
                if let Some(d) = c.get(1).and_then(|h| self.blocked_domain(h.as_str())) {
                    hits.push(d.to_owned());
                }
            }
            if hits.len() > self.cfg.max_blocked_urls {
                hits.sort();
                hits.dedup();
                return Some(ComplianceViolation {
                    reason: "compliance_blocked_domain",
                    detail: format!("links to blocked domain(s) {}", hits.join(", ")),
                });
            }
        }
        if let Some(re) = &self.words {
            let mut terms: Vec<String> = Vec::new();
            let mut n = 0usize;
            for m in re.find_iter(text) {
                n += 1;
                if terms.len() < 5 {
                    terms.push(m.as_str().to_lowercase());
                }
            }
            let ratio_hit = self.cfg.max_blocklist_ratio > 0.0 && {
                let words = text.split_whitespace().count().max(1);
                n as f64 / words as f64 > self.cfg.max_blocklist_ratio
            };
            if n > self.cfg.max_blocklist_hits || ratio_hit {
                terms.sort();
                terms.dedup();
                return Some(ComplianceViolation {
                    reason: "compliance_blocklist",
                    detail: format!("{n} blocklist hit(s): {}", terms.join(", ")),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocklist_threshold_and_reason() {
        let cfg = ComplianceConfig {
            blocklist: vec!["forbidden".into(), "secret project".into()],
            max_blocklist_hits: 1,
            ..ComplianceConfig::default()
        };
        let c = ComplianceChecker::new(&cfg).expect("checker");
        let meta = Map::new();
        assert_eq!(
            c.check("This is FORBIDDEN once.", &meta),
            None,
            "one hit is within the threshold"
        );
        let v = c
            .check("Forbidden: the Secret\n Project is forbidden.", &meta)
            .expect("violation");
        assert_eq!(v.reason, "compliance_blocklist");
        assert_eq!(v.detail, "3 blocklist hit(s): forbidden, secret\n project");
        assert_eq!(c.check("unforbiddenness is not a whole word", &meta), None);
    }

    #[test]
    fn blocked_domains_in_text_and_metadata() {
        let cfg = ComplianceConfig {
            blocked_domains: vec!["bad.example".into()],
            ..ComplianceConfig::default()
        };
        let c = ComplianceChecker::new(&cfg).expect("checker");
        let meta = Map::new();
        assert_eq!(
            c.check("see https://good.example/x and notbad.example", &meta),
            None
        );
        let v = c
            .check("see https://cdn.bad.example/x", &meta)
            .expect("violation");
        assert_eq!(
            (v.reason, v.detail.as_str()),
            (
                "compliance_blocked_domain",
                "links to blocked domain(s) bad.example"
            )
        );
        assert!(
            c.check("http://notbad.example/", &meta).is_none(),
            "suffix must be a subdomain boundary"
        );
        let mut meta = Map::new();
        meta.insert(
            "url".into(),
            Value::String("https://BAD.example/page".into()),
        );
        assert!(c.check("clean text", &meta).is_some());
        let ratio = ComplianceChecker::new(&ComplianceConfig {
            blocklist: vec!["spam".into()],
            max_blocklist_hits: 100,
            max_blocklist_ratio: 0.2,
            ..ComplianceConfig::default()
        })
        .expect("checker");
        assert!(
            ratio.check("spam a b c d", &Map::new()).is_none(),
            "1/5 = 0.2 is within"
        );
        assert!(ratio.check("spam spam a b c d", &Map::new()).is_some());
    }
}

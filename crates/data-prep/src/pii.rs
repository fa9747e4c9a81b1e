//! PII and secret anonymization without a model: typed placeholders and per-type counts.
//!
//! Detectors (regular expressions plus validation, since the `regex` crate has no look-around):
//!
//! | kind | placeholder | how |
//! | --- | --- | --- |
//! | `private_key` | `<SECRET>` | PEM `-----BEGIN ... PRIVATE KEY-----` blocks |
//! | `url_credentials` | `<CREDENTIALS>` | `scheme://user:password@host` (only `user:password` is replaced) |
//! | `secret_key` | `<SECRET>` | AWS access key ids, GitHub/GitLab/npm tokens, Slack tokens and webhooks, Stripe, Google API keys, `sk-` keys, JWTs |
//! | `password` | `<SECRET>` | the value of `password=`/`secret:`/`api_key =`/... assignments (literal values only, not variables) |
//! | `email` | `<EMAIL>` | address syntax; `git@host` and `name@2x.png`-style file names excluded |
//! | `iban` | `<IBAN>` | country length + ISO 7064 mod-97 checksum |
//! | `credit_card` | `<CREDIT_CARD>` | 13-19 digits, issuer prefix and Luhn checksum |
//! | `ip_address` | `<IP_ADDRESS>` | IPv4/IPv6 parsed by `std::net`; loopback, unspecified, broadcast, netmasks and version-number contexts excluded |
//! | `phone` | `<PHONE>` | `+CC ...` international numbers (8-15 digits), `(555) 123-4567`, `555-123-4567`, French/UK-style national formats |
//! | `high_entropy` | `<SECRET>` | runs of 24+ base64-alphabet characters mixing digits and letters whose Shannon entropy is close to that of random text; hex digests, UUIDs and `sha512-...` integrity strings excluded |
//! | `name` | `<NAME>` | whole-word matches from a user-supplied list |
//!
//! Overlaps are resolved by the order of the table (a private key wins over the high-entropy
//! lines inside it).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A type of personal or secret data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// PEM private-key block.
    PrivateKey,
    /// `user:password` in a URL.
    UrlCredentials,
    /// A token in a known provider format.
    SecretKey,
    /// The value of a password/secret assignment.
    Password,
    /// Email address.
    Email,
    /// International bank account number.
    Iban,
    /// Payment card number.
    CreditCard,
    /// IPv4 or IPv6 address.
    IpAddress,
    /// Phone number.
    Phone,
    /// High-entropy token (likely a key or password).
    HighEntropy,
    /// A name from the user's list.
    Name,
}

impl PiiKind {
    /// All kinds, in detection priority order.
    pub const ALL: [PiiKind; 11] = [
        Self::PrivateKey,
        Self::UrlCredentials,
        Self::SecretKey,
        Self::Password,
        Self::Email,
        Self::Iban,
        Self::CreditCard,
        Self::IpAddress,
        Self::Phone,
        Self::HighEntropy,
        Self::Name,
    ];

    /// The placeholder that replaces a match.
    pub fn placeholder(self) -> &'static str {
        match self {
            Self::PrivateKey | Self::SecretKey | Self::Password | Self::HighEntropy => "<SECRET>",
            Self::UrlCredentials => "<CREDENTIALS>",
            Self::Email => "<EMAIL>",
            Self::Iban => "<IBAN>",
            Self::CreditCard => "<CREDIT_CARD>",
            Self::IpAddress => "<IP_ADDRESS>",
            Self::Phone => "<PHONE>",
            Self::Name => "<NAME>",
        }
    }

    /// snake_case name used in reports and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrivateKey => "private_key",
            Self::UrlCredentials => "url_credentials",
            Self::SecretKey => "secret_key",
            Self::Password => "password",
            Self::Email => "email",
            Self::Iban => "iban",
            Self::CreditCard => "credit_card",
            Self::IpAddress => "ip_address",
            Self::Phone => "phone",
            Self::HighEntropy => "high_entropy",
            Self::Name => "name",
        }
    }
}

/// Anonymization settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PiiConfig {
    /// Run anonymization.
    pub enabled: bool,
    /// Kinds to detect (default: all; `name` only does something with a name list).
    pub kinds: Vec<PiiKind>,
    /// Names to replace by `<NAME>` (whole words; multi-word names allowed).
    pub names: Vec<String>,
    /// A file with one name per line, added to `names`.
    pub names_file: Option<PathBuf>,
    /// Match names case-sensitively (default true, so "Will" the name is not "will" the verb).
    pub names_case_sensitive: bool,
    /// Minimum length of a high-entropy token (24).
    pub entropy_min_len: usize,
    /// Also replace private-range IPv4 addresses (10/8, 172.16/12, 192.168/16); default true,
    /// since internal addresses describe infrastructure.
    pub replace_private_ips: bool,
}

impl Default for PiiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            kinds: PiiKind::ALL.to_vec(),
            names: Vec::new(),
            names_file: None,
            names_case_sensitive: true,
            entropy_min_len: 24,
            replace_private_ips: true,
        }
    }
}

/// Counts of replacements per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiCounts(pub BTreeMap<PiiKind, u64>);

impl PiiCounts {
    /// Add another set of counts.
    pub fn merge(&mut self, other: &PiiCounts) {
        for (k, v) in &other.0 {
            *self.0.entry(*k).or_default() += v;
        }
    }

    /// Total replacements.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Count of one kind.
    pub fn get(&self, kind: PiiKind) -> u64 {
        self.0.get(&kind).copied().unwrap_or(0)
    }
}

/// One detected span (byte offsets into the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiiMatch {
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// What it is.
    pub kind: PiiKind,
}

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| {
            #[allow(clippy::unwrap_used)] // constant pattern, covered by tests
            Regex::new($pat).unwrap()
        });
    };
}

re!(
    PRIVATE_KEY,
    r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s:,-]*)"
);
re!(
    URL_CREDS,
    r"\b[a-zA-Z][a-zA-Z0-9+.-]*://([^\s:/?#@]+:[^\s/?#@]+)@"
);
re!(
    SECRET_KEY,
    r"\b(?:(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}|(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}|glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}|xox[abposr]-[A-Za-z0-9-]{10,250}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{35}|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})|https://hooks\.slack\.com/services/[A-Za-z0-9_/]+"
);
re!(
    PASSWORD,
    r#"(?i)\b[a-z0-9_.-]*?(?:password|passwd|pwd|passphrase|secret|secret_?key|api_?key|apikey|access_?key|access_?token|auth_?token|api_?token|refresh_?token|client_?secret|private_?key)["']?\s*(?::=|=>|[:=])\s*(?:"([^"\n]{1,200})"|'([^'\n]{1,200})'|([^\s"',;)\]}]{1,200}))"#
);
re!(
    EMAIL,
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"
);
re!(
    IBAN,
    r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"
);
re!(CARD, r"\b\d(?:[ -]?\d){12,18}\b");
re!(
    IPV4,
    r"\b(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\b"
);
re!(IPV6, r"(?i)(?:[0-9a-f]{1,4}|:)(?::[0-9a-f]{0,4}){2,7}");
re!(
    PHONE,
    r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}|\(\d{3}\) ?\d{3}[ .-]\d{4}|\b\d{3}([.-])\d{3}[.-]\d{4}|\b0\d(?:[ .]\d{2}){4}|\b0\d{2,4} \d{3,4} ?\d{3,4})"
);
re!(ENTROPY, r"[A-Za-z0-9+/_=-]{20,}");
re!(
    UUID,
    r"(?i)^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
);

/// Replaces PII and secrets in text.
#[derive(Debug, Clone)]
pub struct Anonymizer {
    cfg: PiiConfig,
    names: Option<Regex>,
}

impl Anonymizer {
    /// Build an anonymizer (reads `names_file` if set).
    pub fn new(cfg: &PiiConfig) -> Result<Self> {
        let mut names: Vec<String> = cfg
            .names
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        if let Some(path) = &cfg.names_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::io("cannot read names file", path, e))?;
            names.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        names.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        names.dedup();
        let names = if names.is_empty() || !cfg.kinds.contains(&PiiKind::Name) {
            None
        } else {
            let alt: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
            let flags = if cfg.names_case_sensitive { "" } else { "(?i)" };
            Some(
                Regex::new(&format!(r"{flags}\b(?:{})\b", alt.join("|")))
                    .map_err(|e| Error::Config(format!("pii.names: {e}")))?,
            )
        };
        Ok(Self {
            cfg: cfg.clone(),
            names,
        })
    }

    fn wants(&self, kind: PiiKind) -> bool {
        self.cfg.kinds.contains(&kind)
    }

    /// Every detection, overlaps resolved, sorted by position.
    pub fn detect(&self, text: &str) -> Vec<PiiMatch> {
        let mut found: Vec<PiiMatch> = Vec::new();
        let mut push =
            |start: usize, end: usize, kind: PiiKind| found.push(PiiMatch { start, end, kind });
        let bytes = text.as_bytes();
        if self.wants(PiiKind::PrivateKey) && text.contains("PRIVATE KEY") {
            for m in PRIVATE_KEY.find_iter(text) {
                push(m.start(), m.end(), PiiKind::PrivateKey);
            }
        }
        if self.wants(PiiKind::UrlCredentials) && text.contains("://") {
            for c in URL_CREDS.captures_iter(text) {
                if let Some(g) = c.get(1) {
                    push(g.start(), g.end(), PiiKind::UrlCredentials);
                }
            }
        }
        if self.wants(PiiKind::SecretKey) {
            for m in SECRET_KEY.find_iter(text) {
                push(m.start(), m.end(), PiiKind::SecretKey);
            }
        }
        if self.wants(PiiKind::Password) {
            for c in PASSWORD.captures_iter(text) {
                let (g, quoted) = match (c.get(1), c.get(2), c.get(3)) {
                    (Some(g), _, _) | (_, Some(g), _) => (g, true),
                    (_, _, Some(g)) => (g, false),
                    _ => continue,
                };
                if is_secret_value(g.as_str(), quoted) {
                    push(g.start(), g.end(), PiiKind::Password);
                }
            }
        }
        if self.wants(PiiKind::Email) && text.contains('@') {
            for m in EMAIL.find_iter(text) {
                if is_email(m.as_str())
                    && !prev_is(bytes, m.start(), |b| b.is_ascii_alphanumeric() || b == b'@')
                {
                    push(m.start(), m.end(), PiiKind::Email);
                }
            }
        }
        if self.wants(PiiKind::Iban) {
            for m in IBAN.find_iter(text) {
                if is_iban(m.as_str()) {
                    push(m.start(), m.end(), PiiKind::Iban);
                }
            }
        }
        if self.wants(PiiKind::CreditCard) {
            for m in CARD.find_iter(text) {
                if is_card(m.as_str()) && !touches_number(bytes, m.start(), m.end()) {
                    push(m.start(), m.end(), PiiKind::CreditCard);
                }
            }
        }
        if self.wants(PiiKind::IpAddress) {
            for m in IPV4.find_iter(text) {
                if !touches_number(bytes, m.start(), m.end())
                    && !version_context(text, m.start())
                    && is_reportable_ipv4(m.as_str(), self.cfg.replace_private_ips)
                {
                    push(m.start(), m.end(), PiiKind::IpAddress);
                }
            }
            if text.contains(':') {
                for m in IPV6.find_iter(text) {
                    let s = m.as_str();
                    let ok_edges =
                        !prev_is(bytes, m.start(), |b| {
                            b.is_ascii_alphanumeric() || b == b':' || b == b'_'
                        }) && !next_is(bytes, m.end(), |b| b.is_ascii_alphanumeric() || b == b'_');
                    if ok_edges && is_reportable_ipv6(s) {
                        push(m.start(), m.end(), PiiKind::IpAddress);
                    }
                }
            }
        }
        if self.wants(PiiKind::Phone) {
            for m in PHONE.find_iter(text) {
                if is_phone(m.as_str())
                    && !touches_number(bytes, m.start(), m.end())
                    && !prev_is(bytes, m.start(), |b| b.is_ascii_alphabetic())
                {
                    push(m.start(), m.end(), PiiKind::Phone);
                }
            }
        }
        if self.wants(PiiKind::HighEntropy) {
            for m in ENTROPY.find_iter(text) {
                if is_high_entropy_secret(text, m.start(), m.as_str(), self.cfg.entropy_min_len) {
                    push(m.start(), m.end(), PiiKind::HighEntropy);
                }
            }
        }
        if let Some(re) = &self.names {
            for m in re.find_iter(text) {
                push(m.start(), m.end(), PiiKind::Name);
            }
        }
        resolve_overlaps(found)
    }

    /// Replace every detection by its placeholder; returns the new text and counts.
    pub fn anonymize(&self, text: &str) -> (String, PiiCounts) {
        let matches = self.detect(text);
        let mut counts = PiiCounts::default();
        if matches.is_empty() {
            return (text.to_owned(), counts);
        }
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        for m in matches {
            out.push_str(&text[pos..m.start]);
            out.push_str(m.kind.placeholder());
            *counts.0.entry(m.kind).or_default() += 1;
            pos = m.end;
        }
        out.push_str(&text[pos..]);
        (out, counts)
    }
}

/// Keep the highest-priority (earliest kind in [`PiiKind::ALL`]), then earliest, then longest
/// match among overlapping ones.
fn resolve_overlaps(mut found: Vec<PiiMatch>) -> Vec<PiiMatch> {
    found.sort_by(|a, b| {
        a.kind
            .cmp(&b.kind)
            .then(a.start.cmp(&b.start))
            .then(b.end.cmp(&a.end))
    });
    let mut kept: Vec<PiiMatch> = Vec::new(); // sorted by start
    for m in found {
        let idx = kept.partition_point(|k| k.start < m.start);
        let overlaps_prev = idx > 0 && kept[idx - 1].end > m.start;
        let overlaps_next = idx < kept.len() && kept[idx].start < m.end;
        if !overlaps_prev && !overlaps_next && m.start < m.end {
            kept.insert(idx, m);
        }
    }
    kept
}

fn prev_is(bytes: &[u8], start: usize, f: impl Fn(u8) -> bool) -> bool {
    start > 0 && f(bytes[start - 1])
}

fn next_is(bytes: &[u8], end: usize, f: impl Fn(u8) -> bool) -> bool {
    end < bytes.len() && f(bytes[end])
}

/// True when the match continues a longer dotted/dashed number (`1.2.3.4.5`, `x-1234`).
fn touches_number(bytes: &[u8], start: usize, end: usize) -> bool {
    let before =
        start >= 2 && matches!(bytes[start - 1], b'.' | b'-') && bytes[start - 2].is_ascii_digit();
    let after = end + 1 < bytes.len()
        && matches!(bytes[end], b'.' | b'-')
        && bytes[end + 1].is_ascii_digit();
    before
        || after
        || prev_is(bytes, start, |b| b.is_ascii_digit())
        || next_is(bytes, end, |b| b.is_ascii_digit())
}

/// "version 1.0.0.0", "v=1.2.3.4", `AssemblyVersion("1.0.0.0")`: the 24 bytes before the match
/// mention a version.
fn version_context(text: &str, start: usize) -> bool {
    let mut from = start.saturating_sub(24);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let before = text[from..start].to_ascii_lowercase();
    let t = before.trim_end_matches([' ', '=', ':', '"', '\'', '(']);
    let lone_v = t.ends_with('v') && !t[..t.len() - 1].ends_with(|c: char| c.is_ascii_alphabetic());
    before.contains("version") || before.contains("release") || lone_v
}

const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "js", "ts", "css", "py", "rs", "go",
    "java", "json", "yaml", "yml", "toml", "md", "txt", "html", "xml", "zip", "gz", "tar", "pdf",
    "so", "dll", "exe", "lock",
];

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty()
        || local == "git"
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return false;
    }
    let tld = domain.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    !FILE_EXTENSIONS.contains(&tld.as_str())
}

/// IBAN lengths by country (ISO 13616 registry, common countries).
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "CR" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" => 22,
        "AE" | "GI" | "IL" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        _ => return None,
    })
}

/// Country length (when known, else 15-34) and mod-97 == 1.
pub fn is_iban(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let len_ok = match iban_length(&compact[..2]) {
        Some(n) => compact.len() == n,
        None => (15..=34).contains(&compact.len()),
    };
    if !len_ok {
        return false;
    }
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let mut rem: u32 = 0;
    for c in rearranged {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Luhn checksum over ASCII digits.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        if !c.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

fn is_card(s: &str) -> bool {
    // Separators, if any, must be one kind.
    let has_space = s.contains(' ');
    let has_dash = s.contains('-');
    if has_space && has_dash {
        return false;
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if !(13..=19).contains(&digits.len()) || !luhn_valid(&digits) {
        return false;
    }
    let p2: u32 = digits[..2].parse().unwrap_or(0);
    let p4: u32 = digits[..4].parse().unwrap_or(0);
    let p3 = p4 / 10;
    digits.starts_with('4')
        || (51..=55).contains(&p2)
        || (2221..=2720).contains(&p4)
        || p2 == 34
        || p2 == 37
        || p4 == 6011
        || p2 == 65
        || (644..=649).contains(&p3)
        || (3528..=3589).contains(&p4)
        || (300..=305).contains(&p3)
        || p2 == 36
        || p2 == 38
        || p2 == 62
}

fn is_reportable_ipv4(s: &str, private_too: bool) -> bool {
    let Ok(ip) = Ipv4Addr::from_str(s) else {
        return false;
    };
    let o = ip.octets();
    if ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || o[0] == 0
        || o[0] >= 224
        || o[0] == 255
    {
        return false;
    }
    // Netmasks like 255.255.255.0 are caught above; 0.x too.
    private_too || !ip.is_private()
}

fn is_reportable_ipv6(s: &str) -> bool {
    let groups = s.split(':').filter(|g| !g.is_empty()).count();
    if groups < 3 || !s.bytes().any(|b| b.is_ascii_digit()) {
        return false;
    }
    match Ipv6Addr::from_str(s) {
        Ok(ip) => !ip.is_loopback() && !ip.is_unspecified(),
        Err(_) => false,
    }
}

fn is_phone(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    if s.starts_with('+') {
        return (8..=15).contains(&digits);
    }
    (9..=12).contains(&digits)
}

fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0u32; 128];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[(b & 0x7f) as usize] += 1;
        n += 1;
    }
    let n = f64::from(n);
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Entropy a random base62 string of this length usually exceeds (about its 5th percentile),
/// interpolated from simulation: identifiers and words score well below it.
fn entropy_threshold(len: usize) -> f64 {
    const TABLE: [(f64, f64); 7] = [
        (20.0, 3.6),
        (24.0, 3.85),
        (32.0, 4.2),
        (40.0, 4.4),
        (48.0, 4.55),
        (64.0, 4.8),
        (128.0, 5.2),
    ];
    let l = len as f64;
    if l <= TABLE[0].0 {
        return TABLE[0].1;
    }
    for w in TABLE.windows(2) {
        let ((l0, t0), (l1, t1)) = (w[0], w[1]);
        if l <= l1 {
            return t0 + (t1 - t0) * (l - l0) / (l1 - l0);
        }
    }
    TABLE[TABLE.len() - 1].1
}

fn is_high_entropy_secret(text: &str, start: usize, tok: &str, min_len: usize) -> bool {
    let tok = tok.trim_end_matches('=');
    if tok.len() < min_len {
        return false;
    }
    let lower = tok.to_ascii_lowercase();
    if ["sha1-", "sha256-", "sha384-", "sha512-", "md5-"]
        .iter()
        .any(|p| lower.starts_with(p))
        || UUID.is_match(tok)
    {
        return false;
    }
    if tok.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false; // hex digests (commit ids, checksums) are not secrets on their own
    }
    let has_digit = tok.bytes().any(|b| b.is_ascii_digit());
    let has_upper = tok.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = tok.bytes().any(|b| b.is_ascii_lowercase());
    if !(has_digit && has_upper && has_lower) {
        return false;
    }
    // Hash/checksum context on the same line before the token.
    let line_start = text[..start].rfind('\n').map_or(0, |p| p + 1);
    let mut from = line_start.max(start.saturating_sub(40));
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let ctx = text[from..start].to_ascii_lowercase();
    if ["integrity", "checksum", "hash", "sha", "digest", "commit"]
        .iter()
        .any(|w| ctx.contains(w))
    {
        return false;
    }
    shannon_entropy(tok) >= entropy_threshold(tok.len())
}

/// A password-like value that is a literal, not code (a variable, call, template or placeholder).
fn is_secret_value(v: &str, quoted: bool) -> bool {
    let v = v.trim();
    if v.len() < 3 || v.starts_with(['$', '{', '<', '%', '[', '@']) || v.contains("{{") {
        return false;
    }
    if v.chars().all(|c| c == v.chars().next().unwrap_or('*')) {
        return false; // "****", "xxxx"
    }
    if quoted {
        return !v.contains(char::is_whitespace);
    }
    if v.len() < 4 || v.contains(['(', '[', '{']) {
        return false;
    }
    let ident = |s: &str| {
        let mut cs = s.chars();
        cs.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    // A bare word without digits (`password: str`, `secret = get_secret`, `pwd=None`) or an
    // attribute path (`self.password`, `os.environ`) is code, not a value.
    if ident(v) && !v.bytes().any(|b| b.is_ascii_digit()) {
        return false;
    }
    if v.contains('.') && v.split('.').all(ident) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(text: &str) -> (String, PiiCounts) {
        Anonymizer::new(&PiiConfig::default())
            .expect("anonymizer")
            .anonymize(text)
    }

    fn replaced(text: &str) -> String {
        anon(text).0
    }

    #[test]
    fn every_kind_is_replaced_and_counted() {
        let cfg = PiiConfig {
            names: vec!["Jane Doe".into(), "Okonkwo".into()],
            ..PiiConfig::default()
        };
        let a = Anonymizer::new(&cfg).expect("anonymizer");
        let text = "Contact jane.doe@example.com or +44 20 7946 0958, (555) 123-4567.\n\
                    Server 203.0.113.42 and 2001:db8:85a3::8a2e:370:7334 are down.\n\
                    Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00.\n\
                    DB: postgres://admin:s3cretPw@db.internal:5432/app\n\
                    aws_key = AKIAIOSFODNN7EXAMPLE; token ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ\n\
                    slack xoxb-1234567890-abcdefghij\n\
                    password = \"hunter2!\"\n\
                    blob 9fK2xQ7pL4vB8nZ3mW6tR1yH5cJ0dG\n\
                    -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7v\nabc+/def==\n-----END RSA PRIVATE KEY-----\n\
                    Signed, Jane Doe and Mr. Okonkwo.";
        let (out, counts) = a.anonymize(text);
        let expected = "Contact <EMAIL> or <PHONE>, <PHONE>.\n\
                        Server <IP_ADDRESS> and <IP_ADDRESS> are down.\n\
                        Card <CREDIT_CARD>, IBAN <IBAN>.\n\
                        DB: postgres://<CREDENTIALS>@db.internal:5432/app\n\
                        aws_key = <SECRET>; token <SECRET>\n\
                        slack <SECRET>\n\
                        password = \"<SECRET>\"\n\
                        blob <SECRET>\n\
                        <SECRET>\n\
                        Signed, <NAME> and Mr. <NAME>.";
        assert_eq!(out, expected);
        let get = |k| counts.get(k);
        assert_eq!(
            (
                get(PiiKind::Email),
                get(PiiKind::Phone),
                get(PiiKind::IpAddress),
                get(PiiKind::CreditCard),
                get(PiiKind::Iban)
            ),
            (1, 2, 2, 1, 1)
        );
        assert_eq!(
            (
                get(PiiKind::UrlCredentials),
                get(PiiKind::SecretKey),
                get(PiiKind::Password),
                get(PiiKind::HighEntropy)
            ),
            (1, 3, 1, 1)
        );
        assert_eq!((get(PiiKind::PrivateKey), get(PiiKind::Name)), (1, 2));
        assert_eq!(counts.total(), 16);
    }

    #[test]
    fn checksums_decide_cards_and_ibans() {
        assert!(luhn_valid("4111111111111111"));
        assert!(!luhn_valid("4111111111111112"));
        assert_eq!(
            replaced("card 4111 1111 1111 1112 here"),
            "card 4111 1111 1111 1112 here"
        );
        // Luhn-valid but no issuer prefix: an order number, not a card.
        assert!(luhn_valid("1234567812345670"));
        assert_eq!(replaced("order 1234567812345670"), "order 1234567812345670");
        assert!(is_iban("GB82 WEST 1234 5698 7654 32"));
        assert!(!is_iban("GB82 WEST 1234 5698 7654 33"));
        assert_eq!(
            replaced("IBAN GB82 WEST 1234 5698 7654 33."),
            "IBAN GB82 WEST 1234 5698 7654 33."
        );
    }

    #[test]
    fn no_false_positives_on_code_versions_dates_and_hashes() {
        let clean = [
            "let user_email = get_email(&user)?; // see config.email_address",
            "version = \"1.2.3\"\nedition = \"2021\"\nrust-version = \"1.75.0\"",
            "Upgrade to version 1.0.0.0 or AssemblyVersion(\"2.0.1.0\") and v10.2.3.4",
            "Released on 2024-01-15 at 10:30:45, build 20240115.1, ISO 8601 2024-01-15T10:30:45Z.",
            "resolved \"https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz#679591c564c3bffaae8454cf0b3df370c3d6911c\"",
            "integrity sha512-v2kDEe57lecTulaDIuNTPy3Ry4gLGJ6Z1O3vE1krgXZNrsQ+LFTGHVxVjcXPs17LhbZVGedAJv8XZ1tvj5FvSg==",
            "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed it; sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "id 123e4567-e89b-12d3-a456-426614174000 is a uuid",
            "fn getUser2FactorAuthenticationToken() -> HttpServletRequestWrapperFactory2 {}",
            "x86_64-unknown-linux-gnu aarch64-apple-darwin20.0 org/apache/commons/lang3/StringUtils",
            "password = input(\"Enter your password: \")\nself.password = password\nsecret: str = None",
            "pwd=os.getcwd() and API_KEY = os.environ.get(\"API_KEY\") and password: ${DB_PASSWORD}",
            "std::vector<int> v; a::b::c(); Foo::bar()",
            "MAC 00:1a:2b:3c:4d:5e, time 12:30:45, ratio 3:2",
            "See logo@2x.png and git@github.com:org/repo.git; npm i lodash@4.17.21",
            "OID 1.3.6.1.4.1.311 and netmask 255.255.255.0, bind 0.0.0.0:8080, localhost 127.0.0.1, ::1",
            "Call count 1234567890 was reached; total 20240115 bytes; pi 3.14159265358979",
            "bos_token = \"<s>\" eos_token = \"</s>\" pad_token = \"[PAD]\"",
        ];
        for t in clean {
            let (out, counts) = anon(t);
            assert_eq!(out, t, "false positive(s) {counts:?}");
        }
    }

    #[test]
    fn secret_assignments_in_configs() {
        assert_eq!(
            replaced("DB_PASSWORD=s3cr3t-value\nUSER=bob"),
            "DB_PASSWORD=<SECRET>\nUSER=bob"
        );
        assert_eq!(replaced("api_key: 'abc123xyz'"), "api_key: '<SECRET>'");
        assert_eq!(
            replaced("\"client_secret\": \"Zm9vYmFy\""),
            "\"client_secret\": \"<SECRET>\""
        );
        // A bare word is left alone (could be a variable); a word with digits is replaced.
        assert_eq!(
            replaced("password = passwordField"),
            "password = passwordField"
        );
        assert_eq!(replaced("Password: hunter22"), "Password: <SECRET>");
    }

    #[test]
    fn private_ips_can_be_kept() {
        let cfg = PiiConfig {
            replace_private_ips: false,
            ..PiiConfig::default()
        };
        let a = Anonymizer::new(&cfg).expect("anonymizer");
        assert_eq!(
            a.anonymize("at 192.168.1.10 and 8.8.4.4").0,
            "at 192.168.1.10 and <IP_ADDRESS>"
        );
    }

    #[test]
    fn kinds_can_be_selected() {
        let cfg = PiiConfig {
            kinds: vec![PiiKind::Email],
            ..PiiConfig::default()
        };
        let a = Anonymizer::new(&cfg).expect("anonymizer");
        assert_eq!(a.anonymize("a@b.org 203.0.113.9").0, "<EMAIL> 203.0.113.9");
    }

    #[test]
    fn entropy_threshold_separates_random_from_words() {
        assert!(shannon_entropy("aaaa") < 0.01);
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-9);
        assert!(entropy_threshold(24) > entropy_threshold(20) && entropy_threshold(200) == 5.2);
    }
}

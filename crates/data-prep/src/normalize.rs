//! Text normalization: mojibake repair, line endings, Unicode NFC, control characters, whitespace.

use serde::{Deserialize, Serialize};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Which normalizations run (all on by default except `collapse_spaces`, which would destroy code
/// indentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeConfig {
    /// Run normalization at all.
    pub enabled: bool,
    /// Repair UTF-8 text that was decoded as Windows-1252/Latin-1 (`cafÃ©` -> `café`, `â€™` -> `’`),
    /// word by word, only where the repaired bytes are valid UTF-8.
    pub mojibake: bool,
    /// `\r\n`, `\r`, U+2028/U+2029, vertical tab and form feed become `\n`.
    pub line_endings: bool,
    /// Unicode NFC.
    pub nfc: bool,
    /// Remove control characters other than `\n` and `\t`, plus BOM, zero-width space and soft hyphen.
    pub control_chars: bool,
    /// Unicode spaces become ` `, trailing spaces are stripped from lines, more than one blank line
    /// is collapsed to one, and leading/trailing blank lines are removed.
    pub whitespace: bool,
    /// Also collapse runs of spaces/tabs inside lines to one space (off: keeps code indentation).
    pub collapse_spaces: bool,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mojibake: true,
            line_endings: true,
            nfc: true,
            control_chars: true,
            whitespace: true,
            collapse_spaces: false,
        }
    }
}

/// Normalize `text` according to `cfg`.
pub fn normalize(text: &str, cfg: &NormalizeConfig) -> String {
    if !cfg.enabled {
        return text.to_owned();
    }
    let mut s = if cfg.mojibake {
        fix_mojibake(text)
    } else {
        text.to_owned()
    };
    if cfg.line_endings && s.contains(['\r', '\u{2028}', '\u{2029}', '\x0b', '\x0c']) {
        s = s
            .replace("\r\n", "\n")
            .replace(['\r', '\u{2028}', '\u{2029}', '\x0b', '\x0c'], "\n");
    }
    if cfg.nfc && is_nfc_quick(s.chars()) != IsNormalized::Yes {
        s = s.nfc().collect();
    }
    if cfg.control_chars && s.chars().any(is_removable_control) {
        s.retain(|c| !is_removable_control(c));
    }
    if cfg.whitespace || cfg.collapse_spaces {
        s = clean_whitespace(&s, cfg);
    }
    s
}

fn is_removable_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{feff}' | '\u{200b}' | '\u{00ad}')
}

fn is_unicode_space(c: char) -> bool {
    matches!(
        c,
        '\u{00a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

fn clean_whitespace(s: &str, cfg: &NormalizeConfig) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0usize;
    let mut started = false;
    for line in s.split('\n') {
        let mut l: String = if cfg.whitespace && line.contains(is_unicode_space) {
            line.chars()
                .map(|c| if is_unicode_space(c) { ' ' } else { c })
                .collect()
        } else {
            line.to_owned()
        };
        if cfg.collapse_spaces {
            let mut collapsed = String::with_capacity(l.len());
            let mut prev_space = false;
            for c in l.chars() {
                let sp = c == ' ' || c == '\t';
                if !(sp && prev_space) {
                    collapsed.push(if sp { ' ' } else { c });
                }
                prev_space = sp;
            }
            l = collapsed;
        }
        if cfg.whitespace {
            l.truncate(l.trim_end().len());
            if l.is_empty() {
                blank_run += 1;
                continue;
            }
            if started {
                out.push('\n');
                if blank_run > 0 {
                    out.push('\n');
                }
            }
        } else if started {
            out.push('\n');
        }
        blank_run = 0;
        started = true;
        out.push_str(&l);
    }
    out
}

/// Windows-1252 byte for a character, for mojibake repair (Latin-1 range and the cp1252 extras).
fn cp1252_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if u < 0x80 || (0x80..=0xff).contains(&u) {
        return Some(u as u8);
    }
    Some(match c {
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8a,
        '‹' => 0x8b,
        'Œ' => 0x8c,
        'Ž' => 0x8e,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9a,
        '›' => 0x9b,
        'œ' => 0x9c,
        'ž' => 0x9e,
        'Ÿ' => 0x9f,
        _ => return None,
    })
}

/// Characters that start a UTF-8 multi-byte sequence when read as Latin-1 (`Â`..`ô`).
fn is_lead(c: char) -> bool {
    ('\u{c2}'..='\u{f4}').contains(&c)
}

/// Repair mojibake word by word (split on ASCII whitespace): a word whose characters all map to
/// cp1252 bytes that form valid UTF-8 with at least one multi-byte character is replaced by the
/// decoded text. Correct Latin-1 text (`café`) is left alone because its bytes are not valid UTF-8.
pub fn fix_mojibake(text: &str) -> String {
    if !text.chars().any(is_lead) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let ws = rest
            .find(|c: char| !c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        let end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let word = &rest[..end];
        out.push_str(&repair_word(word).unwrap_or_else(|| word.to_owned()));
        rest = &rest[end..];
    }
    out
}

fn repair_word(word: &str) -> Option<String> {
    if !word.chars().any(is_lead) {
        return None;
    }
    let bytes: Vec<u8> = word.chars().map(cp1252_byte).collect::<Option<_>>()?;
    let fixed = String::from_utf8(bytes).ok()?;
    (fixed != word && !fixed.is_ascii()).then_some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mojibake_is_repaired_and_latin1_left_alone() {
        assert_eq!(fix_mojibake("cafÃ© au lait"), "café au lait");
        assert_eq!(fix_mojibake("itâ€™s â€œquotedâ€\u{9d}"), "it’s “quoted”");
        assert_eq!(fix_mojibake("naïve café Ça"), "naïve café Ça");
        assert_eq!(fix_mojibake("plain ascii"), "plain ascii");
        assert_eq!(fix_mojibake("ÐŸÑ€Ð¸Ð²ÐµÑ‚"), "Привет");
    }

    #[test]
    fn full_normalization() {
        let cfg = NormalizeConfig::default();
        let input = "\u{feff}Title\r\n\r\n\r\n\r\nLine one\u{00a0}with\u{2009}spaces   \rLine\u{0007} two\u{200b}\n\n\n  indented code\n\n";
        assert_eq!(
            normalize(input, &cfg),
            "Title\n\nLine one with spaces\nLine two\n\n  indented code"
        );
        // NFC: e + combining acute -> é
        assert_eq!(normalize("e\u{0301}", &cfg), "\u{e9}");
        let collapse = NormalizeConfig {
            collapse_spaces: true,
            ..NormalizeConfig::default()
        };
        assert_eq!(normalize("a  \t b", &collapse), "a b");
        let off = NormalizeConfig {
            enabled: false,
            ..NormalizeConfig::default()
        };
        assert_eq!(normalize("a\r\n", &off), "a\r\n");
    }
}

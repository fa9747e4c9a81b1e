//! Splitting a text into paragraph / line / sentence spans and cutting spans out again.

use crate::config::Granularity;

/// The non-blank spans of `text` for `granularity`, as byte ranges `[start, end)` in order.
///
/// * `Document`: the whole text (one span, even when blank).
/// * `Paragraph`: maximal runs of non-blank lines (paragraphs are separated by blank lines).
/// * `Line`: non-blank lines, without the line break (a trailing `\r` is excluded).
/// * `Sentence`: pieces ending in `.`, `!` or `?` (plus closing quotes / brackets) that are
///   followed by white space, or ending at a line break; leading white space excluded.
#[must_use]
pub fn split_spans(text: &str, granularity: Granularity) -> Vec<(usize, usize)> {
    match granularity {
        Granularity::Document => vec![(0, text.len())],
        Granularity::Line => lines(text).filter(|&(s, e)| !is_blank(&text[s..e])).collect(),
        Granularity::Paragraph => {
            let mut out = Vec::new();
            let mut current: Option<(usize, usize)> = None;
            for (s, e) in lines(text) {
                if is_blank(&text[s..e]) {
                    out.extend(current.take());
                } else {
                    current = Some(current.map_or((s, e), |(cs, _)| (cs, e)));
                }
            }
            out.extend(current);
            out
        }
        Granularity::Sentence => {
            let mut out = Vec::new();
            for (ls, le) in lines(text) {
                let line = &text[ls..le];
                let mut start: Option<usize> = None;
                let mut chars = line.char_indices().peekable();
                while let Some((i, c)) = chars.next() {
                    if start.is_none() {
                        if c.is_whitespace() {
                            continue;
                        }
                        start = Some(i);
                    }
                    if matches!(c, '.' | '!' | '?' | '。' | '！' | '？') {
                        // Absorb closing punctuation, then require white space (or line end).
                        let mut end = i + c.len_utf8();
                        while let Some(&(j, d)) = chars.peek() {
                            if matches!(d, '.' | '!' | '?' | '"' | '\'' | ')' | ']' | '”' | '’' | '»') {
                                end = j + d.len_utf8();
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        let at_break = chars.peek().is_none_or(|&(_, d)| d.is_whitespace());
                        if at_break && let Some(s) = start.take() {
                            out.push((ls + s, ls + end));
                        }
                    }
                }
                if let Some(s) = start {
                    let trimmed = line.trim_end();
                    if trimmed.len() > s {
                        out.push((ls + s, ls + trimmed.len()));
                    }
                }
            }
            out
        }
    }
}

/// Line ranges without the `\n` (and without a trailing `\r`).
fn lines(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let (s, e, next) = match memchr::memchr(b'\n', &bytes[start..]) {
            Some(p) => (start, start + p, start + p + 1),
            None => {
                done = true;
                (start, bytes.len(), bytes.len())
            }
        };
        start = next;
        let e = if e > s && bytes[e - 1] == b'\r' { e - 1 } else { e };
        Some((s, e))
    })
}

fn is_blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// `text` with the spans at positions `removed` (indices into `spans`, the output of
/// [`split_spans`]) cut out. Each removed span takes the separator after it with it (the one
/// before it when it is the last span), so paragraphs and lines stay cleanly separated.
#[must_use]
pub fn remove_spans(text: &str, spans: &[(usize, usize)], removed: &[u32]) -> String {
    let mut is_removed = vec![false; spans.len()];
    for &r in removed {
        if let Some(x) = is_removed.get_mut(r as usize) {
            *x = true;
        }
    }
    let last_kept = (0..spans.len()).rev().find(|&i| !is_removed[i]);
    // Cut ranges, merged in order.
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for (i, &(s, _)) in spans.iter().enumerate() {
        if !is_removed[i] {
            continue;
        }
        let end = spans.get(i + 1).map_or(text.len(), |next| next.0);
        let start = match last_kept {
            // After the last kept span: also take the separator before it.
            Some(k) if i > k => spans[k].1,
            _ => s,
        };
        let cut = (start, end);
        match cuts.last_mut() {
            Some(last) if last.1 >= cut.0 => last.1 = last.1.max(cut.1),
            _ => cuts.push(cut),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (s, e) in cuts {
        if s > pos {
            out.push_str(&text[pos..s]);
        }
        pos = pos.max(e);
    }
    if pos < text.len() {
        out.push_str(&text[pos..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str, g: Granularity) -> Vec<&str> {
        split_spans(text, g).into_iter().map(|(s, e)| &text[s..e]).collect()
    }

    #[test]
    fn splits() {
        let t = "A b.\nC d!\n\n  \nE f?\r\n";
        assert_eq!(pieces(t, Granularity::Line), vec!["A b.", "C d!", "E f?"]);
        assert_eq!(pieces(t, Granularity::Paragraph), vec!["A b.\nC d!", "E f?"]);
        assert_eq!(pieces("Hi there. Mr. X said \"no!\" Then 3.5 left", Granularity::Sentence), vec![
            "Hi there.",
            "Mr.",
            "X said \"no!\"",
            "Then 3.5 left"
        ]);
        assert_eq!(pieces("", Granularity::Document), vec![""]);
        assert!(pieces("\n\n", Granularity::Paragraph).is_empty());
    }

    #[test]
    fn removal_keeps_separators_clean() {
        let t = "one\n\ntwo\n\nthree";
        let spans = split_spans(t, Granularity::Paragraph);
        assert_eq!(remove_spans(t, &spans, &[1]), "one\n\nthree");
        assert_eq!(remove_spans(t, &spans, &[0]), "two\n\nthree");
        assert_eq!(remove_spans(t, &spans, &[2]), "one\n\ntwo");
        assert_eq!(remove_spans(t, &spans, &[1, 2]), "one");
        assert_eq!(remove_spans(t, &spans, &[0, 1, 2]), "");
        assert_eq!(remove_spans(t, &spans, &[]), t);
        let l = "a\nb\nc\n";
        let spans = split_spans(l, Granularity::Line);
        assert_eq!(remove_spans(l, &spans, &[2]), "a\nb");
        assert_eq!(remove_spans(l, &spans, &[0]), "b\nc\n");
    }
}

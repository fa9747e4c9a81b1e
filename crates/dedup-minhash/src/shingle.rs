//! Text normalization and shingling.
//!
//! A text is normalized into a *word stream*: lowercased with the full Unicode mapping
//! (`str::to_lowercase`, including the final-sigma rule, like Python's `str.lower`), then split on
//! runs of non-word characters, and the words joined by single spaces. A *word character* is a
//! Unicode alphanumeric (`Alphabetic` or `Numeric`), a combining mark (`General_Category=Mark`),
//! a connector punctuation (`_` and the other `Pc` characters) or a join control (ZWNJ / ZWJ):
//! the UTS #18 definition of `\w` (as in Rust's `regex`), extended with `Numeric` so that `²` or
//! `½` stay word characters as in Python's `re`. For ASCII text this is exactly Python's
//! `re.split(r"\W+", text.lower())`, the convention of text-dedup, BigCode and the datasketch
//! reference benchmark; unlike Python's `re`, combining marks (e.g. Devanagari vowel signs) do
//! not split a word.
//!
//! A word n-gram is the substring of the word stream from the start of word `i` to the end of
//! word `i + n - 1`, i.e. exactly `" ".join(words[i:i+n])`; a stream with fewer than `n` words is
//! one shingle made of all of it (possibly the empty string).
//!
//! # Shingle hashes
//! * [`BaseHash::Sha1`] (datasketch compatibility): SHA-1 of the shingle's UTF-8 bytes, first 8
//!   bytes little-endian, exactly as datasketch's `sha1_hash64` (low 32 bits: `sha1_hash32`).
//! * [`BaseHash::Xxh3`], character n-grams: `xxh3_64` (seed 0) of the shingle's UTF-8 bytes.
//! * [`BaseHash::Xxh3`], word n-grams: [`combine_word_hashes`] of the [`word_hash`]es of the
//!   shingle's words (each word hashed once, not once per shingle it belongs to; consecutive
//!   shingles by a rolling polynomial). Like any 64-bit hash of the shingle string it identifies
//!   the word sequence (collisions ~2^-64), so the shingle *sets* and their Jaccard similarities
//!   are the same as with a string hash; only the hash values differ.
//!
//! Nothing is allocated per shingle; the buffers are reused across texts.

use sha1::{Digest, Sha1};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use crate::config::{BaseHash, Shingle};

/// ASCII word characters: `[0-9A-Za-z_]`.
const fn ascii_word_table() -> [bool; 128] {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'_';
        i += 1;
    }
    t
}
static ASCII_WORD: [bool; 128] = ascii_word_table();

/// Whether `c` is a word character (see the module documentation).
#[must_use]
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return ASCII_WORD[c as usize];
    }
    c.is_alphanumeric()
        || unicode_normalization::char::is_combining_mark(c)
        || matches!(c, '\u{200C}' | '\u{200D}' | '\u{203F}' | '\u{2040}' | '\u{2054}' | '\u{FE33}' | '\u{FE34}')
        || matches!(c, '\u{FE4D}'..='\u{FE4F}' | '\u{FF3F}')
}

/// The base hash of one shingle's UTF-8 bytes.
#[must_use]
pub fn base_hash(kind: BaseHash, bytes: &[u8]) -> u64 {
    match kind {
        BaseHash::Xxh3 => xxh3_64(bytes),
        BaseHash::Sha1 => {
            let digest = Sha1::digest(bytes);
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            u64::from_le_bytes(first)
        }
    }
}

/// Reusable normalization and shingling buffers (one per thread; see [`Shingler::with`]).
#[derive(Debug, Clone)]
pub struct Shingler {
    shingle: Shingle,
    base: BaseHash,
    /// The normalized word stream is `buf[..len]` (always valid UTF-8); `buf` keeps its
    /// high-water size so that it is not cleared per text.
    buf: Vec<u8>,
    len: usize,
    /// `starts[k]` is the start of word `k` in `buf` for `k < n_words`, and `starts[n_words]` is
    /// `len + 1`; word `k` is `buf[starts[k]..starts[k + 1] - 1]` (high-water size too).
    starts: Vec<usize>,
    n_words: usize,
    /// Char boundaries of `buf` (character shingles only).
    chars: Vec<usize>,
    /// Scratch for lowercasing non-ASCII text.
    lower: String,
    /// Lowercased ASCII text with non-word bytes zeroed (word-hash path, high-water size).
    lc: Vec<u8>,
    /// Word hashes of the last text (word-hash path).
    word_hashes: Vec<u64>,
    /// Word boundaries (word-hash path).
    bounds: Vec<usize>,
}

impl Shingler {
    /// A shingler for the given features and base hash.
    #[must_use]
    pub fn new(shingle: Shingle, base: BaseHash) -> Self {
        Self {
            shingle,
            base,
            buf: Vec::new(),
            len: 0,
            starts: Vec::new(),
            n_words: 0,
            chars: Vec::new(),
            lower: String::new(),
            lc: Vec::new(),
            word_hashes: Vec::new(),
            bounds: Vec::new(),
        }
    }

    /// Normalizes `text` into the internal word stream and returns the number of words.
    pub fn normalize(&mut self, text: &str) -> usize {
        if text.is_ascii() {
            (self.len, self.n_words) = normalize_ascii(text.as_bytes(), &mut self.buf, &mut self.starts);
        } else {
            self.lower.clear();
            self.lower.push_str(&text.to_lowercase());
            self.buf.clear();
            normalize_unicode(&self.lower, &mut self.buf);
            self.len = self.buf.len();
            self.n_words = fill_word_starts(&self.buf, &mut self.starts);
        }
        self.n_words
    }

    /// The word stream of the last [`Shingler::normalize`] call.
    #[must_use]
    pub fn normalized(&self) -> &str {
        // The buffer is built from whole `char`s of valid UTF-8 and ASCII spaces.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    /// Normalizes `text` and calls `f` with the base hash of every shingle occurrence (a shingle
    /// that occurs twice is reported twice). Returns the number of words.
    pub fn for_each_hash(&mut self, text: &str, mut f: impl FnMut(u64)) -> usize {
        if let (BaseHash::Xxh3, Shingle::Words(n)) = (self.base, self.shingle) {
            self.hash_words(text);
            for_each_window_hash(&self.word_hashes, n, f);
            return self.word_hashes.len();
        }
        let n_words = self.normalize(text);
        let base = self.base;
        self.for_each_slice(|s| f(base_hash(base, s)));
        n_words
    }

    /// Number of words of `text` (same normalization; no shingles are hashed).
    pub fn num_words_of(&mut self, text: &str) -> usize {
        self.normalize(text)
    }

    /// Fills `word_hashes` with the `xxh3_64` of every normalized word of `text`.
    fn hash_words(&mut self, text: &str) {
        self.word_hashes.clear();
        if text.is_ascii() {
            ascii_word_hashes(text.as_bytes(), &mut self.lc, &mut self.bounds, &mut self.word_hashes);
        } else {
            self.lower.clear();
            self.lower.push_str(&text.to_lowercase());
            let lower = &self.lower;
            let mut start = None;
            for (i, c) in lower.char_indices() {
                match (is_word_char(c), start) {
                    (true, None) => start = Some(i),
                    (false, Some(s)) => {
                        self.word_hashes.push(word_hash(&lower.as_bytes()[s..i]));
                        start = None;
                    }
                    _ => {}
                }
            }
            if let Some(s) = start {
                self.word_hashes.push(word_hash(&lower.as_bytes()[s..]));
            }
        }
    }

    /// Calls `f` with the bytes of every shingle of the current word stream.
    fn for_each_slice(&mut self, mut f: impl FnMut(&[u8])) {
        match self.shingle {
            Shingle::Words(n) => {
                let buf = &self.buf[..self.len];
                if self.n_words < n {
                    f(buf);
                } else {
                    let starts = &self.starts[..=self.n_words];
                    for (&s, &e) in starts.iter().zip(&starts[n..]) {
                        f(&buf[s..e - 1]);
                    }
                }
            }
            Shingle::Chars(n) => {
                let buf = &self.buf[..self.len];
                self.chars.clear();
                self.chars.extend(buf.iter().enumerate().filter(|(_, b)| (**b & 0xC0) != 0x80).map(|(i, _)| i));
                self.chars.push(buf.len());
                let n_chars = self.chars.len() - 1;
                if n_chars < n {
                    f(buf);
                } else {
                    for i in 0..=n_chars - n {
                        f(&buf[self.chars[i]..self.chars[i + n]]);
                    }
                }
            }
        }
    }

    /// The sorted, de-duplicated shingle hashes of `text` (the set compared by exact Jaccard).
    pub fn hash_set(&mut self, text: &str, out: &mut Vec<u64>) {
        out.clear();
        out.reserve(text.len() / 4 + 1);
        self.for_each_hash(text, |h| out.push(h));
        sort_uniform(out);
        out.dedup();
    }

    /// The distinct shingles of `text` as strings, sorted (for inspection and tests).
    pub fn shingles(&mut self, text: &str) -> Vec<String> {
        self.normalize(text);
        let mut out = Vec::new();
        self.for_each_slice(|s| out.push(String::from_utf8_lossy(s).into_owned()));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The 128-bit xxh3 hash of the normalized word stream of `text` (the exact-dedup key).
    pub fn exact_hash(&mut self, text: &str) -> u128 {
        self.normalize(text);
        xxh3_128(&self.buf[..self.len])
    }

    /// Number of words of the last normalized text.
    #[must_use]
    pub fn num_words(&self) -> usize {
        self.n_words
    }

    /// Runs `f` with a thread-local shingler for `(shingle, base)`, reusing its buffers.
    pub fn with<R>(shingle: Shingle, base: BaseHash, f: impl FnOnce(&mut Shingler) -> R) -> R {
        thread_local! {
            static LOCAL: std::cell::RefCell<Option<Shingler>> = const { std::cell::RefCell::new(None) };
        }
        LOCAL.with(|cell| {
            let mut slot = cell.borrow_mut();
            let sh = match slot.as_mut() {
                Some(s) if s.shingle == shingle && s.base == base => s,
                _ => slot.insert(Shingler::new(shingle, base)),
            };
            f(sh)
        })
    }
}

/// Multiplier of the polynomial shingle hash.
const POLY: u64 = 0x9e37_79b9_7f4a_7c15;

/// A cheap bijective finalizer: multiply, then fold the high half into the low half.
#[inline]
fn mix_xs(h: u64) -> u64 {
    let h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 32)
}

/// The hash of a word n-gram from the hashes of its words (in order): the polynomial
/// `Σ w[j] · B^(n-1-j) mod 2^64` (`B` = 0x9e3779b97f4a7c15), xored with `n · 0x243f6a8885a308d3`,
/// then multiplied by 0xff51afd7ed558ccd and xored with its own high half. Consecutive n-grams
/// are computed by rolling the polynomial (three multiplications per shingle). An empty slice (a
/// text without words) has a fixed hash.
#[inline]
#[must_use]
pub fn combine_word_hashes(words: &[u64]) -> u64 {
    let poly = words.iter().fold(0u64, |h, &w| h.wrapping_mul(POLY).wrapping_add(w));
    mix_xs(poly ^ (words.len() as u64).wrapping_mul(0x243f_6a88_85a3_08d3))
}

/// Calls `f` with [`combine_word_hashes`] of every window of `n` word hashes (or of all of them
/// when there are fewer than `n`), rolling the polynomial.
#[inline]
fn for_each_window_hash(wh: &[u64], n: usize, mut f: impl FnMut(u64)) {
    if wh.len() < n {
        f(combine_word_hashes(wh));
        return;
    }
    let len_key = (n as u64).wrapping_mul(0x243f_6a88_85a3_08d3);
    let top = (1..n).fold(1u64, |p, _| p.wrapping_mul(POLY)); // B^(n-1)
    let mut poly = wh[..n].iter().fold(0u64, |h, &w| h.wrapping_mul(POLY).wrapping_add(w));
    f(mix_xs(poly ^ len_key));
    for (&out, &inn) in wh.iter().zip(&wh[n..]) {
        poly = poly.wrapping_sub(out.wrapping_mul(top)).wrapping_mul(POLY).wrapping_add(inn);
        f(mix_xs(poly ^ len_key));
    }
}

/// Seed of [`word_hash`] for a word of `len` bytes.
#[inline]
fn word_seed(len: usize) -> u64 {
    (len as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ 0x1656_67b1_9e37_79f9
}

/// The hash of one normalized word (its lowercased UTF-8 bytes), used for word n-grams with
/// [`BaseHash::Xxh3`]: the word is cut into 8-byte little-endian blocks, zero-padded to at least
/// two blocks; every block but the last is folded in with `h = rotl((h ^ block) * B, 31)`
/// starting from a seed that encodes the length, and the last block is xored in before the
/// finalizer of [`combine_word_hashes`]. Words of at most 8 bytes never collide.
#[inline]
#[must_use]
pub fn word_hash(word: &[u8]) -> u64 {
    let n_blocks = word.len().div_ceil(8).max(2);
    let mut h = word_seed(word.len());
    let block = |i: usize| {
        let mut b = [0u8; 8];
        let s = (i * 8).min(word.len());
        let e = (i * 8 + 8).min(word.len());
        b[..e - s].copy_from_slice(&word[s..e]);
        u64::from_le_bytes(b)
    };
    for i in 0..n_blocks - 1 {
        h = (h ^ block(i)).wrapping_mul(POLY).rotate_left(31);
    }
    mix_xs(h ^ block(n_blocks - 1))
}

/// Little-endian u64 of `lc[at..at + 8]` keeping only the first `keep` (0..=8) bytes.
#[inline]
fn load_masked(lc: &[u8], at: usize, keep: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&lc[at..at + 8]);
    u64::from_le_bytes(b) & (((1u128 << (keep * 8)) - 1) as u64)
}

/// [`word_hash`] of `lc[start..end]`, where `lc` has at least 16 bytes after `start`; without
/// length-dependent branches for words of at most 16 bytes.
#[inline]
fn word_hash_padded(lc: &[u8], start: usize, end: usize) -> u64 {
    let len = end - start;
    if len > 16 {
        return word_hash(&lc[start..end]);
    }
    let b0 = load_masked(lc, start, len.min(8));
    let b1 = load_masked(lc, start + 8, len.saturating_sub(8));
    let h = (word_seed(len) ^ b0).wrapping_mul(POLY).rotate_left(31);
    mix_xs(h ^ b1)
}

/// Bit `k` set when `block[k]` is non-zero (SWAR, 8 bytes at a time; `block.len() <= 64`).
#[inline]
fn nonzero_mask(block: &[u8]) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    #[inline]
    fn gather(x: u64) -> u64 {
        // High bit of each byte set iff the byte is non-zero (no carries between bytes), then
        // the 8 high bits gathered into one byte.
        let y = (((x & LOW7) + LOW7) | x) & !LOW7;
        (y >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
    }
    let mut m = 0u64;
    let mut chunks = block.chunks_exact(8);
    let mut i = 0;
    for c in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        m |= gather(u64::from_le_bytes(b)) << (i * 8);
        i += 1;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        m |= gather(u64::from_le_bytes(b)) << (i * 8);
    }
    m
}

/// ASCII bytes lowercased, with non-word bytes mapped to 0 (branch-free, vectorizable).
#[inline]
fn lower_or_zero(b: u8) -> u8 {
    let c = b | 0x20;
    let alpha = c.wrapping_sub(b'a') < 26;
    let keep = b.wrapping_sub(b'0') < 10 || b == b'_';
    if alpha {
        c
    } else if keep {
        b
    } else {
        0
    }
}

/// Word hashes of ASCII text: lowercase into `lc` (non-word bytes zeroed, 16 zero bytes of
/// padding), then walk the word runs 64 bytes at a time through bit masks and hash each word.
fn ascii_word_hashes(bytes: &[u8], lc: &mut Vec<u8>, bounds: &mut Vec<usize>, out: &mut Vec<u64>) {
    let n = bytes.len();
    if lc.len() < n + 16 {
        lc.resize(n + 16, 0);
    }
    let lc = &mut lc[..n + 16];
    for (d, &b) in lc.iter_mut().zip(bytes) {
        *d = lower_or_zero(b);
    }
    lc[n..].fill(0);
    let lc = &*lc;
    // Word boundaries first (alternating start, end), then the hashes in a separate loop so that
    // independent words overlap in the pipeline.
    bounds.clear();
    let mut prev = 0u64; // class of the byte before the block (1 = word)
    for (bi, block) in lc[..n].chunks(64).enumerate() {
        let m = nonzero_mask(block);
        // Bits where the class changes relative to the previous byte.
        let mut t = m ^ ((m << 1) | prev);
        if block.len() < 64 {
            t &= (1u64 << block.len()) - 1;
        }
        while t != 0 {
            bounds.push(bi * 64 + t.trailing_zeros() as usize);
            t &= t - 1;
        }
        prev = m >> 63;
    }
    if bounds.len() % 2 == 1 {
        bounds.push(n);
    }
    out.extend(bounds.chunks_exact(2).map(|w| word_hash_padded(lc, w[0], w[1])));
}

/// Sorts uniformly distributed 64-bit hashes: bucket by the top bits, then insertion-sort the
/// nearly sorted result (O(n) expected).
fn sort_uniform(v: &mut [u64]) {
    let n = v.len();
    if n < 64 {
        v.sort_unstable();
        return;
    }
    thread_local! {
        static SCRATCH: std::cell::RefCell<(Vec<usize>, Vec<u64>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    let bits = (usize::BITS - n.leading_zeros()).min(16);
    let shift = 64 - bits;
    SCRATCH.with(|cell| {
        let (counts, src) = &mut *cell.borrow_mut();
        counts.clear();
        counts.resize((1 << bits) + 1, 0);
        for &x in v.iter() {
            counts[(x >> shift) as usize + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        src.clear();
        src.extend_from_slice(v);
        for &x in src.iter() {
            let b = (x >> shift) as usize;
            v[counts[b]] = x;
            counts[b] += 1;
        }
    });
    // Insertion sort: elements are at most a bucket away from their place.
    for i in 1..n {
        let x = v[i];
        let mut j = i;
        while j > 0 && v[j - 1] > x {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}

/// Counts the words of `text` under the normalization above (no allocation for ASCII text).
#[must_use]
pub fn word_count(text: &str) -> usize {
    if text.is_ascii() {
        let b = text.as_bytes();
        let mut n = 0;
        let mut in_word = false;
        for &c in b {
            let w = ASCII_WORD[c as usize];
            n += usize::from(w && !in_word);
            in_word = w;
        }
        n
    } else {
        let lower = text.to_lowercase();
        let mut n = 0;
        let mut in_word = false;
        for c in lower.chars() {
            let w = is_word_char(c);
            n += usize::from(w && !in_word);
            in_word = w;
        }
        n
    }
}

/// ASCII bytes mapped to their lowercase form when they are word characters, 0 otherwise.
const fn ascii_map() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        if b.is_ascii_alphanumeric() || b == b'_' {
            t[i] = b.to_ascii_lowercase();
        }
        i += 1;
    }
    t
}
static ASCII_MAP: [u8; 256] = ascii_map();

/// Writes the word stream of ASCII `bytes` into `out` and the word starts (plus sentinel) into
/// `starts`, growing both to their worst-case sizes if needed; returns (length, words).
fn normalize_ascii(bytes: &[u8], out: &mut Vec<u8>, starts: &mut Vec<usize>) -> (usize, usize) {
    // One branch-free pass: word bytes are lowercased and copied, a run of non-word bytes
    // becomes one space (written only right after a word), so `out` is the joined word stream
    // (plus possibly one trailing space, dropped at the end). A word starts wherever a word
    // byte follows a non-word byte.
    if out.len() < bytes.len() + 1 {
        out.resize(bytes.len() + 1, 0);
    }
    if starts.len() < bytes.len() / 2 + 2 {
        starts.resize(bytes.len() / 2 + 2, 0);
    }
    let (o, st) = (out.as_mut_slice(), starts.as_mut_slice());
    let (mut w, mut n, mut in_word) = (0usize, 0usize, false);
    for &b in bytes {
        let m = ASCII_MAP[b as usize];
        let is_word = m != 0;
        // `w` never exceeds the bytes seen and `n` the words seen, so these always succeed.
        if let Some(slot) = o.get_mut(w) {
            *slot = if is_word { m } else { b' ' };
        }
        if let Some(slot) = st.get_mut(n) {
            *slot = w;
        }
        n += usize::from(is_word & !in_word);
        w += usize::from(is_word | in_word);
        in_word = is_word;
    }
    if w > 0 && o[w - 1] == b' ' {
        w -= 1;
    }
    if n > 0 {
        st[n] = w + 1;
    }
    (w, n)
}

fn normalize_unicode(lower: &str, out: &mut Vec<u8>) {
    out.reserve(lower.len());
    let mut in_word = false;
    let mut start = 0;
    for (i, c) in lower.char_indices() {
        let w = is_word_char(c);
        if w && !in_word {
            start = i;
        } else if !w && in_word {
            push_word(out, &lower[start..i]);
        }
        in_word = w;
    }
    if in_word {
        push_word(out, &lower[start..]);
    }
}

fn push_word(out: &mut Vec<u8>, word: &str) {
    if !out.is_empty() {
        out.push(b' ');
    }
    out.extend_from_slice(word.as_bytes());
}

/// Word starts of a joined word stream (single spaces, none leading or trailing), plus the
/// sentinel `len + 1`, into `starts` (grown if needed); returns the number of words.
fn fill_word_starts(buf: &[u8], starts: &mut Vec<usize>) -> usize {
    if buf.is_empty() {
        return 0;
    }
    if starts.len() < buf.len() / 2 + 2 {
        starts.resize(buf.len() / 2 + 2, 0);
    }
    let st = starts.as_mut_slice();
    st[0] = 0;
    let mut n = 1;
    for (i, &b) in buf.iter().enumerate() {
        if let Some(slot) = st.get_mut(n) {
            *slot = i + 1;
        }
        n += usize::from(b == b' ');
    }
    st[n] = buf.len() + 1;
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shingles(text: &str, n: usize) -> Vec<String> {
        Shingler::new(Shingle::Words(n), BaseHash::Xxh3).shingles(text)
    }

    #[test]
    fn word_ngrams_join_with_single_spaces() {
        assert_eq!(shingles("A b, C!  d", 2), vec!["a b", "b c", "c d"]);
        assert_eq!(shingles("one two", 5), vec!["one two"]);
        assert_eq!(shingles(" ,; ", 5), vec![""]);
        assert_eq!(shingles("snake_case x", 1), vec!["snake_case", "x"]);
    }

    #[test]
    fn unicode_lowercase_and_word_chars() {
        // Final sigma, ß, accents; combining marks stay inside words.
        assert_eq!(shingles("ΣΟΦΟΣ Straße", 1), vec!["straße", "σοφος"]);
        assert_eq!(shingles("cafe\u{301} x", 1), vec!["cafe\u{301}", "x"]);
        assert_eq!(shingles("नमस्ते दुनिया", 1), vec!["दुनिया", "नमस्ते"]);
        assert_eq!(word_count("ΣΟΦΟΣ, Straße!"), 2);
        assert_eq!(word_count("a-b c"), 3);
    }

    #[test]
    fn uniform_sort_sorts() {
        let mut state = 3u64;
        for n in [0usize, 5, 63, 64, 65, 300, 5000] {
            let mut v: Vec<u64> = (0..n).map(|i| if i % 7 == 0 { 12345 } else { crate::minhash::splitmix64(&mut state) }).collect();
            let mut expect = v.clone();
            expect.sort_unstable();
            sort_uniform(&mut v);
            assert_eq!(v, expect, "n={n}");
        }
    }

    #[test]
    fn char_ngrams_count_scalar_values() {
        let mut s = Shingler::new(Shingle::Chars(3), BaseHash::Xxh3);
        assert_eq!(s.shingles("Äbc!d"), vec!["bc ", "c d", "äbc"]);
        assert_eq!(s.shingles("ab"), vec!["ab"]);
    }

    #[test]
    fn hash_definitions() {
        let mut s = Shingler::new(Shingle::Words(2), BaseHash::Xxh3);
        let mut got = Vec::new();
        s.for_each_hash("x Y, z", |h| got.push(h));
        let (x, y, z) = (word_hash(b"x"), word_hash(b"y"), word_hash(b"z"));
        assert_eq!(got, vec![combine_word_hashes(&[x, y]), combine_word_hashes(&[y, z])]);
        // Rolling equals direct, for long words too.
        let words: Vec<u64> = ["alpha", "b", "a_very_long_word_indeed", "", "x9"].iter().map(|w| word_hash(w.as_bytes())).collect();
        let mut rolled = Vec::new();
        for_each_window_hash(&words, 3, |h| rolled.push(h));
        let direct: Vec<u64> = words.windows(3).map(combine_word_hashes).collect();
        assert_eq!(rolled, direct);
        let mut padded = b"a_very_long_word_indeed".to_vec();
        padded.extend_from_slice(&[0; 16]);
        for (s, e) in [(0, 23), (2, 6), (0, 8), (0, 9), (0, 16), (1, 17), (5, 5)] {
            assert_eq!(word_hash_padded(&padded, s, e), word_hash(&padded[s..e]), "{s}..{e}");
        }
        assert_ne!(word_hash(b"ab"), word_hash(b"ab\0"));
        let mut block = [0u8; 64];
        for k in [0, 5, 7, 8, 33, 63] {
            block[k] = 200;
        }
        block[9] = 1;
        assert_eq!(nonzero_mask(&block), (1 << 0) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 33) | (1 << 63));
        assert_eq!(nonzero_mask(&block[..10]), (1 << 0) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9));
        let mut s = Shingler::new(Shingle::Words(2), BaseHash::Sha1);
        got.clear();
        s.for_each_hash("x Y, z", |h| got.push(h));
        assert_eq!(got, vec![base_hash(BaseHash::Sha1, b"x y"), base_hash(BaseHash::Sha1, b"y z")]);
        let mut s = Shingler::new(Shingle::Chars(3), BaseHash::Xxh3);
        got.clear();
        s.for_each_hash("Ab, c", |h| got.push(h));
        assert_eq!(got, vec![xxh3_64(b"ab "), xxh3_64(b"b c")]);
    }

    #[test]
    fn ascii_and_unicode_paths_agree_on_ascii_words() {
        // The same words reached through the ASCII fast path and the Unicode path hash the same.
        let ascii = "Hello, World_2 foo-bar baz! qux";
        let unicode = "Hello, World_2 foo-bar baz! qux \u{e9}";
        let mut s = Shingler::new(Shingle::Words(3), BaseHash::Xxh3);
        let mut a = Vec::new();
        s.for_each_hash(ascii, |h| a.push(h));
        let mut b = Vec::new();
        s.for_each_hash(unicode, |h| b.push(h));
        assert_eq!(&b[..a.len()], &a[..]);
        assert_eq!(b.len(), a.len() + 1);
        // Word boundaries across the 64-byte blocks of the fast path.
        let long: String = (0..40).map(|i| format!("w{i}{}", "x".repeat(i % 7))).collect::<Vec<_>>().join(" .. ");
        let mut fast = Vec::new();
        let n = s.for_each_hash(&long, |h| fast.push(h));
        assert_eq!(n, 40);
        let mut slow = Vec::new();
        s.for_each_hash(&format!("{long} \u{e9}"), |h| slow.push(h));
        assert_eq!(&slow[..fast.len()], &fast[..]);
        assert_eq!(s.num_words_of(&long), 40);
    }
}

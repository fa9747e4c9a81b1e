//! Packing documents (CPT) and samples (SFT) into sequences of a token store.
//!
//! CPT: documents (already `[BOS] tokens [EOS]`) are concatenated and cut every `seq_len` tokens;
//! a document that crosses a cut continues at position 0 of the next sequence, and every document
//! start is recorded as a boundary. SFT: samples are never split; with packing, samples are added
//! to the current sequence while they fit, each starting a new segment; without packing, one
//! sample per sequence.

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::tokstore::TokenStoreWriter;

/// What to do with the last, shorter CPT sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LastPartial {
    /// Keep it (trainers pad it).
    #[default]
    Keep,
    /// Drop it, so every sequence is exactly `seq_len` long.
    Drop,
}

/// Packing statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PackStats {
    /// Documents or samples added.
    pub documents: u64,
    /// Sequences written.
    pub sequences: u64,
    /// Tokens written.
    pub tokens: u64,
    /// Tokens dropped (last partial sequence with [`LastPartial::Drop`]).
    pub tokens_dropped: u64,
    /// Documents split across two or more sequences.
    pub documents_split: u64,
    /// tokens / (sequences * seq_len).
    pub fill: f64,
}

/// Packs CPT documents into fixed-length sequences.
#[derive(Debug)]
pub struct CptPacker<'w> {
    w: &'w mut TokenStoreWriter,
    seq_len: usize,
    last: LastPartial,
    buf: Vec<u32>,
    starts: Vec<u32>,
    stats: PackStats,
}

impl<'w> CptPacker<'w> {
    /// Pack into `w` with sequences of `seq_len` tokens.
    pub fn new(w: &'w mut TokenStoreWriter, seq_len: usize, last: LastPartial) -> Self {
        Self {
            w,
            seq_len: seq_len.max(1),
            last,
            buf: Vec::new(),
            starts: Vec::new(),
            stats: PackStats::default(),
        }
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.w.push(&self.buf, None, &self.starts)?;
            self.stats.sequences += 1;
            self.stats.tokens += self.buf.len() as u64;
            self.buf.clear();
            self.starts.clear();
        }
        Ok(())
    }

    /// Add one document (with its BOS/EOS already in place), counting it for `source`.
    pub fn add_document(&mut self, tokens: &[u32], source: &str) -> Result<()> {
        if tokens.is_empty() {
            return Ok(());
        }
        self.stats.documents += 1;
        self.w.add_source_tokens(source, tokens.len() as u64);
        let mut rest = tokens;
        let mut pieces = 0;
        while !rest.is_empty() {
            self.starts.push(self.buf.len() as u32);
            let take = (self.seq_len - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            pieces += 1;
            if self.buf.len() == self.seq_len {
                self.flush()?;
            }
        }
        if pieces > 1 {
            self.stats.documents_split += 1;
        }
        Ok(())
    }

    /// Write the last sequence (or drop it) and return the statistics.
    pub fn finish(mut self) -> Result<PackStats> {
        if !self.buf.is_empty() {
            match self.last {
                LastPartial::Keep => self.flush()?,
                LastPartial::Drop => {
                    self.stats.tokens_dropped += self.buf.len() as u64;
                    self.buf.clear();
                }
            }
        }
        self.stats.fill = fill(self.stats.tokens, self.stats.sequences, self.seq_len);
        Ok(self.stats)
    }
}

fn fill(tokens: u64, seqs: u64, seq_len: usize) -> f64 {
    if seqs == 0 {
        0.0
    } else {
        tokens as f64 / (seqs as f64 * seq_len as f64)
    }
}

/// Packs SFT samples (ids + loss mask) without splitting any sample.
#[derive(Debug)]
pub struct SftPacker<'w> {
    w: &'w mut TokenStoreWriter,
    seq_len: usize,
    packing: bool,
    buf: Vec<u32>,
    mask: Vec<bool>,
    starts: Vec<u32>,
    stats: PackStats,
}

impl<'w> SftPacker<'w> {
    /// Pack into `w`; `packing = false` writes one sample per sequence.
    pub fn new(w: &'w mut TokenStoreWriter, seq_len: usize, packing: bool) -> Self {
        Self {
            w,
            seq_len: seq_len.max(1),
            packing,
            buf: Vec::new(),
            mask: Vec::new(),
            starts: Vec::new(),
            stats: PackStats::default(),
        }
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.w.push(&self.buf, Some(&self.mask), &self.starts)?;
            self.stats.sequences += 1;
            self.stats.tokens += self.buf.len() as u64;
            self.buf.clear();
            self.mask.clear();
            self.starts.clear();
        }
        Ok(())
    }

    /// Add a sample of at most `seq_len` tokens (longer ones must be truncated or dropped before).
    pub fn add_sample(&mut self, ids: &[u32], mask: &[bool], source: &str) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let (ids, mask) = if ids.len() > self.seq_len {
            (&ids[..self.seq_len], &mask[..self.seq_len])
        } else {
            (ids, mask)
        };
        if !self.packing || self.buf.len() + ids.len() > self.seq_len {
            self.flush()?;
        }
        self.starts.push(self.buf.len() as u32);
        self.buf.extend_from_slice(ids);
        self.mask.extend_from_slice(mask);
        self.stats.documents += 1;
        self.w.add_source_tokens(source, ids.len() as u64);
        Ok(())
    }

    /// Write the last sequence and return the statistics.
    pub fn finish(mut self) -> Result<PackStats> {
        self.flush()?;
        self.stats.fill = fill(self.stats.tokens, self.stats.sequences, self.seq_len);
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokstore::{StoreSpec, TokenStore};

    fn spec(mask: bool, seq_len: usize) -> StoreSpec {
        StoreSpec {
            kind: "cpt".into(),
            split: "train".into(),
            tokenizer: "t".into(),
            vocab_size: 1000,
            seq_len,
            seed: 0,
            has_loss_mask: mask,
        }
    }

    #[test]
    fn cpt_packing_keeps_boundaries_and_continues_documents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = TokenStoreWriter::create(dir.path().join("s"), spec(false, 4)).expect("create");
        let mut p = CptPacker::new(&mut w, 4, LastPartial::Keep);
        p.add_document(&[1, 2, 3], "a").expect("add"); // fits in seq 0
        p.add_document(&[4, 5, 6, 7, 8, 9], "b").expect("add"); // 1 token in seq 0, 4 in seq 1, 1 in seq 2
        p.add_document(&[10], "a").expect("add");
        let stats = p.finish().expect("finish");
        assert_eq!(
            (
                stats.documents,
                stats.sequences,
                stats.tokens,
                stats.documents_split
            ),
            (3, 3, 10, 1)
        );
        let meta = w.finish(false, serde_json::Map::new()).expect("finish");
        assert_eq!(meta.source_tokens.get("a"), Some(&4));
        let store = TokenStore::open(dir.path().join("s")).expect("open");
        let seqs: Vec<(Vec<u32>, Vec<u32>)> = store
            .iter()
            .map(|s| {
                let s = s.expect("seq");
                (s.tokens.to_vec(), s.position_ids())
            })
            .collect();
        assert_eq!(
            seqs,
            vec![
                (vec![1, 2, 3, 4], vec![0, 1, 2, 0]),
                (vec![5, 6, 7, 8], vec![0, 1, 2, 3]),
                (vec![9, 10], vec![0, 0]),
            ]
        );
    }

    #[test]
    fn cpt_last_partial_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = TokenStoreWriter::create(dir.path().join("s"), spec(false, 4)).expect("create");
        let mut p = CptPacker::new(&mut w, 4, LastPartial::Drop);
        p.add_document(&[1, 2, 3, 4, 5], "a").expect("add");
        let stats = p.finish().expect("finish");
        assert_eq!(
            (stats.sequences, stats.tokens_dropped, stats.fill),
            (1, 1, 1.0)
        );
    }

    #[test]
    fn sft_packing_never_splits_samples() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = TokenStoreWriter::create(dir.path().join("s"), spec(true, 6)).expect("create");
        let mut p = SftPacker::new(&mut w, 6, true);
        p.add_sample(&[1, 2, 3], &[false, true, true], "x")
            .expect("add");
        p.add_sample(&[4, 5], &[false, true], "x").expect("add");
        p.add_sample(&[6, 7, 8], &[false, false, true], "x")
            .expect("add"); // does not fit: new sequence
        let stats = p.finish().expect("finish");
        assert_eq!(stats.sequences, 2);
        w.finish(false, serde_json::Map::new()).expect("finish");
        let store = TokenStore::open(dir.path().join("s")).expect("open");
        let s0 = store.sequence(0).expect("seq");
        assert_eq!(&*s0.tokens, &[1, 2, 3, 4, 5]);
        assert_eq!(s0.loss_mask, Some(&[0u8, 1, 1, 0, 1][..]));
        assert_eq!(s0.position_ids(), vec![0, 1, 2, 0, 1]);
        assert_eq!(s0.segment_ids(), vec![0, 0, 0, 1, 1]);
        assert_eq!(&*store.sequence(1).expect("seq").tokens, &[6, 7, 8]);
    }
}

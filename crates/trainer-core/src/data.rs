//! Training data as the loop sees it: sources of token sequences (with loss masks and document
//! boundaries), a deterministic, resumable stream over them (seeded shuffling per epoch, replay
//! mixing), and micro-batches with targets, positions and segment ids.

use std::path::Path;
use std::sync::Arc;

use infuse_data_prep::TokenStore;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One training sequence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sequence {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// Per-token training flag: `true` when the token is a target (predicted from the ones
    /// before it). `None` trains every token.
    pub loss_mask: Option<Vec<bool>>,
    /// Offsets where documents start inside a packed sequence (the first is 0).
    pub doc_starts: Vec<u32>,
}

impl Sequence {
    /// A single-document sequence trained on every token.
    pub fn plain(tokens: Vec<u32>) -> Self {
        Self { tokens, loss_mask: None, doc_starts: vec![0] }
    }

    /// A single-document sequence with a loss mask.
    pub fn masked(tokens: Vec<u32>, mask: Vec<bool>) -> Self {
        Self { tokens, loss_mask: Some(mask), doc_starts: vec![0] }
    }

    /// Concatenate several sequences into one packed sequence (documents kept apart by
    /// `doc_starts`).
    pub fn pack(parts: &[Sequence]) -> Self {
        let mut out = Sequence::default();
        let any_mask = parts.iter().any(|p| p.loss_mask.is_some());
        let mut mask = Vec::new();
        for p in parts {
            let base = out.tokens.len() as u32;
            out.doc_starts.extend(p.doc_starts.iter().map(|s| s + base));
            if any_mask {
                match &p.loss_mask {
                    Some(m) => mask.extend_from_slice(m),
                    None => mask.extend(std::iter::repeat_n(true, p.tokens.len())),
                }
            }
            out.tokens.extend_from_slice(&p.tokens);
        }
        if out.doc_starts.is_empty() {
            out.doc_starts.push(0);
        }
        out.loss_mask = any_mask.then_some(mask);
        out
    }
}

/// Random access to training sequences.
pub trait SequenceSource: Send + Sync {
    /// Number of sequences.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sequence `i`.
    fn get(&self, i: usize) -> Result<Sequence>;
    /// Where the data comes from, for messages.
    fn describe(&self) -> String;
}

/// Sequences held in memory (tests, rendered SFT data).
#[derive(Debug, Clone, Default)]
pub struct InMemorySource {
    /// The sequences.
    pub sequences: Vec<Sequence>,
    /// A name for messages.
    pub name: String,
}

impl InMemorySource {
    /// A named in-memory source.
    pub fn new(name: impl Into<String>, sequences: Vec<Sequence>) -> Self {
        Self { sequences, name: name.into() }
    }
}

impl SequenceSource for InMemorySource {
    fn len(&self) -> usize {
        self.sequences.len()
    }
    fn get(&self, i: usize) -> Result<Sequence> {
        self.sequences
            .get(i)
            .cloned()
            .ok_or_else(|| Error::Data { origin: self.name.clone(), message: format!("sequence {i} out of range") })
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// A memory-mapped token store written by `infuse prep` (never loaded whole).
#[derive(Debug)]
pub struct TokenStoreSource {
    store: TokenStore,
}

impl TokenStoreSource {
    /// Open a store directory.
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(Self { store: TokenStore::open(dir)? })
    }

    /// The store.
    pub fn store(&self) -> &TokenStore {
        &self.store
    }
}

impl SequenceSource for TokenStoreSource {
    fn len(&self) -> usize {
        self.store.num_sequences()
    }
    fn get(&self, i: usize) -> Result<Sequence> {
        let v = self.store.sequence(i)?;
        Ok(Sequence {
            tokens: v.tokens.to_vec(),
            loss_mask: v.loss_mask.map(|m| m.iter().map(|&b| b != 0).collect()),
            doc_starts: v.doc_starts.to_vec(),
        })
    }
    fn describe(&self) -> String {
        self.store.dir().display().to_string()
    }
}

/// Several sources one after another.
pub struct Concat {
    parts: Vec<Arc<dyn SequenceSource>>,
    offsets: Vec<usize>,
}

impl Concat {
    /// Concatenate sources.
    pub fn new(parts: Vec<Arc<dyn SequenceSource>>) -> Self {
        let mut offsets = Vec::with_capacity(parts.len() + 1);
        let mut total = 0;
        for p in &parts {
            offsets.push(total);
            total += p.len();
        }
        offsets.push(total);
        Self { parts, offsets }
    }
}

impl SequenceSource for Concat {
    fn len(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }
    fn get(&self, i: usize) -> Result<Sequence> {
        let k = self.offsets.partition_point(|&o| o <= i).saturating_sub(1);
        match self.parts.get(k) {
            Some(p) => p.get(i - self.offsets[k]),
            None => Err(Error::Data { origin: self.describe(), message: format!("sequence {i} out of range") }),
        }
    }
    fn describe(&self) -> String {
        self.parts.iter().map(|p| p.describe()).collect::<Vec<_>>().join(" + ")
    }
}

/// A selection of another source's sequences (train/validation splits).
pub struct Subset {
    inner: Arc<dyn SequenceSource>,
    indices: Vec<usize>,
    name: String,
}

impl Subset {
    /// The sequences `indices` of `inner`.
    pub fn new(inner: Arc<dyn SequenceSource>, indices: Vec<usize>, name: impl Into<String>) -> Self {
        Self { inner, indices, name: name.into() }
    }
}

impl SequenceSource for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn get(&self, i: usize) -> Result<Sequence> {
        let j = *self
            .indices
            .get(i)
            .ok_or_else(|| Error::Data { origin: self.name.clone(), message: format!("sequence {i} out of range") })?;
        self.inner.get(j)
    }
    fn describe(&self) -> String {
        format!("{} ({})", self.name, self.inner.describe())
    }
}

/// Split `source` into (train, validation): `size` < 1 is a fraction, otherwise a count; the
/// held-out sequences are chosen by a seeded shuffle.
pub fn split_validation(source: Arc<dyn SequenceSource>, size: f64, seed: u64) -> Result<(Arc<dyn SequenceSource>, Arc<dyn SequenceSource>)> {
    let n = source.len();
    let k = if size < 1.0 { (size * n as f64).round() as usize } else { size as usize };
    if k == 0 || k >= n {
        return Err(Error::Data {
            origin: source.describe(),
            message: format!("val_set_size {size} leaves {k} of {n} sequences for validation (need 1..{n})"),
        });
    }
    let order = permutation(n, seed ^ 0x005E_ED0F_5A11);
    let mut valid: Vec<usize> = order[..k].to_vec();
    let mut train: Vec<usize> = order[k..].to_vec();
    valid.sort_unstable();
    train.sort_unstable();
    Ok((
        Arc::new(Subset::new(source.clone(), train, "train split")),
        Arc::new(Subset::new(source, valid, "validation split")),
    ))
}

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// A seeded permutation of `0..n` (Fisher-Yates).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64(seed);
    for i in (1..n).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
    v
}

/// Where a [`DataStream`] stands; saved in checkpoints for exact resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DataPosition {
    /// Epoch of the main data.
    pub epoch: u64,
    /// Next index within that epoch's order.
    pub index: u64,
    /// Epoch of the replay data.
    pub replay_epoch: u64,
    /// Next index within the replay epoch's order.
    pub replay_index: u64,
    /// Sequences served so far (main + replay).
    pub served: u64,
}

struct Ordered {
    source: Arc<dyn SequenceSource>,
    salt: u64,
    cached: Option<(u64, Vec<usize>)>,
}

impl Ordered {
    fn order(&mut self, epoch: u64, seed: u64, shuffle: bool) -> &[usize] {
        let n = self.source.len();
        let fresh = !matches!(&self.cached, Some((e, _)) if *e == epoch);
        if fresh {
            let order = if shuffle {
                permutation(n, seed ^ self.salt ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            } else {
                (0..n).collect()
            };
            self.cached = Some((epoch, order));
        }
        match &self.cached {
            Some((_, o)) => o,
            None => &[],
        }
    }
}

/// An endless, deterministic stream of training sequences: the main data in a seeded order per
/// epoch, with replay sequences interleaved at a fixed ratio (sequence `k` comes from the replay
/// data when `floor((k + 1)·r) > floor(k·r)`). Its [`DataPosition`] determines the rest of the
/// stream exactly.
pub struct DataStream {
    main: Ordered,
    replay: Option<(Ordered, f64)>,
    seed: u64,
    shuffle: bool,
    pos: DataPosition,
}

impl DataStream {
    /// A stream over `main`, optionally mixing `replay` at `ratio`.
    pub fn new(main: Arc<dyn SequenceSource>, replay: Option<(Arc<dyn SequenceSource>, f64)>, seed: u64, shuffle: bool) -> Result<Self> {
        if main.is_empty() {
            return Err(Error::Data { origin: main.describe(), message: "no training sequences".into() });
        }
        if let Some((r, _)) = &replay
            && r.is_empty()
        {
            return Err(Error::Data { origin: r.describe(), message: "no replay sequences".into() });
        }
        Ok(Self {
            main: Ordered { source: main, salt: 0x0A11_CE00, cached: None },
            replay: replay.map(|(s, r)| (Ordered { source: s, salt: 0x0BEE_F000, cached: None }, r)),
            seed,
            shuffle,
            pos: DataPosition::default(),
        })
    }

    /// Sequences in one epoch of the main data.
    pub fn main_len(&self) -> usize {
        self.main.source.len()
    }

    /// Fraction of the stream drawn from replay data.
    pub fn replay_ratio(&self) -> f64 {
        self.replay.as_ref().map_or(0.0, |(_, r)| *r)
    }

    /// The current position.
    pub fn position(&self) -> DataPosition {
        self.pos
    }

    /// Jump to a saved position.
    pub fn set_position(&mut self, pos: DataPosition) {
        self.pos = pos;
    }

    /// Epochs of the main data completed, fractional.
    pub fn epoch_progress(&self) -> f64 {
        self.pos.epoch as f64 + self.pos.index as f64 / self.main_len().max(1) as f64
    }

    /// The next sequence.
    pub fn next_sequence(&mut self) -> Result<Sequence> {
        let k = self.pos.served;
        self.pos.served += 1;
        if let Some((replay, r)) = self.replay.as_mut() {
            let take = ((k + 1) as f64 * *r).floor() > (k as f64 * *r).floor();
            if take {
                let n = replay.source.len() as u64;
                let i = replay.order(self.pos.replay_epoch, self.seed, self.shuffle)[self.pos.replay_index as usize];
                self.pos.replay_index += 1;
                if self.pos.replay_index >= n {
                    self.pos.replay_index = 0;
                    self.pos.replay_epoch += 1;
                }
                return replay.source.get(i);
            }
        }
        let n = self.main.source.len() as u64;
        let i = self.main.order(self.pos.epoch, self.seed, self.shuffle)[self.pos.index as usize];
        self.pos.index += 1;
        if self.pos.index >= n {
            self.pos.index = 0;
            self.pos.epoch += 1;
        }
        self.main.source.get(i)
    }
}

/// How sequences become a micro-batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Attention stays inside documents (block-diagonal), positions restart per document, and the
    /// first token of a document is never a target.
    pub block_diagonal: bool,
    /// Id written into padding positions (never a target, never attended by real tokens).
    pub pad_id: u32,
    /// Sequences are truncated to this many tokens.
    pub max_len: usize,
}

/// A micro-batch on the host, right-padded to its longest sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Rows.
    pub batch: usize,
    /// Columns (longest sequence).
    pub len: usize,
    /// `[batch * len]` input ids.
    pub input_ids: Vec<i64>,
    /// `[batch * len]` positions, when they differ from `0..len` (packed documents).
    pub position_ids: Option<Vec<i64>>,
    /// `[batch * len]` document ids, for block-diagonal attention.
    pub segment_ids: Option<Vec<i64>>,
    /// Flat positions (`row * len + col`) whose next token is a target.
    pub target_rows: Vec<i64>,
    /// The target token of each entry of `target_rows`.
    pub targets: Vec<u32>,
    /// Real (non-padding) tokens.
    pub num_tokens: usize,
}

/// Build a micro-batch. Position `i` of a sequence predicts token `i + 1`, which is a target when
/// its loss-mask flag is set and (with `block_diagonal`) it does not start a document.
pub fn make_batch(seqs: &[Sequence], options: &BatchOptions) -> Batch {
    let len = seqs.iter().map(|s| s.tokens.len().min(options.max_len)).max().unwrap_or(0).max(1);
    let b = seqs.len();
    let mut input_ids = vec![i64::from(options.pad_id); b * len];
    let mut positions = vec![0i64; b * len];
    // Padding gets its own segment (-1): real tokens never attend to it.
    let mut segments = vec![-1i64; b * len];
    let mut packed = false;
    let mut target_rows = Vec::new();
    let mut targets = Vec::new();
    let mut num_tokens = 0;
    for (r, s) in seqs.iter().enumerate() {
        let n = s.tokens.len().min(options.max_len);
        num_tokens += n;
        let starts: Vec<usize> = if options.block_diagonal {
            s.doc_starts.iter().map(|&x| x as usize).filter(|&x| x < n).collect()
        } else {
            vec![0]
        };
        packed |= starts.len() > 1;
        let mut doc = 0usize;
        let mut pos = 0i64;
        let mut next_start = starts.iter().skip(1).peekable();
        for i in 0..n {
            if next_start.peek() == Some(&&i) {
                next_start.next();
                doc += 1;
                pos = 0;
            }
            input_ids[r * len + i] = i64::from(s.tokens[i]);
            positions[r * len + i] = pos;
            segments[r * len + i] = doc as i64;
            pos += 1;
        }
        for i in 0..n.saturating_sub(1) {
            let j = i + 1;
            let trained = s.loss_mask.as_ref().is_none_or(|m| m.get(j).copied().unwrap_or(false));
            let boundary = options.block_diagonal && starts.contains(&j);
            if trained && !boundary {
                target_rows.push((r * len + i) as i64);
                targets.push(s.tokens[j]);
            }
        }
    }
    Batch {
        batch: b,
        len,
        input_ids,
        position_ids: packed.then_some(positions),
        segment_ids: packed.then_some(segments),
        target_rows,
        targets,
        num_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_respect_masks_and_document_starts() {
        let a = Sequence::masked(vec![10, 11, 12], vec![false, true, true]);
        let b = Sequence::masked(vec![20, 21], vec![false, true]);
        let packed = Sequence::pack(&[a, b]);
        assert_eq!(packed.doc_starts, vec![0, 3]);
        let opts = BatchOptions { block_diagonal: true, pad_id: 0, max_len: 16 };
        let batch = make_batch(&[packed], &opts);
        assert_eq!(batch.targets, vec![11, 12, 21]);
        assert_eq!(batch.target_rows, vec![0, 1, 3]);
        assert_eq!(batch.position_ids, Some(vec![0, 1, 2, 0, 1]));
        assert_eq!(batch.segment_ids.as_deref().map(|s| &s[..5]), Some(&[0, 0, 0, 1, 1][..]));
        // Plain causal training over packed documents trains across the boundary.
        let plain = make_batch(&[Sequence::pack(&[Sequence::plain(vec![1, 2]), Sequence::plain(vec![3])])], &BatchOptions { block_diagonal: false, pad_id: 0, max_len: 16 });
        assert_eq!(plain.targets, vec![2, 3]);
        assert!(plain.position_ids.is_none());
    }

    #[test]
    fn stream_is_deterministic_and_resumable_with_replay() {
        let main: Arc<dyn SequenceSource> = Arc::new(InMemorySource::new("m", (0..5).map(|i| Sequence::plain(vec![i])).collect()));
        let rep: Arc<dyn SequenceSource> = Arc::new(InMemorySource::new("r", (100..103).map(|i| Sequence::plain(vec![i])).collect()));
        let mut s = DataStream::new(main.clone(), Some((rep.clone(), 0.25)), 7, true).expect("stream");
        let first: Vec<u32> = (0..40).map(|_| s.next_sequence().expect("seq").tokens[0]).collect();
        assert_eq!(first.iter().filter(|&&t| t >= 100).count(), 10, "a quarter is replay");
        // Every epoch of the main data is a permutation.
        let mains: Vec<u32> = first.iter().copied().filter(|&t| t < 100).collect();
        let mut e0 = mains[..5].to_vec();
        e0.sort_unstable();
        assert_eq!(e0, vec![0, 1, 2, 3, 4]);
        let mut s2 = DataStream::new(main, Some((rep, 0.25)), 7, true).expect("stream");
        for _ in 0..17 {
            s2.next_sequence().expect("seq");
        }
        let pos = s2.position();
        let mut s3 = DataStream::new(Arc::new(InMemorySource::new("m", (0..5).map(|i| Sequence::plain(vec![i])).collect())), Some((Arc::new(InMemorySource::new("r", (100..103).map(|i| Sequence::plain(vec![i])).collect())), 0.25)), 7, true).expect("stream");
        s3.set_position(pos);
        let rest: Vec<u32> = (17..40).map(|_| s3.next_sequence().expect("seq").tokens[0]).collect();
        assert_eq!(rest, first[17..].to_vec());
    }
}

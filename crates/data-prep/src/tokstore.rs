//! The memory-mapped token store the trainers stream from.
//!
//! A store is a directory:
//!
//! | file | content |
//! | --- | --- |
//! | `tokens.bin` | all token ids, `u32` little-endian, sequence after sequence |
//! | `index.bin` | `num_sequences + 1` rows of two `u64` little-endian: the first token of the sequence in `tokens.bin`, and its first entry in `boundaries.bin` (the last row is the end sentinel) |
//! | `boundaries.bin` | `u32` little-endian: for each sequence, the offsets (within the sequence) where a document or sample starts; the first is always 0 |
//! | `loss_mask.bin` | optional, one byte per token: 1 when the token is a training target |
//! | `meta.json` | [`StoreMeta`]: format name and version, tokenizer, `seq_len`, counts, seed, sources |
//!
//! Position ids restart at 0 at every boundary ([`SequenceView::position_ids`]) and
//! [`SequenceView::segment_ids`] numbers the documents inside a sequence, so attention can be
//! block-diagonal: no token attends across a document boundary. A store is written once into a
//! temporary directory and renamed into place, and never modified afterwards, which is what makes
//! memory-mapping it sound.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::write::{sync_dir, tmp_path};
use crate::{Error, Result};

/// The `format` value in `meta.json`.
pub const STORE_FORMAT: &str = "infuse-token-store";
/// The current `version` in `meta.json`.
pub const STORE_VERSION: u32 = 1;

/// Contents of `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreMeta {
    /// Always [`STORE_FORMAT`].
    pub format: String,
    /// [`STORE_VERSION`].
    pub version: u32,
    /// What the sequences are for: `cpt`, `sft`, `dpo_chosen`, `dpo_rejected`.
    pub kind: String,
    /// `train` or `valid`.
    pub split: String,
    /// The tokenizer file (as given in the configuration).
    pub tokenizer: String,
    /// Vocabulary size including added tokens.
    pub vocab_size: usize,
    /// Maximum sequence length.
    pub seq_len: usize,
    /// Number of sequences.
    pub num_sequences: u64,
    /// Number of tokens.
    pub num_tokens: u64,
    /// Number of document/sample segments (boundaries).
    pub num_segments: u64,
    /// Tokens with loss (equals `num_tokens` without a mask).
    pub num_loss_tokens: u64,
    /// Whether `loss_mask.bin` exists.
    pub has_loss_mask: bool,
    /// Seed used for shuffling and splitting.
    pub seed: u64,
    /// Whether sequences were shuffled after packing.
    pub shuffled: bool,
    /// Tokens per source name.
    #[serde(default)]
    pub source_tokens: BTreeMap<String, u64>,
    /// Anything else (packing policy, template name, ...).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Describes a store before it is written.
#[derive(Debug, Clone)]
pub struct StoreSpec {
    /// See [`StoreMeta::kind`].
    pub kind: String,
    /// See [`StoreMeta::split`].
    pub split: String,
    /// See [`StoreMeta::tokenizer`].
    pub tokenizer: String,
    /// See [`StoreMeta::vocab_size`].
    pub vocab_size: usize,
    /// See [`StoreMeta::seq_len`].
    pub seq_len: usize,
    /// See [`StoreMeta::seed`].
    pub seed: u64,
    /// Write `loss_mask.bin`.
    pub has_loss_mask: bool,
}

struct Outs {
    tokens: Out,
    index: Out,
    boundaries: Out,
    mask: Option<Out>,
}

struct Out {
    path: PathBuf,
    w: BufWriter<File>,
}

impl Out {
    fn create(path: PathBuf) -> Result<Self> {
        let f = File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
        Ok(Self {
            path,
            w: BufWriter::with_capacity(1 << 20, f),
        })
    }
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.w
            .write_all(bytes)
            .map_err(|e| Error::io("cannot write", &self.path, e))
    }
    fn finish(self) -> Result<()> {
        let f = self
            .w
            .into_inner()
            .map_err(|e| Error::io("cannot write", &self.path, e.into_error()))?;
        f.sync_all()
            .map_err(|e| Error::io("cannot sync", &self.path, e))
    }
}

/// Writes a token store into a temporary directory; [`TokenStoreWriter::finish`] renames it into
/// place (replacing an older store at that path).
pub struct TokenStoreWriter {
    target: PathBuf,
    tmp: PathBuf,
    spec: StoreSpec,
    outs: Option<Outs>,
    n_tokens: u64,
    n_bounds: u64,
    n_seqs: u64,
    n_loss: u64,
    source_tokens: BTreeMap<String, u64>,
    done: bool,
}

impl std::fmt::Debug for TokenStoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStoreWriter")
            .field("target", &self.target)
            .field("sequences", &self.n_seqs)
            .finish_non_exhaustive()
    }
}

fn u32s_le(v: &[u32]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(v))
    } else {
        Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

impl TokenStoreWriter {
    /// Start a store at `dir`.
    pub fn create(dir: impl AsRef<Path>, spec: StoreSpec) -> Result<Self> {
        let target = dir.as_ref().to_owned();
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("cannot create directory", parent, e))?;
        }
        let tmp = tmp_path(&target);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io("cannot create directory", &tmp, e))?;
        let mut index = Out::create(tmp.join("index.bin"))?;
        index.write(&[0u8; 16])?;
        let outs = Outs {
            tokens: Out::create(tmp.join("tokens.bin"))?,
            index,
            boundaries: Out::create(tmp.join("boundaries.bin"))?,
            mask: if spec.has_loss_mask {
                Some(Out::create(tmp.join("loss_mask.bin"))?)
            } else {
                None
            },
        };
        Ok(Self {
            outs: Some(outs),
            target,
            tmp,
            spec,
            n_tokens: 0,
            n_bounds: 0,
            n_seqs: 0,
            n_loss: 0,
            source_tokens: BTreeMap::new(),
            done: false,
        })
    }

    /// Append one sequence. `doc_starts` must start with 0 and be strictly increasing and below
    /// `tokens.len()`; `loss_mask` is required exactly when the store has one.
    pub fn push(
        &mut self,
        tokens: &[u32],
        loss_mask: Option<&[bool]>,
        doc_starts: &[u32],
    ) -> Result<()> {
        let bad = |m: String| Error::TokenStore {
            path: self.target.clone(),
            message: m,
        };
        let Some(outs) = self.outs.as_mut() else {
            return Err(bad("store already finished".into()));
        };
        if tokens.is_empty() {
            return Err(bad("empty sequence".into()));
        }
        if doc_starts.first() != Some(&0)
            || doc_starts.windows(2).any(|w| w[0] >= w[1])
            || doc_starts
                .last()
                .is_some_and(|&l| l as usize >= tokens.len())
        {
            return Err(bad(format!(
                "invalid document boundaries {doc_starts:?} for {} tokens",
                tokens.len()
            )));
        }
        match (&mut outs.mask, loss_mask) {
            (Some(out), Some(mask)) => {
                if mask.len() != tokens.len() {
                    return Err(bad(format!(
                        "loss mask has {} entries for {} tokens",
                        mask.len(),
                        tokens.len()
                    )));
                }
                let bytes: Vec<u8> = mask.iter().map(|&b| u8::from(b)).collect();
                self.n_loss += bytes.iter().map(|&b| u64::from(b)).sum::<u64>();
                out.write(&bytes)?;
            }
            (None, None) => self.n_loss += tokens.len() as u64,
            (Some(_), None) => return Err(bad("this store needs a loss mask per sequence".into())),
            (None, Some(_)) => return Err(bad("this store has no loss mask".into())),
        }
        outs.tokens.write(&u32s_le(tokens))?;
        outs.boundaries.write(&u32s_le(doc_starts))?;
        self.n_tokens += tokens.len() as u64;
        self.n_bounds += doc_starts.len() as u64;
        self.n_seqs += 1;
        let mut row = [0u8; 16];
        row[..8].copy_from_slice(&self.n_tokens.to_le_bytes());
        row[8..].copy_from_slice(&self.n_bounds.to_le_bytes());
        outs.index.write(&row)
    }

    /// Count `n` tokens towards `source` in the metadata.
    pub fn add_source_tokens(&mut self, source: &str, n: u64) {
        *self.source_tokens.entry(source.to_owned()).or_default() += n;
    }

    /// Sequences written so far.
    pub fn num_sequences(&self) -> u64 {
        self.n_seqs
    }

    /// Write `meta.json`, sync, and rename the directory into place.
    pub fn finish(
        mut self,
        shuffled: bool,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<StoreMeta> {
        let meta = StoreMeta {
            format: STORE_FORMAT.into(),
            version: STORE_VERSION,
            kind: self.spec.kind.clone(),
            split: self.spec.split.clone(),
            tokenizer: self.spec.tokenizer.clone(),
            vocab_size: self.spec.vocab_size,
            seq_len: self.spec.seq_len,
            num_sequences: self.n_seqs,
            num_tokens: self.n_tokens,
            num_segments: self.n_bounds,
            num_loss_tokens: self.n_loss,
            has_loss_mask: self.spec.has_loss_mask,
            seed: self.spec.seed,
            shuffled,
            source_tokens: std::mem::take(&mut self.source_tokens),
            extra,
        };
        let tmp = self.tmp.clone();
        if let Some(outs) = self.outs.take() {
            outs.tokens.finish()?;
            outs.index.finish()?;
            outs.boundaries.finish()?;
            if let Some(m) = outs.mask {
                m.finish()?;
            }
        }
        let mut json = serde_json::to_string_pretty(&meta)?;
        json.push('\n');
        let meta_path = tmp.join("meta.json");
        std::fs::write(&meta_path, json).map_err(|e| Error::io("cannot write", &meta_path, e))?;
        if let Ok(f) = File::open(&meta_path) {
            let _ = f.sync_all();
        }
        sync_dir(&tmp);
        let old = if self.target.exists() {
            let old = tmp_path(&self.target);
            std::fs::rename(&self.target, &old)
                .map_err(|e| Error::io("cannot move aside", &self.target, e))?;
            Some(old)
        } else {
            None
        };
        std::fs::rename(&tmp, &self.target)
            .map_err(|e| Error::io("cannot rename into", &self.target, e))?;
        if let Some(parent) = self.target.parent() {
            sync_dir(parent);
        }
        if let Some(old) = old {
            let _ = std::fs::remove_dir_all(old);
        }
        self.done = true;
        Ok(meta)
    }
}

impl Drop for TokenStoreWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// A read-only, memory-mapped token store.
pub struct TokenStore {
    dir: PathBuf,
    meta: StoreMeta,
    tokens: Option<Mmap>,
    index: Option<Mmap>,
    boundaries: Option<Mmap>,
    mask: Option<Mmap>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("dir", &self.dir)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// One sequence of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceView<'a> {
    /// Token ids.
    pub tokens: Cow<'a, [u32]>,
    /// Per-token loss flag (1 = trained), when the store has a mask.
    pub loss_mask: Option<&'a [u8]>,
    /// Offsets where documents/samples start (first is 0).
    pub doc_starts: Cow<'a, [u32]>,
}

impl SequenceView<'_> {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True for an empty sequence (never produced by the writer).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Position ids, restarting at 0 at every document start.
    pub fn position_ids(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.tokens.len());
        let mut starts = self.doc_starts.iter().skip(1).peekable();
        let mut pos = 0u32;
        for i in 0..self.tokens.len() as u32 {
            if starts.peek() == Some(&&i) {
                starts.next();
                pos = 0;
            }
            out.push(pos);
            pos += 1;
        }
        out
    }

    /// Document index of every token (0, 0, ..., 1, 1, ...): tokens attend only within equal ids.
    pub fn segment_ids(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.tokens.len());
        let mut seg = 0u32;
        let mut starts = self.doc_starts.iter().skip(1).peekable();
        for i in 0..self.tokens.len() as u32 {
            if starts.peek() == Some(&&i) {
                starts.next();
                seg += 1;
            }
            out.push(seg);
        }
        out
    }

    /// `(start, end)` token ranges of the documents.
    pub fn documents(&self) -> Vec<(usize, usize)> {
        let n = self.tokens.len();
        self.doc_starts
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                (
                    s as usize,
                    self.doc_starts.get(i + 1).map_or(n, |&e| e as usize),
                )
            })
            .collect()
    }
}

fn map_file(path: &Path) -> Result<Option<Mmap>> {
    let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("cannot stat", path, e))?
        .len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: token stores are written once into a temporary directory, renamed into place and
    // never modified afterwards (see the module documentation); the map is read-only. Truncating
    // the files while a store is open is outside this contract.
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io("cannot map", path, e))?;
    Ok(Some(map))
}

fn bytes(m: &Option<Mmap>) -> &[u8] {
    m.as_deref().unwrap_or(&[])
}

fn u32s(b: &[u8]) -> Cow<'_, [u32]> {
    if cfg!(target_endian = "little")
        && let Ok(s) = bytemuck::try_cast_slice::<u8, u32>(b)
    {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

impl TokenStore {
    /// Open a store directory and check that its files agree with `meta.json`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        let bad = |m: String| Error::TokenStore {
            path: dir.clone(),
            message: m,
        };
        let meta_path = dir.join("meta.json");
        let text = std::fs::read_to_string(&meta_path)
            .map_err(|e| Error::io("cannot read", &meta_path, e))?;
        let meta: StoreMeta =
            serde_json::from_str(&text).map_err(|e| bad(format!("meta.json: {e}")))?;
        if meta.format != STORE_FORMAT || meta.version != STORE_VERSION {
            return Err(bad(format!(
                "unsupported format {:?} version {}",
                meta.format, meta.version
            )));
        }
        let tokens = map_file(&dir.join("tokens.bin"))?;
        let index = map_file(&dir.join("index.bin"))?;
        let boundaries = map_file(&dir.join("boundaries.bin"))?;
        let mask = if meta.has_loss_mask {
            map_file(&dir.join("loss_mask.bin"))?
        } else {
            None
        };
        let store = Self {
            dir: dir.clone(),
            meta,
            tokens,
            index,
            boundaries,
            mask,
        };
        let n = store.meta.num_sequences;
        if bytes(&store.index).len() as u64 != (n + 1) * 16 {
            return Err(bad(format!(
                "index.bin has {} bytes, expected {}",
                bytes(&store.index).len(),
                (n + 1) * 16
            )));
        }
        if bytes(&store.tokens).len() as u64 != store.meta.num_tokens * 4 {
            return Err(bad("tokens.bin size does not match meta.json".into()));
        }
        if bytes(&store.boundaries).len() as u64 != store.meta.num_segments * 4 {
            return Err(bad("boundaries.bin size does not match meta.json".into()));
        }
        if store.meta.has_loss_mask && bytes(&store.mask).len() as u64 != store.meta.num_tokens {
            return Err(bad("loss_mask.bin size does not match meta.json".into()));
        }
        let (t_end, b_end) = store.row(n as usize);
        if t_end != store.meta.num_tokens || b_end != store.meta.num_segments {
            return Err(bad("index.bin end sentinel does not match meta.json".into()));
        }
        Ok(store)
    }

    fn row(&self, i: usize) -> (u64, u64) {
        let b = &bytes(&self.index)[i * 16..i * 16 + 16];
        let mut t = [0u8; 8];
        let mut s = [0u8; 8];
        t.copy_from_slice(&b[..8]);
        s.copy_from_slice(&b[8..]);
        (u64::from_le_bytes(t), u64::from_le_bytes(s))
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `meta.json`.
    pub fn meta(&self) -> &StoreMeta {
        &self.meta
    }

    /// Number of sequences.
    pub fn num_sequences(&self) -> usize {
        self.meta.num_sequences as usize
    }

    /// Sequence `i` (tokens borrowed from the map on little-endian machines).
    pub fn sequence(&self, i: usize) -> Result<SequenceView<'_>> {
        if i >= self.num_sequences() {
            return Err(Error::TokenStore {
                path: self.dir.clone(),
                message: format!(
                    "sequence {i} out of range (store has {})",
                    self.num_sequences()
                ),
            });
        }
        let (t0, b0) = self.row(i);
        let (t1, b1) = self.row(i + 1);
        if t1 < t0 || b1 <= b0 || t1 > self.meta.num_tokens || b1 > self.meta.num_segments {
            return Err(Error::TokenStore {
                path: self.dir.clone(),
                message: format!("corrupt index row {i}"),
            });
        }
        let (t0, t1, b0, b1) = (t0 as usize, t1 as usize, b0 as usize, b1 as usize);
        Ok(SequenceView {
            tokens: u32s(&bytes(&self.tokens)[t0 * 4..t1 * 4]),
            loss_mask: self.mask.as_ref().map(|m| &m[t0..t1]),
            doc_starts: u32s(&bytes(&self.boundaries)[b0 * 4..b1 * 4]),
        })
    }

    /// Iterate over all sequences.
    pub fn iter(&self) -> impl Iterator<Item = Result<SequenceView<'_>>> + '_ {
        (0..self.num_sequences()).map(|i| self.sequence(i))
    }

    /// Write a copy of this store with its sequences in `order` (a permutation or a selection).
    pub fn write_reordered(
        &self,
        dir: impl AsRef<Path>,
        order: &[usize],
        shuffled: bool,
    ) -> Result<StoreMeta> {
        let spec = StoreSpec {
            kind: self.meta.kind.clone(),
            split: self.meta.split.clone(),
            tokenizer: self.meta.tokenizer.clone(),
            vocab_size: self.meta.vocab_size,
            seq_len: self.meta.seq_len,
            seed: self.meta.seed,
            has_loss_mask: self.meta.has_loss_mask,
        };
        let mut w = TokenStoreWriter::create(dir, spec)?;
        for &i in order {
            let s = self.sequence(i)?;
            let mask: Option<Vec<bool>> = s.loss_mask.map(|m| m.iter().map(|&b| b != 0).collect());
            w.push(&s.tokens, mask.as_deref(), &s.doc_starts)?;
        }
        for (k, v) in &self.meta.source_tokens {
            w.add_source_tokens(k, *v);
        }
        w.finish(shuffled, self.meta.extra.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mask: bool) -> StoreSpec {
        StoreSpec {
            kind: "sft".into(),
            split: "train".into(),
            tokenizer: "tok.json".into(),
            vocab_size: 100,
            seq_len: 8,
            seed: 7,
            has_loss_mask: mask,
        }
    }

    #[test]
    fn round_trip_with_mask_and_positions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store");
        let mut w = TokenStoreWriter::create(&path, spec(true)).expect("create");
        w.push(
            &[1, 2, 3, 4, 5],
            Some(&[false, false, true, true, false]),
            &[0, 3],
        )
        .expect("push");
        w.push(&[9, 8], Some(&[true, true]), &[0]).expect("push");
        assert!(w.push(&[1, 2], Some(&[true]), &[0]).is_err(), "mask length");
        assert!(
            w.push(&[1, 2], Some(&[true, true]), &[1]).is_err(),
            "first boundary must be 0"
        );
        assert!(w.push(&[1, 2], None, &[0]).is_err(), "mask required");
        w.add_source_tokens("a", 7);
        let meta = w.finish(false, serde_json::Map::new()).expect("finish");
        assert_eq!(
            (
                meta.num_sequences,
                meta.num_tokens,
                meta.num_segments,
                meta.num_loss_tokens
            ),
            (2, 7, 3, 4)
        );
        let store = TokenStore::open(&path).expect("open");
        assert_eq!(store.num_sequences(), 2);
        let s = store.sequence(0).expect("seq");
        assert_eq!(&*s.tokens, &[1, 2, 3, 4, 5]);
        assert_eq!(s.loss_mask, Some(&[0u8, 0, 1, 1, 0][..]));
        assert_eq!(s.position_ids(), vec![0, 1, 2, 0, 1]);
        assert_eq!(s.segment_ids(), vec![0, 0, 0, 1, 1]);
        assert_eq!(s.documents(), vec![(0, 3), (3, 5)]);
        assert_eq!(&*store.sequence(1).expect("seq").tokens, &[9, 8]);
        assert!(store.sequence(2).is_err());
        // Reordering writes a consistent copy.
        let re = store
            .write_reordered(dir.path().join("re"), &[1, 0], true)
            .expect("reorder");
        assert!(re.shuffled);
        let r = TokenStore::open(dir.path().join("re")).expect("open");
        assert_eq!(&*r.sequence(0).expect("seq").tokens, &[9, 8]);
        assert_eq!(r.meta().source_tokens.get("a"), Some(&7));
        // No temp directories left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn corrupt_store_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let mut w = TokenStoreWriter::create(&path, spec(false)).expect("create");
        w.push(&[1, 2, 3], None, &[0]).expect("push");
        w.finish(false, serde_json::Map::new()).expect("finish");
        std::fs::write(path.join("tokens.bin"), [0u8; 8]).expect("truncate");
        let err = TokenStore::open(&path).expect_err("corrupt");
        assert!(err.to_string().contains("tokens.bin"), "{err}");
        assert!(TokenStore::open(dir.path().join("missing")).is_err());
    }

    #[test]
    fn replacing_an_existing_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        for n in [3u32, 5] {
            let mut w = TokenStoreWriter::create(&path, spec(false)).expect("create");
            w.push(&(0..n).collect::<Vec<_>>(), None, &[0])
                .expect("push");
            w.finish(false, serde_json::Map::new()).expect("finish");
        }
        assert_eq!(TokenStore::open(&path).expect("open").meta().num_tokens, 5);
    }
}

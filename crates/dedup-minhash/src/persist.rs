//! Shard signature files: what one rank computed, to be merged and clustered elsewhere.
//!
//! Layout (little-endian): magic `INFDSIG1`; u32 length + JSON header (format version, config and
//! source fingerprints, rank, world, counts); per record: part u32, index u64, locator u64,
//! text length u64, score flag u8 + f64, units u32, spans u32, id (u32 length + UTF-8); per unit:
//! record (relative, u32), span u32, start u32, end u32; the signature words (u32 each);
//! the listed skipped records (line u64, file and reason as u32 length + UTF-8); magic `INFDEND1`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::DedupConfig;
use crate::engine::{Deduper, RecordEntry, UnitEntry};
use crate::error::{DedupError, Result};
use crate::io::atomic_write_with;
use crate::source::{RecordKey, ShardSpec, SkippedRecord};

const MAGIC: &[u8; 8] = b"INFDSIG1";
const END: &[u8; 8] = b"INFDEND1";
const VERSION: u32 = 1;

/// The parts of a config that change signatures; shards must agree on them.
pub(crate) fn config_fingerprint(c: &DedupConfig) -> String {
    serde_json::json!({
        "method": c.method,
        "granularity": c.granularity,
        "shingle": c.shingle,
        "num_perm": c.num_perm,
        "family": c.family,
        "base_hash": c.base_hash,
        "seed": c.seed,
        "min_span_words": c.min_span_words,
    })
    .to_string()
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    version: u32,
    config: String,
    source: String,
    parts: Vec<String>,
    rank: usize,
    world: usize,
    records: u64,
    units: u64,
    width: u64,
    skipped_total: u64,
    skipped_listed: u64,
}

/// What a shard file holds, as reported by [`crate::sign_shard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSummary {
    /// The shard.
    pub shard: ShardSpec,
    /// Records signed.
    pub records: u64,
    /// Units signed.
    pub units: u64,
    /// Malformed records skipped.
    pub skipped: u64,
}

impl Deduper {
    /// Writes the collected signatures to `path` (atomically) as shard `shard` of a source with
    /// fingerprint `source_fingerprint`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_signatures(&self, path: &Path, shard: ShardSpec, source_fingerprint: &str) -> Result<ShardSummary> {
        let header = Header {
            version: VERSION,
            config: config_fingerprint(&self.config),
            source: source_fingerprint.to_owned(),
            parts: self.parts.clone(),
            rank: shard.rank,
            world: shard.world,
            records: self.records.len() as u64,
            units: self.units.len() as u64,
            width: self.width as u64,
            skipped_total: self.skipped_total,
            skipped_listed: self.skipped.len() as u64,
        };
        let header_json = serde_json::to_vec(&header).map_err(|source| DedupError::Serialize { what: "signature header", source })?;
        atomic_write_with(path, |w| {
            let io = |e| DedupError::io("writing", path, e);
            let mut put = |b: &[u8]| w.write_all(b).map_err(io);
            put(MAGIC)?;
            put(&(header_json.len() as u32).to_le_bytes())?;
            put(&header_json)?;
            for r in &self.records {
                put(&r.key.part.to_le_bytes())?;
                put(&r.key.index.to_le_bytes())?;
                put(&r.locator.to_le_bytes())?;
                put(&r.len.to_le_bytes())?;
                put(&[u8::from(r.score.is_some())])?;
                put(&r.score.unwrap_or(0.0).to_le_bytes())?;
                put(&r.n_units.to_le_bytes())?;
                put(&r.n_spans.to_le_bytes())?;
                put(&(r.id.len() as u32).to_le_bytes())?;
                put(r.id.as_bytes())?;
            }
            for u in &self.units {
                for v in [u.record, u.span, u.start, u.end] {
                    put(&v.to_le_bytes())?;
                }
            }
            let mut words = Vec::with_capacity(self.sigs.len() * 4);
            for v in &self.sigs {
                words.extend_from_slice(&v.to_le_bytes());
            }
            put(&words)?;
            for s in &self.skipped {
                put(&s.line.to_le_bytes())?;
                for text in [&s.file, &s.reason] {
                    put(&(text.len() as u32).to_le_bytes())?;
                    put(text.as_bytes())?;
                }
            }
            put(END)
        })?;
        Ok(ShardSummary { shard, records: header.records, units: header.units, skipped: self.skipped_total })
    }

    /// Appends the signatures of a shard file; returns the shard it came from. The file must have
    /// been written with the same signature-relevant config and source fingerprint.
    ///
    /// # Errors
    /// [`DedupError::Signatures`] for a malformed, truncated or mismatched file.
    pub fn read_signatures(&mut self, path: &Path, source_fingerprint: &str) -> Result<ShardSpec> {
        let bad = |m: String| DedupError::Signatures { path: path.to_path_buf(), message: m };
        let file = File::open(path).map_err(|e| DedupError::io("opening", path, e))?;
        let mut r = Reader { inner: BufReader::with_capacity(1 << 20, file), path };
        let mut magic = [0u8; 8];
        r.exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(bad("not an infuse signature file (bad magic)".to_owned()));
        }
        let hlen = r.u32()? as usize;
        let mut hbytes = vec![0u8; hlen];
        r.exact(&mut hbytes)?;
        let h: Header = serde_json::from_slice(&hbytes).map_err(|e| bad(format!("bad header: {e}")))?;
        if h.version != VERSION {
            return Err(bad(format!("format version {} (expected {VERSION})", h.version)));
        }
        let mine = config_fingerprint(&self.config);
        if h.config != mine {
            return Err(bad(format!("written with config {} but merging with {}", h.config, mine)));
        }
        if h.source != source_fingerprint {
            return Err(bad(format!("written for input {} but merging {}", h.source, source_fingerprint)));
        }
        if h.width as usize != self.width {
            return Err(bad(format!("signature width {} (expected {})", h.width, self.width)));
        }
        if self.parts.is_empty() {
            self.parts = h.parts.clone();
        } else if self.parts != h.parts {
            return Err(bad("input file list differs from the other shards".to_owned()));
        }
        let record_base = self.records.len();
        let unit_base = self.units.len() as u64;
        if record_base as u64 + h.records > u64::from(u32::MAX) || unit_base + h.units > u64::from(u32::MAX) {
            return Err(bad("more than 2^32 records or units in total".to_owned()));
        }
        let mut first_unit = unit_base;
        for _ in 0..h.records {
            let part = r.u32()?;
            let index = r.u64()?;
            let locator = r.u64()?;
            let len = r.u64()?;
            let has_score = r.u8()? != 0;
            let score = f64::from_le_bytes(r.u64()?.to_le_bytes());
            let n_units = r.u32()?;
            let n_spans = r.u32()?;
            let id = r.string()?;
            if part as usize >= self.parts.len() {
                return Err(bad(format!("record refers to part {part} of {}", self.parts.len())));
            }
            self.records.push(RecordEntry {
                key: RecordKey { part, index },
                locator,
                id: id.into(),
                len,
                score: has_score.then_some(score),
                first_unit,
                n_units,
                n_spans,
            });
            first_unit += u64::from(n_units);
        }
        if first_unit - unit_base != h.units {
            return Err(bad("unit counts do not add up".to_owned()));
        }
        for _ in 0..h.units {
            let rel = r.u32()?;
            let (span, start, end) = (r.u32()?, r.u32()?, r.u32()?);
            if u64::from(rel) >= h.records || start > end {
                return Err(bad("unit out of range".to_owned()));
            }
            self.units.push(UnitEntry { record: rel + record_base as u32, span, start, end });
        }
        let mut left = (h.units * h.width) as usize;
        self.sigs.reserve(left);
        let mut bytes = vec![0u8; left.min(1 << 20) * 4];
        while left > 0 {
            let n = left.min(1 << 20);
            r.exact(&mut bytes[..n * 4])?;
            self.sigs.extend(bytes[..n * 4].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            left -= n;
        }
        for _ in 0..h.skipped_listed {
            let line = r.u64()?;
            let file = r.string()?;
            let reason = r.string()?;
            if self.skipped.len() < self.config.max_reported_skips {
                self.skipped.push(SkippedRecord { file, line, reason });
            }
        }
        self.skipped_total += h.skipped_total;
        r.exact(&mut magic)?;
        if &magic != END {
            return Err(bad("missing end marker (truncated or corrupt)".to_owned()));
        }
        Ok(ShardSpec { rank: h.rank, world: h.world })
    }
}

struct Reader<'p> {
    inner: BufReader<File>,
    path: &'p Path,
}

impl Reader<'_> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                DedupError::Signatures { path: self.path.to_path_buf(), message: "truncated".to_owned() }
            } else {
                DedupError::io("reading", self.path, e)
            }
        })
    }
    fn u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        if n > (1 << 30) {
            return Err(DedupError::Signatures { path: self.path.to_path_buf(), message: format!("string length {n} is implausible") });
        }
        let mut b = vec![0u8; n];
        self.exact(&mut b)?;
        String::from_utf8(b).map_err(|_| DedupError::Signatures { path: self.path.to_path_buf(), message: "invalid UTF-8 in a string".to_owned() })
    }
}

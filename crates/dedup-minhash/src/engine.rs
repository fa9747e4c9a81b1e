//! The deduplication engine: [`Deduper`] collects signatures, [`Deduper::finish`] finds,
//! verifies and clusters duplicates into a [`DedupOutcome`].

use std::borrow::Cow;
use std::sync::Arc;

use rayon::prelude::*;

use crate::config::{DedupConfig, Granularity, KeepRule, LshParams, Method, Verify};
use crate::error::{DedupError, Result};
use crate::lsh::{band_key, bucket_pairs, unpack_pair};
use crate::minhash::{MinHasher, estimate_jaccard, jaccard_sorted};
use crate::report::{Cluster, ClusterMember, DedupReport, VerifiedPair};
use crate::shingle::Shingler;
use crate::simhash::{SimHashAccumulator, hamming, simhash_pairs};
use crate::source::{FetchRequest, RecordKey, RecordSource, ScanBatch, SkippedRecord, SourceRecord};
use crate::span::{remove_spans, split_spans};

/// What happens to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordDecision {
    /// Written unchanged.
    Keep,
    /// Dropped: a duplicate of the kept member of `cluster` (document granularity), or every span
    /// was a duplicate (`emptied`).
    Drop {
        /// Cluster of (one of) its removed units.
        cluster: u64,
        /// True when dropped because all its spans were removed.
        emptied: bool,
    },
    /// Written with these spans cut out (indices into [`crate::split_spans`] of its text).
    RemoveSpans(Vec<u32>),
}

impl RecordDecision {
    /// Applies the decision to the record's text: `None` when the record is dropped.
    #[must_use]
    pub fn apply<'t>(&self, text: &'t str, granularity: Granularity) -> Option<Cow<'t, str>> {
        match self {
            Self::Keep => Some(Cow::Borrowed(text)),
            Self::Drop { .. } => None,
            Self::RemoveSpans(spans) => Some(Cow::Owned(remove_spans(text, &split_spans(text, granularity), spans))),
        }
    }
}

/// The result of [`Deduper::finish`]: the report (with clusters) and a decision per record.
#[derive(Debug, Clone)]
pub struct DedupOutcome {
    /// Counts, clusters, skipped records.
    pub report: DedupReport,
    keys: Vec<RecordKey>,
    decisions: Vec<RecordDecision>,
    text_lens: Vec<u64>,
}

impl DedupOutcome {
    /// The decision for the record at `key` (`None`: not a record of this run, e.g. skipped).
    #[must_use]
    pub fn decision(&self, key: RecordKey) -> Option<&RecordDecision> {
        self.keys.binary_search(&key).ok().map(|i| &self.decisions[i])
    }

    /// All records in key order with their decisions.
    pub fn decisions(&self) -> impl Iterator<Item = (RecordKey, &RecordDecision)> + '_ {
        self.keys.iter().copied().zip(&self.decisions)
    }

    /// The text length (bytes) recorded in the first pass for the record at `key`; writers use it
    /// to detect input that changed between passes.
    #[must_use]
    pub fn text_len(&self, key: RecordKey) -> Option<u64> {
        self.keys.binary_search(&key).ok().map(|i| self.text_lens[i])
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RecordEntry {
    pub(crate) key: RecordKey,
    pub(crate) locator: u64,
    pub(crate) id: Box<str>,
    pub(crate) len: u64,
    pub(crate) score: Option<f64>,
    /// Index of the record's first unit in `units`.
    pub(crate) first_unit: u64,
    /// Units of this record (indexed spans).
    pub(crate) n_units: u32,
    /// All non-blank spans of the text (indexed or not).
    pub(crate) n_spans: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct UnitEntry {
    pub(crate) record: u32,
    pub(crate) span: u32,
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// Collects signatures of records (from one or more scans or shard files) and deduplicates them.
///
/// ```
/// use infuse_dedup_minhash::{DedupConfig, Deduper, MemorySource, Record, RecordSource, ShardSpec};
/// let source = MemorySource::new(vec![
///     Record::new("a", "the quick brown fox jumps over the lazy dog again and again"),
///     Record::new("b", "The quick brown fox jumps over the lazy dog again and again!"),
///     Record::new("c", "something else entirely, with its own words and no overlap"),
/// ]);
/// let mut d = Deduper::new(DedupConfig::default())?;
/// source.scan(ShardSpec::SINGLE, &mut |batch| d.add_batch(batch))?;
/// let outcome = d.finish(&source)?;
/// assert_eq!(outcome.report.records_removed, 1);
/// assert_eq!(outcome.report.cluster_list[0].kept, "a");
/// # Ok::<(), infuse_dedup_minhash::DedupError>(())
/// ```
pub struct Deduper {
    pub(crate) config: DedupConfig,
    pub(crate) hasher: Option<Arc<MinHasher>>,
    pub(crate) width: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
    pub(crate) parts: Vec<String>,
    pub(crate) records: Vec<RecordEntry>,
    pub(crate) units: Vec<UnitEntry>,
    pub(crate) sigs: Vec<u32>,
    pub(crate) skipped: Vec<SkippedRecord>,
    pub(crate) skipped_total: u64,
}

impl std::fmt::Debug for Deduper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deduper").field("config", &self.config).field("records", &self.records.len()).field("units", &self.units.len()).finish()
    }
}

/// Signature words per unit for a method.
pub(crate) fn signature_width(config: &DedupConfig) -> usize {
    match config.method {
        Method::MinHash => config.num_perm,
        Method::SimHash => 2,
        Method::Exact => 4,
    }
}

struct SignedChunk {
    records: Vec<RecordEntry>,
    units: Vec<UnitEntry>,
    sigs: Vec<u32>,
    skipped: Vec<SkippedRecord>,
}

impl Deduper {
    /// A deduplicator for `config` (validated here).
    ///
    /// # Errors
    /// [`DedupError::Config`] for an invalid config, [`DedupError::ThreadPool`] when the requested
    /// thread pool cannot be built.
    pub fn new(config: DedupConfig) -> Result<Self> {
        config.validate()?;
        let hasher = (config.method == Method::MinHash).then(|| Arc::new(MinHasher::new(&config)));
        let pool = match config.threads {
            Some(n) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| DedupError::ThreadPool(e.to_string()))?,
            )),
            None => None,
        };
        Ok(Self {
            width: signature_width(&config),
            config,
            hasher,
            pool,
            parts: Vec::new(),
            records: Vec::new(),
            units: Vec::new(),
            sigs: Vec::new(),
            skipped: Vec::new(),
            skipped_total: 0,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &DedupConfig {
        &self.config
    }

    /// Number of records added so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record was added.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Sets the part names used in messages and default ids (`RecordKey::part` indexes them).
    pub fn set_parts(&mut self, parts: Vec<String>) {
        self.parts = parts;
    }

    /// Runs `f` on the configured thread pool (or the global one).
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Records a skipped (malformed) record.
    pub fn add_skipped(&mut self, skipped: SkippedRecord) {
        self.skipped_total += 1;
        if self.skipped.len() < self.config.max_reported_skips {
            self.skipped.push(skipped);
        }
    }

    /// Computes the signatures of a batch (in parallel) and appends them in order.
    ///
    /// # Errors
    /// [`DedupError::Config`] when the run exceeds 2^32 records or units.
    pub fn add_batch(&mut self, batch: ScanBatch<'_>) -> Result<()> {
        for s in batch.skipped {
            self.add_skipped(s);
        }
        if self.config.granularity == Granularity::Document {
            return self.add_documents(batch.records);
        }
        let chunks: Vec<SignedChunk> = {
            let (config, hasher, width, parts) = (&self.config, self.hasher.as_deref(), self.width, &self.parts);
            let records = &batch.records;
            self.install(|| records.par_chunks(16).map(|c| sign_chunk(config, hasher, width, parts, c)).collect())
        };
        for chunk in chunks {
            for s in chunk.skipped {
                self.add_skipped(s);
            }
            let record_base = self.records.len();
            let unit_base = self.units.len() as u64;
            if record_base + chunk.records.len() > u32::MAX as usize || self.units.len() + chunk.units.len() > u32::MAX as usize {
                return Err(DedupError::config("input", "more than 2^32 records or units in one run; shard the input"));
            }
            self.records.extend(chunk.records.into_iter().map(|mut r| {
                r.first_unit += unit_base;
                r
            }));
            self.units.extend(chunk.units.into_iter().map(|mut u| {
                u.record += record_base as u32;
                u
            }));
            self.sigs.extend_from_slice(&chunk.sigs);
        }
        Ok(())
    }


    /// Document granularity: one unit per record, signed in parallel straight into `sigs`.
    fn add_documents(&mut self, records: Vec<SourceRecord<'_>>) -> Result<()> {
        let n = records.len();
        if self.records.len() + n > u32::MAX as usize {
            return Err(DedupError::config("input", "more than 2^32 records in one run; shard the input"));
        }
        let width = self.width;
        let base = self.sigs.len();
        self.sigs.resize(base + n * width, 0);
        {
            let (config, hasher) = (&self.config, self.hasher.as_deref());
            let out = &mut self.sigs[base..];
            let records = &records;
            let pool = self.pool.clone();
            let mut work = move || {
                out.par_chunks_mut(width).zip(records.par_iter()).with_min_len(8).for_each(|(sig, rec)| {
                    sign_unit(config, hasher, &rec.text, sig);
                });
            };
            match pool {
                Some(p) => p.install(work),
                None => work(),
            }
        }
        self.records.reserve(n);
        self.units.reserve(n);
        for rec in records {
            let record = self.records.len() as u32;
            let len = rec.text.len();
            if len > u32::MAX as usize {
                // Keep the arrays aligned: drop this record's signature slot.
                let at = self.units.len() * width;
                self.sigs.drain(at..at + width);
                let file = self.parts.get(rec.key.part as usize).cloned().unwrap_or_default();
                self.add_skipped(SkippedRecord { file, line: rec.key.index + 1, reason: "text longer than 4 GiB".to_owned() });
                continue;
            }
            let id: Box<str> = match rec.id {
                Some(id) => id.into(),
                None => {
                    let part = self.parts.get(rec.key.part as usize).map_or("part", String::as_str);
                    format!("{part}:{}", rec.key.index + 1).into()
                }
            };
            self.units.push(UnitEntry { record, span: 0, start: 0, end: len as u32 });
            self.records.push(RecordEntry {
                key: rec.key,
                locator: rec.locator,
                id,
                len: len as u64,
                score: rec.score,
                first_unit: u64::from(record),
                n_units: 1,
                n_spans: 1,
            });
        }
        Ok(())
    }

    /// Puts records (and their units and signatures) in key order; rejects duplicate keys.
    fn sort_by_key(&mut self) -> Result<()> {
        if self.records.windows(2).all(|w| w[0].key < w[1].key) {
            return Ok(());
        }
        let mut order: Vec<usize> = (0..self.records.len()).collect();
        order.sort_by_key(|&i| self.records[i].key);
        if let Some(w) = order.windows(2).find(|w| self.records[w[0]].key == self.records[w[1]].key) {
            let k = self.records[w[0]].key;
            return Err(DedupError::Source(format!("record {}:{} was added twice (overlapping shards?)", k.part, k.index)));
        }
        let width = self.width;
        let mut records = Vec::with_capacity(self.records.len());
        let mut units = Vec::with_capacity(self.units.len());
        let mut sigs = Vec::with_capacity(self.sigs.len());
        for (new_idx, &old) in order.iter().enumerate() {
            let mut r = self.records[old].clone();
            let first = r.first_unit as usize;
            r.first_unit = units.len() as u64;
            for u in first..first + r.n_units as usize {
                let mut unit = self.units[u];
                unit.record = new_idx as u32;
                units.push(unit);
                sigs.extend_from_slice(&self.sigs[u * width..(u + 1) * width]);
            }
            records.push(r);
        }
        self.records = records;
        self.units = units;
        self.sigs = sigs;
        Ok(())
    }

    fn sig(&self, unit: u32) -> &[u32] {
        let u = unit as usize;
        &self.sigs[u * self.width..(u + 1) * self.width]
    }

    fn fingerprint64(&self, unit: u32) -> u64 {
        let s = self.sig(unit);
        u64::from(s[0]) | (u64::from(s[1]) << 32)
    }

    /// Candidate pairs (packed, sorted, unique).
    fn candidates(&self, lsh: Option<LshParams>) -> Vec<u64> {
        let n = self.units.len() as u32;
        let max_bucket = self.config.max_bucket_size;
        match self.config.method {
            Method::MinHash => {
                let p = lsh.unwrap_or(LshParams { bands: 1, rows: self.width });
                let content = |u: u32| band_key(usize::MAX, self.sig(u));
                // All band keys of a unit at once (one sequential read of the signatures), then
                // one band at a time so that each sort stays in cache; bands run in parallel.
                let bands = p.bands;
                let keys: Vec<u64> = (0..n)
                    .into_par_iter()
                    .with_min_len(256)
                    .flat_map_iter(|u| {
                        let sig = self.sig(u);
                        (0..bands).map(move |b| band_key(b, &sig[b * p.rows..(b + 1) * p.rows]))
                    })
                    .collect();
                let per_band: Vec<Vec<u64>> = (0..bands)
                    .into_par_iter()
                    .map(|b| {
                        let mut entries: Vec<(u64, u32)> = (0..n).map(|u| (keys[u as usize * bands + b], u)).collect();
                        bucket_pairs(&mut entries, max_bucket, &content)
                    })
                    .collect();
                let mut pairs: Vec<u64> = per_band.concat();
                pairs.par_sort_unstable();
                pairs.dedup();
                pairs
            }
            Method::SimHash => {
                let fps: Vec<u64> = (0..n).map(|u| self.fingerprint64(u)).collect();
                simhash_pairs(&fps, self.config.simhash, max_bucket)
                    .into_iter()
                    .map(|(a, b)| crate::lsh::pack_pair(a, b))
                    .collect()
            }
            Method::Exact => {
                let mut keyed: Vec<([u32; 4], u32)> =
                    (0..n).map(|u| (<[u32; 4]>::try_from(self.sig(u)).unwrap_or_default(), u)).collect();
                keyed.par_sort_unstable();
                let mut pairs = Vec::new();
                let mut i = 0;
                while i < keyed.len() {
                    let mut j = i + 1;
                    while j < keyed.len() && keyed[j].0 == keyed[i].0 {
                        pairs.push(crate::lsh::pack_pair(keyed[i].1, keyed[j].1));
                        j += 1;
                    }
                    i = j;
                }
                pairs.sort_unstable();
                pairs
            }
        }
    }

    /// Exact shingle-hash sets of `units` (sorted), reading their records through `source`.
    fn hash_sets(&self, units: &[u32], source: &dyn RecordSource) -> Result<Vec<Vec<u64>>> {
        let mut sets: Vec<Vec<u64>> = vec![Vec::new(); units.len()];
        // Records in key order, each with the range of `units` positions that belong to it.
        let mut groups: Vec<(u32, usize, usize)> = Vec::new();
        for (pos, &u) in units.iter().enumerate() {
            let rec = self.units[u as usize].record;
            match groups.last_mut() {
                Some(g) if g.0 == rec => g.2 = pos + 1,
                _ => groups.push((rec, pos, pos + 1)),
            }
        }
        // Small batches keep the fetched texts in cache and let their memory be reused.
        const BATCH_BYTES: u64 = 4 << 20;
        let mut start = 0;
        while start < groups.len() {
            let mut end = start;
            let mut bytes = 0u64;
            while end < groups.len() && (end == start || bytes < BATCH_BYTES) {
                bytes += self.records[groups[end].0 as usize].len;
                end += 1;
            }
            let batch = &groups[start..end];
            let wanted: Vec<FetchRequest> = batch
                .iter()
                .map(|g| {
                    let r = &self.records[g.0 as usize];
                    FetchRequest { key: r.key, locator: r.locator }
                })
                .collect();
            let mut texts: Vec<Option<String>> = vec![None; wanted.len()];
            source.fetch(&wanted, &mut |i, text| {
                if let Some(slot) = texts.get_mut(i) {
                    *slot = Some(text.to_owned());
                }
                Ok(())
            })?;
            // Verification always hashes with xxh3 (fast); the shingle *sets* do not depend on it.
            let (shingle, base) = (self.config.shingle, crate::config::BaseHash::Xxh3);
            type UnitSets = Vec<(usize, Vec<u64>)>;
            let results: Vec<Result<UnitSets>> = self.install(|| {
                batch
                    .par_iter()
                    .zip(texts.par_iter())
                    .map(|(&(rec, p0, p1), text)| {
                        let r = &self.records[rec as usize];
                        let text = text.as_deref().ok_or_else(|| self.changed(r, "the record was not returned by the source"))?;
                        if text.len() as u64 != r.len {
                            return Err(self.changed(r, &format!("text is {} bytes, was {}", text.len(), r.len)));
                        }
                        Shingler::with(shingle, base, |sh| {
                            (p0..p1)
                                .map(|pos| {
                                    let unit = self.units[units[pos] as usize];
                                    let piece = text
                                        .get(unit.start as usize..unit.end as usize)
                                        .ok_or_else(|| self.changed(r, "span boundaries no longer match"))?;
                                    let mut set = Vec::new();
                                    sh.hash_set(piece, &mut set);
                                    Ok((pos, set))
                                })
                                .collect()
                        })
                    })
                    .collect()
            });
            for r in results {
                for (pos, set) in r? {
                    sets[pos] = set;
                }
            }
            start = end;
        }
        Ok(sets)
    }

    fn changed(&self, r: &RecordEntry, message: &str) -> DedupError {
        DedupError::InputChanged {
            path: self.parts.get(r.key.part as usize).cloned().unwrap_or_default().into(),
            line: r.key.index + 1,
            message: message.to_owned(),
        }
    }

    /// Verifies candidates; returns accepted `(a, b, similarity)`, sorted.
    fn verify(&self, candidates: &[u64], source: &dyn RecordSource) -> Result<Vec<(u32, u32, f64)>> {
        let t = self.config.threshold;
        let method = self.config.method;
        if method == Method::Exact {
            return Ok(candidates.iter().map(|&p| {
                let (a, b) = unpack_pair(p);
                (a, b, 1.0)
            }).collect());
        }
        if self.config.verify == Verify::Signature {
            return Ok(self.install(|| {
                candidates
                    .par_iter()
                    .filter_map(|&p| {
                        let (a, b) = unpack_pair(p);
                        let sim = match method {
                            Method::SimHash => 1.0 - f64::from(hamming(self.fingerprint64(a), self.fingerprint64(b))) / 64.0,
                            _ => estimate_jaccard(self.sig(a), self.sig(b)),
                        };
                        (method == Method::SimHash || sim >= t).then_some((a, b, sim))
                    })
                    .collect()
            }));
        }
        // Pairs whose signatures agree on fewer slots than a pair at the threshold would with
        // probability `prefilter_probability` cannot reach the threshold: drop them unread.
        let min_equal = if method == Method::MinHash {
            min_equal_slots(self.width, t, self.config.prefilter_probability)
        } else {
            0
        };
        let candidates: Vec<u64> = if min_equal > 0 {
            candidates
                .iter()
                .copied()
                .filter(|&p| {
                    let (a, b) = unpack_pair(p);
                    self.sig(a).iter().zip(self.sig(b)).filter(|(x, y)| x == y).count() >= min_equal
                })
                .collect()
        } else {
            candidates.to_vec()
        };
        let mut units: Vec<u32> = candidates.iter().flat_map(|&p| {
            let (a, b) = unpack_pair(p);
            [a, b]
        }).collect();
        units.par_sort_unstable();
        units.dedup();
        let sets = self.hash_sets(&units, source)?;
        let pos = |u: u32| units.binary_search(&u).unwrap_or(0);
        Ok(self.install(|| {
            candidates
                .par_iter()
                .filter_map(|&p| {
                    let (a, b) = unpack_pair(p);
                    let sim = jaccard_sorted(&sets[pos(a)], &sets[pos(b)]);
                    (sim >= t).then_some((a, b, sim))
                })
                .collect()
        }))
    }

    /// Finds, verifies and clusters duplicates. `source` is only read when candidates are verified
    /// exactly ([`Verify::Exact`] with MinHash or SimHash).
    ///
    /// # Errors
    /// Errors of `source`, duplicate record keys, input that changed since the scan.
    pub fn finish(mut self, source: &dyn RecordSource) -> Result<DedupOutcome> {
        self.sort_by_key()?;
        let lsh = (self.config.method == Method::MinHash).then(|| self.config.lsh_params());
        let candidates = self.install(|| self.candidates(lsh));
        tracing::debug!(candidates = candidates.len(), units = self.units.len(), "candidate pairs");
        let accepted = self.verify(&candidates, source)?;
        tracing::debug!(accepted = accepted.len(), "verified pairs");

        // Union-find over the accepted pairs.
        let n = self.units.len();
        let mut parent: Vec<u32> = (0..n as u32).collect();
        fn find(parent: &mut [u32], mut x: u32) -> u32 {
            while parent[x as usize] != x {
                let p = parent[x as usize];
                parent[x as usize] = parent[p as usize];
                x = p;
            }
            x
        }
        for &(a, b, _) in &accepted {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
                parent[hi as usize] = lo;
            }
        }
        // Members per root, in unit order (= key order); clusters ordered by first member.
        let mut cluster_of = vec![u32::MAX; n];
        let mut members: Vec<Vec<u32>> = Vec::new();
        let mut root_cluster: Vec<u32> = vec![u32::MAX; n];
        let in_pair: Vec<bool> = {
            let mut v = vec![false; n];
            for &(a, b, _) in &accepted {
                v[a as usize] = true;
                v[b as usize] = true;
            }
            v
        };
        for u in 0..n as u32 {
            if !in_pair[u as usize] {
                continue;
            }
            let r = find(&mut parent, u);
            let c = if root_cluster[r as usize] == u32::MAX {
                root_cluster[r as usize] = members.len() as u32;
                members.push(Vec::new());
                members.len() as u32 - 1
            } else {
                root_cluster[r as usize]
            };
            members[c as usize].push(u);
            cluster_of[u as usize] = c;
        }
        let mut pairs_of: Vec<Vec<(u32, u32, f64)>> = vec![Vec::new(); members.len()];
        for &(a, b, s) in &accepted {
            pairs_of[cluster_of[a as usize] as usize].push((a, b, s));
        }

        // Keep rule and decisions.
        let span_mode = self.config.granularity != Granularity::Document;
        let mut removed_units: Vec<(u32, u64)> = Vec::new(); // (unit, cluster)
        let mut clusters = Vec::with_capacity(members.len());
        for (c, (mem, pairs)) in members.iter().zip(&pairs_of).enumerate() {
            let keep = self.representative(mem);
            let index_of = |u: u32| mem.binary_search(&u).unwrap_or(0) as u32;
            let mut sim_to_kept = vec![None; mem.len()];
            for &(a, b, s) in pairs {
                if a == keep {
                    sim_to_kept[index_of(b) as usize] = Some(s);
                } else if b == keep {
                    sim_to_kept[index_of(a) as usize] = Some(s);
                }
            }
            let list: Vec<ClusterMember> = mem
                .iter()
                .zip(sim_to_kept)
                .map(|(&u, sim)| {
                    let unit = self.units[u as usize];
                    let r = &self.records[unit.record as usize];
                    ClusterMember {
                        id: r.id.to_string(),
                        key: r.key,
                        span: span_mode.then_some((unit.start, unit.end)),
                        kept: u == keep,
                        similarity_to_kept: sim,
                    }
                })
                .collect();
            for &u in mem {
                if u != keep {
                    removed_units.push((u, c as u64));
                }
            }
            let kept_id = self.records[self.units[keep as usize].record as usize].id.to_string();
            clusters.push(Cluster {
                cluster: c as u64,
                kept: kept_id,
                members: list,
                pairs: pairs.iter().map(|&(a, b, s)| VerifiedPair { a: index_of(a), b: index_of(b), similarity: s }).collect(),
            });
        }
        removed_units.sort_unstable();

        let mut decisions = vec![RecordDecision::Keep; self.records.len()];
        let mut text_bytes_removed = 0u64;
        for &(u, c) in &removed_units {
            let unit = self.units[u as usize];
            let rec = unit.record as usize;
            text_bytes_removed += u64::from(unit.end - unit.start);
            if span_mode {
                match &mut decisions[rec] {
                    RecordDecision::RemoveSpans(v) => v.push(unit.span),
                    d => *d = RecordDecision::RemoveSpans(vec![unit.span]),
                }
                let done = matches!(&decisions[rec], RecordDecision::RemoveSpans(v) if v.len() as u32 == self.records[rec].n_spans);
                if done {
                    decisions[rec] = RecordDecision::Drop { cluster: c, emptied: true };
                }
            } else {
                decisions[rec] = RecordDecision::Drop { cluster: c, emptied: false };
            }
        }
        let count = |f: &dyn Fn(&RecordDecision) -> bool| decisions.iter().filter(|d| f(d)).count() as u64;
        let records_removed = count(&|d| matches!(d, RecordDecision::Drop { emptied: false, .. }));
        let records_emptied = count(&|d| matches!(d, RecordDecision::Drop { emptied: true, .. }));
        let records_edited = count(&|d| matches!(d, RecordDecision::RemoveSpans(_)));
        let records_in = self.records.len() as u64;
        let report = DedupReport {
            config: self.config.clone(),
            lsh,
            records_in,
            records_out: records_in - records_removed - records_emptied,
            records_removed,
            records_edited,
            records_emptied,
            records_skipped: self.skipped_total,
            units_in: n as u64,
            units_removed: removed_units.len() as u64,
            text_bytes_in: self.records.iter().map(|r| r.len).sum(),
            text_bytes_removed,
            candidate_pairs: candidates.len() as u64,
            verified_pairs: accepted.len() as u64,
            clusters: clusters.len() as u64,
            largest_cluster: members.iter().map(Vec::len).max().unwrap_or(0) as u64,
            skipped: std::mem::take(&mut self.skipped),
            cluster_list: clusters,
        };
        Ok(DedupOutcome {
            report,
            keys: self.records.iter().map(|r| r.key).collect(),
            text_lens: self.records.iter().map(|r| r.len).collect(),
            decisions,
        })
    }

    /// The surviving unit of a cluster (`members` sorted = first in key order).
    fn representative(&self, members: &[u32]) -> u32 {
        let first = members[0];
        match self.config.keep {
            KeepRule::First => first,
            KeepRule::Longest => {
                let len = |u: u32| {
                    let unit = self.units[u as usize];
                    unit.end - unit.start
                };
                // max_by_key returns the last maximum; iterate in reverse to get the first.
                members.iter().rev().copied().max_by_key(|&u| len(u)).unwrap_or(first)
            }
            KeepRule::HighestScore => {
                let score = |u: u32| {
                    self.records[self.units[u as usize].record as usize].score.filter(|s| !s.is_nan()).unwrap_or(f64::NEG_INFINITY)
                };
                let mut best = first;
                for &u in &members[1..] {
                    if score(u) > score(best) {
                        best = u;
                    }
                }
                best
            }
        }
    }
}

/// The smallest number of equal slots (out of `k`) that a pair with Jaccard similarity `t`
/// reaches with probability at least `1 - p` (binomial lower tail; 0 when `p <= 0`).
pub(crate) fn min_equal_slots(k: usize, t: f64, p: f64) -> usize {
    if p <= 0.0 || k == 0 {
        return 0;
    }
    if t >= 1.0 {
        return k;
    }
    let (ln_t, ln_1t) = (t.ln(), (1.0 - t).ln());
    let mut ln_choose = 0.0f64; // ln C(k, i)
    let mut cdf = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((k - i + 1) as f64).ln() - (i as f64).ln();
        }
        cdf += (ln_choose + i as f64 * ln_t + (k - i) as f64 * ln_1t).exp();
        if cdf > p {
            return i;
        }
    }
    k
}

/// Signs a chunk of records (runs on a worker thread).
fn sign_chunk(config: &DedupConfig, hasher: Option<&MinHasher>, width: usize, parts: &[String], records: &[SourceRecord<'_>]) -> SignedChunk {
    let mut out = SignedChunk { records: Vec::with_capacity(records.len()), units: Vec::new(), sigs: Vec::new(), skipped: Vec::new() };
    for rec in records {
        let text: &str = &rec.text;
        let part_name = || parts.get(rec.key.part as usize).cloned().unwrap_or_else(|| format!("part{}", rec.key.part));
        if text.len() > u32::MAX as usize {
            out.skipped.push(SkippedRecord { file: part_name(), line: rec.key.index + 1, reason: "text longer than 4 GiB".to_owned() });
            continue;
        }
        let id: Box<str> = match &rec.id {
            Some(id) => id.as_ref().into(),
            None => format!("{}:{}", part_name(), rec.key.index + 1).into(),
        };
        let spans: Cow<'_, [(usize, usize)]> = if config.granularity == Granularity::Document {
            Cow::Borrowed(&[(0usize, usize::MAX)])
        } else {
            Cow::Owned(split_spans(text, config.granularity))
        };
        let record_idx = out.records.len() as u32;
        let first_unit = out.units.len() as u64;
        for (si, &(s, e)) in spans.iter().enumerate() {
            let e = e.min(text.len());
            let piece = &text[s..e];
            let at = out.sigs.len();
            out.sigs.resize(at + width, 0);
            let words = sign_unit(config, hasher, piece, &mut out.sigs[at..]);
            if config.granularity != Granularity::Document && words < config.min_span_words {
                out.sigs.truncate(at);
                continue;
            }
            out.units.push(UnitEntry { record: record_idx, span: si as u32, start: s as u32, end: e as u32 });
        }
        out.records.push(RecordEntry {
            key: rec.key,
            locator: rec.locator,
            id,
            len: text.len() as u64,
            score: rec.score,
            first_unit,
            n_units: (out.units.len() as u64 - first_unit) as u32,
            n_spans: spans.len() as u32,
        });
    }
    out
}

/// Writes one unit's signature words; returns its word count.
fn sign_unit(config: &DedupConfig, hasher: Option<&MinHasher>, text: &str, out: &mut [u32]) -> usize {
    match (config.method, hasher) {
        (Method::MinHash, Some(h)) => h.signature_into(text, out),
        (Method::MinHash | Method::SimHash, _) => Shingler::with(config.shingle, config.base_hash, |sh| {
            let mut acc = SimHashAccumulator::default();
            let words = sh.for_each_hash(text, |h| acc.push(h));
            let fp = acc.finish();
            out[0] = fp as u32;
            out[1] = (fp >> 32) as u32;
            words
        }),
        (Method::Exact, _) => Shingler::with(config.shingle, config.base_hash, |sh| {
            let h = sh.exact_hash(text);
            let words = sh.num_words();
            for (i, w) in out.iter_mut().enumerate().take(4) {
                *w = (h >> (32 * i)) as u32;
            }
            words
        }),
    }
}

//! GGUF (llama.cpp) files: header and metadata parsing, dequantization (F32, F16, BF16, Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), the Llama config from metadata, the tokenizer rebuilt from
//! `tokenizer.ggml.*`, and a [`WeightSource`] that undoes llama.cpp's Q/K row permutation so the
//! weights fit HF's rotate-half RoPE.
//!
//! Layout reference: ggml's `docs/gguf.md`; block formats: `ggml-quants.c`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use half::f16;
use memmap2::Mmap;

use crate::config::{LlamaConfig, RopeScaling};
use crate::weights::{LayerTensor, Weight, WeightSource};
use crate::{Error, Result};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// Unsigned integer (u8/u16/u32/u64).
    U64(u64),
    /// Signed integer (i8/i16/i32/i64).
    I64(i64),
    /// Float (f32/f64).
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// String.
    Str(String),
    /// Array.
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// As an unsigned integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U64(v) => Some(v),
            Self::I64(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }
    /// As a float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F64(v) => Some(v),
            Self::U64(v) => Some(v as f64),
            Self::I64(v) => Some(v as f64),
            _ => None,
        }
    }
    /// As a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
    /// As a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// ggml tensor storage types this loader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// f32
    F32,
    /// f16
    F16,
    /// bf16
    BF16,
    /// 4-bit, block 32, scale
    Q4_0,
    /// 4-bit, block 32, scale + min
    Q4_1,
    /// 5-bit, block 32, scale
    Q5_0,
    /// 5-bit, block 32, scale + min
    Q5_1,
    /// 8-bit, block 32, scale
    Q8_0,
    /// 4-bit K-quant, super-block 256
    Q4K,
    /// 5-bit K-quant, super-block 256
    Q5K,
    /// 6-bit K-quant, super-block 256
    Q6K,
}

impl GgmlType {
    fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            30 => Self::BF16,
            _ => return None,
        })
    }
    /// (elements per block, bytes per block)
    fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q4K => (256, 144),
            Self::Q5K => (256, 176),
            Self::Q6K => (256, 210),
        }
    }
}

/// One tensor's header.
#[derive(Debug, Clone)]
pub struct GgufTensorInfo {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// ggml dims (`ne0` first: the contiguous, "in" dimension).
    pub dims: Vec<usize>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: usize,
}

impl GgufTensorInfo {
    /// Shape in row-major order (reversed ggml dims), e.g. `[out, in]`.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
    fn num_elements(&self) -> usize {
        self.dims.iter().product()
    }
    fn num_bytes(&self) -> usize {
        let (per, bytes) = self.ggml_type.block();
        self.num_elements() / per * bytes
    }
}

/// A parsed, memory-mapped GGUF file.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata key/values.
    pub metadata: BTreeMap<String, GgufValue>,
    /// Tensor headers by name.
    pub tensors: BTreeMap<String, GgufTensorInfo>,
    data_start: usize,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Reader<'_> {
    fn err(&self, message: String) -> Error {
        Error::InvalidGguf { path: self.path.to_owned(), message }
    }
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| {
            self.err(format!("truncated: need {n} bytes at offset {}, file has {}", self.pos, self.buf.len()))
        })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn len(&mut self, what: &str) -> Result<usize> {
        let n = self.u64()?;
        if n > self.buf.len() as u64 {
            return Err(self.err(format!("{what} length {n} exceeds the file size")));
        }
        Ok(n as usize)
    }
    fn string(&mut self) -> Result<String> {
        let n = self.len("string")?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err(format!("string at offset {} is not UTF-8", self.pos - n)))
    }
    fn value(&mut self, ty: u32, depth: usize) -> Result<GgufValue> {
        Ok(match ty {
            0 => GgufValue::U64(u64::from(self.take(1)?[0])),
            1 => GgufValue::I64(i64::from(self.take(1)?[0] as i8)),
            2 => {
                let b = self.take(2)?;
                GgufValue::U64(u64::from(u16::from_le_bytes([b[0], b[1]])))
            }
            3 => {
                let b = self.take(2)?;
                GgufValue::I64(i64::from(i16::from_le_bytes([b[0], b[1]])))
            }
            4 => GgufValue::U64(u64::from(self.u32()?)),
            5 => GgufValue::I64(i64::from(self.u32()? as i32)),
            6 => GgufValue::F64(f64::from(f32::from_bits(self.u32()?))),
            7 => GgufValue::Bool(self.take(1)?[0] != 0),
            8 => GgufValue::Str(self.string()?),
            9 => {
                if depth > 4 {
                    return Err(self.err("arrays nested too deeply".into()));
                }
                let inner = self.u32()?;
                let n = self.len("array")?;
                let mut v = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    v.push(self.value(inner, depth + 1)?);
                }
                GgufValue::Array(v)
            }
            10 => GgufValue::U64(self.u64()?),
            11 => GgufValue::I64(self.u64()? as i64),
            12 => GgufValue::F64(f64::from_bits(self.u64()?)),
            other => return Err(self.err(format!("unknown metadata value type {other}"))),
        })
    }
}

impl GgufFile {
    /// Open and parse a GGUF file (memory-mapped; tensor data is read lazily).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        // SAFETY: read-only map of a file we only read; see safetensors_io::Shard::open.
        #[allow(unsafe_code)]
        let mmap = unsafe { Mmap::map(&file) }.map_err(|source| Error::Io { path: path.to_owned(), source })?;
        let mut r = Reader { buf: &mmap, pos: 0, path };
        if r.take(4)? != b"GGUF" {
            return Err(r.err("bad magic (not a GGUF file)".into()));
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(r.err(format!("unsupported GGUF version {version} (supported: 2, 3)")));
        }
        let n_tensors = r.len("tensor count")?;
        let n_kv = r.len("metadata count")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let value = r.value(ty, 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = BTreeMap::new();
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()? as usize;
            if n_dims == 0 || n_dims > 4 {
                return Err(r.err(format!("tensor `{name}` has {n_dims} dimensions")));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                dims.push(r.len("dimension")?);
            }
            let type_id = r.u32()?;
            let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
                r.err(format!(
                    "tensor `{name}` has unknown or unsupported ggml type {type_id} (supported: F32, F16, BF16, \
                     Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)"
                ))
            })?;
            let offset = r.u64()? as usize;
            let info = GgufTensorInfo { name: name.clone(), dims, ggml_type, offset };
            if !info.dims[0].is_multiple_of(ggml_type.block().0) {
                return Err(r.err(format!("tensor `{name}`: row length {} is not a multiple of the block size", info.dims[0])));
            }
            tensors.insert(name, info);
        }
        let alignment = metadata.get("general.alignment").and_then(GgufValue::as_u64).unwrap_or(32) as usize;
        if alignment == 0 {
            return Err(r.err("general.alignment is 0".into()));
        }
        let data_start = r.pos.div_ceil(alignment) * alignment;
        for t in tensors.values() {
            let end = data_start + t.offset + t.num_bytes();
            if end > mmap.len() {
                return Err(Error::InvalidGguf {
                    path: path.to_owned(),
                    message: format!("tensor `{}` data ends at byte {end}, past the end of the file ({} bytes)", t.name, mmap.len()),
                });
            }
        }
        Ok(Self { path: path.to_owned(), mmap, version, metadata, tensors, data_start })
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    fn err(&self, message: String) -> Error {
        Error::InvalidGguf { path: self.path.clone(), message }
    }

    fn require_u64(&self, key: &str) -> Result<usize> {
        self.get(key).and_then(GgufValue::as_u64).map(|v| v as usize).ok_or_else(|| self.err(format!("missing metadata `{key}`")))
    }

    /// Dequantize a tensor to f32 in row-major order (shape: [`GgufTensorInfo::shape`]).
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.tensors.get(name).ok_or_else(|| self.err(format!("no tensor `{name}`")))?;
        let start = self.data_start + info.offset;
        let bytes = &self.mmap[start..start + info.num_bytes()];
        Ok(dequantize(info.ggml_type, bytes, info.num_elements()))
    }

    /// The Llama configuration from `llama.*` metadata.
    pub fn llama_config(&self) -> Result<LlamaConfig> {
        let arch = self.get("general.architecture").and_then(GgufValue::as_str).unwrap_or("");
        if arch != "llama" {
            return Err(self.err(format!("architecture `{arch}` is not supported (expected `llama`)")));
        }
        let hidden = self.require_u64("llama.embedding_length")?;
        let heads = self.require_u64("llama.attention.head_count")?;
        let kv = self.get("llama.attention.head_count_kv").and_then(GgufValue::as_u64).map_or(heads, |v| v as usize);
        let head_dim = match self.get("llama.rope.dimension_count").and_then(GgufValue::as_u64) {
            Some(d) => d as usize,
            None if heads > 0 => hidden / heads,
            None => 0,
        };
        let vocab = match self.get("llama.vocab_size").and_then(GgufValue::as_u64) {
            Some(v) => v as usize,
            None => match self.get("tokenizer.ggml.tokens") {
                Some(GgufValue::Array(t)) => t.len(),
                _ => self.tensors.get("token_embd.weight").map_or(0, |t| t.dims[1]),
            },
        };
        let rope_scaling = if self.tensors.contains_key("rope_freqs.weight") {
            RopeScaling::Factors(self.dequantize("rope_freqs.weight")?)
        } else {
            RopeScaling::None
        };
        let eos = self.get("tokenizer.ggml.eos_token_id").and_then(GgufValue::as_u64).map(|v| v as u32);
        let eot = self.get("tokenizer.ggml.eot_token_id").and_then(GgufValue::as_u64).map(|v| v as u32);
        let mut eos_ids: Vec<u32> = eos.into_iter().chain(eot).collect();
        eos_ids.dedup();
        let cfg = LlamaConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: self.require_u64("llama.feed_forward_length")?,
            num_layers: self.require_u64("llama.block_count")?,
            num_heads: heads,
            num_kv_heads: kv,
            head_dim,
            rms_norm_eps: self.get("llama.attention.layer_norm_rms_epsilon").and_then(GgufValue::as_f64).unwrap_or(1e-5),
            rope_theta: self.get("llama.rope.freq_base").and_then(GgufValue::as_f64).unwrap_or(10_000.0),
            rope_scaling,
            max_position_embeddings: self.get("llama.context_length").and_then(GgufValue::as_u64).map_or(2048, |v| v as usize),
            tie_word_embeddings: !self.tensors.contains_key("output.weight"),
            bos_token_id: self.get("tokenizer.ggml.bos_token_id").and_then(GgufValue::as_u64).map(|v| v as u32),
            eos_token_ids: eos_ids,
            pad_token_id: self.get("tokenizer.ggml.padding_token_id").and_then(GgufValue::as_u64).map(|v| v as u32),
        };
        cfg.validate(&self.path.display().to_string())?;
        Ok(cfg)
    }
}

impl WeightSource for GgufFile {
    fn origin(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&self, weight: Weight, config: &LlamaConfig) -> Result<Option<TensorData>> {
        let name = weight.gguf_name();
        let Some(info) = self.tensors.get(&name) else { return Ok(None) };
        let shape = info.shape();
        let mut values = self.dequantize(&name)?;
        // llama.cpp permutes Q/K rows for interleaved RoPE; HF uses rotate-half.
        let heads = match weight {
            Weight::Layer(_, LayerTensor::Q) => Some(config.num_heads),
            Weight::Layer(_, LayerTensor::K) => Some(config.num_kv_heads),
            _ => None,
        };
        if let Some(h) = heads {
            if shape.len() != 2 || shape[0] % h != 0 || (shape[0] / h) % 2 != 0 {
                return Err(self.err(format!("tensor `{name}` shape {shape:?} does not fit {h} heads")));
            }
            values = unpermute_rows(&values, shape[0], shape[1], h);
        }
        Ok(Some(TensorData::new(values, shape)))
    }
}

/// Undo llama.cpp's `permute`: within each head of `hd` rows, GGUF row `2i + a` is HF row
/// `a * hd/2 + i`.
pub fn unpermute_rows(values: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let hd = rows / heads;
    let half = hd / 2;
    let mut out = vec![0.0f32; values.len()];
    for h in 0..heads {
        for i in 0..half {
            for a in 0..2 {
                let src = h * hd + 2 * i + a;
                let dst = h * hd + a * half + i;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantize `n` elements of ggml type `ty` from `bytes`.
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    let (per, size) = ty.block();
    match ty {
        GgmlType::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())),
        GgmlType::BF16 => out.extend(bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())),
        GgmlType::Q8_0 => {
            for b in bytes.chunks_exact(size) {
                let d = f16_at(b, 0);
                out.extend(b[2..34].iter().map(|&q| f32::from(q as i8) * d));
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let has_min = ty == GgmlType::Q4_1;
            let qs_at = if has_min { 4 } else { 2 };
            for b in bytes.chunks_exact(size) {
                let d = f16_at(b, 0);
                let (m, off) = if has_min { (f16_at(b, 2), 0.0) } else { (0.0, 8.0) };
                let qs = &b[qs_at..qs_at + 16];
                out.extend(qs.iter().map(|&q| (f32::from(q & 0x0F) - off) * d + m));
                out.extend(qs.iter().map(|&q| (f32::from(q >> 4) - off) * d + m));
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let has_min = ty == GgmlType::Q5_1;
            let qh_at = if has_min { 4 } else { 2 };
            for b in bytes.chunks_exact(size) {
                let d = f16_at(b, 0);
                let (m, off) = if has_min { (f16_at(b, 2), 0.0) } else { (0.0, 16.0) };
                let qh = u32::from_le_bytes([b[qh_at], b[qh_at + 1], b[qh_at + 2], b[qh_at + 3]]);
                let qs = &b[qh_at + 4..qh_at + 20];
                let mut lo = [0f32; 16];
                let mut hi = [0f32; 16];
                for j in 0..16 {
                    let xh0 = ((qh >> j) << 4) & 0x10;
                    let xh1 = (qh >> (j + 12)) & 0x10;
                    lo[j] = (f32::from(u8::try_from((u32::from(qs[j]) & 0x0F) | xh0).unwrap_or(0)) - off) * d + m;
                    hi[j] = (f32::from(u8::try_from((u32::from(qs[j]) >> 4) | xh1).unwrap_or(0)) - off) * d + m;
                }
                out.extend_from_slice(&lo);
                out.extend_from_slice(&hi);
            }
        }
        GgmlType::Q4K | GgmlType::Q5K => {
            let five = ty == GgmlType::Q5K;
            for b in bytes.chunks_exact(size) {
                let d = f16_at(b, 0);
                let dmin = f16_at(b, 2);
                let scales = &b[4..16];
                let (qh, qs) = if five { (&b[16..48], &b[48..176]) } else { (&b[0..0], &b[16..144]) };
                for j in 0..4 {
                    // Two 32-element sub-blocks per 64 values.
                    let (sc1, m1) = k_scale_min(2 * j, scales);
                    let (sc2, m2) = k_scale_min(2 * j + 1, scales);
                    let (d1, min1, d2, min2) = (d * sc1, dmin * m1, d * sc2, dmin * m2);
                    let q = &qs[32 * j..32 * j + 32];
                    for l in 0..32 {
                        let hbit = if five { u8::from(qh[l] & (1 << (2 * j)) != 0) << 4 } else { 0 };
                        out.push(d1 * f32::from((q[l] & 0x0F) + hbit) - min1);
                    }
                    for l in 0..32 {
                        let hbit = if five { u8::from(qh[l] & (1 << (2 * j + 1)) != 0) << 4 } else { 0 };
                        out.push(d2 * f32::from((q[l] >> 4) + hbit) - min2);
                    }
                }
            }
        }
        GgmlType::Q6K => {
            for b in bytes.chunks_exact(size) {
                let ql = &b[0..128];
                let qh = &b[128..192];
                let sc = &b[192..208];
                let d = f16_at(b, 208);
                let mut y = [0f32; 256];
                for half in 0..2 {
                    let (ql, qh, sc, y) = (&ql[64 * half..], &qh[32 * half..], &sc[8 * half..], &mut y[128 * half..]);
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = i32::from((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32;
                        let q2 = i32::from((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                        let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                        let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                        y[l] = d * f32::from(sc[is] as i8) * q1 as f32;
                        y[l + 32] = d * f32::from(sc[is + 2] as i8) * q2 as f32;
                        y[l + 64] = d * f32::from(sc[is + 4] as i8) * q3 as f32;
                        y[l + 96] = d * f32::from(sc[is + 6] as i8) * q4 as f32;
                    }
                }
                out.extend_from_slice(&y);
            }
        }
    }
    debug_assert_eq!(out.len(), n, "{ty:?}: {per} per block");
    out
}

/// `get_scale_min_k4` from ggml-quants.c.
fn k_scale_min(j: usize, q: &[u8]) -> (f32, f32) {
    if j < 4 {
        (f32::from(q[j] & 63), f32::from(q[j + 4] & 63))
    } else {
        let d = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (f32::from(d), f32::from(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_block_layout_low_then_high_nibbles() {
        // d = 1.0, m = -8.0, bytes j = (j & 0xF) | (15 - (j & 0xF)) << 4
        let mut b = Vec::new();
        b.extend_from_slice(&f16::from_f32(1.0).to_le_bytes());
        b.extend_from_slice(&f16::from_f32(-8.0).to_le_bytes());
        for j in 0..16u8 {
            b.push(j | ((15 - j) << 4));
        }
        let v = dequantize(GgmlType::Q4_1, &b, 32);
        let want: Vec<f32> = (0..16).map(|j| j as f32 - 8.0).chain((0..16).map(|j| (15 - j) as f32 - 8.0)).collect();
        assert_eq!(v, want);
    }

    #[test]
    fn q8_0_is_scale_times_int8() {
        let mut b = f16::from_f32(0.5).to_le_bytes().to_vec();
        b.extend((0..32).map(|i: i32| ((i - 16) as i8) as u8));
        let v = dequantize(GgmlType::Q8_0, &b, 32);
        assert_eq!(v[0], -8.0);
        assert_eq!(v[31], 7.5);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(h, 2, hd/2, cols).swapaxes(1, 2).reshape(rows, cols)
        let (h, hd, cols) = (2, 4, 3);
        let rows = h * hd;
        let hf: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let mut gguf = vec![0.0; hf.len()];
        for head in 0..h {
            for a in 0..2 {
                for i in 0..hd / 2 {
                    let src = head * hd + a * (hd / 2) + i;
                    let dst = head * hd + 2 * i + a;
                    gguf[dst * cols..(dst + 1) * cols].copy_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        assert_eq!(unpermute_rows(&gguf, rows, cols, h), hf);
    }
}

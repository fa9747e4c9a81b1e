//! HF safetensors checkpoints: single file or sharded (`model.safetensors.index.json`), memory
//! mapped, F32/F16/BF16; and saving in HF layout (config.json + model.safetensors, optionally
//! sharded), written atomically.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::DType;
use memmap2::Mmap;
use safetensors::tensor::{Dtype as StDtype, Metadata, TensorView};

use crate::config::{HfLlamaConfig, LlamaConfig};
use crate::model::Llama;
use crate::weights::{Weight, WeightSource};
use crate::{Error, Result};

/// One memory-mapped safetensors file with its parsed header.
struct Shard {
    path: PathBuf,
    mmap: Mmap,
    header_len: usize,
    metadata: Metadata,
}

impl Shard {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        // SAFETY: the file is opened read-only and only read through this map; like every mmap-based
        // checkpoint loader we assume it is not truncated by another process while loading.
        #[allow(unsafe_code)]
        let mmap = unsafe { Mmap::map(&file) }.map_err(|source| Error::Io { path: path.to_owned(), source })?;
        let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| {
            Error::InvalidSafetensors { path: path.to_owned(), message: format!("{e} (file size {} bytes)", mmap.len()) }
        })?;
        Ok(Self { path: path.to_owned(), mmap, header_len, metadata })
    }

    fn get(&self, name: &str) -> Result<Option<TensorData>> {
        let Some(info) = self.metadata.info(name) else { return Ok(None) };
        let dtype = match info.dtype {
            StDtype::F32 => DType::F32,
            StDtype::F16 => DType::F16,
            StDtype::BF16 => DType::BF16,
            other => {
                return Err(Error::UnsupportedDtype {
                    origin: self.path.display().to_string(),
                    name: name.to_owned(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        let (start, end) = info.data_offsets;
        let base = 8 + self.header_len;
        let bytes = self.mmap.get(base + start..base + end).ok_or_else(|| Error::InvalidSafetensors {
            path: self.path.clone(),
            message: format!("tensor `{name}` data [{start}, {end}) lies outside the file"),
        })?;
        Ok(Some(TensorData::from_bytes_vec(bytes.to_vec(), info.shape.clone(), dtype)))
    }
}

/// A (possibly sharded) safetensors checkpoint.
pub struct SafetensorsCheckpoint {
    origin: String,
    shards: Vec<Shard>,
    /// Tensor name -> shard index.
    index: HashMap<String, usize>,
}

impl SafetensorsCheckpoint {
    /// Open `model.safetensors`, or the shards listed in `model.safetensors.index.json`, in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        if index_path.is_file() {
            let bytes = std::fs::read(&index_path).map_err(|source| Error::Io { path: index_path.clone(), source })?;
            #[derive(serde::Deserialize)]
            struct Index {
                weight_map: BTreeMap<String, String>,
            }
            let idx: Index = serde_json::from_slice(&bytes).map_err(|e| Error::InvalidSafetensors {
                path: index_path.clone(),
                message: format!("bad index: {e}"),
            })?;
            let mut files: Vec<String> = idx.weight_map.values().cloned().collect();
            files.sort();
            files.dedup();
            let mut shards = Vec::new();
            let mut file_idx = HashMap::new();
            for f in &files {
                if f.contains('/') || f.contains("..") {
                    return Err(Error::InvalidSafetensors {
                        path: index_path.clone(),
                        message: format!("shard name `{f}` must be a plain file name"),
                    });
                }
                file_idx.insert(f.clone(), shards.len());
                shards.push(Shard::open(&dir.join(f))?);
            }
            let index = idx.weight_map.into_iter().map(|(k, f)| (k, file_idx[&f])).collect();
            Ok(Self { origin: dir.display().to_string(), shards, index })
        } else if single.is_file() {
            Self::open_file(&single)
        } else {
            Err(Error::NotAModel { path: dir.to_owned() })
        }
    }

    /// Open a single safetensors file.
    pub fn open_file(path: &Path) -> Result<Self> {
        let shard = Shard::open(path)?;
        let index = shard.metadata.tensors().keys().map(|k| (k.clone(), 0)).collect();
        Ok(Self { origin: path.display().to_string(), shards: vec![shard], index })
    }

    /// Names of all tensors.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.index.keys().cloned().collect();
        v.sort();
        v
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Result<Option<TensorData>> {
        match self.index.get(name) {
            Some(&i) => self.shards[i].get(name),
            None => Ok(None),
        }
    }
}

impl WeightSource for SafetensorsCheckpoint {
    fn origin(&self) -> String {
        self.origin.clone()
    }
    fn load(&self, weight: Weight, _config: &LlamaConfig) -> Result<Option<TensorData>> {
        self.tensor(&weight.hf_name())
    }
}

/// Options for [`save_hf`].
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// Dtype on disk: F32, F16 or BF16.
    pub dtype: DType,
    /// Split into shards of at most this many bytes (with `model.safetensors.index.json`).
    pub max_shard_bytes: Option<u64>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self { dtype: DType::F32, max_shard_bytes: None }
    }
}

/// Save a model in HF layout: `config.json` plus `model.safetensors` (or shards and an index).
/// `base_config` keeps unknown fields of the original `config.json`.
pub fn save_hf(model: &Llama, dir: &Path, base_config: Option<&HfLlamaConfig>, options: &SaveOptions) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_owned(), source })?;
    let config = model.config();
    let (st_dtype, torch_dtype) = match options.dtype {
        DType::F32 => (StDtype::F32, "float32"),
        DType::F16 => (StDtype::F16, "float16"),
        DType::BF16 => (StDtype::BF16, "bfloat16"),
        other => {
            return Err(Error::Save { path: dir.to_owned(), message: format!("unsupported save dtype {other:?}") });
        }
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for w in Weight::all(config) {
        let Some(data) = model.weight_data(w) else { continue };
        let shape = w.hf_shape(config);
        let data = data.convert_dtype(options.dtype);
        tensors.push((w.hf_name(), shape, data.as_bytes().to_vec()));
    }
    // Group into shards.
    let mut shards: Vec<Vec<usize>> = vec![vec![]];
    let mut size = 0u64;
    for (i, (_, _, bytes)) in tensors.iter().enumerate() {
        if let Some(max) = options.max_shard_bytes
            && size > 0
            && size + bytes.len() as u64 > max
        {
            shards.push(vec![]);
            size = 0;
        }
        size += bytes.len() as u64;
        if let Some(s) = shards.last_mut() {
            s.push(i);
        }
    }
    let n = shards.len();
    let mut weight_map = BTreeMap::new();
    let total: u64 = tensors.iter().map(|t| t.2.len() as u64).sum();
    for (k, members) in shards.iter().enumerate() {
        let file_name =
            if n == 1 { "model.safetensors".to_owned() } else { format!("model-{:05}-of-{:05}.safetensors", k + 1, n) };
        let views: Vec<(String, TensorView<'_>)> = members
            .iter()
            .map(|&i| {
                let (name, shape, bytes) = &tensors[i];
                TensorView::new(st_dtype, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::Save { path: dir.join(&file_name), message: e.to_string() })
            })
            .collect::<Result<_>>()?;
        let meta = HashMap::from([("format".to_owned(), "pt".to_owned())]);
        let bytes = safetensors::tensor::serialize(views, Some(meta))
            .map_err(|e| Error::Save { path: dir.join(&file_name), message: e.to_string() })?;
        write_atomic(&dir.join(&file_name), &bytes)?;
        for &i in members {
            weight_map.insert(tensors[i].0.clone(), file_name.clone());
        }
    }
    if n > 1 {
        let index = serde_json::json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
        let text = serde_json::to_string_pretty(&index).map_err(|e| Error::Save { path: dir.to_owned(), message: e.to_string() })?;
        write_atomic(&dir.join("model.safetensors.index.json"), text.as_bytes())?;
    } else {
        let stale = dir.join("model.safetensors.index.json");
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|source| Error::Io { path: stale, source })?;
        }
    }
    let mut hf = config.to_hf(base_config);
    hf.extra.insert("torch_dtype".into(), serde_json::json!(torch_dtype));
    let text = serde_json::to_string_pretty(&hf).map_err(|e| Error::Save { path: dir.to_owned(), message: e.to_string() })?;
    write_atomic(&dir.join("config.json"), text.as_bytes())?;
    Ok(())
}

/// Write to `path.tmp`, fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut f = File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(parent) = path.parent()
        && let Ok(d) = File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

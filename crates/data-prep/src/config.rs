//! The `infuse prep` configuration: TOML (or JSON) with unknown keys rejected by name, plus
//! `key=value` overrides (`mix.order=icp`, `sources.0.weight=0.5`, `seed=7`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compliance::ComplianceConfig;
use crate::dedup::DedupStepConfig;
use crate::filters::FilterConfig;
use crate::mix::{IcpConfig, Order};
use crate::normalize::NormalizeConfig;
use crate::pack::LastPartial;
use crate::pii::PiiConfig;
use crate::sft::{AugmentConfig, SftFormat, Truncation};
use crate::shard::Shard;
use crate::write::OutputFormat;
use crate::{Error, Result};

/// What an input source contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// JSON lines (optionally gzipped).
    #[default]
    Jsonl,
    /// Parquet files.
    Parquet,
    /// Folders of plain text / Markdown files.
    Text,
    /// Source-code repositories.
    Code,
}

/// One pre-training input source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name used in reports and outputs (letters, digits, `-`, `_`).
    pub name: String,
    /// Kind of input.
    #[serde(default)]
    pub kind: SourceKind,
    /// Files, directories or `dir/*.jsonl` patterns (relative to the config file).
    pub paths: Vec<PathBuf>,
    /// Text field (JSONL/Parquet).
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Id field (JSONL/Parquet); absent ids become `FILE:LINE`.
    #[serde(default = "default_id_field")]
    pub id_field: Option<String>,
    /// Mixing weight (normalized over sources).
    #[serde(default = "one")]
    pub weight: f64,
    /// Maximum passes over this source when up-sampling.
    #[serde(default = "one")]
    pub max_epochs: f64,
    /// Filters to apply by name; default: `gopher_quality, gopher_repetition, fineweb, scorer`
    /// for text sources, `code` for code.
    #[serde(default)]
    pub filters: Option<Vec<String>>,
    /// Anonymize this source.
    #[serde(default = "yes")]
    pub pii: bool,
    /// Include this source in dedup.
    #[serde(default = "yes")]
    pub dedup: bool,
    /// Skip records/files larger than this many bytes.
    #[serde(default = "default_max_bytes")]
    pub max_record_bytes: usize,
    /// Code sources: languages to keep (empty: all known).
    #[serde(default)]
    pub languages: Vec<String>,
}

fn default_text_field() -> String {
    "text".into()
}
#[allow(clippy::unnecessary_wraps)] // serde default for an Option field
fn default_id_field() -> Option<String> {
    Some("id".into())
}
fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn default_max_bytes() -> usize {
    crate::read::DEFAULT_MAX_RECORD_BYTES
}

impl SourceConfig {
    /// A source with default fields (text field `text`, id field `id`, weight 1, one epoch,
    /// default filters, PII and dedup on).
    pub fn new(name: impl Into<String>, kind: SourceKind, paths: Vec<PathBuf>) -> Self {
        Self {
            name: name.into(),
            kind,
            paths,
            text_field: default_text_field(),
            id_field: default_id_field(),
            weight: 1.0,
            max_epochs: 1.0,
            filters: None,
            pii: true,
            dedup: true,
            max_record_bytes: default_max_bytes(),
            languages: Vec::new(),
        }
    }

    /// The filter names that apply to this source.
    pub fn filter_names(&self) -> Vec<String> {
        match &self.filters {
            Some(f) => f.clone(),
            None if self.kind == SourceKind::Code => vec!["code".into()],
            None => ["gopher_quality", "gopher_repetition", "fineweb", "scorer"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// Mixing, ordering, splitting and packing of the CPT data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixConfig {
    /// Total tokens of the training mix; default: as many as the weights and `max_epochs` allow.
    pub total_tokens: Option<u64>,
    /// Document order before packing.
    pub order: Order,
    /// ICP similarity settings.
    pub icp: IcpConfig,
    /// Metadata field with a numeric difficulty score for curriculum order (higher = later);
    /// default: the char n-gram fluency score (cleaner text first).
    pub curriculum_field: Option<String>,
    /// Fraction of documents held out for validation (by a hash of the id, before mixing).
    pub valid_fraction: f64,
    /// Shuffle packed sequences (not allowed with curriculum order).
    pub shuffle_sequences: Option<bool>,
    /// Prepend BOS to each document (default: when the tokenizer has a BOS token).
    pub add_bos: Option<bool>,
    /// Append EOS to each document.
    pub add_eos: bool,
    /// The last partial sequence.
    pub last_partial: LastPartial,
}

impl Default for MixConfig {
    fn default() -> Self {
        Self {
            total_tokens: None,
            order: Order::Shuffle,
            icp: IcpConfig::default(),
            curriculum_field: None,
            valid_fraction: 0.01,
            shuffle_sequences: None,
            add_bos: None,
            add_eos: true,
            last_partial: LastPartial::Keep,
        }
    }
}

/// One SFT or preference input source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSourceConfig {
    /// Name used in reports.
    pub name: String,
    /// JSONL files, directories or patterns.
    pub paths: Vec<PathBuf>,
    /// Record format (SFT only; preference records are detected).
    #[serde(default)]
    pub format: SftFormat,
    /// System prompt for conversations without one.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Field with a task type.
    #[serde(default)]
    pub task_type_field: Option<String>,
    /// Anonymize message contents.
    #[serde(default = "yes")]
    pub pii: bool,
}

/// Rendering and packing of SFT/preference data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// `auto`, `tokenizer`, `llama3`, `chatml`, `smollm2`.
    pub chat_template: String,
    /// Maximum tokens per sample (default: `seq_len`).
    pub max_len: Option<usize>,
    /// Over-long samples.
    pub truncation: Truncation,
    /// Pack several samples per sequence (boundaries kept).
    pub packing: bool,
    /// Fraction held out for validation.
    pub valid_fraction: f64,
    /// Robustness variants (train split only).
    pub augment: AugmentConfig,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            chat_template: "auto".into(),
            max_len: None,
            truncation: Truncation::Drop,
            packing: true,
            valid_fraction: 0.02,
            augment: AugmentConfig::default(),
        }
    }
}

/// When a run cleans, merges, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// `all` in a single process, `clean` when the environment says there are several ranks.
    #[default]
    Auto,
    /// Clean this rank's shard only.
    Clean,
    /// Merge all shards: dedup, mix, order, tokenize, pack, report.
    Merge,
    /// Clean and merge.
    All,
}

/// The whole `infuse prep` configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepConfig {
    /// Output directory (relative to the config file).
    pub output_dir: PathBuf,
    /// `tokenizer.json` (a `tokenizer_config.json` next to it is used too); needed for CPT
    /// packing and SFT rendering, optional for cleaning only.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Sequence length of packed sequences.
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
    /// Seed of every random choice (splits, sampling, shuffles).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Stage to run.
    #[serde(default)]
    pub stage: Stage,
    /// Explicit shard (otherwise from the environment).
    #[serde(default)]
    pub shard: Option<Shard>,
    /// Format of the cleaned-records output.
    #[serde(default)]
    pub output_format: OutputFormat,
    /// Keep the intermediate `work/` directory.
    #[serde(default)]
    pub keep_work: bool,
    /// Examples kept per removal reason in the report.
    #[serde(default = "default_examples")]
    pub report_examples: usize,
    /// Report `tokens_in` per source (needs `tokenizer`; `null` in the report without one):
    /// tokens, without BOS/EOS, of every record read (removed ones included) measured on its
    /// text after normalization (mojibake, line endings, NFC, control characters, whitespace:
    /// the text the filters see), not on the raw bytes. Cheap: a record kept unchanged is
    /// tokenized once, by the packing pass, whose count is shared; only records that are
    /// removed (compliance, filters, dedup) or whose text a filter, the anonymizer or paragraph
    /// dedup changes are tokenized one extra time. On by default.
    #[serde(default = "default_true")]
    pub count_tokens_in: bool,
    /// Records processed per parallel batch (bounds memory).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Normalization.
    #[serde(default)]
    pub normalize: NormalizeConfig,
    /// Quality filter thresholds.
    #[serde(default)]
    pub filters: FilterConfig,
    /// Near-duplicate removal.
    #[serde(default)]
    pub dedup: DedupStepConfig,
    /// Anonymization.
    #[serde(default)]
    pub pii: PiiConfig,
    /// Blocklists.
    #[serde(default)]
    pub compliance: ComplianceConfig,
    /// Mixing, order, split, packing.
    #[serde(default)]
    pub mix: MixConfig,
    /// Pre-training sources.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// SFT sources.
    #[serde(default)]
    pub sft: Vec<ChatSourceConfig>,
    /// Preference sources.
    #[serde(default)]
    pub preference: Vec<ChatSourceConfig>,
    /// SFT/preference rendering.
    #[serde(default)]
    pub chat: ChatConfig,
}

fn default_seq_len() -> usize {
    2048
}
fn default_seed() -> u64 {
    1234
}
fn default_true() -> bool {
    true
}
fn default_examples() -> usize {
    3
}
fn default_batch() -> usize {
    2048
}

impl PrepConfig {
    /// A configuration with defaults and no sources.
    pub fn new(output_dir: impl Into<PathBuf>) -> Self {
        let mut v = serde_json::json!({ "output_dir": output_dir.into() });
        if let Value::Object(m) = &mut v {
            m.retain(|_, x| !x.is_null());
        }
        #[allow(clippy::expect_used)] // all other fields have defaults
        serde_json::from_value(v).expect("defaults deserialize")
    }

    /// Load a TOML, YAML (`.yaml`/`.yml`) or JSON (`.json`) file (see [`ConfigFormat::from_path`])
    /// and apply `key=value` overrides; relative paths in the file are resolved against the
    /// file's directory. Errors name the file (and, for syntax errors, the line).
    pub fn load(path: impl AsRef<Path>, overrides: &[String]) -> Result<Self> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("cannot read config", path, e))?;
        let mut cfg = Self::from_str_format(&text, ConfigFormat::from_path(path), overrides).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.resolve_paths(&base);
        Ok(cfg)
    }

    /// Parse TOML (or JSON with `json = true`) text with overrides (paths left as written).
    pub fn from_str_with(text: &str, json: bool, overrides: &[String]) -> Result<Self> {
        Self::from_str_format(text, if json { ConfigFormat::Json } else { ConfigFormat::Toml }, overrides)
    }

    /// Parse text in `format` with overrides (paths left as written). Every format goes through
    /// the same JSON value, override and validation path, so unknown keys are rejected by name
    /// whatever the format.
    pub fn from_str_format(text: &str, format: ConfigFormat, overrides: &[String]) -> Result<Self> {
        let mut value: Value = match format {
            ConfigFormat::Json => serde_json::from_str(text).map_err(|e| Error::Config(e.to_string()))?,
            ConfigFormat::Toml => {
                let t: toml::Value = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
                serde_json::to_value(t)?
            }
            ConfigFormat::Yaml => {
                // `<<: *anchor` merge keys are applied first (otherwise `<<` would be rejected
                // as an unknown key); the error names the line and column.
                let mut y: serde_yaml_ng::Value =
                    serde_yaml_ng::from_str(text).map_err(|e| Error::Config(format!("YAML: {e}")))?;
                y.apply_merge().map_err(|e| Error::Config(format!("YAML: {e}")))?;
                serde_json::to_value(y).map_err(|e| Error::Config(format!("YAML: {e}")))?
            }
        };
        for o in overrides {
            apply_override(&mut value, o)?;
        }
        let cfg: Self = serde_path_error(value)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.output_dir);
        if let Some(t) = &mut self.tokenizer {
            fix(t);
        }
        for s in &mut self.sources {
            s.paths.iter_mut().for_each(fix);
        }
        for s in self.sft.iter_mut().chain(self.preference.iter_mut()) {
            s.paths.iter_mut().for_each(fix);
        }
        for p in [
            &mut self.pii.names_file,
            &mut self.compliance.blocklist_file,
            &mut self.compliance.blocked_domains_file,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
    }

    /// Check cross-field consistency.
    pub fn validate(&self) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for s in self
            .sources
            .iter()
            .map(|s| &s.name)
            .chain(self.sft.iter().map(|s| &s.name))
            .chain(self.preference.iter().map(|s| &s.name))
        {
            if s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(Error::Config(format!(
                    "source name `{s}` must be non-empty letters, digits, `-` or `_`"
                )));
            }
            if !names.insert(s.as_str()) {
                return Err(Error::Config(format!("source name `{s}` is used twice")));
            }
        }
        for s in &self.sources {
            if s.paths.is_empty() {
                return Err(Error::Config(format!(
                    "sources.{}: `paths` is empty",
                    s.name
                )));
            }
            if !(s.weight >= 0.0
                && s.weight.is_finite()
                && s.max_epochs > 0.0
                && s.max_epochs.is_finite())
            {
                return Err(Error::Config(format!(
                    "sources.{}: weight must be >= 0 and max_epochs > 0",
                    s.name
                )));
            }
            for f in s.filter_names() {
                if !crate::filters::FILTER_NAMES.contains(&f.as_str()) {
                    return Err(Error::Config(format!(
                        "sources.{}: unknown filter `{f}` (known: {})",
                        s.name,
                        crate::filters::FILTER_NAMES.join(", ")
                    )));
                }
            }
        }
        if self.seq_len < 2 {
            return Err(Error::Config("seq_len must be at least 2".into()));
        }
        if !(0.0..1.0).contains(&self.mix.valid_fraction)
            || !(0.0..1.0).contains(&self.chat.valid_fraction)
        {
            return Err(Error::Config("valid_fraction must be in [0, 1)".into()));
        }
        if self.mix.order == Order::Curriculum && self.mix.shuffle_sequences == Some(true) {
            return Err(Error::Config("mix.order = \"curriculum\" needs mix.shuffle_sequences = false (shuffling would undo the order)".into()));
        }
        if self.batch_size == 0 {
            return Err(Error::Config("batch_size must be positive".into()));
        }
        Ok(())
    }
}

/// Deserialize, turning serde's message into one that names the key path.
fn serde_path_error(value: Value) -> Result<PrepConfig> {
    serde_json::from_value(value).map_err(|e| Error::Config(e.to_string()))
}

/// Apply one `a.b.0.c=value` override to a JSON tree. The value is parsed as a TOML value
/// (`7`, `0.5`, `true`, `"text"`, `[1, 2]`), falling back to a plain string.
pub fn apply_override(root: &mut Value, spec: &str) -> Result<()> {
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| Error::Config(format!("override `{spec}` is not key=value")))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(Error::Config(format!("override `{spec}` has an empty key")));
    }
    let value: Value = match toml::from_str::<toml::Table>(&format!("v = {}", raw.trim())) {
        Ok(mut t) => match t.remove("v") {
            Some(v) => serde_json::to_value(v)?,
            None => Value::String(raw.to_owned()),
        },
        Err(_) => Value::String(raw.trim().to_owned()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        cur = match cur {
            Value::Array(items) => {
                let idx: usize = part.parse().map_err(|_| {
                    Error::Config(format!(
                        "override `{key}`: `{part}` must be an index into a list"
                    ))
                })?;
                let len = items.len();
                let slot = items.get_mut(idx).ok_or_else(|| {
                    Error::Config(format!(
                        "override `{key}`: index {idx} out of range (list has {len})"
                    ))
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            Value::Object(map) => {
                if last {
                    map.insert((*part).to_owned(), value);
                    return Ok(());
                }
                map.entry((*part).to_owned())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()))
            }
            _ => {
                return Err(Error::Config(format!(
                    "override `{key}`: `{part}` is inside a value that is not a table"
                )));
            }
        };
    }
    Ok(())
}

/// The syntax of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// TOML (the default for unknown extensions).
    Toml,
    /// JSON (`.json`).
    Json,
    /// YAML (`.yaml`, `.yml`), axolotl's recipe syntax.
    Yaml,
}

impl ConfigFormat {
    /// The format a path's extension names.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("json") => Self::Json,
            Some("yaml" | "yml") => Self::Yaml,
            _ => Self::Toml,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_config_equals_its_toml_twin() {
        let from_toml = PrepConfig::from_str_with(MIN, false, &["seed=9".into()]).expect("toml");
        let as_yaml = serde_yaml_ng::to_string(&toml::from_str::<toml::Value>(MIN).expect("toml value")).expect("yaml");
        let from_yaml = PrepConfig::from_str_format(&as_yaml, ConfigFormat::Yaml, &["seed=9".into()]).expect("yaml");
        assert_eq!(from_yaml, from_toml);
        assert_eq!(from_yaml.seed, 9, "overrides apply to YAML");
        let typo = format!("{as_yaml}min_wrds: 3\n");
        let err = PrepConfig::from_str_format(&typo, ConfigFormat::Yaml, &[]).expect_err("unknown key");
        assert!(err.to_string().contains("min_wrds"), "{err}");
        let err = PrepConfig::from_str_format("output_dir: [\n", ConfigFormat::Yaml, &[]).expect_err("syntax");
        assert!(err.to_string().contains("line"), "{err}");
        assert_eq!(ConfigFormat::from_path(Path::new("prep.YML")), ConfigFormat::Yaml);
        assert_eq!(ConfigFormat::from_path(Path::new("prep.toml")), ConfigFormat::Toml);
    }

    #[test]
    fn yaml_file_matches_toml_file_and_errors_name_the_file() {
        const TOML: &str = r#"
output_dir = "out"
tokenizer = "tok/tokenizer.json"
seq_len = 1024
seed = 5

[dedup]
threshold = 0.85
paragraph = true

[pii]
names = ["Ann", "Bob"]

[[sources]]
name = "domain"
paths = ["data/domain", "data/more"]
weight = 0.7
max_epochs = 3

[[sources]]
name = "general"
kind = "text"
paths = ["data/general"]
weight = 0.3
max_epochs = 3

[mix]
order = "icp"
valid_fraction = 0.05
"#;
        // The same, written as a YAML user would (anchors and a merge key included).
        const YAML: &str = "
output_dir: out
tokenizer: tok/tokenizer.json
seq_len: 1024
seed: 5
dedup:
  threshold: 0.85
  paragraph: true
pii:
  names: [Ann, Bob]
sources:
  - &domain
    name: domain
    paths:
      - data/domain
      - data/more
    weight: 0.7
    max_epochs: 3
  - <<: *domain
    name: general
    kind: text
    paths: [data/general]
    weight: 0.3
mix:
  order: icp
  valid_fraction: 0.05
";
        let dir = tempfile::tempdir().expect("tempdir");
        let (t, y) = (dir.path().join("prep.toml"), dir.path().join("prep.yaml"));
        std::fs::write(&t, TOML).expect("write");
        std::fs::write(&y, YAML).expect("write");
        let overrides = ["sources.1.weight=0.4".to_owned(), "mix.order=shuffle".to_owned()];
        let from_toml = PrepConfig::load(&t, &overrides).expect("toml");
        let from_yaml = PrepConfig::load(&y, &overrides).expect("yaml");
        assert_eq!(from_yaml, from_toml);
        assert_eq!(from_yaml.sources[1].weight, 0.4);
        assert_eq!(from_yaml.sources[1].max_epochs, from_yaml.sources[0].max_epochs, "merge key applied");
        assert_eq!(from_yaml.sources[1].paths, [dir.path().join("data/general")]);
        assert!(from_yaml.dedup.paragraph && from_yaml.pii.names == ["Ann", "Bob"]);

        let bad = dir.path().join("typo.yml");
        std::fs::write(&bad, YAML.replace("  threshold: 0.85", "  treshold: 0.85")).expect("write");
        let err = PrepConfig::load(&bad, &[]).expect_err("unknown key").to_string();
        assert!(err.contains("treshold") && err.contains("typo.yml"), "{err}");
        std::fs::write(&bad, "output_dir: out\nsources:\n  - name: a\n   paths: [x]\n").expect("write");
        let err = PrepConfig::load(&bad, &[]).expect_err("syntax").to_string();
        assert!(err.contains("typo.yml") && err.contains("line 4"), "{err}");
        let err = PrepConfig::load(&y, &["mix.ordr=icp".to_owned()]).expect_err("override").to_string();
        assert!(err.contains("ordr") && err.contains("prep.yaml"), "{err}");
    }

    const MIN: &str = r#"
output_dir = "out"
tokenizer = "tok/tokenizer.json"

[[sources]]
name = "domain"
paths = ["data/domain"]
weight = 0.7
max_epochs = 3

[[sources]]
name = "general"
kind = "text"
paths = ["data/general"]
weight = 0.3

[mix]
order = "icp"
"#;

    #[test]
    fn parses_and_applies_overrides() {
        let cfg = PrepConfig::from_str_with(
            MIN,
            false,
            &[
                "mix.order=curriculum".into(),
                "mix.shuffle_sequences=false".into(),
                "sources.1.weight=0.5".into(),
                "seed=7".into(),
                "pii.names=[\"Ann\"]".into(),
            ],
        )
        .expect("ok");
        assert_eq!(cfg.mix.order, Order::Curriculum);
        assert_eq!(cfg.sources[1].weight, 0.5);
        assert_eq!(cfg.seed, 7);
        assert_eq!(cfg.pii.names, vec!["Ann".to_string()]);
        assert_eq!(cfg.sources[0].kind, SourceKind::Jsonl);
        assert_eq!(
            cfg.sources[1].filter_names(),
            vec!["gopher_quality", "gopher_repetition", "fineweb", "scorer"]
        );
        assert_eq!(cfg.seq_len, 2048);
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err = PrepConfig::from_str_with(
            &format!("{MIN}\n[filters.gopher_quality]\nmin_doc_wrds = 3\n"),
            false,
            &[],
        )
        .expect_err("unknown");
        assert!(err.to_string().contains("min_doc_wrds"), "{err}");
        let err =
            PrepConfig::from_str_with(MIN, false, &["mix.ordr=icp".into()]).expect_err("unknown");
        assert!(err.to_string().contains("ordr"), "{err}");
        let err = PrepConfig::from_str_with(MIN, false, &["sources.5.weight=1".into()])
            .expect_err("range");
        assert!(err.to_string().contains("out of range"), "{err}");
        let err = PrepConfig::from_str_with(MIN, false, &["sources.0.filters=[\"gopher\"]".into()])
            .expect_err("filter");
        assert!(err.to_string().contains("unknown filter `gopher`"), "{err}");
        let err = PrepConfig::from_str_with(
            MIN,
            false,
            &[
                "mix.order=curriculum".into(),
                "mix.shuffle_sequences=true".into(),
            ],
        )
        .expect_err("conflict");
        assert!(err.to_string().contains("curriculum"), "{err}");
        assert!(PrepConfig::from_str_with(MIN, false, &["noequals".into()]).is_err());
    }

    #[test]
    fn programmatic_defaults() {
        let cfg = PrepConfig::new("o");
        assert_eq!(cfg.output_dir, PathBuf::from("o"));
        assert_eq!(
            (cfg.seq_len, cfg.seed, cfg.stage),
            (2048, 1234, Stage::Auto)
        );
        assert!(cfg.sources.is_empty() && cfg.dedup.enabled && cfg.pii.enabled);
        cfg.validate().expect("valid");
    }

    #[test]
    fn load_resolves_relative_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("prep.toml");
        std::fs::write(&p, MIN).expect("write");
        let cfg = PrepConfig::load(&p, &[]).expect("load");
        assert_eq!(cfg.output_dir, dir.path().join("out"));
        assert_eq!(cfg.sources[0].paths[0], dir.path().join("data/domain"));
        let json = dir.path().join("prep.json");
        std::fs::write(&json, r#"{"output_dir": "o", "sources": []}"#).expect("write");
        assert_eq!(
            PrepConfig::load(&json, &[]).expect("json").output_dir,
            dir.path().join("o")
        );
    }
}

//! The tokenizer wrapper: a HF `tokenizer.json` plus the model's special tokens.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::chat::{ChatTemplate, Segment};
use crate::{Error, Result};

/// Special token ids of a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning-of-sequence id, if the model uses one.
    pub bos: Option<u32>,
    /// Every id that ends generation (Llama 3 Instruct: `<|end_of_text|>` and `<|eot_id|>`).
    pub eos: Vec<u32>,
    /// Padding id, if any.
    pub pad: Option<u32>,
    /// Whether `encode_with_bos` style callers should prepend BOS (HF `add_bos_token`).
    pub add_bos: bool,
}

/// How to treat special tokens when decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// Keep special tokens in the text.
    KeepSpecial,
    /// Drop special tokens from the text.
    SkipSpecial,
}

/// Ids of a segmented conversation with a per-token loss mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSegments {
    /// Token ids of the whole text.
    pub ids: Vec<u32>,
    /// `trainable[i]` is true when token `i` starts inside a trainable segment.
    pub trainable: Vec<bool>,
}

/// A Hugging Face tokenizer with the model's special tokens and (optionally) its chat template.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialTokens,
    chat_template: Option<ChatTemplate>,
    origin: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("origin", &self.origin)
            .field("vocab_size", &self.vocab_size())
            .field("special", &self.special)
            .field("has_chat_template", &self.chat_template.is_some())
            .finish()
    }
}

const BOS_NAMES: [&str; 3] = ["<|begin_of_text|>", "<s>", "<|startoftext|>"];
const EOS_NAMES: [&str; 6] = ["<|end_of_text|>", "<|eot_id|>", "<|im_end|>", "</s>", "<|endoftext|>", "<|eom_id|>"];

impl Tokenizer {
    /// Load `tokenizer.json`. When a `tokenizer_config.json` sits next to it, its `bos_token`,
    /// `eos_token`, `pad_token`, `add_bos_token` and `chat_template` are used; otherwise special tokens
    /// are recognised by their usual names.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| Error::InvalidTokenizer {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        let config_path = path.with_file_name("tokenizer_config.json");
        let config = if config_path.is_file() { Some(TokenizerConfig::read(&config_path)?) } else { None };
        let mut tok = Self {
            inner,
            special: SpecialTokens::default(),
            chat_template: None,
            origin: path.display().to_string(),
        };
        tok.special = tok.guess_special_tokens();
        if let Some(config) = config {
            tok.apply_config(config)?;
        }
        Ok(tok)
    }

    /// Wrap an already built `tokenizers::Tokenizer` (e.g. one rebuilt from GGUF metadata).
    pub fn from_parts(
        inner: tokenizers::Tokenizer,
        special: SpecialTokens,
        chat_template: Option<ChatTemplate>,
        origin: impl Into<String>,
    ) -> Self {
        Self { inner, special, chat_template, origin: origin.into() }
    }

    /// Where this tokenizer came from (file path or description).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Special token ids.
    pub fn special(&self) -> &SpecialTokens {
        &self.special
    }

    /// Replace the special tokens (e.g. with the ids from the model's `config.json`).
    pub fn set_special(&mut self, special: SpecialTokens) {
        self.special = special;
    }

    /// The chat template that came with the tokenizer, if any.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// Set the chat template.
    pub fn set_chat_template(&mut self, template: ChatTemplate) {
        self.chat_template = Some(template);
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token string, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token string of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Encode text without adding any special token; special tokens written in the text (e.g.
    /// `<|eot_id|>` in a rendered chat prompt) map to their ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| Error::Tokenize(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encode text and prepend BOS when the model has one and the text does not already start with it.
    pub fn encode_with_bos(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode(text)?;
        if let Some(bos) = self.special.bos
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// Encode the concatenation of `segments` in one pass (so tokens are exactly those of the whole
    /// text) and mark each token trainable when its first byte lies in a trainable segment.
    pub fn encode_segments(&self, segments: &[Segment]) -> Result<EncodedSegments> {
        let mut text = String::new();
        let mut ranges = Vec::new();
        for s in segments {
            let start = text.len();
            text.push_str(&s.text);
            if s.trainable {
                ranges.push(start..text.len());
            }
        }
        let enc = self.inner.encode(text.as_str(), false).map_err(|e| Error::Tokenize(e.to_string()))?;
        let trainable = enc
            .get_offsets()
            .iter()
            .map(|&(start, _)| ranges.iter().any(|r| r.contains(&start)))
            .collect();
        Ok(EncodedSegments { ids: enc.get_ids().to_vec(), trainable })
    }

    /// Decode ids to text.
    pub fn decode(&self, ids: &[u32], mode: Decode) -> Result<String> {
        self.inner.decode(ids, mode == Decode::SkipSpecial).map_err(|e| Error::Tokenize(e.to_string()))
    }

    /// Write `tokenizer.json` and `tokenizer_config.json` (special tokens, `add_bos_token`, chat
    /// template) into `dir`, so transformers and infuse load the same tokenizer back.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let io = |path: PathBuf| move |source| Error::Io { path, source };
        std::fs::create_dir_all(dir).map_err(io(dir.to_owned()))?;
        let json = self.inner.to_string(false).map_err(|e| Error::Tokenize(e.to_string()))?;
        write_atomic(&dir.join("tokenizer.json"), json.as_bytes())?;
        let name = |id: Option<u32>| id.and_then(|i| self.inner.id_to_token(i));
        let mut config = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": name(self.special.bos),
            "eos_token": name(self.special.eos.first().copied()),
            "pad_token": name(self.special.pad),
            "add_bos_token": self.special.add_bos,
            "clean_up_tokenization_spaces": false,
            "model_max_length": 1_000_000_000_000_000_000u64,
        });
        if let Some(t) = &self.chat_template {
            config["chat_template"] = t.source().into();
        }
        let text = serde_json::to_string_pretty(&config).map_err(|e| Error::Tokenize(e.to_string()))?;
        write_atomic(&dir.join("tokenizer_config.json"), text.as_bytes())
    }

    /// True when `id` ends generation.
    pub fn is_eos(&self, id: u32) -> bool {
        self.special.eos.contains(&id)
    }

    fn guess_special_tokens(&self) -> SpecialTokens {
        let bos = BOS_NAMES.iter().find_map(|t| self.inner.token_to_id(t));
        let eos = EOS_NAMES.iter().filter_map(|t| self.inner.token_to_id(t)).collect();
        SpecialTokens { bos, eos, pad: None, add_bos: false }
    }

    fn apply_config(&mut self, config: TokenizerConfig) -> Result<()> {
        let lookup = |token: &Option<String>, role: &'static str| -> Result<Option<u32>> {
            match token {
                None => Ok(None),
                Some(t) => self
                    .inner
                    .token_to_id(t)
                    .map(Some)
                    .ok_or_else(|| Error::UnknownSpecialToken { token: t.clone(), role }),
            }
        };
        if let Some(bos) = lookup(&config.bos_token, "bos")? {
            self.special.bos = Some(bos);
        }
        if let Some(eos) = lookup(&config.eos_token, "eos")? {
            // The configured EOS comes first; keep the other end tokens found by name too, since
            // chat models end turns with a different token than documents.
            self.special.eos.retain(|&e| e != eos);
            self.special.eos.insert(0, eos);
        }
        self.special.pad = lookup(&config.pad_token, "pad")?;
        if let Some(add_bos) = config.add_bos_token {
            self.special.add_bos = add_bos;
        }
        if let Some(source) = config.chat_template {
            self.chat_template = Some(ChatTemplate::new(
                source,
                config.bos_token.unwrap_or_default(),
                config.eos_token.unwrap_or_default(),
            )?);
        }
        Ok(())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let io = |source| Error::Io { path: path.to_owned(), source };
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The fields of `tokenizer_config.json` that matter here.
struct TokenizerConfig {
    bos_token: Option<String>,
    eos_token: Option<String>,
    pad_token: Option<String>,
    add_bos_token: Option<bool>,
    chat_template: Option<String>,
}

impl TokenizerConfig {
    fn read(path: &PathBuf) -> Result<Self> {
        let invalid = |message: String| Error::InvalidTokenizerConfig { path: path.clone(), message };
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let json: Json = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        let token = |key: &str| -> Result<Option<String>> {
            match json.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(Json::Object(o)) => match o.get("content") {
                    Some(Json::String(s)) => Ok(Some(s.clone())),
                    _ => Err(invalid(format!("field `{key}` has no string `content`"))),
                },
                Some(_) => Err(invalid(format!("field `{key}` must be a string or an AddedToken object"))),
            }
        };
        let chat_template = match json.get("chat_template") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.clone()),
            // A list of named templates: use "default".
            Some(Json::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                .or_else(|| list.first())
                .and_then(|t| t.get("template"))
                .and_then(Json::as_str)
                .map(str::to_owned),
            Some(_) => return Err(invalid("field `chat_template` must be a string or a list".into())),
        };
        let add_bos_token = match json.get("add_bos_token") {
            None | Some(Json::Null) => None,
            Some(Json::Bool(b)) => Some(*b),
            Some(_) => return Err(invalid("field `add_bos_token` must be a boolean".into())),
        };
        Ok(Self {
            bos_token: token("bos_token")?,
            eos_token: token("eos_token")?,
            pad_token: token("pad_token")?,
            add_bos_token,
            chat_template,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny word-level tokenizer.json written by hand.
    fn tiny_tokenizer_json() -> String {
        serde_json::json!({
            "version": "1.0",
            "truncation": null, "padding": null,
            "added_tokens": [
                {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
            ],
            "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"<s>": 0, "</s>": 1, "hello": 2, "world": 3, "[UNK]": 4}, "unk_token": "[UNK]"}
        })
        .to_string()
    }

    #[test]
    fn loads_and_guesses_special_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, tiny_tokenizer_json()).expect("write");
        let tok = Tokenizer::from_file(&path).expect("load");
        assert_eq!(tok.special().bos, Some(0));
        assert_eq!(tok.special().eos, vec![1]);
        assert_eq!(tok.encode("hello world").expect("encode"), vec![2, 3]);
        assert_eq!(tok.encode_with_bos("hello").expect("encode"), vec![0, 2]);
        assert_eq!(tok.encode("hello</s>").expect("encode"), vec![2, 1]);
    }

    #[test]
    fn config_overrides_and_rejects_unknown_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, tiny_tokenizer_json()).expect("write");
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": true, "chat_template": "{{ bos_token }}x"}"#,
        )
        .expect("write");
        let tok = Tokenizer::from_file(&path).expect("load");
        assert!(tok.special().add_bos);
        assert!(tok.chat_template().is_some());
        std::fs::write(dir.path().join("tokenizer_config.json"), r#"{"eos_token": "<nope>"}"#).expect("write");
        let err = Tokenizer::from_file(&path).expect_err("unknown eos");
        assert!(err.to_string().contains("<nope>"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Tokenizer::from_file("/nonexistent/tokenizer.json").expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/tokenizer.json"), "{err}");
    }

    #[test]
    fn garbage_file_is_invalid_tokenizer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, "{not json").expect("write");
        let err = Tokenizer::from_file(&path).expect_err("garbage");
        assert!(matches!(err, Error::InvalidTokenizer { .. }), "{err}");
    }

    #[test]
    fn segments_mask_tokens_by_start_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, tiny_tokenizer_json()).expect("write");
        let tok = Tokenizer::from_file(&path).expect("load");
        let enc = tok
            .encode_segments(&[
                Segment { text: "hello ".into(), trainable: false },
                Segment { text: "world</s>".into(), trainable: true },
                Segment { text: " hello".into(), trainable: false },
            ])
            .expect("encode");
        assert_eq!(enc.ids, vec![2, 3, 1, 2]);
        assert_eq!(enc.trainable, vec![false, true, true, false]);
    }
}

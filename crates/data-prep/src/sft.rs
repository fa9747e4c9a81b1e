//! SFT and preference data: formats in, validation, task-type annotation, rendering through the
//! model's chat template into token ids with per-token loss masks, truncation, and augmentation.
//!
//! Formats (one JSON object per line):
//! - **Alpaca**: `instruction`, optional `input` (joined to the instruction with a newline),
//!   `output`, optional `system` and `history` (`[[user, assistant], ...]`).
//! - **ShareGPT / Vicuna**: `conversations: [{"from": "human"|"gpt"|"system"|..., "value": ...}]`,
//!   optional `system`.
//! - **OpenAI**: `messages: [{"role": "system"|"user"|"assistant"|"tool", "content": ...}]`
//!   (content as a string or a list of `{"type": "text", "text": ...}` parts).
//! - **Preference**: `prompt` (string or message list) or `messages`/`conversations`, or Alpaca
//!   `instruction`/`input`; plus `chosen` and `rejected` (a string, a message, or a message list
//!   whose last message is the assistant answer).
//!
//! Every problem is reported with the JSON path of the field (`conversations[2].from`); the
//! pipeline skips and counts bad records.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use infuse_text::{ChatTemplate, Message, Tokenizer};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rng::{SplitMix64, hash_str};
use crate::{Error, Result};

/// Input format of SFT records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SftFormat {
    /// Detect per record: `messages` -> OpenAI, `conversations` -> ShareGPT, `instruction` -> Alpaca.
    #[default]
    Auto,
    /// Alpaca.
    Alpaca,
    /// ShareGPT / Vicuna.
    Sharegpt,
    /// OpenAI chat messages.
    Openai,
}

/// A field-level validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// As a crate error at `line`.
    pub fn at_line(self, line: u64) -> Error {
        Error::InvalidRecord {
            line,
            field: self.field,
            message: self.message,
        }
    }
}

/// A validated conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Record id (`id` field or `FILE:LINE`).
    pub id: String,
    /// Messages with roles `system`, `user`, `assistant`, `tool`.
    pub messages: Vec<Message>,
    /// Task type (from a field or [`classify_task`]).
    pub task_type: String,
}

/// Options of the SFT parser.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParseOptions {
    /// Input format.
    pub format: SftFormat,
    /// System prompt added to conversations that have none.
    pub system_prompt: Option<String>,
    /// Field holding a task type (default `task_type`); rules decide when it is absent.
    pub task_type_field: Option<String>,
}

fn get_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> std::result::Result<Option<&'a str>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(FieldError::new(
            path,
            format!("expected a string, found {}", crate::read::json_type(other)),
        )),
    }
}

fn require_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> std::result::Result<&'a str, FieldError> {
    match get_str(obj, key, path)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(FieldError::new(path, "is empty")),
        None => Err(FieldError::new(path, "is missing")),
    }
}

/// Content of an OpenAI message: a string or a list of text parts.
fn content_text(v: Option<&Value>, path: &str) -> std::result::Result<String, FieldError> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (i, p) in parts.iter().enumerate() {
                match p.get("text").and_then(Value::as_str) {
                    Some(t) => out.push_str(t),
                    None => {
                        return Err(FieldError::new(
                            format!("{path}[{i}]"),
                            "expected a text part {\"type\": \"text\", \"text\": ...}",
                        ));
                    }
                }
            }
            Ok(out)
        }
        Some(Value::Null) | None => Err(FieldError::new(path, "is missing")),
        Some(other) => Err(FieldError::new(
            path,
            format!("expected a string, found {}", crate::read::json_type(other)),
        )),
    }
}

fn map_sharegpt_role(from: &str) -> Option<&'static str> {
    Some(match from.to_ascii_lowercase().as_str() {
        "human" | "user" => "user",
        "gpt" | "assistant" | "model" | "chatgpt" | "bard" | "bing" | "function_call" => {
            "assistant"
        }
        "system" => "system",
        "observation" | "tool" | "function" => "tool",
        _ => return None,
    })
}

/// Check roles: optional leading system, then user/assistant turns starting with a user message,
/// no two user or two assistant turns in a row (tool messages may follow assistant messages),
/// at least one assistant message, non-empty contents.
fn validate_messages(
    msgs: &[Message],
    list_path: &str,
    require_final_assistant: bool,
) -> std::result::Result<(), FieldError> {
    if msgs.is_empty() {
        return Err(FieldError::new(list_path, "has no messages"));
    }
    let mut prev: Option<&str> = None;
    for (i, m) in msgs.iter().enumerate() {
        let p = format!("{list_path}[{i}]");
        if m.role == "system" && i != 0 {
            return Err(FieldError::new(p, "a system message may only come first"));
        }
        if m.role != "tool" && m.content.trim().is_empty() {
            return Err(FieldError::new(p, "content is empty"));
        }
        match (prev, m.role.as_str()) {
            (None | Some("system"), "assistant") => {
                return Err(FieldError::new(p, "the first turn must be from the user"));
            }
            (Some("user"), "user") | (Some("assistant"), "assistant") => {
                return Err(FieldError::new(
                    p,
                    format!("two `{}` messages in a row", m.role),
                ));
            }
            (None | Some("system"), "tool") => {
                return Err(FieldError::new(
                    p,
                    "a tool message must follow an assistant message",
                ));
            }
            _ => {}
        }
        prev = Some(m.role.as_str());
    }
    if !msgs.iter().any(|m| m.role == "assistant") && require_final_assistant {
        return Err(FieldError::new(list_path, "has no assistant message"));
    }
    if require_final_assistant && msgs.last().is_some_and(|m| m.role != "assistant") {
        return Err(FieldError::new(
            format!("{list_path}[{}]", msgs.len() - 1),
            "the last message must be from the assistant",
        ));
    }
    Ok(())
}

fn parse_message_list(
    v: &Value,
    path: &str,
    sharegpt: bool,
) -> std::result::Result<Vec<Message>, FieldError> {
    let Value::Array(items) = v else {
        return Err(FieldError::new(
            path,
            format!("expected an array, found {}", crate::read::json_type(v)),
        ));
    };
    let mut msgs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Value::Object(obj) = item else {
            return Err(FieldError::new(p, "expected an object"));
        };
        if sharegpt {
            let from = require_str(obj, "from", &format!("{p}.from"))?;
            let role = map_sharegpt_role(from).ok_or_else(|| {
                FieldError::new(format!("{p}.from"), format!("unknown speaker `{from}`"))
            })?;
            let value = content_text(obj.get("value"), &format!("{p}.value"))?;
            msgs.push(Message::new(role, value));
        } else {
            let role = require_str(obj, "role", &format!("{p}.role"))?;
            if !matches!(role, "system" | "user" | "assistant" | "tool") {
                return Err(FieldError::new(
                    format!("{p}.role"),
                    format!("unknown role `{role}`"),
                ));
            }
            let content = content_text(obj.get("content"), &format!("{p}.content"))?;
            msgs.push(Message::new(role, content));
        }
    }
    Ok(msgs)
}

fn alpaca_prompt(obj: &Map<String, Value>) -> std::result::Result<String, FieldError> {
    let instruction = require_str(obj, "instruction", "instruction")?;
    Ok(match get_str(obj, "input", "input")? {
        Some(input) if !input.trim().is_empty() => format!("{instruction}\n{input}"),
        _ => instruction.to_owned(),
    })
}

fn alpaca_history(obj: &Map<String, Value>) -> std::result::Result<Vec<Message>, FieldError> {
    let mut out = Vec::new();
    match obj.get("history") {
        None | Some(Value::Null) => {}
        Some(Value::Array(turns)) => {
            for (i, t) in turns.iter().enumerate() {
                let pair = t.as_array().filter(|a| a.len() == 2);
                let (Some(q), Some(a)) = (
                    pair.and_then(|a| a[0].as_str()),
                    pair.and_then(|a| a[1].as_str()),
                ) else {
                    return Err(FieldError::new(
                        format!("history[{i}]"),
                        "expected [user, assistant] strings",
                    ));
                };
                out.push(Message::user(q));
                out.push(Message::assistant(a));
            }
        }
        Some(_) => {
            return Err(FieldError::new(
                "history",
                "expected an array of [user, assistant] pairs",
            ));
        }
    }
    Ok(out)
}

/// Parse and validate one SFT record.
pub fn parse_sft(
    value: &Value,
    default_id: &str,
    opts: &ParseOptions,
) -> std::result::Result<Conversation, FieldError> {
    let Value::Object(obj) = value else {
        return Err(FieldError::new("", "a record must be a JSON object"));
    };
    let format = match opts.format {
        SftFormat::Auto => {
            if obj.contains_key("messages") {
                SftFormat::Openai
            } else if obj.contains_key("conversations") {
                SftFormat::Sharegpt
            } else if obj.contains_key("instruction") {
                SftFormat::Alpaca
            } else {
                return Err(FieldError::new(
                    "",
                    "cannot detect the format: expected `messages`, `conversations` or `instruction`",
                ));
            }
        }
        f => f,
    };
    let mut messages = match format {
        SftFormat::Openai => parse_message_list(
            obj.get("messages").unwrap_or(&Value::Null),
            "messages",
            false,
        )?,
        SftFormat::Sharegpt => {
            let mut m = parse_message_list(
                obj.get("conversations").unwrap_or(&Value::Null),
                "conversations",
                true,
            )?;
            if let Some(sys) = get_str(obj, "system", "system")?.filter(|s| !s.trim().is_empty())
                && m.first().is_none_or(|x| x.role != "system")
            {
                m.insert(0, Message::system(sys));
            }
            m
        }
        SftFormat::Alpaca | SftFormat::Auto => {
            let mut m = Vec::new();
            if let Some(sys) = get_str(obj, "system", "system")?.filter(|s| !s.trim().is_empty()) {
                m.push(Message::system(sys));
            }
            m.extend(alpaca_history(obj)?);
            m.push(Message::user(alpaca_prompt(obj)?));
            m.push(Message::assistant(require_str(obj, "output", "output")?));
            m
        }
    };
    let list_path = match format {
        SftFormat::Openai => "messages",
        SftFormat::Sharegpt => "conversations",
        _ => "",
    };
    validate_messages(&messages, list_path, true)?;
    if let Some(sys) = &opts.system_prompt
        && messages.first().is_none_or(|m| m.role != "system")
    {
        messages.insert(0, Message::system(sys.clone()));
    }
    let id = id_of(obj, default_id);
    let task_type = task_type_of(obj, opts, &messages);
    Ok(Conversation {
        id,
        messages,
        task_type,
    })
}

fn id_of(obj: &Map<String, Value>, default_id: &str) -> String {
    match obj.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => default_id.to_owned(),
    }
}

fn task_type_of(obj: &Map<String, Value>, opts: &ParseOptions, messages: &[Message]) -> String {
    let field = opts.task_type_field.as_deref().unwrap_or("task_type");
    if let Some(Value::String(t)) = obj.get(field)
        && !t.trim().is_empty()
    {
        return t.trim().to_lowercase();
    }
    let prompt = messages
        .iter()
        .find(|m| m.role == "user")
        .map_or("", |m| m.content.as_str());
    let answer = messages
        .iter()
        .rev()
        .find(|m| m.role == "assistant")
        .map_or("", |m| m.content.as_str());
    classify_task(prompt, answer).to_owned()
}

macro_rules! rule {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| {
            #[allow(clippy::unwrap_used)] // constant pattern
            Regex::new($pat).unwrap()
        });
    };
}

rule!(
    CODE_PROMPT,
    r"(?i)\b(code|function|program|script|python|javascript|typescript|rust|java|c\+\+|sql|regex|bug|compile|implement|class|method|api)\b"
);
rule!(
    CODE_ANSWER,
    r"(?m)```|^\s*(def |fn |function |class |import |#include|public static|SELECT |let |const )"
);
rule!(
    MATH,
    r"(?i)\b(calculate|compute|solve|equation|integral|derivative|how many|how much|sum of|product of|probability|percent)\b|\d+\s*[-+*/^×÷]\s*\d+"
);
rule!(
    SUMMARY,
    r"(?i)\b(summari[sz]e|summary|tl;dr|key points|in short)\b"
);
rule!(TRANSLATE, r"(?i)\btranslat");
rule!(
    CLASSIFY,
    r"(?i)\b(classify|categori[sz]e|category|sentiment|label|is this (a|an)|which of the following)\b"
);
rule!(
    EXTRACT,
    r"(?i)\b(extract|list all|find all|identify the|pull out)\b"
);
rule!(
    REWRITE,
    r"(?i)\b(rewrite|paraphrase|rephrase|proofread|correct the grammar|edit the|make it more|simplify)\b"
);
rule!(
    CREATIVE,
    r"(?i)\b(write|compose) (a|an|me a) (story|poem|song|essay|letter|haiku|limerick|speech|script)\b|\b(story|poem)\b"
);
rule!(
    BRAINSTORM,
    r"(?i)\b(brainstorm|ideas|suggest|suggestions|come up with)\b"
);
rule!(
    QUESTION,
    r"(?i)^\s*(what|who|whom|whose|when|where|why|how|which|is|are|does|do|can|could|should|would)\b"
);

/// Rule-based task type of a prompt/answer pair: `code`, `math`, `summarization`, `translation`,
/// `classification`, `extraction`, `rewriting`, `creative_writing`, `brainstorming`, `open_qa`,
/// or `chat`.
pub fn classify_task(prompt: &str, answer: &str) -> &'static str {
    if CODE_ANSWER.is_match(answer)
        || (CODE_PROMPT.is_match(prompt) && CODE_ANSWER.is_match(prompt))
        || CODE_PROMPT.is_match(prompt) && answer.contains("()")
    {
        return "code";
    }
    if TRANSLATE.is_match(prompt) {
        return "translation";
    }
    if SUMMARY.is_match(prompt) {
        return "summarization";
    }
    if REWRITE.is_match(prompt) {
        return "rewriting";
    }
    if CLASSIFY.is_match(prompt) {
        return "classification";
    }
    if EXTRACT.is_match(prompt) {
        return "extraction";
    }
    if MATH.is_match(prompt) {
        return "math";
    }
    if CREATIVE.is_match(prompt) {
        return "creative_writing";
    }
    if BRAINSTORM.is_match(prompt) {
        return "brainstorming";
    }
    if CODE_PROMPT.is_match(prompt) {
        return "code";
    }
    if QUESTION.is_match(prompt) || prompt.trim_end().ends_with('?') {
        return "open_qa";
    }
    "chat"
}

/// A validated preference pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    /// Record id.
    pub id: String,
    /// The conversation up to the answer (ends with a user message).
    pub prompt: Vec<Message>,
    /// The preferred answer.
    pub chosen: String,
    /// The dispreferred answer.
    pub rejected: String,
    /// Task type.
    pub task_type: String,
}

fn answer_text(v: Option<&Value>, path: &str) -> std::result::Result<String, FieldError> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(FieldError::new(path, "is empty")),
        Some(Value::Object(o)) => {
            let text = content_text(
                o.get("content").or_else(|| o.get("value")),
                &format!("{path}.content"),
            )?;
            if text.trim().is_empty() {
                Err(FieldError::new(format!("{path}.content"), "is empty"))
            } else {
                Ok(text)
            }
        }
        Some(Value::Array(items)) => {
            let last = items
                .len()
                .checked_sub(1)
                .ok_or_else(|| FieldError::new(path, "has no messages"))?;
            let item = &items[last];
            let role = item
                .get("role")
                .or_else(|| item.get("from"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !matches!(role, "assistant" | "gpt" | "model") {
                return Err(FieldError::new(
                    format!("{path}[{last}]"),
                    "the last message must be from the assistant",
                ));
            }
            answer_text(Some(item), &format!("{path}[{last}]"))
        }
        None | Some(Value::Null) => Err(FieldError::new(path, "is missing")),
        Some(other) => Err(FieldError::new(
            path,
            format!(
                "expected a string or message, found {}",
                crate::read::json_type(other)
            ),
        )),
    }
}

/// Parse and validate one preference record.
pub fn parse_preference(
    value: &Value,
    default_id: &str,
    opts: &ParseOptions,
) -> std::result::Result<PreferencePair, FieldError> {
    let Value::Object(obj) = value else {
        return Err(FieldError::new("", "a record must be a JSON object"));
    };
    let mut prompt = if let Some(p) = obj.get("prompt") {
        match p {
            Value::String(s) if !s.trim().is_empty() => vec![Message::user(s.clone())],
            Value::Array(_) => parse_message_list(p, "prompt", false)?,
            _ => {
                return Err(FieldError::new(
                    "prompt",
                    "expected a non-empty string or a message list",
                ));
            }
        }
    } else if let Some(m) = obj.get("messages") {
        parse_message_list(m, "messages", false)?
    } else if let Some(c) = obj.get("conversations") {
        parse_message_list(c, "conversations", true)?
    } else if obj.contains_key("instruction") {
        vec![Message::user(alpaca_prompt(obj)?)]
    } else {
        return Err(FieldError::new(
            "",
            "cannot detect the prompt: expected `prompt`, `messages`, `conversations` or `instruction`",
        ));
    };
    if let Some(sys) = get_str(obj, "system", "system")?.filter(|s| !s.trim().is_empty())
        && prompt.first().is_none_or(|m| m.role != "system")
    {
        prompt.insert(0, Message::system(sys));
    }
    validate_messages(&prompt, "prompt", false)?;
    if prompt.last().is_some_and(|m| m.role != "user") {
        return Err(FieldError::new("prompt", "must end with a user message"));
    }
    let chosen = answer_text(obj.get("chosen"), "chosen")?;
    let rejected = answer_text(obj.get("rejected"), "rejected")?;
    if chosen == rejected {
        return Err(FieldError::new("rejected", "is identical to `chosen`"));
    }
    if let Some(sys) = &opts.system_prompt
        && prompt.first().is_none_or(|m| m.role != "system")
    {
        prompt.insert(0, Message::system(sys.clone()));
    }
    let mut full = prompt.clone();
    full.push(Message::assistant(chosen.clone()));
    let task_type = task_type_of(obj, opts, &full);
    Ok(PreferencePair {
        id: id_of(obj, default_id),
        prompt,
        chosen,
        rejected,
        task_type,
    })
}

/// What to do with samples longer than the maximum length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// Skip the sample (counted as `too_long`).
    #[default]
    Drop,
    /// Keep the first `max_len` tokens (dropped if no trained token remains).
    Right,
}

/// A rendered, tokenized sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Per-token loss flag: assistant content and its end-of-turn token.
    pub mask: Vec<bool>,
    /// True when truncated.
    pub truncated: bool,
}

/// Why an encoded sample was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeSkip {
    /// Longer than the maximum with [`Truncation::Drop`].
    TooLong,
    /// No trainable token (after truncation).
    NoTrainableTokens,
}

/// Render messages with `template` and tokenize them in one pass with the loss mask from
/// [`ChatTemplate::render_segments`] (assistant content and end-of-turn token trained).
pub fn encode_conversation(
    tok: &Tokenizer,
    template: &ChatTemplate,
    messages: &[Message],
    max_len: usize,
    truncation: Truncation,
) -> Result<std::result::Result<Encoded, EncodeSkip>> {
    let segments = template.render_segments(messages)?;
    let enc = tok.encode_segments(&segments)?;
    let (mut ids, mut mask) = (enc.ids, enc.trainable);
    let mut truncated = false;
    if ids.len() > max_len {
        match truncation {
            Truncation::Drop => return Ok(Err(EncodeSkip::TooLong)),
            Truncation::Right => {
                ids.truncate(max_len);
                mask.truncate(max_len);
                truncated = true;
            }
        }
    }
    if !mask.iter().any(|&m| m) {
        return Ok(Err(EncodeSkip::NoTrainableTokens));
    }
    Ok(Ok(Encoded {
        ids,
        mask,
        truncated,
    }))
}

/// Choose the chat template: `"auto"` uses the tokenizer's own template when it can split a probe
/// conversation into trainable segments (is prefix-stable), otherwise Llama 3's when the vocabulary
/// has `<|eot_id|>`, ChatML's when it has `<|im_end|>`; a built-in name (`llama3`, `chatml`,
/// `smollm2`) or `tokenizer` forces one.
pub fn choose_template(name: &str, tok: &Tokenizer) -> Result<(ChatTemplate, String)> {
    let probe = [
        Message::user("hi"),
        Message::assistant("hello"),
        Message::user("bye"),
        Message::assistant("goodbye"),
    ];
    match name {
        "auto" => {
            if let Some(t) = tok.chat_template()
                && t.render_segments(&probe).is_ok()
            {
                return Ok((t.clone(), "tokenizer".into()));
            }
            if tok.token_to_id("<|eot_id|>").is_some() {
                return Ok((ChatTemplate::llama3(), "llama3".into()));
            }
            if tok.token_to_id("<|im_end|>").is_some() {
                return Ok((ChatTemplate::chatml(), "chatml".into()));
            }
            Err(Error::Config(
                "sft.chat_template = \"auto\": the tokenizer has no usable chat template; set \"llama3\", \"chatml\" or \"smollm2\"".into(),
            ))
        }
        "tokenizer" => {
            let t = tok.chat_template().ok_or_else(|| {
                Error::Config("sft.chat_template = \"tokenizer\" but the tokenizer has none".into())
            })?;
            t.render_segments(&probe)?;
            Ok((t.clone(), "tokenizer".into()))
        }
        other => ChatTemplate::builtin(other)
            .map(|t| (t, other.to_owned()))
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown chat template `{other}` (auto, tokenizer, llama3, chatml, smollm2)"
                ))
            }),
    }
}

/// Deterministic robustness variants of user messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Generate variants.
    pub enabled: bool,
    /// Variants per conversation (each with a different mix of noise).
    pub variants: usize,
    /// Probability per letter of a typo (swap with the next letter, drop, or double it).
    pub typo_rate: f64,
    /// Probability per word of flipping its case (lower/upper/title).
    pub case_rate: f64,
    /// Probability per space of doubling it or inserting a newline-free extra space.
    pub whitespace_rate: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            variants: 1,
            typo_rate: 0.02,
            case_rate: 0.05,
            whitespace_rate: 0.05,
        }
    }
}

/// A hook to rewrite conversations with a model later (paraphrases, style transfer).
pub trait Rewriter: Send + Sync {
    /// Return a rewritten copy, or `None` to skip.
    fn rewrite(&self, conversation: &Conversation) -> Result<Option<Conversation>>;
}

/// Add noise to one text, seeded.
pub fn add_noise(text: &str, cfg: &AugmentConfig, seed: u64) -> String {
    let mut rng = SplitMix64::new(seed);
    let mut out = String::with_capacity(text.len() + 8);
    for (wi, word) in text.split(' ').enumerate() {
        if wi > 0 {
            out.push(' ');
            if rng.unit() < cfg.whitespace_rate {
                out.push(' ');
            }
        }
        let mut w: Vec<char> = word.chars().collect();
        if rng.unit() < cfg.case_rate && w.iter().any(|c| c.is_alphabetic()) {
            w = match rng.below(3) {
                0 => w.iter().flat_map(|c| c.to_lowercase()).collect(),
                1 => w.iter().flat_map(|c| c.to_uppercase()).collect(),
                _ => w
                    .iter()
                    .enumerate()
                    .flat_map(|(i, c)| {
                        if i == 0 {
                            c.to_uppercase().collect::<Vec<_>>()
                        } else {
                            c.to_lowercase().collect()
                        }
                    })
                    .collect(),
            };
        }
        let mut i = 0;
        while i < w.len() {
            if w[i].is_alphabetic() && rng.unit() < cfg.typo_rate {
                match rng.below(3) {
                    0 if i + 1 < w.len() && w[i + 1].is_alphabetic() => w.swap(i, i + 1),
                    1 if w.len() > 2 => {
                        w.remove(i);
                        continue;
                    }
                    _ => {
                        let c = w[i];
                        w.insert(i, c);
                        i += 1;
                    }
                }
            }
            i += 1;
        }
        out.extend(w);
    }
    out
}

/// Robustness variants of a conversation: user messages get noise, everything else is kept; ids
/// get `#augN` suffixes. Deterministic in (seed, conversation id, variant).
pub fn augment(conv: &Conversation, cfg: &AugmentConfig, seed: u64) -> Vec<Conversation> {
    if !cfg.enabled {
        return Vec::new();
    }
    (1..=cfg.variants)
        .map(|v| {
            let base = hash_str(seed ^ v as u64, &conv.id);
            let messages = conv
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    if m.role == "user" {
                        Message::new(
                            "user",
                            add_noise(&m.content, cfg, base.wrapping_add(i as u64)),
                        )
                    } else {
                        m.clone()
                    }
                })
                .collect();
            Conversation {
                id: format!("{}#aug{v}", conv.id),
                messages,
                task_type: conv.task_type.clone(),
            }
        })
        .collect()
}

/// Count of task types, for reports.
pub type TaskTypes = BTreeMap<String, u64>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> std::result::Result<Conversation, FieldError> {
        parse_sft(&v, "f:1", &ParseOptions::default())
    }

    #[test]
    fn three_formats_give_the_same_conversation() {
        let alpaca = parse(json!({"instruction": "Compute", "input": "2 + 3", "output": "5", "system": "Be brief."})).expect("alpaca");
        let share = parse(json!({"system": "Be brief.", "conversations": [
            {"from": "human", "value": "Compute\n2 + 3"}, {"from": "gpt", "value": "5"}]}))
        .expect("sharegpt");
        let openai = parse(json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Compute\n2 + 3"}]},
            {"role": "assistant", "content": "5"}]}))
        .expect("openai");
        assert_eq!(alpaca.messages, share.messages);
        assert_eq!(alpaca.messages, openai.messages);
        assert_eq!(alpaca.messages.len(), 3);
        assert_eq!(alpaca.id, "f:1");
        assert_eq!(alpaca.task_type, "math");
    }

    #[test]
    fn multi_turn_history_and_system_prompt_option() {
        let c = parse_sft(
            &json!({"id": 9, "instruction": "And 3+3?", "output": "6", "history": [["1+1?", "2"]]}),
            "x",
            &ParseOptions {
                system_prompt: Some("You are helpful.".into()),
                ..ParseOptions::default()
            },
        )
        .expect("ok");
        let roles: Vec<&str> = c.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            vec!["system", "user", "assistant", "user", "assistant"]
        );
        assert_eq!(c.id, "9");
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases = [
            (
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                "messages",
                "no assistant",
            ),
            (
                json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}, {"role": "user", "content": "?"}]}),
                "messages[2]",
                "last message",
            ),
            (
                json!({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}),
                "messages[1].role",
                "unknown role",
            ),
            (
                json!({"conversations": [{"from": "human", "value": "a"}, {"from": "alien", "value": "b"}]}),
                "conversations[1].from",
                "unknown speaker",
            ),
            (
                json!({"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}),
                "conversations[1]",
                "in a row",
            ),
            (
                json!({"conversations": [{"from": "gpt", "value": "a"}]}),
                "conversations[0]",
                "first turn",
            ),
            (json!({"instruction": "x"}), "output", "missing"),
            (
                json!({"instruction": 3, "output": "y"}),
                "instruction",
                "expected a string",
            ),
            (
                json!({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}),
                "messages[0]",
                "empty",
            ),
            (
                json!({"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}),
                "messages[1]",
                "system",
            ),
            (json!({"text": "plain"}), "", "cannot detect"),
            (json!([1, 2]), "", "JSON object"),
        ];
        for (v, field, msg) in cases {
            let e = parse(v.clone()).expect_err("invalid");
            assert_eq!(e.field, field, "{v}: {e:?}");
            assert!(e.message.contains(msg), "{v}: {e:?}");
        }
    }

    #[test]
    fn preference_formats() {
        let opts = ParseOptions::default();
        let a = parse_preference(
            &json!({"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."}),
            "l:1",
            &opts,
        )
        .expect("ok");
        assert_eq!(a.prompt, vec![Message::user("Hi?")]);
        let b = parse_preference(
            &json!({"prompt": [{"role": "user", "content": "Hi?"}],
                    "chosen": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello!"}],
                    "rejected": {"role": "assistant", "content": "Go away."}}),
            "l:2",
            &opts,
        )
        .expect("ok");
        assert_eq!(
            (b.chosen.as_str(), b.rejected.as_str()),
            ("Hello!", "Go away.")
        );
        let c = parse_preference(
            &json!({"instruction": "Hi?", "chosen": "Hello!", "rejected": "Go away."}),
            "l:3",
            &opts,
        )
        .expect("ok");
        assert_eq!(c.prompt, a.prompt);
        let e = parse_preference(
            &json!({"prompt": "Hi", "chosen": "x", "rejected": "x"}),
            "l",
            &opts,
        )
        .expect_err("same");
        assert_eq!(e.field, "rejected");
        let e = parse_preference(&json!({"prompt": "Hi", "chosen": "x"}), "l", &opts)
            .expect_err("missing");
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("rejected", "is missing")
        );
        let e = parse_preference(
            &json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "chosen": "x", "rejected": "y"}),
            "l",
            &opts,
        )
        .expect_err("prompt ends with assistant");
        assert_eq!(e.field, "prompt");
    }

    #[test]
    fn task_rules() {
        assert_eq!(
            classify_task(
                "Write a Python function to reverse a list",
                "```python\ndef f(x): ...```"
            ),
            "code"
        );
        assert_eq!(
            classify_task("Translate 'hello' to French", "Bonjour"),
            "translation"
        );
        assert_eq!(
            classify_task("Summarize this article: ...", "It says..."),
            "summarization"
        );
        assert_eq!(classify_task("What is 12 * 7?", "84"), "math");
        assert_eq!(
            classify_task("Classify the sentiment of: I love it", "positive"),
            "classification"
        );
        assert_eq!(
            classify_task("Write a poem about the sea", "Waves..."),
            "creative_writing"
        );
        assert_eq!(
            classify_task("Give me ideas for a party", "1. ..."),
            "brainstorming"
        );
        assert_eq!(classify_task("Who wrote Hamlet?", "Shakespeare"), "open_qa");
        assert_eq!(classify_task("Hello there", "Hi!"), "chat");
        let c = parse(json!({"instruction": "x y", "output": "z", "task_type": "Domain_QA"}))
            .expect("ok");
        assert_eq!(c.task_type, "domain_qa");
    }

    #[test]
    fn augmentation_is_deterministic_and_only_touches_user_turns() {
        let conv = parse(json!({"instruction": "Please explain how the compiler resolves imports in large projects", "output": "It walks the module graph."})).expect("ok");
        let cfg = AugmentConfig {
            enabled: true,
            variants: 2,
            typo_rate: 0.2,
            case_rate: 0.3,
            whitespace_rate: 0.3,
        };
        let a = augment(&conv, &cfg, 1);
        assert_eq!(a, augment(&conv, &cfg, 1));
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].id, "f:1#aug1");
        assert_ne!(a[0].messages[0].content, conv.messages[0].content);
        assert_ne!(a[0].messages[0].content, a[1].messages[0].content);
        assert_eq!(a[0].messages[1], conv.messages[1]);
        assert!(augment(&conv, &AugmentConfig::default(), 1).is_empty());
    }
}

//! Chat templates rendered exactly as transformers' `apply_chat_template` renders them.
//!
//! Transformers compiles the template with Jinja2 (`trim_blocks=True, lstrip_blocks=True`,
//! `loopcontrols`), passes `messages`, `add_generation_prompt` and the special tokens
//! (`bos_token`, `eos_token`, ...), and provides `raise_exception`, `strftime_now` and a `tojson` that
//! formats like Python's `json.dumps(ensure_ascii=False)`. [`ChatTemplate`] reproduces that
//! environment with `minijinja` (plus `minijinja-contrib`'s Python string methods such as
//! `.strip()`), so the same template source gives byte-identical prompts in training and serving.

use std::fmt::Write as _;

use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The Llama 3 Instruct chat template, as shipped in Meta's `tokenizer_config.json`.
pub const LLAMA3_TEMPLATE: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// The SmolLM2-Instruct ChatML template (from its GGUF `tokenizer.chat_template`): inserts a default
/// system prompt when the conversation does not start with one.
pub const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Plain ChatML without a default system prompt.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` (or any role the template understands).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl Message {
    /// A message with the given role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }
    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Options for [`ChatTemplate::render`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Append the header that asks the model for the next assistant turn (for generation).
    pub add_generation_prompt: bool,
}

/// A piece of a rendered conversation; the concatenation of all segments is the rendered text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The text of this piece.
    pub text: String,
    /// True for assistant output the model must learn to produce, including its end-of-turn token.
    pub trainable: bool,
}

/// A chat template: Jinja source plus the special tokens the template refers to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
    /// Strings that end an assistant turn; a trainable span stops right after the last one.
    end_of_turn: Vec<String>,
    env: Environment<'static>,
}

impl ChatTemplate {
    /// Compile a Jinja chat template (as found in `tokenizer_config.json` or GGUF
    /// `tokenizer.chat_template`) with the special tokens it can refer to.
    pub fn new(source: impl Into<String>, bos_token: impl Into<String>, eos_token: impl Into<String>) -> Result<Self> {
        let source = source.into();
        let eos_token = eos_token.into();
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| Error::TemplateSyntax(describe(&e)))?;
        env.set_syntax(syntax);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson_filter);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned("chat", source.clone()).map_err(|e| Error::TemplateSyntax(describe(&e)))?;
        let mut end_of_turn = vec!["<|eot_id|>".to_owned(), "<|im_end|>".to_owned(), "<|end|>".to_owned()];
        if !eos_token.is_empty() && !end_of_turn.contains(&eos_token) {
            end_of_turn.push(eos_token.clone());
        }
        Ok(Self { source, bos_token: bos_token.into(), eos_token, end_of_turn, env })
    }

    /// Meta's Llama 3 Instruct template with `<|begin_of_text|>` / `<|eot_id|>`.
    pub fn llama3() -> Self {
        Self::new(LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>").expect("built-in template compiles")
    }

    /// SmolLM2-Instruct's ChatML template (default system prompt included).
    pub fn smollm2() -> Self {
        Self::new(SMOLLM2_TEMPLATE, "<|im_start|>", "<|im_end|>").expect("built-in template compiles")
    }

    /// Plain ChatML.
    pub fn chatml() -> Self {
        Self::new(CHATML_TEMPLATE, "<|im_start|>", "<|im_end|>").expect("built-in template compiles")
    }

    /// A built-in template by name: `llama3`, `chatml`, `smollm2`.
    pub fn builtin(name: &str) -> Option<Self> {
        match name {
            "llama3" | "llama-3" => Some(Self::llama3()),
            "chatml" => Some(Self::chatml()),
            "smollm2" => Some(Self::smollm2()),
            _ => None,
        }
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The BOS token text the template may insert.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// The EOS token text given to the template.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// Render a conversation to the prompt text.
    pub fn render(&self, messages: &[Message], options: &RenderOptions) -> Result<String> {
        let template = self.env.get_template("chat").map_err(|e| Error::TemplateSyntax(describe(&e)))?;
        let ctx = minijinja::context! {
            messages => Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => options.add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        template.render(ctx).map_err(|e| Error::TemplateRender(describe(&e)))
    }

    /// Split the rendering of a whole conversation (without generation prompt) into segments where
    /// every assistant message (its content and end-of-turn token, not the header before it) is
    /// trainable and everything else is context.
    ///
    /// For assistant message `i` the trainable span is what rendering `messages[..=i]` adds after
    /// rendering `messages[..i]` with the generation prompt, cut after the last end-of-turn token;
    /// this works for any template whose renderings of growing prefixes are prefixes of each other
    /// and fails with [`Error::NotPrefixStable`] otherwise.
    pub fn render_segments(&self, messages: &[Message]) -> Result<Vec<Segment>> {
        let with_prompt = RenderOptions { add_generation_prompt: true };
        let no_gen = RenderOptions { add_generation_prompt: false };
        let full = self.render(messages, &no_gen)?;
        let mut segments = Vec::new();
        let mut done = 0usize; // bytes of `full` already emitted
        for (i, message) in messages.iter().enumerate() {
            if message.role != "assistant" {
                continue;
            }
            let before = self.render(&messages[..i], &with_prompt)?;
            let upto = self.render(&messages[..=i], &no_gen)?;
            if !upto.starts_with(&before) || !full.starts_with(&upto) || before.len() < done {
                return Err(Error::NotPrefixStable { index: i, next: i + 1 });
            }
            let added = &upto[before.len()..];
            let train_len = self
                .end_of_turn
                .iter()
                .filter_map(|t| added.rfind(t.as_str()).map(|p| p + t.len()))
                .max()
                .unwrap_or(added.len());
            if before.len() > done {
                segments.push(Segment { text: full[done..before.len()].to_owned(), trainable: false });
            }
            if train_len > 0 {
                segments.push(Segment { text: added[..train_len].to_owned(), trainable: true });
            }
            done = before.len() + train_len;
        }
        if done < full.len() {
            segments.push(Segment { text: full[done..].to_owned(), trainable: false });
        }
        Ok(segments)
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let _ = write!(s, ": {inner}");
        source = inner.source();
    }
    s
}

fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

fn strftime_now(format: String) -> String {
    // Templates use this for "Today Date"; UTC date only, as a demanding reproducibility default
    // would pass the date explicitly instead.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    const MONTHS: [&str; 12] =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format
        .replace("%Y", &y.to_string())
        .replace("%m", &format!("{m:02}"))
        .replace("%d", &format!("{d:02}"))
        .replace("%B", MONTHS[(m - 1) as usize])
        .replace("%b", MON[(m - 1) as usize])
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False)`, i.e. `", "` and `": "`
/// separators, or an indented layout when `indent` is given.
fn tojson_filter(value: Value, kwargs: minijinja::value::Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_python_json(&value, indent, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn write_python_json(
    v: &Value,
    indent: Option<usize>,
    level: usize,
    out: &mut String,
) -> std::result::Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                write_python_json(item, indent, level + 1, out)?;
            }
            if !items.is_empty() {
                newline(out, level);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<Value> = v.try_iter()?.collect();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                let key = k.as_str().map(str::to_owned).unwrap_or_else(|| k.to_string());
                out.push_str(&serde_json::Value::String(key).to_string());
                out.push_str(": ");
                write_python_json(&v.get_item(k)?, indent, level + 1, out)?;
            }
            if !keys.is_empty() {
                newline(out, level);
            }
            out.push('}');
        }
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::String => out.push_str(&serde_json::Value::String(v.as_str().unwrap_or_default().to_owned()).to_string()),
        ValueKind::Number => out.push_str(&v.to_string()),
        _ => {
            let json = serde_json::to_string(v)
                .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
            out.push_str(&json);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> Vec<Message> {
        vec![
            Message::system("You are terse."),
            Message::user("Hi"),
            Message::assistant("Hello!"),
            Message::user("Capital of France?"),
            Message::assistant("  Paris.  "),
        ]
    }

    #[test]
    fn llama3_renders_known_layout() {
        let t = ChatTemplate::llama3();
        let out = t
            .render(&[Message::user(" What is 2+2? ")], &RenderOptions { add_generation_prompt: true })
            .expect("render");
        assert_eq!(
            out,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn smollm2_inserts_default_system_prompt() {
        let t = ChatTemplate::smollm2();
        let out = t.render(&[Message::user("Hi")], &RenderOptions::default()).expect("render");
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nHi<|im_end|>\n"
        );
    }

    #[test]
    fn segments_concatenate_to_render_and_mark_only_assistant_output() {
        for t in [ChatTemplate::llama3(), ChatTemplate::smollm2(), ChatTemplate::chatml()] {
            let messages = conv();
            let segments = t.render_segments(&messages).expect("segments");
            let joined: String = segments.iter().map(|s| s.text.as_str()).collect();
            assert_eq!(joined, t.render(&messages, &RenderOptions::default()).expect("render"));
            let trained: Vec<&str> = segments.iter().filter(|s| s.trainable).map(|s| s.text.as_str()).collect();
            assert_eq!(trained.len(), 2, "{trained:?}");
            assert!(trained[0].starts_with("Hello!"));
            assert!(trained.iter().all(|s| s.ends_with("<|eot_id|>") || s.ends_with("<|im_end|>")), "{trained:?}");
            assert!(trained.iter().all(|s| !s.contains("assistant")), "headers are not trained: {trained:?}");
        }
    }

    #[test]
    fn raise_exception_surfaces_as_error() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}", "", "").expect("compiles");
        let err = t.render(&[], &RenderOptions::default()).expect_err("must fail");
        assert!(err.to_string().contains("roles must alternate"), "{err}");
    }

    #[test]
    fn syntax_error_is_reported() {
        let err = ChatTemplate::new("{% for m in messages %}", "", "").expect_err("unclosed for");
        assert!(matches!(err, Error::TemplateSyntax(_)), "{err}");
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        let t = ChatTemplate::new("{{ {'a': 1, 'b': [1, 'x<y'], 'c': 'é'} | tojson }}", "", "").expect("compiles");
        let out = t.render(&[], &RenderOptions::default()).expect("render");
        assert_eq!(out, r#"{"a": 1, "b": [1, "x<y"], "c": "é"}"#);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
    }
}

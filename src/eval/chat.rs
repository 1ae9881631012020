//! Zero-shot chat mode for instruct checkpoints: a prompt becomes the one user message of the
//! checkpoint's chat template (`tokenizer_config.json`'s `chat_template`, rendered with
//! minijinja, a Jinja implementation), followed by the template's generation prompt.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// A checkpoint's chat template and the special tokens it may use.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
    origin: String,
}

fn token(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        _ => String::new(),
    }
}

impl ChatTemplate {
    /// Reads `tokenizer_config.json` of a checkpoint directory; `None` without a template. A
    /// list of named templates uses the one named `default`.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>> {
        let p = dir.join("tokenizer_config.json");
        let Ok(text) = std::fs::read_to_string(&p) else {
            return Ok(None);
        };
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: invalid JSON: {e}", p.display())))?;
        let source = match v.get("chat_template") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template").and_then(Value::as_str))
                .map(String::from)
                .ok_or_else(|| {
                    Error::Invalid(format!("{}: no chat template named `default`", p.display()))
                })?,
            _ => return Ok(None),
        };
        let t = ChatTemplate {
            source,
            bos: token(&v, "bos_token"),
            eos: token(&v, "eos_token"),
            origin: p.display().to_string(),
        };
        t.render("check")?;
        Ok(Some(t))
    }

    /// A template from its source (tests).
    pub fn new(source: &str, bos: &str, eos: &str) -> Self {
        ChatTemplate {
            source: source.into(),
            bos: bos.into(),
            eos: eos.into(),
            origin: "chat template".into(),
        }
    }

    /// The prompt of one user message, with the generation prompt.
    pub fn render(&self, user: &str) -> Result<String> {
        let mut env = minijinja::Environment::new();
        env.add_template("chat", &self.source).map_err(|e| {
            Error::Invalid(format!(
                "{}: the chat template does not parse: {e}",
                self.origin
            ))
        })?;
        let ctx = minijinja::context! {
            messages => vec![minijinja::context! { role => "user", content => user }],
            add_generation_prompt => true,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
        };
        env.get_template("chat")
            .and_then(|t| t.render(ctx))
            .map_err(|e| {
                Error::Invalid(format!("{}: rendering the chat template: {e}", self.origin))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-Instruct's template (from its GGUF metadata).
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_by_hand() {
        let t = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>");
        assert_eq!(
            t.render("What is 2+3?").unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"
        );
        let bos = ChatTemplate::new(
            "{{ bos_token }}[INST] {{ messages[0]['content'] }} [/INST]",
            "<s>",
            "</s>",
        );
        assert_eq!(bos.render("hi").unwrap(), "<s>[INST] hi [/INST]");
        let bad = ChatTemplate::new("{% for %}", "", "");
        assert!(bad
            .render("x")
            .unwrap_err()
            .to_string()
            .contains("does not parse"));
    }
}

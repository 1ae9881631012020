//! Text in and out of the engine: the checkpoint's `tokenizer.json`, prompts to ids, generated
//! ids to text, and stop strings.

use crate::error::{Error, Result};
use std::path::Path;
use tokenizers::Tokenizer;

/// A checkpoint's tokenizer.
pub struct TextCodec {
    tok: Tokenizer,
    origin: String,
}

impl TextCodec {
    /// Loads `tokenizer.json` from a checkpoint directory, if it has one.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>> {
        let p = dir.join("tokenizer.json");
        if !p.is_file() {
            return Ok(None);
        }
        let tok = Tokenizer::from_file(&p)
            .map_err(|e| Error::Invalid(format!("{}: not a usable tokenizer: {e}", p.display())))?;
        Ok(Some(TextCodec {
            tok,
            origin: p.display().to_string(),
        }))
    }

    /// Token ids of a prompt, with the tokenizer's special tokens (BOS where it adds one).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.tok.encode(text, true).map_err(|e| {
            Error::Invalid(format!("{}: cannot encode the prompt: {e}", self.origin))
        })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of a text continuation, without special tokens (log-likelihood scoring).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tok
            .encode(text, false)
            .map_err(|e| Error::Invalid(format!("{}: cannot encode the text: {e}", self.origin)))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of generated ids, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tok
            .decode(ids, true)
            .map_err(|e| Error::Invalid(format!("{}: cannot decode: {e}", self.origin)))
    }
}

/// A word-level tokenizer for synthetic models: id `i` is the word `t{i}` (`t0` doubles as the
/// unknown token), words are split on whitespace and joined with spaces. Ids and text
/// round-trip, so prompts and outputs of random-weight models can be written as text.
pub fn synthetic_tokenizer_json(vocab: usize) -> serde_json::Value {
    let words: serde_json::Map<String, serde_json::Value> =
        (0..vocab).map(|i| (format!("t{i}"), i.into())).collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": words, "unk_token": "t0"}
    })
}

/// Checks that a tokenizer file loads and that its ids fit a model's vocabulary.
pub fn check_tokenizer_file(path: &Path, vocab: usize) -> Result<()> {
    let tok = Tokenizer::from_file(path)
        .map_err(|e| Error::Invalid(format!("{}: not a usable tokenizer: {e}", path.display())))?;
    let n = tok.get_vocab_size(true);
    if n > vocab {
        return Err(Error::Invalid(format!(
            "{}: {n} tokens do not fit the model's vocabulary of {vocab} (set --vocab {n} or more)",
            path.display()
        )));
    }
    Ok(())
}

/// The text before the first stop string, if one occurs in `text`.
pub fn cut_at_stop<'t>(text: &'t str, stops: &[String]) -> Option<&'t str> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
        .map(|at| &text[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings() {
        let stops = vec!["Question:".to_string(), "</s>".to_string()];
        assert_eq!(cut_at_stop("42.\nQuestion: next", &stops), Some("42.\n"));
        assert_eq!(cut_at_stop("a</s>b Question:", &stops), Some("a"));
        assert_eq!(cut_at_stop("no stop here", &stops), None);
        assert_eq!(cut_at_stop("x", &[String::new()]), None);
    }
}

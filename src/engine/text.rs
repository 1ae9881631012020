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

    /// Text of generated ids, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tok
            .decode(ids, true)
            .map_err(|e| Error::Invalid(format!("{}: cannot decode: {e}", self.origin)))
    }
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

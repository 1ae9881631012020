//! Evaluation data on disk: JSON lines, gzip-compressed JSON lines and Arrow IPC streams, read
//! as JSON rows; the data folder that `scripts/fetch-data.sh` fills; and the built-in sample
//! text (prompts without fetched data, and the test of whether a tokenizer covers English).

pub mod arrow;

use crate::model::tokenizer::TextCodec;

use crate::error::{Error, Result};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The built-in sample text: sixteen short paragraphs written for moecap.
pub const SAMPLE_TEXT: &str = include_str!("sample.txt");

/// Non-empty paragraphs (separated by blank lines), whitespace-trimmed.
pub fn paragraphs(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether a tokenizer covers English text: it does not when more than half of the ids of the
/// sample text's first paragraph are one id (the unknown token of a word-level vocabulary such
/// as moecap's synthetic one).
pub fn codec_covers(codec: &TextCodec) -> Result<bool> {
    let ids = codec.encode(&paragraphs(SAMPLE_TEXT)[0])?;
    let mut counts = std::collections::HashMap::new();
    for &i in &ids {
        *counts.entry(i).or_insert(0usize) += 1;
    }
    let top = counts.values().copied().max().unwrap_or(0);
    Ok(!ids.is_empty() && top * 2 <= ids.len())
}

/// The data folder: `$MOECAP_DATA`, else `data` under moecap's cache folder.
pub fn data_dir() -> Option<PathBuf> {
    match std::env::var_os("MOECAP_DATA").filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => crate::machine::dirs::cache_dir().map(|d| d.join("data")),
    }
}

/// Reads the rows of a `.jsonl`, `.jsonl.gz` or `.arrow` (IPC stream) file.
pub fn read_rows(path: &Path) -> Result<Vec<Value>> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if name.ends_with(".arrow") {
        return arrow::read_stream(&bytes).map_err(|m| Error::Invalid(format!("{name}: {m}")));
    }
    let text = if name.ends_with(".gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut s)
            .map_err(|e| Error::Invalid(format!("{name}: not valid gzip-compressed text: {e}")))?;
        s
    } else {
        String::from_utf8(bytes).map_err(|_| Error::Invalid(format!("{name}: not UTF-8 text")))?
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::Invalid(format!("{name} line {}: invalid JSON: {e}", i + 1)))
        })
        .collect()
}

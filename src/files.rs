//! Writing moecap's output files.

use crate::error::{Error, Result};
use serde::Serialize;
use std::path::Path;

/// Writes pretty JSON.
pub fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::Invalid(format!("serialising {}: {e}", path.display())))?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

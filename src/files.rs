//! Writing moecap's output files.

use crate::error::{Error, Result};
use serde::Serialize;
use std::path::Path;

/// Writes pretty JSON.
pub fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::Invalid(format!("serialising {}: {e}", path.display())))?;
    write_atomic(path, (text + "\n").as_bytes())
}

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk, then renames it over
/// `path`, so that a reader (or a run killed midway) sees the old file or the new one, never a
/// half-written one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        // named by the file meant, not by its temporary
        return Err(Error::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temporary() {
        let dir = std::env::temp_dir().join(format!("moecap-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("summary.json");
        std::fs::write(&f, "old").unwrap();
        write_json(&f, &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "{\n  \"a\": 1\n}\n");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // A folder that does not exist: an error naming the file meant, nothing left.
        let e = write_atomic(&dir.join("no/such/x.md"), b"x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no/such"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

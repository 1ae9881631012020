//! The one reader of moecap's CSV tables (hardware, parts, published prices): `#` comments and
//! blank lines skipped, the header checked against the expected columns, every row with exactly
//! that many cells (the last cell may hold commas), errors naming the file and line.

use crate::error::{Error, Result};

/// One data row of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRow<'a> {
    /// 1-based line number in the file.
    pub line: usize,
    /// Its cells, trimmed, one per column.
    pub cells: Vec<&'a str>,
}

impl CsvRow<'_> {
    /// An error about this row of the table `origin`.
    pub fn error(&self, origin: &str, msg: String) -> Error {
        Error::HardwareTable {
            file: origin.to_string(),
            line: self.line,
            msg,
        }
    }
}

/// The data rows of `text` (read from `origin`), whose header must be `columns`.
pub fn read_rows<'a>(text: &'a str, origin: &str, columns: &[&str]) -> Result<Vec<CsvRow<'a>>> {
    let mut rows = Vec::new();
    let mut header_seen = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let row = CsvRow {
            line: i + 1,
            cells: line.splitn(columns.len(), ',').map(str::trim).collect(),
        };
        if !header_seen {
            if row.cells != columns {
                return Err(row.error(origin, format!("the header must be: {}", columns.join(","))));
            }
            header_seen = true;
            continue;
        }
        if row.cells.len() != columns.len() {
            let msg = format!("{} cells, expected {}", row.cells.len(), columns.len());
            return Err(row.error(origin, msg));
        }
        rows.push(row);
    }
    if !header_seen {
        return Err(Error::HardwareTable {
            file: origin.to_string(),
            line: 1,
            msg: "no header line".into(),
        });
    }
    Ok(rows)
}

//! The parts table: the priced parts of a deployment that are not accelerators or CPUs (DRAM per
//! GB, SSDs, board/chassis, NICs), each with a purchase price, a power figure, the date of the price
//! and its source. Embedded from `src/machine/parts.csv`; a deployment file overrides any figure.

use super::csv_table::read_rows;
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// The built-in table's text.
pub const BUILTIN_PARTS: &str = include_str!("parts.csv");

const COLUMNS: [&str; 8] = [
    "name",
    "kind",
    "unit",
    "price_usd",
    "power_w",
    "default_host",
    "price_date",
    "source",
];

/// What a part is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartKind {
    /// An accelerator (a hardware-table row).
    Gpu,
    /// A CPU socket (a hardware-table row).
    Cpu,
    /// Host memory, counted in GB.
    Dram,
    /// Storage.
    Ssd,
    /// Board, chassis, power supply and fans.
    Board,
    /// Network interface.
    Nic,
    /// A part defined only by a deployment file.
    Other,
}

impl PartKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            PartKind::Gpu => "gpu",
            PartKind::Cpu => "cpu",
            PartKind::Dram => "dram",
            PartKind::Ssd => "ssd",
            PartKind::Board => "board",
            PartKind::Nic => "nic",
            PartKind::Other => "other",
        }
    }
}

/// One row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartRow {
    /// Name, as used in a deployment file.
    pub name: String,
    /// dram, ssd, board or nic.
    pub kind: PartKind,
    /// Whether one count is a GB (`true`) or one item.
    pub per_gb: bool,
    /// Purchase price of one unit, USD.
    pub price_usd: f64,
    /// Power of one unit under load, W.
    pub power_w: f64,
    /// Whether a default deployment's host takes this part.
    pub default_host: bool,
    /// When the price was read (`YYYY-MM`).
    pub price_date: String,
    /// Where the figures come from.
    pub source: String,
}

/// The whole table.
#[derive(Debug, Clone, Serialize)]
pub struct PartsTable {
    /// Where it was read from.
    pub origin: String,
    /// Its rows.
    pub rows: Vec<PartRow>,
}

impl PartsTable {
    /// The embedded table.
    pub fn builtin() -> Result<Self> {
        Self::parse(BUILTIN_PARTS, "built-in parts table")
    }

    /// Parses CSV text: `#` comments, a header, rows whose last column (`source`) may hold commas.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut rows: Vec<PartRow> = Vec::new();
        for row in read_rows(text, origin, &COLUMNS)? {
            let cells = &row.cells;
            let err = |msg: String| row.error(origin, msg);
            let num = |idx: usize| -> Result<f64> {
                match cells[idx].parse::<f64>() {
                    Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                    _ => Err(err(format!(
                        "column `{}`: `{}` is not a non-negative number",
                        COLUMNS[idx], cells[idx]
                    ))),
                }
            };
            let kind = match cells[1] {
                "dram" => PartKind::Dram,
                "ssd" => PartKind::Ssd,
                "board" => PartKind::Board,
                "nic" => PartKind::Nic,
                other => {
                    return Err(err(format!(
                        "column `kind`: `{other}` is not dram, ssd, board or nic (accelerators and CPUs belong in the hardware table)"
                    )))
                }
            };
            let per_gb = match cells[2] {
                "GB" => true,
                "each" => false,
                other => return Err(err(format!("column `unit`: `{other}` is not GB or each"))),
            };
            let default_host = match cells[5] {
                "yes" => true,
                "" => false,
                other => {
                    return Err(err(format!(
                        "column `default_host`: `{other}` is not yes or empty"
                    )))
                }
            };
            let name = cells[0].to_string();
            if name.is_empty() {
                return Err(err("column `name` is empty".into()));
            }
            if rows.iter().any(|r| r.name.eq_ignore_ascii_case(&name)) {
                return Err(err(format!("duplicate name `{name}`")));
            }
            if default_host && rows.iter().any(|r| r.default_host && r.kind == kind) {
                return Err(err(format!(
                    "two default_host rows of kind {}",
                    kind.name()
                )));
            }
            rows.push(PartRow {
                name,
                kind,
                per_gb,
                price_usd: num(3)?,
                power_w: num(4)?,
                default_host,
                price_date: cells[6].to_string(),
                source: cells[7].to_string(),
            });
        }
        Ok(PartsTable {
            origin: origin.to_string(),
            rows,
        })
    }

    /// The row named `name` (ignoring case).
    pub fn find(&self, name: &str) -> Option<&PartRow> {
        self.rows.iter().find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// The default host's part of a kind.
    pub fn default_of(&self, kind: PartKind) -> Option<&PartRow> {
        self.rows.iter().find(|r| r.default_host && r.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parts_parse_with_dated_sources_and_one_default_per_kind() {
        let t = PartsTable::builtin().unwrap();
        for kind in [PartKind::Dram, PartKind::Ssd, PartKind::Board] {
            assert!(t.default_of(kind).is_some(), "{kind:?}");
        }
        assert!(t.rows.iter().any(|r| r.kind == PartKind::Nic));
        for r in &t.rows {
            assert!(!r.source.is_empty() && r.price_date.len() == 7, "{r:?}");
        }
        assert!(t.find("ddr5-rdimm").unwrap().per_gb);
    }

    #[test]
    fn malformed_part_rows_name_line_and_column() {
        let hdr = COLUMNS.join(",");
        let e = PartsTable::parse(&format!("{hdr}\nX,gpu,each,1,1,,2026-01,s\n"), "p.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.csv:2:") && e.contains("hardware table"),
            "{e}"
        );
        let e = PartsTable::parse(&format!("{hdr}\nX,ssd,each,-1,1,,2026-01,s\n"), "p.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("price_usd"), "{e}");
        let e = PartsTable::parse(&format!("{hdr}\nX,ssd,box,1,1,,2026-01,s\n"), "p.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unit"), "{e}");
    }
}

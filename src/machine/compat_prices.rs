//! The published MoE-CAP harness's own GPU price and TDP table (`compat_prices.csv`), which its
//! cost formula uses and `--formula moecap-compat` reproduces: each entry with the hardware-table
//! row it corresponds to.

use super::csv_table::read_rows;
use crate::error::Result;
use serde::Serialize;

/// The embedded table.
pub const BUILTIN_COMPAT_PRICES: &str = include_str!("compat_prices.csv");

const COLUMNS: [&str; 4] = ["published_name", "hardware", "price_usd", "tdp_w"];

/// One entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompatPrice {
    /// The name in the published code.
    pub published_name: String,
    /// The moecap hardware-table row, if any.
    pub hardware: Option<String>,
    /// Its price, USD.
    pub price_usd: f64,
    /// Its TDP, W.
    pub tdp_w: f64,
}

/// The table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompatPrices {
    /// Entries in the published order.
    pub rows: Vec<CompatPrice>,
}

impl CompatPrices {
    /// The embedded table.
    pub fn builtin() -> Result<Self> {
        Self::parse(BUILTIN_COMPAT_PRICES, "built-in compat price table")
    }

    /// Parses the CSV layout above.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut rows = Vec::new();
        for row in read_rows(text, origin, &COLUMNS)? {
            let err = |msg: String| row.error(origin, msg);
            let [name, hw, price, tdp] = row.cells[..] else {
                return Err(err(format!("{} cells, expected 4", row.cells.len())));
            };
            let num = |col: &str, s: &str| -> Result<f64> {
                s.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        err(format!(
                            "column `{col}`: `{s}` is not a non-negative number"
                        ))
                    })
            };
            rows.push(CompatPrice {
                published_name: name.to_string(),
                hardware: Some(hw.to_string()).filter(|s| !s.is_empty()),
                price_usd: num("price_usd", price)?,
                tdp_w: num("tdp_w", tdp)?,
            });
        }
        Ok(CompatPrices { rows })
    }

    /// The entry of a hardware-table row.
    pub fn of_hardware(&self, name: &str) -> Option<&CompatPrice> {
        self.rows.iter().find(|r| {
            r.hardware
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::hardware::HardwareTable;

    #[test]
    fn every_mapped_entry_names_a_hardware_row() {
        let t = CompatPrices::builtin().unwrap();
        let hw = HardwareTable::builtin().unwrap();
        assert_eq!(t.rows.len(), 10);
        for r in t.rows.iter().filter_map(|r| r.hardware.as_deref()) {
            assert_eq!(hw.find(r).unwrap().name, r);
        }
        let h100 = t.of_hardware("H100-SXM-80GB").unwrap();
        assert_eq!((h100.price_usd, h100.tdp_w), (38000.0, 700.0));
        assert!(t.of_hardware("H20-96GB").is_none());
    }
}

//! The hardware table: memory bandwidth, dense peak FLOPS per dtype, memory, power, price and host
//! links of accelerators and CPUs, each row with its source. Embedded from `src/hardware.csv`,
//! replaceable with `--hardware-file`.

use super::csv_table::read_rows;
use crate::error::{Error, Result};
use crate::model::dtype::DType;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The built-in table's text.
pub const BUILTIN_TABLE: &str = include_str!("hardware.csv");

/// Peaks the utilisation is measured against (already multiplied by the device count).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Peaks {
    /// Bytes per second.
    pub bandwidth_bytes_per_s: f64,
    /// FLOP per second.
    pub flops_per_s: f64,
}

/// Accelerator or CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// A GPU or other accelerator.
    Gpu,
    /// A CPU socket.
    Cpu,
}

/// The figures the published MoE-CAP code uses for a device (its FLOPS are 2:4-sparse peaks,
/// which that code halves).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompatPeaks {
    /// Bandwidth, GB/s.
    pub bandwidth_gbs: Option<f64>,
    /// Stored "peak" TFLOP/s per dtype.
    pub tflops: BTreeMap<DType, f64>,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hardware {
    /// Name, as used with `--hardware`.
    pub name: String,
    /// GPU or CPU.
    pub kind: DeviceKind,
    /// Device memory, GB (CPUs: none; it depends on the DIMMs).
    pub memory_gb: Option<f64>,
    /// Peak memory bandwidth, GB/s.
    pub bandwidth_gbs: f64,
    /// Dense peak TFLOP/s per dtype (absent: not supported or not published).
    pub peak_tflops: BTreeMap<DType, f64>,
    /// Board power / TDP, W.
    pub tdp_w: Option<f64>,
    /// Purchase price, USD.
    pub price_usd: Option<f64>,
    /// Host link, e.g. `PCIe5 x16`.
    pub host_link: Option<String>,
    /// NVLink (or Infinity Fabric) bandwidth per device, GB/s.
    pub nvlink_gbs: Option<f64>,
    /// Figures of the published MoE-CAP code, where it lists the device.
    pub compat: CompatPeaks,
    /// Where the figures come from.
    pub source: String,
}

impl Hardware {
    /// Peak bandwidth in bytes/s.
    pub fn bandwidth_bytes_per_s(&self) -> f64 {
        self.bandwidth_gbs * 1e9
    }

    /// The dtype whose peak applies to arithmetic on weights stored as `dtype`: int4 weights are
    /// dequantised and multiplied in bf16.
    pub fn compute_dtype(dtype: DType) -> DType {
        match dtype {
            DType::Int4 => DType::Bf16,
            other => other,
        }
    }

    /// Dense peak FLOP/s for arithmetic in `dtype`.
    pub fn peak_flops(&self, dtype: DType) -> Result<f64> {
        let c = Self::compute_dtype(dtype);
        self.peak_tflops.get(&c).map(|t| t * 1e12).ok_or_else(|| {
            Error::Unsupported(format!(
                "hardware `{}` has no {} peak in the table (add it with --hardware-file)",
                self.name, c
            ))
        })
    }

    /// Host-link bandwidth per direction in GB/s, from the PCIe generation and lanes.
    pub fn host_link_gbs(&self) -> Option<f64> {
        let link = self.host_link.as_deref()?;
        let rest = link.strip_prefix("PCIe")?;
        let (gen, lanes) = rest.split_once(" x")?;
        let per_lane = match gen.trim() {
            "3" => 0.985,
            "4" => 1.969,
            "5" => 3.938,
            "6" => 7.563,
            _ => return None,
        };
        lanes.trim().parse::<f64>().ok().map(|l| l * per_lane)
    }
}

/// The whole table.
#[derive(Debug, Clone, Serialize)]
pub struct HardwareTable {
    /// Where it was read from (`built-in` or a path).
    pub origin: String,
    /// Its rows.
    pub rows: Vec<Hardware>,
}

const COLUMNS: [&str; 20] = [
    "name",
    "kind",
    "memory_gb",
    "bandwidth_gbs",
    "fp32_tflops",
    "tf32_tflops",
    "bf16_tflops",
    "fp16_tflops",
    "fp8_tflops",
    "int8_tflops",
    "tdp_w",
    "price_usd",
    "host_link",
    "nvlink_gbs",
    "compat_bandwidth_gbs",
    "compat_fp32_tflops",
    "compat_bf16_tflops",
    "compat_fp8_tflops",
    "compat_int8_tflops",
    "source",
];

impl HardwareTable {
    /// The embedded table.
    pub fn builtin() -> Result<Self> {
        Self::parse(BUILTIN_TABLE, "built-in hardware table")
    }

    /// Reads a table file in the same CSV layout (see `src/hardware.csv`).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The table from `--hardware-file`, or the built-in one.
    pub fn from_option(path: Option<&Path>) -> Result<Self> {
        match path {
            Some(p) => Self::load(p),
            None => Self::builtin(),
        }
    }

    /// Parses CSV text. Lines starting with `#` are comments; the first other line is the header;
    /// the last column (`source`) may contain commas.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut rows = Vec::new();
        for row in read_rows(text, origin, &COLUMNS)? {
            let cells = &row.cells;
            let err = |msg: String| row.error(origin, msg);
            let num = |idx: usize| -> Result<Option<f64>> {
                let c = cells[idx];
                if c.is_empty() {
                    return Ok(None);
                }
                match c.parse::<f64>() {
                    Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
                    _ => Err(err(format!(
                        "column `{}`: `{c}` is not a non-negative number",
                        COLUMNS[idx]
                    ))),
                }
            };
            let name = cells[0].to_string();
            if name.is_empty() {
                return Err(err("column `name` is empty".into()));
            }
            let kind = match cells[1] {
                "gpu" => DeviceKind::Gpu,
                "cpu" => DeviceKind::Cpu,
                other => return Err(err(format!("column `kind`: `{other}` is not gpu or cpu"))),
            };
            let bandwidth_gbs = num(3)?
                .filter(|b| *b > 0.0)
                .ok_or_else(|| err("column `bandwidth_gbs` is required and positive".into()))?;
            let mut peak_tflops = BTreeMap::new();
            for (idx, dt) in [
                (4, DType::F32),
                (5, DType::Tf32),
                (6, DType::Bf16),
                (7, DType::F16),
                (8, DType::Fp8),
                (9, DType::Int8),
            ] {
                if let Some(v) = num(idx)?.filter(|v| *v > 0.0) {
                    peak_tflops.insert(dt, v);
                }
            }
            let mut compat = CompatPeaks {
                bandwidth_gbs: num(14)?,
                tflops: BTreeMap::new(),
            };
            for (idx, dts) in [
                (15, &[DType::F32][..]),
                (16, &[DType::Bf16, DType::F16][..]),
                (17, &[DType::Fp8][..]),
                (18, &[DType::Int8][..]),
            ] {
                if let Some(v) = num(idx)?.filter(|v| *v > 0.0) {
                    for dt in dts {
                        compat.tflops.insert(*dt, v);
                    }
                }
            }
            if rows
                .iter()
                .any(|r: &Hardware| r.name.eq_ignore_ascii_case(&name))
            {
                return Err(err(format!("duplicate name `{name}`")));
            }
            rows.push(Hardware {
                name,
                kind,
                memory_gb: num(2)?,
                bandwidth_gbs,
                peak_tflops,
                tdp_w: num(10)?,
                price_usd: num(11)?,
                host_link: Some(cells[12].to_string()).filter(|s| !s.is_empty()),
                nvlink_gbs: num(13)?,
                compat,
                source: cells[19].to_string(),
            });
        }
        Ok(HardwareTable {
            origin: origin.to_string(),
            rows,
        })
    }

    /// Finds a device by name: exact (ignoring case, `-`, `_` and spaces), else the only row whose
    /// name starts with the query (so `h100-sxm` finds `H100-SXM-80GB`).
    pub fn find(&self, query: &str) -> Result<&Hardware> {
        let q = normalise(query);
        if let Some(h) = self.rows.iter().find(|r| normalise(&r.name) == q) {
            return Ok(h);
        }
        // The name without its memory suffix: `L4` is `L4-24GB`, `H20` is `H20-96GB`.
        let bare: Vec<&Hardware> = self
            .rows
            .iter()
            .filter(|r| normalise(strip_memory_suffix(&r.name)) == q)
            .collect();
        if bare.len() == 1 {
            return Ok(bare[0]);
        }
        let prefixed: Vec<&Hardware> = self
            .rows
            .iter()
            .filter(|r| normalise(&r.name).starts_with(&q))
            .collect();
        if prefixed.len() == 1 && !q.is_empty() {
            return Ok(prefixed[0]);
        }
        let mut near: Vec<&str> = self
            .rows
            .iter()
            .filter(|r| {
                let n = normalise(&r.name);
                !q.is_empty() && (n.contains(&q) || q.contains(&n) || n.starts_with(&q))
            })
            .map(|r| r.name.as_str())
            .collect();
        if near.is_empty() {
            // the three names fewest edits away
            let mut by: Vec<(usize, &str)> = self
                .rows
                .iter()
                .map(|r| (edit_distance(&normalise(&r.name), &q), r.name.as_str()))
                .collect();
            by.sort();
            near = by.into_iter().take(3).map(|(_, n)| n).collect();
        }
        Err(Error::UnknownHardware {
            name: query.to_string(),
            suggestions: near.join(", "),
        })
    }
}

/// Levenshtein distance between two strings, in characters.
/// Levenshtein distance of two names (for "closest" suggestions).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn strip_memory_suffix(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((head, tail))
            if tail.ends_with("GB")
                && tail[..tail.len() - 2].chars().all(|c| c.is_ascii_digit()) =>
        {
            head
        }
        _ => name,
    }
}

fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses_and_has_required_devices() {
        let t = HardwareTable::builtin().unwrap();
        for name in [
            "A100-PCIe-40GB",
            "A100-PCIe-80GB",
            "A100-SXM4-40GB",
            "A100-SXM4-80GB",
            "H100-PCIe-80GB",
            "H100-SXM-80GB",
            "H100-NVL-94GB",
            "H200-SXM-141GB",
            "H20-96GB",
            "B200-SXM-180GB",
            "L40S-48GB",
            "L4-24GB",
            "A10-24GB",
            "RTX-A5000-24GB",
            "RTX-A6000-48GB",
            "RTX-6000-Ada-48GB",
            "RTX-3090-24GB",
            "RTX-4090-24GB",
            "RTX-5090-32GB",
            "MI300X-192GB",
        ] {
            let h = t.find(name).unwrap();
            assert_eq!(h.kind, DeviceKind::Gpu);
            assert!(h.peak_tflops.contains_key(&DType::Bf16), "{name}");
            assert!(!h.source.is_empty());
        }
        assert!(t.rows.iter().filter(|r| r.kind == DeviceKind::Cpu).count() >= 5);
    }

    #[test]
    fn dense_peaks_are_half_the_sparse_figures() {
        let t = HardwareTable::builtin().unwrap();
        let h = t.find("h100-sxm").unwrap();
        assert_eq!(h.peak_flops(DType::Bf16).unwrap(), 989.5e12);
        assert_eq!(h.compat.tflops[&DType::Bf16], 1979.0);
        assert_eq!(h.bandwidth_bytes_per_s(), 3.35e12);
        assert!((h.host_link_gbs().unwrap() - 63.008).abs() < 1e-9);
        // int4 weights are multiplied in bf16
        assert_eq!(h.peak_flops(DType::Int4).unwrap(), 989.5e12);
        // A100 has no fp8
        let a = t.find("A100-SXM4-80GB").unwrap();
        assert!(a.peak_flops(DType::Fp8).is_err());
    }

    #[test]
    fn lookup_errors_suggest_names() {
        let t = HardwareTable::builtin().unwrap();
        let e = t.find("H100").unwrap_err().to_string();
        assert!(
            e.contains("H100-SXM-80GB") && e.contains("H100-PCIe-80GB"),
            "{e}"
        );
        let e = t.find("TPU-v9").unwrap_err().to_string();
        assert_eq!(e.matches(", ").count(), 2, "three names: {e}");
        let e = t.find("A100-SXM5-80GB").unwrap_err().to_string();
        assert!(e.contains("closest: A100-SXM4-80GB"), "{e}");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(t.find("L4").unwrap().name, "L4-24GB");
        assert_eq!(t.find("h20").unwrap().name, "H20-96GB");
        assert_eq!(t.find("H200").unwrap().name, "H200-SXM-141GB");
    }

    #[test]
    fn malformed_rows_name_line_and_column() {
        let hdr = COLUMNS.join(",");
        let bad = format!("{hdr}\nX,gpu,80,fast,1,,,,,,,,,,,,,,,src\n");
        let e = HardwareTable::parse(&bad, "t.csv").unwrap_err().to_string();
        assert!(
            e.starts_with("t.csv:2:") && e.contains("bandwidth_gbs"),
            "{e}"
        );
        let e = HardwareTable::parse("name,kind\n", "t.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("header"), "{e}");
        let short = format!("{hdr}\nX,gpu,80\n");
        assert!(HardwareTable::parse(&short, "t.csv").is_err());
        let kind = format!("{hdr}\nX,tpu,80,100,1,,,,,,,,,,,,,,,src\n");
        let e = HardwareTable::parse(&kind, "t.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kind"), "{e}");
    }
}

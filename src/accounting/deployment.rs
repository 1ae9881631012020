//! Deployments: the parts list a run's performance is priced on (`docs/COST.md`). A deployment file
//! (JSON) names parts of the hardware table (accelerators, CPUs) or of the parts table (DRAM per GB,
//! SSD, board, NIC) with counts and optional overrides; [`Deployment::default_for`] builds the
//! default one (devices plus a host sized to the model) when no file is given.

use crate::error::{Error, Result};
use crate::machine::hardware::{DeviceKind, Hardware, HardwareTable};
use crate::machine::parts::{PartKind, PartsTable};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Years over which the purchase price is spread, unless a deployment says otherwise.
pub const DEFAULT_AMORTISATION_YEARS: f64 = 3.0;
/// Fraction of the hours the deployment serves, unless a deployment says otherwise.
pub const DEFAULT_UTILISATION: f64 = 1.0;
/// Power usage effectiveness of the facility, unless a deployment says otherwise.
pub const DEFAULT_PUE: f64 = 1.2;
/// Electricity price, USD per kWh, unless a deployment says otherwise.
pub const DEFAULT_USD_PER_KWH: f64 = 0.15;
/// The hardware-table CPU a default GPU deployment's host gets.
pub const DEFAULT_SERVER_CPU: &str = "EPYC-9654";

/// One part as a deployment file gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartSpec {
    /// A hardware-table or parts-table name, or a new name with both figures given.
    pub part: String,
    /// How many (GB for a per-GB part such as DRAM).
    pub count: f64,
    /// Purchase price of one unit, USD [default: the table's].
    pub price_usd: Option<f64>,
    /// Power of one unit, W [default: the table's TDP or power].
    pub power_w: Option<f64>,
    /// Cloud rental price of one unit per hour, USD.
    pub cloud_usd_per_hour: Option<f64>,
}

/// A deployment file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Its name [default: the file name].
    pub name: Option<String>,
    /// The parts.
    pub parts: Vec<PartSpec>,
    /// Years of amortisation.
    pub amortisation_years: Option<f64>,
    /// Fraction of hours in service.
    pub utilisation: Option<f64>,
    /// Power usage effectiveness.
    pub pue: Option<f64>,
    /// Electricity price, USD/kWh.
    pub usd_per_kwh: Option<f64>,
}

/// A resolved part: every figure known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// Name.
    pub name: String,
    /// What it is.
    pub kind: PartKind,
    /// How many (GB for DRAM).
    pub count: f64,
    /// Price of one unit, USD.
    pub price_usd: f64,
    /// Power of one unit, W.
    pub power_w: f64,
    /// Cloud price of one unit per hour, USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_usd_per_hour: Option<f64>,
    /// Memory of one accelerator, GB (accelerators only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_gb: Option<f64>,
    /// Where the figures come from (`table`, `deployment file`, or both).
    pub source: String,
}

/// A deployment with every figure resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Name.
    pub name: String,
    /// Where it comes from: a file, or how the default was built.
    pub origin: String,
    /// Its parts.
    pub parts: Vec<Part>,
    /// Years of amortisation.
    pub amortisation_years: f64,
    /// Fraction of hours in service.
    pub utilisation: f64,
    /// Power usage effectiveness.
    pub pue: f64,
    /// Electricity price, USD/kWh.
    pub usd_per_kwh: f64,
}

fn check(origin: &str, what: &str, v: f64, positive: bool) -> Result<f64> {
    if !v.is_finite() || v < 0.0 || (positive && v == 0.0) {
        return Err(Error::Deployment {
            file: origin.to_string(),
            msg: format!(
                "{what} must be a {} number, not {v}",
                if positive { "positive" } else { "non-negative" }
            ),
        });
    }
    Ok(v)
}

impl Deployment {
    /// Reads and resolves a deployment file.
    pub fn read(path: &Path, hw: &HardwareTable, parts: &PartsTable) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let origin = path.display().to_string();
        let spec: DeploymentSpec = serde_json::from_str(&text).map_err(|e| Error::Deployment {
            file: origin.clone(),
            msg: e.to_string(),
        })?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "deployment".into());
        Self::resolve(&spec, &origin, &stem, hw, parts)
    }

    /// Resolves a parsed file against the tables.
    pub fn resolve(
        spec: &DeploymentSpec,
        origin: &str,
        default_name: &str,
        hw: &HardwareTable,
        table: &PartsTable,
    ) -> Result<Self> {
        let err = |msg: String| Error::Deployment {
            file: origin.to_string(),
            msg,
        };
        if spec.parts.is_empty() {
            return Err(err("`parts` is empty".into()));
        }
        let mut parts = Vec::new();
        for (i, p) in spec.parts.iter().enumerate() {
            let at = format!("parts[{i}] (`{}`)", p.part);
            check(origin, &format!("{at}: count"), p.count, true)?;
            for (f, v) in [
                ("price_usd", p.price_usd),
                ("power_w", p.power_w),
                ("cloud_usd_per_hour", p.cloud_usd_per_hour),
            ] {
                if let Some(v) = v {
                    check(origin, &format!("{at}: {f}"), v, false)?;
                }
            }
            let given = |f: &str, v: Option<f64>, table_v: Option<f64>| -> Result<(f64, bool)> {
                match (v, table_v) {
                    (Some(v), _) => Ok((v, true)),
                    (None, Some(t)) => Ok((t, false)),
                    (None, None) => Err(err(format!(
                        "{at}: the table has no {f} for this part; give `{f}`"
                    ))),
                }
            };
            let (kind, price, power, memory_gb, source) = if let Ok(h) = hw.find(&p.part).cloned() {
                let (price, pg) = given("price_usd", p.price_usd, h.price_usd)?;
                let (power, wg) = given("power_w", p.power_w, h.tdp_w)?;
                let kind = match h.kind {
                    DeviceKind::Gpu => PartKind::Gpu,
                    DeviceKind::Cpu => PartKind::Cpu,
                };
                (kind, price, power, h.memory_gb, source_of(&h.name, pg, wg))
            } else if let Some(r) = table.find(&p.part) {
                let (price, pg) = given("price_usd", p.price_usd, Some(r.price_usd))?;
                let (power, wg) = given("power_w", p.power_w, Some(r.power_w))?;
                (r.kind, price, power, None, source_of(&r.name, pg, wg))
            } else {
                match (p.price_usd, p.power_w) {
                        (Some(price), Some(power)) => {
                            (PartKind::Other, price, power, None, "deployment file".into())
                        }
                        _ => {
                            return Err(err(format!(
                                "{at}: unknown part (not in the hardware table, see `moecap hw list`, nor in the parts table, see `moecap hw parts`); give price_usd and power_w to define it"
                            )))
                        }
                    }
            };
            let name = hw
                .find(&p.part)
                .map(|h| h.name.clone())
                .ok()
                .or_else(|| table.find(&p.part).map(|r| r.name.clone()))
                .unwrap_or_else(|| p.part.clone());
            parts.push(Part {
                name,
                kind,
                count: p.count,
                price_usd: price,
                power_w: power,
                cloud_usd_per_hour: p.cloud_usd_per_hour,
                memory_gb,
                source,
            });
        }
        let opt = |what: &str, v: Option<f64>, d: f64, positive: bool| -> Result<f64> {
            check(origin, what, v.unwrap_or(d), positive)
        };
        let utilisation = opt("utilisation", spec.utilisation, DEFAULT_UTILISATION, true)?;
        if utilisation > 1.0 {
            return Err(err(format!(
                "utilisation is a fraction of the hours in service, at most 1, not {utilisation}"
            )));
        }
        let pue = opt("pue", spec.pue, DEFAULT_PUE, true)?;
        if pue < 1.0 {
            return Err(err(format!("pue is at least 1, not {pue}")));
        }
        Ok(Deployment {
            name: spec
                .name
                .clone()
                .unwrap_or_else(|| default_name.to_string()),
            origin: origin.to_string(),
            parts,
            amortisation_years: opt(
                "amortisation_years",
                spec.amortisation_years,
                DEFAULT_AMORTISATION_YEARS,
                true,
            )?,
            utilisation,
            pue,
            usd_per_kwh: opt("usd_per_kwh", spec.usd_per_kwh, DEFAULT_USD_PER_KWH, false)?,
        })
    }

    /// The default deployment of `devices` × `hw` serving a model of `weight_bytes`: the devices,
    /// a host CPU (for accelerators: the table's default server CPU), DRAM sized to the model (a
    /// GPU host holds at least the devices' memory, rounded up to 64 GB; a CPU deployment holds
    /// the weights plus a quarter for the KV cache and activations, rounded up to 16 GB), and the
    /// parts table's default board and SSD.
    pub fn default_for(
        hw: &Hardware,
        devices: usize,
        weight_bytes: f64,
        table: &HardwareTable,
        parts: &PartsTable,
    ) -> Result<Self> {
        if devices == 0 {
            return Err(Error::Invalid("--devices must be at least 1".into()));
        }
        let n = devices as f64;
        let mut spec = vec![PartSpec {
            part: hw.name.clone(),
            count: n,
            price_usd: None,
            power_w: None,
            cloud_usd_per_hour: None,
        }];
        let gb = weight_bytes / 1e9;
        let dram_gb = match hw.kind {
            DeviceKind::Gpu => {
                spec.push(PartSpec {
                    part: DEFAULT_SERVER_CPU.into(),
                    count: 1.0,
                    price_usd: None,
                    power_w: None,
                    cloud_usd_per_hour: None,
                });
                (gb.max(hw.memory_gb.unwrap_or(0.0) * n) / 64.0)
                    .ceil()
                    .max(1.0)
                    * 64.0
            }
            DeviceKind::Cpu => (gb * 1.25 / 16.0).ceil().max(1.0) * 16.0,
        };
        for kind in [PartKind::Dram, PartKind::Board, PartKind::Ssd] {
            let row = parts.default_of(kind).ok_or_else(|| {
                Error::Invalid(format!(
                    "the parts table ({}) has no default_host row of kind {}",
                    parts.origin,
                    kind.name()
                ))
            })?;
            spec.push(PartSpec {
                part: row.name.clone(),
                count: if kind == PartKind::Dram { dram_gb } else { 1.0 },
                price_usd: None,
                power_w: None,
                cloud_usd_per_hour: None,
            });
        }
        let name = format!("{devices}x {}", hw.name);
        let origin = format!(
            "default: {devices}x {} + host ({} GB DRAM sized to the model; give --deployment FILE to change)",
            hw.name, dram_gb
        );
        Self::resolve(
            &DeploymentSpec {
                name: Some(name.clone()),
                parts: spec,
                amortisation_years: None,
                utilisation: None,
                pue: None,
                usd_per_kwh: None,
            },
            &origin,
            &name,
            table,
            parts,
        )
    }

    /// The accelerators: (part, count), if any.
    pub fn gpus(&self) -> impl Iterator<Item = &Part> {
        self.parts.iter().filter(|p| p.kind == PartKind::Gpu)
    }
}

fn source_of(row: &str, price_given: bool, power_given: bool) -> String {
    match (price_given, power_given) {
        (false, false) => format!("table row {row}"),
        (true, true) => "deployment file".into(),
        (true, false) => format!("price: deployment file; power: table row {row}"),
        (false, true) => format!("price: table row {row}; power: deployment file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> (HardwareTable, PartsTable) {
        (
            HardwareTable::builtin().unwrap(),
            PartsTable::builtin().unwrap(),
        )
    }

    fn parse(json: &str) -> Result<Deployment> {
        let (h, p) = tables();
        let spec: DeploymentSpec = serde_json::from_str(json).map_err(|e| Error::Deployment {
            file: "d.json".into(),
            msg: e.to_string(),
        })?;
        Deployment::resolve(&spec, "d.json", "d", &h, &p)
    }

    #[test]
    fn parts_take_table_figures_unless_given() {
        let d = parse(
            r#"{"parts":[{"part":"H200","count":2},{"part":"DDR5-RDIMM","count":512,"price_usd":5},
               {"part":"my-fpga","count":1,"price_usd":100,"power_w":10}]}"#,
        )
        .unwrap();
        assert_eq!(d.name, "d");
        assert_eq!(d.parts[0].name, "H200-SXM-141GB");
        assert_eq!((d.parts[0].price_usd, d.parts[0].power_w), (32000.0, 700.0));
        assert_eq!(d.parts[0].memory_gb, Some(141.0));
        assert_eq!((d.parts[1].price_usd, d.parts[1].power_w), (5.0, 0.12));
        assert_eq!(d.parts[2].kind, PartKind::Other);
        assert_eq!(
            (d.amortisation_years, d.utilisation, d.pue, d.usd_per_kwh),
            (3.0, 1.0, 1.2, 0.15)
        );
    }

    #[test]
    fn bad_deployments_are_one_line_errors_naming_the_culprit() {
        for (json, needle) in [
            (r#"{"parts":[{"part":"TPU-v9","count":1}]}"#, "unknown part"),
            (
                r#"{"parts":[{"part":"H200","count":1,"price_usd":-3}]}"#,
                "price_usd must be a non-negative",
            ),
            (r#"{"parts":[{"part":"H200"}]}"#, "missing field `count`"),
            (r#"{"parts":[{"part":"H200","count":0}]}"#, "count must be"),
            (r#"{"parts":[]}"#, "`parts` is empty"),
            (r#"{"parts":[{"part":"H200","count":1}],"pue":0.5}"#, "pue"),
            (
                r#"{"parts":[{"part":"H200","count":1}],"utilisation":2}"#,
                "utilisation",
            ),
            (
                r#"{"parts":[{"part":"H200","count":1,"prise_usd":1}]}"#,
                "unknown field `prise_usd`",
            ),
        ] {
            let e = parse(json).unwrap_err().to_string();
            assert!(
                e.starts_with("d.json: ") && e.contains(needle) && !e.contains('\n'),
                "{json}: {e}"
            );
        }
    }

    #[test]
    fn default_deployment_sizes_the_host() {
        let (h, p) = tables();
        let gpu = h.find("H100-SXM").unwrap();
        let d = Deployment::default_for(gpu, 2, 93.4e9, &h, &p).unwrap();
        let names: Vec<&str> = d.parts.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "H100-SXM-80GB",
                DEFAULT_SERVER_CPU,
                "DDR5-RDIMM",
                "Server-chassis-2U",
                "NVMe-SSD-3.84TB"
            ]
        );
        // 2 x 80 GB of device memory beat 93.4 GB of weights: 160 GB rounds up to 192.
        assert_eq!(d.parts[2].count, 192.0);
        let cpu = h.find("EPYC-9654").unwrap();
        let d = Deployment::default_for(cpu, 1, 10e9, &h, &p).unwrap();
        assert_eq!(d.parts.len(), 4);
        // 10 GB x 1.25 = 12.5 GB rounds up to 16.
        assert_eq!(d.parts[1].count, 16.0);
    }
}

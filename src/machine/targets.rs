//! What a run's utilisation is measured against: the spec peaks of the device's hardware-table
//! row (`--hardware`, else the detected device's row) and this machine's measured ceilings (a
//! ceilings file, else the cache, measuring what is missing), for the engine's device and dtype.

use super::cache::{cache_file, cached_or_measured, read_cached};
use super::ceilings::Ceilings;
use super::detect::{match_cpu, match_gpu, GpuInfo, HostInfo};
use super::dirs::cache_dir;
use super::hardware::{Hardware, HardwareTable, Peaks};
use crate::error::{Error, Result};
use crate::model::dtype::DType as TableDType;
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Spec figures of the hardware-table row in use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecInfo {
    /// Row name.
    pub name: String,
    /// Devices.
    pub devices: u32,
    /// Bandwidth of all devices, bytes per second.
    pub bandwidth_bytes_per_s: f64,
    /// Peak FLOPS of all devices for the dtype.
    pub flops_per_s: f64,
}

/// The ceilings a point is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceiling {
    /// Spec peaks of the matched device (all devices together).
    pub spec: Option<Peaks>,
    /// Measured bandwidth and matmul throughput.
    pub measured: Option<Peaks>,
}

/// The spec row and measured ceilings of a run, and both as peaks.
pub struct Targets {
    /// The hardware-table row's peaks for the engine dtype, if the device has a row.
    pub spec: Option<SpecInfo>,
    /// This machine's measured ceilings (none when the cache is read only and holds none).
    pub ceilings: Option<Ceilings>,
    /// Both as peaks.
    pub peaks: Ceiling,
}

/// The cache key of this machine and device.
pub fn machine_key(host: &HostInfo, gpu: Option<&GpuInfo>) -> String {
    match gpu {
        Some(g) => format!("{} {}", g.name, g.memory_bytes / 1_000_000_000),
        None => format!(
            "{} {}cpu",
            host.cpu_model.as_deref().unwrap_or("unknown-cpu"),
            host.logical_cpus
        ),
    }
}

/// The spec row: the named one, else the detected device's row.
pub fn spec_row<'t>(
    table: &'t HardwareTable,
    hardware: Option<&str>,
    host: &HostInfo,
    gpu: Option<&GpuInfo>,
) -> Result<Option<&'t Hardware>> {
    if let Some(h) = hardware {
        return Ok(Some(table.find(h)?));
    }
    Ok(match gpu {
        Some(g) => match_gpu(table, &g.name, g.memory_bytes),
        None => host.cpu_model.as_deref().and_then(|m| match_cpu(table, m)),
    })
}

/// Where a run's targets come from.
#[derive(Debug, Clone, Copy, Default)]
pub struct TargetSources<'a> {
    /// A hardware-table row name (else the detected device's row).
    pub hardware: Option<&'a str>,
    /// A ceilings file (else the cache).
    pub ceilings_file: Option<&'a Path>,
    /// Measure again instead of trusting the cache.
    pub remeasure: bool,
    /// Use the cache as it is: no re-check, no measurement, nothing written (an accuracy run
    /// on a busy machine must not replace the ceilings).
    pub read_only: bool,
}

/// The targets of a run of `dtype` on `device`; `note` hears what is measured, before it is.
pub fn targets(
    table: &HardwareTable,
    from: TargetSources,
    host: &HostInfo,
    gpu: Option<&GpuInfo>,
    device: &Device,
    dtype: DType,
    note: &mut dyn FnMut(&str),
) -> Result<Targets> {
    let spec = spec_row(table, from.hardware, host, gpu)?.and_then(|h| {
        h.peak_flops(TableDType::of_engine(dtype))
            .ok()
            .map(|f| SpecInfo {
                name: h.name.clone(),
                devices: 1,
                bandwidth_bytes_per_s: h.bandwidth_bytes_per_s(),
                flops_per_s: f,
            })
    });
    let key = machine_key(host, gpu);
    let ceilings = match from.ceilings_file {
        Some(f) => {
            let c = read_cached(f)?
                .ok_or_else(|| Error::Invalid(format!("{}: no such ceilings file", f.display())))?;
            if c.flops_per_s(dtype).is_none() {
                return Err(Error::Invalid(format!(
                    "{}: no {} matmul figure for this run's dtype (it has {}); `moecap hw measure --dtype {}` measures it",
                    f.display(),
                    dtype.as_str(),
                    c.matmul_flops_per_s.keys().cloned().collect::<Vec<_>>().join(", "),
                    dtype.as_str()
                )));
            }
            Some(c)
        }
        None if from.read_only => {
            let cached = match cache_dir() {
                Some(d) => read_cached(&cache_file(&d, &key))?,
                None => None,
            };
            if cached.as_ref().and_then(|c| c.flops_per_s(dtype)).is_none() {
                note(&format!(
                    "no measured ceilings of this machine for {} in the cache: utilisation is given \
                     against the spec sheet only (`moecap hw measure` measures them)",
                    dtype.as_str()
                ));
            }
            cached
        }
        None => Some(cached_or_measured(device, &key, &[dtype], from.remeasure, note)?.0),
    };
    let peaks = Ceiling {
        spec: spec.as_ref().map(|s| Peaks {
            bandwidth_bytes_per_s: s.bandwidth_bytes_per_s,
            flops_per_s: s.flops_per_s,
        }),
        measured: ceilings.as_ref().and_then(|c| {
            c.flops_per_s(dtype).map(|f| Peaks {
                bandwidth_bytes_per_s: c.bandwidth_bytes_per_s(),
                flops_per_s: f,
            })
        }),
    };
    Ok(Targets {
        spec,
        ceilings,
        peaks,
    })
}

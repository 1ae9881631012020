//! Detection of the machine a run happens on (CPU model, cores, memory) and its match in the
//! hardware table, so that every report can name its hardware.

use crate::machine::hardware::{DeviceKind, Hardware, HardwareTable};
use serde::{Deserialize, Serialize};

/// What this machine reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// CPU model string (`model name` in `/proc/cpuinfo`), if known.
    pub cpu_model: Option<String>,
    /// Logical CPUs this process may use.
    pub logical_cpus: usize,
    /// Physical cores (sockets × cores per socket), if known.
    pub physical_cores: Option<usize>,
    /// Total memory in bytes, if known.
    pub memory_bytes: Option<u64>,
    /// Operating system and architecture.
    pub os: String,
}

/// Reads this machine's facts (Linux `/proc`; elsewhere only what the standard library knows).
pub fn detect_host() -> HostInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mut info = parse_proc(&cpuinfo, &meminfo);
    info.logical_cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(info.logical_cpus.max(1));
    info
}

/// Parses the text of `/proc/cpuinfo` and `/proc/meminfo`.
pub fn parse_proc(cpuinfo: &str, meminfo: &str) -> HostInfo {
    let mut model = None;
    let mut logical = 0usize;
    let mut cores_per_socket = None;
    let mut sockets = std::collections::BTreeSet::new();
    for line in cpuinfo.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => logical += 1,
            "model name" if model.is_none() => model = Some(v.to_string()),
            "cpu cores" if cores_per_socket.is_none() => cores_per_socket = v.parse::<usize>().ok(),
            "physical id" => {
                sockets.insert(v.to_string());
            }
            _ => {}
        }
    }
    let physical_cores = cores_per_socket.map(|c| c * sockets.len().max(1));
    let memory_bytes = meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    });
    HostInfo {
        cpu_model: model,
        logical_cpus: logical.max(1),
        physical_cores,
        memory_bytes,
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

/// The CPU row of the table whose name's every `-`-separated token appears in the model string
/// (`Xeon-Platinum-8480+` matches `Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz`).
pub fn match_cpu<'t>(table: &'t HardwareTable, cpu_model: &str) -> Option<&'t Hardware> {
    let model = cpu_model.to_ascii_lowercase();
    table
        .rows
        .iter()
        .filter(|r| r.kind == DeviceKind::Cpu)
        .find(|r| {
            r.name
                .split('-')
                .all(|tok| model.contains(&tok.to_ascii_lowercase()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files_and_matches_table() {
        let cpu = "processor\t: 0\nmodel name\t: AMD EPYC 9654 96-Core Processor\nphysical id\t: 0\ncpu cores\t: 96\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9654 96-Core Processor\nphysical id\t: 1\ncpu cores\t: 96\n";
        let mem = "MemTotal:       24683652 kB\nMemFree: 1 kB\n";
        let h = parse_proc(cpu, mem);
        assert_eq!(h.logical_cpus, 2);
        assert_eq!(h.physical_cores, Some(192));
        assert_eq!(h.memory_bytes, Some(24683652 * 1024));
        let t = HardwareTable::builtin().unwrap();
        let m = h.cpu_model.as_deref().unwrap();
        assert_eq!(match_cpu(&t, m).unwrap().name, "EPYC-9654");
        assert_eq!(
            match_cpu(&t, "Intel(R) Xeon(R) Platinum 8480+")
                .unwrap()
                .name,
            "Xeon-Platinum-8480+"
        );
        assert!(match_cpu(&t, "Intel(R) Xeon(R) Processor").is_none());
    }
}

/// What a CUDA device reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Device name.
    pub name: String,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// Compute capability, e.g. `9.0`.
    pub compute_capability: String,
    /// Driver version, e.g. `13.0`.
    pub driver: String,
}

/// The facts of the engine's device when it is a GPU (`None` on the CPU).
pub fn detect_gpu(device: &candle_core::Device) -> Option<GpuInfo> {
    #[cfg(feature = "cuda")]
    if let candle_core::Device::Cuda(d) = device {
        use candle_core::cuda_backend::cudarc::driver::sys;
        let stream = d.cuda_stream();
        let ctx = stream.context();
        let attr = |a| ctx.attribute(a).ok();
        let mut driver = 0i32;
        // SAFETY: cuDriverGetVersion writes one int through a valid pointer.
        let ok =
            unsafe { sys::cuDriverGetVersion(&mut driver) } == sys::cudaError_enum::CUDA_SUCCESS;
        return Some(GpuInfo {
            name: ctx.name().unwrap_or_else(|_| "unknown CUDA device".into()),
            memory_bytes: ctx.total_mem().map_or(0, |m| m as u64),
            sm_count: attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
                .unwrap_or(0) as u32,
            compute_capability: match ctx.compute_capability() {
                Ok((a, b)) => format!("{a}.{b}"),
                Err(_) => "?".into(),
            },
            driver: if ok {
                format!("{}.{}", driver / 1000, (driver % 1000) / 10)
            } else {
                "?".into()
            },
        });
    }
    let _ = device;
    None
}

/// The hardware-table row of a GPU: the GPU rows whose model (the name up to the first `-`) occurs
/// in the device name; several candidates are told apart by memory size (within 10%). `None` when
/// no single row fits.
pub fn match_gpu<'t>(
    table: &'t HardwareTable,
    gpu_name: &str,
    memory_bytes: u64,
) -> Option<&'t Hardware> {
    let norm = |s: &str| s.to_lowercase().replace([' ', '-', '_'], "");
    let g = norm(gpu_name);
    if let Some(h) = table
        .rows
        .iter()
        .find(|h| h.kind == DeviceKind::Gpu && g.contains(&norm(&h.name)))
    {
        return Some(h);
    }
    let cands: Vec<&Hardware> = table
        .rows
        .iter()
        .filter(|h| h.kind == DeviceKind::Gpu)
        .filter(|h| {
            let base = norm(h.name.split('-').next().unwrap_or(&h.name));
            !base.is_empty() && g.contains(&base)
        })
        .collect();
    if cands.len() == 1 {
        return cands.first().copied();
    }
    let gb = memory_bytes as f64 / 1e9;
    let by_mem: Vec<&Hardware> = cands
        .into_iter()
        .filter(|h| h.memory_gb.is_some_and(|m| (gb - m).abs() <= 0.1 * m))
        .collect();
    match by_mem.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

#[cfg(test)]
mod gpu_tests {
    use super::*;

    #[test]
    fn gpu_names_match_rows() {
        let t = HardwareTable::builtin().unwrap();
        let h200 = match_gpu(&t, "NVIDIA H200", 150_000_000_000).unwrap();
        assert_eq!(h200.name, "H200-SXM-141GB");
        let a100 = match_gpu(&t, "NVIDIA A100-SXM4-80GB", 85_000_000_000);
        assert_eq!(a100.map(|h| h.name.as_str()), Some("A100-SXM4-80GB"));
        // two 80 GB H100 rows: ambiguous without the form factor in the name
        assert!(match_gpu(&t, "NVIDIA H100 80GB HBM3", 85_000_000_000).is_none());
        assert!(match_gpu(&t, "NVIDIA GeForce GT 710", 2_000_000_000).is_none());
    }
}

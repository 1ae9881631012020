//! Detection of the machine a run happens on (CPU model, cores, memory) and its match in the
//! hardware table, so that every report can name its hardware.

use crate::hardware::{DeviceKind, Hardware, HardwareTable};
use serde::Serialize;

/// What this machine reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

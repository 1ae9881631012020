//! Energy read from the machine over a timed window: RAPL package counters
//! (`/sys/class/powercap/intel-rapl:N/energy_uj`, which AMD CPUs expose too) for the CPUs, and on
//! the CUDA build NVML's total-energy counter for the GPU. The mean power over the window replaces
//! the TDP estimate of the parts it covers (`docs/COST.md`).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The default RAPL root.
pub const RAPL_ROOT: &str = "/sys/class/powercap";

/// Power read from the machine over a timed window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasuredPower {
    /// Mean power of all CPU packages, W (RAPL).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpu_w: Option<f64>,
    /// Mean power of the GPU used, W (NVML).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gpu_w: Option<f64>,
    /// Seconds the window lasted.
    pub window_s: f64,
}

/// One RAPL package zone.
#[derive(Debug, Clone)]
struct RaplZone {
    energy: PathBuf,
    /// Counter range, µJ (the counter wraps to 0 past it).
    range_uj: u64,
}

/// The counters this machine exposes.
pub struct EnergyMeter {
    zones: Vec<RaplZone>,
    #[cfg(feature = "cuda")]
    nvml: Option<nvml::Nvml>,
}

/// Counter values at the start of a window.
#[derive(Debug, Clone)]
pub struct EnergyStart {
    at: Instant,
    rapl_uj: Vec<Option<u64>>,
    gpu_mj: Option<u64>,
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

impl EnergyMeter {
    /// The counters of this machine: RAPL under [`RAPL_ROOT`], and NVML for GPU `gpu` on the
    /// CUDA build.
    pub fn open(gpu: Option<usize>) -> Self {
        let m = Self::open_rapl_at(Path::new(RAPL_ROOT));
        #[cfg(feature = "cuda")]
        let m = EnergyMeter {
            nvml: gpu.and_then(nvml::Nvml::open),
            ..m
        };
        #[cfg(not(feature = "cuda"))]
        let _ = gpu;
        m
    }

    /// RAPL package zones under `root` (`intel-rapl:N`, not their sub-zones), readable ones only.
    pub fn open_rapl_at(root: &Path) -> Self {
        let mut zones = Vec::new();
        if let Ok(rd) = std::fs::read_dir(root) {
            let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            names.sort();
            for dir in names {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some(rest) = name.strip_prefix("intel-rapl:") else {
                    continue;
                };
                if rest.contains(':') {
                    continue;
                }
                let energy = dir.join("energy_uj");
                if read_u64(&energy).is_none() {
                    continue;
                }
                let range_uj = read_u64(&dir.join("max_energy_range_uj")).unwrap_or(u64::MAX);
                zones.push(RaplZone { energy, range_uj });
            }
        }
        EnergyMeter {
            zones,
            #[cfg(feature = "cuda")]
            nvml: None,
        }
    }

    /// What this meter reads, for reports: `RAPL (N packages)`, `NVML`, or none.
    pub fn sources(&self) -> Vec<String> {
        let mut s = Vec::new();
        if !self.zones.is_empty() {
            s.push(format!("RAPL ({} package zones)", self.zones.len()));
        }
        #[cfg(feature = "cuda")]
        if self.nvml.is_some() {
            s.push("NVML".into());
        }
        s
    }

    /// Whether anything can be read.
    pub fn available(&self) -> bool {
        !self.sources().is_empty()
    }

    /// Reads the counters at the start of a window.
    pub fn start(&self) -> EnergyStart {
        #[cfg(feature = "cuda")]
        let gpu_mj = self.nvml.as_ref().and_then(|n| n.energy_mj());
        #[cfg(not(feature = "cuda"))]
        let gpu_mj = None;
        EnergyStart {
            at: Instant::now(),
            rapl_uj: self.zones.iter().map(|z| read_u64(&z.energy)).collect(),
            gpu_mj,
        }
    }

    /// The mean power since `start`; none when nothing could be read or the window is empty.
    pub fn stop(&self, start: &EnergyStart) -> Option<MeasuredPower> {
        let window_s = start.at.elapsed().as_secs_f64();
        if window_s <= 0.0 {
            return None;
        }
        let mut cpu_uj: Option<f64> = None;
        for (z, s) in self.zones.iter().zip(&start.rapl_uj) {
            let (Some(a), Some(b)) = (*s, read_u64(&z.energy)) else {
                continue;
            };
            let d = if b >= a {
                b - a
            } else {
                // The counter wrapped once past its range.
                z.range_uj.saturating_sub(a).saturating_add(b)
            };
            *cpu_uj.get_or_insert(0.0) += d as f64;
        }
        #[cfg(feature = "cuda")]
        let gpu_w = match (start.gpu_mj, self.nvml.as_ref().and_then(|n| n.energy_mj())) {
            (Some(a), Some(b)) if b >= a => Some((b - a) as f64 / 1e3 / window_s),
            _ => None,
        };
        #[cfg(not(feature = "cuda"))]
        let gpu_w: Option<f64> = start.gpu_mj.and(None);
        let cpu_w = cpu_uj.map(|uj| uj / 1e6 / window_s);
        (cpu_w.is_some() || gpu_w.is_some()).then_some(MeasuredPower {
            cpu_w,
            gpu_w,
            window_s,
        })
    }
}

#[cfg(feature = "cuda")]
mod nvml {
    //! NVML's total-energy counter, loaded at run time from the driver's `libnvidia-ml.so.1`.
    use std::ffi::c_void;

    type Init = unsafe extern "C" fn() -> i32;
    type Handle = unsafe extern "C" fn(u32, *mut *mut c_void) -> i32;
    type Energy = unsafe extern "C" fn(*mut c_void, *mut u64) -> i32;

    pub(super) struct Nvml {
        _lib: libloading::Library,
        energy: Energy,
        device: *mut c_void,
    }

    impl Nvml {
        /// NVML's device `index`, if the library loads and the counter is supported.
        pub(super) fn open(index: usize) -> Option<Self> {
            // SAFETY: loading the NVIDIA driver's management library, whose initialisers have
            // no preconditions; the symbols are looked up with their documented C signatures.
            unsafe {
                let lib = libloading::Library::new("libnvidia-ml.so.1").ok()?;
                let init: Init = *lib.get::<Init>(b"nvmlInit_v2\0").ok()?;
                let handle: Handle = *lib.get::<Handle>(b"nvmlDeviceGetHandleByIndex_v2\0").ok()?;
                let energy: Energy = *lib
                    .get::<Energy>(b"nvmlDeviceGetTotalEnergyConsumption\0")
                    .ok()?;
                if init() != 0 {
                    return None;
                }
                let mut device = std::ptr::null_mut();
                if handle(u32::try_from(index).ok()?, &mut device) != 0 {
                    return None;
                }
                let n = Nvml {
                    _lib: lib,
                    energy,
                    device,
                };
                n.energy_mj().map(|_| n)
            }
        }

        /// Energy since the driver loaded, mJ.
        pub(super) fn energy_mj(&self) -> Option<u64> {
            let mut mj = 0u64;
            // SAFETY: `device` came from NVML for this library, which stays loaded with `self`.
            let rc = unsafe { (self.energy)(self.device, &mut mj) };
            (rc == 0).then_some(mj)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rapl_packages_are_summed_and_wraps_handled() {
        let root = std::env::temp_dir().join(format!("moecap-rapl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (zone, e, range) in [
            ("intel-rapl:0", 1_000_000u64, 10_000_000u64),
            ("intel-rapl:1", 9_000_000, 10_000_000),
            ("intel-rapl:0:0", 5, 10),
        ] {
            let d = root.join(zone);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("energy_uj"), e.to_string()).unwrap();
            std::fs::write(d.join("max_energy_range_uj"), range.to_string()).unwrap();
        }
        let m = EnergyMeter::open_rapl_at(&root);
        assert_eq!(m.sources(), ["RAPL (2 package zones)"]);
        let s = m.start();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Package 0 used 3 J; package 1 wrapped: 1 J to its range, then 1 J more.
        std::fs::write(root.join("intel-rapl:0/energy_uj"), "4000000").unwrap();
        std::fs::write(root.join("intel-rapl:1/energy_uj"), "1000000").unwrap();
        let p = m.stop(&s).unwrap();
        let joules = p.cpu_w.unwrap() * p.window_s;
        assert!((joules - 5.0).abs() < 1e-9, "{joules}");
        assert!(p.gpu_w.is_none());
        std::fs::remove_dir_all(&root).unwrap();
        let none = EnergyMeter::open_rapl_at(Path::new("/nonexistent/powercap"));
        assert!(!none.available());
        assert!(none.stop(&none.start()).is_none());
    }
}

//! Measured ceilings of this machine: memory bandwidth (a large multi-threaded copy and triad,
//! counting bytes read plus bytes written) and matrix throughput (a large matmul through the paths
//! the engine's prefill takes: candle's, and for f32 on CPUs with AVX-512 also the packed GEMM,
//! whichever is faster), per dtype; cached per machine so `bench` measures once,
//! and measured again when the cache is stale ([`stale_reason`]).

use crate::backend::packs_weights;
use moecap_kernels::packed::PackedMatrix;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What was measured on one machine and device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    /// The machine and device these belong to (the cache key).
    pub key: String,
    /// Copy bandwidth (read + write), bytes per second: best of the repetitions.
    pub copy_bytes_per_s: f64,
    /// Triad bandwidth `a = b + s·c` (two reads + one write), bytes per second; on CUDA
    /// `a = b + c`, the same traffic.
    pub triad_bytes_per_s: f64,
    /// Bytes of each buffer of the bandwidth test.
    pub buffer_bytes: u64,
    /// Matmul throughput per dtype name (`f32`, `bf16`, ...), FLOP per second: best of the
    /// repetitions.
    pub matmul_flops_per_s: BTreeMap<String, f64>,
    /// The square matmul size used per dtype.
    pub matmul_size: BTreeMap<String, usize>,
    /// Worker threads (CPU) at measurement time.
    pub threads: usize,
    /// Seconds since the Unix epoch when last measured.
    pub measured_at: u64,
    /// The measurement method ([`METHOD`]) that produced these figures (0 in files that
    /// predate the field).
    #[serde(default)]
    pub method: u32,
}

/// Version of the measurement: bumped whenever what it runs changes (2: candle's GEMM with its
/// AVX-512 kernels; 3: also the engine's packed f32 GEMM on the CPU), so that figures measured by an
/// older moecap are not reused.
pub const METHOD: u32 = 3;

/// A cached figure below a quick re-check by more than this factor was measured under load.
const RECHECK_TOLERANCE: f64 = 1.15;

/// Why cached ceilings should be measured again, or `None` to reuse them: they come from another
/// measurement method, or a quick re-check (one repetition of the same tests, `quick`, where
/// taken) beats the cached bandwidth or matmul throughput by more than 15 %, i.e. the cache was
/// measured while the machine was busy. Ceilings are maxima: a quick check that comes out lower
/// (a busy machine now) keeps the cache.
pub fn stale_reason(cached: &Ceilings, quick: Option<&Ceilings>) -> Option<String> {
    if cached.method != METHOD {
        return Some(format!(
            "cached ceilings come from measurement method {} (this moecap uses {METHOD})",
            cached.method
        ));
    }
    let quick = quick?;
    let bw = (
        cached.bandwidth_bytes_per_s(),
        quick.bandwidth_bytes_per_s(),
    );
    if bw.1 > bw.0 * RECHECK_TOLERANCE {
        return Some(format!(
            "cached bandwidth {:.2} GB/s is below a quick re-check ({:.2} GB/s): it was measured under load",
            bw.0 / 1e9,
            bw.1 / 1e9
        ));
    }
    for (dt, &q) in &quick.matmul_flops_per_s {
        if let Some(&c) = cached.matmul_flops_per_s.get(dt) {
            if q > c * RECHECK_TOLERANCE {
                return Some(format!(
                    "cached {dt} matmul {:.1} GFLOP/s is below a quick re-check ({:.1} GFLOP/s): it was measured under load",
                    c / 1e9,
                    q / 1e9
                ));
            }
        }
    }
    None
}

impl Ceilings {
    /// The bandwidth a memory-bound pass can reach at best: the larger of copy and triad.
    pub fn bandwidth_bytes_per_s(&self) -> f64 {
        self.copy_bytes_per_s.max(self.triad_bytes_per_s)
    }

    /// The measured matmul throughput for `dtype`, if measured.
    pub fn flops_per_s(&self, dtype: DType) -> Option<f64> {
        self.matmul_flops_per_s.get(dtype.as_str()).copied()
    }
}

/// Sizes of the measurement.
#[derive(Debug, Clone, Copy)]
pub struct MeasureSpec {
    /// Bytes per bandwidth buffer.
    pub buffer_bytes: usize,
    /// Square matmul size.
    pub matmul_size: usize,
    /// Repetitions (the best is kept).
    pub repetitions: usize,
}

impl MeasureSpec {
    /// Sizes that fit the device: 256 MiB buffers and 2048² matmuls on the CPU; 1 GiB buffers and
    /// 8192² matmuls on a GPU.
    pub fn default_for(device: &Device) -> Self {
        if device.is_cpu() {
            MeasureSpec {
                buffer_bytes: 256 << 20,
                matmul_size: 2048,
                repetitions: 5,
            }
        } else {
            MeasureSpec {
                buffer_bytes: 1 << 30,
                matmul_size: 8192,
                repetitions: 10,
            }
        }
    }
}

/// Measures copy and triad bandwidth on `device`: (copy, triad) bytes per second.
pub fn measure_bandwidth(device: &Device, spec: MeasureSpec) -> Result<(f64, f64)> {
    let n = (spec.buffer_bytes / 4).max(1 << 16);
    let reps = spec.repetitions.max(1);
    if device.is_cpu() {
        let src: Vec<f32> = (0..n).into_par_iter().map(|i| i as f32).collect();
        let c: Vec<f32> = (0..n).into_par_iter().map(|i| (i % 7) as f32).collect();
        let mut dst = vec![0f32; n];
        let chunk = (n / (rayon::current_num_threads() * 8)).max(1 << 14);
        let mut copy = 0f64;
        let mut triad = 0f64;
        for _ in 0..reps {
            let t = Instant::now();
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(s));
            copy = copy.max((2 * n * 4) as f64 / t.elapsed().as_secs_f64());
            std::hint::black_box(&dst);
            let t = Instant::now();
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk).zip(c.par_chunks(chunk)))
                .for_each(|(d, (b, c))| {
                    for ((d, b), c) in d.iter_mut().zip(b).zip(c) {
                        *d = b + 3.0 * c;
                    }
                });
            triad = triad.max((3 * n * 4) as f64 / t.elapsed().as_secs_f64());
            std::hint::black_box(&dst);
        }
        return Ok((copy, triad));
    }
    let b = Tensor::ones(n, DType::F32, device)?;
    let c = Tensor::ones(n, DType::F32, device)?;
    device.synchronize()?;
    let mut copy = 0f64;
    let mut triad = 0f64;
    for _ in 0..reps + 1 {
        let t = Instant::now();
        let d = b.copy()?;
        device.synchronize()?;
        let dt_copy = t.elapsed().as_secs_f64();
        drop(d);
        let t = Instant::now();
        let d = (&b + &c)?;
        device.synchronize()?;
        let dt_triad = t.elapsed().as_secs_f64();
        drop(d);
        copy = copy.max((2 * n * 4) as f64 / dt_copy);
        triad = triad.max((3 * n * 4) as f64 / dt_triad);
    }
    Ok((copy, triad))
}

/// Measures `x · wᵀ` throughput for square `size` matrices of `dtype` on `device`, FLOP per
/// second (the best of the repetitions, after one warm-up), through candle's matmul and, for f32
/// on a CPU that runs it, the engine's packed GEMM (the two interleaved; the faster counts).
pub fn measure_matmul(device: &Device, dtype: DType, size: usize, reps: usize) -> Result<f64> {
    let a = Tensor::randn(0f32, 1.0, (size, size), device)?.to_dtype(dtype)?;
    let w = Tensor::randn(0f32, 1.0, (size, size), device)?.to_dtype(dtype)?;
    let wt = w.t()?;
    let packed = if packs_weights(device, dtype) {
        let w = w.flatten_all()?.to_vec1::<f32>()?;
        Some((
            PackedMatrix::new(&w, size, size),
            a.flatten_all()?.to_vec1::<f32>()?,
        ))
    } else {
        None
    };
    let flops = 2.0 * (size as f64).powi(3);
    let mut best = 0f64;
    for i in 0..reps.max(1) + 1 {
        let t = Instant::now();
        drop(a.matmul(&wt)?);
        device.synchronize()?;
        let mut dt = t.elapsed().as_secs_f64();
        if let Some((p, x)) = &packed {
            let t = Instant::now();
            drop(p.matmul(x, size));
            dt = dt.min(t.elapsed().as_secs_f64());
        }
        if i > 0 {
            best = best.max(flops / dt);
        }
    }
    Ok(best)
}

/// Measures bandwidth and the matmul throughput of each of `dtypes`.
pub fn measure(
    device: &Device,
    key: &str,
    dtypes: &[DType],
    spec: MeasureSpec,
) -> Result<Ceilings> {
    let (copy, triad) = measure_bandwidth(device, spec)?;
    let mut ceilings = Ceilings {
        key: key.to_string(),
        copy_bytes_per_s: copy,
        triad_bytes_per_s: triad,
        buffer_bytes: spec.buffer_bytes as u64,
        matmul_flops_per_s: BTreeMap::new(),
        matmul_size: BTreeMap::new(),
        threads: rayon::current_num_threads(),
        measured_at: unix_now(),
        method: METHOD,
    };
    for &dt in dtypes {
        // Half-precision matmuls on the CPU run far below f32; a smaller size keeps them short.
        let size = if device.is_cpu() && dt != DType::F32 {
            spec.matmul_size / 2
        } else {
            spec.matmul_size
        };
        let f = measure_matmul(device, dt, size, spec.repetitions)?;
        ceilings
            .matmul_flops_per_s
            .insert(dt.as_str().to_string(), f);
        ceilings.matmul_size.insert(dt.as_str().to_string(), size);
    }
    Ok(ceilings)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// moecap's cache folder: `$MOECAP_CACHE_DIR`, else `$XDG_CACHE_HOME/moecap`, else
/// `~/.cache/moecap`.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("MOECAP_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("moecap")))
        .or_else(|| env("HOME").map(|p| p.join(".cache").join("moecap")))
}

/// The cache file of `key` in `dir`.
pub fn cache_file(dir: &Path, key: &str) -> PathBuf {
    let safe: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    dir.join(format!("ceilings-{safe}.json"))
}

/// Reads cached ceilings; `Ok(None)` when there are none. A damaged file is an error naming it.
pub fn read_cached(path: &Path) -> Result<Option<Ceilings>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::Invalid(format!(
            "{}: not a moecap ceilings file ({e}); delete it to measure again",
            path.display()
        ))
    })
}

/// Writes ceilings to `path`, creating its folder.
pub fn write_cached(path: &Path, c: &Ceilings) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let text = serde_json::to_string_pretty(c)
        .map_err(|e| Error::Invalid(format!("serialising ceilings: {e}")))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_measurement_is_positive_and_round_trips() {
        let spec = MeasureSpec {
            buffer_bytes: 1 << 20,
            matmul_size: 64,
            repetitions: 2,
        };
        let c = measure(&Device::Cpu, "test machine", &[DType::F32], spec).unwrap();
        assert!(c.copy_bytes_per_s > 0.0 && c.triad_bytes_per_s > 0.0);
        assert!(c.flops_per_s(DType::F32).unwrap() > 0.0);
        assert!(c.flops_per_s(DType::BF16).is_none());
        let dir = std::env::temp_dir().join(format!("moecap-ceil-{}", std::process::id()));
        let f = cache_file(&dir, &c.key);
        assert!(f.ends_with("ceilings-test-machine.json"));
        assert_eq!(read_cached(&f).unwrap(), None);
        write_cached(&f, &c).unwrap();
        assert_eq!(read_cached(&f).unwrap(), Some(c.clone()));
        // the same figures are not stale; an older method, or a re-check 20 % faster, is
        let mut quick = c.clone();
        assert_eq!(stale_reason(&c, Some(&quick)), None);
        quick.copy_bytes_per_s *= 0.5;
        assert_eq!(
            stale_reason(&c, Some(&quick)),
            None,
            "a busy re-check keeps the cache"
        );
        quick.copy_bytes_per_s = c.bandwidth_bytes_per_s() * 1.2;
        assert!(stale_reason(&c, Some(&quick))
            .unwrap()
            .contains("under load"));
        let mut quick = c.clone();
        *quick.matmul_flops_per_s.get_mut("f32").unwrap() *= 1.2;
        assert!(stale_reason(&c, Some(&quick))
            .unwrap()
            .contains("f32 matmul"));
        let old = Ceilings {
            method: 1,
            ..c.clone()
        };
        assert!(stale_reason(&old, None).unwrap().contains("method 1"));
        // files written before the method field read as method 0
        let mut v = serde_json::to_value(&c).unwrap();
        v.as_object_mut().unwrap().remove("method");
        std::fs::write(&f, v.to_string()).unwrap();
        assert_eq!(read_cached(&f).unwrap().unwrap().method, 0);
        std::fs::write(&f, "{").unwrap();
        let e = read_cached(&f).unwrap_err().to_string();
        assert!(e.contains("not a moecap ceilings file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

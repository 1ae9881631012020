//! Measured ceilings of this machine: memory bandwidth (a large multi-threaded copy and triad,
//! counting bytes read plus bytes written) and matrix throughput (a large matmul through the paths
//! the engine's prefill takes: candle's, and for f32 on CPUs with AVX-512 also the packed GEMM,
//! whichever is faster), per dtype. [`super::cache`] keeps them per machine.

use crate::backend::packs_weights;
use crate::error::Result;
use candle_core::{DType, Device, Tensor};
use moecap_kernels::packed::PackedMatrix;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// When each figure that survived a re-measurement was measured (Unix seconds), by figure
    /// (`copy`, `triad`, `matmul f32`, ...); figures absent here date from `measured_at`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub figure_measured_at: BTreeMap<String, u64>,
    /// Per figure of the last measurement, its best repetition over its worst: above
    /// [`UNSTEADY_SPREAD`] the machine was busy while it was measured.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub spread: BTreeMap<String, f64>,
    /// The measurement method ([`METHOD`]) that produced these figures (0 in files that
    /// predate the field).
    #[serde(default)]
    pub method: u32,
}

/// Version of the measurement: bumped whenever what it runs changes (2: candle's GEMM with its
/// AVX-512 kernels; 3: also the engine's packed f32 GEMM on the CPU), so that figures measured by an
/// older moecap are not reused.
pub const METHOD: u32 = 3;

impl Ceilings {
    /// The bandwidth a memory-bound pass can reach at best: the larger of copy and triad.
    pub fn bandwidth_bytes_per_s(&self) -> f64 {
        self.copy_bytes_per_s.max(self.triad_bytes_per_s)
    }

    /// The figures of the last measurement whose repetitions varied by more than
    /// [`UNSTEADY_SPREAD`], with their spread.
    pub fn unsteady(&self) -> Vec<(String, f64)> {
        self.spread
            .iter()
            .filter(|(_, &s)| s > UNSTEADY_SPREAD)
            .map(|(n, &s)| (n.clone(), s))
            .collect()
    }

    /// When figure `name` (`copy`, `triad`, `matmul f32`) was measured.
    pub fn figure_time(&self, name: &str) -> u64 {
        self.figure_measured_at
            .get(name)
            .copied()
            .unwrap_or(self.measured_at)
    }

    /// Keeps, figure by figure, the higher of these ceilings and `older` ones of the same
    /// method: a ceiling is a maximum, and a re-measurement on a busier machine must not lower
    /// it. Returns the figures kept from `older`.
    pub fn keep_best(&mut self, older: &Ceilings) -> Vec<String> {
        let mut kept = Vec::new();
        if older.method != self.method {
            return kept;
        }
        let mut figures: Vec<(String, &mut f64, f64)> = vec![
            (
                "copy".into(),
                &mut self.copy_bytes_per_s,
                older.copy_bytes_per_s,
            ),
            (
                "triad".into(),
                &mut self.triad_bytes_per_s,
                older.triad_bytes_per_s,
            ),
        ];
        for (dt, mine) in self.matmul_flops_per_s.iter_mut() {
            if let Some(&theirs) = older.matmul_flops_per_s.get(dt) {
                figures.push((format!("matmul {dt}"), mine, theirs));
            }
        }
        for (name, mine, theirs) in figures {
            if theirs > *mine {
                *mine = theirs;
                self.figure_measured_at
                    .insert(name.clone(), older.figure_time(&name));
                // the spread describes this measurement, not the kept figure's
                self.spread.remove(&name);
                kept.push(name);
            }
        }
        for name in &kept {
            if let Some(dt) = name.strip_prefix("matmul ") {
                if let Some(&n) = older.matmul_size.get(dt) {
                    self.matmul_size.insert(dt.to_string(), n);
                }
            }
        }
        kept
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

/// The rates of a figure's repetitions: the best is the ceiling, the spread (best / worst) says
/// whether the machine was steady while it was measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// The best repetition.
    pub best: f64,
    /// The worst repetition.
    pub worst: f64,
}

impl Rate {
    fn new() -> Self {
        Rate {
            best: 0.0,
            worst: f64::INFINITY,
        }
    }

    fn add(&mut self, rate: f64) {
        self.best = self.best.max(rate);
        self.worst = self.worst.min(rate);
    }

    /// Best over worst (1 for a single repetition).
    pub fn spread(&self) -> f64 {
        if self.worst > 0.0 && self.worst.is_finite() {
            self.best / self.worst
        } else {
            1.0
        }
    }
}

/// Repetitions of one figure that differ by more than this factor were measured on a busy
/// machine.
pub const UNSTEADY_SPREAD: f64 = 1.25;

/// Measures copy and triad bandwidth on `device`, bytes per second.
pub fn measure_bandwidth(device: &Device, spec: MeasureSpec) -> Result<(Rate, Rate)> {
    let n = (spec.buffer_bytes / 4).max(1 << 16);
    let reps = spec.repetitions.max(1);
    if device.is_cpu() {
        let src: Vec<f32> = (0..n).into_par_iter().map(|i| i as f32).collect();
        let c: Vec<f32> = (0..n).into_par_iter().map(|i| (i % 7) as f32).collect();
        let mut dst = vec![0f32; n];
        let chunk = (n / (rayon::current_num_threads() * 8)).max(1 << 14);
        let (mut copy, mut triad) = (Rate::new(), Rate::new());
        for _ in 0..reps {
            let t = Instant::now();
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(s));
            copy.add((2 * n * 4) as f64 / t.elapsed().as_secs_f64());
            std::hint::black_box(&dst);
            let t = Instant::now();
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk).zip(c.par_chunks(chunk)))
                .for_each(|(d, (b, c))| {
                    for ((d, b), c) in d.iter_mut().zip(b).zip(c) {
                        *d = b + 3.0 * c;
                    }
                });
            triad.add((3 * n * 4) as f64 / t.elapsed().as_secs_f64());
            std::hint::black_box(&dst);
        }
        return Ok((copy, triad));
    }
    let b = Tensor::ones(n, DType::F32, device)?;
    let c = Tensor::ones(n, DType::F32, device)?;
    device.synchronize()?;
    let (mut copy, mut triad) = (Rate::new(), Rate::new());
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
        copy.add((2 * n * 4) as f64 / dt_copy);
        triad.add((3 * n * 4) as f64 / dt_triad);
    }
    Ok((copy, triad))
}

/// Measures `x · wᵀ` throughput for square `size` matrices of `dtype` on `device`, FLOP per
/// second (the repetitions after one warm-up), through candle's matmul and, for f32 on a CPU
/// that runs it, the engine's packed GEMM (the two interleaved; the faster counts).
pub fn measure_matmul(device: &Device, dtype: DType, size: usize, reps: usize) -> Result<Rate> {
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
    let mut rate = Rate::new();
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
            rate.add(flops / dt);
        }
    }
    Ok(rate)
}

/// Measures bandwidth and the matmul throughput of each of `dtypes`.
pub fn measure(
    device: &Device,
    key: &str,
    dtypes: &[DType],
    spec: MeasureSpec,
) -> Result<Ceilings> {
    let (copy, triad) = measure_bandwidth(device, spec)?;
    let mut spread = BTreeMap::new();
    spread.insert("copy".to_string(), copy.spread());
    spread.insert("triad".to_string(), triad.spread());
    let mut ceilings = Ceilings {
        key: key.to_string(),
        copy_bytes_per_s: copy.best,
        triad_bytes_per_s: triad.best,
        buffer_bytes: spec.buffer_bytes as u64,
        matmul_flops_per_s: BTreeMap::new(),
        matmul_size: BTreeMap::new(),
        threads: rayon::current_num_threads(),
        measured_at: unix_now(),
        figure_measured_at: BTreeMap::new(),
        spread,
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
            .insert(dt.as_str().to_string(), f.best);
        ceilings
            .spread
            .insert(format!("matmul {}", dt.as_str()), f.spread());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ceilings(copy: f64, triad: f64, f32_flops: f64, at: u64) -> Ceilings {
        Ceilings {
            key: "t".into(),
            copy_bytes_per_s: copy,
            triad_bytes_per_s: triad,
            buffer_bytes: 1,
            matmul_flops_per_s: [("f32".to_string(), f32_flops)].into(),
            matmul_size: [("f32".to_string(), at as usize)].into(),
            threads: 1,
            measured_at: at,
            figure_measured_at: BTreeMap::new(),
            spread: BTreeMap::new(),
            method: METHOD,
        }
    }

    #[test]
    fn repetitions_that_vary_flag_a_busy_machine() {
        let mut r = Rate::new();
        assert_eq!(r.spread(), 1.0);
        r.add(100.0);
        assert_eq!(r.spread(), 1.0);
        r.add(60.0);
        r.add(90.0);
        assert_eq!((r.best, r.worst), (100.0, 60.0));
        assert!((r.spread() - 100.0 / 60.0).abs() < 1e-12);
        let mut c = ceilings(1e10, 1e10, 1e11, 0);
        c.spread = [("copy".to_string(), 1.1), ("matmul f32".to_string(), 1.6)].into();
        assert_eq!(c.unsteady(), [("matmul f32".to_string(), 1.6)]);
        // a figure kept from an earlier measurement drops this one's spread
        let old = ceilings(1e10, 1e10, 2e11, 0);
        c.keep_best(&old);
        assert!(c.unsteady().is_empty());
    }

    #[test]
    fn a_remeasurement_keeps_each_figures_best() {
        // the reported case: a busy re-measurement found f32 matmul 54.2 GFLOP/s where 364.6
        // had been measured; the bandwidth was really higher
        let old = ceilings(40e9, 41e9, 364.6e9, 100);
        let mut new = ceilings(45e9, 20e9, 54.2e9, 200);
        let kept = new.keep_best(&old);
        assert_eq!(kept, ["triad", "matmul f32"]);
        assert_eq!(new.copy_bytes_per_s, 45e9);
        assert_eq!(new.triad_bytes_per_s, 41e9);
        assert_eq!(new.flops_per_s(DType::F32), Some(364.6e9));
        assert_eq!(new.matmul_size["f32"], 100, "the size that reached it");
        assert_eq!(new.figure_time("triad"), 100);
        assert_eq!(new.figure_time("copy"), 200);
        // once more: the kept figures keep their original time
        let mut newer = ceilings(1e9, 1e9, 1e9, 300);
        newer.keep_best(&new);
        assert_eq!(newer.figure_time("copy"), 200);
        assert_eq!(newer.figure_time("triad"), 100);
        // another method's figures are not comparable
        let mut other = ceilings(1e9, 1e9, 1e9, 300);
        other.method = METHOD + 1;
        assert!(other.keep_best(&old).is_empty());
    }
}

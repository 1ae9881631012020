//! The per-machine cache of measured ceilings and when it is trusted: a cached figure is reused
//! unless it comes from an older measurement method or a quick re-check beats it (it was
//! measured on a busy machine); what is missing or stale is measured and cached, each figure
//! keeping the best value measured so far.

use super::ceilings::{measure, Ceilings, MeasureSpec, METHOD};
use super::dirs::cache_dir;
use crate::error::{Error, Result};
use candle_core::{DType, Device};
use std::path::{Path, PathBuf};

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
    let c: Ceilings = serde_json::from_str(&text).map_err(|e| {
        Error::Invalid(format!(
            "{}: not a moecap ceilings file ({e}); delete it to measure again",
            path.display()
        ))
    })?;
    let mut figures = vec![
        ("copy_bytes_per_s".to_string(), c.copy_bytes_per_s),
        ("triad_bytes_per_s".to_string(), c.triad_bytes_per_s),
    ];
    for (dt, &f) in &c.matmul_flops_per_s {
        figures.push((format!("matmul_flops_per_s.{dt}"), f));
    }
    if let Some((name, v)) = figures.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
        return Err(Error::Invalid(format!(
            "{}: `{name}` is {v}; a ceiling is a positive rate (delete the file to measure again)",
            path.display()
        )));
    }
    Ok(Some(c))
}

/// Writes ceilings to `path`, creating its folder.
pub fn write_cached(path: &Path, c: &Ceilings) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let text = serde_json::to_string_pretty(c)
        .map_err(|e| Error::Invalid(format!("serialising ceilings: {e}")))?;
    crate::files::write_atomic(path, text.as_bytes())
}

/// Ceilings of `dtypes` on `device` for the machine `key`: the cache (unless `remeasure`),
/// re-checked with one quick repetition, measured again where missing or stale, and cached.
/// `note` hears what is measured and why, before it happens. Returns the ceilings and the cache
/// file (none without a cache folder).
pub fn cached_or_measured(
    device: &Device,
    key: &str,
    dtypes: &[DType],
    remeasure: bool,
    note: &mut dyn FnMut(&str),
) -> Result<(Ceilings, Option<PathBuf>)> {
    let file = cache_dir().map(|d| cache_file(&d, key));
    let cached = match (&file, remeasure) {
        (Some(f), false) => read_cached(f)?,
        _ => None,
    };
    let missing: Vec<DType> = match &cached {
        Some(c) => dtypes
            .iter()
            .copied()
            .filter(|d| c.flops_per_s(*d).is_none())
            .collect(),
        None => dtypes.to_vec(),
    };
    let spec = MeasureSpec::default_for(device);
    // a cache is reused only if a quick re-check (one repetition) does not beat it
    let stale = match &cached {
        Some(c) => {
            let quick = if missing.is_empty() && c.method == METHOD {
                Some(measure(
                    device,
                    key,
                    dtypes,
                    MeasureSpec {
                        repetitions: 1,
                        ..spec
                    },
                )?)
            } else {
                None
            };
            stale_reason(c, quick.as_ref())
        }
        None => None,
    };
    match (&cached, &stale) {
        (Some(c), None) if missing.is_empty() => return Ok((c.clone(), file)),
        (_, Some(why)) => note(&format!("{why}; measuring again")),
        _ => {}
    }
    // Figures measured again because one of them was beaten keep their old value where the
    // new one is lower (the machine may be busy now); an older method's figures are dropped.
    let (cached, missing, previous) = if stale.is_some() {
        (None, dtypes.to_vec(), cached.filter(|c| c.method == METHOD))
    } else {
        (cached, missing, None)
    };
    note(&format!(
        "measuring this machine's bandwidth and matmul throughput ({}); cached for later runs",
        missing
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut fresh = measure(device, key, &missing, spec)?;
    for (name, spread) in fresh.unsteady() {
        note(&format!(
            "the {name} figure varied {spread:.2}× across repetitions: the machine is busy, so it may read low (the best figure ever measured is kept)"
        ));
    }
    if let Some(prev) = &previous {
        let kept = fresh.keep_best(prev);
        if !kept.is_empty() {
            note(&format!(
                "kept the earlier, higher {} (a ceiling is the best ever measured; this run's figure was lower, perhaps under load)",
                kept.join(", ")
            ));
        }
    }
    if let Some(old) = cached {
        // keep the dtypes measured before
        for (k, v) in old.matmul_flops_per_s {
            fresh.matmul_flops_per_s.entry(k).or_insert(v);
        }
        for (k, v) in old.matmul_size {
            fresh.matmul_size.entry(k).or_insert(v);
        }
    }
    if let Some(f) = &file {
        write_cached(f, &fresh)?;
    }
    Ok((fresh, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::ceilings::measure;

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

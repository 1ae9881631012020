//! The memory this host can give a command, and the check made before a large allocation:
//! a command that cannot fit stops with the figure it needs and the figure the machine has,
//! instead of being killed by the kernel halfway through.

use crate::error::{Error, Result};

/// `MemAvailable` of `/proc/meminfo` in bytes (`None` where the file or the line is absent).
pub fn available_bytes() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_available(&text)
}

fn parse_available(meminfo: &str) -> Option<f64> {
    meminfo.lines().find_map(|l| {
        let kb: f64 = l
            .strip_prefix("MemAvailable:")?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024.0)
    })
}

/// Refuses `what` when it needs more than the host's available memory (`how` says how the
/// figure was reached); passes where the host does not say.
pub fn check_host_fits(what: &str, needed_bytes: f64, how: &str) -> Result<()> {
    match available_bytes() {
        Some(avail) => check_fits(what, needed_bytes, how, avail),
        None => Ok(()),
    }
}

/// [`check_host_fits`] against a given amount of available memory.
pub fn check_fits(what: &str, needed_bytes: f64, how: &str, available_bytes: f64) -> Result<()> {
    if needed_bytes <= available_bytes {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{what} needs {:.1} GB of memory ({how}), but this machine has {:.1} GB available",
        needed_bytes / 1e9,
        available_bytes / 1e9
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_memory_is_read_and_compared() {
        let m = "MemTotal:       24683652 kB\nMemFree: 10 kB\nMemAvailable:   1000000 kB\n";
        assert_eq!(parse_available(m), Some(1_024_000_000.0));
        assert_eq!(parse_available("MemTotal: 5 kB\n"), None);
        assert!(check_fits("x", 1e9, "how", 2e9).is_ok());
        let e = check_fits("synth", 2.7e12, "671 G parameters × 4 bytes", 2.1e10)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("synth needs 2700.0 GB") && e.contains("21.0 GB available"),
            "{e}"
        );
    }
}

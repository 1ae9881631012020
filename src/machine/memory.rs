//! The memory this host can give a command, and the check made before a large allocation:
//! a command that cannot fit stops with the figure it needs and the figure the machine has,
//! instead of being killed by the kernel halfway through.

use crate::error::{Error, Result};
use crate::model::descriptor::{Ffn, ModelDesc};

/// An upper estimate of the activations of one forward pass over `tokens` tokens of
/// `sequences` sequences, in bytes of `dtype_bytes` values: per token the hidden-state buffers
/// of a layer (six of the hidden size), its queries, keys and values, and its widest
/// feed-forward part (gate, up and their product of one routed expert, as experts run one after
/// another, the token's k expert outputs, the shared or dense MLP); per sequence one row of f32
/// logits.
pub fn activation_bytes(desc: &ModelDesc, tokens: f64, sequences: f64, dtype_bytes: f64) -> f64 {
    let per_token = desc
        .layers
        .iter()
        .map(|l| {
            let a = &l.attention;
            let attention = a.heads() * (a.qk_head_dim() + 2 * a.v_head_dim());
            let ffn = match &l.ffn {
                Ffn::Dense {
                    intermediate_size, ..
                } => 3 * intermediate_size,
                // experts run one after another: at worst one of them takes every token,
                // and each token's k outputs wait to be combined
                Ffn::Moe(m) => {
                    3 * m.expert_intermediate_size
                        + m.top_k * desc.hidden_size
                        + m.shared.as_ref().map_or(0, |s| 3 * s.intermediate_size)
                }
            };
            (6 * desc.hidden_size + attention + ffn) as f64
        })
        .fold(0.0, f64::max);
    tokens * per_token * dtype_bytes + sequences * desc.vocab_size as f64 * 4.0
}

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
    fn activations_by_hand() {
        // tiny-qwen2-moe: hidden 64, 4 heads of 16, MoE layers of experts of 32 (top-4) with a
        // shared MLP of 64, one dense layer of 128, vocabulary 512
        let d = crate::model::synthetic::synthetic_desc("tiny-qwen2-moe").unwrap();
        let hidden = 6 * 64;
        let attention = 4 * (16 + 2 * 16);
        let moe = 3 * 32 + 4 * 64 + 3 * 64;
        let dense = 3 * 128;
        assert!(moe > dense);
        let per_token = (hidden + attention + moe) as f64;
        assert_eq!(
            activation_bytes(&d, 10.0, 2.0, 4.0),
            10.0 * per_token * 4.0 + 2.0 * 512.0 * 4.0
        );
    }

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

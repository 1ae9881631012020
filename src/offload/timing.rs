//! The time model of an offloaded configuration (docs/OFFLOAD.md): a pass takes the time of the
//! all-resident model (measured in the trace, or the roofline of a hardware row) plus the stalls
//! of its misses, and of prefetches that do not finish within the layer they overlap.
//!
//! With `B` an expert's bytes in the slow tier's format, `BW` and `λ` the host link's bandwidth
//! and per-transfer latency, `t_p` the all-resident pass time and `L` the model's layers:
//!
//! - `fetch` (and `lowbit`, with `B` the low-precision copy's bytes): each miss stalls `B/BW + λ`.
//! - `cpu`: the missed experts run on the host: `max(m·B_w/BW_cpu, 2·P·n/F_cpu)` for `m` misses
//!   with `n` tokens routed to them (`P` an expert's parameters, `B_w` its bytes in the weight
//!   format), plus their activations over the link, `2·n·d·b_a/BW + m·λ`. A miss the policy
//!   inserts is also uploaded for later use, overlapped (bytes counted, no stall).
//! - a prefetch of `u` experts before a layer overlaps the previous layer's compute `t_p/L`:
//!   it stalls `max(0, u·(B/BW + λ) − t_p/L)`, and is late when that is positive.
//! - a pass's time is `t_p` plus its stalls; TTFT is the mean prefill pass, TPOT the mean decode
//!   pass.

use super::sim::{Counts, PassEvents};
use serde::Serialize;

/// How a missed expert is served.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MissHandler {
    /// Its weights cross the host link.
    Fetch,
    /// It runs on the host; only the tokens' activations cross.
    Cpu,
    /// A low-precision copy crosses (`bytes_per_param`: 1 for int8, 0.5 for int4).
    Lowbit {
        /// Bytes per parameter of the copy.
        bytes_per_param: f64,
    },
}

/// The link, the host and the sizes a prediction needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Link {
    /// Host→device bandwidth, bytes per second.
    pub bytes_per_s: f64,
    /// Latency of one transfer, seconds.
    pub latency_s: f64,
}

/// The host's compute for `cpu` misses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Host {
    /// Memory bandwidth, bytes per second.
    pub bytes_per_s: f64,
    /// Matmul throughput, FLOP per second.
    pub flops_per_s: f64,
}

/// Sizes of the model the stalls depend on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sizes {
    /// Parameters of one routed expert.
    pub expert_params: f64,
    /// Bytes per weight element.
    pub weight_bytes: f64,
    /// Hidden size.
    pub hidden: f64,
    /// Bytes per activation element.
    pub activation_bytes: f64,
    /// Decoder layers.
    pub layers: f64,
}

/// A time model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimeModel {
    /// How misses are served.
    pub handler: MissHandler,
    /// The host link (none: no times, bytes only).
    pub link: Option<Link>,
    /// The host, for `cpu` misses.
    pub host: Option<Host>,
    /// The model's sizes.
    pub sizes: Sizes,
}

/// What a replayed configuration costs in time and transfers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stalls {
    /// Σ pass time with stalls, seconds.
    pub time_s: f64,
    /// Σ all-resident pass time, seconds.
    pub resident_s: f64,
    /// Passes.
    pub passes: u64,
    /// Prefetches that did not finish within their overlap.
    pub late_prefetches: u64,
}

impl TimeModel {
    /// Bytes a miss moves over the link (`fetch`, `lowbit`), or an uploaded expert.
    pub fn transfer_bytes(&self) -> f64 {
        match self.handler {
            MissHandler::Lowbit { bytes_per_param } => self.sizes.expert_params * bytes_per_param,
            _ => self.sizes.expert_params * self.sizes.weight_bytes,
        }
    }

    /// Whether the model can give times: a link, and for `cpu` misses the host.
    pub fn timed(&self) -> bool {
        self.link.is_some() && (self.handler != MissHandler::Cpu || self.host.is_some())
    }

    /// The stall of a pass whose all-resident time is `base_s` and the prefetches in it that
    /// were late; `None` without a link (or without the host for `cpu` misses).
    pub fn pass_stall(&self, e: &PassEvents, base_s: f64) -> Option<(f64, u64)> {
        let link = self.link?;
        let s = &self.sizes;
        let transfer = |bytes: f64| bytes / link.bytes_per_s + link.latency_s;
        let miss = match self.handler {
            MissHandler::Fetch | MissHandler::Lowbit { .. } => {
                e.misses as f64 * transfer(self.transfer_bytes())
            }
            MissHandler::Cpu => {
                let host = self.host?;
                let m = e.misses as f64;
                let n = e.miss_tokens as f64;
                let compute = (m * s.expert_params * s.weight_bytes / host.bytes_per_s)
                    .max(2.0 * s.expert_params * n / host.flops_per_s);
                let acts = if e.misses > 0 {
                    2.0 * n * s.hidden * s.activation_bytes / link.bytes_per_s + m * link.latency_s
                } else {
                    0.0
                };
                compute + acts
            }
        };
        let window = base_s / s.layers.max(1.0);
        let mut late = 0;
        let mut prefetch = 0.0;
        for &(_, u) in &e.prefetched {
            let t = u as f64 * transfer(self.transfer_bytes());
            if t > window {
                late += u as u64;
                prefetch += t - window;
            }
        }
        Some((miss + prefetch, late))
    }

    /// Bytes moved host→device for `c`'s misses and prefetches: expert uploads, and in `cpu`
    /// mode the missed experts' results coming back.
    pub fn h2d_bytes(&self, c: &Counts, miss_tokens: u64, inserted: u64) -> f64 {
        let expert = self.transfer_bytes();
        match self.handler {
            MissHandler::Cpu => {
                (inserted + c.prefetches) as f64 * expert
                    + miss_tokens as f64 * self.sizes.hidden * self.sizes.activation_bytes
            }
            _ => (c.misses + c.prefetches) as f64 * expert,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(handler: MissHandler) -> TimeModel {
        TimeModel {
            handler,
            link: Some(Link {
                bytes_per_s: 10e9,
                latency_s: 10e-6,
            }),
            host: Some(Host {
                bytes_per_s: 100e9,
                flops_per_s: 1e12,
            }),
            sizes: Sizes {
                expert_params: 50e6,
                weight_bytes: 2.0,
                hidden: 4096.0,
                activation_bytes: 2.0,
                layers: 32.0,
            },
        }
    }

    #[test]
    fn stalls_by_hand() {
        // 3 misses of 100 MB at 10 GB/s + 10 µs each: 3 · (10 ms + 10 µs)
        let e = PassEvents {
            misses: 3,
            inserted: 2,
            miss_tokens: 5,
            prefetched: vec![(4, 2)],
        };
        let m = model(MissHandler::Fetch);
        // the prefetch of 2 experts takes 20.02 ms against a window of 32 ms / 32 = 1 ms
        let (s, late) = m.pass_stall(&e, 0.032).unwrap();
        let want = 3.0 * 0.010_01 + (2.0 * 0.010_01 - 0.001);
        assert!((s - want).abs() < 1e-12, "{s} vs {want}");
        assert_eq!(late, 2);
        // int8: 50 MB per miss
        let (s, _) = model(MissHandler::Lowbit {
            bytes_per_param: 1.0,
        })
        .pass_stall(
            &PassEvents {
                misses: 1,
                ..e.clone()
            },
            1.0,
        )
        .unwrap();
        assert!((s - (0.005 + 10e-6)).abs() < 1e-12);
        // cpu: max(3 · 100 MB / 100 GB/s, 2 · 50e6 · 5 / 1e12) = 3 ms, plus 2 · 5 · 4096 · 2 B
        // over the link and 3 latencies
        let (s, _) = model(MissHandler::Cpu)
            .pass_stall(
                &PassEvents {
                    prefetched: vec![],
                    ..e
                },
                1.0,
            )
            .unwrap();
        let want = 0.003 + 2.0 * 5.0 * 4096.0 * 2.0 / 10e9 + 3.0 * 10e-6;
        assert!((s - want).abs() < 1e-12, "{s} vs {want}");
    }
}

//! The accounting of an offloaded configuration: every policy × capacity's replay counts per
//! phase, with the bytes its misses move, the TTFT and TPOT the time model predicts, the device
//! memory the configuration needs and its S-MBU (the bytes every pass reads, from both tiers,
//! over the predicted time).

use super::cost::Accountant;
use crate::machine::hardware::Peaks;
use crate::offload::sim::{
    simulate, Counts, Layout, PassEvents, Profile, SimOptions, SimResult, Variant,
};
use crate::offload::timing::{Stalls, TimeModel};
use crate::offload::trace::Trace;
use crate::records::{Phase, SeqSlice};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where the all-resident time of a pass comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeviceTime {
    /// The trace's measured pass latencies.
    Measured,
    /// The roofline of these peaks: `max(bytes / bandwidth, FLOPs / FLOPS)`.
    Roofline(Peaks),
}

/// One phase of one configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseResult {
    /// The counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Hits over accesses.
    pub hit_rate: f64,
    /// Assignments served by resident experts over all (Fiddler's definition).
    pub token_hit_rate: f64,
    /// Bytes moved host → device.
    pub h2d_bytes: f64,
    /// Prefetches that did not finish within the layer they overlap.
    pub late_prefetches: u64,
    /// Mean predicted prefill pass time, seconds (prefill only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_s: Option<f64>,
    /// Mean predicted decode pass time, seconds (decode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_s: Option<f64>,
    /// Predicted seconds over all passes of the phase.
    pub time_s: Option<f64>,
    /// S-MBU of the offloaded configuration against the device's bandwidth.
    pub s_mbu: Option<f64>,
}

/// One policy at one capacity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    /// `lru`, `lru+prefetch`, ...
    pub policy: String,
    /// Experts per pool.
    pub capacity: usize,
    /// Device memory the weights need: everything but the routed experts, plus the cache.
    pub device_memory_bytes: Option<f64>,
    /// Prefill passes.
    pub prefill: PhaseResult,
    /// Decode passes.
    pub decode: PhaseResult,
    /// Both.
    pub all: PhaseResult,
    /// Per bench point: prefill and decode counts.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub points: BTreeMap<String, BTreeMap<String, Counts>>,
}

/// The all-resident reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Resident {
    /// Mean prefill pass time, seconds.
    pub ttft_s: Option<f64>,
    /// Mean decode pass time, seconds.
    pub tpot_s: Option<f64>,
    /// Device memory of every weight, bytes.
    pub device_memory_bytes: Option<f64>,
}

/// A whole simulation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulateReport {
    /// The model.
    pub model: String,
    /// The trace.
    pub trace: String,
    /// `layer` or `global`.
    pub scope: String,
    /// Replays (independent runs from an empty cache).
    pub replays: usize,
    /// Passes over all replays.
    pub passes: usize,
    /// The time model.
    pub time_model: TimeModel,
    /// `measured` (the trace's pass times) or `roofline` (the hardware row's).
    pub device_time: Option<String>,
    /// Bytes of one routed expert in the weight format.
    pub expert_bytes: f64,
    /// Bytes of every weight but the routed experts.
    pub non_expert_bytes: f64,
    /// The all-resident reference.
    pub resident: Resident,
    /// Per policy and capacity.
    pub results: Vec<PolicyResult>,
}

/// What a simulation needs besides the trace.
pub struct Simulation<'a> {
    /// The trace's layout.
    pub layout: &'a Layout,
    /// The profile static sets and prefetches come from.
    pub profile: &'a Profile,
    /// Replay options.
    pub options: SimOptions,
    /// The model's accounting (sizes, bytes of a pass).
    pub accountant: &'a Accountant<'a>,
    /// The time model (times only with a link).
    pub time: TimeModel,
    /// Where pass times come from (none: no times).
    pub device_time: Option<DeviceTime>,
    /// The device's peaks, for S-MBU.
    pub peaks: Option<Peaks>,
}

/// Per replay, per pass: the all-resident time (if known) and the bytes the pass reads.
struct PassBase {
    phase: Phase,
    base_s: Option<f64>,
    bytes: f64,
}

impl Simulation<'_> {
    /// Replays every variant at every capacity and assembles the report.
    pub fn run(&self, trace: &Trace, variants: &[Variant], capacities: &[usize]) -> SimulateReport {
        let acct = self.accountant;
        let desc = acct.desc;
        let bases: Vec<Vec<PassBase>> = trace
            .replays
            .iter()
            .map(|r| {
                r.passes
                    .iter()
                    .map(|p| {
                        let seqs: Vec<SeqSlice> = p
                            .seqs
                            .iter()
                            .map(|&(cached, new)| SeqSlice { cached, new })
                            .collect();
                        let activated: Vec<f64> = desc
                            .layers
                            .iter()
                            .map(|l| p.distinct(l.index).len() as f64)
                            .collect();
                        let cost = acct.pass_cost(&seqs, &activated, p.sequences as u64);
                        let bytes = cost.weight_bytes + cost.kv_bytes;
                        let base_s = match self.device_time {
                            Some(DeviceTime::Measured) => p.latency_s,
                            Some(DeviceTime::Roofline(pk)) => Some(
                                (bytes / pk.bandwidth_bytes_per_s).max(cost.flops / pk.flops_per_s),
                            ),
                            None => None,
                        };
                        PassBase {
                            phase: p.phase,
                            base_s,
                            bytes,
                        }
                    })
                    .collect()
            })
            .collect();
        let expert_bytes = acct.expert_params() as f64 * acct.precision.weight;
        let total_bytes = acct.weight_footprint_bytes();
        let non_expert_bytes = acct.non_expert_bytes();
        let resident_time = |phase: Phase| -> Option<f64> {
            let v: Vec<f64> = bases
                .iter()
                .flatten()
                .filter(|b| b.phase == phase)
                .map(|b| b.base_s)
                .collect::<Option<Vec<f64>>>()?;
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let pools = if self.options.global {
            1
        } else {
            self.layout.layers.len()
        };
        let sims = simulate(
            trace,
            self.layout,
            self.profile,
            variants,
            capacities,
            &self.options,
        );
        let results = sims
            .iter()
            .map(|s| {
                let cached = (s.capacity * pools).min(self.layout.total());
                self.result(s, &bases, non_expert_bytes + cached as f64 * expert_bytes)
            })
            .collect();
        SimulateReport {
            model: desc.display_name(),
            trace: trace.source.clone(),
            scope: if self.options.global {
                "global"
            } else {
                "layer"
            }
            .into(),
            replays: trace.replays.len(),
            passes: trace.replays.iter().map(|r| r.passes.len()).sum(),
            time_model: self.time,
            device_time: self.device_time.map(|d| {
                match d {
                    DeviceTime::Measured => "measured",
                    DeviceTime::Roofline(_) => "roofline",
                }
                .to_string()
            }),
            expert_bytes,
            non_expert_bytes,
            resident: Resident {
                ttft_s: resident_time(Phase::Prefill),
                tpot_s: resident_time(Phase::Decode),
                device_memory_bytes: Some(total_bytes),
            },
            results,
        }
    }

    fn result(&self, s: &SimResult, bases: &[Vec<PassBase>], memory: f64) -> PolicyResult {
        let mut per = [PhaseTotals::default(), PhaseTotals::default()];
        for (events, base) in s.events.iter().zip(bases) {
            for (e, b) in events.iter().zip(base) {
                let t = &mut per[usize::from(b.phase == Phase::Decode)];
                t.add(e, b, &self.time);
            }
        }
        let phase = |c: Counts, t: &PhaseTotals, ph: Option<Phase>| {
            let h2d = self.time.h2d_bytes(&c, t.miss_tokens, t.inserted);
            let stalls = t.stalls();
            let time_s = stalls.map(|x| x.time_s);
            let mean = stalls.map(|x| x.time_s / x.passes as f64);
            PhaseResult {
                hit_rate: c.hit_rate(),
                token_hit_rate: c.token_hit_rate(),
                h2d_bytes: h2d,
                late_prefetches: stalls.map_or(0, |x| x.late_prefetches),
                ttft_s: if ph == Some(Phase::Prefill) {
                    mean
                } else {
                    None
                },
                tpot_s: if ph == Some(Phase::Decode) {
                    mean
                } else {
                    None
                },
                time_s,
                s_mbu: match (self.peaks, time_s) {
                    (Some(p), Some(ts)) if ts > 0.0 => Some(t.bytes / ts / p.bandwidth_bytes_per_s),
                    _ => None,
                },
                counts: c,
            }
        };
        let mut all = per[0].clone();
        all.merge(&per[1]);
        PolicyResult {
            policy: s.variant.name(),
            capacity: s.capacity,
            device_memory_bytes: Some(memory),
            prefill: phase(s.prefill, &per[0], Some(Phase::Prefill)),
            decode: phase(s.decode, &per[1], Some(Phase::Decode)),
            all: phase(s.all(), &all, None),
            points: s
                .points
                .iter()
                .map(|(p, c)| {
                    (
                        p.clone(),
                        [("prefill".to_string(), c[0]), ("decode".to_string(), c[1])]
                            .into_iter()
                            .collect(),
                    )
                })
                .collect(),
        }
    }
}

/// Sums of one phase over passes.
#[derive(Debug, Clone, Default)]
struct PhaseTotals {
    miss_tokens: u64,
    inserted: u64,
    bytes: f64,
    passes: u64,
    time_s: f64,
    resident_s: f64,
    late: u64,
    /// Some pass has no time (no link, or no pass time).
    untimed: bool,
}

impl PhaseTotals {
    fn add(&mut self, e: &PassEvents, b: &PassBase, model: &TimeModel) {
        self.miss_tokens += e.miss_tokens as u64;
        self.inserted += e.inserted as u64;
        self.bytes += b.bytes;
        self.passes += 1;
        match b
            .base_s
            .and_then(|base| Some((base, model.pass_stall(e, base)?)))
        {
            Some((base, (stall, late))) => {
                self.time_s += base + stall;
                self.resident_s += base;
                self.late += late;
            }
            None => self.untimed = true,
        }
    }

    fn merge(&mut self, o: &PhaseTotals) {
        self.miss_tokens += o.miss_tokens;
        self.inserted += o.inserted;
        self.bytes += o.bytes;
        self.passes += o.passes;
        self.time_s += o.time_s;
        self.resident_s += o.resident_s;
        self.late += o.late;
        self.untimed |= o.untimed;
    }

    /// The phase's times, when every pass has one.
    fn stalls(&self) -> Option<Stalls> {
        (!self.untimed && self.passes > 0).then_some(Stalls {
            time_s: self.time_s,
            resident_s: self.resident_s,
            passes: self.passes,
            late_prefetches: self.late,
        })
    }
}

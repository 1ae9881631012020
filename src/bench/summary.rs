//! One sweep point's figures from its repetitions: TTFT, TPOT, ITL percentiles, throughput,
//! S-MBU / S-MFU / MBU / MFU against spec peaks and measured ceilings (the exact formulas of
//! [`crate::metrics`], per repetition, then median / std / 95% interval), activated experts per
//! layer beside the uniform expectation, and where the time went.

use super::run::Repetition;
use crate::accounting::metrics::{exact_metrics, LayerActivation};
use crate::accounting::money::PointInput;
use crate::accounting::stats::{percentile, Summary};
use crate::accounting::Accountant;
use crate::error::Result;
use crate::machine::energy::MeasuredPower;
use crate::machine::hardware::Peaks;
use crate::machine::targets::Ceiling;
use crate::records::PassRecord;
use crate::records::{LayerTiming, Phase};
use serde::{Deserialize, Serialize};

/// A point of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointSpec {
    /// Sequences per batch.
    pub batch: usize,
    /// Prompt tokens per sequence.
    pub prompt_len: usize,
}

impl PointSpec {
    /// `b{batch}-p{prompt_len}`: the point's file names.
    pub fn id(&self) -> String {
        format!("b{}-p{}", self.batch, self.prompt_len)
    }
}

/// Utilisation of one phase over the repetitions (fractions). `spec_*` use the hardware
/// table's peaks (absent without a matched device); `measured_*` use this machine's measured
/// bandwidth and matmul throughput.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Utilisation {
    /// S-MBU against the spec bandwidth.
    pub spec_s_mbu: Option<Summary>,
    /// S-MFU against the spec FLOPS.
    pub spec_s_mfu: Option<Summary>,
    /// MBU (dense view) against the spec bandwidth.
    pub spec_mbu: Option<Summary>,
    /// MFU (dense view) against the spec FLOPS.
    pub spec_mfu: Option<Summary>,
    /// S-MBU against the measured bandwidth.
    pub measured_s_mbu: Option<Summary>,
    /// S-MFU against the measured matmul throughput.
    pub measured_s_mfu: Option<Summary>,
    /// MBU against the measured bandwidth.
    pub measured_mbu: Option<Summary>,
    /// MFU against the measured matmul throughput.
    pub measured_mfu: Option<Summary>,
    /// Bytes moved per second (weights of activated experts + KV), per repetition.
    pub bytes_per_s: Option<Summary>,
    /// FLOP per second, per repetition.
    pub flops_per_s: Option<Summary>,
}

/// Fractions of a phase's time per region (they sum to 1).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TimeShare {
    /// Attention.
    pub attention: f64,
    /// Router.
    pub router: f64,
    /// Routed experts (and dense FFNs).
    pub experts: f64,
    /// Shared experts.
    pub shared: f64,
    /// Everything else: norms, residuals, embedding, LM head.
    pub rest: f64,
}

/// Figures of one phase of a point.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PhaseSummary {
    /// Passes per repetition.
    pub passes: usize,
    /// Tokens per second per repetition.
    pub tokens_per_s: Option<Summary>,
    /// Utilisation.
    pub utilisation: Utilisation,
    /// Activated experts per MoE layer (all repetitions) and the uniform expectation.
    pub experts: Vec<LayerActivation>,
    /// Mean activated experts over MoE layers.
    pub mean_activated_experts: Option<f64>,
    /// The uniform-routing expectation of the same.
    pub uniform_expected_experts: Option<f64>,
    /// Where the time went.
    pub time_share: Option<TimeShare>,
    /// Per layer, mean seconds per pass.
    pub layer_times: Vec<LayerTiming>,
    /// Probed over unprobed latency (no-probe mode only).
    pub probe_overhead: Option<f64>,
}

/// One point's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointSummary {
    /// The point.
    pub point: PointSpec,
    /// Generated tokens per sequence.
    pub gen_len: usize,
    /// Timed repetitions.
    pub repetitions: usize,
    /// Time to first token (the prefill pass), seconds.
    pub ttft_s: Option<Summary>,
    /// Time per output token (mean decode pass), seconds.
    pub tpot_s: Option<Summary>,
    /// Inter-token latency percentiles over every decode pass: p50, p90, p99, seconds.
    pub itl_s: Option<[f64; 3]>,
    /// Prefill figures.
    pub prefill: PhaseSummary,
    /// Decode figures.
    pub decode: PhaseSummary,
    /// Per sequence, the indices of the source texts its prompt was made of, in order (the
    /// source and tokenisation are in the run settings; empty for random ids).
    #[serde(default)]
    pub prompt_items: Vec<Vec<usize>>,
    /// Mean power over the timed repetitions, where the machine exposes counters (RAPL, NVML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<MeasuredPower>,
}

/// The records of a repetition with the latency each pass counts with.
pub fn timed_records(rep: &Repetition) -> Vec<PassRecord> {
    rep.records
        .iter()
        .zip(rep.latencies())
        .map(|(r, l)| {
            let mut p = r.pass.clone();
            p.latency_s = l;
            p
        })
        .collect()
}

/// Summarises a point.
pub fn summarise_point(
    acct: &Accountant,
    point: PointSpec,
    gen_len: usize,
    reps: &[Repetition],
    ceiling: Ceiling,
) -> Result<PointSummary> {
    let unit = Peaks {
        bandwidth_bytes_per_s: 1.0,
        flops_per_s: 1.0,
    };
    let mut ttft = Vec::new();
    let mut tpot = Vec::new();
    let mut itl = Vec::new();
    let mut phases = [PhaseAcc::default(), PhaseAcc::default()];
    let mut all = Vec::new();
    for rep in reps {
        let recs = timed_records(rep);
        let (pre, dec) = exact_metrics(acct, &recs, unit, "bench repetition")?;
        for (acc, m) in phases.iter_mut().zip([pre, dec]) {
            if let Some(m) = m {
                acc.passes = m.passes;
                acc.tokens_per_s.push(m.tokens_per_s);
                acc.bytes_per_s.push(m.s_mbu);
                acc.flops_per_s.push(m.s_mfu);
                acc.dense_bytes_per_s.push(m.mbu);
                acc.dense_flops_per_s.push(m.mfu);
            }
        }
        for r in &recs {
            match r.phase {
                Phase::Prefill => ttft.push(r.latency_s),
                Phase::Decode => itl.push(r.latency_s),
            }
        }
        let dec: Vec<f64> = recs
            .iter()
            .filter(|r| r.phase == Phase::Decode)
            .map(|r| r.latency_s)
            .collect();
        if !dec.is_empty() {
            tpot.push(dec.iter().sum::<f64>() / dec.len() as f64);
        }
        for (acc, phase) in phases.iter_mut().zip([Phase::Prefill, Phase::Decode]) {
            acc.add_times(rep, phase);
        }
        all.extend(recs);
    }
    let (pre, dec) = exact_metrics(acct, &all, unit, "bench point")?;
    let [pa, da] = phases;
    let prefill = pa.finish(pre.map(|m| m.per_layer), ceiling);
    let decode = da.finish(dec.map(|m| m.per_layer), ceiling);
    Ok(PointSummary {
        point,
        gen_len,
        repetitions: reps.len(),
        ttft_s: Summary::of(&ttft),
        tpot_s: Summary::of(&tpot),
        itl_s: match (
            percentile(&itl, 50.0),
            percentile(&itl, 90.0),
            percentile(&itl, 99.0),
        ) {
            (Some(a), Some(b), Some(c)) => Some([a, b, c]),
            _ => None,
        },
        prefill,
        decode,
        prompt_items: Vec::new(),
        power: None,
    })
}

/// What pricing needs of a point: median throughputs, the seconds of its timed work (the
/// measured window, else repetitions × (TTFT + (gen − 1) × TPOT) from the medians) and its power.
pub fn cost_input(s: &PointSummary) -> PointInput {
    let ttft = s.ttft_s.map_or(0.0, |x| x.median);
    let tpot = s.tpot_s.map_or(0.0, |x| x.median);
    PointInput {
        point: s.point.id(),
        prefill_tokens_per_s: s.prefill.tokens_per_s.map(|x| x.median),
        decode_tokens_per_s: s.decode.tokens_per_s.map(|x| x.median),
        seconds: s.power.map_or(
            s.repetitions as f64 * (ttft + s.gen_len.saturating_sub(1) as f64 * tpot),
            |p| p.window_s,
        ),
        power: s.power,
    }
}

#[derive(Default)]
struct PhaseAcc {
    passes: usize,
    tokens_per_s: Vec<f64>,
    bytes_per_s: Vec<f64>,
    flops_per_s: Vec<f64>,
    dense_bytes_per_s: Vec<f64>,
    dense_flops_per_s: Vec<f64>,
    probed_s: f64,
    unprobed_s: f64,
    region: TimeShare,
    layers: Vec<LayerTiming>,
    probed_passes: usize,
}

impl PhaseAcc {
    fn add_times(&mut self, rep: &Repetition, phase: Phase) {
        let lat = rep.latencies();
        for (r, l) in rep.records.iter().zip(lat) {
            if r.pass.phase != phase {
                continue;
            }
            self.probed_s += r.pass.latency_s;
            self.unprobed_s += l;
            self.probed_passes += 1;
            let t = &r.timing;
            if self.layers.len() < t.layers.len() {
                self.layers.resize(t.layers.len(), LayerTiming::default());
            }
            for (acc, lt) in self.layers.iter_mut().zip(&t.layers) {
                acc.layer = lt.layer;
                acc.attention_s += lt.attention_s;
                acc.router_s += lt.router_s;
                acc.experts_s += lt.experts_s;
                acc.shared_s += lt.shared_s;
                acc.other_s += lt.other_s;
                self.region.attention += lt.attention_s;
                self.region.router += lt.router_s;
                self.region.experts += lt.experts_s;
                self.region.shared += lt.shared_s;
            }
        }
        if rep.unprobed_latency_s.is_none() {
            self.unprobed_s = 0.0;
        }
    }

    fn finish(mut self, experts: Option<Vec<LayerActivation>>, ceiling: Ceiling) -> PhaseSummary {
        let frac = |v: &[f64], peak: Option<f64>| -> Option<Summary> {
            let p = peak?;
            Summary::of(&v.iter().map(|x| x / p).collect::<Vec<_>>())
        };
        let bw = |c: Option<Peaks>| c.map(|p| p.bandwidth_bytes_per_s);
        let fl = |c: Option<Peaks>| c.map(|p| p.flops_per_s);
        let utilisation = Utilisation {
            spec_s_mbu: frac(&self.bytes_per_s, bw(ceiling.spec)),
            spec_s_mfu: frac(&self.flops_per_s, fl(ceiling.spec)),
            spec_mbu: frac(&self.dense_bytes_per_s, bw(ceiling.spec)),
            spec_mfu: frac(&self.dense_flops_per_s, fl(ceiling.spec)),
            measured_s_mbu: frac(&self.bytes_per_s, bw(ceiling.measured)),
            measured_s_mfu: frac(&self.flops_per_s, fl(ceiling.measured)),
            measured_mbu: frac(&self.dense_bytes_per_s, bw(ceiling.measured)),
            measured_mfu: frac(&self.dense_flops_per_s, fl(ceiling.measured)),
            bytes_per_s: Summary::of(&self.bytes_per_s),
            flops_per_s: Summary::of(&self.flops_per_s),
        };
        let n = self.probed_passes.max(1) as f64;
        for l in &mut self.layers {
            l.attention_s /= n;
            l.router_s /= n;
            l.experts_s /= n;
            l.shared_s /= n;
            l.other_s /= n;
        }
        let time_share = (self.probed_s > 0.0 && !self.layers.is_empty()).then(|| {
            let t = self.probed_s;
            let r = &self.region;
            TimeShare {
                attention: r.attention / t,
                router: r.router / t,
                experts: r.experts / t,
                shared: r.shared / t,
                rest: (1.0 - (r.attention + r.router + r.experts + r.shared) / t).max(0.0),
            }
        });
        let experts = experts.unwrap_or_default();
        let moe = experts.len() as f64;
        PhaseSummary {
            passes: self.passes,
            tokens_per_s: Summary::of(&self.tokens_per_s),
            utilisation,
            mean_activated_experts: (moe > 0.0)
                .then(|| experts.iter().map(|e| e.mean).sum::<f64>() / moe),
            uniform_expected_experts: (moe > 0.0)
                .then(|| experts.iter().map(|e| e.uniform).sum::<f64>() / moe),
            experts,
            time_share,
            layer_times: self.layers,
            probe_overhead: (self.unprobed_s > 0.0).then(|| self.probed_s / self.unprobed_s),
        }
    }
}

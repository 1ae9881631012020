//! Utilisation from per-pass records: S-MBU, S-MFU, MBU and MFU per phase, time-weighted over the
//! passes (`docs/metrics.md` §3), against a device's peaks. The published code's arithmetic lives
//! in [`crate::compat`]; both produce a [`MetricsReport`].

use crate::accounting::uniform_expected_experts;
use crate::accounting::Accountant;
use crate::error::{Error, Result};
use crate::machine::hardware::Peaks;
use crate::model::descriptor::ModelDesc;
use crate::records::Phase;
use crate::records::{activated_per_layer, LayerExperts, PassRecord};
use serde::Serialize;

/// Activated experts of one MoE layer over the passes of a phase.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LayerActivation {
    /// Checkpoint layer index.
    pub layer: usize,
    /// Mean `|U_{p,l}|`.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Mean uniform-routing expectation for the same passes.
    pub uniform: f64,
}

/// Metrics of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PhaseMetrics {
    /// Passes aggregated.
    pub passes: usize,
    /// New tokens processed (generated tokens for decode, prompt tokens for prefill).
    pub tokens: f64,
    /// Sum of pass latencies, seconds.
    pub total_time_s: f64,
    /// Mean pass latency, seconds.
    pub mean_latency_s: f64,
    /// Tokens per second.
    pub tokens_per_s: f64,
    /// Sparsity-aware memory-bandwidth utilisation (fraction).
    pub s_mbu: f64,
    /// Sparsity-aware FLOPS utilisation (fraction).
    pub s_mfu: f64,
    /// Dense-view MBU: every routed expert counted as read (fraction).
    pub mbu: f64,
    /// Dense-view MFU: every expert counted as computed (fraction).
    pub mfu: f64,
    /// Weight bytes read over all passes (exact formula only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weight_bytes: Option<f64>,
    /// KV-cache bytes over all passes (exact formula only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kv_bytes: Option<f64>,
    /// FLOPs over all passes (exact formula only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flops: Option<f64>,
    /// Mean activated experts per MoE layer over passes and layers.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mean_activated_experts: Option<f64>,
    /// Mean uniform-routing expectation for the same passes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uniform_expected_experts: Option<f64>,
    /// Per MoE layer (exact formula with native records only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_layer: Vec<LayerActivation>,
}

/// A full metrics report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsReport {
    /// `exact` or `moecap-compat`.
    pub formula: String,
    /// Model display name.
    pub model: String,
    /// Hardware name.
    pub hardware: String,
    /// Devices holding weights.
    pub devices: u32,
    /// Weight dtype.
    pub dtype: String,
    /// KV-cache dtype.
    pub kv_dtype: String,
    /// KV cache kind (`gqa`, `mla_latent`, `mla_decompressed`).
    pub kv_cache: String,
    /// Peaks used.
    pub peaks: Peaks,
    /// Prefill metrics, if any prefill pass.
    pub prefill: Option<PhaseMetrics>,
    /// Decode metrics, if any decode pass.
    pub decode: Option<PhaseMetrics>,
}

/// Running sums of one phase.
#[derive(Default)]
struct Acc {
    passes: usize,
    tokens: f64,
    time: f64,
    weight: f64,
    dense_weight: f64,
    kv: f64,
    flops: f64,
    dense_flops: f64,
    act_sum: Vec<f64>,
    act_min: Vec<f64>,
    act_max: Vec<f64>,
    uniform_sum: Vec<f64>,
}

/// Activated experts of one phase of a run, averaged over its passes and MoE layers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseRouting {
    /// Mean distinct experts per MoE layer and pass.
    pub mean_activated_experts: f64,
    /// Passes of the phase.
    pub passes: usize,
    /// `prefill` or `decode`.
    pub phase: &'static str,
    /// The uniform-routing expectation for the same passes.
    pub uniform_expected_experts: f64,
}

/// Mean distinct experts per MoE layer per phase, beside the uniform-routing expectation, over
/// the passes of `records` that name their experts.
pub fn routing_summary(desc: &ModelDesc, records: &[PassRecord]) -> Vec<PhaseRouting> {
    let mut out = Vec::new();
    for phase in [Phase::Prefill, Phase::Decode] {
        let mut passes = 0usize;
        let mut act = 0.0;
        let mut uni = 0.0;
        let mut n = 0.0;
        for r in records.iter().filter(|r| r.phase == phase) {
            passes += 1;
            let tokens = r.total_new_tokens();
            for (l, m) in desc.moe_layers() {
                if let Some(LayerExperts::Ids(ids)) = r.experts.get(&l.index.to_string()) {
                    act += ids.len() as f64;
                    uni += uniform_expected_experts(m.num_experts, m.top_k, tokens);
                    n += 1.0;
                }
            }
        }
        if passes > 0 && n > 0.0 {
            out.push(PhaseRouting {
                mean_activated_experts: act / n,
                passes,
                phase: phase.name(),
                uniform_expected_experts: uni / n,
            });
        }
    }
    out
}

/// Aggregates native records with the exact formulas. `file` names the records in errors.
pub fn exact_metrics(
    acct: &Accountant,
    records: &[PassRecord],
    peaks: Peaks,
    file: &str,
) -> Result<(Option<PhaseMetrics>, Option<PhaseMetrics>)> {
    let layers = acct.desc.num_layers();
    let mut prefill = Acc::default();
    let mut decode = Acc::default();
    for (i, rec) in records.iter().enumerate() {
        let activated = activated_per_layer(rec, acct.desc).map_err(|msg| Error::Record {
            file: file.to_string(),
            line: i + 1,
            msg,
        })?;
        let cost = acct.pass_cost(&rec.seqs(), &activated, rec.logits_positions());
        let tokens = rec.total_new_tokens();
        let uniform = acct.expected_activated(tokens);
        let acc = match rec.phase {
            Phase::Prefill => &mut prefill,
            Phase::Decode => &mut decode,
        };
        if acc.act_sum.is_empty() {
            acc.act_sum = vec![0.0; layers];
            acc.act_min = vec![f64::INFINITY; layers];
            acc.act_max = vec![0.0; layers];
            acc.uniform_sum = vec![0.0; layers];
        }
        acc.passes += 1;
        acc.tokens += tokens as f64;
        acc.time += rec.latency_s;
        acc.weight += cost.weight_bytes;
        acc.dense_weight += cost.dense_weight_bytes;
        acc.kv += cost.kv_bytes;
        acc.flops += cost.flops;
        acc.dense_flops += cost.dense_flops;
        for l in 0..layers {
            acc.act_sum[l] += activated[l];
            acc.act_min[l] = acc.act_min[l].min(activated[l]);
            acc.act_max[l] = acc.act_max[l].max(activated[l]);
            acc.uniform_sum[l] += uniform[l];
        }
    }
    let finish = |acc: Acc| -> Option<PhaseMetrics> {
        if acc.passes == 0 {
            return None;
        }
        let n = acc.passes as f64;
        let per_layer: Vec<LayerActivation> = acct
            .desc
            .moe_layers()
            .map(|(l, _)| LayerActivation {
                layer: l.index,
                mean: acc.act_sum[l.index] / n,
                min: acc.act_min[l.index],
                max: acc.act_max[l.index],
                uniform: acc.uniform_sum[l.index] / n,
            })
            .collect();
        let moe_n = per_layer.len() as f64;
        let (mean_act, mean_uni) = if per_layer.is_empty() {
            (None, None)
        } else {
            (
                Some(per_layer.iter().map(|p| p.mean).sum::<f64>() / moe_n),
                Some(per_layer.iter().map(|p| p.uniform).sum::<f64>() / moe_n),
            )
        };
        Some(PhaseMetrics {
            passes: acc.passes,
            tokens: acc.tokens,
            total_time_s: acc.time,
            mean_latency_s: acc.time / n,
            tokens_per_s: acc.tokens / acc.time,
            s_mbu: (acc.weight + acc.kv) / acc.time / peaks.bandwidth_bytes_per_s,
            s_mfu: acc.flops / acc.time / peaks.flops_per_s,
            mbu: (acc.dense_weight + acc.kv) / acc.time / peaks.bandwidth_bytes_per_s,
            mfu: acc.dense_flops / acc.time / peaks.flops_per_s,
            weight_bytes: Some(acc.weight),
            kv_bytes: Some(acc.kv),
            flops: Some(acc.flops),
            mean_activated_experts: mean_act,
            uniform_expected_experts: mean_uni,
            per_layer,
        })
    };
    Ok((finish(prefill), finish(decode)))
}

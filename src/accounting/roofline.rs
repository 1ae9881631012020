//! Roofline bounds for a model on a device: per (batch, context) point the bytes and FLOPs of a
//! decode step (with the uniform-routing expected experts) and of the prefill, the lower bounds
//! on TPOT and TTFT they imply, the bandwidth a TPOT target needs, and the memory footprint.

use crate::accounting::Accountant;
use crate::machine::hardware::Peaks;
use crate::records::SeqSlice;
use serde::Serialize;

/// One point of the roofline table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RooflinePoint {
    /// Sequences decoded together.
    pub batch: u64,
    /// Tokens of context per sequence (the prompt length for prefill; the cache for decode).
    pub context: u64,
    /// Expected activated experts per MoE layer in one decode step (uniform routing).
    pub decode_expected_experts: f64,
    /// Bytes of one decode step with the expected experts (weights + KV).
    pub decode_bytes: f64,
    /// Bytes of one decode step if every expert were read.
    pub decode_dense_bytes: f64,
    /// FLOPs of one decode step.
    pub decode_flops: f64,
    /// Lower bound on the decode step time: max(bytes / bandwidth, FLOPs / peak).
    pub tpot_lower_bound_s: f64,
    /// What bounds the step: `memory` or `compute`.
    pub decode_bound: &'static str,
    /// Upper bound on generated tokens per second (batch / TPOT bound).
    pub decode_tokens_per_s_upper: f64,
    /// Bytes of the prefill of the whole batch (weights with expected experts + KV writes).
    pub prefill_bytes: f64,
    /// FLOPs of that prefill.
    pub prefill_flops: f64,
    /// Lower bound on TTFT when the batch is prefilled together.
    pub ttft_lower_bound_s: f64,
    /// What bounds the prefill.
    pub prefill_bound: &'static str,
    /// Bandwidth needed to meet the TPOT target (bytes/s), if a target was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth_for_slo_bytes_per_s: Option<f64>,
    /// Whether the target can be met at the peaks at all (neither bound above it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_feasible: Option<bool>,
    /// Weights plus the KV cache of `batch × context` tokens.
    pub memory_footprint_bytes: f64,
    /// Whether that fits the devices' memory (unknown for devices without a memory figure).
    pub fits: Option<bool>,
}

fn bound(bytes_t: f64, flops_t: f64) -> (f64, &'static str) {
    if bytes_t >= flops_t {
        (bytes_t, "memory")
    } else {
        (flops_t, "compute")
    }
}

/// Computes the roofline table over every (batch, context) pair.
pub fn roofline(
    acct: &Accountant,
    peaks: Peaks,
    batches: &[u64],
    contexts: &[u64],
    tpot_slo_s: Option<f64>,
    memory_bytes: Option<f64>,
) -> Vec<RooflinePoint> {
    let moe_layers = acct.desc.num_moe_layers().max(1) as f64;
    let mut out = Vec::new();
    for &b in batches {
        for &c in contexts {
            let decode_seqs = vec![SeqSlice { cached: c, new: 1 }; b as usize];
            let expected = acct.expected_activated(b);
            let dec = acct.pass_cost(&decode_seqs, &expected, b);
            let decode_bytes = dec.weight_bytes + dec.kv_bytes;
            let (tpot, decode_bound) = bound(
                decode_bytes / peaks.bandwidth_bytes_per_s,
                dec.flops / peaks.flops_per_s,
            );
            let prefill_seqs = vec![SeqSlice { cached: 0, new: c }; b as usize];
            let pre = acct.pass_cost(&prefill_seqs, &acct.expected_activated(b * c), b);
            let prefill_bytes = pre.weight_bytes + pre.kv_bytes;
            let (ttft, prefill_bound) = bound(
                prefill_bytes / peaks.bandwidth_bytes_per_s,
                pre.flops / peaks.flops_per_s,
            );
            let footprint =
                acct.weight_footprint_bytes() + (b * c) as f64 * acct.kv_bytes_per_token();
            out.push(RooflinePoint {
                batch: b,
                context: c,
                decode_expected_experts: expected.iter().sum::<f64>() / moe_layers,
                decode_bytes,
                decode_dense_bytes: dec.dense_weight_bytes + dec.kv_bytes,
                decode_flops: dec.flops,
                tpot_lower_bound_s: tpot,
                decode_bound,
                decode_tokens_per_s_upper: b as f64 / tpot,
                prefill_bytes,
                prefill_flops: pre.flops,
                ttft_lower_bound_s: ttft,
                prefill_bound,
                bandwidth_for_slo_bytes_per_s: tpot_slo_s.map(|s| decode_bytes / s),
                slo_feasible: tpot_slo_s.map(|s| tpot <= s),
                memory_footprint_bytes: footprint,
                fits: memory_bytes.map(|m| footprint <= m),
            });
        }
    }
    out
}

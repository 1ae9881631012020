//! The `moecap-compat` formula: the arithmetic of the published MoE-CAP code (`docs/metrics.md`
//! §5), kept apart from the exact formulas so that numbers can be compared with its leaderboard.
//! Per pass it needs only the batch size, the summed context, the latency and the activated-expert
//! mean; it averages per-pass ratios instead of weighting by time.

use crate::accounting::kv_elements_per_token;
use crate::accounting::metrics::PhaseMetrics;
use crate::error::{Error, Result};
use crate::machine::hardware::Hardware;
use crate::machine::hardware::Peaks;
use crate::model::descriptor::{Ffn, ModelDesc};
use crate::model::dtype::DType;
use crate::model::plan::{tensor_plan, Component};
use crate::records::KvCacheKind;
use crate::records::Phase;
use crate::records::{activated_per_layer, HarnessRecord, PassRecord};
use serde::Serialize;

/// The model sizes the published code uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CompatModel {
    /// All layers `L`.
    pub layers: f64,
    /// MoE layers `L_moe`.
    pub moe_layers: f64,
    /// Dense layers `L_dense`.
    pub dense_layers: f64,
    /// Attention parameters per layer `A` (no norms, no biases).
    pub attention: f64,
    /// One routed expert `X = 3·d·d_ff`.
    pub expert: f64,
    /// Routed experts per MoE layer (for the dense-view MBU/MFU).
    pub experts_per_layer: f64,
    /// Shared experts per MoE layer `S` (DeepSeek: always two; Qwen: the shared MLP, no gate).
    pub shared: f64,
    /// Dense FFN `D = 3·d·intermediate_size`.
    pub dense_ffn: f64,
    /// KV elements per token `kv_tok`.
    pub kv_per_token: f64,
    /// Attention-score elements per context token `Sc / N`.
    pub score_per_token: f64,
}

impl CompatModel {
    /// The sizes of a model as the published code computes them.
    pub fn new(desc: &ModelDesc) -> Self {
        let d = desc.hidden_size as f64;
        let l = desc.num_layers() as f64;
        let moe = desc.first_moe();
        let moe_layers = desc.num_moe_layers() as f64;
        let expert = moe.map_or(0.0, |m| 3.0 * d * m.expert_intermediate_size as f64);
        let shared = match moe {
            Some(m) if desc.family.is_deepseek() => {
                2.0 * 3.0 * d * m.expert_intermediate_size as f64
            }
            Some(m) => m
                .shared
                .as_ref()
                .map_or(0.0, |s| 3.0 * d * s.intermediate_size as f64),
            None => 0.0,
        };
        let dense_ffn = desc
            .layers
            .iter()
            .find_map(|l| match l.ffn {
                Ffn::Dense {
                    intermediate_size, ..
                } => Some(3.0 * d * intermediate_size as f64),
                Ffn::Moe(_) => None,
            })
            .unwrap_or(0.0);
        // the published code's `A`: the attention weight matrices (no biases, no norms)
        let attention = tensor_plan(desc)
            .iter()
            .filter(|t| t.layer == Some(0) && t.component == Component::Attention && t.is_matrix())
            .map(|t| t.elements() as f64)
            .sum();
        let kv_per_token = kv_elements_per_token(desc, KvCacheKind::default_for(desc)) as f64;
        let score_per_token = desc
            .layers
            .iter()
            .map(|l| {
                let a = &l.attention;
                (a.heads() * (a.qk_head_dim() + a.v_head_dim())) as f64
            })
            .sum();
        CompatModel {
            layers: l,
            moe_layers,
            dense_layers: l - moe_layers,
            attention,
            expert,
            experts_per_layer: moe.map_or(0.0, |m| m.num_experts as f64),
            shared,
            dense_ffn,
            kv_per_token,
            score_per_token,
        }
    }
}

/// One pass in the published code's terms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CompatPass {
    /// Prefill or decode.
    pub phase: Phase,
    /// Sequences in the batch `B`.
    pub batch_size: f64,
    /// Summed context `N` (`seq_lens_sum`).
    pub seq_lens_sum: f64,
    /// Pass latency `T`, seconds.
    pub latency_s: f64,
    /// Activated-expert mean over all layers `a`.
    pub activation: f64,
}

impl From<&HarnessRecord> for CompatPass {
    fn from(r: &HarnessRecord) -> Self {
        CompatPass {
            phase: r.phase,
            batch_size: r.batch_size,
            seq_lens_sum: r.seq_lens_sum,
            latency_s: r.latency_s,
            activation: r.expert_activation,
        }
    }
}

/// Converts a moecap record: `B` = sequences, `N` = Σ(cached + new), `a` = Σ_l |U_l| / L.
pub fn compat_pass(rec: &PassRecord, desc: &ModelDesc) -> std::result::Result<CompatPass, String> {
    let act = activated_per_layer(rec, desc)?;
    Ok(CompatPass {
        phase: rec.phase,
        batch_size: rec.new_tokens.len() as f64,
        seq_lens_sum: rec
            .cached_tokens
            .iter()
            .zip(&rec.new_tokens)
            .map(|(c, n)| (c + n) as f64)
            .sum(),
        latency_s: rec.latency_s,
        activation: act.iter().sum::<f64>() / desc.num_layers() as f64,
    })
}

/// The peaks the published code uses: its bandwidth, and its stored FLOPS halved.
pub fn compat_peaks(hw: &Hardware, dtype: DType, devices: u32) -> Result<Peaks> {
    let bw = hw.compat.bandwidth_gbs.ok_or_else(|| {
        Error::Unsupported(format!(
            "--formula moecap-compat: hardware `{}` is not in the published MoE-CAP table (its compat_* columns are empty)",
            hw.name
        ))
    })?;
    let f = hw.compat.tflops.get(&dtype).ok_or_else(|| {
        Error::Unsupported(format!(
            "--formula moecap-compat: the published MoE-CAP table has no {dtype} figure for `{}`",
            hw.name
        ))
    })?;
    let n = devices as f64;
    Ok(Peaks {
        bandwidth_bytes_per_s: n * bw * 1e9,
        flops_per_s: n * f * 1e12 / 2.0,
    })
}

/// Per-pass S-MBU and S-MFU, and the dense-view MBU and MFU (every routed expert), of one pass.
pub fn pass_utilisation(
    m: &CompatModel,
    p: &CompatPass,
    bytes_per_weight: f64,
    peaks: Peaks,
) -> [f64; 4] {
    let fixed = m.moe_layers * m.shared + m.dense_layers * m.dense_ffn + m.layers * m.attention;
    let kv = p.seq_lens_sum * m.kv_per_token;
    let bw = |experts_read: f64| {
        (m.moe_layers * experts_read * m.expert + fixed + kv) * bytes_per_weight
            / p.latency_s
            / peaks.bandwidth_bytes_per_s
    };
    let throughput = match p.phase {
        Phase::Decode => p.batch_size / p.latency_s,
        Phase::Prefill => p.seq_lens_sum / p.latency_s,
    };
    let score = p.seq_lens_sum * m.score_per_token;
    let fl = |experts_computed: f64| {
        2.0 * (m.moe_layers * experts_computed * m.expert + fixed + score) * throughput
            / peaks.flops_per_s
    };
    [
        bw(p.activation),
        fl(1.0),
        bw(m.experts_per_layer),
        fl(m.experts_per_layer),
    ]
}

/// Aggregates passes of one phase as the published code does: the unweighted mean of per-pass
/// ratios, throughputs and latencies.
pub fn compat_phase(
    m: &CompatModel,
    passes: &[CompatPass],
    bytes_per_weight: f64,
    peaks: Peaks,
) -> Option<PhaseMetrics> {
    if passes.is_empty() {
        return None;
    }
    let n = passes.len() as f64;
    let mut sums = [0.0f64; 4];
    let mut tp = 0.0;
    let mut lat = 0.0;
    let mut tokens = 0.0;
    let mut act = 0.0;
    for p in passes {
        let u = pass_utilisation(m, p, bytes_per_weight, peaks);
        for (s, v) in sums.iter_mut().zip(u) {
            *s += v;
        }
        let t = match p.phase {
            Phase::Decode => p.batch_size,
            Phase::Prefill => p.seq_lens_sum,
        };
        tokens += t;
        tp += t / p.latency_s;
        lat += p.latency_s;
        act += p.activation;
    }
    Some(PhaseMetrics {
        passes: passes.len(),
        tokens,
        total_time_s: lat,
        mean_latency_s: lat / n,
        tokens_per_s: tp / n,
        s_mbu: sums[0] / n,
        s_mfu: sums[1] / n,
        mbu: sums[2] / n,
        mfu: sums[3] / n,
        weight_bytes: None,
        kv_bytes: None,
        flops: None,
        mean_activated_experts: Some(act / n),
        uniform_expected_experts: None,
        per_layer: Vec::new(),
    })
}

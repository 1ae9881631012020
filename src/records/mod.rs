//! The one per-pass record schema of moecap, at the bottom of the data flow: what a forward
//! pass was (phase, sequences, KV cache kind), which experts it activated per MoE layer, each
//! token's routing and how long each region took. The engine writes these records; metrics,
//! bench, eval and offloading read them. [`read`] parses record files (moecap's own and the
//! published MoE-CAP harness's); [`routing`] is the per-token routing trace of a bench run.
//! `docs/records.md` documents the formats.

pub mod read;
pub mod routing;

use crate::error::{Error, Result};
use crate::model::descriptor::{Attention, ModelDesc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub use read::{activated_per_layer, parse_records, read_records, HarnessRecord, Records};

/// Prefill (prompt tokens) or decode (one new token per running sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Prompt processing.
    Prefill,
    /// Token generation.
    Decode,
}

impl Phase {
    /// `prefill` or `decode`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
        }
    }
}

/// What the KV cache stores per token and layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvCacheKind {
    /// Per-head keys and values of GQA/MHA: `2·H_kv·d_h`.
    Gqa,
    /// MLA's compressed latent plus the shared rope key: `r_kv + d_rope`.
    MlaLatent,
    /// MLA with decompressed per-head keys and values: `H·(d_nope + d_rope + d_v)`.
    MlaDecompressed,
}

impl KvCacheKind {
    /// The natural cache of a model: latent for MLA, per-head K/V otherwise.
    pub fn default_for(desc: &ModelDesc) -> Self {
        match desc.attention() {
            Attention::Mla { .. } => KvCacheKind::MlaLatent,
            Attention::Gqa { .. } => KvCacheKind::Gqa,
        }
    }

    /// Its name in reports (`gqa`, `mla_latent`, `mla_decompressed`).
    pub fn name(self) -> &'static str {
        match self {
            KvCacheKind::Gqa => "gqa",
            KvCacheKind::MlaLatent => "mla_latent",
            KvCacheKind::MlaDecompressed => "mla_decompressed",
        }
    }

    /// Parses `--kv-cache latent|decompressed` for a model (`gqa` models accept only their own).
    pub fn parse_for(desc: &ModelDesc, s: &str) -> Result<Self> {
        let mla = matches!(desc.attention(), Attention::Mla { .. });
        match (s, mla) {
            ("latent", true) => Ok(KvCacheKind::MlaLatent),
            ("decompressed", true) => Ok(KvCacheKind::MlaDecompressed),
            ("gqa" | "decompressed", false) => Ok(KvCacheKind::Gqa),
            ("latent", false) => Err(Error::Invalid(
                "a latent cache needs latent attention (MLA), which the model has not".into(),
            )),
            _ => Err(Error::Invalid(format!(
                "unknown cache `{s}`; expected latent or decompressed"
            ))),
        }
    }
}

/// One sequence's part in a pass: tokens already cached before it, and tokens it processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqSlice {
    /// Tokens in the sequence's KV cache before the pass.
    pub cached: u64,
    /// Tokens processed by the pass (prompt tokens, or 1 for a decode step).
    pub new: u64,
}

impl SeqSlice {
    /// `Σ_i c_i` over the new tokens: each attends to the cache plus itself and earlier new tokens
    /// (causal): `new·cached + new·(new+1)/2`.
    pub fn attended_keys(&self) -> u64 {
        self.new * self.cached + self.new * (self.new + 1) / 2
    }
}

/// The activated experts of one MoE layer in one pass: the ids (distinct or not; duplicates are
/// counted once) or just their number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LayerExperts {
    /// Expert ids chosen by at least one token.
    Ids(Vec<u32>),
    /// Number of distinct experts chosen.
    Count(u32),
}

/// One forward pass, as moecap writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassRecord {
    /// Pass number within the run (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<u64>,
    /// Prefill or decode.
    pub phase: Phase,
    /// Device-synchronised wall time of the pass, seconds.
    pub latency_s: f64,
    /// Per sequence: tokens already in its KV cache before the pass.
    pub cached_tokens: Vec<u64>,
    /// Per sequence: tokens processed by the pass.
    pub new_tokens: Vec<u64>,
    /// Positions whose logits were computed (default: one per sequence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logits_positions: Option<u64>,
    /// Per MoE layer (checkpoint layer index as a string key): the activated experts.
    #[serde(default)]
    pub experts: BTreeMap<String, LayerExperts>,
    /// The KV cache the engine kept (`gqa`, `mla_latent`, `mla_decompressed`); `metrics` takes
    /// it as the default of `--kv-cache`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache: Option<KvCacheKind>,
}

impl PassRecord {
    /// The sequences of the pass.
    pub fn seqs(&self) -> Vec<SeqSlice> {
        self.cached_tokens
            .iter()
            .zip(&self.new_tokens)
            .map(|(&cached, &new)| SeqSlice { cached, new })
            .collect()
    }

    /// New tokens of the pass (`n_p`).
    pub fn total_new_tokens(&self) -> u64 {
        self.new_tokens.iter().sum()
    }

    /// Logits positions, defaulting to one per sequence.
    pub fn logits_positions(&self) -> u64 {
        self.logits_positions
            .unwrap_or(self.new_tokens.len() as u64)
    }
}

/// Each token's routing in one MoE layer (flattened pass order).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerRouting {
    /// Top-k expert ids per token, best first.
    pub ids: Vec<Vec<u32>>,
    /// Their combine weights.
    pub weights: Vec<Vec<f32>>,
}

/// Time spent in each region of one layer, seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LayerTiming {
    /// Checkpoint layer index.
    pub layer: usize,
    /// Attention (projections, rope, scores, cache append).
    pub attention_s: f64,
    /// Router gate product and top-k selection.
    pub router_s: f64,
    /// Routed experts, including gathering tokens and scattering outputs (dense FFN for dense
    /// layers).
    pub experts_s: f64,
    /// Shared experts and their gate.
    pub shared_s: f64,
    /// Norms and residual additions.
    pub other_s: f64,
}

/// Timing of the non-layer regions of a pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct PassTiming {
    /// Embedding lookup and rope tables.
    pub embed_s: f64,
    /// Final norm and LM head.
    pub head_s: f64,
    /// Per layer.
    pub layers: Vec<LayerTiming>,
}

/// One pass as the engine writes it: the record of `docs/records.md` plus routing and timing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineRecord {
    /// The fields every consumer reads.
    #[serde(flatten)]
    pub pass: PassRecord,
    /// Per MoE layer (layer index as key): each token's top-k ids and weights.
    pub topk: BTreeMap<String, LayerRouting>,
    /// Region timings.
    pub timing: PassTiming,
}

/// Appends records as JSON lines, flushing each, so an interrupted run keeps what it measured.
pub fn append_records(path: &Path, records: &[EngineRecord]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    for r in records {
        let line = serde_json::to_string(r).map_err(|e| Error::Invalid(e.to_string()))?;
        writeln!(f, "{line}").map_err(|e| Error::io(path, e))?;
    }
    f.flush().map_err(|e| Error::io(path, e))
}

//! Bytes and FLOPs of one forward pass, exactly as `docs/metrics.md` §2 defines them: weights read
//! (with the routed experts actually activated), KV-cache traffic, and FLOPs (with `k` experts per
//! token), plus the dense counterparts used by MBU and MFU and the uniform-routing expectation.

pub use crate::model::descriptor::uniform_expected_experts;
use crate::model::descriptor::{Attention, Ffn, ModelDesc};
use crate::model::dtype::DType;
use crate::model::params::{model_params, LayerParams, ModelParams};
use crate::records::{KvCacheKind, SeqSlice};
use serde::Serialize;

/// KV-cache elements stored per token in one layer.
pub fn kv_elements_per_token_layer(att: &Attention, kind: KvCacheKind) -> u64 {
    match (*att, kind) {
        (
            Attention::Gqa {
                kv_heads, head_dim, ..
            },
            _,
        ) => 2 * (kv_heads * head_dim) as u64,
        (
            Attention::Mla {
                kv_lora_rank,
                qk_rope_head_dim,
                ..
            },
            KvCacheKind::MlaLatent | KvCacheKind::Gqa,
        ) => (kv_lora_rank + qk_rope_head_dim) as u64,
        (
            Attention::Mla {
                heads,
                qk_nope_head_dim,
                qk_rope_head_dim,
                v_head_dim,
                ..
            },
            KvCacheKind::MlaDecompressed,
        ) => (heads * (qk_nope_head_dim + qk_rope_head_dim + v_head_dim)) as u64,
    }
}

/// KV-cache elements stored per token over all layers (`kv_tok`).
pub fn kv_elements_per_token(desc: &ModelDesc, kind: KvCacheKind) -> u64 {
    desc.layers
        .iter()
        .map(|l| kv_elements_per_token_layer(&l.attention, kind))
        .sum()
}

/// Bytes and FLOPs of one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PassCost {
    /// Weight bytes read with the activated experts (`W_p`).
    pub weight_bytes: f64,
    /// Weight bytes read if every routed expert were activated (the dense view, for MBU).
    pub dense_weight_bytes: f64,
    /// KV-cache bytes read and written (`KV_p`).
    pub kv_bytes: f64,
    /// FLOPs with `k` experts per token (`F_p`).
    pub flops: f64,
    /// FLOPs with every expert computed for every token (for MFU).
    pub dense_flops: f64,
    /// Of `flops`, the attention score and value products.
    pub attention_flops: f64,
}

/// Byte sizes used by the accounting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Precision {
    /// Bytes per weight element `b_w`.
    pub weight: f64,
    /// Bytes per KV-cache element `b_kv`.
    pub kv: f64,
}

impl Precision {
    /// Weights and cache in the same format.
    pub fn uniform(dtype: DType) -> Self {
        Precision {
            weight: dtype.bytes(),
            kv: dtype.bytes(),
        }
    }
}

/// A model prepared for per-pass accounting (parameter counts computed once).
#[derive(Debug, Clone)]
pub struct Accountant<'a> {
    /// The model.
    pub desc: &'a ModelDesc,
    /// Its parameter counts.
    pub params: ModelParams,
    /// Byte sizes.
    pub precision: Precision,
    /// What the KV cache stores.
    pub kv_cache: KvCacheKind,
    /// KV elements per token over all layers (`kv_tok`).
    pub kv_elements_per_token: u64,
    /// Per layer: attention + router + norms (read by every pass).
    always_read: u64,
    /// Per-token FLOPs of the layers' projections with `k` experts, and with every expert.
    token_flops: f64,
    token_flops_dense: f64,
    /// `Σ_l 2·H·(d_qk + d_v)`: attention FLOPs per attended key.
    attention_flops_per_key: f64,
}

impl<'a> Accountant<'a> {
    /// Prepares a model.
    pub fn new(desc: &'a ModelDesc, precision: Precision, kv_cache: KvCacheKind) -> Self {
        let params = model_params(desc);
        let kv_elements_per_token = kv_elements_per_token(desc, kv_cache);
        let mut always_read = 0u64;
        let mut token_flops = 0f64;
        let mut token_flops_dense = 0f64;
        let mut attention_flops_per_key = 0f64;
        for (p, l) in params.layers.iter().zip(&desc.layers) {
            always_read += p.attention + p.router + p.norms + p.shared_experts + p.dense_ffn;
            let base = 2.0 * (p.attention + p.router + p.shared_experts + p.dense_ffn) as f64;
            let (k, e) = l
                .moe()
                .map_or((0.0, 0.0), |m| (m.top_k as f64, m.num_experts as f64));
            token_flops += base + 2.0 * k * p.expert as f64;
            token_flops_dense += base + 2.0 * e * p.expert as f64;
            let a = &l.attention;
            attention_flops_per_key +=
                2.0 * (a.heads() * (a.qk_head_dim() + a.v_head_dim())) as f64;
        }
        Accountant {
            desc,
            params,
            precision,
            kv_cache,
            kv_elements_per_token,
            always_read,
            token_flops,
            token_flops_dense,
            attention_flops_per_key,
        }
    }

    /// Parameters of layer `l`.
    pub fn layer(&self, l: usize) -> &LayerParams {
        &self.params.layers[l]
    }

    /// Bytes and FLOPs of one pass. `activated[l]` is `|U_{p,l}|` for each layer (ignored for
    /// dense layers; may be fractional when it is an expectation); `logits_positions` is the number
    /// of positions whose logits are computed.
    pub fn pass_cost(
        &self,
        seqs: &[SeqSlice],
        activated: &[f64],
        logits_positions: u64,
    ) -> PassCost {
        let d = self.desc.hidden_size as f64;
        let v = self.desc.vocab_size as f64;
        let new_tokens: u64 = seqs.iter().map(|s| s.new).sum();
        let cached: u64 = seqs.iter().map(|s| s.cached).sum();
        let keys: u64 = seqs.iter().map(SeqSlice::attended_keys).sum();

        // Weights: every layer's attention/router/norms/shared/dense, the activated experts, the
        // LM head (read whole even when tied), the embedding rows of the new tokens, final norm.
        let fixed = self.always_read as f64 + v * d + new_tokens as f64 * d + d;
        let mut experts = 0f64;
        let mut experts_dense = 0f64;
        for (i, (p, l)) in self.params.layers.iter().zip(&self.desc.layers).enumerate() {
            if let Ffn::Moe(m) = &l.ffn {
                let u = activated.get(i).copied().unwrap_or(0.0);
                experts += u * p.expert as f64;
                experts_dense += m.num_experts as f64 * p.expert as f64;
            }
        }
        let bw = self.precision.weight;
        let kv_bytes =
            (cached + new_tokens) as f64 * self.kv_elements_per_token as f64 * self.precision.kv;
        let attention_flops = self.attention_flops_per_key * keys as f64;
        let logits_flops = 2.0 * d * v * logits_positions as f64;
        PassCost {
            weight_bytes: (fixed + experts) * bw,
            dense_weight_bytes: (fixed + experts_dense) * bw,
            kv_bytes,
            flops: self.token_flops * new_tokens as f64 + attention_flops + logits_flops,
            dense_flops: self.token_flops_dense * new_tokens as f64
                + attention_flops
                + logits_flops,
            attention_flops,
        }
    }

    /// `|U|` expected per layer under uniform routing for a pass of `tokens` tokens.
    pub fn expected_activated(&self, tokens: u64) -> Vec<f64> {
        self.desc
            .layers
            .iter()
            .map(|l| {
                l.moe().map_or(0.0, |m| {
                    uniform_expected_experts(m.num_experts, m.top_k, tokens)
                })
            })
            .collect()
    }

    /// Bytes of all weights held in memory (tied embeddings once).
    pub fn weight_footprint_bytes(&self) -> f64 {
        self.params.total() as f64 * self.precision.weight
    }

    /// Parameters of one routed expert (the largest layer's; 0 for a dense model).
    pub fn expert_params(&self) -> u64 {
        self.params
            .layers
            .iter()
            .map(|l| l.expert)
            .max()
            .unwrap_or(0)
    }

    /// Bytes of every weight but the routed experts: what an offloaded model keeps on the device
    /// besides its expert cache.
    pub fn non_expert_bytes(&self) -> f64 {
        self.weight_footprint_bytes()
            - self.params.routed_expert_params() as f64 * self.precision.weight
    }

    /// Bytes of KV cache per token.
    pub fn kv_bytes_per_token(&self) -> f64 {
        self.kv_elements_per_token as f64 * self.precision.kv
    }
}

//! Exact parameter counts per component and per layer, equal to the element counts of the
//! checkpoint's tensors (the tensor check in [`crate::tensors`] verifies that against real files).

use crate::model::descriptor::{Attention, Ffn, Layer, ModelDesc, QkNorm};
use serde::Serialize;

/// Parameters of one decoder layer, by component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LayerParams {
    /// Attention: all projections, their biases, q/k norms and MLA's latent norms (`P_att,l`).
    pub attention: u64,
    /// Router gate matrix plus any score-correction bias (`P_rtr,l`); 0 for dense layers.
    pub router: u64,
    /// One routed expert (`P_exp,l`); 0 for dense layers.
    pub expert: u64,
    /// All routed experts of the layer (`E_l · P_exp,l`).
    pub routed_experts: u64,
    /// Shared experts, including Qwen's `d × 1` shared-expert gate (`P_shr,l`).
    pub shared_experts: u64,
    /// Dense FFN of a dense layer (`P_ffn,l`).
    pub dense_ffn: u64,
    /// The layer's two block norms.
    pub norms: u64,
}

impl LayerParams {
    /// Every parameter of the layer.
    pub fn total(&self) -> u64 {
        self.attention
            + self.router
            + self.routed_experts
            + self.shared_experts
            + self.dense_ffn
            + self.norms
    }

    /// Parameters a token uses in this layer: `k` routed experts, all else.
    pub fn active(&self, top_k: u64) -> u64 {
        self.total() - self.routed_experts + top_k * self.expert
    }
}

/// Parameters of a whole model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelParams {
    /// Per layer, in order.
    pub layers: Vec<LayerParams>,
    /// Embedding table `V·d`.
    pub embedding: u64,
    /// LM head `V·d` (0 when tied: the embedding is reused).
    pub lm_head: u64,
    /// Final norm.
    pub final_norm: u64,
}

/// Sums over the layers by component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ComponentTotals {
    /// Attention.
    pub attention: u64,
    /// Routers.
    pub router: u64,
    /// Routed experts.
    pub routed_experts: u64,
    /// Shared experts.
    pub shared_experts: u64,
    /// Dense FFNs.
    pub dense_ffn: u64,
    /// Norms (layer norms plus the final norm).
    pub norms: u64,
    /// Embedding.
    pub embedding: u64,
    /// LM head (0 when tied).
    pub lm_head: u64,
}

impl ModelParams {
    /// Every parameter of the checkpoint's main model (multi-token-prediction layers excluded).
    pub fn total(&self) -> u64 {
        self.layers.iter().map(LayerParams::total).sum::<u64>()
            + self.embedding
            + self.lm_head
            + self.final_norm
    }

    /// Parameters used per token: every layer's non-routed parameters, `k` routed experts per MoE
    /// layer, the embedding and the LM head (once when tied).
    pub fn active_per_token(&self, desc: &ModelDesc) -> u64 {
        self.layers
            .iter()
            .zip(&desc.layers)
            .map(|(p, l)| p.active(l.moe().map_or(0, |m| m.top_k as u64)))
            .sum::<u64>()
            + self.embedding
            + self.lm_head
            + self.final_norm
    }

    /// All routed-expert parameters.
    pub fn routed_expert_params(&self) -> u64 {
        self.layers.iter().map(|l| l.routed_experts).sum()
    }

    /// Sums by component.
    pub fn components(&self) -> ComponentTotals {
        let mut c = ComponentTotals {
            embedding: self.embedding,
            lm_head: self.lm_head,
            norms: self.final_norm,
            ..Default::default()
        };
        for l in &self.layers {
            c.attention += l.attention;
            c.router += l.router;
            c.routed_experts += l.routed_experts;
            c.shared_experts += l.shared_experts;
            c.dense_ffn += l.dense_ffn;
            c.norms += l.norms;
        }
        c
    }
}

/// Attention parameters of one layer (`P_att,l`).
pub fn attention_params(att: &Attention, d: u64) -> u64 {
    match *att {
        Attention::Gqa {
            heads,
            kv_heads,
            head_dim,
            qkv_bias,
            o_bias,
            qk_norm,
        } => {
            let q = (heads * head_dim) as u64;
            let kv = (kv_heads * head_dim) as u64;
            let mut p = d * q + 2 * d * kv + q * d;
            if qkv_bias {
                p += q + 2 * kv;
            }
            if o_bias {
                p += d;
            }
            p += match qk_norm {
                QkNorm::None => 0,
                QkNorm::PerHead => 2 * head_dim as u64,
                QkNorm::Full => q + kv,
            };
            p
        }
        Attention::Mla {
            heads,
            q_lora_rank,
            kv_lora_rank,
            qk_nope_head_dim,
            qk_rope_head_dim,
            v_head_dim,
            bias,
            ..
        } => {
            let h = heads as u64;
            let qk = (qk_nope_head_dim + qk_rope_head_dim) as u64;
            let r_kv = kv_lora_rank as u64;
            let rope = qk_rope_head_dim as u64;
            let v = v_head_dim as u64;
            let q = match q_lora_rank {
                Some(r) => {
                    let r = r as u64;
                    // q_a_proj, q_a_layernorm, q_b_proj
                    d * r + r + r * h * qk + if bias { r } else { 0 }
                }
                None => d * h * qk,
            };
            // kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj
            let kv_a = d * (r_kv + rope) + if bias { r_kv + rope } else { 0 };
            let kv_b = r_kv * h * (qk_nope_head_dim as u64 + v);
            let o = h * v * d + if bias { d } else { 0 };
            q + kv_a + r_kv + kv_b + o
        }
    }
}

/// Parameters of one layer.
pub fn layer_params(layer: &Layer, d: u64) -> LayerParams {
    let mut p = LayerParams {
        attention: attention_params(&layer.attention, d),
        norms: 2 * d,
        ..Default::default()
    };
    match &layer.ffn {
        Ffn::Dense {
            intermediate_size,
            bias,
        } => {
            let f = *intermediate_size as u64;
            p.dense_ffn = 3 * d * f + if *bias { 2 * f + d } else { 0 };
        }
        Ffn::Moe(m) => {
            let e = m.num_experts as u64;
            p.router = e * d + if m.router.correction_bias { e } else { 0 };
            p.expert = 3 * d * m.expert_intermediate_size as u64;
            p.routed_experts = e * p.expert;
            if let Some(s) = &m.shared {
                p.shared_experts = 3 * d * s.intermediate_size as u64 + if s.gate { d } else { 0 };
            }
        }
    }
    p
}

/// Parameters of the whole model.
pub fn model_params(desc: &ModelDesc) -> ModelParams {
    let d = desc.hidden_size as u64;
    let vd = desc.vocab_size as u64 * d;
    ModelParams {
        layers: desc.layers.iter().map(|l| layer_params(l, d)).collect(),
        embedding: vd,
        lm_head: if desc.tie_word_embeddings { 0 } else { vd },
        final_norm: d,
    }
}

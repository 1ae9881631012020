//! Exact parameter counts per component and per layer: the element counts of the checkpoint's
//! tensor plan ([`crate::model::plan`]), which the tensor check verifies against real files.

use crate::model::descriptor::ModelDesc;
use crate::model::plan::{tensor_plan, Component};
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

/// Parameters of the whole model: the elements of its [`tensor_plan`], summed per layer and
/// component.
pub fn model_params(desc: &ModelDesc) -> ModelParams {
    let mut p = ModelParams {
        layers: vec![LayerParams::default(); desc.num_layers()],
        embedding: 0,
        lm_head: 0,
        final_norm: 0,
    };
    for t in tensor_plan(desc) {
        let n = t.elements();
        let layer = t.layer.and_then(|l| p.layers.get_mut(l));
        match (t.component, layer) {
            (Component::Embedding, _) => p.embedding += n,
            (Component::FinalNorm, _) => p.final_norm += n,
            (Component::LmHead, _) => p.lm_head += n,
            (c, Some(l)) => match c {
                Component::LayerNorm => l.norms += n,
                Component::Attention => l.attention += n,
                Component::Router => l.router += n,
                Component::Expert(e) => {
                    l.routed_experts += n;
                    if e == 0 {
                        l.expert += n;
                    }
                }
                Component::AllExperts => l.routed_experts += n,
                Component::Shared => l.shared_experts += n,
                Component::DenseFfn => l.dense_ffn += n,
                Component::Embedding | Component::FinalNorm | Component::LmHead => {}
            },
            (_, None) => {}
        }
    }
    // experts stored fused (DBRX): one expert is an equal share
    for (l, desc_l) in p.layers.iter_mut().zip(&desc.layers) {
        if let (Some(m), 0) = (desc_l.moe(), l.expert) {
            l.expert = l.routed_experts / m.num_experts.max(1) as u64;
        }
    }
    p
}

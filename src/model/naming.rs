//! Checkpoint tensor names of each family, in one place: the tensor check
//! ([`crate::tensors`]) lists them and the engine loads them.

use crate::model::descriptor::{Family, ModelDesc};

/// The three projections of a gated MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proj {
    /// `gate_proj` (Mixtral `w1`).
    Gate,
    /// `up_proj` (Mixtral `w3`).
    Up,
    /// `down_proj` (Mixtral `w2`).
    Down,
}

impl Proj {
    /// All three, in checkpoint order.
    pub const ALL: [Proj; 3] = [Proj::Gate, Proj::Up, Proj::Down];

    fn hf(self) -> &'static str {
        match self {
            Proj::Gate => "gate_proj",
            Proj::Up => "up_proj",
            Proj::Down => "down_proj",
        }
    }

    fn mixtral(self) -> &'static str {
        match self {
            Proj::Gate => "w1",
            Proj::Up => "w3",
            Proj::Down => "w2",
        }
    }
}

/// Tensor names of a model in the Hugging Face layout (`model.layers.N...`). DBRX's fused
/// layout is listed by [`crate::tensors`] alone.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    desc: &'a ModelDesc,
}

impl<'a> Names<'a> {
    /// Names for a model.
    pub fn new(desc: &'a ModelDesc) -> Self {
        Names { desc }
    }

    /// The token embedding.
    pub fn embed(&self) -> String {
        "model.embed_tokens.weight".into()
    }

    /// The final norm.
    pub fn final_norm(&self) -> String {
        "model.norm.weight".into()
    }

    /// The LM head (absent when tied).
    pub fn lm_head(&self) -> String {
        "lm_head.weight".into()
    }

    fn layer(&self, i: usize) -> String {
        format!("model.layers.{i}")
    }

    /// The norm before attention.
    pub fn input_norm(&self, i: usize) -> String {
        format!("{}.input_layernorm.weight", self.layer(i))
    }

    /// The norm before the feed-forward block.
    pub fn post_attention_norm(&self, i: usize) -> String {
        format!("{}.post_attention_layernorm.weight", self.layer(i))
    }

    /// An attention tensor, e.g. `attn(i, "q_proj.weight")`.
    pub fn attn(&self, i: usize, tail: &str) -> String {
        format!("{}.self_attn.{tail}", self.layer(i))
    }

    /// A projection of a dense layer's MLP (`bias` for its bias).
    pub fn dense(&self, i: usize, p: Proj, bias: bool) -> String {
        format!(
            "{}.mlp.{}.{}",
            self.layer(i),
            p.hf(),
            if bias { "bias" } else { "weight" }
        )
    }

    fn moe_block(&self, i: usize) -> String {
        match self.desc.family {
            Family::Mixtral => format!("{}.block_sparse_moe", self.layer(i)),
            _ => format!("{}.mlp", self.layer(i)),
        }
    }

    /// The router's gate matrix `[E, d]`.
    pub fn router(&self, i: usize) -> String {
        format!("{}.gate.weight", self.moe_block(i))
    }

    /// DeepSeek-V3's selection bias `[E]`.
    pub fn correction_bias(&self, i: usize) -> String {
        format!("{}.gate.e_score_correction_bias", self.moe_block(i))
    }

    /// A projection of routed expert `e`.
    pub fn expert(&self, i: usize, e: usize, p: Proj) -> String {
        match self.desc.family {
            Family::Mixtral => format!("{}.experts.{e}.{}.weight", self.moe_block(i), p.mixtral()),
            _ => format!("{}.experts.{e}.{}.weight", self.moe_block(i), p.hf()),
        }
    }

    /// A projection of the shared expert(s).
    pub fn shared(&self, i: usize, p: Proj) -> String {
        let block = match self.desc.family {
            Family::Qwen2Moe => "shared_expert",
            _ => "shared_experts",
        };
        format!("{}.{block}.{}.weight", self.moe_block(i), p.hf())
    }

    /// Qwen's shared-expert gate `[1, d]`.
    pub fn shared_gate(&self, i: usize) -> String {
        format!("{}.shared_expert_gate.weight", self.moe_block(i))
    }
}

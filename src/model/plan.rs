//! The one plan of a checkpoint's tensors: every tensor of the main model (multi-token-prediction
//! layers excluded) with its name, shape, layer and component, in checkpoint order, derived from
//! the descriptor and each family's naming ([`super::naming`]). Parameter counts
//! ([`super::params`]), the tensor check ([`super::tensors`]), synthetic weights, the published
//! code's sizes and the engine's loader all read it, so a tensor layout is worked out once.

use super::descriptor::{Attention, Family, Ffn, Layer, ModelDesc, QkNorm};
use super::naming::{Names, Proj};
use std::collections::HashMap;

/// What a tensor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The token embedding.
    Embedding,
    /// A layer's input or post-attention norm.
    LayerNorm,
    /// Attention: projections, biases, q/k norms, latent norms.
    Attention,
    /// The router's gate and selection bias.
    Router,
    /// Routed expert `e`'s projections.
    Expert(usize),
    /// Every routed expert's projections in one tensor (DBRX's fused layout).
    AllExperts,
    /// Shared experts and their gate.
    Shared,
    /// A dense layer's MLP.
    DenseFfn,
    /// The final norm.
    FinalNorm,
    /// The LM head (absent when tied).
    LmHead,
}

/// One tensor of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTensor {
    /// Its checkpoint name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its decoder layer, if any.
    pub layer: Option<usize>,
    /// What it belongs to.
    pub component: Component,
}

impl PlannedTensor {
    /// Elements of the tensor.
    pub fn elements(&self) -> u64 {
        self.shape.iter().map(|&x| x as u64).product()
    }

    /// Whether it is a weight matrix (not a bias or norm vector).
    pub fn is_matrix(&self) -> bool {
        self.shape.len() == 2
    }
}

/// The tensors of a model's main body, in checkpoint order.
pub fn tensor_plan(desc: &ModelDesc) -> Vec<PlannedTensor> {
    let mut plan = Plan {
        out: Vec::new(),
        layer: None,
    };
    let (d, v) = (desc.hidden_size, desc.vocab_size);
    let dbrx = desc.family == Family::Dbrx;
    let embed = if dbrx {
        "transformer.wte.weight".to_string()
    } else {
        Names::new(desc).embed()
    };
    plan.push(embed, vec![v, d], Component::Embedding);
    for layer in &desc.layers {
        plan.layer = Some(layer.index);
        if dbrx {
            dbrx_layer(&mut plan, layer, d);
        } else {
            hf_layer(&mut plan, desc, layer, d);
        }
    }
    plan.layer = None;
    let norm = if dbrx {
        "transformer.norm_f.weight".to_string()
    } else {
        Names::new(desc).final_norm()
    };
    plan.push(norm, vec![d], Component::FinalNorm);
    if !desc.tie_word_embeddings {
        plan.push(Names::new(desc).lm_head(), vec![v, d], Component::LmHead);
    }
    plan.out
}

/// The shapes of a plan by name.
pub fn shapes(plan: &[PlannedTensor]) -> HashMap<&str, &[usize]> {
    plan.iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect()
}

struct Plan {
    out: Vec<PlannedTensor>,
    layer: Option<usize>,
}

impl Plan {
    fn push(&mut self, name: String, shape: Vec<usize>, component: Component) {
        self.out.push(PlannedTensor {
            name,
            shape,
            layer: self.layer,
            component,
        });
    }
}

/// A layer in the Hugging Face layout (`model.layers.N...`).
fn hf_layer(plan: &mut Plan, desc: &ModelDesc, layer: &Layer, d: usize) {
    let n = Names::new(desc);
    let i = layer.index;
    plan.push(n.input_norm(i), vec![d], Component::LayerNorm);
    plan.push(n.post_attention_norm(i), vec![d], Component::LayerNorm);
    let mut att = |name: String, shape: Vec<usize>| plan.push(name, shape, Component::Attention);
    match layer.attention {
        Attention::Gqa {
            heads,
            kv_heads,
            head_dim,
            qkv_bias,
            o_bias,
            qk_norm,
        } => {
            let (q, kv) = (heads * head_dim, kv_heads * head_dim);
            for (p, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                att(n.attn(i, &format!("{p}.weight")), vec![rows, d]);
                if qkv_bias {
                    att(n.attn(i, &format!("{p}.bias")), vec![rows]);
                }
            }
            att(n.attn(i, "o_proj.weight"), vec![d, q]);
            if o_bias {
                att(n.attn(i, "o_proj.bias"), vec![d]);
            }
            let norms = match qk_norm {
                QkNorm::None => None,
                QkNorm::PerHead => Some((head_dim, head_dim)),
                QkNorm::Full => Some((q, kv)),
            };
            if let Some((qn, kn)) = norms {
                att(n.attn(i, "q_norm.weight"), vec![qn]);
                att(n.attn(i, "k_norm.weight"), vec![kn]);
            }
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
            let qk = qk_nope_head_dim + qk_rope_head_dim;
            match q_lora_rank {
                Some(r) => {
                    att(n.attn(i, "q_a_proj.weight"), vec![r, d]);
                    if bias {
                        att(n.attn(i, "q_a_proj.bias"), vec![r]);
                    }
                    att(n.attn(i, "q_a_layernorm.weight"), vec![r]);
                    att(n.attn(i, "q_b_proj.weight"), vec![heads * qk, r]);
                }
                None => att(n.attn(i, "q_proj.weight"), vec![heads * qk, d]),
            }
            let kv_a = kv_lora_rank + qk_rope_head_dim;
            att(n.attn(i, "kv_a_proj_with_mqa.weight"), vec![kv_a, d]);
            if bias {
                att(n.attn(i, "kv_a_proj_with_mqa.bias"), vec![kv_a]);
            }
            att(n.attn(i, "kv_a_layernorm.weight"), vec![kv_lora_rank]);
            att(
                n.attn(i, "kv_b_proj.weight"),
                vec![heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank],
            );
            att(n.attn(i, "o_proj.weight"), vec![d, heads * v_head_dim]);
            if bias {
                att(n.attn(i, "o_proj.bias"), vec![d]);
            }
        }
    }
    let mlp_shapes = |f: usize| {
        [
            (Proj::Gate, vec![f, d]),
            (Proj::Up, vec![f, d]),
            (Proj::Down, vec![d, f]),
        ]
    };
    match &layer.ffn {
        Ffn::Dense {
            intermediate_size,
            bias,
        } => {
            for (p, shape) in mlp_shapes(*intermediate_size) {
                let rows = shape[0];
                plan.push(n.dense(i, p, false), shape, Component::DenseFfn);
                if *bias {
                    plan.push(n.dense(i, p, true), vec![rows], Component::DenseFfn);
                }
            }
        }
        Ffn::Moe(m) => {
            plan.push(n.router(i), vec![m.num_experts, d], Component::Router);
            if m.router.correction_bias {
                plan.push(n.correction_bias(i), vec![m.num_experts], Component::Router);
            }
            for e in 0..m.num_experts {
                for (p, shape) in mlp_shapes(m.expert_intermediate_size) {
                    plan.push(n.expert(i, e, p), shape, Component::Expert(e));
                }
            }
            if let Some(s) = &m.shared {
                for (p, shape) in mlp_shapes(s.intermediate_size) {
                    plan.push(n.shared(i, p), shape, Component::Shared);
                }
                if s.gate {
                    plan.push(n.shared_gate(i), vec![1, d], Component::Shared);
                }
            }
        }
    }
}

/// A layer in DBRX's fused layout (`transformer.blocks.N...`).
fn dbrx_layer(plan: &mut Plan, layer: &Layer, d: usize) {
    let p = format!("transformer.blocks.{}", layer.index);
    plan.push(
        format!("{p}.norm_attn_norm.norm_1.weight"),
        vec![d],
        Component::LayerNorm,
    );
    plan.push(
        format!("{p}.norm_attn_norm.norm_2.weight"),
        vec![d],
        Component::LayerNorm,
    );
    if let Attention::Gqa {
        heads,
        kv_heads,
        head_dim,
        ..
    } = layer.attention
    {
        plan.push(
            format!("{p}.norm_attn_norm.attn.Wqkv.weight"),
            vec![(heads + 2 * kv_heads) * head_dim, d],
            Component::Attention,
        );
        plan.push(
            format!("{p}.norm_attn_norm.attn.out_proj.weight"),
            vec![d, heads * head_dim],
            Component::Attention,
        );
    }
    if let Some(m) = layer.moe() {
        let (e, f) = (m.num_experts, m.expert_intermediate_size);
        plan.push(
            format!("{p}.ffn.router.layer.weight"),
            vec![e, d],
            Component::Router,
        );
        for w in ["w1", "v1", "w2"] {
            plan.push(
                format!("{p}.ffn.experts.mlp.{w}"),
                vec![e * f, d],
                Component::AllExperts,
            );
        }
    }
}

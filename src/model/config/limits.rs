//! Upper bounds on the sizes a `config.json` may declare. Every real checkpoint lies far inside
//! them; they exist so that a typo or a hostile file gets an error naming the field instead of
//! an allocation the machine cannot make or a product that wraps around. With every field at
//! its bound, a model's parameter count, bytes and FLOPs per token still fit in 64 bits.

use super::cfg::Cfg;
use crate::error::Result;

/// Widths of hidden states, FFNs and low-rank projections (the widest real one: the 53,248
/// FFN of Llama 3.1 405B).
pub const MAX_WIDTH: usize = 1 << 17;
/// Attention heads and head sizes (real ones: at most 128 heads of at most 512).
pub const MAX_HEADS: usize = 1 << 12;
/// Decoder layers (real ones: at most 126).
pub const MAX_LAYERS: usize = 1 << 10;
/// Routed or shared experts per layer, and experts or groups per token (real ones: at most 512).
pub const MAX_EXPERTS: usize = 1 << 12;
/// Vocabulary size (real ones: at most 262,144; token ids are 32-bit).
pub const MAX_VOCAB: usize = 1 << 24;
/// Positions and attention windows (real ones: at most 10,485,760).
pub const MAX_POSITIONS: usize = 1 << 30;

/// The bound of a size field and what it stands for, or `None` for a field without one.
fn bound(field: &str) -> Option<(usize, &'static str)> {
    Some(match field {
        "hidden_size"
        | "d_model"
        | "intermediate_size"
        | "ffn_hidden_size"
        | "moe_intermediate_size"
        | "shared_expert_intermediate_size"
        | "kv_lora_rank"
        | "q_lora_rank" => (MAX_WIDTH, "widths"),
        "num_attention_heads"
        | "n_heads"
        | "num_key_value_heads"
        | "kv_n_heads"
        | "head_dim"
        | "qk_nope_head_dim"
        | "qk_rope_head_dim"
        | "v_head_dim" => (MAX_HEADS, "heads and head sizes"),
        "num_hidden_layers"
        | "n_layers"
        | "num_nextn_predict_layers"
        | "first_k_dense_replace"
        | "decoder_sparse_step"
        | "moe_layer_freq" => (MAX_LAYERS, "layer counts"),
        "num_experts"
        | "num_local_experts"
        | "n_routed_experts"
        | "moe_num_experts"
        | "n_shared_experts"
        | "num_experts_per_tok"
        | "moe_top_k"
        | "n_group"
        | "topk_group" => (MAX_EXPERTS, "expert counts"),
        "vocab_size" => (MAX_VOCAB, "vocabularies"),
        "max_position_embeddings" | "max_seq_len" | "sliding_window" => {
            (MAX_POSITIONS, "positions")
        }
        _ => return None,
    })
}

/// Checks a size field's value against its bound.
pub(super) fn check(cfg: &Cfg, field: &str, v: usize) -> Result<()> {
    match bound(field) {
        Some((max, what)) if v > max => Err(cfg.err(
            field,
            format!("{v} is above moecap's limit of {max} for {what}; real checkpoints stay far below it"),
        )),
        _ => Ok(()),
    }
}

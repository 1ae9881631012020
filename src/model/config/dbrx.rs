//! DBRX's dialect: `d_model`, `n_layers`, `n_heads`, and nested `attn_config` / `ffn_config`
//! objects; every layer MoE.

use super::cfg::Cfg;
use super::{check_attention, check_moe, eos_ids, quantization, torch_dtype};
use crate::error::Result;
use crate::model::descriptor::{
    Attention, Family, Ffn, Layer, ModelDesc, Moe, QkNorm, Rope, Router,
};

/// Parses a DBRX config.
pub(super) fn parse(cfg: &Cfg, arch: String) -> Result<ModelDesc> {
    let hidden = cfg.positive_any(&["d_model", "hidden_size"])?;
    let num_layers = cfg.positive_any(&["n_layers", "num_hidden_layers"])?;
    let heads = cfg.positive_any(&["n_heads", "num_attention_heads"])?;
    let vocab = cfg.positive("vocab_size")?;
    let attn_map = cfg
        .object("attn_config")?
        .ok_or_else(|| cfg.err("attn_config", "missing"))?;
    let attn = Cfg {
        file: cfg.file,
        map: attn_map,
        prefix: "attn_config.",
    };
    let ffn_map = cfg
        .object("ffn_config")?
        .ok_or_else(|| cfg.err("ffn_config", "missing"))?;
    let ffn = Cfg {
        file: cfg.file,
        map: ffn_map,
        prefix: "ffn_config.",
    };
    let kv_heads = attn.opt_usize("kv_n_heads")?.unwrap_or(heads);
    if kv_heads == 0 {
        return Err(attn.err("kv_n_heads", "must be greater than zero"));
    }
    if hidden % heads != 0 {
        return Err(cfg.err(
            "n_heads",
            format!("d_model {hidden} is not divisible by n_heads {heads}"),
        ));
    }
    let attention = Attention::Gqa {
        heads,
        kv_heads,
        head_dim: hidden / heads,
        qkv_bias: false,
        o_bias: false,
        qk_norm: QkNorm::None,
    };
    check_attention(cfg, &attention)?;
    let norm = ffn
        .opt_f64("moe_normalize_expert_weights")?
        .is_some_and(|p| p > 0.0);
    let moe = Moe {
        num_experts: ffn.positive("moe_num_experts")?,
        top_k: ffn.positive("moe_top_k")?,
        expert_intermediate_size: ffn.positive("ffn_hidden_size")?,
        shared: None,
        router: Router::plain(norm),
    };
    check_moe(&ffn, &moe, "moe_num_experts", "moe_top_k")?;
    let theta = attn.opt_f64("rope_theta")?.unwrap_or(10000.0);
    let layers = (0..num_layers)
        .map(|i| Layer {
            index: i,
            attention,
            ffn: Ffn::Moe(moe.clone()),
        })
        .collect();
    Ok(ModelDesc {
        source: cfg.file.to_string(),
        family: Family::Dbrx,
        architecture: arch,
        hidden_size: hidden,
        vocab_size: vocab,
        tie_word_embeddings: cfg.opt_bool("tie_word_embeddings")?.unwrap_or(false),
        max_position_embeddings: cfg.opt_usize_any(&["max_seq_len", "max_position_embeddings"])?,
        rope: Rope {
            theta,
            scaling: None,
            factor: None,
            params: Default::default(),
        },
        torch_dtype: torch_dtype(cfg)?,
        quantization: quantization(cfg)?,
        mtp_layers: 0,
        norm_eps: 1e-5,
        sliding_window: None,
        hidden_act: "silu".into(),
        eos_token_ids: eos_ids(cfg)?,
        layers,
    })
}

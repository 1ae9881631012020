//! DeepSeek's dialect (DeepSeek-MoE v1, V2, V2-Lite, V3): latent attention (V2, V3), and MoE
//! layers from `first_k_dense_replace` every `moe_layer_freq` with shared experts, softmax or
//! sigmoid scores, group-limited selection (`group_limited_greedy`, `noaux_tc` with a correction
//! bias) and a scaling factor. Absent fields take the defaults of transformers' config classes.

use super::cfg::Cfg;
use super::{check_moe, MoePlan};
use crate::error::Result;
use crate::model::descriptor::{
    Attention, Family, GroupScore, Moe, Router, RouterRules, Scoring, Shared,
};

/// The latent attention of a V2 or V3 config with `heads` heads.
pub(super) fn attention(cfg: &Cfg, family: Family, heads: usize, bias: bool) -> Result<Attention> {
    let q_lora_rank = cfg.opt_usize("q_lora_rank")?.filter(|&r| r > 0);
    Ok(Attention::Mla {
        heads,
        q_lora_rank,
        kv_lora_rank: cfg.positive("kv_lora_rank")?,
        qk_nope_head_dim: cfg.positive("qk_nope_head_dim")?,
        qk_rope_head_dim: cfg.positive("qk_rope_head_dim")?,
        v_head_dim: cfg.positive("v_head_dim")?,
        bias,
        rope_interleave: family == Family::DeepseekV2
            || cfg.opt_bool("rope_interleave")?.unwrap_or(true),
    })
}

/// The MoE plan of a DeepSeek config of `num_layers` layers.
pub(super) fn moe(cfg: &Cfg, family: Family, num_layers: usize) -> Result<MoePlan> {
    let e = cfg.opt_usize("n_routed_experts")?.unwrap_or(0);
    if e == 0 {
        return Ok(MoePlan::dense());
    }
    let k = cfg.positive("num_experts_per_tok")?;
    let ff = cfg.positive("moe_intermediate_size")?;
    let n_shared = cfg.opt_usize("n_shared_experts")?.unwrap_or(0);
    let first_dense = cfg.opt_usize("first_k_dense_replace")?.unwrap_or(0);
    if first_dense > num_layers {
        return Err(cfg.err(
            "first_k_dense_replace",
            format!("{first_dense} exceeds num_hidden_layers {num_layers}"),
        ));
    }
    let freq = cfg.opt_usize("moe_layer_freq")?.unwrap_or(1);
    if freq == 0 {
        return Err(cfg.err("moe_layer_freq", "must be greater than zero"));
    }
    // V3's defaults: sigmoid, renormalised, scaled by 2.5, 8 groups keeping 4
    let v3 = family == Family::DeepseekV3;
    let default_scoring = if v3 { "sigmoid" } else { "softmax" };
    let scoring = match cfg.opt_str("scoring_func")?.unwrap_or(default_scoring) {
        "softmax" => Scoring::Softmax,
        "sigmoid" => Scoring::Sigmoid,
        other => {
            return Err(cfg.err(
                "scoring_func",
                format!("unknown scoring function `{other}` (expected softmax or sigmoid)"),
            ))
        }
    };
    let topk_method = cfg
        .opt_str("topk_method")?
        .unwrap_or(if v3 { "noaux_tc" } else { "greedy" })
        .to_string();
    if !matches!(
        topk_method.as_str(),
        "greedy" | "group_limited_greedy" | "noaux_tc"
    ) {
        return Err(cfg.err(
            "topk_method",
            format!("unknown method `{topk_method}` (expected greedy, group_limited_greedy or noaux_tc)"),
        ));
    }
    let n_group = cfg
        .opt_usize("n_group")?
        .unwrap_or(if v3 { 8 } else { 1 })
        .max(1);
    let topk_group = cfg
        .opt_usize("topk_group")?
        .unwrap_or(if v3 && n_group == 8 { 4 } else { n_group });
    let norm = cfg.opt_bool("norm_topk_prob")?.unwrap_or(v3);
    let noaux = topk_method == "noaux_tc";
    let m = Moe {
        num_experts: e,
        top_k: k,
        expert_intermediate_size: ff,
        shared: (n_shared > 0).then_some(Shared {
            count: n_shared,
            intermediate_size: n_shared * ff,
            gate: false,
        }),
        router: Router {
            scoring,
            norm_topk_prob: norm,
            routed_scaling_factor: cfg.opt_f64("routed_scaling_factor")?.unwrap_or(if v3 {
                2.5
            } else {
                1.0
            }),
            n_group,
            topk_group,
            correction_bias: noaux,
            topk_method,
            // the modelling code renormalises only more than one expert, adds 1e-20 to the
            // sum, and (v1, V2) scales only weights it did not renormalise
            rules: RouterRules {
                renormalise: norm && k > 1,
                renorm_eps: 1e-20,
                scale_only_unnormalised: !v3,
                group_score: if noaux {
                    GroupScore::TopTwoSum
                } else {
                    GroupScore::Best
                },
            },
        },
    };
    check_moe(cfg, &m, "n_routed_experts", "num_experts_per_tok")?;
    Ok(MoePlan {
        moe: Some(m),
        is_moe: Box::new(move |i| i >= first_dense && i % freq == 0),
    })
}

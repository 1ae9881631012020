//! The MoE blocks of Qwen1.5/Qwen2-MoE and Qwen3-MoE: MoE every `decoder_sparse_step` layers
//! except `mlp_only_layers`, softmax top-k, experts of `moe_intermediate_size`; Qwen2-MoE adds a
//! shared expert with a sigmoid gate.

use super::cfg::Cfg;
use super::{check_moe, MoePlan};
use crate::error::Result;
use crate::model::descriptor::{Family, Moe, Router, Shared};

/// The MoE plan of a Qwen MoE config of `num_layers` layers.
pub(super) fn moe(cfg: &Cfg, family: Family, num_layers: usize) -> Result<MoePlan> {
    let e = cfg.usize_any(&["num_experts", "num_local_experts"])?;
    let k = cfg.positive("num_experts_per_tok")?;
    let ff = cfg.positive("moe_intermediate_size")?;
    let step = cfg.opt_usize("decoder_sparse_step")?.unwrap_or(1);
    if step == 0 {
        return Err(cfg.err("decoder_sparse_step", "must be greater than zero"));
    }
    let mlp_only = cfg.usize_list("mlp_only_layers")?;
    if let Some(&bad) = mlp_only.iter().find(|&&i| i >= num_layers) {
        return Err(cfg.err(
            "mlp_only_layers",
            format!("layer {bad} does not exist (num_hidden_layers = {num_layers})"),
        ));
    }
    let shared = if family == Family::Qwen2Moe {
        match cfg.opt_usize("shared_expert_intermediate_size")? {
            Some(s) if s > 0 => Some(Shared {
                count: 1,
                intermediate_size: s,
                gate: true,
            }),
            _ => None,
        }
    } else {
        None
    };
    let norm = cfg.opt_bool("norm_topk_prob")?.unwrap_or(false);
    let m = Moe {
        num_experts: e,
        top_k: k,
        expert_intermediate_size: ff,
        shared,
        router: Router::plain(norm),
    };
    if e == 0 {
        return Ok(MoePlan::dense());
    }
    check_moe(cfg, &m, "num_experts", "num_experts_per_tok")?;
    Ok(MoePlan {
        moe: Some(m),
        is_moe: Box::new(move |i| !mlp_only.contains(&i) && (i + 1) % step == 0),
    })
}

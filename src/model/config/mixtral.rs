//! The MoE block of Mixtral and OLMoE: every layer MoE, softmax top-k over `E` experts whose
//! size is `intermediate_size`; Mixtral always renormalises its top-k, OLMoE as
//! `norm_topk_prob` says.

use super::cfg::Cfg;
use super::{check_moe, MoePlan};
use crate::error::Result;
use crate::model::descriptor::{Family, Moe, Router};

/// The MoE plan of a Mixtral or OLMoE config.
pub(super) fn moe(cfg: &Cfg, family: Family, intermediate: Option<usize>) -> Result<MoePlan> {
    let experts_field = if family == Family::Mixtral {
        "num_local_experts"
    } else {
        "num_experts"
    };
    let e = cfg.positive_any(&[experts_field, "num_experts", "num_local_experts"])?;
    let k = cfg.positive("num_experts_per_tok")?;
    let ff = match intermediate {
        Some(f) if f > 0 => f,
        _ => return Err(cfg.err("intermediate_size", "missing or zero")),
    };
    let norm = if family == Family::Mixtral {
        true
    } else {
        cfg.opt_bool("norm_topk_prob")?.unwrap_or(false)
    };
    let m = Moe {
        num_experts: e,
        top_k: k,
        expert_intermediate_size: ff,
        shared: None,
        router: Router::plain(norm),
    };
    check_moe(cfg, &m, experts_field, "num_experts_per_tok")?;
    Ok(MoePlan {
        moe: Some(m),
        is_moe: Box::new(|_| true),
    })
}

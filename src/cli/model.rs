//! `moecap models` and `moecap inspect`: presets, descriptors, parameter counts, tensor checks.

use super::options::*;
use super::print_json;
use anyhow::{bail, Result};
use moecap::accounting::kv_elements_per_token;
use moecap::export::table::{pct, si, Table};
use moecap::model::descriptor::{Attention, Ffn, ModelDesc};
use moecap::model::dtype::DType;
use moecap::model::params::model_params;
use moecap::model::presets::{preset_desc, PRESETS};
use moecap::model::tensors::check_checkpoint;
use moecap::records::KvCacheKind;
use serde_json::json;

pub(crate) fn cmd_models(json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for p in PRESETS {
        let d = preset_desc(p)?;
        let params = model_params(&d);
        let moe = d.first_moe();
        rows.push(json!({
            "name": p.name,
            "hub_id": p.hub_id,
            "family": d.family.short(),
            "architecture": d.architecture,
            "layers": d.num_layers(),
            "moe_layers": d.num_moe_layers(),
            "experts": moe.map_or(0, |m| m.num_experts),
            "top_k": moe.map_or(0, |m| m.top_k),
            "shared_experts": moe.and_then(|m| m.shared.as_ref()).map_or(0, |s| s.count),
            "total_params": params.total(),
            "active_params_per_token": params.active_per_token(&d),
        }));
    }
    if json {
        return print_json(&rows);
    }
    let mut t = Table::new(&[
        "preset", "family", "layers", "moe", "experts", "top-k", "shared", "total", "active",
    ]);
    for r in &rows {
        t.row(vec![
            r["name"].as_str().unwrap_or_default().to_string(),
            r["family"].as_str().unwrap_or_default().to_string(),
            r["layers"].to_string(),
            r["moe_layers"].to_string(),
            r["experts"].to_string(),
            r["top_k"].to_string(),
            r["shared_experts"].to_string(),
            si(r["total_params"].as_f64().unwrap_or(0.0)),
            si(r["active_params_per_token"].as_f64().unwrap_or(0.0)),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub(crate) fn layer_kind(desc: &ModelDesc, i: usize) -> String {
    let l = &desc.layers[i];
    let att = match l.attention {
        Attention::Gqa {
            heads, kv_heads, ..
        } if heads == kv_heads => "MHA",
        Attention::Gqa { .. } => "GQA",
        Attention::Mla { .. } => "MLA",
    };
    match &l.ffn {
        Ffn::Dense {
            intermediate_size, ..
        } => format!("{att} + dense FFN {intermediate_size}"),
        Ffn::Moe(m) => format!(
            "{att} + MoE {}x{} top-{}{}",
            m.num_experts,
            m.expert_intermediate_size,
            m.top_k,
            m.shared.as_ref().map_or(String::new(), |s| format!(
                " + shared {}",
                s.intermediate_size
            ))
        ),
    }
}

pub(crate) fn cmd_inspect(a: &InspectArgs) -> Result<()> {
    let json = a.json;
    let ck = checkpoint(&a.model.model)?;
    let d = &ck.desc;
    let params = model_params(d);
    let check = match ck.dir() {
        Some(dir) => check_checkpoint(d, dir)?,
        None => None,
    };
    let total = params.total();
    let active = params.active_per_token(d);
    let kv_kind = KvCacheKind::default_for(d);
    let kv_elems = kv_elements_per_token(d, kv_kind);
    let mut kv_json = json!({
        "kind": kv_kind.name(),
        "elements_per_token": kv_elems,
        "bytes_per_token_bf16": kv_elems * 2,
    });
    if matches!(d.attention(), Attention::Mla { .. }) {
        let dec = kv_elements_per_token(d, KvCacheKind::MlaDecompressed);
        kv_json["decompressed_elements_per_token"] = json!(dec);
    }
    if json {
        let per_layer: Vec<_> = params
            .layers
            .iter()
            .zip(&d.layers)
            .map(|(p, l)| {
                json!({
                    "layer": l.index,
                    "kind": if l.moe().is_some() { "moe" } else { "dense" },
                    "params": p,
                    "total": p.total(),
                })
            })
            .collect();
        let bytes: serde_json::Map<String, serde_json::Value> =
            [DType::F32, DType::Bf16, DType::Fp8, DType::Int4]
                .iter()
                .map(|dt| (dt.name().to_string(), json!(total as f64 * dt.bytes())))
                .collect();
        return print_json(&json!({
            "model": d.display_name(),
            "source": d.source,
            "family": d.family.short(),
            "architecture": d.architecture,
            "hidden_size": d.hidden_size,
            "vocab_size": d.vocab_size,
            "num_layers": d.num_layers(),
            "moe_layers": d.num_moe_layers(),
            "dense_layers": d.num_layers() - d.num_moe_layers(),
            "tie_word_embeddings": d.tie_word_embeddings,
            "total_params": total,
            "active_params_per_token": active,
            "routed_expert_params": params.routed_expert_params(),
            "components": params.components(),
            "bytes": bytes,
            "kv_cache": kv_json,
            "per_layer": per_layer,
            "descriptor": d,
            "tensor_check": check,
        }));
    }
    println!("model        {} ({})", d.display_name(), d.architecture);
    println!(
        "layers       {} ({} MoE, {} dense), hidden {}, vocab {}{}",
        d.num_layers(),
        d.num_moe_layers(),
        d.num_layers() - d.num_moe_layers(),
        d.hidden_size,
        d.vocab_size,
        if d.tie_word_embeddings {
            ", tied embeddings"
        } else {
            ""
        }
    );
    if let Some(m) = d.first_moe() {
        let r = &m.router;
        println!(
            "router       {:?} scores, top-{} of {}, renormalise {}, scale {}, groups {}/{} ({}){}",
            r.scoring,
            m.top_k,
            m.num_experts,
            r.norm_topk_prob,
            r.routed_scaling_factor,
            r.topk_group,
            r.n_group,
            r.topk_method,
            if r.correction_bias {
                ", correction bias"
            } else {
                ""
            }
        );
    }
    println!(
        "parameters   {} total ({}), {} active per token ({}), {} in routed experts",
        total,
        si(total as f64),
        active,
        si(active as f64),
        si(params.routed_expert_params() as f64)
    );
    println!(
        "weights      f32 {}B, bf16 {}B, fp8 {}B, int4 {}B",
        si(total as f64 * 4.0),
        si(total as f64 * 2.0),
        si(total as f64),
        si(total as f64 * 0.5)
    );
    println!(
        "kv cache     {} elements per token ({}), {} bytes per token in bf16",
        kv_elems,
        kv_kind.name(),
        kv_elems * 2
    );
    let c = params.components();
    let mut t = Table::new(&["component", "params", "share"]);
    for (name, v) in [
        ("attention", c.attention),
        ("router", c.router),
        ("routed experts", c.routed_experts),
        ("shared experts", c.shared_experts),
        ("dense FFN", c.dense_ffn),
        ("norms", c.norms),
        ("embedding", c.embedding),
        ("LM head", c.lm_head),
    ] {
        t.row(vec![
            name.into(),
            v.to_string(),
            pct(v as f64 / total as f64),
        ]);
    }
    println!();
    print!("{}", t.render());
    // Layers grouped into runs of the same kind and size.
    let mut t = Table::new(&["layers", "kind", "params/layer"]);
    let mut start = 0;
    for i in 1..=d.num_layers() {
        let same = i < d.num_layers()
            && layer_kind(d, i) == layer_kind(d, start)
            && params.layers[i] == params.layers[start];
        if !same {
            let range = if i - 1 == start {
                start.to_string()
            } else {
                format!("{}-{}", start, i - 1)
            };
            t.row(vec![
                range,
                layer_kind(d, start),
                params.layers[start].total().to_string(),
            ]);
            start = i;
        }
    }
    println!();
    print!("{}", t.render());
    if let Some(check) = &check {
        println!();
        println!(
            "tensors      {} found in {} file(s), {} expected, {} set aside (scales, MTP){}",
            check.tensors_found,
            check.files.len(),
            check.tensors_expected,
            check.ignored,
            if check.shapes_checked {
                ""
            } else {
                "; shapes not compared (packed quantisation)"
            }
        );
        for (what, list) in [
            ("missing", &check.missing),
            ("unexpected", &check.unexpected),
            ("wrong shape", &check.mismatched),
        ] {
            for item in list.iter().take(20) {
                println!("  {what}: {item}");
            }
            if list.len() > 20 {
                println!("  ... and {} more {what}", list.len() - 20);
            }
        }
        if check.ok() {
            println!("  every tensor matches the descriptor");
        }
    } else if ck.dir().is_some() {
        println!();
        println!("tensors      no safetensors files beside the config: nothing to cross-check");
    }
    if let Some(check) = check {
        if !check.ok() {
            bail!(
                "tensor check failed: {} missing, {} unexpected, {} with another shape",
                check.missing.len(),
                check.unexpected.len(),
                check.mismatched.len()
            );
        }
    }
    Ok(())
}

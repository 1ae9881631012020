//! Reading a Hugging Face `config.json` into a [`ModelDesc`]: every spelling real checkpoints use,
//! with a one-line error naming the file and field for anything missing or contradictory. The
//! fields every family shares are read here; each family's own dialect (its MoE layout, latent
//! attention, DBRX's nesting) in its own file: [`mixtral`] (and OLMoE), [`qwen`], [`deepseek`],
//! [`dbrx`]. Llama and Mistral are the dense case.

mod cfg;
mod dbrx;
mod deepseek;
pub mod limits;
mod mixtral;
mod qwen;

use cfg::{as_usize, Cfg};

use crate::error::{Error, Result};
use crate::model::descriptor::{
    Attention, Family, Ffn, Layer, ModelDesc, Moe, QkNorm, Quantization, Rope,
};
use serde_json::Value;
use std::path::Path;

/// Reads and parses a `config.json` file.
pub fn load_config(path: &Path) -> Result<ModelDesc> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_config(&text, &path.display().to_string())
}

/// Parses the text of a `config.json`; `file` names it in errors and becomes the descriptor's
/// `source`.
pub fn parse_config(text: &str, file: &str) -> Result<ModelDesc> {
    let value: Value = serde_json::from_str(text).map_err(|e| Error::Json {
        file: file.to_string(),
        msg: e.to_string(),
    })?;
    let Value::Object(map) = value else {
        return Err(Error::Json {
            file: file.to_string(),
            msg: "the top level is not a JSON object".into(),
        });
    };
    let cfg = Cfg {
        file,
        map: &map,
        prefix: "",
    };
    let arch = architecture(&cfg)?;
    let family = Family::from_architecture(&arch).ok_or_else(|| Error::UnknownArchitecture {
        file: file.to_string(),
        arch: arch.clone(),
        supported: supported_list(),
    })?;
    let desc = match family {
        Family::Dbrx => dbrx::parse(&cfg, arch)?,
        _ => parse_standard(&cfg, family, arch)?,
    };
    check_desc(&cfg, &desc)?;
    Ok(desc)
}

/// Checks that relate fields to each other, and values no model can run with.
fn check_desc(cfg: &Cfg, desc: &ModelDesc) -> Result<()> {
    if let Some(&id) = desc
        .eos_token_ids
        .iter()
        .find(|&&id| id as usize >= desc.vocab_size)
    {
        return Err(cfg.err(
            "eos_token_id",
            format!(
                "{id} is not a token id of a vocabulary of {}",
                desc.vocab_size
            ),
        ));
    }
    if desc.max_position_embeddings == Some(0) {
        let field = if cfg.get("max_seq_len").is_some() {
            "max_seq_len"
        } else {
            "max_position_embeddings"
        };
        return Err(cfg.err(field, "must be greater than zero"));
    }
    if desc.norm_eps <= 0.0 {
        return Err(cfg.err(
            "rms_norm_eps",
            format!(
                "{} would divide by zero or take the root of a negative number; it must be positive",
                desc.norm_eps
            ),
        ));
    }
    Ok(())
}

/// The supported architectures as one comma-separated line.
pub fn supported_list() -> String {
    Family::ARCHITECTURES
        .iter()
        .map(|(a, _)| *a)
        .collect::<Vec<_>>()
        .join(", ")
}

fn architecture(cfg: &Cfg) -> Result<String> {
    match cfg.map.get("architectures") {
        Some(Value::Array(a)) if !a.is_empty() => match &a[0] {
            Value::String(s) => Ok(s.clone()),
            _ => Err(cfg.err("architectures", "expected a list of strings")),
        },
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(cfg.err("architectures", "expected a non-empty list of strings")),
        None => Err(Error::field(
            cfg.file,
            "architectures",
            format!("missing; supported: {}", supported_list()),
        )),
    }
}

fn rope(cfg: &Cfg, theta_default: f64) -> Result<Rope> {
    // transformers 5 writes `rope_parameters` {rope_theta, rope_type, factor, ...}; older files
    // have `rope_theta` and `rope_scaling` {type|rope_type, factor, ...}.
    let params = cfg.object("rope_parameters")?;
    let scaling = cfg.object("rope_scaling")?;
    let mut theta = cfg.opt_f64("rope_theta")?;
    let mut kind: Option<String> = None;
    let mut factor = None;
    let mut extra = std::collections::BTreeMap::new();
    for (name, obj) in [("rope_parameters", params), ("rope_scaling", scaling)] {
        let Some(obj) = obj else { continue };
        let sub = Cfg {
            file: cfg.file,
            map: obj,
            prefix: if name == "rope_parameters" {
                "rope_parameters."
            } else {
                "rope_scaling."
            },
        };
        if theta.is_none() {
            theta = sub.opt_f64("rope_theta")?;
        }
        if kind.is_none() {
            kind = sub
                .opt_str("rope_type")?
                .or(sub.opt_str("type")?)
                .map(str::to_string);
        }
        if factor.is_none() {
            factor = sub.opt_f64("factor")?;
        }
        for k in [
            "original_max_position_embeddings",
            "low_freq_factor",
            "high_freq_factor",
            "beta_fast",
            "beta_slow",
            "mscale",
            "mscale_all_dim",
            "attention_factor",
        ] {
            if let Some(v) = sub.opt_f64(k)? {
                extra.entry(k.to_string()).or_insert(v);
            }
        }
        if let Some(t) = sub.opt_bool("truncate")? {
            extra
                .entry("truncate".to_string())
                .or_insert(f64::from(u8::from(t)));
        }
    }
    let theta = theta.unwrap_or(theta_default);
    if theta <= 0.0 {
        return Err(cfg.err("rope_theta", "must be positive"));
    }
    let scaling = kind.filter(|k| k != "default");
    Ok(Rope {
        theta,
        scaling,
        factor,
        params: extra,
    })
}

fn quantization(cfg: &Cfg) -> Result<Option<Quantization>> {
    let Some(q) = cfg.object("quantization_config")? else {
        return Ok(None);
    };
    let sub = Cfg {
        file: cfg.file,
        map: q,
        prefix: "quantization_config.",
    };
    let method = sub
        .opt_str("quant_method")?
        .ok_or_else(|| sub.err("quant_method", "missing"))?
        .to_string();
    let bits = match sub.opt_usize_any(&["bits", "w_bit"])? {
        Some(b) => Some(u32::try_from(b).map_err(|_| sub.err("bits", "out of range"))?),
        None if method == "fp8" => Some(8),
        None => None,
    };
    Ok(Some(Quantization { method, bits }))
}

fn eos_ids(cfg: &Cfg) -> Result<Vec<u32>> {
    match cfg.get("eos_token_id") {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                as_usize(v)
                    .and_then(|u| u32::try_from(u).ok())
                    .ok_or_else(|| cfg.err("eos_token_id", format!("expected token ids, got {v}")))
            })
            .collect(),
        Some(v) => as_usize(v)
            .and_then(|u| u32::try_from(u).ok())
            .map(|u| vec![u])
            .ok_or_else(|| cfg.err("eos_token_id", format!("expected a token id, got {v}"))),
    }
}

/// `torch_dtype` (or `dtype`), one of the formats moecap knows; `auto` counts as absent.
fn torch_dtype(cfg: &Cfg) -> Result<Option<String>> {
    let (field, value) = match cfg.opt_str("torch_dtype")? {
        Some(v) => ("torch_dtype", v),
        None => match cfg.opt_str("dtype")? {
            Some(v) => ("dtype", v),
            None => return Ok(None),
        },
    };
    if value == "auto" {
        return Ok(None);
    }
    if crate::model::dtype::DType::parse(value).is_none() {
        return Err(cfg.err(
            field,
            format!(
                "unknown dtype `{value}`; expected float32, bfloat16, float16 or an 8/4-bit format"
            ),
        ));
    }
    Ok(Some(value.to_string()))
}

/// The attention window: Mistral/Mixtral's `sliding_window`; Qwen's only with `use_sliding_window`.
fn sliding_window(cfg: &Cfg, family: Family) -> Result<Option<usize>> {
    let enabled = match family {
        Family::Mistral | Family::Mixtral => true,
        Family::Qwen2Moe | Family::Qwen3Moe => cfg.opt_bool("use_sliding_window")?.unwrap_or(false),
        _ => false,
    };
    if !enabled {
        return Ok(None);
    }
    Ok(cfg.opt_usize("sliding_window")?.filter(|&w| w > 0))
}

/// Checks shared by all families once the sizes are known.
fn check_attention(cfg: &Cfg, att: &Attention) -> Result<()> {
    if let Attention::Gqa {
        heads, kv_heads, ..
    } = att
    {
        if kv_heads > heads || heads % kv_heads != 0 {
            return Err(cfg.err(
                "num_key_value_heads",
                format!("{kv_heads} does not divide num_attention_heads {heads}"),
            ));
        }
    }
    Ok(())
}

fn check_moe(cfg: &Cfg, moe: &Moe, experts_field: &str, topk_field: &str) -> Result<()> {
    if moe.top_k > moe.num_experts {
        return Err(cfg.err(
            topk_field,
            format!(
                "{} experts per token but only {} experts (`{experts_field}`)",
                moe.top_k, moe.num_experts
            ),
        ));
    }
    let r = &moe.router;
    if r.n_group > 1 {
        if !moe.num_experts.is_multiple_of(r.n_group) {
            return Err(cfg.err(
                "n_group",
                format!(
                    "{} groups do not divide {} routed experts",
                    r.n_group, moe.num_experts
                ),
            ));
        }
        if r.topk_group == 0 || r.topk_group > r.n_group {
            return Err(cfg.err(
                "topk_group",
                format!("must be between 1 and n_group ({})", r.n_group),
            ));
        }
        let per_group = moe.num_experts / r.n_group;
        if r.topk_group * per_group < moe.top_k {
            return Err(cfg.err(
                "topk_group",
                format!(
                    "{} groups of {} experts cannot supply {} experts per token",
                    r.topk_group, per_group, moe.top_k
                ),
            ));
        }
    }
    Ok(())
}

/// Which layers of a config are MoE, and the MoE block they carry.
struct MoePlan {
    /// The block (`None`: a dense model).
    pub moe: Option<Moe>,
    /// Whether layer `i` carries it.
    pub is_moe: Box<dyn Fn(usize) -> bool>,
}

impl MoePlan {
    /// No MoE layer.
    pub fn dense() -> Self {
        MoePlan {
            moe: None,
            is_moe: Box::new(|_| false),
        }
    }
}

/// Every family but DBRX: the shared fields, then the family's attention and MoE dialect.
fn parse_standard(cfg: &Cfg, family: Family, arch: String) -> Result<ModelDesc> {
    let hidden = cfg.positive("hidden_size")?;
    let num_layers = cfg.positive("num_hidden_layers")?;
    let vocab = cfg.positive("vocab_size")?;
    let heads = cfg.positive("num_attention_heads")?;
    let kv_heads = cfg
        .opt_usize("num_key_value_heads")?
        .filter(|&k| k > 0)
        .unwrap_or(heads);
    if cfg.opt_usize("num_key_value_heads")? == Some(0) {
        return Err(cfg.err("num_key_value_heads", "must be greater than zero"));
    }
    let head_dim = match cfg.opt_usize("head_dim")? {
        Some(0) => return Err(cfg.err("head_dim", "must be greater than zero")),
        Some(h) => h,
        None => {
            if hidden % heads != 0 {
                return Err(cfg.err(
                    "head_dim",
                    format!(
                        "absent, and hidden_size {hidden} is not divisible by num_attention_heads {heads}"
                    ),
                ));
            }
            hidden / heads
        }
    };
    let attention_bias = cfg.opt_bool("attention_bias")?.unwrap_or(false);
    let mlp_bias = cfg.opt_bool("mlp_bias")?.unwrap_or(false);
    let tie = cfg.opt_bool("tie_word_embeddings")?.unwrap_or(false);
    let intermediate = cfg.opt_usize("intermediate_size")?;
    let attention = match family {
        Family::DeepseekV2 | Family::DeepseekV3 => {
            deepseek::attention(cfg, family, heads, attention_bias)?
        }
        _ => Attention::Gqa {
            heads,
            kv_heads,
            head_dim,
            // Qwen2-MoE always has q/k/v biases and no o bias; others follow `attention_bias`.
            qkv_bias: family == Family::Qwen2Moe || attention_bias,
            o_bias: family != Family::Qwen2Moe && attention_bias,
            qk_norm: match family {
                Family::Qwen3Moe => QkNorm::PerHead,
                Family::Olmoe => QkNorm::Full,
                _ => QkNorm::None,
            },
        },
    };
    check_attention(cfg, &attention)?;
    let MoePlan { moe, is_moe } = match family {
        Family::Mixtral | Family::Olmoe => mixtral::moe(cfg, family, intermediate)?,
        Family::Qwen2Moe | Family::Qwen3Moe => qwen::moe(cfg, family, num_layers)?,
        Family::Deepseek | Family::DeepseekV2 | Family::DeepseekV3 => {
            deepseek::moe(cfg, family, num_layers)?
        }
        Family::Llama | Family::Mistral | Family::Dbrx => MoePlan::dense(),
    };
    let mut layers = Vec::with_capacity(num_layers);
    for i in 0..num_layers {
        let ffn = match &moe {
            Some(m) if is_moe(i) => Ffn::Moe(m.clone()),
            _ => {
                let ff = match intermediate {
                    Some(f) if f > 0 => f,
                    _ => {
                        return Err(cfg.err(
                            "intermediate_size",
                            format!("missing or zero, but layer {i} is a dense layer"),
                        ))
                    }
                };
                Ffn::Dense {
                    intermediate_size: ff,
                    bias: mlp_bias,
                }
            }
        };
        layers.push(Layer {
            index: i,
            attention,
            ffn,
        });
    }
    let mtp_layers = if family == Family::DeepseekV3 {
        cfg.opt_usize("num_nextn_predict_layers")?.unwrap_or(0)
    } else {
        0
    };
    Ok(ModelDesc {
        source: cfg.file.to_string(),
        family,
        architecture: arch,
        hidden_size: hidden,
        vocab_size: vocab,
        tie_word_embeddings: tie,
        max_position_embeddings: cfg.opt_usize("max_position_embeddings")?,
        rope: rope(cfg, 10000.0)?,
        torch_dtype: torch_dtype(cfg)?,
        quantization: quantization(cfg)?,
        mtp_layers,
        norm_eps: cfg.opt_f64("rms_norm_eps")?.unwrap_or(1e-6),
        sliding_window: sliding_window(cfg, family)?,
        hidden_act: cfg.opt_str("hidden_act")?.unwrap_or("silu").to_string(),
        eos_token_ids: eos_ids(cfg)?,
        layers,
    })
}

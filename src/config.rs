//! Reading a Hugging Face `config.json` into a [`ModelDesc`]: every spelling real checkpoints use,
//! with a one-line error naming the file and field for anything missing or contradictory.

use crate::descriptor::{
    Attention, Family, Ffn, Layer, ModelDesc, Moe, QkNorm, Quantization, Rope, Router, Scoring,
    Shared,
};
use crate::error::{Error, Result};
use serde_json::{Map, Value};
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
    match family {
        Family::Dbrx => parse_dbrx(&cfg, arch),
        _ => parse_standard(&cfg, family, arch),
    }
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

/// Typed access to one JSON object of a config, with errors that name the file and field.
struct Cfg<'a> {
    file: &'a str,
    map: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Cfg<'a> {
    fn err(&self, field: &str, msg: impl Into<String>) -> Error {
        Error::field(self.file, &format!("{}{}", self.prefix, field), msg)
    }

    /// The value of a field, treating JSON `null` as absent.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn opt_usize(&self, field: &str) -> Result<Option<usize>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => as_usize(v).map(Some).ok_or_else(|| {
                self.err(field, format!("expected a non-negative integer, got {v}"))
            }),
        }
    }

    /// The first of several spellings that is present.
    fn opt_usize_any(&self, fields: &[&str]) -> Result<Option<usize>> {
        for f in fields {
            if let Some(v) = self.opt_usize(f)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn usize_any(&self, fields: &[&str]) -> Result<usize> {
        self.opt_usize_any(fields)?.ok_or_else(|| {
            let alts = if fields.len() > 1 {
                format!(" (also accepted: {})", fields[1..].join(", "))
            } else {
                String::new()
            };
            self.err(fields[0], format!("missing{alts}"))
        })
    }

    fn positive(&self, field: &str) -> Result<usize> {
        self.positive_any(&[field])
    }

    fn positive_any(&self, fields: &[&str]) -> Result<usize> {
        let v = self.usize_any(fields)?;
        if v == 0 {
            return Err(self.err(fields[0], "must be greater than zero"));
        }
        Ok(v)
    }

    fn opt_f64(&self, field: &str) -> Result<Option<f64>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected a number, got {v}"))),
        }
    }

    fn opt_bool(&self, field: &str) -> Result<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            // Some configs write flags as 0/1.
            Some(v) if as_usize(v).is_some_and(|n| n <= 1) => Ok(as_usize(v).map(|n| n == 1)),
            Some(v) => Err(self.err(field, format!("expected true or false, got {v}"))),
        }
    }

    fn opt_str(&self, field: &str) -> Result<Option<&'a str>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(field, format!("expected a string, got {v}"))),
        }
    }

    fn object(&self, field: &str) -> Result<Option<&'a Map<String, Value>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.err(field, format!("expected an object, got {v}"))),
        }
    }

    fn usize_list(&self, field: &str) -> Result<Vec<usize>> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    as_usize(v).ok_or_else(|| {
                        self.err(field, format!("expected a list of layer indices, got {v}"))
                    })
                })
                .collect(),
            Some(v) => Err(self.err(field, format!("expected a list, got {v}"))),
        }
    }
}

fn as_usize(v: &Value) -> Option<usize> {
    if let Some(u) = v.as_u64() {
        return usize::try_from(u).ok();
    }
    // Integral floats such as `40.0` appear in real files.
    v.as_f64()
        .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 9.0e15)
        .map(|f| f as usize)
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

fn torch_dtype(cfg: &Cfg) -> Result<Option<String>> {
    Ok(cfg
        .opt_str("torch_dtype")?
        .or(cfg.opt_str("dtype")?)
        .map(str::to_string))
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
            let q_lora_rank = cfg.opt_usize("q_lora_rank")?.filter(|&r| r > 0);
            Attention::Mla {
                heads,
                q_lora_rank,
                kv_lora_rank: cfg.positive("kv_lora_rank")?,
                qk_nope_head_dim: cfg.positive("qk_nope_head_dim")?,
                qk_rope_head_dim: cfg.positive("qk_rope_head_dim")?,
                v_head_dim: cfg.positive("v_head_dim")?,
                bias: attention_bias,
                rope_interleave: family == Family::DeepseekV2
                    || cfg.opt_bool("rope_interleave")?.unwrap_or(true),
            }
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

    // Which layers are MoE, and the MoE block they carry.
    let (moe, is_moe_layer): (Option<Moe>, Box<dyn Fn(usize) -> bool>) = match family {
        Family::Llama | Family::Mistral => (None, Box::new(|_| false)),
        Family::Mixtral | Family::Olmoe => {
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
            let m = Moe {
                num_experts: e,
                top_k: k,
                expert_intermediate_size: ff,
                shared: None,
                router: Router {
                    scoring: Scoring::Softmax,
                    // Mixtral renormalises its top-2; OLMoE follows `norm_topk_prob`.
                    norm_topk_prob: if family == Family::Mixtral {
                        true
                    } else {
                        cfg.opt_bool("norm_topk_prob")?.unwrap_or(false)
                    },
                    routed_scaling_factor: 1.0,
                    n_group: 1,
                    topk_group: 1,
                    topk_method: "topk".into(),
                    correction_bias: false,
                },
            };
            check_moe(cfg, &m, experts_field, "num_experts_per_tok")?;
            (Some(m), Box::new(|_| true))
        }
        Family::Qwen2Moe | Family::Qwen3Moe => {
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
            let m = Moe {
                num_experts: e,
                top_k: k,
                expert_intermediate_size: ff,
                shared,
                router: Router {
                    scoring: Scoring::Softmax,
                    norm_topk_prob: cfg.opt_bool("norm_topk_prob")?.unwrap_or(false),
                    routed_scaling_factor: 1.0,
                    n_group: 1,
                    topk_group: 1,
                    topk_method: "topk".into(),
                    correction_bias: false,
                },
            };
            if e == 0 {
                (None, Box::new(|_| false))
            } else {
                check_moe(cfg, &m, "num_experts", "num_experts_per_tok")?;
                (
                    Some(m),
                    Box::new(move |i| !mlp_only.contains(&i) && (i + 1) % step == 0),
                )
            }
        }
        Family::Deepseek | Family::DeepseekV2 | Family::DeepseekV3 => {
            let e = cfg.opt_usize("n_routed_experts")?.unwrap_or(0);
            if e == 0 {
                (None, Box::new(|_| false))
            } else {
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
                // absent fields take the defaults of transformers' config classes (V3: sigmoid,
                // renormalised, scaled by 2.5, 8 groups keeping 4)
                let v3 = family == Family::DeepseekV3;
                let default_scoring = if v3 { "sigmoid" } else { "softmax" };
                let scoring = match cfg.opt_str("scoring_func")?.unwrap_or(default_scoring) {
                    "softmax" => Scoring::Softmax,
                    "sigmoid" => Scoring::Sigmoid,
                    other => {
                        return Err(cfg.err(
                            "scoring_func",
                            format!(
                                "unknown scoring function `{other}` (expected softmax or sigmoid)"
                            ),
                        ))
                    }
                };
                let topk_method = cfg
                    .opt_str("topk_method")?
                    .unwrap_or(match family {
                        Family::DeepseekV3 => "noaux_tc",
                        _ => "greedy",
                    })
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
                        norm_topk_prob: cfg.opt_bool("norm_topk_prob")?.unwrap_or(v3),
                        routed_scaling_factor: cfg
                            .opt_f64("routed_scaling_factor")?
                            .unwrap_or(if v3 { 2.5 } else { 1.0 }),
                        n_group,
                        topk_group,
                        correction_bias: topk_method == "noaux_tc",
                        topk_method,
                    },
                };
                check_moe(cfg, &m, "n_routed_experts", "num_experts_per_tok")?;
                (
                    Some(m),
                    Box::new(move |i| i >= first_dense && i % freq == 0),
                )
            }
        }
        Family::Dbrx => unreachable!("DBRX is parsed by parse_dbrx"),
    };

    let mut layers = Vec::with_capacity(num_layers);
    for i in 0..num_layers {
        let ffn = match &moe {
            Some(m) if is_moe_layer(i) => Ffn::Moe(m.clone()),
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

fn parse_dbrx(cfg: &Cfg, arch: String) -> Result<ModelDesc> {
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
    let moe = Moe {
        num_experts: ffn.positive("moe_num_experts")?,
        top_k: ffn.positive("moe_top_k")?,
        expert_intermediate_size: ffn.positive("ffn_hidden_size")?,
        shared: None,
        router: Router {
            scoring: Scoring::Softmax,
            norm_topk_prob: ffn
                .opt_f64("moe_normalize_expert_weights")?
                .is_some_and(|p| p > 0.0),
            routed_scaling_factor: 1.0,
            n_group: 1,
            topk_group: 1,
            topk_method: "topk".into(),
            correction_bias: false,
        },
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

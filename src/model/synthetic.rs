//! Built-in synthetic models: the configs of seeded random-weight models of real families'
//! shapes (`synthetic:NAME`), and shrunk configs of presets for `moecap synth`. Their weights are
//! made by the engine (`crate::engine::synthetic`); their outputs are meaningless text, their
//! shapes, routing mechanics and costs those of the real families.

use crate::error::{Error, Result};
use crate::model::config::parse_config;
use crate::model::descriptor::ModelDesc;

/// A synthetic model: name, description, config.
#[derive(Debug)]
pub struct SyntheticModel {
    /// Used as `synthetic:NAME`.
    pub name: &'static str,
    /// What it is for.
    pub about: &'static str,
    /// Its `config.json`.
    pub config: &'static str,
}

/// The built-in synthetic models.
pub const SYNTHETIC: &[SyntheticModel] = &[
    SyntheticModel {
        name: "tiny-mixtral",
        about: "Mixtral layout, hidden 64, 4 layers, 8 experts top-2: for tests",
        config: r#"{"architectures":["MixtralForCausalLM"],"hidden_size":64,"num_hidden_layers":4,
            "num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":128,"vocab_size":512,
            "num_local_experts":8,"num_experts_per_tok":2,"rope_theta":10000.0,"rms_norm_eps":1e-5,
            "eos_token_id":2,"max_position_embeddings":4096}"#,
    },
    SyntheticModel {
        name: "tiny-qwen2-moe",
        about: "Qwen2-MoE layout with a gated shared expert and one dense layer: for tests",
        config: r#"{"architectures":["Qwen2MoeForCausalLM"],"hidden_size":64,"num_hidden_layers":4,
            "num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":128,
            "moe_intermediate_size":32,"shared_expert_intermediate_size":64,"num_experts":16,
            "num_experts_per_tok":4,"mlp_only_layers":[2],"vocab_size":512,"rope_theta":10000.0,
            "eos_token_id":2,"max_position_embeddings":4096}"#,
    },
    SyntheticModel {
        name: "mixtral-mid",
        about: "Mixtral layout, hidden 1024, 8 layers, 8 experts of 2048, top-2, vocab 32000 (~0.49B parameters): for CPU benchmarks",
        config: r#"{"architectures":["MixtralForCausalLM"],"hidden_size":1024,"num_hidden_layers":8,
            "num_attention_heads":16,"num_key_value_heads":4,"intermediate_size":2048,"vocab_size":32000,
            "num_local_experts":8,"num_experts_per_tok":2,"rope_theta":1000000.0,"rms_norm_eps":1e-5,
            "eos_token_id":2,"max_position_embeddings":32768}"#,
    },
    SyntheticModel {
        name: "olmoe-mid",
        about: "OLMoE layout, hidden 1024, 8 layers, 64 experts of 512, top-8, vocab 50304: fine-grained experts for CPU benchmarks",
        config: r#"{"architectures":["OlmoeForCausalLM"],"hidden_size":1024,"num_hidden_layers":8,
            "num_attention_heads":16,"num_key_value_heads":16,"intermediate_size":512,"vocab_size":50304,
            "num_experts":64,"num_experts_per_tok":8,"rope_theta":10000.0,"rms_norm_eps":1e-5,
            "eos_token_id":50279,"max_position_embeddings":4096}"#,
    },
    SyntheticModel {
        name: "deepseek-v2-lite-mid",
        about: "DeepSeek-V2-Lite layout (latent attention, YaRN, 2 shared + 64 routed experts, top-6, first layer dense), hidden 1024, 8 layers, vocab 32000: for CPU benchmarks",
        config: r#"{"architectures":["DeepseekV2ForCausalLM"],"model_type":"deepseek_v2","hidden_size":1024,
            "num_hidden_layers":8,"num_attention_heads":16,"num_key_value_heads":16,"q_lora_rank":null,
            "kv_lora_rank":256,"qk_nope_head_dim":64,"qk_rope_head_dim":32,"v_head_dim":64,
            "intermediate_size":2816,"moe_intermediate_size":352,"n_routed_experts":64,
            "n_shared_experts":2,"num_experts_per_tok":6,"first_k_dense_replace":1,"moe_layer_freq":1,
            "topk_method":"greedy","norm_topk_prob":false,"routed_scaling_factor":1.0,
            "scoring_func":"softmax","vocab_size":32000,"rms_norm_eps":1e-6,"rope_theta":10000.0,
            "rope_scaling":{"type":"yarn","factor":40.0,"original_max_position_embeddings":4096,
            "beta_fast":32,"beta_slow":1,"mscale":0.707,"mscale_all_dim":0.707},
            "max_position_embeddings":163840,"eos_token_id":2,"bos_token_id":1}"#,
    },
];

/// The descriptor of a synthetic model.
pub fn synthetic_desc(name: &str) -> Result<ModelDesc> {
    let m = SYNTHETIC.iter().find(|m| m.name == name).ok_or_else(|| {
        Error::Invalid(format!(
            "synthetic:{name}: unknown; synthetic models: {}",
            SYNTHETIC
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let mut d = parse_config(m.config, &format!("synthetic:{name}"))?;
    d.source = format!("synthetic:{name}");
    Ok(d)
}

/// Sizes to change when writing a synthetic copy of a preset.
#[derive(Debug, Clone, Default)]
pub struct Shrink {
    /// New hidden size (intermediate sizes scale with it; head counts stay, head size follows).
    pub hidden: Option<usize>,
    /// New layer count.
    pub layers: Option<usize>,
    /// New routed-expert count (top-k is capped to it).
    pub experts: Option<usize>,
    /// New vocabulary size.
    pub vocab: Option<usize>,
    /// New attention head count (KV heads are capped to it).
    pub heads: Option<usize>,
}

/// The `config.json` of a synthetic model or a preset, with `shrink` applied; the result parses
/// as a valid config of the same family.
pub fn shrunk_config(like: &str, shrink: &Shrink) -> Result<serde_json::Value> {
    // `synthetic:NAME`, as `--model` spells it, names the same model
    let name = like.strip_prefix("synthetic:").unwrap_or(like);
    let text = match SYNTHETIC.iter().find(|m| m.name == name) {
        Some(m) => m.config,
        None => {
            crate::model::presets::find_preset(name)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "--like {like}: not a synthetic model ({}) or a preset (moecap models)",
                        SYNTHETIC
                            .iter()
                            .map(|m| m.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?
                .config
        }
    };
    let mut v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::Invalid(e.to_string()))?;
    let dbrx = v.get("d_model").is_some();
    // (top-level key, nested object and key) per concept: Hugging Face names, or DBRX's.
    let key = |hf: &'static str,
               dbrx_path: (&'static str, &'static str)|
     -> (&'static str, &'static str) {
        if dbrx {
            dbrx_path
        } else {
            ("", hf)
        }
    };
    fn slot<'v>(
        v: &'v mut serde_json::Value,
        (obj, k): (&str, &str),
    ) -> Option<&'v mut serde_json::Value> {
        let o = if obj.is_empty() { v } else { v.get_mut(obj)? };
        o.as_object_mut()?.get_mut(k)
    }
    fn num(v: &mut serde_json::Value, at: (&str, &str)) -> Option<u64> {
        slot(v, at).and_then(|x| x.as_u64())
    }
    fn set(v: &mut serde_json::Value, at: (&str, &str), n: u64) {
        if let Some(x) = slot(v, at) {
            *x = n.into();
        } else if at.0.is_empty() {
            if let Some(o) = v.as_object_mut() {
                o.insert(at.1.into(), n.into());
            }
        }
    }
    let hidden_k = key("hidden_size", ("", "d_model"));
    let heads_k = key("num_attention_heads", ("", "n_heads"));
    let kv_k = key("num_key_value_heads", ("attn_config", "kv_n_heads"));
    let layers_k = key("num_hidden_layers", ("", "n_layers"));
    if let Some(h) = shrink.heads {
        if h == 0 {
            return Err(Error::Invalid("--heads must be positive".into()));
        }
        set(&mut v, heads_k, h as u64);
        let kv = num(&mut v, kv_k).unwrap_or(h as u64);
        if kv > h as u64 || !(h as u64).is_multiple_of(kv) {
            set(&mut v, kv_k, h as u64);
        }
    }
    if let Some(h) = shrink.hidden {
        let old = num(&mut v, hidden_k).unwrap_or(1);
        let heads = num(&mut v, heads_k).unwrap_or(1);
        if h == 0 || !(h as u64).is_multiple_of(heads) {
            return Err(Error::Invalid(format!(
                "--hidden {h} must be a positive multiple of the head count ({heads}); set --heads too"
            )));
        }
        let ratio = h as f64 / old as f64;
        for at in [
            ("", "intermediate_size"),
            ("", "moe_intermediate_size"),
            ("", "shared_expert_intermediate_size"),
            ("ffn_config", "ffn_hidden_size"),
        ] {
            if let Some(x) = num(&mut v, at) {
                set(&mut v, at, (x as f64 * ratio).round().max(1.0) as u64);
            }
        }
        if num(&mut v, ("", "head_dim")).is_some() {
            set(&mut v, ("", "head_dim"), h as u64 / heads);
        }
        set(&mut v, hidden_k, h as u64);
    }
    if let Some(l) = shrink.layers {
        set(&mut v, layers_k, l as u64);
        if let Some(serde_json::Value::Array(a)) = slot(&mut v, ("", "mlp_only_layers")) {
            a.retain(|x| x.as_u64().is_some_and(|i| (i as usize) < l));
        }
        if num(&mut v, ("", "first_k_dense_replace")).is_some_and(|f| f as usize > l) {
            set(&mut v, ("", "first_k_dense_replace"), l as u64);
        }
    }
    if let Some(e) = shrink.experts {
        let at = [
            ("", "num_local_experts"),
            ("", "num_experts"),
            ("", "n_routed_experts"),
            ("ffn_config", "moe_num_experts"),
        ]
        .into_iter()
        .find(|at| slot(&mut v, *at).is_some())
        .ok_or_else(|| Error::Invalid("--experts: this layout has no experts".into()))?;
        set(&mut v, at, e as u64);
        for k in [("", "num_experts_per_tok"), ("ffn_config", "moe_top_k")] {
            if num(&mut v, k).is_some_and(|k| k as usize > e) {
                set(&mut v, k, e as u64);
            }
        }
        // Keep group-limited routing feasible: groups must divide the experts and the kept
        // groups must hold at least top-k experts; otherwise route without groups.
        let k = num(&mut v, ("", "num_experts_per_tok")).unwrap_or(1);
        let g = num(&mut v, ("", "n_group")).unwrap_or(1).max(1);
        let kept = num(&mut v, ("", "topk_group")).unwrap_or(g);
        if g > 1 && (!(e as u64).is_multiple_of(g) || (e as u64 / g) * kept < k) {
            set(&mut v, ("", "n_group"), 1);
            set(&mut v, ("", "topk_group"), 1);
        }
    }
    if let Some(vs) = shrink.vocab {
        set(&mut v, ("", "vocab_size"), vs as u64);
    }
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Error::Invalid("config is not an object".into()))?;
    // The weights are written in f32, unquantised.
    obj.remove("quantization_config");
    obj.remove("dtype");
    obj.insert("torch_dtype".into(), "float32".into());
    // validate, and name the model type as transformers expects it
    let desc = parse_config(&v.to_string(), &format!("synth --like {like}"))?;
    if let Some(o) = v.as_object_mut() {
        o.entry("model_type")
            .or_insert_with(|| desc.family.short().into());
    }
    Ok(v)
}

//! Built-in synthetic models: seeded random weights of preset shapes, built in memory, so that
//! the engine, the tests and the benchmarks run without downloading anything. Their outputs are
//! meaningless text; their shapes, routing mechanics and costs are those of the real families.

use super::sampling::SplitMix64;
use super::weights::WeightStore;
use crate::config::parse_config;
use crate::descriptor::ModelDesc;
use crate::error::{Error, Result};
use crate::tensors::expected_tensors;
use candle_core::{Device, Tensor};
use std::collections::HashMap;

/// A synthetic model: name, description, config.
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
];

/// The descriptor of a synthetic model.
pub fn synthetic_desc(name: &str) -> Result<ModelDesc> {
    let m = SYNTHETIC.iter().find(|m| m.name == name).ok_or_else(|| {
        Error::Invalid(format!(
            "--model synthetic:{name}: unknown; synthetic models: {}",
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

/// Seeded random weights for every tensor of `desc`: norms near 1, matrices uniform with
/// variance `1/fan_in` (so activations keep their scale through the layers), router gates
/// sharper so that routing is far from uniform ties.
pub fn random_tensors(desc: &ModelDesc, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (i, (name, shape)) in expected_tensors(desc).into_iter().enumerate() {
        let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let n: usize = shape.iter().product();
        let norm = shape.len() == 1 && name.contains("norm");
        let (center, half) = if norm {
            (1.0f32, 0.1f32)
        } else {
            let fan_in = *shape.last().unwrap_or(&1) as f32;
            let mut a = (3.0 / fan_in).sqrt();
            if name.ends_with(".gate.weight") || name.ends_with("router.layer.weight") {
                a *= 4.0;
            }
            if name.contains("embed_tokens") {
                a = 1.0;
            }
            (0.0, a)
        };
        let data: Vec<f32> = (0..n)
            .map(|_| center + half * (2.0 * rng.next_f64() as f32 - 1.0))
            .collect();
        out.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
    }
    Ok(out)
}

/// A weight store of seeded random weights.
pub fn synthetic_weights(desc: &ModelDesc, seed: u64) -> Result<WeightStore> {
    Ok(WeightStore::from_tensors(
        random_tensors(desc, seed)?,
        &desc.source,
    ))
}

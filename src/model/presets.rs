//! The `config.json` presets of real checkpoints shipped in `models/`, embedded in the binary.

use crate::error::Result;
use crate::model::config::parse_config;
use crate::model::descriptor::ModelDesc;

/// A preset: a short name, the checkpoint it mirrors, and its `config.json` text.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// The name used with `--model`.
    pub name: &'static str,
    /// The Hugging Face repository the config comes from.
    pub hub_id: &'static str,
    /// The `config.json` text.
    pub config: &'static str,
}

macro_rules! preset {
    ($name:literal, $hub:literal) => {
        Preset {
            name: $name,
            hub_id: $hub,
            config: include_str!(concat!("../../models/", $name, "/config.json")),
        }
    };
}

/// Every preset, in display order.
pub const PRESETS: &[Preset] = &[
    preset!("mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1"),
    preset!("mixtral-8x22b", "mistralai/Mixtral-8x22B-v0.1"),
    preset!("qwen1.5-moe-a2.7b", "Qwen/Qwen1.5-MoE-A2.7B"),
    preset!("qwen2-57b-a14b", "Qwen/Qwen2-57B-A14B"),
    preset!("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B"),
    preset!("qwen3-235b-a22b", "Qwen/Qwen3-235B-A22B"),
    preset!("deepseek-moe-16b", "deepseek-ai/deepseek-moe-16b-base"),
    preset!("deepseek-v2-lite", "deepseek-ai/DeepSeek-V2-Lite"),
    preset!("deepseek-v2", "deepseek-ai/DeepSeek-V2"),
    preset!("deepseek-v3", "deepseek-ai/DeepSeek-V3"),
    preset!("olmoe-1b-7b", "allenai/OLMoE-1B-7B-0924"),
    preset!("dbrx", "databricks/dbrx-base"),
];

/// Finds a preset by name, ignoring case (a `preset:` prefix is allowed).
pub fn find_preset(name: &str) -> Option<&'static Preset> {
    let n = name.strip_prefix("preset:").unwrap_or(name);
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(n))
}

/// Parses a preset's config into a descriptor.
pub fn preset_desc(p: &Preset) -> Result<ModelDesc> {
    let mut d = parse_config(p.config, &format!("preset:{}", p.name))?;
    d.source = format!("preset:{}", p.name);
    Ok(d)
}

//! `moecap bench`: sweeps of batch size × prompt length on the engine, one point at a time.
//! [`prompts`] makes the inputs, [`run`] runs a point, [`summary`] turns its repetitions into
//! figures, [`output`] keeps the run folder (settings, finished points, records, routing) so an
//! interrupted sweep resumes; [`crate::export`] writes the reports.

pub mod output;
pub mod prompts;
pub mod run;
pub mod summary;
pub mod sweep;

use crate::machine::ceilings::Ceilings;
use crate::machine::detect::HostInfo;
use crate::machine::targets::SpecInfo;
use serde::{Deserialize, Serialize};
use summary::PointSummary;

/// The settings of a run: a resumed run must have the same ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// `--model` as given.
    pub model: String,
    /// The model's display name.
    pub model_name: String,
    /// Whether the weights are synthetic (random).
    pub synthetic: bool,
    /// Engine device.
    pub device: String,
    /// Engine dtype.
    pub dtype: String,
    /// Generated tokens per sequence.
    pub gen_len: usize,
    /// Warm-up repetitions.
    pub warmup: usize,
    /// Timed repetitions.
    pub repetitions: usize,
    /// Prompt source label.
    pub prompts: String,
    /// How prompt text becomes ids.
    pub tokenisation: String,
    /// Seed of random prompts.
    pub seed: u64,
    /// Seed of synthetic weights (`None`: the checkpoint's own weights).
    #[serde(default)]
    pub weights_seed: Option<u64>,
    /// Probe on (false: no-probe mode).
    pub probe: bool,
    /// The hardware-table row the spec peaks come from.
    pub hardware: Option<String>,
}

impl RunSettings {
    /// The first setting that differs from `other`, as `(name, this, other)`.
    pub fn difference(&self, other: &RunSettings) -> Option<(String, String, String)> {
        let a = serde_json::to_value(self).ok()?;
        let b = serde_json::to_value(other).ok()?;
        let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (a, b) else {
            return None;
        };
        for (k, va) in &a {
            let vb = b.get(k).cloned().unwrap_or(serde_json::Value::Null);
            if *va != vb {
                return Some((k.clone(), va.to_string(), vb.to_string()));
            }
        }
        None
    }
}

/// Everything `summary.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// moecap version.
    pub moecap_version: String,
    /// Run settings.
    pub settings: RunSettings,
    /// The host.
    pub host: HostInfo,
    /// The GPU, when the engine ran on one.
    pub gpu: Option<crate::machine::detect::GpuInfo>,
    /// Measured ceilings.
    pub ceilings: Option<Ceilings>,
    /// Spec peaks.
    pub spec: Option<SpecInfo>,
    /// Model parameters, total and activated per token.
    pub params_total: u64,
    /// Activated per token.
    pub params_active: u64,
    /// KV cache kind in use.
    pub kv_cache: String,
    /// Finished points, in sweep order.
    pub points: Vec<PointSummary>,
    /// The points priced on a deployment (`--deployment`, or `--hardware` with `--devices`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::accounting::money::CostReport>,
}

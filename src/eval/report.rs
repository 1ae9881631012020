//! What an evaluation reports (`summary.json`): per task its metrics with standard errors, the
//! run's settings, and the performance of the very passes that produced the answers.

use super::TaskSummary;
use crate::accounting::metrics::PhaseMetrics;
use serde::Serialize;

/// The performance leg of the run: the probe's passes against spec and measured peaks.
#[derive(Debug, Clone, Serialize)]
pub struct Performance {
    /// Passes recorded.
    pub passes: usize,
    /// The hardware-table row of the spec peaks.
    pub spec_hardware: Option<String>,
    /// Prefill against the spec peaks.
    pub prefill_spec: Option<PhaseMetrics>,
    /// Decode against the spec peaks.
    pub decode_spec: Option<PhaseMetrics>,
    /// Prefill against the measured ceilings.
    pub prefill_measured: Option<PhaseMetrics>,
    /// Decode against the measured ceilings.
    pub decode_measured: Option<PhaseMetrics>,
}

/// Everything `summary.json` of an evaluation holds.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// moecap version.
    pub moecap_version: String,
    /// The model argument as given.
    pub model: String,
    /// The model's display name.
    pub model_name: String,
    /// Whether the weights are random.
    pub synthetic: bool,
    /// Engine device as named.
    pub device: String,
    /// Engine dtype.
    pub dtype: String,
    /// The data folder.
    pub data: String,
    /// Whether the data is the committed sample.
    pub sample_data: bool,
    /// Chat mode.
    pub chat: bool,
    /// Items per task at most.
    pub limit: Option<usize>,
    /// Seed of sampled exemplars.
    pub seed: u64,
    /// Sequences per pass.
    pub batch: usize,
    /// Per task.
    pub tasks: Vec<TaskSummary>,
    /// The probe's passes against the peaks (none without the probe).
    pub performance: Option<Performance>,
}

//! What an evaluation reports (`summary.json`): per task its metrics with standard errors, the
//! run's settings, and the performance of the very passes that produced the answers.

use super::TaskSummary;
use crate::accounting::deployment::Deployment;
use crate::accounting::metrics::PhaseMetrics;
use crate::accounting::money::{cost_report, CostFormula, CostReport, PointInput};
use crate::error::Result;
use crate::machine::energy::MeasuredPower;
use serde::{Deserialize, Serialize};

/// The performance leg of the run: the probe's passes against spec and measured peaks.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// MMLU subjects as chosen (`--subjects`; all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<String>,
    /// Seed of sampled exemplars.
    pub seed: u64,
    /// Items per step (`--batch`).
    pub batch: usize,
    /// Per task.
    pub tasks: Vec<TaskSummary>,
    /// The probe's passes against the peaks (none without the probe).
    pub performance: Option<Performance>,
    /// Mean power over the evaluation, where the machine exposes counters (RAPL, NVML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<MeasuredPower>,
    /// The evaluation priced on a deployment (one point, `eval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostReport>,
}

impl EvalReport {
    /// The report with its cost section when a deployment is given.
    pub fn priced(mut self, deployment: Option<&(Deployment, CostFormula)>) -> Result<Self> {
        if let (Some((d, f)), Some(input)) = (deployment, self.cost_input()) {
            self.cost = Some(cost_report(d, *f, &[input])?);
        }
        Ok(self)
    }

    /// What pricing needs: the passes' throughputs (measured peaks' view, else spec), their
    /// summed time and the power over the run.
    pub fn cost_input(&self) -> Option<PointInput> {
        let p = self.performance.as_ref()?;
        let pre = p.prefill_measured.as_ref().or(p.prefill_spec.as_ref());
        let dec = p.decode_measured.as_ref().or(p.decode_spec.as_ref());
        if pre.is_none() && dec.is_none() {
            return None;
        }
        Some(PointInput {
            point: "eval".into(),
            prefill_tokens_per_s: pre.map(|m| m.tokens_per_s),
            decode_tokens_per_s: dec.map(|m| m.tokens_per_s),
            seconds: pre.map_or(0.0, |m| m.total_time_s) + dec.map_or(0.0, |m| m.total_time_s),
            power: self.power,
        })
    }
}

//! `moecap eval`: accuracy on real datasets in lm-evaluation-harness's formats, from the same
//! engine passes that the probe times and traces. [`tasks`] builds prompts from the data folder,
//! [`score`] runs them; this module turns per-item results into each task's metrics.

pub mod chat;
pub mod fewshot;
pub mod outdir;
pub mod report;
pub mod run;
pub mod score;
pub mod tasks;

use score::{Accuracy, ChoiceResult, GenResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A task's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// Task name.
    pub task: String,
    /// Exemplars in each prompt.
    pub shots: usize,
    /// Metric name → accuracy (`acc`, `acc_norm` per character as lm-evaluation-harness,
    /// `acc_bytes` per UTF-8 byte; GSM8K: `exact_match_strict`,
    /// `exact_match_flexible`).
    pub metrics: BTreeMap<String, Accuracy>,
    /// Per group (MMLU subject): `acc`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub groups: BTreeMap<String, Accuracy>,
    /// Wall seconds this run spent on the task (the items it scored; a resumed run's earlier
    /// items are not timed again).
    #[serde(default)]
    pub seconds: f64,
    /// Items scored in those seconds.
    #[serde(default)]
    pub items_timed: usize,
}

impl TaskSummary {
    /// Items per second of this run's scoring.
    pub fn items_per_s(&self) -> Option<f64> {
        (self.seconds > 0.0 && self.items_timed > 0).then(|| self.items_timed as f64 / self.seconds)
    }
}

/// Metrics of a multiple-choice task. MMLU's aggregate is over all its items (each subject
/// weighted by its size, as lm-evaluation-harness aggregates the group) and it reports `acc`
/// only, like the harness.
pub fn summarise_choices(task: &str, shots: usize, r: &[ChoiceResult]) -> TaskSummary {
    let mut metrics = BTreeMap::new();
    metrics.insert(
        "acc".into(),
        Accuracy::of(r.iter().map(|x| x.pred == x.gold)),
    );
    if task != "mmlu" {
        metrics.insert(
            "acc_norm".into(),
            Accuracy::of(r.iter().map(|x| x.pred_norm == x.gold)),
        );
        metrics.insert(
            "acc_bytes".into(),
            Accuracy::of(r.iter().map(|x| x.pred_bytes == x.gold)),
        );
    }
    let mut by: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for x in r.iter().filter(|x| !x.group.is_empty()) {
        by.entry(x.group.clone())
            .or_default()
            .push(x.pred == x.gold);
    }
    TaskSummary {
        task: task.into(),
        shots,
        metrics,
        groups: by.into_iter().map(|(g, v)| (g, Accuracy::of(v))).collect(),
        seconds: 0.0,
        items_timed: 0,
    }
}

/// Metrics of GSM8K: exact match of the strict and the flexible extraction.
pub fn summarise_gen(task: &str, shots: usize, r: &[GenResult]) -> TaskSummary {
    let mut metrics = BTreeMap::new();
    metrics.insert(
        "exact_match_strict".into(),
        Accuracy::of(r.iter().map(GenResult::correct_strict)),
    );
    metrics.insert(
        "exact_match_flexible".into(),
        Accuracy::of(r.iter().map(GenResult::correct_flexible)),
    );
    TaskSummary {
        task: task.into(),
        shots,
        metrics,
        groups: BTreeMap::new(),
        seconds: 0.0,
        items_timed: 0,
    }
}

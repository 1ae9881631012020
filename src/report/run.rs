//! A finished report folder read back: a bench run (`summary.json` with `points`) or an
//! evaluation (`summary.json` with `tasks`), with what the cost, compare and report stages need of
//! it.

use crate::accounting::money::{CostReport, PointInput};
use crate::bench::summary::cost_input;
use crate::bench::BenchReport;
use crate::error::{Error, Result};
use crate::eval::report::EvalReport;
use crate::model::dtype::DType;
use crate::model::params::model_params;
use crate::model::source::Checkpoint;
use std::path::{Path, PathBuf};

/// What a folder holds.
#[derive(Debug, Clone)]
pub enum RunKind {
    /// A bench sweep.
    Bench(Box<BenchReport>),
    /// An evaluation.
    Eval(Box<EvalReport>),
}

/// A report folder.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The folder.
    pub dir: PathBuf,
    /// Its summary.
    pub kind: RunKind,
}

impl RunView {
    /// Reads `dir/summary.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        let file = dir.join("summary.json");
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        let json_err = |msg: String| Error::Json {
            file: file.display().to_string(),
            msg,
        };
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| json_err(e.to_string()))?;
        let kind = if v.get("points").is_some() {
            RunKind::Bench(Box::new(
                serde_json::from_value(v)
                    .map_err(|e| json_err(format!("not a bench summary: {e}")))?,
            ))
        } else if v.get("tasks").is_some() {
            RunKind::Eval(Box::new(
                serde_json::from_value(v)
                    .map_err(|e| json_err(format!("not an eval summary: {e}")))?,
            ))
        } else {
            return Err(json_err(
                "neither a bench summary (`points`) nor an eval summary (`tasks`)".into(),
            ));
        };
        Ok(RunView {
            dir: dir.to_path_buf(),
            kind,
        })
    }

    /// The model's display name.
    pub fn model_name(&self) -> &str {
        match &self.kind {
            RunKind::Bench(b) => &b.settings.model_name,
            RunKind::Eval(e) => &e.model_name,
        }
    }

    /// A short label: the folder's name.
    pub fn label(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.dir.display().to_string())
    }

    /// The hardware-table row its spec peaks came from.
    pub fn spec_hardware(&self) -> Option<String> {
        match &self.kind {
            RunKind::Bench(b) => b.settings.hardware.clone(),
            RunKind::Eval(e) => e.performance.as_ref()?.spec_hardware.clone(),
        }
    }

    /// Bytes of the weights as the engine held them (0 when the model cannot be resolved again).
    pub fn weight_bytes(&self) -> f64 {
        match &self.kind {
            RunKind::Bench(b) => {
                b.params_total as f64 * DType::parse(&b.settings.dtype).map_or(4.0, DType::bytes)
            }
            RunKind::Eval(e) => Checkpoint::resolve(&e.model).map_or(0.0, |ck| {
                model_params(&ck.desc).total() as f64
                    * DType::parse(&e.dtype).map_or(4.0, DType::bytes)
            }),
        }
    }

    /// Every priced point: bench points, or the evaluation as one point.
    pub fn cost_inputs(&self) -> Vec<PointInput> {
        match &self.kind {
            RunKind::Bench(b) => b.points.iter().map(cost_input).collect(),
            RunKind::Eval(e) => e.cost_input().into_iter().collect(),
        }
    }

    /// The cost section the run was written with.
    pub fn cost(&self) -> Option<&CostReport> {
        match &self.kind {
            RunKind::Bench(b) => b.cost.as_ref(),
            RunKind::Eval(e) => e.cost.as_ref(),
        }
    }

    /// The bench report, if it is one.
    pub fn bench(&self) -> Option<&BenchReport> {
        match &self.kind {
            RunKind::Bench(b) => Some(b),
            RunKind::Eval(_) => None,
        }
    }

    /// The eval report, if it is one.
    pub fn eval(&self) -> Option<&EvalReport> {
        match &self.kind {
            RunKind::Eval(e) => Some(e),
            RunKind::Bench(_) => None,
        }
    }
}

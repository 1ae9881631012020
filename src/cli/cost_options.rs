//! The flags of pricing and reporting: the deployment a run is priced on (shared by `bench`,
//! `eval`, `cost` and `report`), and the options of `cost`, `report` and `compare`.

use clap::Args;
use std::path::PathBuf;

/// Which parts a run is priced on.
#[derive(Args, Clone, Default)]
pub(crate) struct DeploymentArgs {
    /// A deployment file (JSON parts list, see docs/COST.md) to price the run on.
    #[arg(long, value_name = "FILE")]
    pub(crate) deployment: Option<PathBuf>,
    /// Price the run on a default deployment of this many --hardware devices plus a host sized
    /// to the model.
    #[arg(long, value_name = "N", conflicts_with = "deployment")]
    pub(crate) devices: Option<usize>,
}

#[derive(Args)]
pub(crate) struct CostArgs {
    /// A bench or eval report folder (its summary.json).
    #[arg(long, value_name = "DIR")]
    pub(crate) run: PathBuf,
    #[command(flatten)]
    pub(crate) deployment: DeploymentArgs,
    /// The device of a default deployment [default: the run's spec hardware].
    #[arg(long, value_name = "NAME")]
    pub(crate) hardware: Option<String>,
    /// exact (docs/metrics.md §4) or moecap-compat (adds the published harness's cost).
    #[arg(long, default_value = "exact")]
    pub(crate) formula: String,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// Bench or eval report folders.
    #[arg(value_name = "RUN_DIR", required = true)]
    pub(crate) runs: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long, value_name = "FILE.html")]
    pub(crate) out: PathBuf,
    /// Prices every run on this deployment (else each run's own cost section, if any).
    #[command(flatten)]
    pub(crate) deployment: DeploymentArgs,
    /// The device of a default deployment [default: each run's spec hardware].
    #[arg(long, value_name = "NAME")]
    pub(crate) hardware: Option<String>,
}

#[derive(Args)]
pub(crate) struct CompareArgs {
    /// Bench report folders; the first is the baseline.
    #[arg(value_name = "RUN_DIR", required = true, num_args = 2..)]
    pub(crate) runs: Vec<PathBuf>,
    /// Output format: md, csv or json.
    #[arg(long, default_value = "md")]
    pub(crate) format: String,
}

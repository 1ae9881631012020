//! `moecap cost` (a run priced on a deployment), `moecap hw parts`, and the one place the
//! deployment flags (`--deployment FILE`, `--hardware NAME --devices N`) become a deployment.

use super::options::{CompareArgs, CostArgs, DeploymentArgs, EngineArgs, ReportArgs};
use super::print_json;
use anyhow::{anyhow, bail, Context, Result};
use moecap::accounting::deployment::Deployment;
use moecap::accounting::money::{cost_report, CostFormula};
use moecap::engine::device::parse_engine_dtype;
use moecap::engine::parse_device;
use moecap::export::cost::cost_markdown;
use moecap::export::table::Table;
use moecap::machine::hardware::HardwareTable;
use moecap::machine::parts::PartsTable;
use moecap::model::dtype::DType;
use moecap::model::params::model_params;
use moecap::model::source::Checkpoint;
use moecap::report::compare::{compare, compare_csv, compare_markdown};
use moecap::report::html::cap_report;
use moecap::report::run::RunView;

/// The deployment the flags name: a file, a default one of `--devices` × `hardware` sized to
/// `weight_bytes`, or none.
pub(crate) fn deployment_of(
    a: &DeploymentArgs,
    hardware: Option<&str>,
    weight_bytes: f64,
    table: &HardwareTable,
) -> Result<Option<Deployment>> {
    let parts = PartsTable::builtin()?;
    if let Some(f) = &a.deployment {
        return Ok(Some(Deployment::read(f, table, &parts)?));
    }
    let Some(n) = a.devices else {
        return Ok(None);
    };
    super::options::check_count("--devices", n as u64, super::options::MAX_DEVICES)?;
    let name = hardware.ok_or_else(|| {
        anyhow!("--devices needs --hardware NAME (the device of the default deployment)")
    })?;
    let hw = table.find(name)?;
    Ok(Some(Deployment::default_for(
        hw,
        n,
        weight_bytes,
        table,
        &parts,
    )?))
}

/// The deployment of `bench` or `eval`, sized to the model as the engine will hold it.
pub(crate) fn engine_deployment(
    engine: &EngineArgs,
    ck: &Checkpoint,
    a: &DeploymentArgs,
    hardware: Option<&str>,
    table: &HardwareTable,
) -> Result<Option<(Deployment, CostFormula)>> {
    if a.deployment.is_none() && a.devices.is_none() {
        return Ok(None);
    }
    let device = parse_device(&engine.device).context("--device")?;
    let dtype = parse_engine_dtype(engine.dtype.as_deref(), &device).context("--dtype")?;
    let weight_bytes = model_params(&ck.desc).total() as f64 * DType::of_engine(dtype).bytes();
    Ok(deployment_of(a, hardware, weight_bytes, table)?.map(|d| (d, CostFormula::Exact)))
}

/// Parses `--formula` of the cost commands.
pub(crate) fn formula(s: &str) -> Result<CostFormula> {
    CostFormula::parse(s).ok_or_else(|| anyhow!("--formula: `{s}` is not exact or moecap-compat"))
}

/// `moecap cost`.
pub(crate) fn cmd_cost(a: &CostArgs, table: &HardwareTable) -> Result<()> {
    let f = formula(&a.formula)?;
    let run = RunView::open(&a.run)?;
    let mut dargs = a.deployment.clone();
    if dargs.deployment.is_none() && dargs.devices.is_none() {
        if a.hardware.is_none() && run.spec_hardware().is_none() {
            bail!(
                "{}: the run names no spec hardware; give --deployment FILE or --hardware NAME [--devices N]",
                a.run.display()
            );
        }
        dargs.devices = Some(1);
    }
    let d = run_deployment(&run, &dargs, a.hardware.as_deref(), table)?
        .ok_or_else(|| anyhow!("no deployment"))?;
    let inputs = run.cost_inputs();
    if inputs.is_empty() {
        bail!(
            "{}: no finished point with throughput to price",
            a.run.display()
        );
    }
    let report = cost_report(&d, f, &inputs)?;
    if a.json {
        return print_json(&report);
    }
    print!("{}", cost_markdown(&report));
    Ok(())
}

/// `moecap hw parts`.
pub(crate) fn cmd_hw_parts(json: bool) -> Result<()> {
    let t = PartsTable::builtin()?;
    if json {
        return print_json(&t);
    }
    let mut tab = Table::new(&[
        "name", "kind", "unit", "price $", "power W", "default", "priced", "source",
    ]);
    for r in &t.rows {
        tab.row(vec![
            r.name.clone(),
            r.kind.name().into(),
            if r.per_gb { "GB" } else { "each" }.into(),
            format!("{}", r.price_usd),
            format!("{}", r.power_w),
            if r.default_host { "host" } else { "" }.into(),
            r.price_date.clone(),
            r.source.clone(),
        ]);
    }
    print!("{}", tab.render());
    println!("(accelerators and CPUs: `moecap hw list`; override any figure in a deployment file, docs/COST.md)");
    Ok(())
}

/// The deployment of one run for `cost` and `report`: the flags' (a default one sized to this
/// run), else `None`.
fn run_deployment(
    run: &RunView,
    a: &DeploymentArgs,
    hardware: Option<&str>,
    table: &HardwareTable,
) -> Result<Option<Deployment>> {
    let hardware = hardware.map(str::to_string).or_else(|| run.spec_hardware());
    deployment_of(a, hardware.as_deref(), run.weight_bytes(), table)
}

/// `moecap report`.
pub(crate) fn cmd_report(a: &ReportArgs, table: &HardwareTable) -> Result<()> {
    if a.out.extension().is_none_or(|e| e != "html") {
        bail!("--out {}: the report is an .html file", a.out.display());
    }
    let mut runs = Vec::new();
    let mut costs = Vec::new();
    for dir in &a.runs {
        let run = RunView::open(dir)?;
        let cost = match run_deployment(&run, &a.deployment, a.hardware.as_deref(), table)? {
            Some(d) => {
                let inputs = run.cost_inputs();
                (!inputs.is_empty())
                    .then(|| cost_report(&d, CostFormula::Exact, &inputs))
                    .transpose()?
            }
            None => run.cost().cloned(),
        };
        runs.push(run);
        costs.push(cost);
    }
    let html = cap_report(&runs, &costs);
    moecap::files::write_atomic(&a.out, html.as_bytes())?;
    println!("report: {}", a.out.display());
    Ok(())
}

/// `moecap compare`.
pub(crate) fn cmd_compare(a: &CompareArgs) -> Result<()> {
    let runs = a
        .runs
        .iter()
        .map(|d| RunView::open(d))
        .collect::<moecap::Result<Vec<_>>>()?;
    let l = compare(&runs)?;
    match a.format.as_str() {
        "md" => print!("{}", compare_markdown(&l)),
        "csv" => print!("{}", compare_csv(&l)),
        "json" => print_json(&l)?,
        other => bail!("--format: `{other}` is not md, csv or json"),
    }
    Ok(())
}

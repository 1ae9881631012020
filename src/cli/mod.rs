//! The `moecap` command line: options in [`options`], one module per command family; this module
//! dispatches a parsed command line to them. Commands parse flags, call the library and print;
//! the pipelines themselves live in the library.

mod bench;
mod cost;
mod cost_options;
mod engine;
mod eval;
mod hw;
mod interrupt;
mod metrics;
mod model;
mod offload;
mod offload_options;
pub(crate) mod options;
mod roofline;

use anyhow::Result;
use moecap::machine::hardware::HardwareTable;
use options::*;

pub(crate) fn run(cli: Cli) -> Result<()> {
    let table = || HardwareTable::from_option(cli.hardware_file.as_deref());
    match &cli.command {
        Command::Models { json } => model::cmd_models(*json),
        Command::Inspect(a) => model::cmd_inspect(a),
        Command::Roofline(a) => roofline::cmd_roofline(a, &table()?),
        Command::Metrics(a) => metrics::cmd_metrics(a, &table()?),
        Command::Logits(a) => engine::cmd_logits(a),
        Command::Generate(a) => engine::cmd_generate(a),
        Command::Synth(a) => engine::cmd_synth(a),
        Command::Bench { engine, bench } => bench::cmd_bench(engine, bench, &table()?),
        Command::Eval { engine, eval } => eval::cmd_eval(engine, eval, &table()?),
        Command::Upcycle(a) => engine::cmd_upcycle(a),
        Command::Hw { command } => match command {
            HwCommand::List { json } => hw::cmd_hw_list(&table()?, *json),
            HwCommand::Parts { json } => cost::cmd_hw_parts(*json),
            HwCommand::Detect { json } => hw::cmd_hw_detect(&table()?, *json),
            HwCommand::Measure {
                device,
                dtype,
                json,
            } => bench::cmd_hw_measure(device, dtype, *json),
        },
        Command::Routing(a) => offload::cmd_routing(a),
        Command::Cost(a) => cost::cmd_cost(a, &table()?),
        Command::Report(a) => cost::cmd_report(a, &table()?),
        Command::Compare(a) => cost::cmd_compare(a),
        Command::Offload { command } => match command {
            OffloadCommand::Simulate(a) => offload::cmd_simulate(a, &table()?),
        },
    }
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

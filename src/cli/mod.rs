//! The `moecap` command line: options in [`options`], one module per command family; this module
//! dispatches a parsed command line to them.

mod bench;
mod engine;
mod eval;
mod hw;
mod metrics;
mod model;
pub(crate) mod options;
mod roofline;

use anyhow::{bail, Result};
use bench::*;
use engine::*;
use eval::*;
use hw::*;
use metrics::*;
use model::*;
use moecap::engine::sampling::Sampler;
use moecap::rng::SplitMix64;
use moecap::machine::hardware::HardwareTable;
use options::*;
use roofline::*;

pub(crate) fn run(cli: Cli) -> Result<()> {
    let table = || HardwareTable::from_option(cli.hardware_file.as_deref());
    match &cli.command {
        Command::Models { json } => cmd_models(*json),
        Command::Inspect { model, json } => cmd_inspect(&model.model, *json),
        Command::Roofline {
            model,
            device,
            batch,
            context,
            tpot_slo,
            json,
        } => cmd_roofline(
            &model.model,
            device,
            &table()?,
            batch,
            context,
            *tpot_slo,
            *json,
        ),
        Command::Metrics {
            records,
            model,
            device,
            formula,
            json,
        } => cmd_metrics(records, &model.model, device, &table()?, *formula, *json),
        Command::Logits {
            engine,
            input_ids,
            output,
        } => cmd_logits(engine, input_ids, output),
        Command::Generate {
            engine,
            input_ids,
            prompt,
            stop,
            max_new_tokens,
            greedy: _,
            temperature,
            top_p,
            seed,
            ignore_eos,
            records,
            no_probe,
            json,
        } => {
            let sampler = match temperature {
                None => Sampler::Greedy,
                Some(t) if *t > 0.0 && t.is_finite() => {
                    if !(*top_p > 0.0 && *top_p <= 1.0) {
                        bail!("--top-p must be in (0, 1]");
                    }
                    Sampler::Random {
                        temperature: *t,
                        top_p: *top_p,
                        rng: SplitMix64::new(*seed),
                    }
                }
                Some(_) => bail!("--temperature must be positive (use --greedy for argmax)"),
            };
            cmd_generate(
                engine,
                input_ids.as_deref(),
                prompt,
                stop,
                *max_new_tokens,
                sampler,
                *ignore_eos,
                records.as_deref(),
                !*no_probe,
                *json,
            )
        }
        Command::Synth {
            like,
            out,
            hidden,
            layers,
            experts,
            vocab,
            heads,
            tokenizer,
            seed,
            list,
        } => cmd_synth(
            like, out, hidden, layers, experts, vocab, heads, tokenizer, seed, list,
        ),
        Command::Bench { engine, bench } => cmd_bench(engine, bench, &table()?),
        Command::Eval { engine, eval } => cmd_eval(engine, eval, &table()?),
        Command::Upcycle {
            from,
            experts,
            top_k,
            mode,
            out,
        } => cmd_upcycle(from, *experts, *top_k, *mode, out),
        Command::Hw { command } => match command {
            HwCommand::List { json } => cmd_hw_list(&table()?, *json),
            HwCommand::Detect { json } => cmd_hw_detect(&table()?, *json),
            HwCommand::Measure {
                device,
                dtype,
                json,
            } => cmd_hw_measure(device, dtype, *json),
        },
    }
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

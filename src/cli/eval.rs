//! `moecap eval`: accuracy tasks on the engine with a progress bar per task; the pipeline is the
//! library's (`moecap::eval::run`), the reports its exporters'.

use super::cost::engine_deployment;
use super::options::{EngineArgs, EvalArgs};
use super::print_json;
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use moecap::data::data_dir;
use moecap::eval::run::{EvalObserver, EvalOptions, Evaluation};
use moecap::eval::tasks::Task;
use moecap::export::eval::{eval_markdown, write_eval_reports};
use moecap::machine::hardware::HardwareTable;

/// A progress bar per task.
struct Progress {
    bar: Option<ProgressBar>,
}

impl EvalObserver for Progress {
    fn task(&mut self, task: &str, items: usize) {
        let bar = ProgressBar::new(items as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} items, elapsed {elapsed}, ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(task.to_string());
        self.bar = Some(bar);
    }

    fn items(&mut self, n: usize) {
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
    }

    fn task_done(&mut self, task: &str, items: usize) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        eprintln!("{task}: {items} items done");
    }

    fn note(&mut self, msg: &str) {
        eprintln!("{msg}");
    }
}

pub(crate) fn cmd_eval(
    engine_args: &EngineArgs,
    a: &EvalArgs,
    table: &HardwareTable,
) -> Result<()> {
    let tasks = Task::parse_list(&a.tasks).context("--tasks")?;
    if tasks.is_empty() {
        bail!("--tasks names no task");
    }
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if a.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let data = match &a.data {
        Some(d) => d.clone(),
        None => {
            data_dir().ok_or_else(|| anyhow!("no data folder: set MOECAP_DATA or pass --data"))?
        }
    };
    if a.chat && a.shots.is_some_and(|s| s > 0) {
        bail!("--chat is zero-shot: drop --shots");
    }
    let ck = engine_args.checkpoint()?;
    let deployment = engine_deployment(engine_args, &ck, &a.cost, a.hardware.as_deref(), table)?;
    let evaluation = Evaluation::new(
        &ck,
        EvalOptions {
            tasks,
            limit: a.limit,
            shots: a.shots,
            seed: a.seed,
            batch: a.batch,
            max_gen_tokens: a.max_gen_tokens,
            chat: a.chat,
            data,
            out: a.out.clone(),
            hardware: a.hardware.clone(),
            ceilings: a.ceilings.clone(),
            deployment,
        },
    )
    .map_err(super::options::model_flag)?;
    let mut engine = engine_args.load(&ck, !a.no_probe)?;
    let report = evaluation.run(
        &mut engine,
        &engine_args.device,
        table,
        &mut Progress { bar: None },
    )?;
    write_eval_reports(&a.out, &report)?;
    if a.json {
        return print_json(&report);
    }
    print!("{}", eval_markdown(&report));
    println!(
        "results: {} (summary.json, summary.md, TASK.jsonl per item, records.jsonl)",
        a.out.display()
    );
    Ok(())
}

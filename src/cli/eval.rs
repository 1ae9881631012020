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
use moecap::model::config::limits::MAX_POSITIONS;
use std::io::IsTerminal;
use std::time::Instant;

/// Most items one eval step may hold.
const MAX_EVAL_BATCH: usize = 4096;

/// A progress bar per task on a terminal; elsewhere (a pipe, a log) a plain line with rate and
/// ETA about every 5 % of a task's items or every 30 s, whichever comes first.
struct Progress {
    bar: Option<ProgressBar>,
    plain: Option<Plain>,
    terminal: bool,
}

/// Progress as plain lines.
struct Plain {
    task: String,
    total: usize,
    done: usize,
    /// Items that were already finished when the task started (a resumed run).
    resumed: Option<usize>,
    start: Instant,
    last: Instant,
    last_done: usize,
}

impl Plain {
    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let timed = self.done - self.resumed.unwrap_or(0);
        let rate = timed as f64 / secs.max(1e-9);
        let eta = if rate > 0.0 {
            format!("{:.0} s", (self.total - self.done) as f64 / rate)
        } else {
            "-".into()
        };
        format!(
            "{}: {}/{} items, {:.0} s, {:.2} items/s, ETA {eta}",
            self.task, self.done, self.total, secs, rate
        )
    }
}

impl EvalObserver for Progress {
    fn task(&mut self, task: &str, items: usize) {
        if !self.terminal {
            let now = Instant::now();
            self.plain = Some(Plain {
                task: task.into(),
                total: items,
                done: 0,
                resumed: None,
                start: now,
                last: now,
                last_done: 0,
            });
            eprintln!("{task}: {items} items");
            return;
        }
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
        if let Some(p) = &mut self.plain {
            p.done += n;
            if p.resumed.is_none() {
                // the first report is what an earlier run finished
                p.resumed = Some(p.done);
                if p.done > 0 {
                    eprintln!("{}: {} items kept from the earlier run", p.task, p.done);
                }
                p.start = Instant::now();
                p.last = p.start;
                p.last_done = p.done;
                return;
            }
            let step = (p.total / 20).max(1);
            if p.done - p.last_done >= step || p.last.elapsed().as_secs() >= 30 {
                eprintln!("{}", p.line());
                p.last = Instant::now();
                p.last_done = p.done;
            }
        }
    }

    fn task_done(&mut self, task: &str, items: usize) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        self.plain = None;
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
    if a.batch == 0 || a.batch > MAX_EVAL_BATCH {
        bail!("--batch must be between 1 and {MAX_EVAL_BATCH}");
    }
    if a.max_gen_tokens == 0 || a.max_gen_tokens > MAX_POSITIONS {
        bail!("--max-gen-tokens must be between 1 and {MAX_POSITIONS}");
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
            subjects: a.subjects.clone(),
            resume: a.resume,
            force: a.force,
            measure_ceilings: a.measure_ceilings,
        },
    )
    .map_err(super::options::model_flag)?;
    let mut engine = engine_args.load(&ck, !a.no_probe)?;
    super::interrupt::say_on_interrupt(&format!(
        "the items scored so far are kept in {} (one TASK.jsonl per task); continue with: {}",
        a.out.display(),
        super::interrupt::resume_command(&a.out)
    ));
    let report = evaluation.run(
        &mut engine,
        &engine_args.device,
        table,
        &mut Progress {
            bar: None,
            plain: None,
            terminal: std::io::stderr().is_terminal(),
        },
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

//! The eval pipeline, from options to a report: every task's items loaded (and rendered through
//! the chat template in chat mode) before the model loads, then scored task by task on the
//! engine, each task's per-item results (`TASK.jsonl`) and the probe's records (`records.jsonl`)
//! written as it finishes, and the performance of those very passes against the spec peaks and
//! measured ceilings.

use super::chat::ChatTemplate;
use super::outdir::{EvalSettings, OutDir};
use super::report::{EvalReport, Performance};
use super::score::{generate_answers, score_choices, Generation, CHAT_STOPS};
use super::score::{ChoiceResult, GenResult};
use super::tasks::{is_sample, load_subjects, ChoiceItem, GenItem, Items, Subjects, Task};
use super::{summarise_choices, summarise_gen, TaskSummary};
use crate::accounting::deployment::Deployment;
use crate::accounting::metrics::exact_metrics;
use crate::accounting::money::CostFormula;
use crate::accounting::{Accountant, Precision};
use crate::data::codec_covers;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::machine::detect::{detect_gpu, detect_host};
use crate::machine::energy::EnergyMeter;
use crate::machine::hardware::HardwareTable;
use crate::machine::targets::{targets, TargetSources};
use crate::model::dtype::DType;
use crate::model::source::Checkpoint;
use crate::model::tokenizer::TextCodec;
use crate::records::read::{read_records, Records};
use crate::records::{append_records, KvCacheKind};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

/// What an evaluation runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// The tasks, in order.
    pub tasks: Vec<Task>,
    /// The first N items of each task (per subject for MMLU).
    pub limit: Option<usize>,
    /// Exemplars per prompt (else the task's default; chat mode is zero-shot).
    pub shots: Option<usize>,
    /// Seed of sampled exemplars.
    pub seed: u64,
    /// Sequences per forward pass.
    pub batch: usize,
    /// Generated tokens at most per answer.
    pub max_gen_tokens: usize,
    /// Zero-shot chat mode through the checkpoint's chat template.
    pub chat: bool,
    /// The data folder.
    pub data: PathBuf,
    /// The output folder.
    pub out: PathBuf,
    /// Hardware-table row of the spec peaks (else the detected device's).
    pub hardware: Option<String>,
    /// A ceilings file instead of the cache.
    pub ceilings: Option<PathBuf>,
    /// The deployment the run is priced on, with the formula.
    pub deployment: Option<(Deployment, CostFormula)>,
    /// MMLU subjects (`--subjects`: names, or `first:N`).
    pub subjects: Option<String>,
    /// Continue the run in `out` (its settings checked), skipping finished items.
    pub resume: bool,
    /// Replace an earlier run in `out`.
    pub force: bool,
    /// Measure the machine's ceilings (and update the cache) instead of reading the cache as
    /// it is.
    pub measure_ceilings: bool,
}

/// What a running evaluation tells its caller.
pub trait EvalObserver {
    /// A task of `items` items starts.
    fn task(&mut self, task: &str, items: usize);
    /// `n` more items scored.
    fn items(&mut self, n: usize);
    /// The task finished.
    fn task_done(&mut self, task: &str, items: usize);
    /// Something worth saying before it happens (ceilings measured).
    fn note(&mut self, msg: &str);
}

/// An evaluation ready to run: every task loaded, the tokenizer checked.
pub struct Evaluation<'c> {
    ck: &'c Checkpoint,
    opts: EvalOptions,
    loaded: Vec<(Task, usize, Items)>,
    codec: TextCodec,
}

impl<'c> Evaluation<'c> {
    /// Loads the tasks of `opts` for `ck`: missing data or a missing tokenizer fail here, before
    /// any model loads.
    pub fn new(ck: &'c Checkpoint, opts: EvalOptions) -> Result<Self> {
        let subjects = opts.subjects.as_deref().map(Subjects::parse).transpose()?;
        if subjects.is_some() && !opts.tasks.contains(&Task::Mmlu) {
            return Err(Error::Invalid(
                "--subjects chooses MMLU subjects, and --tasks does not name mmlu".into(),
            ));
        }
        let mut loaded = Vec::new();
        for t in &opts.tasks {
            let shots = if opts.chat {
                0
            } else {
                opts.shots.unwrap_or(t.default_shots())
            };
            loaded.push((
                *t,
                shots,
                load_subjects(
                    *t,
                    &opts.data,
                    opts.limit,
                    shots,
                    opts.seed,
                    subjects.as_ref(),
                )?,
            ));
        }
        if opts.chat {
            let template = ck
                .dir()
                .map(ChatTemplate::from_dir)
                .transpose()?
                .flatten()
                .ok_or_else(|| Error::Model {
                    arg: ck.arg.clone(),
                    msg: "no chat_template in tokenizer_config.json (chat mode renders prompts through it)".into(),
                })?;
            for (_, _, items) in &mut loaded {
                match items {
                    Items::Choice(v) => {
                        for it in v.iter_mut() {
                            it.context = template.render(&it.context)?;
                        }
                    }
                    Items::Gen(v) => {
                        for it in v.iter_mut() {
                            it.prompt = template.render(&it.prompt)?;
                        }
                    }
                }
            }
        }
        let codec = ck.tokenizer()?.ok_or_else(|| Error::Model {
            arg: ck.arg.clone(),
            msg: "eval needs the checkpoint's tokenizer.json (synthetic models have none)".into(),
        })?;
        if !codec_covers(&codec)? {
            return Err(Error::Model {
                arg: ck.arg.clone(),
                msg: "its tokenizer.json does not cover English text (a synthetic word-level tokenizer?); eval needs a real tokenizer".into(),
            });
        }
        Ok(Evaluation {
            ck,
            opts,
            loaded,
            codec,
        })
    }

    /// Scores every task into `dir`, step by step.
    fn score_tasks(
        &self,
        engine: &mut Engine,
        dir: &OutDir,
        obs: &mut dyn EvalObserver,
    ) -> Result<Vec<TaskSummary>> {
        let a = &self.opts;
        let mut summaries = Vec::new();
        for (task, shots, items) in &self.loaded {
            let name = task.name();
            obs.task(name, items.len());
            let started = Instant::now();
            let (mut summary, scored) = match items {
                Items::Choice(v) => {
                    let (results, scored) = resume_and_score(
                        dir,
                        name,
                        v,
                        obs,
                        |it| (&it.id, &it.context),
                        choice_row,
                        |rest, sink| score_choices(engine, &self.codec, rest, a.batch, sink),
                    )?;
                    (summarise_choices(name, *shots, &results), scored)
                }
                Items::Gen(v) => {
                    let stops: &[&str] = if a.chat { &CHAT_STOPS } else { task.stops() };
                    let gen = Generation {
                        max_new_tokens: a.max_gen_tokens,
                        stops,
                        extract: task.extractors()?,
                    };
                    let (results, scored) = resume_and_score(
                        dir,
                        name,
                        v,
                        obs,
                        |it| (&it.id, &it.prompt),
                        gen_row,
                        |rest, sink| {
                            generate_answers(engine, &self.codec, rest, a.batch, &gen, sink)
                        },
                    )?;
                    (summarise_gen(name, *shots, &results), scored)
                }
            };
            summary.seconds = started.elapsed().as_secs_f64();
            summary.items_timed = scored;
            obs.task_done(name, items.len());
            summaries.push(summary);
        }
        Ok(summaries)
    }

    /// The settings a resumed run must repeat.
    fn settings(&self, engine: &Engine, device: &str) -> EvalSettings {
        let a = &self.opts;
        EvalSettings {
            model: self.ck.arg.clone(),
            device: device.to_string(),
            dtype: engine.model.dtype.as_str().into(),
            data: a.data.display().to_string(),
            tasks: a.tasks.iter().map(|t| t.name().to_string()).collect(),
            limit: a.limit,
            shots: a.shots,
            seed: a.seed,
            chat: a.chat,
            max_gen_tokens: a.max_gen_tokens,
            subjects: a.subjects.clone(),
        }
    }

    /// Scores every task on `engine` (loaded from the checkpoint; `device` is its device as the
    /// user named it), writing each step's per-item results and records as it finishes; with
    /// `resume`, the items an earlier run finished are read back instead of scored.
    pub fn run(
        &self,
        engine: &mut Engine,
        device: &str,
        table: &HardwareTable,
        obs: &mut dyn EvalObserver,
    ) -> Result<EvalReport> {
        let a = &self.opts;
        // every task's file, not only this run's: --force leaves no earlier run's tasks behind
        let task_files: Vec<String> = Task::ALL
            .iter()
            .map(|t| format!("{}.jsonl", t.name()))
            .collect();
        let dir = OutDir::open(
            &a.out,
            &self.settings(engine, device),
            &task_files,
            a.resume,
            a.force,
        )?;
        obs.note(&format!("results go to {}", dir.dir().display()));
        let rec_path = dir.records();
        let desc = engine.model.desc.clone();
        let meter = EnergyMeter::open(match engine.model.device.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => Some(gpu_id),
            _ => None,
        });
        let window = meter.available().then(|| meter.start());
        let summaries = self.score_tasks(engine, &dir, obs).map_err(|e| {
            Error::Invalid(format!(
                "{e}\nthe items finished so far are in {}; add --resume to the same command to continue",
                dir.dir().display()
            ))
        })?;
        // every pass of the run, an earlier run's included when resumed
        let probed = std::fs::metadata(&rec_path).is_ok_and(|m| m.len() > 0);
        let all_records = match probed.then(|| read_records(&rec_path)).transpose()? {
            Some(Records::Native(v)) => v,
            _ => Vec::new(),
        };
        let power = window.as_ref().and_then(|w| meter.stop(w));
        let performance = if all_records.is_empty() {
            None
        } else {
            let acct = Accountant::new(
                &desc,
                Precision::uniform(DType::of_engine(engine.model.dtype)),
                KvCacheKind::default_for(&desc),
            );
            let host = detect_host();
            let gpu = detect_gpu(&engine.model.device);
            let t = targets(
                table,
                TargetSources {
                    hardware: a.hardware.as_deref(),
                    ceilings_file: a.ceilings.as_deref(),
                    remeasure: a.measure_ceilings,
                    read_only: !a.measure_ceilings,
                },
                &host,
                gpu.as_ref(),
                &engine.model.device,
                engine.model.dtype,
                &mut |m| obs.note(m),
            )?;
            let file = rec_path.display().to_string();
            let (ps, ds) = match t.peaks.spec {
                Some(p) => exact_metrics(&acct, &all_records, p, &file)?,
                None => (None, None),
            };
            let (pm, dm) = match t.peaks.measured {
                Some(p) => exact_metrics(&acct, &all_records, p, &file)?,
                None => (None, None),
            };
            Some(Performance {
                passes: all_records.len(),
                spec_hardware: t.spec.map(|s| s.name),
                prefill_spec: ps,
                decode_spec: ds,
                prefill_measured: pm,
                decode_measured: dm,
            })
        };
        EvalReport {
            moecap_version: env!("CARGO_PKG_VERSION").into(),
            model: self.ck.arg.clone(),
            model_name: desc.display_name(),
            synthetic: self.ck.synthetic(),
            device: device.to_string(),
            dtype: engine.model.dtype.as_str().into(),
            data: a.data.display().to_string(),
            sample_data: is_sample(&a.data),
            chat: a.chat,
            limit: a.limit,
            subjects: a.subjects.clone(),
            seed: a.seed,
            batch: a.batch,
            tasks: summaries,
            performance,
            power,
            cost: None,
        }
        .priced(a.deployment.as_ref())
    }
}

/// The sink a scorer hears each step's results through.
type Sink<'s, R> = dyn FnMut(&mut Engine, &[R]) -> Result<()> + 's;

/// One task's results in item order: the rows an earlier run finished (checked against `key`,
/// the item's id and prompt) read back, the rest given to `score`, whose sink appends each
/// step's probe records and per-item rows (`row`) as the step finishes. Also returns how many
/// items were scored now.
fn resume_and_score<I, R: serde::de::DeserializeOwned>(
    dir: &OutDir,
    task: &str,
    items: &[I],
    obs: &mut dyn EvalObserver,
    key: impl Fn(&I) -> (&String, &String),
    row: impl Fn(&I, &R) -> Value,
    score: impl FnOnce(&[I], &mut Sink<'_, R>) -> Result<Vec<R>>,
) -> Result<(Vec<R>, usize)> {
    let (mut file, done) = dir.task_file(task, &mut |i, r| same_item(items.get(i).map(&key), r))?;
    let mut results = done
        .into_iter()
        .map(|r| read_row::<R>(r, task))
        .collect::<Result<Vec<_>>>()?;
    obs.items(results.len());
    let rest = &items[results.len().min(items.len())..];
    let rec_path = dir.records();
    let mut at = 0;
    let new = score(rest, &mut |e, r| {
        append_records(&rec_path, &e.take_records())?;
        let rows: Vec<_> = rest[at..at + r.len()]
            .iter()
            .zip(r)
            .map(|(it, x)| row(it, x))
            .collect();
        at += r.len();
        file.append(&rows)?;
        obs.items(r.len());
        Ok(())
    })?;
    let scored = new.len();
    results.extend(new);
    Ok((results, scored))
}

/// Checks that a row an earlier run wrote is the item these settings score at its index.
fn same_item(item: Option<(&String, &String)>, row: &Value) -> Result<()> {
    let Some((id, prompt)) = item else {
        return Err(Error::Invalid(
            "past the items this run scores (another --limit?)".into(),
        ));
    };
    if row.get("id").and_then(Value::as_str) != Some(id.as_str())
        || row.get("prompt").and_then(Value::as_str) != Some(prompt.as_str())
    {
        return Err(Error::Invalid(format!(
            "not item `{id}` with the prompt these settings give (has the data folder changed?); use --force or another --out"
        )));
    }
    Ok(())
}

fn read_row<T: serde::de::DeserializeOwned>(row: Value, task: &str) -> Result<T> {
    serde_json::from_value(row)
        .map_err(|e| Error::Invalid(format!("--resume: a row of {task}.jsonl: {e}")))
}

/// The per-item line of a multiple-choice item.
fn choice_row(it: &ChoiceItem, x: &ChoiceResult) -> Value {
    let mut row = json!({
        "id": x.id, "group": x.group, "prompt": it.context, "choices": it.choices,
        "gold": x.gold, "loglikelihoods": x.loglikelihoods, "pred": x.pred,
        "pred_norm": x.pred_norm, "pred_bytes": x.pred_bytes,
        "choice_chars": x.chars, "choice_bytes": x.bytes,
        "correct": x.pred == x.gold, "correct_norm": x.pred_norm == x.gold,
        "correct_bytes": x.pred_bytes == x.gold,
    });
    if let (Some(ind), Some(m)) = (it.ind, row.as_object_mut()) {
        m.insert("ind".into(), json!(ind));
    }
    row
}

/// The per-item line of a generated answer.
fn gen_row(it: &GenItem, x: &GenResult) -> Value {
    json!({
        "id": x.id, "prompt": it.prompt, "answer": x.answer, "output": x.output,
        "strict": x.strict, "flexible": x.flexible,
        "correct_strict": x.correct_strict(),
        "correct_flexible": x.correct_flexible(),
    })
}

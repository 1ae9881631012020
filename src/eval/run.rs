//! The eval pipeline, from options to a report: every task's items loaded (and rendered through
//! the chat template in chat mode) before the model loads, then scored task by task on the
//! engine, each task's per-item results (`TASK.jsonl`) and the probe's records (`records.jsonl`)
//! written as it finishes, and the performance of those very passes against the spec peaks and
//! measured ceilings.

use super::chat::ChatTemplate;
use super::report::{EvalReport, Performance};
use super::score::{generate_answers, score_choices, Generation, CHAT_STOPS};
use super::tasks::{is_sample, load, Items, Task};
use super::{summarise_choices, summarise_gen};
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
use crate::records::{append_records, KvCacheKind};
use std::io::Write;
use std::path::PathBuf;

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
                load(*t, &opts.data, opts.limit, shots, opts.seed)?,
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

    /// Scores every task on `engine` (loaded from the checkpoint; `device` is its device as the
    /// user named it), writing per-item results and records into the output folder.
    pub fn run(
        &self,
        engine: &mut Engine,
        device: &str,
        table: &HardwareTable,
        obs: &mut dyn EvalObserver,
    ) -> Result<EvalReport> {
        let a = &self.opts;
        let out = &a.out;
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let rec_path = out.join("records.jsonl");
        std::fs::write(&rec_path, b"").map_err(|e| Error::io(&rec_path, e))?;
        let desc = engine.model.desc.clone();
        let mut summaries = Vec::new();
        let meter = EnergyMeter::open(match engine.model.device.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => Some(gpu_id),
            _ => None,
        });
        let window = meter.available().then(|| meter.start());
        let mut all_records = Vec::new();
        for (task, shots, items) in &self.loaded {
            obs.task(task.name(), items.len());
            let out_path = out.join(format!("{}.jsonl", task.name()));
            let mut f = std::fs::File::create(&out_path).map_err(|e| Error::io(&out_path, e))?;
            let mut put = |line: serde_json::Value| {
                writeln!(f, "{line}").map_err(|e| Error::io(&out_path, e))
            };
            let summary = match items {
                Items::Choice(v) => {
                    let r = score_choices(engine, &self.codec, v, a.batch, &mut |n| obs.items(n))?;
                    for (it, x) in v.iter().zip(&r) {
                        put(serde_json::json!({
                            "id": x.id, "group": x.group, "prompt": it.context, "choices": it.choices,
                            "gold": x.gold, "loglikelihoods": x.loglikelihoods, "pred": x.pred,
                            "pred_norm": x.pred_norm, "pred_bytes": x.pred_bytes,
                            "choice_chars": x.chars, "choice_bytes": x.bytes,
                            "correct": x.pred == x.gold, "correct_norm": x.pred_norm == x.gold,
                            "correct_bytes": x.pred_bytes == x.gold,
                        }))?;
                    }
                    summarise_choices(task.name(), *shots, &r)
                }
                Items::Gen(v) => {
                    let stops: &[&str] = if a.chat { &CHAT_STOPS } else { task.stops() };
                    let gen = Generation {
                        max_new_tokens: a.max_gen_tokens,
                        stops,
                        extract: task.extractors()?,
                    };
                    let r = generate_answers(engine, &self.codec, v, a.batch, &gen, &mut |n| {
                        obs.items(n)
                    })?;
                    for (it, x) in v.iter().zip(&r) {
                        put(serde_json::json!({
                            "id": x.id, "prompt": it.prompt, "answer": x.answer, "output": x.output,
                            "strict": x.strict, "flexible": x.flexible,
                            "correct_strict": x.correct_strict(),
                            "correct_flexible": x.correct_flexible(),
                        }))?;
                    }
                    summarise_gen(task.name(), *shots, &r)
                }
            };
            let recs = engine.take_records();
            append_records(&rec_path, &recs)?;
            all_records.extend(recs.into_iter().map(|r| r.pass));
            obs.task_done(task.name(), items.len());
            summaries.push(summary);
        }
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
                    remeasure: false,
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

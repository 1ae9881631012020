//! The bench pipeline, from options to a report: prompts made once, the spec peaks and measured
//! ceilings resolved, the run folder opened (or resumed), then every unfinished point of batch
//! size × prompt length run, summarised and saved before the next. The caller watches through a
//! [`SweepObserver`] (progress, and the reports it exports after every point).

use super::output::{default_out, RunDir};
use super::prompts::{build_prompts, source_texts, PromptSource, Tokenise};
use super::run::{passes_per_repetition, run_point, PointSettings};
use super::summary::{cost_input, summarise_point, PointSpec, PointSummary};
use super::{BenchReport, RunSettings};
use crate::accounting::deployment::Deployment;
use crate::accounting::money::{cost_report, CostFormula};
use crate::accounting::{Accountant, Precision};
use crate::data::{codec_covers, data_dir};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::files::write_json;
use crate::machine::cache::read_cached;
use crate::machine::detect::{detect_gpu, detect_host};
use crate::machine::energy::EnergyMeter;
use crate::machine::hardware::HardwareTable;
use crate::machine::targets::{targets, TargetSources, Targets};
use crate::model::dtype::DType;
use crate::model::params::model_params;
use crate::model::source::Checkpoint;
use crate::model::tokenizer::TextCodec;
use crate::records::KvCacheKind;
use std::path::{Path, PathBuf};

/// What a sweep runs and against what.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Batch sizes.
    pub batch: Vec<usize>,
    /// Prompt lengths in tokens.
    pub prompt_len: Vec<usize>,
    /// Tokens generated per sequence (1: prefill only).
    pub gen_len: usize,
    /// Untimed repetitions per point.
    pub warmup: usize,
    /// Timed repetitions per point.
    pub repetitions: usize,
    /// Prompt source (`gsm8k`, `sharegpt`, `text:FILE`, `sample`, `random`, `auto`).
    pub prompts: String,
    /// Hardware-table row of the spec peaks (else the detected device's).
    pub hardware: Option<String>,
    /// Report folder (else `moecap-bench/MODEL-DATE-TIME`).
    pub out: Option<PathBuf>,
    /// Continue the run in `out`.
    pub resume: bool,
    /// Time probed passes (false: time unprobed twins, route from probed ones).
    pub probe: bool,
    /// Measure the ceilings again.
    pub remeasure: bool,
    /// A ceilings file instead of the cache.
    pub ceilings: Option<PathBuf>,
    /// Seed of random prompts.
    pub seed: u64,
    /// Seed of the synthetic weights the engine was loaded with (`None`: real weights).
    pub weights_seed: Option<u64>,
    /// The deployment the points are priced on, with the formula.
    pub deployment: Option<(Deployment, CostFormula)>,
}

/// What a running sweep tells its caller.
pub trait SweepObserver {
    /// Something worth saying before it happens (ceilings measured, a run resumed).
    fn note(&mut self, msg: &str);
    /// The run folder `dir` is open, holding `finished` points already (before any is run).
    fn opened(&mut self, dir: &Path, finished: usize);
    /// The sweep starts: `tokens` to process over the points left.
    fn start(&mut self, tokens: u64);
    /// A point starts.
    fn point(&mut self, p: &PointSpec);
    /// `n` more tokens processed.
    fn tokens(&mut self, n: usize);
    /// A point finished and was saved.
    fn point_done(&mut self, s: &PointSummary);
    /// The report of the run folder `dir` after a point, and once more at the end: export it.
    fn report(&mut self, dir: &Path, report: &BenchReport) -> Result<()>;
}

/// A sweep ready to run: its prompts' texts and tokenizer, read before the model loads so that
/// bad prompt options fail first.
pub struct Sweep<'c> {
    ck: &'c Checkpoint,
    opts: BenchOptions,
    source: PromptSource,
    texts: Vec<String>,
    codec: Option<TextCodec>,
}

impl<'c> Sweep<'c> {
    /// Prepares a sweep of `ck` with `opts`.
    pub fn new(ck: &'c Checkpoint, opts: BenchOptions) -> Result<Self> {
        if opts.batch.is_empty() || opts.batch.contains(&0) {
            return Err(Error::Invalid("batch sizes must be at least 1".into()));
        }
        if opts.prompt_len.is_empty() || opts.prompt_len.contains(&0) {
            return Err(Error::Invalid("prompt lengths must be at least 1".into()));
        }
        let data = data_dir();
        let source = PromptSource::parse(&opts.prompts, data.as_deref())?;
        let texts = source_texts(&source, data.as_deref())?;
        Ok(Sweep {
            ck,
            codec: ck.tokenizer()?,
            opts,
            source,
            texts,
        })
    }

    /// Runs every unfinished point on `engine` (loaded from the checkpoint; `device` is its
    /// device as the user named it) and returns the report of all finished points.
    pub fn run(
        &self,
        engine: &mut Engine,
        device: &str,
        table: &HardwareTable,
        obs: &mut dyn SweepObserver,
    ) -> Result<BenchReport> {
        let a = &self.opts;
        let tok = match &self.codec {
            Some(c) if codec_covers(c)? => Tokenise::Codec(c),
            _ => Tokenise::HashedWords,
        };
        let host = detect_host();
        let dev = engine.model.device.clone();
        let dtype = engine.model.dtype;
        let desc = engine.model.desc.clone();
        let gpu = detect_gpu(&dev);
        let out = match &a.out {
            Some(o) => o.clone(),
            None => default_out(&desc.display_name()),
        };
        if a.resume && !out.join("run.json").is_file() {
            return Err(Error::Invalid(format!(
                "--resume: {} has no run.json, so there is no run to resume",
                out.display()
            )));
        }
        // A resumed run keeps the ceilings it started with, so that all its points are measured
        // against the same targets.
        let run_ceilings = out.join(CEILINGS_FILE);
        let resumed_ceilings = a.resume && run_ceilings.is_file();
        if resumed_ceilings {
            // the same --ceilings file as the run started with is fine; other figures are not
            let other = match &a.ceilings {
                Some(f) => read_cached(f)? != read_cached(&run_ceilings)?,
                None => false,
            };
            if other || a.remeasure {
                return Err(Error::Invalid(format!(
                    "--resume keeps the ceilings the run started with ({}); drop --ceilings and --remeasure",
                    run_ceilings.display()
                )));
            }
        }
        let Targets {
            spec,
            ceilings,
            peaks,
        } = targets(
            table,
            TargetSources {
                hardware: a.hardware.as_deref(),
                ceilings_file: if resumed_ceilings {
                    Some(run_ceilings.as_path())
                } else {
                    a.ceilings.as_deref()
                },
                remeasure: a.remeasure,
                read_only: false,
            },
            &host,
            gpu.as_ref(),
            &dev,
            dtype,
            &mut |m| obs.note(m),
        )?;
        let tokenisation = match (&self.source, &tok) {
            (PromptSource::Random, _) => "random ids",
            (_, Tokenise::Codec(_)) => "the checkpoint's tokenizer",
            (_, Tokenise::HashedWords) => {
                "hashed words: the checkpoint has no tokenizer covering the text"
            }
        };
        let settings = RunSettings {
            model: self.ck.arg.clone(),
            model_name: desc.display_name(),
            synthetic: self.ck.synthetic(),
            device: device.to_string(),
            dtype: dtype.as_str().to_string(),
            gen_len: a.gen_len,
            warmup: a.warmup,
            repetitions: a.repetitions,
            prompts: self.source.label(),
            tokenisation: tokenisation.into(),
            seed: a.seed,
            weights_seed: a.weights_seed,
            probe: a.probe,
            hardware: spec.as_ref().map(|s| s.name.clone()),
        };
        let (run_dir, mut done) = RunDir::open(&out, &settings, a.resume)?;
        if let (Some(c), false) = (&ceilings, run_ceilings.is_file()) {
            write_json(&run_ceilings, c)?;
        }
        obs.opened(&out, done.len());
        let kv = KvCacheKind::default_for(&desc);
        let acct = Accountant::new(&desc, Precision::uniform(DType::of_engine(dtype)), kv);
        let params = model_params(&desc);
        let mut report = BenchReport {
            moecap_version: env!("CARGO_PKG_VERSION").into(),
            settings,
            host,
            gpu,
            ceilings,
            spec,
            params_total: params.total(),
            params_active: params.active_per_token(&desc),
            kv_cache: kv.name().into(),
            points: Vec::new(),
            cost: None,
        };
        let meter = EnergyMeter::open(match dev.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => Some(gpu_id),
            _ => None,
        });
        let sources = meter.sources();
        if !sources.is_empty() {
            obs.note(&format!(
                "energy: measured over each point's timed window ({})",
                sources.join(", ")
            ));
        }
        let price = |points: &[PointSummary]| -> Result<_> {
            a.deployment
                .as_ref()
                .map(|(d, f)| {
                    cost_report(d, *f, &points.iter().map(cost_input).collect::<Vec<_>>())
                })
                .transpose()
        };
        let points: Vec<PointSpec> = a
            .prompt_len
            .iter()
            .flat_map(|&p| {
                a.batch.iter().map(move |&b| PointSpec {
                    batch: b,
                    prompt_len: p,
                })
            })
            .collect();
        let todo: Vec<PointSpec> = points
            .iter()
            .copied()
            .filter(|p| !done.contains_key(&p.id()))
            .collect();
        if todo.len() < points.len() {
            obs.note(&format!(
                "resuming {}: {} of {} points already finished",
                out.display(),
                points.len() - todo.len(),
                points.len()
            ));
        }
        let runs_per_rep = if a.probe { 1 } else { 2 };
        let work = |p: &PointSpec| -> u64 {
            let per_rep = p.batch * (p.prompt_len + passes_per_repetition(a.gen_len) - 1);
            ((a.warmup + a.repetitions) * runs_per_rep * per_rep) as u64
        };
        obs.start(todo.iter().map(work).sum());
        let point_settings = PointSettings {
            gen_len: a.gen_len,
            warmup: a.warmup,
            repetitions: a.repetitions,
            probe: a.probe,
        };
        for p in &todo {
            obs.point(p);
            let prompts = build_prompts(
                &self.source,
                &self.texts,
                &tok,
                desc.vocab_size,
                p.batch,
                p.prompt_len,
                0,
                a.seed,
            )?;
            let ids: Vec<Vec<u32>> = prompts.iter().map(|q| q.ids.clone()).collect();
            let meter = meter.available().then_some(&meter);
            let (reps, power) =
                run_point(engine, &ids, point_settings, meter, &mut |n| obs.tokens(n)).map_err(
                    |e| e.within(format!("point batch {} prompt {}", p.batch, p.prompt_len)),
                )?;
            let mut summary = summarise_point(&acct, *p, a.gen_len, &reps, peaks)?;
            summary.prompt_items = prompts.iter().map(|q| q.items.clone()).collect();
            summary.power = power;
            run_dir.save_point(*p, &reps, &summary)?;
            obs.point_done(&summary);
            done.insert(p.id(), summary);
            report.points = finished(&points, &done);
            report.cost = price(&report.points)?;
            obs.report(&out, &report)?;
        }
        report.points = finished(&points, &done);
        report.cost = price(&report.points)?;
        obs.report(&out, &report)?;
        Ok(report)
    }
}

/// The ceilings a run was started with, in its folder.
pub const CEILINGS_FILE: &str = "ceilings.json";

/// Every finished point of the run folder: this sweep's in sweep order, then those of earlier
/// commands of the same run that this one did not ask for (a report covers every point whose
/// records and files the folder holds).
fn finished(
    points: &[PointSpec],
    done: &std::collections::BTreeMap<String, PointSummary>,
) -> Vec<PointSummary> {
    let asked: Vec<String> = points.iter().map(PointSpec::id).collect();
    let mut out: Vec<PointSummary> = asked
        .iter()
        .filter_map(|id| done.get(id).cloned())
        .collect();
    out.extend(
        done.iter()
            .filter(|(id, _)| !asked.contains(id))
            .map(|(_, s)| s.clone()),
    );
    out
}

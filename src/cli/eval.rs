//! `moecap eval`: accuracy tasks on the engine, with the probe's records of the very passes that
//! produced the answers, summarised as one Cost-Accuracy-Performance record.

use super::bench::{is_synthetic, table_dtype, targets};
use super::options::{EngineArgs, EvalArgs};
use super::print_json;
use anyhow::{anyhow, bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use moecap::accounting::{Accountant, Precision};
use moecap::records::KvCacheKind;
use moecap::bench::output::write_json;
use moecap::bench::prompts::codec_covers;
use moecap::data::data_dir;
use moecap::machine::detect::{detect_gpu, detect_host};
use moecap::engine::io::append_records;
use moecap::engine::loader::checkpoint_dir;
use moecap::model::tokenizer::TextCodec;
use moecap::eval::chat::ChatTemplate;
use moecap::eval::score::{generate_answers, score_choices, Generation, CHAT_STOPS};
use moecap::eval::tasks::{is_sample, load, Items, Task};
use moecap::eval::{summarise_choices, summarise_gen, TaskSummary};
use moecap::machine::hardware::HardwareTable;
use moecap::accounting::metrics::{exact_metrics, PhaseMetrics};
use moecap::export::table::Table;
use serde::Serialize;
use std::io::Write;

/// The performance leg of the run: the probe's passes against spec and measured peaks.
#[derive(Serialize)]
struct Performance {
    passes: usize,
    spec_hardware: Option<String>,
    prefill_spec: Option<PhaseMetrics>,
    decode_spec: Option<PhaseMetrics>,
    prefill_measured: Option<PhaseMetrics>,
    decode_measured: Option<PhaseMetrics>,
}

#[derive(Serialize)]
struct EvalReport {
    moecap_version: String,
    model: String,
    model_name: String,
    synthetic: bool,
    device: String,
    dtype: String,
    data: String,
    sample_data: bool,
    chat: bool,
    limit: Option<usize>,
    seed: u64,
    batch: usize,
    tasks: Vec<TaskSummary>,
    performance: Option<Performance>,
}

pub(crate) fn cmd_eval(
    engine_args: &EngineArgs,
    a: &EvalArgs,
    table: &HardwareTable,
) -> Result<()> {
    let tasks = Task::parse_list(&a.tasks)?;
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
    // load every task first: missing data fails before the model loads
    let mut loaded = Vec::new();
    for t in &tasks {
        let shots = if a.chat {
            0
        } else {
            a.shots.unwrap_or(t.default_shots())
        };
        loaded.push((*t, shots, load(*t, &data, a.limit, shots, a.seed)?));
    }
    let dir = checkpoint_dir(&engine_args.model)?;
    if a.chat {
        let template = dir
            .as_deref()
            .map(ChatTemplate::from_dir)
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                anyhow!(
                    "--chat: {} has no chat_template in tokenizer_config.json",
                    engine_args.model
                )
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
    let codec = match &dir {
        Some(d) => TextCodec::from_dir(d)?,
        None => None,
    };
    let Some(codec) = codec else {
        bail!(
            "--model {}: eval needs the checkpoint's tokenizer.json (synthetic models have none)",
            engine_args.model
        );
    };
    if !codec_covers(&codec)? {
        bail!("--model {}: its tokenizer.json does not cover English text (a synthetic word-level tokenizer?); eval needs a real tokenizer", engine_args.model);
    }
    let mut engine = engine_args.load(!a.no_probe)?;
    std::fs::create_dir_all(&a.out).map_err(|e| anyhow!("{}: {e}", a.out.display()))?;
    let rec_path = a.out.join("records.jsonl");
    std::fs::write(&rec_path, b"").map_err(|e| anyhow!("{}: {e}", rec_path.display()))?;
    let desc = engine.model.desc.clone();
    let mut summaries = Vec::new();
    let mut all_records = Vec::new();
    for (task, shots, items) in &loaded {
        let pb = ProgressBar::new(items.len() as u64);
        pb.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} items, elapsed {elapsed}, ETA {eta}",
            )
            .map_err(|e| anyhow!("progress bar: {e}"))?
            .progress_chars("=> "),
        );
        pb.set_message(task.name());
        let out_path = a.out.join(format!("{}.jsonl", task.name()));
        let mut f =
            std::fs::File::create(&out_path).map_err(|e| anyhow!("{}: {e}", out_path.display()))?;
        let summary = match items {
            Items::Choice(v) => {
                let r = score_choices(&mut engine, &codec, v, a.batch, &mut |n| pb.inc(n as u64))?;
                for (it, x) in v.iter().zip(&r) {
                    let line = serde_json::json!({
                        "id": x.id, "group": x.group, "prompt": it.context, "choices": it.choices,
                        "gold": x.gold, "loglikelihoods": x.loglikelihoods, "pred": x.pred,
                        "pred_norm": x.pred_norm, "correct": x.pred == x.gold,
                        "correct_norm": x.pred_norm == x.gold,
                    });
                    writeln!(f, "{line}").map_err(|e| anyhow!("{}: {e}", out_path.display()))?;
                }
                summarise_choices(task.name(), *shots, &r)
            }
            Items::Gen(v) => {
                let stops: &[&str] = if a.chat { &CHAT_STOPS } else { task.stops() };
                let gen = Generation {
                    max_new_tokens: a.max_gen_tokens,
                    stops,
                    strict: task.strict_extractor(),
                };
                let r = generate_answers(&mut engine, &codec, v, a.batch, gen, &mut |n| {
                    pb.inc(n as u64)
                })?;
                for (it, x) in v.iter().zip(&r) {
                    let line = serde_json::json!({
                        "id": x.id, "prompt": it.prompt, "answer": x.answer, "output": x.output,
                        "strict": x.strict, "flexible": x.flexible,
                        "correct_strict": x.strict.as_deref() == Some(x.answer.as_str()),
                        "correct_flexible": x.flexible.as_deref() == Some(x.answer.as_str()),
                    });
                    writeln!(f, "{line}").map_err(|e| anyhow!("{}: {e}", out_path.display()))?;
                }
                summarise_gen(task.name(), *shots, &r)
            }
        };
        pb.finish_and_clear();
        let recs = engine.take_records();
        append_records(&rec_path, &recs)?;
        all_records.extend(recs.into_iter().map(|r| r.pass));
        eprintln!("{}: {} items done", task.name(), items.len());
        summaries.push(summary);
    }
    let performance = if all_records.is_empty() {
        None
    } else {
        let tdt = table_dtype(engine.model.dtype);
        let acct = Accountant::new(
            &desc,
            Precision::uniform(tdt),
            KvCacheKind::default_for(&desc),
        );
        let host = detect_host();
        let gpu = detect_gpu(&engine.model.device);
        let t = targets(
            table,
            a.hardware.as_deref(),
            a.ceilings.as_deref(),
            false,
            &host,
            gpu.as_ref(),
            &engine.model.device,
            engine.model.dtype,
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
    let report = EvalReport {
        moecap_version: env!("CARGO_PKG_VERSION").into(),
        model: engine_args.model.clone(),
        model_name: desc.display_name(),
        synthetic: is_synthetic(&engine_args.model, dir.as_deref()),
        device: engine_args.device.clone(),
        dtype: engine.model.dtype.as_str().into(),
        data: data.display().to_string(),
        sample_data: is_sample(&data),
        chat: a.chat,
        limit: a.limit,
        seed: a.seed,
        batch: a.batch,
        tasks: summaries,
        performance,
    };
    write_json(&a.out.join("summary.json"), &report)?;
    let mut t = Table::new(&["task", "shots", "metric", "value", "stderr", "items"]).left(2);
    for s in &report.tasks {
        for (m, acc) in &s.metrics {
            t.row(vec![
                s.task.clone(),
                s.shots.to_string(),
                m.clone(),
                format!("{:.4}", acc.value),
                format!("{:.4}", acc.stderr),
                acc.n.to_string(),
            ]);
        }
    }
    let mut md = format!("# moecap eval: {}\n\n", report.model_name);
    if report.sample_data {
        md += "Data: the committed SAMPLE (a few items per task), not the full sets.\n\n";
    }
    md += "```\n";
    md += &t.render();
    md += "```\n";
    if let Some(p) = &report.performance {
        for (phase, m) in [
            ("prefill", &p.prefill_measured),
            ("decode", &p.decode_measured),
        ] {
            if let Some(m) = m {
                md += &format!(
                    "\n{phase}: {} passes, {:.1} tokens/s, mean pass {:.2} ms, S-MBU {:.1}% / S-MFU {:.2}% of the measured ceilings",
                    m.passes,
                    m.tokens_per_s,
                    m.mean_latency_s * 1e3,
                    m.s_mbu * 100.0,
                    m.s_mfu * 100.0
                );
            }
        }
        md += "\n";
    }
    let md_path = a.out.join("summary.md");
    std::fs::write(&md_path, &md).map_err(|e| anyhow!("{}: {e}", md_path.display()))?;
    if a.json {
        return print_json(&report);
    }
    print!("{md}");
    println!(
        "results: {} (summary.json, summary.md, TASK.jsonl per item, records.jsonl)",
        a.out.display()
    );
    Ok(())
}

//! `moecap bench` (the sweep with its progress bar, exporting the reports after every point) and
//! `moecap hw measure` (the machine's ceilings, cached per machine).

use super::cost::engine_deployment;
use super::options::{check_count, check_sweep, BenchArgs, EngineArgs, MAX_BATCH, MAX_REPETITIONS};
use super::print_json;
use anyhow::{anyhow, bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use moecap::accounting::{Accountant, Precision};
use moecap::bench::summary::{PointSpec, PointSummary};
use moecap::bench::sweep::{BenchOptions, Sweep, SweepObserver};
use moecap::bench::BenchReport;
use moecap::engine::device::parse_engine_dtype;
use moecap::engine::parse_device;
use moecap::export::markdown::{points_table, preamble};
use moecap::export::write_reports;
use moecap::machine::cache::cached_or_measured;
use moecap::machine::detect::{detect_gpu, detect_host};
use moecap::machine::hardware::HardwareTable;
use moecap::machine::memory::{activation_bytes, check_host_fits};
use moecap::machine::targets::machine_key;
use moecap::model::config::limits::MAX_POSITIONS;
use moecap::model::dtype::DType;
use moecap::model::params::model_params;
use moecap::model::source::Checkpoint;
use moecap::records::KvCacheKind;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::interrupt::{resume_command, say_on_interrupt};

/// `1h02m03s`, `4m05s`, `6s`.
fn clock(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

/// The sweep's progress bar (on a terminal; one plain line per finished point otherwise), its
/// exporters, and what an interruption says.
struct Progress {
    bar: ProgressBar,
    out: PathBuf,
    terminal: bool,
    started: Instant,
    /// Points finished in the folder (earlier runs' included).
    finished: usize,
}

impl Progress {
    fn on_interrupt(&self) {
        say_on_interrupt(&format!(
            "{} finished points are kept in {}; continue with: {}",
            self.finished,
            self.out.display(),
            resume_command(&self.out)
        ));
    }
}

impl SweepObserver for Progress {
    fn note(&mut self, msg: &str) {
        self.bar.suspend(|| eprintln!("{msg}"));
    }

    fn opened(&mut self, dir: &Path, finished: usize) {
        self.out = dir.to_path_buf();
        self.finished = finished;
        self.bar
            .suspend(|| eprintln!("report folder: {}", dir.display()));
        self.on_interrupt();
    }

    fn start(&mut self, tokens: u64) {
        self.bar.set_length(tokens);
        self.started = Instant::now();
    }

    fn point(&mut self, p: &PointSpec) {
        self.bar
            .set_message(format!("batch {} prompt {}", p.batch, p.prompt_len));
    }

    fn tokens(&mut self, n: usize) {
        self.bar.inc(n as u64);
    }

    fn point_done(&mut self, s: &PointSummary) {
        self.finished += 1;
        self.on_interrupt();
        let line = format!(
            "done: batch {:>4} prompt {:>5}: TTFT {:.1} ms, TPOT {}, decode S-MBU (measured) {}",
            s.point.batch,
            s.point.prompt_len,
            s.ttft_s.map_or(0.0, |s| s.median * 1e3),
            s.tpot_s
                .map_or("-".into(), |s| format!("{:.2} ms", s.median * 1e3)),
            s.decode
                .utilisation
                .measured_s_mbu
                .map_or("-".into(), |s| format!("{:.1}%", s.median * 100.0)),
        );
        if self.terminal {
            self.bar.println(line);
        } else {
            // a log has no bar: each line says how far the sweep is, by tokens processed
            let elapsed = self.started.elapsed().as_secs_f64();
            let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
            let eta = if pos > 0 && len > pos {
                format!(", ETA {}", clock(elapsed * (len - pos) as f64 / pos as f64))
            } else {
                String::new()
            };
            eprintln!(
                "{line} [{:.0}% of tokens, elapsed {}{eta}]",
                if len > 0 {
                    100.0 * pos as f64 / len as f64
                } else {
                    100.0
                },
                clock(elapsed)
            );
        }
    }

    fn report(&mut self, dir: &Path, report: &BenchReport) -> moecap::Result<()> {
        self.out = dir.to_path_buf();
        write_reports(dir, report)
    }
}

/// A warning when sparse utilisation (S-MBU, S-MFU) exceeds 100 % of a ceiling at any point,
/// with the reasons it can.
fn above_peak_warning(report: &BenchReport) -> Option<String> {
    let mut above = Vec::new();
    for p in &report.points {
        for (phase, u) in [
            ("prefill", &p.prefill.utilisation),
            ("decode", &p.decode.utilisation),
        ] {
            for (name, v) in [
                ("measured S-MBU", &u.measured_s_mbu),
                ("measured S-MFU", &u.measured_s_mfu),
                ("spec S-MBU", &u.spec_s_mbu),
                ("spec S-MFU", &u.spec_s_mfu),
            ] {
                if let Some(v) = v.as_ref().filter(|v| v.median > 1.0) {
                    above.push(format!(
                        "{phase} {name} {:.1}% at batch {} prompt {}",
                        v.median * 100.0,
                        p.point.batch,
                        p.point.prompt_len
                    ));
                }
            }
        }
    }
    let first = above.first()?;
    Some(format!(
        "{} figure(s) above 100 % of their ceiling (first: {first}): weights small enough to stay \
         in the CPU's caches are read faster than the memory bandwidth the ceiling measures; \
         otherwise the ceilings are low (measured under load: `moecap hw measure` again) or the \
         hardware row is not this machine's",
        above.len()
    ))
}

/// Refuses a sweep whose largest point cannot fit in host memory (on the CPU): the weights in
/// the run's dtype, the KV cache of the largest batch at its longest sequence, and the
/// activations of its prefill.
fn check_memory(engine_args: &EngineArgs, ck: &Checkpoint, a: &BenchArgs) -> Result<()> {
    let device = parse_device(&engine_args.device).map_err(|e| anyhow!("--device: {e}"))?;
    if !device.is_cpu() {
        return Ok(());
    }
    let dtype = parse_engine_dtype(engine_args.dtype.as_deref(), &device)
        .map_err(|e| anyhow!("--dtype: {e}"))?;
    let precision = Precision::uniform(DType::of_engine(dtype));
    let acct = Accountant::new(&ck.desc, precision, KvCacheKind::default_for(&ck.desc));
    let batch = a.batch.iter().max().copied().unwrap_or(1) as f64;
    let tokens = (a.prompt_len.iter().max().copied().unwrap_or(1) + a.gen_len) as f64;
    let kv = batch * tokens * acct.kv_bytes_per_token();
    let bytes = dtype.size_in_bytes() as f64;
    let weights = model_params(&ck.desc).total() as f64 * bytes;
    let prompt = a.prompt_len.iter().max().copied().unwrap_or(1) as f64;
    let activations = activation_bytes(&ck.desc, batch * prompt, batch, bytes);
    check_host_fits(
        &format!("the sweep's largest point (batch {batch}, {tokens} tokens per sequence)"),
        weights + kv + activations,
        &format!(
            "{:.1} GB of weights + {:.1} GB of KV cache + {:.1} GB of prefill activations",
            weights / 1e9,
            kv / 1e9,
            activations / 1e9
        ),
    )?;
    Ok(())
}

/// `moecap bench`.
pub(crate) fn cmd_bench(
    engine_args: &EngineArgs,
    a: &BenchArgs,
    table: &HardwareTable,
) -> Result<()> {
    check_sweep("--batch", a.batch.iter().map(|&b| b as u64), MAX_BATCH)?;
    check_sweep(
        "--prompt-len",
        a.prompt_len.iter().map(|&p| p as u64),
        MAX_POSITIONS as u64,
    )?;
    if a.gen_len == 0 || a.gen_len > MAX_POSITIONS {
        bail!("--gen-len must be between 1 (prefill only) and {MAX_POSITIONS}");
    }
    check_count(
        "--repetitions",
        a.repetitions as u64,
        MAX_REPETITIONS as u64,
    )?;
    if a.warmup > MAX_REPETITIONS {
        bail!(
            "--warmup must be at most {MAX_REPETITIONS}, not {}",
            a.warmup
        );
    }
    let ck = engine_args.checkpoint()?;
    check_memory(engine_args, &ck, a)?;
    if let Some(max) = ck.desc.max_position_embeddings {
        if let Some(p) = a.prompt_len.iter().find(|&&p| p + a.gen_len > max) {
            bail!(
                "--prompt-len {p} with --gen-len {} reaches {} tokens, beyond the model's max_position_embeddings ({max})",
                a.gen_len,
                p + a.gen_len
            );
        }
    }
    let deployment = engine_deployment(engine_args, &ck, &a.cost, a.hardware.as_deref(), table)?;
    let sweep = Sweep::new(
        &ck,
        BenchOptions {
            batch: a.batch.clone(),
            prompt_len: a.prompt_len.clone(),
            gen_len: a.gen_len,
            warmup: a.warmup,
            repetitions: a.repetitions,
            prompts: a.prompts.clone(),
            hardware: a.hardware.clone(),
            out: a.out.clone(),
            resume: a.resume,
            probe: !a.no_probe,
            remeasure: a.remeasure,
            ceilings: a.ceilings.clone(),
            seed: a.seed,
            weights_seed: ck.synthetic().then_some(engine_args.weights_seed),
            deployment,
        },
    )?;
    let mut engine = engine_args.load(&ck, true)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {percent}% tokens {pos}/{len} elapsed {elapsed} ETA {eta}",
        )
        .map_err(|e| anyhow!("progress bar: {e}"))?
        .progress_chars("=> "),
    );
    let terminal = std::io::stderr().is_terminal();
    if !terminal {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut progress = Progress {
        bar,
        out: PathBuf::new(),
        terminal,
        started: Instant::now(),
        finished: 0,
    };
    let report = sweep.run(&mut engine, &engine_args.device, table, &mut progress)?;
    progress.bar.finish_and_clear();
    if let Some(w) = above_peak_warning(&report) {
        eprintln!("warning: {w}");
    }
    if a.json {
        return print_json(&report);
    }
    for l in preamble(&report) {
        println!("{l}");
    }
    print!("{}", points_table(&report));
    if let Some(c) = &report.cost {
        println!();
        print!("{}", moecap::export::cost::cost_markdown(c));
    }
    println!(
        "report: {} (summary.md, summary.csv, summary.json, records.jsonl, routing/, *.svg)",
        progress.out.display()
    );
    Ok(())
}

/// `moecap hw measure`.
pub(crate) fn cmd_hw_measure(device: &str, dtypes: &[String], json: bool) -> Result<()> {
    let dev = parse_device(device).map_err(|e| anyhow!("--device: {e}"))?;
    let dts = dtypes
        .iter()
        .map(|d| parse_engine_dtype(Some(d), &dev).map_err(|e| anyhow!("--dtype: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let host = detect_host();
    let gpu = detect_gpu(&dev);
    let key = machine_key(&host, gpu.as_ref());
    let (c, file) = cached_or_measured(&dev, &key, &dts, true, &mut |m| {
        if !json {
            eprintln!("{m}");
        }
    })?;
    if json {
        return print_json(&serde_json::json!({"host": host, "gpu": gpu, "ceilings": c}));
    }
    println!("machine      {key}");
    if let Some(g) = &gpu {
        println!(
            "gpu          {} ({:.1} GB, {} SMs, compute {}, driver {})",
            g.name,
            g.memory_bytes as f64 / 1e9,
            g.sm_count,
            g.compute_capability,
            g.driver
        );
    }
    println!(
        "copy         {:.2} GB/s (read + write, {} MiB buffers, {} threads)",
        c.copy_bytes_per_s / 1e9,
        c.buffer_bytes >> 20,
        c.threads
    );
    println!(
        "triad        {:.2} GB/s (two reads + one write)",
        c.triad_bytes_per_s / 1e9
    );
    for (d, f) in &c.matmul_flops_per_s {
        let n = c.matmul_size.get(d).copied().unwrap_or(0);
        println!(
            "matmul {d:<5} {:.1} GFLOP/s ({n}×{n}·{n}×{n}ᵀ through the engine's GEMMs)",
            f / 1e9
        );
    }
    if let Some(f) = file {
        println!("cached in    {}", f.display());
    }
    Ok(())
}

//! `moecap bench` (the sweep, its progress bar and reports) and `moecap hw measure` (the
//! machine's ceilings, cached per machine).

use super::options::{BenchArgs, EngineArgs};
use super::print_json;
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use moecap::accounting::{Accountant, Precision};
use moecap::records::KvCacheKind;
use moecap::bench::output::RunDir;
use moecap::bench::prompts::{build_prompts, codec_covers, source_texts, PromptSource, Tokenise};
use moecap::bench::run::{passes_per_repetition, run_point, PointSettings};
use moecap::bench::summary::{summarise_point, Ceiling, PointSpec};
use moecap::bench::{BenchReport, RunSettings, SpecInfo};
use moecap::machine::ceilings::{
    cache_dir, cache_file, measure, read_cached, stale_reason, write_cached, Ceilings, MeasureSpec,
    METHOD,
};
use moecap::data::data_dir;
use moecap::machine::detect::{detect_gpu, detect_host, match_cpu, match_gpu, GpuInfo, HostInfo};
use moecap::engine::loader::checkpoint_dir;
use moecap::model::tokenizer::TextCodec;
use moecap::export::markdown::{points_table, preamble};
use moecap::export::write_reports;
use moecap::machine::hardware::{Hardware, HardwareTable};
use moecap::accounting::metrics::Peaks;
use moecap::model::params::model_params;
use std::path::{Path, PathBuf};

/// The table's dtype for an engine dtype.
pub(crate) fn table_dtype(dt: candle_core::DType) -> moecap::model::dtype::DType {
    match dt {
        candle_core::DType::BF16 => moecap::model::dtype::DType::Bf16,
        candle_core::DType::F16 => moecap::model::dtype::DType::F16,
        _ => moecap::model::dtype::DType::F32,
    }
}

/// The cache key of this machine and device.
pub(crate) fn machine_key(host: &HostInfo, gpu: Option<&GpuInfo>) -> String {
    match gpu {
        Some(g) => format!("{} {}", g.name, g.memory_bytes / 1_000_000_000),
        None => format!(
            "{} {}cpu",
            host.cpu_model.as_deref().unwrap_or("unknown-cpu"),
            host.logical_cpus
        ),
    }
}

/// Cached ceilings for `dtypes` on `device`, measured (and cached) where missing.
pub(crate) fn ceilings(
    device: &candle_core::Device,
    key: &str,
    dtypes: &[candle_core::DType],
    remeasure: bool,
    quiet: bool,
) -> Result<(Ceilings, Option<PathBuf>)> {
    let file = cache_dir().map(|d| cache_file(&d, key));
    let cached = match (&file, remeasure) {
        (Some(f), false) => read_cached(f)?,
        _ => None,
    };
    let missing: Vec<candle_core::DType> = match &cached {
        Some(c) => dtypes
            .iter()
            .copied()
            .filter(|d| c.flops_per_s(*d).is_none())
            .collect(),
        None => dtypes.to_vec(),
    };
    let spec = MeasureSpec::default_for(device);
    // a cache is reused only if a quick re-check (one repetition) does not beat it
    let stale = match &cached {
        Some(c) => {
            let quick = if missing.is_empty() && c.method == METHOD {
                Some(measure(
                    device,
                    key,
                    dtypes,
                    MeasureSpec {
                        repetitions: 1,
                        ..spec
                    },
                )?)
            } else {
                None
            };
            stale_reason(c, quick.as_ref())
        }
        None => None,
    };
    match (&cached, &stale) {
        (Some(c), None) if missing.is_empty() => return Ok((c.clone(), file)),
        (_, Some(why)) if !quiet => eprintln!("{why}; measuring again"),
        _ => {}
    }
    let (cached, missing) = if stale.is_some() {
        (None, dtypes.to_vec())
    } else {
        (cached, missing)
    };
    if !quiet {
        eprintln!(
            "measuring this machine's bandwidth and matmul throughput ({}); cached for later runs",
            missing
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut fresh = measure(device, key, &missing, spec)?;
    if let Some(old) = cached {
        // keep the dtypes measured before
        for (k, v) in old.matmul_flops_per_s {
            fresh.matmul_flops_per_s.entry(k).or_insert(v);
        }
        for (k, v) in old.matmul_size {
            fresh.matmul_size.entry(k).or_insert(v);
        }
    }
    if let Some(f) = &file {
        write_cached(f, &fresh)?;
    }
    Ok((fresh, file))
}

/// `moecap hw measure`.
pub(crate) fn cmd_hw_measure(device: &str, dtypes: &[String], json: bool) -> Result<()> {
    let dev = moecap::engine::parse_device(device)?;
    let dts = dtypes
        .iter()
        .map(|d| moecap::engine::device::parse_engine_dtype(Some(d), &dev))
        .collect::<moecap::Result<Vec<_>>>()?;
    let host = detect_host();
    let gpu = detect_gpu(&dev);
    let key = machine_key(&host, gpu.as_ref());
    let (c, file) = ceilings(&dev, &key, &dts, true, json)?;
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

/// The spec row: `--hardware`, else the detected device's row.
pub(crate) fn spec_row<'t>(
    table: &'t HardwareTable,
    hardware: Option<&str>,
    host: &HostInfo,
    gpu: Option<&GpuInfo>,
) -> Result<Option<&'t Hardware>> {
    if let Some(h) = hardware {
        return Ok(Some(table.find(h)?));
    }
    Ok(match gpu {
        Some(g) => match_gpu(table, &g.name, g.memory_bytes),
        None => host.cpu_model.as_deref().and_then(|m| match_cpu(table, m)),
    })
}

/// What a run's utilisation is measured against.
pub(crate) struct Targets {
    /// The hardware-table row's peaks for the engine dtype, if the device has a row.
    pub(crate) spec: Option<SpecInfo>,
    /// This machine's measured ceilings.
    pub(crate) ceilings: Ceilings,
    /// Both as peaks.
    pub(crate) peaks: Ceiling,
}

/// The spec row (`--hardware` or the detected device) and the measured ceilings (`--ceilings`
/// file, else the cache, measuring what is missing) of the engine's device and dtype.
#[allow(clippy::too_many_arguments)]
pub(crate) fn targets(
    table: &HardwareTable,
    hardware: Option<&str>,
    ceilings_file: Option<&Path>,
    remeasure: bool,
    host: &HostInfo,
    gpu: Option<&GpuInfo>,
    device: &candle_core::Device,
    dtype: candle_core::DType,
) -> Result<Targets> {
    let spec = spec_row(table, hardware, host, gpu)?.and_then(|h| {
        h.peak_flops(table_dtype(dtype)).ok().map(|f| SpecInfo {
            name: h.name.clone(),
            devices: 1,
            bandwidth_bytes_per_s: h.bandwidth_bytes_per_s(),
            flops_per_s: f,
        })
    });
    let ceil = match ceilings_file {
        Some(f) => {
            read_cached(f)?.ok_or_else(|| anyhow!("--ceilings {}: no such file", f.display()))?
        }
        None => ceilings(device, &machine_key(host, gpu), &[dtype], remeasure, false)?.0,
    };
    let peaks = Ceiling {
        spec: spec.as_ref().map(|s| Peaks {
            bandwidth_bytes_per_s: s.bandwidth_bytes_per_s,
            flops_per_s: s.flops_per_s,
        }),
        measured: ceil.flops_per_s(dtype).map(|f| Peaks {
            bandwidth_bytes_per_s: ceil.bandwidth_bytes_per_s(),
            flops_per_s: f,
        }),
    };
    Ok(Targets {
        spec,
        ceilings: ceil,
        peaks,
    })
}

fn default_out(model_name: &str) -> PathBuf {
    let secs = moecap::machine::ceilings::unix_now();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let safe: String = model_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    PathBuf::from("moecap-bench").join(format!(
        "{safe}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

pub(crate) fn is_synthetic(model: &str, dir: Option<&Path>) -> bool {
    if model.starts_with("synthetic:") {
        return true;
    }
    dir.and_then(|d| std::fs::read_to_string(d.join("config.json")).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("moecap_synthetic").is_some())
}

/// `moecap bench`.
pub(crate) fn cmd_bench(
    engine_args: &EngineArgs,
    a: &BenchArgs,
    table: &HardwareTable,
) -> Result<()> {
    for (flag, v) in [("--batch", &a.batch), ("--prompt-len", &a.prompt_len)] {
        if v.is_empty() || v.contains(&0) {
            bail!("{flag} needs one or more values of at least 1");
        }
    }
    if a.gen_len == 0 {
        bail!("--gen-len must be at least 1 (1: prefill only)");
    }
    if a.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    let data = data_dir();
    let source = PromptSource::parse(&a.prompts, data.as_deref())?;
    let texts = source_texts(&source, data.as_deref())?;
    let host = detect_host();
    let dir = checkpoint_dir(&engine_args.model)?;
    let codec = match &dir {
        Some(d) => TextCodec::from_dir(d)?,
        None => None,
    };
    let tok = match &codec {
        Some(c) if codec_covers(c)? => Tokenise::Codec(c),
        _ => Tokenise::HashedWords,
    };
    let mut engine = engine_args.load(true)?;
    let device = engine.model.device.clone();
    let dtype = engine.model.dtype;
    let desc = engine.model.desc.clone();
    let gpu = detect_gpu(&device);
    let tdt = table_dtype(dtype);
    let Targets {
        spec,
        ceilings: ceil,
        peaks: ceiling,
    } = targets(
        table,
        a.hardware.as_deref(),
        a.ceilings.as_deref(),
        a.remeasure,
        &host,
        gpu.as_ref(),
        &device,
        dtype,
    )?;
    let tokenisation = match (&source, &tok) {
        (PromptSource::Random, _) => "random ids",
        (_, Tokenise::Codec(_)) => "the checkpoint's tokenizer",
        (_, Tokenise::HashedWords) => {
            "hashed words: the checkpoint has no tokenizer covering the text"
        }
    };
    let settings = RunSettings {
        model: engine_args.model.clone(),
        model_name: desc.display_name(),
        synthetic: is_synthetic(&engine_args.model, dir.as_deref()),
        device: engine_args.device.clone(),
        dtype: dtype.as_str().to_string(),
        gen_len: a.gen_len,
        warmup: a.warmup,
        repetitions: a.repetitions,
        prompts: source.label(),
        tokenisation: tokenisation.into(),
        seed: a.seed,
        probe: !a.no_probe,
        hardware: spec.as_ref().map(|s| s.name.clone()),
    };
    let out = match &a.out {
        Some(o) => o.clone(),
        None => default_out(&settings.model_name),
    };
    let (run_dir, mut done) = RunDir::open(&out, &settings, a.resume)?;
    let kv = KvCacheKind::default_for(&desc);
    let acct = Accountant::new(&desc, Precision::uniform(tdt), kv);
    let params = model_params(&desc);
    let mut report = BenchReport {
        moecap_version: env!("CARGO_PKG_VERSION").into(),
        settings: settings.clone(),
        host,
        gpu,
        ceilings: Some(ceil),
        spec,
        params_total: params.total(),
        params_active: params.active_per_token(&desc),
        kv_cache: super::options::kv_cache_name(kv).into(),
        points: Vec::new(),
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
        eprintln!(
            "resuming {}: {} of {} points already finished",
            out.display(),
            points.len() - todo.len(),
            points.len()
        );
    }
    let runs_per_rep = if a.no_probe { 2 } else { 1 };
    let work = |p: &PointSpec| -> u64 {
        let per_rep = p.batch * (p.prompt_len + passes_per_repetition(a.gen_len) - 1);
        ((a.warmup + a.repetitions) * runs_per_rep * per_rep) as u64
    };
    let pb = ProgressBar::new(todo.iter().map(work).sum());
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {percent}% tokens {pos}/{len} elapsed {elapsed} ETA {eta}",
        )
        .map_err(|e| anyhow!("progress bar: {e}"))?
        .progress_chars("=> "),
    );
    let settings_run = PointSettings {
        gen_len: a.gen_len,
        warmup: a.warmup,
        repetitions: a.repetitions,
        probe: !a.no_probe,
    };
    for p in &todo {
        pb.set_message(format!("batch {} prompt {}", p.batch, p.prompt_len));
        let prompts = build_prompts(
            &source,
            &texts,
            &tok,
            desc.vocab_size,
            p.batch,
            p.prompt_len,
            0,
            a.seed,
        )?;
        let ids: Vec<Vec<u32>> = prompts.iter().map(|q| q.ids.clone()).collect();
        let reps = run_point(&mut engine, &ids, settings_run, &mut |n| pb.inc(n as u64))
            .with_context(|| format!("point batch {} prompt {}", p.batch, p.prompt_len))?;
        let mut summary = summarise_point(&acct, *p, a.gen_len, &reps, ceiling)?;
        summary.prompt_items = prompts.iter().map(|q| q.items.clone()).collect();
        run_dir.save_point(*p, &reps, &summary)?;
        pb.println(format!(
            "done: batch {:>4} prompt {:>5}: TTFT {:.1} ms, TPOT {}, decode S-MBU (measured) {}",
            p.batch,
            p.prompt_len,
            summary.ttft_s.map_or(0.0, |s| s.median * 1e3),
            summary
                .tpot_s
                .map_or("-".into(), |s| format!("{:.2} ms", s.median * 1e3)),
            summary
                .decode
                .utilisation
                .measured_s_mbu
                .map_or("-".into(), |s| format!("{:.1}%", s.median * 100.0)),
        ));
        done.insert(p.id(), summary);
        report.points = points
            .iter()
            .filter_map(|q| done.get(&q.id()).cloned())
            .collect();
        write_reports(&out, &report)?;
    }
    pb.finish_and_clear();
    report.points = points
        .iter()
        .filter_map(|q| done.get(&q.id()).cloned())
        .collect();
    write_reports(&out, &report)?;
    if a.json {
        return print_json(&report);
    }
    for l in preamble(&report) {
        println!("{l}");
    }
    print!("{}", points_table(&report));
    println!(
        "report: {} (summary.md, summary.csv, summary.json, records.jsonl, routing/, *.svg)",
        out.display()
    );
    Ok(())
}

//! `moecap routing` (routing analytics of a trace) and `moecap offload simulate` (every cache
//! policy replayed on it).

use super::options::{checkpoint, RoutingArgs, SimulateArgs};
use super::print_json;
use anyhow::{anyhow, bail, Context, Result};
use moecap::accounting::deployment::Deployment;
use moecap::accounting::offload::{DeviceTime, Simulation};
use moecap::accounting::offload_cost::{
    default_host, host_template, price_simulation, PricedConfig,
};
use moecap::accounting::{Accountant, Precision};
use moecap::export::offload::{
    routing_markdown, simulate_markdown, write_routing_reports, write_simulate_reports,
};
use moecap::machine::cache::{cache_file, read_cached};
use moecap::machine::detect::detect_host;
use moecap::machine::dirs::cache_dir;
use moecap::machine::hardware::{HardwareTable, Peaks};
use moecap::machine::parts::PartsTable;
use moecap::machine::targets::machine_key;
use moecap::model::dtype::DType;
use moecap::model::source::Checkpoint;
use moecap::offload::analytics::{analyse, PhaseFilter};
use moecap::offload::layout_of;
use moecap::offload::sim::{Profile, SimOptions, Variant};
use moecap::offload::timing::{Host, Link, MissHandler, Sizes, TimeModel};
use moecap::offload::trace::Trace;
use moecap::records::KvCacheKind;
use moecap::records::Phase;
use std::path::Path;

/// The model of a trace: `--model`, else the bench run's.
fn model_of(arg: Option<&str>, trace: &Trace) -> Result<Option<Checkpoint>> {
    match arg.or(trace.model.as_deref()) {
        Some(m) => Ok(Some(checkpoint(m)?)),
        None => Ok(None),
    }
}

pub(crate) fn cmd_routing(a: &RoutingArgs) -> Result<()> {
    let phase = PhaseFilter::parse(&a.phase)
        .ok_or_else(|| anyhow!("--phase: `{}` is not prefill, decode or all", a.phase))?;
    let trace = Trace::read(&a.trace)?;
    let ck = model_of(a.model.as_deref(), &trace)?;
    let (layout, top_k, from_model) = layout_of(&trace, ck.as_ref().map(|c| &c.desc))?;
    let layer = a.layer.unwrap_or(layout.layers[0]);
    if !layout.layers.contains(&layer) {
        bail!(
            "--layer {layer}: not a MoE layer of the trace (MoE layers: {})",
            layout
                .layers
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let an = analyse(&trace, &layout, &top_k, phase, from_model);
    if let Some(out) = &a.out {
        write_routing_reports(out, &an, layer)?;
    }
    if a.json {
        return print_json(&an);
    }
    print!("{}", routing_markdown(&an));
    if let Some(out) = &a.out {
        println!(
            "report: {} (routing.md, routing.csv, routing.json, load.svg, coactivation.svg)",
            out.display()
        );
    }
    Ok(())
}

/// Bytes from `24e9`, `24G`, `24GiB`, `512Mi`, ...
fn parse_bytes(s: &str) -> Option<f64> {
    let t = s.trim().trim_end_matches('B').trim_end_matches('b');
    let (num, mult) = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ]
    .iter()
    .find_map(|(suf, m)| t.strip_suffix(suf).map(|n| (n, *m)))
    .unwrap_or((t, 1.0));
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x * mult)
}

pub(crate) fn cmd_simulate(a: &SimulateArgs, table: &HardwareTable) -> Result<()> {
    let global = match a.scope.as_str() {
        "layer" => false,
        "global" => true,
        other => bail!("--scope: `{other}` is not layer or global"),
    };
    let mut variants = Vec::new();
    for p in &a.policy {
        let v = Variant::parse(p.trim()).ok_or_else(|| {
            anyhow!(
                "--policy: `{p}` is not lru, lfu, lfru, static, belady or lru/lfu/lfru+prefetch"
            )
        })?;
        if !variants.contains(&v) {
            variants.push(v);
        }
    }
    if variants.is_empty() {
        bail!("--policy names no policy");
    }
    let handler = match a.on_miss.as_str() {
        "fetch" => MissHandler::Fetch,
        "cpu" => MissHandler::Cpu,
        "lowbit" => MissHandler::Lowbit {
            bytes_per_param: match a.lowbit.as_str() {
                "int8" => 1.0,
                "int4" => 0.5,
                other => bail!("--lowbit: `{other}` is not int8 or int4"),
            },
        },
        other => bail!("--on-miss: `{other}` is not fetch, cpu or lowbit"),
    };
    if !(a.lfru_half_life.is_finite() && a.lfru_half_life > 0.0) {
        bail!("--lfru-half-life must be a positive number of passes");
    }
    let warm_static = match a.warm.as_deref() {
        None => false,
        Some("static") => true,
        Some(other) => bail!("--warm: `{other}` is not static"),
    };
    for (flag, v) in [
        ("--link-gbs", a.link_gbs),
        ("--cpu-gbs", a.cpu_gbs),
        ("--cpu-gflops", a.cpu_gflops),
    ] {
        if v.is_some_and(|x| !(x.is_finite() && x > 0.0)) {
            bail!("{flag} must be positive");
        }
    }
    if !(a.link_latency_us.is_finite() && a.link_latency_us >= 0.0) {
        bail!("--link-latency-us must be zero or positive");
    }
    let trace = Trace::read(&a.trace)?;
    let ck = model_of(a.model.as_deref(), &trace)?.ok_or_else(|| {
        anyhow!("--model: the trace names no model (only bench run folders do); pass --model")
    })?;
    let desc = &ck.desc;
    let (layout, top_k, _) = layout_of(&trace, Some(desc))?;
    let profile_trace = match &a.profile {
        Some(p) => {
            let t = Trace::read(p).context("--profile")?;
            layout_of(&t, Some(desc)).context("--profile")?;
            t
        }
        None => trace.clone(),
    };
    let profile = Profile::of(&profile_trace, &layout);
    let dtype = match &a.dtype {
        Some(s) => DType::parse_flag("--dtype", s)?,
        None => run_dtype(&a.trace).unwrap_or_else(|| DType::of_checkpoint(desc)),
    };
    let acct = Accountant::new(
        desc,
        Precision::uniform(dtype),
        KvCacheKind::default_for(desc),
    );
    let hw = a.hardware.as_deref().map(|h| table.find(h)).transpose()?;
    let peaks = hw
        .map(|h| -> Result<Peaks> {
            Ok(Peaks {
                bandwidth_bytes_per_s: h.bandwidth_bytes_per_s(),
                flops_per_s: h.peak_flops(dtype)?,
            })
        })
        .transpose()?;
    let link_gbs = a.link_gbs.or_else(|| hw.and_then(|h| h.host_link_gbs()));
    let host = match (a.cpu_gbs, a.cpu_gflops) {
        (Some(b), Some(f)) => Some(Host {
            bytes_per_s: b * 1e9,
            flops_per_s: f * 1e9,
        }),
        _ => machine_host().map(|h| Host {
            bytes_per_s: a.cpu_gbs.map_or(h.bytes_per_s, |b| b * 1e9),
            flops_per_s: a.cpu_gflops.map_or(h.flops_per_s, |f| f * 1e9),
        }),
    };
    let expert_params = acct.expert_params() as f64;
    let time = TimeModel {
        handler,
        link: link_gbs.map(|g| Link {
            bytes_per_s: g * 1e9,
            latency_s: a.link_latency_us * 1e-6,
        }),
        host,
        sizes: Sizes {
            expert_params,
            weight_bytes: dtype.bytes(),
            hidden: desc.hidden_size as f64,
            activation_bytes: dtype.bytes(),
            layers: desc.num_layers() as f64,
        },
    };
    let expert_bytes = expert_params * dtype.bytes();
    let pools = if global { 1 } else { layout.layers.len() };
    let max_e = layout.experts.iter().copied().max().unwrap_or(0);
    let capacities: Vec<usize> = if let Some(m) = &a.device_memory {
        let bytes = parse_bytes(m)
            .ok_or_else(|| anyhow!("--device-memory: `{m}` is not a number of bytes"))?;
        let non_expert = acct.non_expert_bytes();
        if bytes < non_expert {
            bail!(
                "--device-memory {m}: {:.3} GB do not hold the {:.3} GB of weights that are not routed experts",
                bytes / 1e9,
                non_expert / 1e9
            );
        }
        let per_pool = ((bytes - non_expert) / expert_bytes.max(1.0) / pools as f64).floor();
        vec![(per_pool as usize).min(if global { layout.total() } else { max_e })]
    } else if a.capacity.is_empty() {
        let full = if global { layout.total() } else { max_e };
        let mut c = vec![0];
        let mut x = 1;
        while x < full {
            c.push(x);
            x *= 2;
        }
        c.push(full);
        c
    } else {
        a.capacity.clone()
    };
    let k = top_k.iter().copied().max().unwrap_or(1);
    let prefetch = a.prefetch.unwrap_or(k);
    let sim = Simulation {
        layout: &layout,
        profile: &profile,
        options: SimOptions {
            global,
            prefetch,
            max_uploads: a.max_uploads.unwrap_or(prefetch),
            half_life: a.lfru_half_life,
            warm_static,
        },
        accountant: &acct,
        time,
        device_time: match peaks {
            Some(p) => Some(DeviceTime::Roofline(p)),
            None => trace
                .passes()
                .all(|p| p.latency_s.is_some())
                .then_some(DeviceTime::Measured),
        },
        peaks,
    };
    let report = sim.run(&trace, &variants, &capacities);
    let priced = match a.deployment.as_deref() {
        None => None,
        Some(spec) => {
            let parts = PartsTable::builtin()?;
            let host = if spec == "default" {
                default_host(table, &parts)?
            } else {
                host_template(&Deployment::read(Path::new(spec), table, &parts)?)
            };
            let decode: Vec<_> = trace
                .passes()
                .filter(|p| p.phase == Phase::Decode)
                .collect();
            let tokens: usize = decode.iter().map(|p| p.tokens()).sum();
            let all_experts = acct.weight_footprint_bytes() - acct.non_expert_bytes();
            Some(price_simulation(
                &report,
                &host,
                table,
                &parts,
                all_experts,
                tokens as f64,
                decode.len() as f64,
            )?)
        }
    };
    if let Some(out) = &a.out {
        write_simulate_reports(out, &report)?;
        if let Some(p) = &priced {
            moecap::files::write_json(&out.join("cost.json"), p)?;
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        if let (Some(p), Some(obj)) = (&priced, v.as_object_mut()) {
            obj.insert("cost".into(), serde_json::to_value(p)?);
        }
        return print_json(&v);
    }
    print!("{}", simulate_markdown(&report));
    if let Some(p) = &priced {
        print!("{}", priced_markdown(p));
    }
    if !report.time_model.timed() {
        println!(
            "(no times: give --hardware with a host link or --link-gbs{})",
            if handler == MissHandler::Cpu {
                ", and --cpu-gbs/--cpu-gflops or run `moecap hw measure` for --on-miss cpu"
            } else {
                ""
            }
        );
    }
    if let Some(out) = &a.out {
        println!(
            "report: {} (results.md, results.csv, results.json, hit_rate.svg, tpot.svg)",
            out.display()
        );
    }
    Ok(())
}

/// The engine dtype of a bench run folder (`run.json`).
fn run_dtype(path: &std::path::Path) -> Option<DType> {
    let text = std::fs::read_to_string(path.join("run.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    DType::parse(v.get("dtype")?.as_str()?)
}

/// This machine's cached ceilings as a host for CPU misses, when measured before.
fn machine_host() -> Option<Host> {
    let file = cache_file(&cache_dir()?, &machine_key(&detect_host(), None));
    let c = read_cached(&file).ok()??;
    Some(Host {
        bytes_per_s: c.bandwidth_bytes_per_s(),
        flops_per_s: c.flops_per_s(candle_core::DType::F32)?,
    })
}

/// The priced configurations as a markdown table.
fn priced_markdown(p: &[PricedConfig]) -> String {
    let f = |x: Option<f64>, d: usize| x.map_or("-".to_string(), |v| format!("{v:.d$}"));
    let mut md = String::from(
        "\n## Cost of each configuration\n\n| policy | capacity | device memory GB | smallest GPU | host DRAM GB | $/h | decode tok/s | decode $/Mtok | frontier |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in p {
        md += &format!(
            "| {} | {} | {:.2} | {} | {} | {} | {} | {} | {} |\n",
            c.policy,
            c.capacity.map_or("all".into(), |x| x.to_string()),
            c.device_memory_bytes / 1e9,
            c.gpu.as_deref().unwrap_or("none large enough"),
            c.dram_gb,
            f(c.cost_per_hour, 3),
            f(c.decode_tokens_per_s, 1),
            f(c.decode_usd_per_mtoken, 4),
            if c.frontier { "yes" } else { "" },
        );
    }
    md += "\nEach configuration on one GPU, the smallest of the hardware table whose memory holds its \
device memory, plus the host and DRAM for every routed expert (docs/COST.md); decode tokens/s is \
the simulation's predicted TPOT over the trace's decode tokens per pass; `frontier`: no other \
configuration is as cheap per hour and at least as fast.\n";
    md
}

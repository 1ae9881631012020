//! `moecap metrics`: utilisation from per-pass records, exact or as the published code computes it.

use super::options::*;
use super::print_json;
use anyhow::{bail, Result};
use moecap::accounting::compat::{
    compat_pass, compat_peaks, compat_phase, CompatModel, CompatPass,
};
use moecap::accounting::metrics::{exact_metrics, MetricsReport, PhaseMetrics};
use moecap::export::table::{pct, secs, Table};
use moecap::machine::hardware::HardwareTable;
use moecap::records::KvCacheKind;
use moecap::records::{read_records, Records};

pub(crate) fn cmd_metrics(a: &MetricsArgs, table: &HardwareTable) -> Result<()> {
    let (records_path, device, formula, json) = (&a.records, &a.device, a.formula, a.json);
    let ck = checkpoint(&a.model.model)?;
    let d = &ck.desc;
    let mut dev = device.resolve(table, d)?;
    let records = read_records(records_path)?;
    let file = records_path.display().to_string();
    if let (None, Records::Native(recs)) = (&device.kv_cache, &records) {
        // the cache the engine says it kept, unless --kv-cache names another
        let kinds: Vec<KvCacheKind> = recs.iter().filter_map(|r| r.kv_cache).collect();
        if let Some(&kind) = kinds.first() {
            if kinds.iter().any(|k| *k != kind) {
                bail!("{file}: the records name different KV caches; pass --kv-cache");
            }
            let mla = matches!(
                d.attention(),
                moecap::model::descriptor::Attention::Mla { .. }
            );
            if mla == (kind == KvCacheKind::Gqa) {
                bail!(
                    "{file}: the records say the KV cache was `{}`, which does not fit {} ({})",
                    kind.name(),
                    d.display_name(),
                    if mla {
                        "latent attention"
                    } else {
                        "no latent attention"
                    }
                );
            }
            dev.kv_cache = kind;
        }
    }
    let (peaks, prefill, decode, formula_name) = match formula {
        Formula::Exact => {
            let Records::Native(recs) = &records else {
                bail!(
                    "{file}: these are MoE-CAP harness records, which carry no per-layer experts or per-sequence contexts; use --formula moecap-compat"
                );
            };
            let peaks = dev.peaks()?;
            let acct = dev.accountant(d);
            let (p, dcd) = exact_metrics(&acct, recs, peaks, &file)?;
            (peaks, p, dcd, "exact")
        }
        Formula::MoecapCompat => {
            let peaks = compat_peaks(&dev.hw, dev.dtype, dev.devices)?;
            let passes: Vec<CompatPass> = match &records {
                Records::Native(recs) => recs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        compat_pass(r, d).map_err(|m| moecap::Error::Record {
                            file: file.clone(),
                            line: i + 1,
                            msg: m,
                        })
                    })
                    .collect::<std::result::Result<_, _>>()?,
                Records::Harness { passes, .. } => {
                    // the harness's figure is the mean of activated experts over MoE layers
                    let most = d
                        .moe_layers()
                        .map(|(_, m)| m.num_experts)
                        .max()
                        .unwrap_or(0);
                    if let Some(p) = passes.iter().find(|p| p.expert_activation > most as f64) {
                        bail!(
                            "{file}: expert_activation {} exceeds the {most} experts per layer of {}; records of another model?",
                            p.expert_activation,
                            d.display_name()
                        );
                    }
                    passes.iter().map(CompatPass::from).collect()
                }
            };
            let cm = CompatModel::new(d);
            let split = |ph: moecap::records::Phase| -> Vec<CompatPass> {
                passes.iter().filter(|p| p.phase == ph).copied().collect()
            };
            let bw = dev.dtype.bytes();
            (
                peaks,
                compat_phase(&cm, &split(moecap::records::Phase::Prefill), bw, peaks),
                compat_phase(&cm, &split(moecap::records::Phase::Decode), bw, peaks),
                "moecap-compat",
            )
        }
    };
    let report = MetricsReport {
        formula: formula_name.into(),
        model: d.display_name(),
        hardware: dev.hw.name.clone(),
        devices: dev.devices,
        dtype: dev.dtype.name().into(),
        kv_dtype: if formula == Formula::MoecapCompat {
            dev.dtype.name().into()
        } else {
            dev.kv_dtype.name().into()
        },
        kv_cache: dev.kv_cache.name().into(),
        peaks,
        prefill,
        decode,
    };
    for w in utilisation_warnings(&report) {
        eprintln!("warning: {w}");
    }
    if json {
        return print_json(&report);
    }
    println!(
        "{} on {}x {} ({}), formula {}: {} passes from {}",
        report.model,
        report.devices,
        report.hardware,
        report.dtype,
        report.formula,
        records.len(),
        file
    );
    if let Records::Harness { skipped, .. } = &records {
        if *skipped > 0 {
            println!("({skipped} harness records without expert_activation skipped, as that harness does)");
        }
    }
    let mut t = Table::new(&[
        "phase",
        "passes",
        "tokens",
        "mean latency",
        "tokens/s",
        "S-MBU",
        "S-MFU",
        "MBU",
        "MFU",
        "experts/layer",
    ]);
    let row = |name: &str, m: &PhaseMetrics| {
        vec![
            name.to_string(),
            m.passes.to_string(),
            format!("{}", m.tokens),
            secs(m.mean_latency_s),
            format!("{:.1}", m.tokens_per_s),
            pct(m.s_mbu),
            format!("{:.4}%", m.s_mfu * 100.0),
            pct(m.mbu),
            format!("{:.4}%", m.mfu * 100.0),
            match (m.mean_activated_experts, m.uniform_expected_experts) {
                (Some(a), Some(u)) => format!("{a:.2} (uniform {u:.2})"),
                (Some(a), None) => format!("{a:.2}"),
                _ => "-".into(),
            },
        ]
    };
    if let Some(m) = &report.prefill {
        t.row(row("prefill", m));
    }
    if let Some(m) = &report.decode {
        t.row(row("decode", m));
    }
    print!("{}", t.render());
    Ok(())
}

/// Utilisations above 100 % of a peak, each with the reason it can happen: S-MBU and S-MFU
/// above it mean the records are faster than the hardware allows (other hardware, or a broken
/// timer); dense MBU and MFU above it while the sparse figures are not come from counting every
/// expert's weights, which a MoE pass does not read.
fn utilisation_warnings(r: &MetricsReport) -> Vec<String> {
    let mut out = Vec::new();
    let hw = format!("{}x {}", r.devices, r.hardware);
    for (phase, m) in [("prefill", &r.prefill), ("decode", &r.decode)] {
        let Some(m) = m else { continue };
        for (name, v) in [("S-MBU", m.s_mbu), ("S-MFU", m.s_mfu)] {
            if v > 1.0 {
                out.push(format!(
                    "{phase} {name} is {:.1} % of {hw}'s peak: these records are faster than that hardware allows; were they measured on it (--hardware, --devices)?",
                    v * 100.0
                ));
            }
        }
        for (name, v, sparse) in [("MBU", m.mbu, m.s_mbu), ("MFU", m.mfu, m.s_mfu)] {
            if v > 1.0 && sparse <= 1.0 {
                out.push(format!(
                    "{phase} {name} is {:.1} % of the peak because it counts every expert's weights; S-{name} counts the experts the passes activated",
                    v * 100.0
                ));
            }
        }
    }
    out
}

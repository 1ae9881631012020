//! `moecap roofline`: analytic bounds of a model on a device.

use super::options::*;
use super::print_json;
use anyhow::{bail, Result};
use moecap::accounting::offload_cost::{cheapest_devices, OffloadQuestion};
use moecap::accounting::roofline::roofline;
use moecap::accounting::setup::DeviceSetup;
use moecap::export::table::{secs, si, Table};
use moecap::machine::hardware::HardwareTable;
use moecap::machine::parts::PartsTable;
use moecap::model::config::limits::MAX_POSITIONS;
use moecap::model::descriptor::ModelDesc;
use moecap::records::read::MIN_LATENCY_S;
use serde_json::json;

pub(crate) fn cmd_roofline(a: &RooflineArgs, table: &HardwareTable) -> Result<()> {
    let (device, batch, context, tpot_slo, json) =
        (&a.device, &a.batch, &a.context, a.tpot_slo, a.json);
    let ck = checkpoint(&a.model.model)?;
    let d = &ck.desc;
    let dev = device.resolve(table, d)?;
    check_sweep("--batch", batch.iter().copied(), MAX_BATCH)?;
    check_sweep("--context", context.iter().copied(), MAX_POSITIONS as u64)?;
    if let Some(s) = tpot_slo {
        if !(s.is_finite() && s >= MIN_LATENCY_S) {
            bail!("--tpot-slo must be a number of seconds of at least {MIN_LATENCY_S} (no pass is faster)");
        }
    }
    if a.offload {
        return offload_question(a, &dev, d, table);
    }
    let peaks = dev.peaks()?;
    let acct = dev.accountant(d);
    let memory = dev.memory_bytes();
    let points = roofline(&acct, peaks, batch, context, tpot_slo, memory);
    if json {
        return print_json(&json!({
            "model": d.display_name(),
            "hardware": dev.hw.name,
            "devices": dev.devices,
            "dtype": dev.dtype,
            "kv_dtype": dev.kv_dtype,
            "kv_cache": dev.kv_cache.name(),
            "peaks": peaks,
            "tpot_slo_s": tpot_slo,
            "points": points,
        }));
    }
    println!(
        "{} on {}x {} ({} weights, {} KV {}): {}B/s, {}FLOP/s",
        d.display_name(),
        dev.devices,
        dev.hw.name,
        dev.dtype,
        dev.kv_dtype,
        dev.kv_cache.name(),
        si(peaks.bandwidth_bytes_per_s),
        si(peaks.flops_per_s)
    );
    let mut header = vec![
        "batch",
        "context",
        "E[experts]",
        "decode B",
        "dense B",
        "TPOT >=",
        "bound",
        "tok/s <=",
        "TTFT >=",
        "memory",
        "fits",
    ];
    if tpot_slo.is_some() {
        header.push("BW for SLO");
    }
    let mut t = Table::new(&header);
    for p in &points {
        let mut row = vec![
            p.batch.to_string(),
            p.context.to_string(),
            format!("{:.2}", p.decode_expected_experts),
            si(p.decode_bytes),
            si(p.decode_dense_bytes),
            secs(p.tpot_lower_bound_s),
            p.decode_bound.to_string(),
            format!("{:.1}", p.decode_tokens_per_s_upper),
            secs(p.ttft_lower_bound_s),
            format!("{}B", si(p.memory_footprint_bytes)),
            p.fits
                .map_or("?".into(), |f| if f { "yes".into() } else { "no".into() }),
        ];
        if let Some(bw) = p.bandwidth_for_slo_bytes_per_s {
            row.push(format!("{}B/s", si(bw)));
        }
        t.row(row);
    }
    print!("{}", t.render());
    Ok(())
}

/// `moecap roofline --offload`: the cheapest device × count meeting the TPOT target.
fn offload_question(
    a: &RooflineArgs,
    dev: &DeviceSetup,
    d: &ModelDesc,
    table: &HardwareTable,
) -> Result<()> {
    let (&[batch], &[context]) = (a.batch.as_slice(), a.context.as_slice()) else {
        bail!("--offload answers for one --batch and one --context (e.g. --batch 1 --context 512)");
    };
    if batch > 1 << 20 || context > 1 << 30 {
        bail!("--offload: --batch is at most 1048576 sequences and --context at most 2^30 tokens");
    }
    if !(0.0..=1.0).contains(&a.hit_rate) {
        bail!(
            "--hit-rate is a fraction between 0 and 1, not {}",
            a.hit_rate
        );
    }
    check_count("--max-devices", u64::from(a.max_devices), MAX_DEVICES)?;
    let slo = a
        .tpot_slo
        .ok_or_else(|| anyhow::anyhow!("--offload needs --tpot-slo"))?;
    let acct = dev.accountant(d);
    let q = OffloadQuestion {
        batch,
        context,
        tpot_slo_s: slo,
        hit_rate: a.hit_rate,
        max_devices: a.max_devices,
    };
    let choices = cheapest_devices(&acct, dev.dtype, q, table, &PartsTable::builtin()?)?;
    if a.json {
        return print_json(&json!({
            "model": d.display_name(),
            "dtype": dev.dtype,
            "batch": batch,
            "context": context,
            "tpot_slo_s": slo,
            "hit_rate": a.hit_rate,
            "choices": choices,
        }));
    }
    println!(
        "{} ({} weights), batch {batch}, context {context}: devices meeting TPOT <= {} (offloading at hit rate {}), cheapest first",
        d.display_name(),
        dev.dtype,
        secs(slo),
        a.hit_rate
    );
    let mut t = Table::new(&[
        "hardware",
        "devices",
        "mode",
        "resident experts",
        "TPOT",
        "$/h",
        "$/Mtok",
    ]);
    for c in &choices {
        t.row(vec![
            c.hardware.clone(),
            c.devices.to_string(),
            c.mode.to_string(),
            format!("{:.0}", c.resident_experts),
            secs(c.tpot_s),
            format!("{:.3}", c.cost_per_hour),
            format!("{:.4}", c.usd_per_mtoken),
        ]);
    }
    print!("{}", t.render());
    if choices.is_empty() {
        println!(
            "no device x count up to --max-devices {} meets the target",
            a.max_devices
        );
    }
    println!("(TPOT: the decode roofline on the devices plus the missed experts over the host link; each device with the default host, docs/COST.md)");
    Ok(())
}

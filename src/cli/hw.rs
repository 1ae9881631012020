//! `moecap hw list` and `moecap hw detect`.

use super::print_json;
use anyhow::Result;
use moecap::export::table::{si, Table};
use moecap::machine::detect::{detect_host, match_cpu};
use moecap::machine::hardware::HardwareTable;
use moecap::model::dtype::DType;
use serde_json::json;

pub(crate) fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x}"))
}

pub(crate) fn cmd_hw_list(table: &HardwareTable, json: bool) -> Result<()> {
    if json {
        return print_json(table);
    }
    let mut t = Table::new(&[
        "name",
        "kind",
        "mem GB",
        "BW GB/s",
        "fp32",
        "tf32",
        "bf16",
        "fp16",
        "fp8",
        "int8",
        "TDP W",
        "price $",
        "host link",
        "source",
    ])
    .left(1)
    .left(12)
    .left(13);
    for h in &table.rows {
        let p = |dt: DType| {
            h.peak_tflops
                .get(&dt)
                .map_or("-".into(), |v| format!("{v}"))
        };
        t.row(vec![
            h.name.clone(),
            format!("{:?}", h.kind).to_lowercase(),
            opt(h.memory_gb),
            format!("{}", h.bandwidth_gbs),
            p(DType::F32),
            p(DType::Tf32),
            p(DType::Bf16),
            p(DType::F16),
            p(DType::Fp8),
            p(DType::Int8),
            opt(h.tdp_w),
            opt(h.price_usd),
            h.host_link.clone().unwrap_or_else(|| "-".into()),
            h.source.clone(),
        ]);
    }
    println!("{} (peaks: dense TFLOP/s)", table.origin);
    print!("{}", t.render());
    Ok(())
}

pub(crate) fn cmd_hw_detect(table: &HardwareTable, json: bool) -> Result<()> {
    let host = detect_host();
    let matched = host
        .cpu_model
        .as_deref()
        .and_then(|m| match_cpu(table, m))
        .map(|h| h.name.clone());
    if json {
        return print_json(&json!({ "host": host, "table_match": matched }));
    }
    println!(
        "cpu          {}",
        host.cpu_model.as_deref().unwrap_or("unknown")
    );
    println!(
        "cores        {} usable logical CPUs{}",
        host.logical_cpus,
        host.physical_cores
            .map_or(String::new(), |c| format!(", {c} physical cores"))
    );
    println!(
        "memory       {}",
        host.memory_bytes
            .map_or("unknown".into(), |b| format!("{}B", si(b as f64)))
    );
    println!("os           {}", host.os);
    match matched {
        Some(n) => println!("table match  {n}"),
        None => println!(
            "table match  none: this CPU is not in {}; name a row with --hardware or add one with --hardware-file",
            table.origin
        ),
    }
    Ok(())
}

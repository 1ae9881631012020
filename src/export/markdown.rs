//! `summary.md` and the terminal summary: the run's setting in a few lines, then one row per
//! point with the figures a person compares first.

use crate::accounting::stats::Summary;
use crate::bench::summary::PointSummary;
use crate::bench::BenchReport;
use crate::export::table::{si, Table};

fn ms(s: &Option<Summary>) -> String {
    s.map_or("-".into(), |s| {
        if s.n > 1 {
            format!("{:.2} ± {:.2}", s.median * 1e3, s.ci95 * 1e3)
        } else {
            format!("{:.2}", s.median * 1e3)
        }
    })
}

fn rate(s: &Option<Summary>) -> String {
    s.map_or("-".into(), |s| format!("{:.1}", s.median))
}

fn pct(s: &Option<Summary>) -> String {
    s.map_or("-".into(), |s| format!("{:.1}%", s.median * 100.0))
}

/// Column titles of the points table.
pub const COLUMNS: [&str; 11] = [
    "batch",
    "prompt",
    "TTFT ms",
    "TPOT ms",
    "ITL p99 ms",
    "prefill tok/s",
    "decode tok/s",
    "decode S-MBU (meas.)",
    "decode S-MBU (spec)",
    "decode experts/layer (uniform)",
    "decode time: experts / attn",
];

/// One point's cells.
pub fn cells(p: &PointSummary) -> Vec<String> {
    let d = &p.decode;
    vec![
        p.point.batch.to_string(),
        p.point.prompt_len.to_string(),
        ms(&p.ttft_s),
        ms(&p.tpot_s),
        p.itl_s.map_or("-".into(), |v| format!("{:.2}", v[2] * 1e3)),
        rate(&p.prefill.tokens_per_s),
        rate(&d.tokens_per_s),
        pct(&d.utilisation.measured_s_mbu),
        pct(&d.utilisation.spec_s_mbu),
        match (d.mean_activated_experts, d.uniform_expected_experts) {
            (Some(a), Some(u)) => format!("{a:.2} ({u:.2})"),
            _ => "-".into(),
        },
        d.time_share.as_ref().map_or("-".into(), |s| {
            format!("{:.0}% / {:.0}%", s.experts * 100.0, s.attention * 100.0)
        }),
    ]
}

/// Lines describing the run (model, machine, ceilings).
pub fn preamble(r: &BenchReport) -> Vec<String> {
    let s = &r.settings;
    let mut out = vec![format!(
        "model {} ({}): {} parameters, {} active per token; {} on {}, {} KV cache",
        s.model_name,
        s.model,
        si(r.params_total as f64),
        si(r.params_active as f64),
        s.dtype,
        s.device,
        r.kv_cache
    )];
    if s.synthetic {
        out.push(
            "weights are SYNTHETIC (seeded random): speed and routing statistics are real, outputs are meaningless"
                .into(),
        );
    }
    out.push(format!(
        "prompts: {} ({}); {} generated tokens per sequence; {} warm-up + {} timed repetitions per point{}",
        s.prompts,
        s.tokenisation,
        s.gen_len,
        s.warmup,
        s.repetitions,
        if s.probe { "" } else { "; no-probe mode: times of unprobed passes" }
    ));
    let cpu = r
        .host
        .cpu_model
        .clone()
        .unwrap_or_else(|| "unknown CPU".into());
    let mut machine = format!("machine: {cpu}, {} logical CPUs", r.host.logical_cpus);
    if let Some(g) = &r.gpu {
        machine += &format!(
            "; GPU {} ({:.0} GB, {} SMs, driver {})",
            g.name,
            g.memory_bytes as f64 / 1e9,
            g.sm_count,
            g.driver
        );
    }
    out.push(machine);
    if let Some(c) = &r.ceilings {
        let mm: Vec<String> = c
            .matmul_flops_per_s
            .iter()
            .map(|(d, f)| format!("{d} matmul {:.1} GFLOP/s", f / 1e9))
            .collect();
        out.push(format!(
            "measured: copy {:.2} GB/s, triad {:.2} GB/s, {}",
            c.copy_bytes_per_s / 1e9,
            c.triad_bytes_per_s / 1e9,
            mm.join(", ")
        ));
    }
    out.push(match &r.spec {
        Some(h) => format!(
            "spec: {} ×{}: {:.0} GB/s, {:.1} TFLOP/s",
            h.name,
            h.devices,
            h.bandwidth_bytes_per_s / 1e9,
            h.flops_per_s / 1e12
        ),
        None => "spec: no hardware-table row for this device (give --hardware NAME for spec utilisation)".into(),
    });
    out
}

/// The columns and rows of the points table; no-probe runs get the probe's overhead too.
/// The sweep table: its columns and one row of cells per point.
pub fn rows(r: &BenchReport) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let overhead = r.points.iter().any(|p| p.decode.probe_overhead.is_some());
    let mut cols = COLUMNS.to_vec();
    if overhead {
        cols.push("probe overhead prefill / decode");
    }
    let rows = r
        .points
        .iter()
        .map(|p| {
            let mut c = cells(p);
            if overhead {
                let f = |x: Option<f64>| {
                    x.map_or("-".into(), |v| format!("{:+.1}%", (v - 1.0) * 100.0))
                };
                c.push(format!(
                    "{} / {}",
                    f(p.prefill.probe_overhead),
                    f(p.decode.probe_overhead)
                ));
            }
            c
        })
        .collect();
    (cols, rows)
}

/// The points table as plain text (terminal).
pub fn points_table(r: &BenchReport) -> String {
    let (cols, rows) = rows(r);
    let mut t = Table::new(&cols);
    for row in rows {
        t.row(row);
    }
    t.render()
}

/// The markdown report.
pub fn summary_markdown(r: &BenchReport) -> String {
    let mut out = String::from("# moecap bench\n\n");
    for l in preamble(r) {
        out += &format!("- {l}\n");
    }
    let (cols, rows) = rows(r);
    out += "\n| ";
    out += &cols.join(" | ");
    out += " |\n|";
    out += &"---|".repeat(cols.len());
    out += "\n";
    for row in rows {
        out += "| ";
        out += &row.join(" | ");
        out += " |\n";
    }
    out += "\nTimes are medians ± the 95% interval of the mean over repetitions. S-MBU counts the weights of \
the experts the router really activated plus the KV cache read and written, over the pass time, \
against the measured copy/triad bandwidth (meas.) or the hardware table's figure (spec); \
`docs/metrics.md` defines every figure. Experts/layer is the mean number of distinct experts \
per MoE layer per decode pass, beside what uniform routing would activate. `summary.csv` and \
`summary.json` hold every figure; `records.jsonl` every pass; `routing/` every token's experts.\n";
    if let Some(c) = &r.cost {
        out += "\n";
        out += &super::cost::cost_markdown(c);
    }
    out
}

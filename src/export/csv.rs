//! `summary.csv`: one row per point, medians (and spread) in SI units (seconds, tokens per
//! second, fractions); empty cells where a figure does not exist (no decode pass, no spec peak).

use crate::accounting::stats::Summary;
use crate::bench::summary::{PhaseSummary, PointSummary};
use crate::bench::BenchReport;

fn cell(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| format!("{x}"))
}

fn med(s: &Option<Summary>) -> String {
    cell(s.map(|s| s.median))
}

/// The column names.
pub fn header() -> Vec<String> {
    let mut h: Vec<String> = [
        "batch",
        "prompt_len",
        "gen_len",
        "repetitions",
        "ttft_s_median",
        "ttft_s_std",
        "ttft_s_ci95",
        "tpot_s_median",
        "tpot_s_std",
        "tpot_s_ci95",
        "itl_s_p50",
        "itl_s_p90",
        "itl_s_p99",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in ["prefill", "decode"] {
        for f in [
            "tokens_per_s_median",
            "tokens_per_s_ci95",
            "s_mbu_spec",
            "s_mfu_spec",
            "mbu_spec",
            "mfu_spec",
            "s_mbu_measured",
            "s_mfu_measured",
            "mbu_measured",
            "mfu_measured",
            "activated_experts",
            "uniform_experts",
            "share_attention",
            "share_router",
            "share_experts",
            "share_shared",
            "share_rest",
            "probe_overhead",
        ] {
            h.push(format!("{p}_{f}"));
        }
    }
    h
}

fn phase_cells(p: &PhaseSummary) -> Vec<String> {
    let u = &p.utilisation;
    let sh = p.time_share.as_ref();
    vec![
        med(&p.tokens_per_s),
        cell(p.tokens_per_s.map(|s| s.ci95)),
        med(&u.spec_s_mbu),
        med(&u.spec_s_mfu),
        med(&u.spec_mbu),
        med(&u.spec_mfu),
        med(&u.measured_s_mbu),
        med(&u.measured_s_mfu),
        med(&u.measured_mbu),
        med(&u.measured_mfu),
        cell(p.mean_activated_experts),
        cell(p.uniform_expected_experts),
        cell(sh.map(|s| s.attention)),
        cell(sh.map(|s| s.router)),
        cell(sh.map(|s| s.experts)),
        cell(sh.map(|s| s.shared)),
        cell(sh.map(|s| s.rest)),
        cell(p.probe_overhead),
    ]
}

/// One point's cells, in [`header`] order.
pub fn row(p: &PointSummary) -> Vec<String> {
    let s = |x: &Option<Summary>, f: fn(&Summary) -> f64| cell(x.as_ref().map(f));
    let mut r = vec![
        p.point.batch.to_string(),
        p.point.prompt_len.to_string(),
        p.gen_len.to_string(),
        p.repetitions.to_string(),
        s(&p.ttft_s, |s| s.median),
        s(&p.ttft_s, |s| s.std),
        s(&p.ttft_s, |s| s.ci95),
        s(&p.tpot_s, |s| s.median),
        s(&p.tpot_s, |s| s.std),
        s(&p.tpot_s, |s| s.ci95),
        cell(p.itl_s.map(|v| v[0])),
        cell(p.itl_s.map(|v| v[1])),
        cell(p.itl_s.map(|v| v[2])),
    ];
    r.extend(phase_cells(&p.prefill));
    r.extend(phase_cells(&p.decode));
    r
}

/// The CSV text.
pub fn summary_csv(report: &BenchReport) -> String {
    let mut out = header().join(",");
    out.push('\n');
    for p in &report.points {
        out.push_str(&row(p).join(","));
        out.push('\n');
    }
    out
}

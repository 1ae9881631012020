//! The report's SVG figures: decode and prefill throughput against batch size, TPOT and TTFT
//! against batch size, decode S-MBU
//! against batch size, activated experts per MoE layer against batch size beside the uniform
//! curve, and the per-layer decode time breakdown of the largest batch.

use super::svg::{line_chart, stacked_bars, Series};
use crate::bench::summary::{PhaseSummary, PointSummary};
use crate::bench::BenchReport;
use std::collections::BTreeMap;

/// Points grouped by prompt length, each group sorted by batch.
fn by_prompt(r: &BenchReport) -> BTreeMap<usize, Vec<&PointSummary>> {
    let mut m: BTreeMap<usize, Vec<&PointSummary>> = BTreeMap::new();
    for p in &r.points {
        m.entry(p.point.prompt_len).or_default().push(p);
    }
    for v in m.values_mut() {
        v.sort_by_key(|p| p.point.batch);
    }
    m
}

fn series(
    r: &BenchReport,
    f: impl Fn(&PointSummary) -> Option<f64>,
    suffix: &str,
    dashed: bool,
) -> Vec<Series> {
    by_prompt(r)
        .into_iter()
        .map(|(len, pts)| Series {
            name: format!("prompt {len}{suffix}"),
            points: pts
                .iter()
                .filter_map(|p| f(p).map(|y| (p.point.batch as f64, y)))
                .collect(),
            dashed,
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

/// `(file name, SVG)` of every figure.
pub fn plots(r: &BenchReport) -> Vec<(&'static str, String)> {
    let name = &r.settings.model_name;
    let tps = |ph: fn(&PointSummary) -> &PhaseSummary| {
        move |p: &PointSummary| ph(p).tokens_per_s.map(|s| s.median)
    };
    let mut out = vec![
        (
            "throughput.svg",
            line_chart(
                &format!("Decode throughput\n{name}"),
                "batch size",
                "generated tokens/s",
                &series(r, tps(|p| &p.decode), "", false),
                true,
            ),
        ),
        (
            "prefill_throughput.svg",
            line_chart(
                &format!("Prefill throughput\n{name}"),
                "batch size",
                "prompt tokens/s",
                &series(r, tps(|p| &p.prefill), "", false),
                true,
            ),
        ),
    ];
    let mut latency = series(r, |p| p.tpot_s.map(|s| s.median * 1e3), ", TPOT", false);
    latency.extend(series(
        r,
        |p| p.ttft_s.map(|s| s.median * 1e3),
        ", TTFT",
        true,
    ));
    out.push((
        "latency.svg",
        line_chart(
            &format!("Latency\n{name}"),
            "batch size",
            "ms (solid: TPOT, dashed: TTFT)",
            &latency,
            true,
        ),
    ));
    let mut mbu = series(
        r,
        |p| {
            p.decode
                .utilisation
                .measured_s_mbu
                .map(|s| s.median * 100.0)
        },
        "",
        false,
    );
    mbu.extend(series(
        r,
        |p| p.decode.utilisation.spec_s_mbu.map(|s| s.median * 100.0),
        ", spec",
        true,
    ));
    out.push((
        "s_mbu.svg",
        line_chart(
            &format!("Decode S-MBU\n{name}"),
            "batch size",
            "% of measured bandwidth (dashed: spec)",
            &mbu,
            true,
        ),
    ));
    // activated experts: the shortest prompt length's points
    let groups = by_prompt(r);
    let mut ex = Vec::new();
    if let Some((len, pts)) = groups.iter().next() {
        let per = |f: &dyn Fn(&PhaseSummary) -> Option<f64>| -> Vec<(f64, f64)> {
            pts.iter()
                .filter_map(|p| f(&p.decode).map(|y| (p.point.batch as f64, y)))
                .collect()
        };
        let lo = |d: &PhaseSummary| d.experts.iter().map(|e| e.mean).reduce(f64::min);
        let hi = |d: &PhaseSummary| d.experts.iter().map(|e| e.mean).reduce(f64::max);
        ex = vec![
            Series {
                name: "mean over layers".into(),
                points: per(&|d| d.mean_activated_experts),
                dashed: false,
            },
            Series {
                name: "least-spread layer".into(),
                points: per(&lo),
                dashed: false,
            },
            Series {
                name: "most-spread layer".into(),
                points: per(&hi),
                dashed: false,
            },
            Series {
                name: "uniform routing".into(),
                points: per(&|d| d.uniform_expected_experts),
                dashed: true,
            },
        ];
        ex.retain(|s| !s.points.is_empty());
        out.push((
            "experts.svg",
            line_chart(
                &format!("Distinct experts per MoE layer per decode pass\n{name}, prompt {len}"),
                "batch size",
                "activated experts",
                &ex,
                true,
            ),
        ));
    }
    if ex.is_empty() {
        out.retain(|(n, _)| *n != "experts.svg");
    }
    // time breakdown of the largest batch (shortest prompt among equals)
    if let Some(p) = r
        .points
        .iter()
        .filter(|p| !p.decode.layer_times.is_empty())
        .max_by_key(|p| (p.point.batch, std::cmp::Reverse(p.point.prompt_len)))
    {
        let lt = &p.decode.layer_times;
        let cats: Vec<String> = lt.iter().map(|l| l.layer.to_string()).collect();
        let col = |f: fn(&crate::records::LayerTiming) -> f64| -> Vec<f64> {
            lt.iter().map(|l| f(l) * 1e3).collect()
        };
        out.push((
            "breakdown.svg",
            stacked_bars(
                &format!(
                    "Decode time per layer\n{name}, batch {} prompt {}",
                    p.point.batch, p.point.prompt_len
                ),
                "layer",
                "ms per decode pass",
                &cats,
                &[
                    ("attention", col(|l| l.attention_s)),
                    ("router", col(|l| l.router_s)),
                    ("routed experts", col(|l| l.experts_s)),
                    ("shared experts", col(|l| l.shared_s)),
                    ("norms, residuals", col(|l| l.other_s)),
                ],
            ),
        ));
    }
    out
}

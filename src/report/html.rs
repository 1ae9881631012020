//! The CAP report: one self-contained HTML page (inline CSS and SVG; no script, font or image
//! from anywhere else, so it reads offline and prints) of one or more bench and eval runs: their
//! settings and hosts, sweep tables, plots, routing heatmaps, accuracy per task, cost per point,
//! offloading results saved in the run folder, and a CAP radar placing the runs' models together.
//!
//! The radar's axes, per model (runs grouped by model name): Cost = the lowest decode $/Mtoken
//! of its bench points, Performance = the highest decode tokens/s, Accuracy = the mean over its
//! eval tasks of each task's first metric. Cost and Performance are normalised against the best
//! model on the axis (performance: value / best; cost: best / value), so 1 at the rim is the best
//! of the models shown, not an absolute scale; Accuracy is plotted as the fraction it is. A model
//! without a figure on an axis sits at the centre.

use super::run::RunView;
use crate::accounting::money::CostReport;
use crate::export::markdown::rows;
use crate::export::offload::routing_plots;
use crate::export::plots::plots;
use crate::export::svg::{esc, radar};
use crate::offload::analytics::{analyse, PhaseFilter};
use crate::offload::layout_of;
use crate::offload::trace::Trace;
use std::collections::BTreeMap;
use std::path::Path;

const STYLE: &str = "body{font-family:sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.figs{display:flex;flex-wrap:wrap;gap:.8em}\
figure{margin:0;break-inside:avoid}.wide{overflow-x:auto}.note{color:#555;font-size:.85em}\
@media print{body{max-width:none}h2{break-after:avoid}}";

fn table(head: &[String], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<div class=\"wide\"><table><tr>");
    for h in head {
        s += &format!("<th>{}</th>", esc(h));
    }
    s += "</tr>\n";
    for r in rows {
        s += "<tr>";
        for c in r {
            s += &format!("<td>{}</td>", esc(c));
        }
        s += "</tr>\n";
    }
    s + "</table></div>\n"
}

fn figure(id: &str, svg: &str) -> String {
    // The SVG's own XML namespace attribute is an identifier, not a request.
    format!("<figure class=\"plot\" id=\"{}\">{svg}</figure>\n", esc(id))
}

/// The CAP axes of one model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CapPoint {
    /// Lowest decode $/Mtoken.
    pub cost: Option<f64>,
    /// Highest decode tokens/s.
    pub performance: Option<f64>,
    /// Mean accuracy over tasks.
    pub accuracy: Option<f64>,
}

fn fold(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(pick(x, y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Per model, its CAP figures from the runs (and their costs, in the same order).
pub fn cap_points(runs: &[RunView], costs: &[Option<CostReport>]) -> BTreeMap<String, CapPoint> {
    let mut out: BTreeMap<String, CapPoint> = BTreeMap::new();
    for (r, c) in runs.iter().zip(costs) {
        let e = out.entry(r.model_name().to_string()).or_default();
        if let Some(b) = r.bench() {
            let perf = b
                .points
                .iter()
                .filter_map(|p| p.decode.tokens_per_s.map(|s| s.median))
                .fold(None, |a, v| fold(a, Some(v), f64::max));
            e.performance = fold(e.performance, perf, f64::max);
        }
        if let Some(ev) = r.eval() {
            let accs: Vec<f64> = ev
                .tasks
                .iter()
                .filter_map(|t| t.metrics.values().next().map(|a| a.value))
                .collect();
            if !accs.is_empty() {
                let mean = accs.iter().sum::<f64>() / accs.len() as f64;
                e.accuracy = fold(e.accuracy, Some(mean), f64::max);
            }
        }
        if let (Some(c), Some(_)) = (c, r.bench()) {
            let cost = c
                .points
                .iter()
                .filter_map(|p| p.decode.map(|d| d.usd_per_mtoken))
                .fold(None, |a, v| fold(a, Some(v), f64::min));
            e.cost = fold(e.cost, cost, f64::min);
        }
    }
    out
}

/// The radar's values: cost and performance against the best model on the axis, accuracy as it
/// is (already a fraction).
pub fn normalise(points: &BTreeMap<String, CapPoint>) -> Vec<(String, Vec<Option<f64>>)> {
    let best = |f: fn(&CapPoint) -> Option<f64>, pick: fn(f64, f64) -> f64| {
        points
            .values()
            .filter_map(f)
            .fold(None, |a, v| fold(a, Some(v), pick))
    };
    let bc = best(|p| p.cost, f64::min);
    let bp = best(|p| p.performance, f64::max);
    points
        .iter()
        .map(|(m, p)| {
            let ratio = |v: Option<f64>, b: Option<f64>, lower: bool| match (v, b) {
                (Some(v), Some(b)) if v > 0.0 && b > 0.0 => Some(if lower { b / v } else { v / b }),
                (Some(_), Some(_)) => Some(0.0),
                _ => None,
            };
            (
                m.clone(),
                vec![
                    ratio(p.cost, bc, true),
                    ratio(p.performance, bp, false),
                    p.accuracy.map(|a| a.clamp(0.0, 1.0)),
                ],
            )
        })
        .collect()
}

fn cost_section(c: &CostReport) -> String {
    let d = &c.deployment;
    let s = format!(
        "<p>Deployment <b>{}</b> ({}): capex ${:.4}/h, energy ${:.4}/h, cost ${:.4}/h{}; {} years at utilisation {}, PUE {}, ${}/kWh.</p>\n",
        esc(&d.name),
        esc(&d.origin),
        c.capex_per_hour,
        c.energy_per_hour,
        c.cost_per_hour,
        if c.cloud { " (cloud prices)" } else { "" },
        d.amortisation_years,
        d.utilisation,
        d.pue,
        d.usd_per_kwh
    );
    let head: Vec<String> = [
        "point",
        "prefill tok/s",
        "prefill $/Mtok",
        "prefill J/tok",
        "decode tok/s",
        "decode $/Mtok",
        "decode J/tok",
        "energy",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let f = |x: Option<f64>, d: usize| x.map_or("-".to_string(), |v| format!("{v:.d$}"));
    let rows: Vec<Vec<String>> = c
        .points
        .iter()
        .map(|p| {
            vec![
                p.point.clone(),
                f(p.prefill.map(|x| x.tokens_per_s), 1),
                f(p.prefill.map(|x| x.usd_per_mtoken), 4),
                f(p.prefill.map(|x| x.j_per_token), 3),
                f(p.decode.map(|x| x.tokens_per_s), 1),
                f(p.decode.map(|x| x.usd_per_mtoken), 4),
                f(p.decode.map(|x| x.j_per_token), 3),
                p.energy.label().to_string(),
            ]
        })
        .collect();
    s + &table(&head, &rows)
}

/// Offloading results saved under the run folder (`moecap offload simulate --out RUN/NAME`):
/// every sub-folder with a `results.csv`, as a table with its plots.
fn offload_sections(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut subs: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    subs.sort();
    for sub in subs.into_iter().filter(|p| p.join("results.csv").is_file()) {
        let Ok(csv) = std::fs::read_to_string(sub.join("results.csv")) else {
            continue;
        };
        let mut lines = csv.lines();
        let head: Vec<String> = lines
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::to_string)
            .collect();
        let rows: Vec<Vec<String>> = lines
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect();
        let mut s = table(&head, &rows);
        s += "<div class=\"figs\">";
        for f in ["hit_rate.svg", "tpot.svg"] {
            if let Ok(svg) = std::fs::read_to_string(sub.join(f)) {
                if svg.trim_start().starts_with("<svg") {
                    s += &figure(&format!("offload-{f}"), &svg);
                }
            }
        }
        s += "</div>";
        let name = sub
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, s));
    }
    out
}

/// The page. `costs[i]` prices `runs[i]` (a deployment given on the command line, else the
/// run's own cost section).
pub fn cap_report(runs: &[RunView], costs: &[Option<CostReport>]) -> String {
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>moecap CAP report</title><style>{STYLE}</style></head><body>\n<h1>moecap CAP report</h1>\n<p class=\"note\">moecap {}; {} run(s). Cost, Accuracy and Performance of the runs below; every figure is defined in docs/metrics.md and docs/COST.md.</p>\n",
        env!("CARGO_PKG_VERSION"),
        runs.len()
    );
    let caps = cap_points(runs, costs);
    let series = normalise(&caps);
    h += "<h2 id=\"cap\">CAP radar</h2>\n";
    h += &figure(
        "radar",
        &radar(
            "Cost and Performance (1 = best shown), Accuracy",
            &["Cost", "Performance", "Accuracy"],
            &series,
        ),
    );
    let capr: Vec<Vec<String>> = caps
        .iter()
        .map(|(m, p)| {
            let f = |x: Option<f64>, d: usize| x.map_or("n/a".to_string(), |v| format!("{v:.d$}"));
            vec![
                m.clone(),
                f(p.cost, 4),
                f(p.performance, 1),
                f(p.accuracy, 4),
            ]
        })
        .collect();
    h += &table(
        &[
            "model".into(),
            "best decode $/Mtoken".into(),
            "best decode tok/s".into(),
            "mean accuracy".into(),
        ],
        &capr,
    );
    h += "<p class=\"note\">Cost: the lowest decode $/Mtoken over a model's bench points; Performance: the highest decode tokens/s; Accuracy: the mean over its eval tasks of each task's first metric. Cost and Performance are divided by the best model shown (cost: best / value), so their rim is the best of these runs, not an absolute scale; Accuracy is plotted as the fraction it is (the rim is 100 %).</p>\n";
    for (i, (r, c)) in runs.iter().zip(costs).enumerate() {
        h += &format!(
            "<h2 id=\"run{i}\">{} — {}</h2>\n",
            esc(&r.label()),
            esc(r.model_name())
        );
        if let Some(b) = r.bench() {
            let s = &b.settings;
            h += &format!(
                "<p>bench: {} on {} ({}), {} generated tokens, {} warm-up + {} timed repetitions, prompts {}; host {} ({} logical CPUs){}.</p>\n",
                esc(&s.model),
                esc(&s.device),
                esc(&s.dtype),
                s.gen_len,
                s.warmup,
                s.repetitions,
                esc(&s.prompts),
                esc(b.host.cpu_model.as_deref().unwrap_or("unknown CPU")),
                b.host.logical_cpus,
                b.gpu.as_ref().map_or(String::new(), |g| format!(", GPU {}", esc(&g.name)))
            );
            let (cols, rs) = rows(b);
            h += "<h3>Sweep</h3>\n";
            h += &table(&cols.iter().map(|c| c.to_string()).collect::<Vec<_>>(), &rs);
            h += "<div class=\"figs\">";
            for (name, svg) in plots(b) {
                h += &figure(&format!("run{i}-{name}"), &svg);
            }
            h += "</div>\n";
            if let Ok(trace) = Trace::read(&r.dir) {
                if let Ok((layout, top_k, from_model)) = layout_of(&trace, None) {
                    let an = analyse(&trace, &layout, &top_k, PhaseFilter::All, from_model);
                    if let Some(&layer) = layout.layers.first() {
                        h += "<h3>Routing</h3>\n<div class=\"figs\">";
                        for (name, svg) in routing_plots(&an, layer) {
                            h += &figure(&format!("run{i}-{name}"), &svg);
                        }
                        h += "</div>\n";
                    }
                }
            }
        }
        if let Some(e) = r.eval() {
            h += &format!(
                "<p>eval: {} on {} ({}), data {}{}, batch {}.</p>\n<h3>Accuracy</h3>\n",
                esc(&e.model),
                esc(&e.device),
                esc(&e.dtype),
                esc(&e.data),
                if e.sample_data {
                    " (the committed sample, not the full sets)"
                } else {
                    ""
                },
                e.batch
            );
            let rs: Vec<Vec<String>> = e
                .tasks
                .iter()
                .flat_map(|t| {
                    t.metrics.iter().map(move |(m, a)| {
                        vec![
                            t.task.clone(),
                            t.shots.to_string(),
                            m.clone(),
                            format!("{:.4}", a.value),
                            format!("{:.4}", a.stderr),
                            a.n.to_string(),
                        ]
                    })
                })
                .collect();
            h += &table(
                &["task", "shots", "metric", "value", "stderr", "items"].map(String::from),
                &rs,
            );
        }
        if let Some(c) = c {
            h += "<h3>Cost</h3>\n";
            h += &cost_section(c);
        }
        for (name, s) in offload_sections(&r.dir) {
            h += &format!("<h3>Offloading ({})</h3>\n{s}", esc(&name));
        }
    }
    h += "</body></html>\n";
    h
}

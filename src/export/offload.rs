//! The reports of expert offloading: routing analytics (`routing.md`, `routing.csv`,
//! `routing.json`, `load.svg`, `coactivation.svg`) and policy simulations (`results.md`,
//! `results.csv`, `results.json`, `hit_rate.svg`, `tpot.svg`).

use super::svg::{heatmap, line_chart, Series};
use super::table::{si, Table};
use crate::accounting::offload::{PhaseResult, SimulateReport};
use crate::error::{Error, Result};
use crate::files::write_json;
use crate::offload::analytics::{Analytics, REUSE_BUCKETS, WINDOWS};
use crate::offload::timing::MissHandler;
use std::collections::BTreeMap;
use std::path::Path;

fn f(x: f64, d: usize) -> String {
    format!("{x:.d$}")
}

fn opt_ms(x: Option<f64>) -> String {
    x.map_or("-".into(), |s| format!("{:.3}", s * 1e3))
}

/// The analytics as markdown tables.
pub fn routing_markdown(a: &Analytics) -> String {
    let mut md = format!(
        "# Routing analytics\n\nTrace: {} ({} passes, phase {}; expert counts {}).\n\n",
        a.trace,
        a.passes,
        serde_json::to_string(&a.phase)
            .unwrap_or_default()
            .trim_matches('"'),
        if a.experts_from_model {
            "from the model"
        } else {
            "inferred: the largest id seen, plus one"
        }
    );
    md += "## Load per MoE layer\n\n```\n";
    let mut t = Table::new(&[
        "layer",
        "experts",
        "assignments",
        "cv",
        "max/mean",
        "gini",
        "dead",
        "90% in",
        "entropy",
        "distinct/pass",
        "uniform",
    ]);
    for l in &a.layers {
        t.row(vec![
            l.layer.to_string(),
            l.experts.to_string(),
            l.assignments.to_string(),
            f(l.cv, 3),
            f(l.max_over_mean, 2),
            f(l.gini, 3),
            l.dead.to_string(),
            l.experts_for_90pct.to_string(),
            f(l.entropy, 3),
            f(l.distinct_per_pass, 2),
            f(l.uniform_per_pass, 2),
        ]);
    }
    md += &t.render();
    md += "```\n\n## Distinct experts per pass by pass size\n\n```\n";
    let mut t = Table::new(&["phase", "tokens", "passes", "distinct/layer", "uniform"]);
    for d in &a.distinct {
        t.row(vec![
            d.phase.name().to_string(),
            d.tokens.to_string(),
            d.passes.to_string(),
            f(d.distinct, 2),
            f(d.uniform, 2),
        ]);
    }
    md += &t.render();
    md += "```\n\n## Co-activation: pairs with the highest lift over a marginal-preserving shuffle\n\n```\n";
    let mut t = Table::new(&["layer", "pair", "observed", "expected", "lift"]);
    for c in &a.coactivation {
        for p in c.top.iter().take(3) {
            t.row(vec![
                c.layer.to_string(),
                format!("{}+{}", p.a, p.b),
                p.observed.to_string(),
                f(p.expected, 1),
                f(p.lift, 2),
            ]);
        }
    }
    md += &t.render();
    md += "```\n\n## Inter-layer predictability (fit on the first half of the passes, scored on the second)\n\n```\n";
    let mut t = Table::new(&["from", "to", "tokens", "hit rate", "baseline"]);
    for p in &a.predictability {
        t.row(vec![
            p.from.to_string(),
            p.to.to_string(),
            p.tokens.to_string(),
            f(p.hit_rate, 3),
            f(p.baseline, 3),
        ]);
    }
    md += &t.render();
    md += "```\n\n## Temporal locality over decode steps\n\n```\n";
    let mut head = vec!["layer".to_string()];
    head.extend(REUSE_BUCKETS.iter().map(|b| format!("d {b}")));
    head.extend(WINDOWS.iter().map(|w| format!("ws {w}")));
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut t = Table::new(&head);
    for l in &a.locality {
        let mut row = vec![l.layer.to_string()];
        row.extend(l.reuse.iter().map(u64::to_string));
        row.extend(
            l.working_set
                .iter()
                .map(|w| w.map_or("-".into(), |x| f(x, 2))),
        );
        t.row(row);
    }
    md += &t.render();
    md += "```\n\n`d B`: accesses at LRU stack distance B (distinct other experts since the same expert's last access); `ws W`: mean distinct experts within W decode steps.\n";
    md
}

/// One row per MoE layer.
pub fn routing_csv(a: &Analytics) -> String {
    let mut out = String::from("layer,experts,assignments,cv,max_over_mean,gini,dead,experts_for_90pct,entropy,distinct_per_pass,uniform_per_pass\n");
    for l in &a.layers {
        out += &format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            l.layer,
            l.experts,
            l.assignments,
            l.cv,
            l.max_over_mean,
            l.gini,
            l.dead,
            l.experts_for_90pct,
            l.entropy,
            l.distinct_per_pass,
            l.uniform_per_pass
        );
    }
    out
}

/// The heatmaps: every layer's load over the ideal, and `layer`'s co-activation lift.
pub fn routing_plots(a: &Analytics, layer: usize) -> Vec<(&'static str, String)> {
    let rows: Vec<String> = a
        .layers
        .iter()
        .map(|l| format!("layer {}", l.layer))
        .collect();
    let load: Vec<Vec<f64>> = a.layers.iter().map(|l| l.load_over_ideal.clone()).collect();
    let mut out = vec![(
        "load.svg",
        heatmap(
            "Expert load over the ideal (1 = even)\nper MoE layer",
            "expert",
            "MoE layer",
            &rows,
            &load,
            None,
        ),
    )];
    if let Some(c) = a.coactivation.iter().find(|c| c.layer == layer) {
        let rows: Vec<String> = (0..c.lift.len()).map(|e| e.to_string()).collect();
        out.push((
            "coactivation.svg",
            heatmap(
                &format!("Co-activation lift over a shuffle\nlayer {layer}"),
                "expert",
                "expert",
                &rows,
                &c.lift,
                None,
            ),
        ));
    }
    out
}

fn put(dir: &Path, name: &str, text: &str) -> Result<()> {
    let p = dir.join(name);
    crate::files::write_atomic(&p, text.as_bytes())
}

/// Writes the analytics reports into `dir`; `layer` is the co-activation heatmap's.
pub fn write_routing_reports(dir: &Path, a: &Analytics, layer: usize) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_json(&dir.join("routing.json"), a)?;
    put(dir, "routing.md", &routing_markdown(a))?;
    put(dir, "routing.csv", &routing_csv(a))?;
    for (name, svg) in routing_plots(a, layer) {
        put(dir, name, &svg)?;
    }
    Ok(())
}

/// The simulation as a markdown table: one row per policy and capacity.
pub fn simulate_markdown(r: &SimulateReport) -> String {
    let mut md = format!(
        "# Expert offloading: {}\n\nTrace {} ({} replays, {} passes), scope {}, misses: {}. \
         Expert {}B, everything else {}B.",
        r.model,
        r.trace,
        r.replays,
        r.passes,
        r.scope,
        match r.time_model.handler {
            MissHandler::Fetch => "fetched".to_string(),
            MissHandler::Cpu => "computed on the host".to_string(),
            MissHandler::Lowbit { bytes_per_param } =>
                format!("fetched as a {}-bit copy", bytes_per_param * 8.0),
        },
        si(r.expert_bytes),
        si(r.non_expert_bytes),
    );
    match (&r.device_time, r.resident.tpot_s) {
        (Some(d), Some(tpot)) if r.time_model.timed() => {
            md += &format!(
                " Times: {d} pass times plus the stalls of the time model; all-resident TTFT {} ms, TPOT {} ms.",
                opt_ms(r.resident.ttft_s),
                f(tpot * 1e3, 3)
            );
        }
        _ => md += " No times: the trace has no pass times or no host link is known.",
    }
    md += "\n\n```\n";
    let mut t = Table::new(&[
        "policy",
        "capacity",
        "memory",
        "hit rate",
        "token hit",
        "misses",
        "streamed",
        "prefetch hits",
        "h2d",
        "TTFT ms",
        "TPOT ms",
    ])
    .left(1);
    for x in &r.results {
        t.row(vec![
            x.policy.clone(),
            x.capacity.to_string(),
            x.device_memory_bytes
                .map_or("-".into(), |m| format!("{}B", si(m))),
            f(x.all.hit_rate, 4),
            f(x.all.token_hit_rate, 4),
            x.all.counts.misses.to_string(),
            x.all.counts.streamed.to_string(),
            x.all.counts.prefetch_hits.to_string(),
            format!("{}B", si(x.all.h2d_bytes)),
            opt_ms(x.prefill.ttft_s),
            opt_ms(x.decode.tpot_s),
        ]);
    }
    md += &t.render();
    md += "```\n";
    md
}

fn phase_cells(p: &PhaseResult) -> String {
    let c = &p.counts;
    format!(
        "{},{},{},{},{},{},{},{},{},{},{}",
        c.accesses,
        c.hits,
        c.misses,
        c.streamed,
        c.prefetch_hits,
        c.prefetches,
        c.wasted_prefetches,
        p.hit_rate,
        p.token_hit_rate,
        p.h2d_bytes,
        p.time_s.map_or(String::new(), |t| t.to_string())
    )
}

/// One row per policy and capacity, prefill and decode columns side by side.
pub fn simulate_csv(r: &SimulateReport) -> String {
    let cols = "accesses,hits,misses,streamed,prefetch_hits,prefetches,wasted_prefetches,hit_rate,token_hit_rate,h2d_bytes,time_s";
    let pre: Vec<String> = cols.split(',').map(|c| format!("prefill_{c}")).collect();
    let dec: Vec<String> = cols.split(',').map(|c| format!("decode_{c}")).collect();
    let mut out = format!(
        "policy,capacity,device_memory_bytes,ttft_s,tpot_s,{},{}\n",
        pre.join(","),
        dec.join(",")
    );
    for x in &r.results {
        out += &format!(
            "{},{},{},{},{},{},{}\n",
            x.policy,
            x.capacity,
            x.device_memory_bytes
                .map_or(String::new(), |m| m.to_string()),
            x.prefill.ttft_s.map_or(String::new(), |t| t.to_string()),
            x.decode.tpot_s.map_or(String::new(), |t| t.to_string()),
            phase_cells(&x.prefill),
            phase_cells(&x.decode)
        );
    }
    out
}

/// Hit rate against capacity per policy (Belady first), and predicted TPOT against device
/// memory per policy beside the all-resident TPOT.
pub fn simulate_plots(r: &SimulateReport) -> Vec<(&'static str, String)> {
    let mut by: BTreeMap<(bool, String), Vec<&crate::accounting::offload::PolicyResult>> =
        BTreeMap::new();
    for x in &r.results {
        by.entry((x.policy != "belady", x.policy.clone()))
            .or_default()
            .push(x);
    }
    let hit: Vec<Series> = by
        .iter()
        .map(|((_, name), xs)| Series {
            name: name.clone(),
            points: xs
                .iter()
                .filter(|x| x.capacity > 0)
                .map(|x| (x.capacity as f64, x.all.hit_rate))
                .collect(),
            dashed: name == "belady",
        })
        .collect();
    let mut tpot: Vec<Series> = by
        .iter()
        .map(|((_, name), xs)| Series {
            name: name.clone(),
            points: xs
                .iter()
                .filter_map(|x| Some((x.device_memory_bytes? / 1e9, x.decode.tpot_s? * 1e3)))
                .collect(),
            dashed: name == "belady",
        })
        .collect();
    if let (Some(t), Some(lo), Some(hi)) = (
        r.resident.tpot_s,
        r.results
            .iter()
            .filter_map(|x| x.device_memory_bytes)
            .reduce(f64::min),
        r.resident.device_memory_bytes,
    ) {
        tpot.push(Series {
            name: "all resident".into(),
            points: vec![(lo / 1e9, t * 1e3), (hi / 1e9, t * 1e3)],
            dashed: true,
        });
    }
    vec![
        (
            "hit_rate.svg",
            line_chart(
                &format!("Hit rate against capacity ({} scope)\n{}", r.scope, r.model),
                "experts per pool (capacity)",
                "hit rate",
                &hit,
                true,
            ),
        ),
        (
            "tpot.svg",
            line_chart(
                &format!("Predicted TPOT against device memory\n{}", r.model),
                "device memory, GB",
                "TPOT, ms",
                &tpot,
                false,
            ),
        ),
    ]
}

/// Writes the simulation reports into `dir`.
pub fn write_simulate_reports(dir: &Path, r: &SimulateReport) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_json(&dir.join("results.json"), r)?;
    put(dir, "results.md", &simulate_markdown(r))?;
    put(dir, "results.csv", &simulate_csv(r))?;
    for (name, svg) in simulate_plots(r) {
        put(dir, name, &svg)?;
    }
    Ok(())
}

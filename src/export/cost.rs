//! The cost section of a report as markdown: the deployment's parts and rates, then per point the
//! $/Mtoken and J/token of prefill and decode (and the published formula's figures when asked).

use crate::accounting::money::{CostFormula, CostReport, PhaseCost};

fn money(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

fn phase(c: &Option<PhaseCost>) -> [String; 3] {
    match c {
        Some(c) => [
            format!("{:.1}", c.tokens_per_s),
            money(c.usd_per_mtoken),
            format!("{:.3}", c.j_per_token),
        ],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

/// The markdown of a cost report.
pub fn cost_markdown(r: &CostReport) -> String {
    let d = &r.deployment;
    let mut md = format!("## Cost on {}\n\n", d.name);
    md += &format!("- deployment: {}\n", d.origin);
    md += &format!(
        "- {} years at utilisation {}, PUE {}, ${}/kWh: capex ${}/h, energy ${}/h (TDP), cost ${}/h{}\n",
        d.amortisation_years,
        d.utilisation,
        d.pue,
        d.usd_per_kwh,
        money(r.capex_per_hour),
        money(r.energy_per_hour),
        money(r.cost_per_hour),
        if r.cloud { " (the parts' cloud prices)" } else { "" }
    );
    md += "\n| part | kind | count | price $ | power W | source |\n|---|---|---|---|---|---|\n";
    for p in &d.parts {
        md += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            p.name,
            p.kind.name(),
            p.count,
            p.price_usd,
            p.power_w,
            p.source
        );
    }
    let compat = r.formula == CostFormula::MoecapCompat;
    md += "\n| point | prefill tok/s | prefill $/Mtok | prefill J/tok | decode tok/s | decode $/Mtok | decode J/tok | power W | energy |";
    if compat {
        md += " compat capital $ | compat energy $ | compat cost $ |";
    }
    md += "\n|";
    md += &"---|".repeat(if compat { 12 } else { 9 });
    md += "\n";
    for p in &r.points {
        let [pt, pu, pj] = phase(&p.prefill);
        let [dt, du, dj] = phase(&p.decode);
        md += &format!(
            "| {} | {pt} | {pu} | {pj} | {dt} | {du} | {dj} | {:.0} | {} |",
            p.point,
            p.power_w,
            p.energy.label()
        );
        if let Some(c) = &p.compat {
            md += &format!(
                " {} | {} | {} |",
                money(c.capital_usd),
                money(c.energy_usd),
                money(c.cost_usd)
            );
        }
        md += "\n";
    }
    md += "\n$/Mtoken = cost per hour / (median tokens/s × 3600) × 10^6; J/token = IT power / \
median tokens/s (before PUE). Energy is the parts' TDP unless measured (RAPL, NVML) over the \
point's timed window. docs/COST.md defines every figure.\n";
    if compat {
        md += "The compat columns are the published MoE-CAP harness's cost over each point's run \
time: 1.25 × (GPU price × GPUs + 7,214) + 1.2 × energy, a purchase price rather than a running \
cost (docs/COST.md).\n";
    }
    md
}

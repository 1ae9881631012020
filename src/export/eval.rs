//! The reports of an evaluation: `summary.json` (the serialised [`EvalReport`]) and
//! `summary.md` (the table a person reads, also printed).

use super::table::Table;
use crate::error::Result;
use crate::eval::report::EvalReport;
use crate::files::write_json;
use std::path::Path;

/// The markdown summary: one row per task and metric, then the performance of the passes
/// against the measured ceilings.
pub fn eval_markdown(report: &EvalReport) -> String {
    let mut t = Table::new(&["task", "shots", "metric", "value", "stderr", "items"]).left(2);
    for s in &report.tasks {
        for (m, acc) in &s.metrics {
            t.row(vec![
                s.task.clone(),
                s.shots.to_string(),
                m.clone(),
                format!("{:.4}", acc.value),
                format!("{:.4}", acc.stderr),
                acc.n.to_string(),
            ]);
        }
    }
    let mut md = format!("# moecap eval: {}\n\n", report.model_name);
    if report.sample_data {
        md += "Data: a folder marked SAMPLE (item counts not checked), not the full sets.\n\n";
    }
    if let Some(s) = &report.subjects {
        md += &format!("MMLU subjects: {s} (--subjects), not all 57.\n\n");
    }
    md += "```\n";
    md += &t.render();
    md += "```\n";
    // the wall time of each task's scoring in this run
    let mut w = Table::new(&["task", "items", "seconds", "items/s"]);
    let mut timed = 0;
    for s in &report.tasks {
        if let Some(r) = s.items_per_s() {
            w.row(vec![
                s.task.clone(),
                s.items_timed.to_string(),
                format!("{:.1}", s.seconds),
                format!("{r:.2}"),
            ]);
            timed += 1;
        }
    }
    if timed > 0 {
        md += "\n```\n";
        md += &w.render();
        md += "```\n";
    }
    if let Some(p) = &report.performance {
        for (phase, m) in [
            ("prefill", &p.prefill_measured),
            ("decode", &p.decode_measured),
        ] {
            if let Some(m) = m {
                md += &format!(
                    "\n{phase}: {} passes, {:.1} tokens/s, mean pass {:.2} ms, S-MBU {:.1}% / S-MFU {:.2}% of the measured ceilings",
                    m.passes,
                    m.tokens_per_s,
                    m.mean_latency_s * 1e3,
                    m.s_mbu * 100.0,
                    m.s_mfu * 100.0
                );
            }
        }
        md += "\n";
    }
    if let Some(c) = &report.cost {
        md += "\n";
        md += &super::cost::cost_markdown(c);
    }
    md
}

/// Writes `summary.json` and `summary.md` into `dir`.
pub fn write_eval_reports(dir: &Path, report: &EvalReport) -> Result<()> {
    write_json(&dir.join("summary.json"), report)?;
    let p = dir.join("summary.md");
    crate::files::write_atomic(&p, eval_markdown(report).as_bytes())
}

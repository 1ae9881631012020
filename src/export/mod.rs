//! Reports, one exporter per format: of a bench run [`csv`] (one row per point), [`markdown`]
//! (the table a person reads, also printed), [`plots`] (SVG figures drawn by [`svg`]), the JSON
//! summary being the serialised [`BenchReport`] itself; of an evaluation [`eval`]; and the
//! plain-text tables of the command line ([`table`]).

pub mod cost;
pub mod csv;
pub mod eval;
pub mod markdown;
pub mod offload;
pub mod plots;
pub mod svg;
pub mod table;

use crate::bench::BenchReport;
use crate::error::Result;
use crate::files::write_json;
use std::path::Path;

/// Writes `summary.json`, `summary.csv`, `summary.md` and the SVG plots into `dir`.
pub fn write_reports(dir: &Path, report: &BenchReport) -> Result<()> {
    write_json(&dir.join("summary.json"), report)?;
    let put = |name: &str, text: String| {
        let p = dir.join(name);
        crate::files::write_atomic(&p, text.as_bytes())
    };
    put("summary.csv", csv::summary_csv(report))?;
    put("summary.md", markdown::summary_markdown(report))?;
    for (name, svg) in plots::plots(report) {
        put(name, svg)?;
    }
    Ok(())
}

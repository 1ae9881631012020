//! Several bench runs side by side: per point and metric (TTFT, TPOT, prefill and decode
//! tokens/s, decode S-MBU) each run's median, its difference from the first run (the baseline),
//! and whether the difference lies within the two runs' 95 % intervals of the mean (overlapping
//! intervals: within noise) or outside them (significant). Rendered as md, csv or json.

use super::run::RunView;
use crate::accounting::stats::Summary;
use crate::bench::summary::PointSummary;
use crate::error::{Error, Result};
use serde::Serialize;

/// Whether a larger value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Times.
    Lower,
    /// Throughputs, utilisation.
    Higher,
}

/// A difference's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The first run.
    Baseline,
    /// The 95 % intervals do not overlap and this run is better.
    Better,
    /// The 95 % intervals do not overlap and this run is worse.
    Worse,
    /// The 95 % intervals overlap.
    WithinNoise,
    /// Fewer than two repetitions on either side: no interval.
    Unknown,
}

impl Verdict {
    /// As printed.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Baseline => "baseline",
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::WithinNoise => "within noise",
            Verdict::Unknown => "n<2",
        }
    }
}

/// One run's figure at one point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The run's label.
    pub run: String,
    /// The summary (median, mean, 95 % half-width, n), when the run has the point.
    pub value: Option<Summary>,
    /// (this − baseline) / baseline, of the medians.
    pub relative_difference: Option<f64>,
    /// The verdict.
    pub verdict: Option<Verdict>,
}

/// One point × metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Point id (`b4-p256`).
    pub point: String,
    /// Metric name.
    pub metric: &'static str,
    /// Better direction.
    pub better: Better,
    /// Per run, in the order given.
    pub entries: Vec<Entry>,
}

/// The leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leaderboard {
    /// Run labels with their models and folders, baseline first.
    pub runs: Vec<(String, String, String)>,
    /// Rows, point by point.
    pub rows: Vec<Row>,
}

type Getter = fn(&PointSummary) -> Option<Summary>;

const METRICS: [(&str, Better, Getter); 5] = [
    ("ttft_s", Better::Lower, |p| p.ttft_s),
    ("tpot_s", Better::Lower, |p| p.tpot_s),
    ("prefill_tokens_per_s", Better::Higher, |p| {
        p.prefill.tokens_per_s
    }),
    ("decode_tokens_per_s", Better::Higher, |p| {
        p.decode.tokens_per_s
    }),
    ("decode_s_mbu_measured", Better::Higher, |p| {
        p.decode.utilisation.measured_s_mbu
    }),
];

/// The verdict of `x` against the baseline `b`.
pub fn verdict(b: &Summary, x: &Summary, better: Better) -> Verdict {
    if b.n < 2 || x.n < 2 {
        return Verdict::Unknown;
    }
    let (blo, bhi) = (b.mean - b.ci95, b.mean + b.ci95);
    let (xlo, xhi) = (x.mean - x.ci95, x.mean + x.ci95);
    if xlo <= bhi && blo <= xhi {
        return Verdict::WithinNoise;
    }
    let higher = x.mean > b.mean;
    match (better, higher) {
        (Better::Higher, true) | (Better::Lower, false) => Verdict::Better,
        _ => Verdict::Worse,
    }
}

/// Compares bench runs, the first being the baseline; points in the baseline's order, then
/// points only later runs have.
pub fn compare(runs: &[RunView]) -> Result<Leaderboard> {
    let mut benches = Vec::new();
    for r in runs {
        let b = r.bench().ok_or_else(|| {
            Error::Invalid(format!(
                "{}: an eval run; compare takes bench runs (the CAP report takes both)",
                r.dir.display()
            ))
        })?;
        benches.push((r.label(), b));
    }
    let mut labels: Vec<String> = Vec::new();
    for (l, _) in &benches {
        let mut label = l.clone();
        let mut i = 2;
        while labels.contains(&label) {
            label = format!("{l}#{i}");
            i += 1;
        }
        labels.push(label);
    }
    let mut points: Vec<String> = Vec::new();
    for (_, b) in &benches {
        for p in &b.points {
            if !points.contains(&p.point.id()) {
                points.push(p.point.id());
            }
        }
    }
    let mut rows = Vec::new();
    for id in &points {
        for (metric, better, get) in METRICS {
            let vals: Vec<Option<Summary>> = benches
                .iter()
                .map(|(_, b)| b.points.iter().find(|p| &p.point.id() == id).and_then(get))
                .collect();
            if vals.iter().all(Option::is_none) {
                continue;
            }
            let base = vals[0];
            let entries = vals
                .iter()
                .zip(&labels)
                .enumerate()
                .map(|(i, (v, label))| Entry {
                    run: label.clone(),
                    value: *v,
                    relative_difference: match (base, v) {
                        (Some(b), Some(x)) if i > 0 && b.median != 0.0 => {
                            Some((x.median - b.median) / b.median)
                        }
                        _ => None,
                    },
                    verdict: match (i, base, v) {
                        (0, _, Some(_)) => Some(Verdict::Baseline),
                        (_, Some(b), Some(x)) => Some(verdict(&b, x, better)),
                        _ => None,
                    },
                })
                .collect();
            rows.push(Row {
                point: id.clone(),
                metric,
                better,
                entries,
            });
        }
    }
    Ok(Leaderboard {
        runs: labels
            .into_iter()
            .zip(&benches)
            .zip(runs)
            .map(|((l, (_, b)), r)| {
                (
                    l,
                    b.settings.model_name.clone(),
                    r.dir.display().to_string(),
                )
            })
            .collect(),
        rows,
    })
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.5}")
    }
}

fn cell(e: &Entry) -> String {
    match (&e.value, e.verdict) {
        (None, _) => "-".into(),
        (Some(s), Some(Verdict::Baseline)) => format!("{} ± {}", fmt(s.median), fmt(s.ci95)),
        (Some(s), v) => format!(
            "{} ± {} ({:+.1}%, {})",
            fmt(s.median),
            fmt(s.ci95),
            e.relative_difference.unwrap_or(0.0) * 100.0,
            v.map_or("-", Verdict::label)
        ),
    }
}

/// The leaderboard as a markdown table.
pub fn compare_markdown(l: &Leaderboard) -> String {
    let mut md = String::from("# moecap compare\n\n");
    for (i, (label, model, dir)) in l.runs.iter().enumerate() {
        md += &format!(
            "- {}{label}: {model} ({dir})\n",
            if i == 0 { "baseline " } else { "" }
        );
    }
    md += "\n| point | metric | ";
    md += &l
        .runs
        .iter()
        .map(|r| r.0.as_str())
        .collect::<Vec<_>>()
        .join(" | ");
    md += " |\n|";
    md += &"---|".repeat(2 + l.runs.len());
    md += "\n";
    for r in &l.rows {
        md += &format!("| {} | {} |", r.point, r.metric);
        for e in &r.entries {
            md += &format!(" {} |", cell(e));
        }
        md += "\n";
    }
    md += "\nMedian ± the 95 % half-interval of the mean over repetitions; the difference is of \
the medians against the baseline; `better`/`worse` when the two runs' 95 % intervals of the mean \
do not overlap, `within noise` when they do, `n<2` without repetitions to tell.\n";
    md
}

/// The leaderboard as CSV: one line per point × metric × run.
pub fn compare_csv(l: &Leaderboard) -> String {
    let mut s =
        String::from("point,metric,better,run,median,mean,ci95,n,relative_difference,verdict\n");
    for r in &l.rows {
        for e in &r.entries {
            let v = e.value;
            s += &format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                r.point,
                r.metric,
                match r.better {
                    Better::Lower => "lower",
                    Better::Higher => "higher",
                },
                e.run,
                v.map_or(String::new(), |x| x.median.to_string()),
                v.map_or(String::new(), |x| x.mean.to_string()),
                v.map_or(String::new(), |x| x.ci95.to_string()),
                v.map_or(String::new(), |x| x.n.to_string()),
                e.relative_difference
                    .map_or(String::new(), |x| x.to_string()),
                e.verdict.map_or("", Verdict::label),
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(mean: f64, ci95: f64, n: usize) -> Summary {
        Summary {
            n,
            median: mean,
            mean,
            std: 0.0,
            ci95,
            min: mean,
            max: mean,
        }
    }

    #[test]
    fn verdicts_follow_the_intervals_and_the_direction() {
        let b = s(10.0, 1.0, 3);
        assert_eq!(
            verdict(&b, &s(11.5, 1.0, 3), Better::Higher),
            Verdict::WithinNoise
        );
        assert_eq!(
            verdict(&b, &s(12.5, 1.0, 3), Better::Higher),
            Verdict::Better
        );
        assert_eq!(verdict(&b, &s(12.5, 1.0, 3), Better::Lower), Verdict::Worse);
        assert_eq!(verdict(&b, &s(7.0, 1.0, 3), Better::Lower), Verdict::Better);
        assert_eq!(
            verdict(&b, &s(7.0, 1.0, 1), Better::Lower),
            Verdict::Unknown
        );
        // touching intervals count as overlapping
        assert_eq!(
            verdict(&b, &s(12.0, 1.0, 3), Better::Higher),
            Verdict::WithinNoise
        );
    }
}

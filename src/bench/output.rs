//! The run folder of `moecap bench`: `run.json` (settings), `points/ID.json` (each finished
//! point's summary, written last, so its presence means the point is complete),
//! `records.jsonl` (every pass of every finished point) and `routing/ID.jsonl` (each token's
//! experts, `docs/records.md`). `--resume` reopens a folder, checks that the settings agree, and
//! drops records of points that did not finish.

use super::run::Repetition;
use super::summary::{timed_records, PointSpec, PointSummary};
use super::RunSettings;
use crate::error::{Error, Result};
use crate::files::write_json;
use crate::records::routing::{RoutingLayer, RoutingLine};
use crate::records::PassRecord;
use crate::records::PassTiming;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of `records.jsonl`: a pass record (readable by `moecap metrics`) with its point,
/// repetition and region timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRecord {
    /// Point id (`b{batch}-p{prompt_len}`).
    pub point: String,
    /// Timed repetition, from 0.
    pub repetition: usize,
    /// The pass; its `latency_s` is the one the summary counts (unprobed in no-probe mode).
    #[serde(flatten)]
    pub pass: PassRecord,
    /// In no-probe mode, the latency of the probed twin pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probed_latency_s: Option<f64>,
    /// Region timings of the probed pass.
    pub timing: PassTiming,
}

/// An open run folder.
pub struct RunDir {
    /// The folder.
    pub dir: PathBuf,
}

fn io(p: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(p, e)
}

impl RunDir {
    /// Creates a run folder, or with `resume` reopens one; returns it with the points already
    /// finished. A folder holding another run, without `resume`, is an error.
    pub fn open(
        dir: &Path,
        settings: &RunSettings,
        resume: bool,
    ) -> Result<(RunDir, BTreeMap<String, PointSummary>)> {
        let run = dir.join("run.json");
        let rd = RunDir {
            dir: dir.to_path_buf(),
        };
        if !run.is_file() {
            if resume {
                return Err(Error::Invalid(format!(
                    "--resume: {} has no run.json, so there is no run to resume",
                    dir.display()
                )));
            }
            for d in [dir.to_path_buf(), dir.join("points"), dir.join("routing")] {
                std::fs::create_dir_all(&d).map_err(io(&d))?;
            }
            write_json(&run, settings)?;
            std::fs::write(dir.join("records.jsonl"), b"").map_err(io(dir))?;
            return Ok((rd, BTreeMap::new()));
        }
        if !resume {
            return Err(Error::Invalid(format!(
                "--out {} already holds a bench run; pass --resume to continue it, or choose another --out",
                dir.display()
            )));
        }
        let text = std::fs::read_to_string(&run).map_err(io(&run))?;
        let old: RunSettings = serde_json::from_str(&text).map_err(|e| {
            Error::Invalid(format!("{}: not a moecap run file: {e}", run.display()))
        })?;
        if let Some((field, was, now)) = old.difference(settings) {
            return Err(Error::Invalid(format!(
                "--resume: {} was run with {field} = {was}, this command has {now}; use the same settings or another --out",
                run.display()
            )));
        }
        let mut done = BTreeMap::new();
        let points = dir.join("points");
        std::fs::create_dir_all(&points).map_err(io(&points))?;
        std::fs::create_dir_all(dir.join("routing")).map_err(io(dir))?;
        for e in std::fs::read_dir(&points).map_err(io(&points))? {
            let p = e.map_err(io(&points))?.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&p).map_err(io(&p))?;
            let s: PointSummary = serde_json::from_str(&text).map_err(|e| {
                Error::Invalid(format!(
                    "{}: not a finished point ({e}); delete it to run the point again",
                    p.display()
                ))
            })?;
            done.insert(s.point.id(), s);
        }
        // keep only the records of finished points
        let rec = dir.join("records.jsonl");
        let text = std::fs::read_to_string(&rec).unwrap_or_default();
        let mut kept = String::new();
        for line in text.lines() {
            let point = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("point").and_then(|p| p.as_str()).map(String::from));
            if point.is_some_and(|p| done.contains_key(&p)) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        crate::files::write_atomic(&rec, kept.as_bytes())?;
        Ok((rd, done))
    }

    /// Saves a finished point: its records, its routing, then its summary (last).
    pub fn save_point(
        &self,
        point: PointSpec,
        reps: &[Repetition],
        summary: &PointSummary,
    ) -> Result<()> {
        let id = point.id();
        let rec_path = self.dir.join("records.jsonl");
        let mut lines = String::new();
        let mut routing = String::new();
        for (r, rep) in reps.iter().enumerate() {
            let timed = timed_records(rep);
            for (i, (er, pass)) in rep.records.iter().zip(timed).enumerate() {
                let line = BenchRecord {
                    point: id.clone(),
                    repetition: r,
                    probed_latency_s: rep.unprobed_latency_s.as_ref().map(|_| er.pass.latency_s),
                    pass,
                    timing: er.timing.clone(),
                };
                lines.push_str(&to_line(&line)?);
                let layers = er
                    .topk
                    .iter()
                    .map(|(l, t)| {
                        let k = t.ids.first().map_or(0, Vec::len);
                        (
                            l.clone(),
                            RoutingLayer {
                                k,
                                ids: t.ids.iter().flatten().copied().collect(),
                            },
                        )
                    })
                    .collect();
                routing.push_str(&to_line(&RoutingLine {
                    repetition: r,
                    pass: i,
                    phase: er.pass.phase,
                    cached_tokens: er.pass.cached_tokens.clone(),
                    new_tokens: er.pass.new_tokens.clone(),
                    layers,
                })?);
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&rec_path)
            .map_err(io(&rec_path))?;
        f.write_all(lines.as_bytes()).map_err(io(&rec_path))?;
        let rp = self.dir.join("routing").join(format!("{id}.jsonl"));
        crate::files::write_atomic(&rp, routing.as_bytes())?;
        let pp = self.dir.join("points").join(format!("{id}.json"));
        let tmp = pp.with_extension("json.tmp");
        write_json(&tmp, summary)?;
        std::fs::rename(&tmp, &pp).map_err(io(&pp))
    }
}

/// The default report folder of a run of `model_name`: `moecap-bench/MODEL-YYYYMMDD-HHMMSS` (UTC).
pub fn default_out(model_name: &str) -> PathBuf {
    let secs = crate::machine::ceilings::unix_now();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let safe: String = model_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    PathBuf::from("moecap-bench").join(format!(
        "{safe}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

fn to_line(v: &impl Serialize) -> Result<String> {
    let mut s = serde_json::to_string(v)
        .map_err(|e| Error::Invalid(format!("serialising a record: {e}")))?;
    s.push('\n');
    Ok(s)
}

//! Routing traces: which experts every token of every pass chose in every MoE layer, read from a
//! bench run folder (`routing/POINT.jsonl`, with each pass's measured latency from
//! `records.jsonl`), from one routing file, from the engine's pass records with per-token routing
//! (`generate --records`, `eval`'s `records.jsonl`), or from the plain import format other engines'
//! traces convert to (one JSON line per pass and layer: `{pass, phase, layer, ids}`,
//! docs/records.md). Each (point, repetition) of a run, or each repetition of a file, is one
//! [`Replay`]: an independent sequence of passes.

use crate::error::{Error, Result};
use crate::records::routing::RoutingLine;
use crate::records::Phase;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One pass of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TracePass {
    /// Prefill or decode.
    pub phase: Phase,
    /// Sequences in the pass.
    pub sequences: usize,
    /// Tokens of the pass (per sequence: cached before, new).
    pub seqs: Vec<(u64, u64)>,
    /// Per MoE layer (ascending checkpoint index): each token's expert ids, best first.
    pub layers: BTreeMap<usize, Vec<Vec<u32>>>,
    /// The measured pass latency, seconds, where the trace has one.
    pub latency_s: Option<f64>,
    /// The line of its file it was read from (its first line), 0 when made in memory.
    pub line: usize,
}

impl TracePass {
    /// New tokens of the pass.
    pub fn tokens(&self) -> usize {
        self.seqs.iter().map(|s| s.1 as usize).sum()
    }

    /// The distinct experts of layer `l` in ascending id (`U_{p,l}`).
    pub fn distinct(&self, l: usize) -> Vec<u32> {
        let mut u: Vec<u32> = self
            .layers
            .get(&l)
            .map(|t| t.iter().flatten().copied().collect())
            .unwrap_or_default();
        u.sort_unstable();
        u.dedup();
        u
    }
}

/// An independent sequence of passes, replayed from an empty cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// What it is (`b1-p64 rep 0`, `records.jsonl`).
    pub label: String,
    /// The bench point it belongs to, if any.
    pub point: Option<String>,
    /// The file it was read from.
    pub file: String,
    /// Its passes, in order.
    pub passes: Vec<TracePass>,
}

/// A whole trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Where it was read from.
    pub source: String,
    /// The model the run names (`run.json`'s `model`), when the trace comes from a bench run.
    pub model: Option<String>,
    /// The replays.
    pub replays: Vec<Replay>,
    /// The MoE layers (checkpoint indices) present in the trace.
    pub moe_layers: Vec<usize>,
}

/// One line of the import format: one MoE layer of one pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportLine {
    /// Pass number; lines of one pass share it, passes ascend, a pass number lower than the one
    /// before starts a new replay.
    pub pass: u64,
    /// `prefill` or `decode`.
    pub phase: Phase,
    /// The MoE layer (checkpoint index).
    pub layer: usize,
    /// Per token, its expert ids.
    pub ids: Vec<Vec<u32>>,
}

fn bad(file: &str, line: usize, msg: impl Into<String>) -> Error {
    Error::Record {
        file: file.to_string(),
        line,
        msg: msg.into(),
    }
}

impl Trace {
    /// Reads a bench run folder or a trace file (any of the formats above, told by its lines).
    pub fn read(path: &Path) -> Result<Trace> {
        if path.is_dir() {
            return Self::read_run(path);
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file = path.display().to_string();
        let mut t = Self::parse(&text, &file, None)?;
        t.source = file;
        Ok(t)
    }

    /// Parses the text of a trace file; `point` labels its replays.
    pub fn parse(text: &str, file: &str, point: Option<&str>) -> Result<Trace> {
        let first = text
            .lines()
            .enumerate()
            .find(|(_, l)| !l.trim().is_empty())
            .ok_or_else(|| bad(file, 0, "no passes"))?;
        let v: Value = serde_json::from_str(first.1)
            .map_err(|e| bad(file, first.0 + 1, format!("invalid JSON: {e}")))?;
        let replays = if v.get("layers").is_some() {
            parse_routing(text, file, point)?
        } else if v.get("topk").is_some() {
            parse_records(text, file)?
        } else if v.get("layer").is_some() {
            parse_import(text, file)?
        } else {
            return Err(bad(
                file,
                first.0 + 1,
                "not a routing trace: expected a bench routing line (`layers`), an engine record with routing (`topk`) or an import line (`pass`, `phase`, `layer`, `ids`)",
            ));
        };
        Trace::new(file.to_string(), None, replays)
    }

    /// Reads a bench run folder: every `routing/*.jsonl`, in the sweep's point order, with each
    /// pass's latency from `records.jsonl`.
    pub fn read_run(dir: &Path) -> Result<Trace> {
        let routing = dir.join("routing");
        if !routing.is_dir() {
            return Err(Error::Invalid(format!(
                "{}: not a bench run folder (no routing/)",
                dir.display()
            )));
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&routing)
            .map_err(|e| Error::io(&routing, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort_by_key(|p| point_order(p));
        if files.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no routing traces (no finished point)",
                routing.display()
            )));
        }
        let latencies = run_latencies(&dir.join("records.jsonl"))?;
        let mut replays = Vec::new();
        for f in &files {
            let point = f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
            let file = f.display().to_string();
            let mut reps = parse_routing(&text, &file, Some(&point))?;
            if let Some(lat) = latencies.get(&point) {
                let n: usize = reps.iter().map(|r| r.passes.len()).sum();
                if lat.len() == n {
                    let mut it = lat.iter();
                    for p in reps.iter_mut().flat_map(|r| r.passes.iter_mut()) {
                        p.latency_s = it.next().copied();
                    }
                }
            }
            replays.append(&mut reps);
        }
        let model = std::fs::read_to_string(dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("model").and_then(Value::as_str).map(String::from));
        Trace::new(dir.display().to_string(), model, replays)
    }

    fn new(source: String, model: Option<String>, replays: Vec<Replay>) -> Result<Trace> {
        let layers: BTreeSet<usize> = replays
            .iter()
            .flat_map(|r| r.passes.iter())
            .flat_map(|p| p.layers.keys().copied())
            .collect();
        if layers.is_empty() {
            return Err(Error::Invalid(format!(
                "{source}: the trace routes no token (no MoE layer)"
            )));
        }
        Ok(Trace {
            source,
            model,
            replays,
            moe_layers: layers.into_iter().collect(),
        })
    }

    /// Every pass of every replay.
    pub fn passes(&self) -> impl Iterator<Item = &TracePass> {
        self.replays.iter().flat_map(|r| r.passes.iter())
    }

    /// The largest expert id of each MoE layer, plus one: the expert count when no model says it.
    pub fn inferred_experts(&self) -> BTreeMap<usize, usize> {
        let mut e = BTreeMap::new();
        for p in self.passes() {
            for (l, toks) in &p.layers {
                let m = toks
                    .iter()
                    .flatten()
                    .map(|&i| i as usize + 1)
                    .max()
                    .unwrap_or(0);
                let slot = e.entry(*l).or_insert(0);
                *slot = (*slot).max(m);
            }
        }
        e
    }

    /// Checks the trace against a model's MoE layers: every pass routes every MoE layer of the
    /// model and no other, ids below the layer's expert count, `k` experts per token.
    pub fn check(&self, layers: &BTreeMap<usize, (usize, usize)>) -> Result<()> {
        for r in &self.replays {
            for p in &r.passes {
                let err = |msg: String| bad(&r.file, p.line, msg);
                if let Some(l) = layers.keys().find(|l| !p.layers.contains_key(l)) {
                    return Err(err(format!("MoE layer {l} of the model is missing")));
                }
                for (l, toks) in &p.layers {
                    let Some(&(e, k)) = layers.get(l) else {
                        return Err(err(format!("layer {l} is not a MoE layer of the model")));
                    };
                    for t in toks {
                        if t.len() != k {
                            return Err(err(format!(
                                "layer {l} has a token with {} experts, the model routes {k}",
                                t.len()
                            )));
                        }
                        if let Some(&id) = t.iter().find(|&&id| id as usize >= e) {
                            return Err(err(format!(
                                "layer {l} names expert {id}, but it has {e} experts"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// `b{batch}-p{prompt}` files in the sweep's order (prompt length, then batch); others after.
fn point_order(p: &Path) -> (usize, usize, String) {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let num = |s: Option<&str>, c: char| s.and_then(|s| s.strip_prefix(c)?.parse().ok());
    let mut it = stem.split('-');
    let (b, pl) = (num(it.next(), 'b'), num(it.next(), 'p'));
    (
        pl.unwrap_or(usize::MAX),
        b.unwrap_or(usize::MAX),
        stem.clone(),
    )
}

/// Each point's pass latencies from a bench `records.jsonl`, in file order.
fn run_latencies(path: &Path) -> Result<BTreeMap<String, Vec<f64>>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(out);
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let (Some(p), Some(l)) = (
            v.get("point").and_then(Value::as_str),
            v.get("latency_s").and_then(Value::as_f64),
        ) {
            out.entry(p.to_string()).or_default().push(l);
        }
    }
    Ok(out)
}

fn parse_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
}

/// Bench routing lines: a replay per repetition.
fn parse_routing(text: &str, file: &str, point: Option<&str>) -> Result<Vec<Replay>> {
    let mut reps: BTreeMap<usize, Vec<TracePass>> = BTreeMap::new();
    for (n, line) in parse_lines(text) {
        let r: RoutingLine = serde_json::from_str(line)
            .map_err(|e| bad(file, n, format!("not a routing line: {e}")))?;
        if r.cached_tokens.len() != r.new_tokens.len() || r.new_tokens.is_empty() {
            return Err(bad(
                file,
                n,
                "cached_tokens and new_tokens must be non-empty and of one length",
            ));
        }
        let tokens = r
            .new_tokens
            .iter()
            .try_fold(0u64, |a, &b| a.checked_add(b))
            .ok_or_else(|| bad(file, n, "new_tokens add up beyond any count"))?;
        let mut layers = BTreeMap::new();
        for (key, l) in &r.layers {
            let layer: usize = key
                .parse()
                .map_err(|_| bad(file, n, format!("layer key `{key}` is not a layer index")))?;
            if l.k == 0 || tokens.checked_mul(l.k as u64) != Some(l.ids.len() as u64) {
                return Err(bad(
                    file,
                    n,
                    format!(
                        "layer {layer}: {} ids are not k = {} per token of {tokens} tokens",
                        l.ids.len(),
                        l.k
                    ),
                ));
            }
            layers.insert(layer, l.ids.chunks(l.k).map(<[u32]>::to_vec).collect());
        }
        reps.entry(r.repetition).or_default().push(TracePass {
            phase: r.phase,
            sequences: r.new_tokens.len(),
            seqs: r.cached_tokens.iter().copied().zip(r.new_tokens).collect(),
            layers,
            latency_s: None,
            line: n,
        });
    }
    Ok(reps
        .into_iter()
        .map(|(rep, passes)| Replay {
            label: match point {
                Some(p) => format!("{p} rep {rep}"),
                None => format!("rep {rep}"),
            },
            point: point.map(String::from),
            file: file.to_string(),
            passes,
        })
        .collect())
}

/// Engine pass records with `topk` routing: one replay, the file.
fn parse_records(text: &str, file: &str) -> Result<Vec<Replay>> {
    let mut passes = Vec::new();
    for (n, line) in parse_lines(text) {
        let v: Value =
            serde_json::from_str(line).map_err(|e| bad(file, n, format!("invalid JSON: {e}")))?;
        let phase: Phase = v
            .get("phase")
            .cloned()
            .and_then(|p| serde_json::from_value(p).ok())
            .ok_or_else(|| bad(file, n, "`phase` must be prefill or decode"))?;
        let list = |k: &str| -> Result<Vec<u64>> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .ok_or_else(|| bad(file, n, format!("`{k}` must be a list of integers")))
        };
        let (cached, new) = (list("cached_tokens")?, list("new_tokens")?);
        if cached.len() != new.len() || new.is_empty() {
            return Err(bad(
                file,
                n,
                "cached_tokens and new_tokens must be non-empty and of one length",
            ));
        }
        let topk = v
            .get("topk")
            .and_then(Value::as_object)
            .ok_or_else(|| bad(file, n, "`topk` must be an object of layers"))?;
        let mut layers = BTreeMap::new();
        for (key, r) in topk {
            let layer: usize = key
                .parse()
                .map_err(|_| bad(file, n, format!("layer key `{key}` is not a layer index")))?;
            let ids: Vec<Vec<u32>> = r
                .get("ids")
                .cloned()
                .and_then(|x| serde_json::from_value(x).ok())
                .ok_or_else(|| {
                    bad(
                        file,
                        n,
                        format!("layer {layer}: `ids` must be lists of ids"),
                    )
                })?;
            layers.insert(layer, ids);
        }
        passes.push(TracePass {
            phase,
            sequences: new.len(),
            seqs: cached.into_iter().zip(new).collect(),
            layers,
            latency_s: v.get("latency_s").and_then(Value::as_f64),
            line: n,
        });
    }
    Ok(vec![Replay {
        label: "records".into(),
        point: None,
        file: file.to_string(),
        passes,
    }])
}

/// Import lines: a pass is the lines sharing a pass number; a lower pass number starts a replay.
fn parse_import(text: &str, file: &str) -> Result<Vec<Replay>> {
    let mut replays: Vec<Replay> = Vec::new();
    let mut last: Option<u64> = None;
    for (n, line) in parse_lines(text) {
        let l: ImportLine = serde_json::from_str(line).map_err(|e| {
            bad(
                file,
                n,
                format!("not an import line {{pass, phase, layer, ids}}: {e}"),
            )
        })?;
        if l.ids.is_empty() || l.ids.iter().any(Vec::is_empty) {
            return Err(bad(
                file,
                n,
                "`ids` needs at least one token with one expert",
            ));
        }
        let new_replay = last.is_none_or(|p| l.pass < p);
        if new_replay {
            replays.push(Replay {
                label: format!("replay {}", replays.len()),
                point: None,
                file: file.to_string(),
                passes: Vec::new(),
            });
        }
        let Some(rep) = replays.last_mut() else {
            continue;
        };
        let new_pass = last != Some(l.pass) || new_replay;
        last = Some(l.pass);
        if new_pass {
            rep.passes.push(TracePass {
                phase: l.phase,
                sequences: l.ids.len(),
                seqs: vec![(0, 1); l.ids.len()],
                layers: BTreeMap::new(),
                latency_s: None,
                line: n,
            });
        }
        let Some(p) = rep.passes.last_mut() else {
            continue;
        };
        if p.phase != l.phase {
            return Err(bad(file, n, "one pass has two phases"));
        }
        if p.layers.contains_key(&l.layer) {
            return Err(bad(
                file,
                n,
                format!("pass {}: layer {} twice", l.pass, l.layer),
            ));
        }
        if let Some(first) = p.layers.values().next() {
            if first.len() != l.ids.len() {
                return Err(bad(
                    file,
                    n,
                    format!("pass {}: layers route different numbers of tokens", l.pass),
                ));
            }
        }
        p.layers.insert(l.layer, l.ids);
    }
    Ok(replays)
}

/// The import lines of a trace (its passes numbered from 0 in each replay): what [`Trace::parse`]
/// reads back as the same routing.
pub fn to_import_lines(trace: &Trace) -> Result<String> {
    let mut out = String::new();
    for r in &trace.replays {
        for (i, p) in r.passes.iter().enumerate() {
            for (l, ids) in &p.layers {
                let line = ImportLine {
                    pass: i as u64,
                    phase: p.phase,
                    layer: *l,
                    ids: ids.clone(),
                };
                out += &serde_json::to_string(&line)
                    .map_err(|e| Error::Invalid(format!("serialising a trace: {e}")))?;
                out.push('\n');
            }
        }
    }
    Ok(out)
}

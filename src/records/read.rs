//! Reading per-pass record files: moecap's own JSON-lines format (what the engine writes, one line per forward
//! pass) and the per-pass JSONL records of the published MoE-CAP harness, read from one file.
//! `docs/records.md` documents the format.

use super::{LayerExperts, PassRecord, Phase};
use crate::error::{Error, Result};
use crate::model::descriptor::ModelDesc;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// One pass of the published MoE-CAP harness (fields as that code writes them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HarnessRecord {
    /// `forward_mode`.
    pub phase: Phase,
    /// `expert_activation`: mean distinct experts per layer over all layers.
    pub expert_activation: f64,
    /// `batch_size`.
    pub batch_size: f64,
    /// `seq_lens_sum`.
    pub seq_lens_sum: f64,
    /// Pass latency (`latency`, else `tpot` for decode, `ttft` for prefill), seconds.
    pub latency_s: f64,
}

/// The passes of one records file.
#[derive(Debug, Clone, PartialEq)]
pub enum Records {
    /// moecap's own records.
    Native(Vec<PassRecord>),
    /// Records of the published harness; `skipped` counts lines that harness itself skips
    /// (`expert_activation` null or negative).
    Harness {
        /// The usable passes.
        passes: Vec<HarnessRecord>,
        /// Lines skipped.
        skipped: usize,
    },
}

impl Records {
    /// Number of passes.
    pub fn len(&self) -> usize {
        match self {
            Records::Native(v) => v.len(),
            Records::Harness { passes, .. } => passes.len(),
        }
    }

    /// Whether there are no passes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads a records file (either format, not mixed). Blank lines are ignored.
pub fn read_records(path: &Path) -> Result<Records> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_records(&text, &path.display().to_string())
}

/// Parses records text; `file` names it in errors.
pub fn parse_records(text: &str, file: &str) -> Result<Records> {
    let mut native = Vec::new();
    let mut harness = Vec::new();
    let mut skipped = 0usize;
    let mut first_kind: Option<(bool, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |msg: String| Error::Record {
            file: file.to_string(),
            line: lineno,
            msg,
        };
        let value: Value =
            serde_json::from_str(line).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let is_harness = value.get("forward_mode").is_some();
        match first_kind {
            None => first_kind = Some((is_harness, lineno)),
            Some((k, at)) if k != is_harness => {
                return Err(err(format!(
                    "mixes record formats: line {at} is {}, this line is {}",
                    format_name(k),
                    format_name(is_harness)
                )))
            }
            _ => {}
        }
        if is_harness {
            match parse_harness(&value).map_err(err)? {
                Some(r) => harness.push(r),
                None => skipped += 1,
            }
        } else {
            let rec: PassRecord = serde_json::from_value(value)
                .map_err(|e| err(format!("not a moecap pass record: {e}")))?;
            check_shape(&rec).map_err(err)?;
            native.push(rec);
        }
    }
    match first_kind {
        None => Err(Error::Record {
            file: file.to_string(),
            line: 0,
            msg: "no records".into(),
        }),
        Some((true, _)) => {
            if harness.is_empty() {
                return Err(Error::Record {
                    file: file.to_string(),
                    line: 0,
                    msg: format!("all {skipped} harness records lack expert_activation"),
                });
            }
            Ok(Records::Harness {
                passes: harness,
                skipped,
            })
        }
        Some((false, _)) => Ok(Records::Native(native)),
    }
}

fn format_name(harness: bool) -> &'static str {
    if harness {
        "a MoE-CAP harness record"
    } else {
        "a moecap pass record"
    }
}

/// The shortest latency a record may claim: no forward pass of any model takes under a
/// nanosecond, so a smaller figure is a unit slip or a broken timer, not a measurement.
pub const MIN_LATENCY_S: f64 = 1e-9;

fn check_shape(r: &PassRecord) -> std::result::Result<(), String> {
    if !(r.latency_s.is_finite() && r.latency_s > 0.0) {
        return Err(format!(
            "latency_s must be a positive number of seconds, got {}",
            r.latency_s
        ));
    }
    if r.latency_s < MIN_LATENCY_S {
        return Err(format!(
            "latency_s {:?} is under a nanosecond; no forward pass is that fast (a unit slip?)",
            r.latency_s
        ));
    }
    let max = crate::model::config::limits::MAX_POSITIONS as u64;
    if let Some((i, (c, n))) = r
        .cached_tokens
        .iter()
        .zip(&r.new_tokens)
        .enumerate()
        .find(|(_, (&c, &n))| c.saturating_add(n) > max)
    {
        return Err(format!(
            "sequence {}: {c} cached + {n} new tokens is beyond any model's context ({max})",
            i + 1
        ));
    }
    if r.new_tokens.is_empty() {
        return Err("new_tokens is empty: a pass processes at least one sequence".into());
    }
    if r.cached_tokens.len() != r.new_tokens.len() {
        return Err(format!(
            "cached_tokens has {} entries but new_tokens has {}",
            r.cached_tokens.len(),
            r.new_tokens.len()
        ));
    }
    if r.new_tokens.contains(&0) {
        return Err("new_tokens has a zero entry".into());
    }
    if r.phase == Phase::Decode && r.new_tokens.iter().any(|&n| n != 1) {
        return Err("a decode pass processes exactly one new token per sequence".into());
    }
    Ok(())
}

fn parse_harness(v: &Value) -> std::result::Result<Option<HarnessRecord>, String> {
    let mode = v
        .get("forward_mode")
        .and_then(Value::as_str)
        .ok_or("forward_mode must be a string")?;
    let phase = match mode {
        "prefill" => Phase::Prefill,
        "decode" => Phase::Decode,
        other => return Err(format!("forward_mode `{other}` is not prefill or decode")),
    };
    // The harness skips passes without a usable activation; so do we.
    let act = match v.get("expert_activation") {
        None | Some(Value::Null) => return Ok(None),
        Some(a) => a.as_f64().ok_or("expert_activation must be a number")?,
    };
    if act < 0.0 {
        return Ok(None);
    }
    let num = |k: &str| -> std::result::Result<f64, String> {
        v.get(k)
            .and_then(Value::as_f64)
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| format!("`{k}` must be a non-negative number"))
    };
    let latency_key = if v.get("latency").is_some() {
        "latency"
    } else if phase == Phase::Decode {
        "tpot"
    } else {
        "ttft"
    };
    let latency_s = num(latency_key)?;
    if latency_s < MIN_LATENCY_S {
        return Err(format!(
            "`{latency_key}` {latency_s:?} is under a nanosecond; no forward pass is that fast (a unit slip?)"
        ));
    }
    let batch_size = num("batch_size")?;
    let max_positions = crate::model::config::limits::MAX_POSITIONS as f64;
    if !(1.0..=max_positions).contains(&batch_size) {
        return Err(format!(
            "`batch_size` {batch_size:?} is not a number of sequences"
        ));
    }
    let seq_lens_sum = num("seq_lens_sum")?;
    if seq_lens_sum > batch_size * max_positions {
        return Err(format!(
            "`seq_lens_sum` {seq_lens_sum:?} is beyond any model's context for {batch_size} sequences"
        ));
    }
    Ok(Some(HarnessRecord {
        phase,
        expert_activation: act,
        batch_size,
        seq_lens_sum,
        latency_s,
    }))
}

/// `|U_{p,l}|` of a native record for every layer of `desc` (0 for dense layers), checked
/// against the model: every MoE layer present, no unknown or dense layer, ids and counts within
/// the layer's experts.
pub fn activated_per_layer(
    rec: &PassRecord,
    desc: &ModelDesc,
) -> std::result::Result<Vec<f64>, String> {
    let mut out = vec![0.0; desc.num_layers()];
    for (key, experts) in &rec.experts {
        let l: usize = key
            .parse()
            .map_err(|_| format!("experts: key `{key}` is not a layer index"))?;
        let layer = desc.layers.get(l).ok_or_else(|| {
            format!(
                "experts: layer {l} does not exist (the model has {} layers)",
                desc.num_layers()
            )
        })?;
        let moe = layer
            .moe()
            .ok_or_else(|| format!("experts: layer {l} is a dense layer of the model"))?;
        let e = moe.num_experts;
        out[l] = match experts {
            LayerExperts::Ids(ids) => {
                let mut seen = vec![false; e];
                for &id in ids {
                    let slot = seen.get_mut(id as usize).ok_or_else(|| {
                        format!("experts: layer {l} names expert {id}, but it has {e} experts")
                    })?;
                    *slot = true;
                }
                seen.iter().filter(|s| **s).count() as f64
            }
            LayerExperts::Count(c) => {
                if *c as usize > e {
                    return Err(format!(
                        "experts: layer {l} count {c} exceeds its {e} experts"
                    ));
                }
                *c as f64
            }
        };
        let tokens = rec.total_new_tokens() as usize;
        let max_possible = (tokens * moe.top_k).min(e) as f64;
        if out[l] > max_possible {
            return Err(format!(
                "experts: layer {l} has {} activated experts, but {tokens} tokens with top-{} can activate at most {max_possible}",
                out[l], moe.top_k
            ));
        }
        if out[l] == 0.0 {
            return Err(format!("experts: layer {l} has no activated expert"));
        }
        // every token activates top-k distinct experts
        let min_possible = moe.top_k.min(e) as f64;
        if out[l] < min_possible {
            return Err(format!(
                "experts: layer {l} has {} activated experts, but each token activates {} distinct ones",
                out[l], moe.top_k
            ));
        }
    }
    if let Some(max) = desc.max_position_embeddings {
        let longest = rec
            .cached_tokens
            .iter()
            .zip(&rec.new_tokens)
            .map(|(c, n)| c + n)
            .max()
            .unwrap_or(0);
        if longest > max as u64 {
            return Err(format!(
                "a sequence reaches {longest} tokens, beyond the model's max_position_embeddings ({max})"
            ));
        }
    }
    if let Some((l, _)) = desc
        .moe_layers()
        .find(|(l, _)| !rec.experts.contains_key(&l.index.to_string()))
    {
        return Err(format!(
            "experts: MoE layer {} is missing (every MoE layer needs its activated experts)",
            l.index
        ));
    }
    Ok(out)
}

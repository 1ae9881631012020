//! Running one sweep point: warm-up, then repetitions of one prefill pass over the batch and
//! `gen_len − 1` greedy decode passes (end-of-sequence ignored, so every repetition does the same
//! work). With the probe on, every pass leaves an engine record. In no-probe mode each repetition
//! runs twice, interleaved: once probed (for routing) and once unprobed (for time); greedy
//! decoding of the same prompts makes both do the same computation.

use crate::engine::sampling::argmax;
use crate::engine::{Engine, LogitsMode};
use crate::error::{Error, Result};
use crate::machine::energy::{EnergyMeter, EnergyStart, MeasuredPower};
use crate::records::EngineRecord;
use std::time::Instant;

/// How a point is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointSettings {
    /// Tokens generated per sequence (the prefill produces the first).
    pub gen_len: usize,
    /// Untimed repetitions first.
    pub warmup: usize,
    /// Timed repetitions.
    pub repetitions: usize,
    /// false: no-probe mode (times from unprobed passes, routing from probed twins).
    pub probe: bool,
}

/// One timed repetition.
#[derive(Debug, Clone)]
pub struct Repetition {
    /// The probed passes, in order (prefill first).
    pub records: Vec<EngineRecord>,
    /// In no-probe mode, the latency of each pass run without the probe.
    pub unprobed_latency_s: Option<Vec<f64>>,
}

impl Repetition {
    /// The latency each pass counts with: unprobed when measured, else the probed one.
    pub fn latencies(&self) -> Vec<f64> {
        match &self.unprobed_latency_s {
            Some(v) => v.clone(),
            None => self.records.iter().map(|r| r.pass.latency_s).collect(),
        }
    }
}

/// Passes one repetition runs.
pub fn passes_per_repetition(gen_len: usize) -> usize {
    gen_len.max(1)
}

/// Runs one point: `on_pass(tokens)` is called after every pass (warm-up included) with the new
/// tokens it processed. With a `meter`, the mean power over the timed repetitions (the first
/// timed pass to the last, in no-probe mode both twins) comes back too.
pub fn run_point(
    engine: &mut Engine,
    prompts: &[Vec<u32>],
    s: PointSettings,
    meter: Option<&EnergyMeter>,
    on_pass: &mut dyn FnMut(usize),
) -> Result<(Vec<Repetition>, Option<MeasuredPower>)> {
    if s.gen_len == 0 || s.repetitions == 0 {
        return Err(Error::Invalid(
            "a point needs at least one generated token and one repetition".into(),
        ));
    }
    let mut out = Vec::with_capacity(s.repetitions);
    let mut window: Option<EnergyStart> = None;
    for r in 0..s.warmup + s.repetitions {
        let timed = r >= s.warmup;
        if r == s.warmup {
            window = meter.map(EnergyMeter::start);
        }
        let rep = if s.probe {
            engine.set_probe(true);
            let (_, records) = one_repetition(engine, prompts, s.gen_len, on_pass)?;
            Repetition {
                records,
                unprobed_latency_s: None,
            }
        } else {
            // alternate which runs first so drift does not favour one
            let mut probed = None;
            let mut plain = None;
            for probe_on in [r % 2 == 0, r % 2 != 0] {
                engine.set_probe(probe_on);
                let (lat, records) = one_repetition(engine, prompts, s.gen_len, on_pass)?;
                if probe_on {
                    probed = Some(records);
                } else {
                    plain = Some(lat);
                }
            }
            engine.set_probe(true);
            Repetition {
                records: probed.unwrap_or_default(),
                unprobed_latency_s: plain,
            }
        };
        if timed {
            out.push(rep);
        }
    }
    let power = meter.zip(window.as_ref()).and_then(|(m, w)| m.stop(w));
    Ok((out, power))
}

/// One prefill and `gen_len − 1` decode passes; returns host-timed latencies (synchronised) and
/// the probe's records.
fn one_repetition(
    engine: &mut Engine,
    prompts: &[Vec<u32>],
    gen_len: usize,
    on_pass: &mut dyn FnMut(usize),
) -> Result<(Vec<f64>, Vec<EngineRecord>)> {
    let device = engine.model.device.clone();
    let mut seqs: Vec<_> = prompts.iter().map(|_| engine.new_sequence()).collect();
    let mut latencies = Vec::with_capacity(gen_len);
    let mut tokens: Vec<Vec<u32>> = prompts.to_vec();
    engine.take_records();
    for step in 0..passes_per_repetition(gen_len) {
        let mut refs: Vec<_> = seqs.iter_mut().collect();
        let t = Instant::now();
        let logits = engine.forward(&mut refs, &tokens, LogitsMode::Last)?;
        device.synchronize()?;
        latencies.push(t.elapsed().as_secs_f64());
        on_pass(tokens.iter().map(Vec::len).sum());
        if step + 1 < gen_len {
            tokens = logits
                .iter()
                .map(|l| Ok(vec![argmax(&l.squeeze(0)?.to_vec1::<f32>()?)]))
                .collect::<Result<_>>()?;
        }
    }
    Ok((latencies, engine.take_records()))
}

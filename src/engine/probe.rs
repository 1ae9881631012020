//! The probe: per forward pass, what the router decided in every MoE layer (each token's top-k
//! ids and weights) and how long each region of each layer took. Off, the engine creates none
//! and skips every clock read. Its records extend the per-pass record format of `docs/records.md`.

use crate::records::PassRecord;
use candle_core::Device;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// Each token's routing in one MoE layer (flattened pass order).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerRouting {
    /// Top-k expert ids per token, best first.
    pub ids: Vec<Vec<u32>>,
    /// Their combine weights.
    pub weights: Vec<Vec<f32>>,
}

/// Time spent in each region of one layer, seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerTiming {
    /// Checkpoint layer index.
    pub layer: usize,
    /// Attention (projections, rope, scores, cache append).
    pub attention_s: f64,
    /// Router gate product and top-k selection.
    pub router_s: f64,
    /// Routed experts, including gathering tokens and scattering outputs (dense FFN for dense
    /// layers).
    pub experts_s: f64,
    /// Shared experts and their gate.
    pub shared_s: f64,
    /// Norms and residual additions.
    pub other_s: f64,
}

/// Everything the probe saw in one pass.
#[derive(Debug, Clone, Default)]
pub struct PassProbe {
    /// Per MoE layer.
    pub routing: BTreeMap<usize, LayerRouting>,
    /// Per layer.
    pub timings: Vec<LayerTiming>,
    /// Embedding lookup and rope tables.
    pub embed_s: f64,
    /// Final norm and LM head.
    pub head_s: f64,
}

/// Timing of the non-layer regions of a pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PassTiming {
    /// Embedding lookup and rope tables.
    pub embed_s: f64,
    /// Final norm and LM head.
    pub head_s: f64,
    /// Per layer.
    pub layers: Vec<LayerTiming>,
}

/// One pass as the engine writes it: the record of `docs/records.md` plus routing and timing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineRecord {
    /// The fields every consumer reads.
    #[serde(flatten)]
    pub pass: PassRecord,
    /// Per MoE layer (layer index as key): each token's top-k ids and weights.
    pub topk: BTreeMap<String, LayerRouting>,
    /// Region timings.
    pub timing: PassTiming,
}

/// A stopwatch that reads the clock only when the probe is on. On an accelerator it waits for
/// the device before each reading, so that a region's time is its kernels' time (this
/// serialisation is part of the probe's measured overhead).
#[derive(Debug)]
pub struct Lap {
    at: Option<Instant>,
    sync: Option<Device>,
}

impl Lap {
    /// Starts if `on`.
    pub fn start(on: bool, device: &Device) -> Self {
        let sync = (on && !device.is_cpu()).then(|| device.clone());
        if let Some(d) = &sync {
            // A failed synchronisation surfaces at the next tensor operation.
            let _ = d.synchronize();
        }
        Lap {
            at: on.then(Instant::now),
            sync,
        }
    }

    /// Seconds since the last lap (0 when off), restarting the watch.
    pub fn lap(&mut self) -> f64 {
        if let Some(d) = &self.sync {
            let _ = d.synchronize();
        }
        match &mut self.at {
            Some(t) => {
                let now = Instant::now();
                let s = now.duration_since(*t).as_secs_f64();
                *t = now;
                s
            }
            None => 0.0,
        }
    }
}

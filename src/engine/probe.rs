//! The probe: per forward pass, what the router decided in every MoE layer (each token's top-k
//! ids and weights) and how long each region of each layer took. Off, the engine creates none
//! and skips every clock read. Its records extend the per-pass record format of `docs/records.md`.

use crate::error::Result;
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
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

/// The probe's clock for one pass: marks at region boundaries, resolved to seconds once, at
/// the end of the pass. On the CPU a mark is a host instant (the CPU backend runs synchronously);
/// on CUDA it is an event recorded on the device stream with timing enabled, so kernels are not
/// serialised by the probe. Off, marking does nothing.
pub struct Clock {
    on: bool,
    host: Vec<Instant>,
    #[cfg(feature = "cuda")]
    cuda: Option<(
        std::sync::Arc<candle_core::cuda_backend::cudarc::driver::CudaStream>,
        Vec<candle_core::cuda_backend::cudarc::driver::CudaEvent>,
    )>,
}

impl Clock {
    /// A clock for a pass on `device`, marking only if `on`.
    pub fn new(on: bool, device: &Device) -> Self {
        #[cfg(feature = "cuda")]
        let cuda = match device {
            Device::Cuda(d) if on => Some((d.cuda_stream(), Vec::new())),
            _ => None,
        };
        #[cfg(not(feature = "cuda"))]
        let _ = device;
        Clock {
            on,
            host: Vec::new(),
            #[cfg(feature = "cuda")]
            cuda,
        }
    }

    /// Records a mark and returns its index (0 when off).
    pub fn mark(&mut self) -> Result<usize> {
        if !self.on {
            return Ok(0);
        }
        #[cfg(feature = "cuda")]
        if let Some((stream, events)) = &mut self.cuda {
            let ev = stream
                .record_event(Some(
                    candle_core::cuda_backend::cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT,
                ))
                .map_err(|e| {
                    crate::error::Error::Invalid(format!("probe: recording a CUDA event: {e:?}"))
                })?;
            events.push(ev);
            return Ok(events.len() - 1);
        }
        self.host.push(Instant::now());
        Ok(self.host.len() - 1)
    }

    /// Seconds from the first mark to each mark (empty when off).
    pub fn resolve(&self) -> Result<Vec<f64>> {
        #[cfg(feature = "cuda")]
        if let Some((_, events)) = &self.cuda {
            let Some(first) = events.first() else {
                return Ok(Vec::new());
            };
            return events
                .iter()
                .map(|e| {
                    first.elapsed_ms(e).map(|ms| ms as f64 / 1e3).map_err(|e| {
                        crate::error::Error::Invalid(format!("probe: reading CUDA events: {e:?}"))
                    })
                })
                .collect();
        }
        let Some(first) = self.host.first() else {
            return Ok(Vec::new());
        };
        Ok(self
            .host
            .iter()
            .map(|t| t.duration_since(*first).as_secs_f64())
            .collect())
    }
}

/// The marks of one layer's regions, indices into a [`Clock`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerMarks {
    /// Layer start.
    pub start: usize,
    /// After the input norm.
    pub normed: usize,
    /// After attention.
    pub attended: usize,
    /// After the residual and the post-attention norm.
    pub ffn_in: usize,
    /// After the router.
    pub routed: usize,
    /// After the routed experts (or the dense MLP).
    pub experts: usize,
    /// After the shared experts (equal to `experts` without them).
    pub shared: usize,
    /// After the final residual.
    pub end: usize,
}

impl LayerMarks {
    /// The layer's region times from resolved mark times.
    pub fn timing(&self, layer: usize, t: &[f64]) -> LayerTiming {
        let d = |a: usize, b: usize| (t[b] - t[a]).max(0.0);
        LayerTiming {
            layer,
            attention_s: d(self.normed, self.attended),
            router_s: d(self.ffn_in, self.routed),
            experts_s: d(self.routed, self.experts),
            shared_s: d(self.experts, self.shared),
            other_s: d(self.start, self.normed)
                + d(self.attended, self.ffn_in)
                + d(self.shared, self.end),
        }
    }
}

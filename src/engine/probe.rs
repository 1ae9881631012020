//! The probe: per forward pass, what the router decided in every MoE layer (each token's top-k
//! ids and weights) and how long each region of each layer took. The layer loop marks region
//! boundaries on a [`PassProbe`] between the calls into the block math, which knows nothing of
//! it; off, every mark is a no-op. What it saw becomes the pass's
//! [`crate::records::EngineRecord`] (`docs/records.md`).

use crate::error::Result;
use crate::records::{LayerRouting, LayerTiming, PassTiming};
use candle_core::Device;
use std::collections::BTreeMap;
use std::time::Instant;

/// The probe of one pass: its clock, the marks of every layer and each MoE layer's routing.
pub struct PassProbe {
    clock: Clock,
    start: usize,
    embedded: usize,
    head_start: usize,
    layers: Vec<LayerMarks>,
    routing: BTreeMap<usize, LayerRouting>,
}

impl PassProbe {
    /// Starts a pass on `device` (`on`: measure; off, nothing is recorded).
    pub fn start(on: bool, device: &Device) -> Result<Self> {
        let mut clock = Clock::new(on, device);
        let start = clock.mark()?;
        Ok(PassProbe {
            clock,
            start,
            embedded: 0,
            head_start: 0,
            layers: Vec::new(),
            routing: BTreeMap::new(),
        })
    }

    /// Whether the probe records.
    pub fn on(&self) -> bool {
        self.clock.on
    }

    /// A mark now (index into the pass's clock; 0 when off).
    pub fn mark(&mut self) -> Result<usize> {
        self.clock.mark()
    }

    /// Marks the end of the embedding and rope tables.
    pub fn embedded(&mut self) -> Result<()> {
        self.embedded = self.mark()?;
        Ok(())
    }

    /// Marks the start of the final norm and LM head.
    pub fn head(&mut self) -> Result<()> {
        self.head_start = self.mark()?;
        Ok(())
    }

    /// Keeps one layer's marks.
    pub fn layer_done(&mut self, marks: LayerMarks) {
        if self.on() {
            self.layers.push(marks);
        }
    }

    /// Keeps a MoE layer's routing.
    pub fn routing(&mut self, layer: usize, r: LayerRouting) {
        if self.on() {
            self.routing.insert(layer, r);
        }
    }

    /// Ends the pass: marks the end of the head, waits for the device and resolves the marks.
    /// `None` when the probe is off.
    pub fn finish(
        mut self,
        device: &Device,
    ) -> Result<Option<(PassTiming, BTreeMap<usize, LayerRouting>)>> {
        if !self.on() {
            return Ok(None);
        }
        let head_end = self.mark()?;
        device.synchronize()?;
        let t = self.clock.resolve()?;
        let timing = PassTiming {
            embed_s: t[self.embedded] - t[self.start],
            head_s: t[head_end] - t[self.head_start],
            layers: self
                .layers
                .iter()
                .enumerate()
                .map(|(i, mk)| mk.timing(i, &t))
                .collect(),
        };
        Ok(Some((timing, self.routing)))
    }
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

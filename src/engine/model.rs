//! The decoder shared by every family and the engine around it: embedding, layers (attention +
//! feed-forward with pre-norms and residuals), final norm, LM head; batched passes over
//! sequences with their own caches; the probe's records.

use super::attention::{pass_masks, Attention, PassContext, SeqSpan};
use super::cache::KvCache;
use super::layers::{Linear, RmsNorm};
use super::mla::MlaAttention;
use super::moe::FeedForward;
use super::probe::{Clock, EngineRecord, LayerMarks, PassProbe, PassTiming};
use super::rope::Rope;
use super::weights::WeightStore;
use crate::accounting::Phase;
use crate::descriptor::{Attention as AttnDesc, Family, ModelDesc};
use crate::error::{Error, Result};
use crate::naming::Names;
use crate::records::{LayerExperts, PassRecord};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::time::Instant;

/// Families the engine runs.
pub const ENGINE_FAMILIES: [Family; 9] = [
    Family::Mixtral,
    Family::Qwen2Moe,
    Family::Qwen3Moe,
    Family::Olmoe,
    Family::Deepseek,
    Family::DeepseekV2,
    Family::DeepseekV3,
    Family::Llama,
    Family::Mistral,
];

/// A layer's attention: one implementation per kind, shared by every family.
enum LayerAttention {
    /// Grouped-query attention.
    Gqa(Attention),
    /// DeepSeek latent attention.
    Mla(MlaAttention),
}

impl LayerAttention {
    fn new(
        desc: &ModelDesc,
        i: usize,
        w: &WeightStore,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        Ok(match desc.layers[i].attention {
            AttnDesc::Gqa { .. } => LayerAttention::Gqa(Attention::new(desc, i, w, dtype, dev)?),
            AttnDesc::Mla { .. } => LayerAttention::Mla(MlaAttention::new(desc, i, w, dtype, dev)?),
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        pass: &PassContext,
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> Result<Tensor> {
        match self {
            LayerAttention::Gqa(a) => a.forward(x, pass, caches, layer),
            LayerAttention::Mla(a) => a.forward(x, pass, caches, layer),
        }
    }
}

struct DecoderLayer {
    input_norm: RmsNorm,
    post_norm: RmsNorm,
    attn: LayerAttention,
    ffn: FeedForward,
}

/// A loaded model.
pub struct Model {
    /// Its descriptor.
    pub desc: ModelDesc,
    embed: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: Rope,
    /// Weights' dtype.
    pub dtype: DType,
    /// Where it runs.
    pub device: Device,
}

impl Model {
    /// Builds the model from its weights, converting them to `dtype` on `device`.
    pub fn load(desc: ModelDesc, w: &WeightStore, dtype: DType, device: &Device) -> Result<Self> {
        if !ENGINE_FAMILIES.contains(&desc.family) {
            return Err(Error::Unsupported(format!(
                "{}: the engine does not run {} yet (it runs {})",
                desc.source,
                desc.architecture,
                ENGINE_FAMILIES
                    .iter()
                    .map(|f| f.architecture())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if desc.hidden_act != "silu" {
            return Err(Error::field(
                &desc.source,
                "hidden_act",
                format!("`{}` is not supported (silu only)", desc.hidden_act),
            ));
        }
        let n = Names::new(&desc);
        let d = desc.hidden_size;
        let v = desc.vocab_size;
        let embed = w.get(&n.embed(), &[v, d], dtype, device)?;
        let lm_head = if desc.tie_word_embeddings {
            embed.clone()
        } else {
            w.get(&n.lm_head(), &[v, d], dtype, device)?
        };
        let mut layers = Vec::with_capacity(desc.num_layers());
        for i in 0..desc.num_layers() {
            layers.push(DecoderLayer {
                input_norm: RmsNorm::new(w, &n.input_norm(i), d, desc.norm_eps, dtype, device)?,
                post_norm: RmsNorm::new(
                    w,
                    &n.post_attention_norm(i),
                    d,
                    desc.norm_eps,
                    dtype,
                    device,
                )?,
                attn: LayerAttention::new(&desc, i, w, dtype, device)?,
                ffn: FeedForward::new(&desc, i, w, dtype, device)?,
            });
        }
        // the rotated dimensions: the whole head, or latent attention's decoupled rope part
        let head_dim = match desc.attention() {
            AttnDesc::Mla {
                qk_rope_head_dim, ..
            } => *qk_rope_head_dim,
            a => a.qk_head_dim(),
        };
        Ok(Model {
            norm: RmsNorm::new(w, &n.final_norm(), d, desc.norm_eps, dtype, device)?,
            lm_head: Linear::from_weight(lm_head)?,
            rope: Rope::new(&desc.rope, head_dim, desc.max_position_embeddings)?,
            embed,
            layers,
            desc,
            dtype,
            device: device.clone(),
        })
    }
}

/// Which positions' logits a pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsMode {
    /// The last position of each sequence.
    Last,
    /// Every position of the pass.
    All,
    /// The last `k` positions of each sequence (all of a shorter one): log-likelihood scoring
    /// of continuations without the LM head over the whole context.
    Tail(usize),
}

/// One sequence's state: its KV cache.
#[derive(Debug, Clone)]
pub struct Sequence {
    cache: KvCache,
}

impl Sequence {
    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

/// A model with its probe.
pub struct Engine {
    /// The model.
    pub model: Model,
    probe: bool,
    records: Vec<EngineRecord>,
    passes: u64,
}

impl Engine {
    /// Wraps a model; `probe` switches the instrumentation on.
    pub fn new(model: Model, probe: bool) -> Self {
        Engine {
            model,
            probe,
            records: Vec::new(),
            passes: 0,
        }
    }

    /// Whether the probe is on.
    pub fn probe_enabled(&self) -> bool {
        self.probe
    }

    /// Switches the probe on or off for the following passes.
    pub fn set_probe(&mut self, on: bool) {
        self.probe = on;
    }

    /// A fresh sequence.
    pub fn new_sequence(&self) -> Sequence {
        Sequence {
            cache: KvCache::new(self.model.desc.num_layers()),
        }
    }

    /// The probe's records so far, emptied.
    pub fn take_records(&mut self) -> Vec<EngineRecord> {
        std::mem::take(&mut self.records)
    }

    /// The last record (with the probe on).
    pub fn last_record(&self) -> Option<&EngineRecord> {
        self.records.last()
    }

    /// One forward pass: `tokens[i]` are appended to `seqs[i]`. Returns each sequence's logits
    /// `[1 or n_i, V]` in f32.
    pub fn forward(
        &mut self,
        seqs: &mut [&mut Sequence],
        tokens: &[Vec<u32>],
        mode: LogitsMode,
    ) -> Result<Vec<Tensor>> {
        if seqs.len() != tokens.len() || tokens.is_empty() || tokens.iter().any(Vec::is_empty) {
            return Err(Error::Invalid(
                "a pass needs at least one token for every sequence".into(),
            ));
        }
        let m = &self.model;
        let v = m.desc.vocab_size;
        if let Some(bad) = tokens.iter().flatten().find(|&&t| t as usize >= v) {
            return Err(Error::Invalid(format!(
                "token id {bad} is outside the vocabulary (size {v})"
            )));
        }
        let on = self.probe;
        let start = Instant::now();
        let mut probe = PassProbe::default();
        let mut clock = Clock::new(on, &m.device);
        let pass_start = clock.mark()?;
        let mut spans = Vec::with_capacity(seqs.len());
        let mut positions = Vec::new();
        let mut flat = Vec::new();
        for (s, t) in seqs.iter().zip(tokens) {
            let cached = s.len();
            spans.push(SeqSpan {
                offset: flat.len(),
                len: t.len(),
                cached,
            });
            positions.extend(cached..cached + t.len());
            flat.extend_from_slice(t);
        }
        let n_tok = flat.len();
        let ids = Tensor::from_vec(flat, n_tok, &m.device)?;
        let mut x = m.embed.index_select(&ids, 0)?;
        let pass = PassContext {
            spans: &spans,
            rope: &m.rope,
            cos_sin: m.rope.tables(&positions, m.dtype, &m.device)?,
            masks: pass_masks(&spans, m.desc.sliding_window, m.dtype, &m.device)?,
            window: m.desc.sliding_window,
        };
        let embedded = clock.mark()?;
        let mut layer_marks = Vec::new();
        let mut caches: Vec<&mut KvCache> = seqs.iter_mut().map(|s| &mut s.cache).collect();
        for (i, layer) in m.layers.iter().enumerate() {
            let mut mk = LayerMarks {
                start: clock.mark()?,
                ..Default::default()
            };
            let h = layer.input_norm.forward(&x)?;
            mk.normed = clock.mark()?;
            let a = layer.attn.forward(&h, &pass, &mut caches, i)?;
            mk.attended = clock.mark()?;
            x = (x + a)?;
            let h = layer.post_norm.forward(&x)?;
            mk.ffn_in = clock.mark()?;
            let routing = if on && matches!(layer.ffn, FeedForward::Moe(_)) {
                Some(probe.routing.entry(i).or_default())
            } else {
                None
            };
            let f = layer.ffn.forward(&h, routing, &mut clock, &mut mk)?;
            x = (x + f)?;
            mk.end = clock.mark()?;
            if on {
                layer_marks.push(mk);
            }
        }
        for c in caches.iter_mut() {
            c.commit();
        }
        let head_start = clock.mark()?;
        let rows: Vec<u32> = match mode {
            LogitsMode::All => (0..n_tok as u32).collect(),
            LogitsMode::Last => spans
                .iter()
                .map(|s| (s.offset + s.len - 1) as u32)
                .collect(),
            LogitsMode::Tail(k) => spans
                .iter()
                .flat_map(|s| {
                    let n = k.clamp(1, s.len);
                    (s.offset + s.len - n..s.offset + s.len).map(|r| r as u32)
                })
                .collect(),
        };
        let sel = if rows.len() == n_tok {
            x
        } else {
            let r = Tensor::from_vec(rows.clone(), rows.len(), &m.device)?;
            x.index_select(&r, 0)?
        };
        let logits = m
            .lm_head
            .forward(&m.norm.forward(&sel)?)?
            .to_dtype(DType::F32)?;
        let mut out = Vec::with_capacity(spans.len());
        let mut row = 0;
        for s in &spans {
            let n = match mode {
                LogitsMode::All => s.len,
                LogitsMode::Last => 1,
                LogitsMode::Tail(k) => k.clamp(1, s.len),
            };
            out.push(logits.narrow(0, row, n)?);
            row += n;
        }
        if on {
            let head_end = clock.mark()?;
            m.device.synchronize()?;
            let t = clock.resolve()?;
            probe.embed_s = t[embedded] - t[pass_start];
            probe.head_s = t[head_end] - t[head_start];
            probe.timings = layer_marks
                .iter()
                .enumerate()
                .map(|(i, mk)| mk.timing(i, &t))
                .collect();
            let latency_s = start.elapsed().as_secs_f64();
            self.passes += 1;
            let record = self.record(&spans, rows.len() as u64, latency_s, probe);
            self.records.push(record);
        }
        Ok(out)
    }

    fn record(
        &self,
        spans: &[SeqSpan],
        logits_positions: u64,
        latency_s: f64,
        probe: PassProbe,
    ) -> EngineRecord {
        let decode = spans.iter().all(|s| s.len == 1 && s.cached > 0);
        let mut experts = BTreeMap::new();
        for (l, r) in &probe.routing {
            let mut ids: Vec<u32> = r.ids.iter().flatten().copied().collect();
            ids.sort_unstable();
            ids.dedup();
            experts.insert(l.to_string(), LayerExperts::Ids(ids));
        }
        EngineRecord {
            pass: PassRecord {
                pass: Some(self.passes),
                phase: if decode {
                    Phase::Decode
                } else {
                    Phase::Prefill
                },
                latency_s,
                cached_tokens: spans.iter().map(|s| s.cached as u64).collect(),
                new_tokens: spans.iter().map(|s| s.len as u64).collect(),
                logits_positions: Some(logits_positions),
                experts,
                kv_cache: Some(crate::accounting::KvCacheKind::default_for(
                    &self.model.desc,
                )),
            },
            topk: probe
                .routing
                .into_iter()
                .map(|(l, r)| (l.to_string(), r))
                .collect(),
            timing: PassTiming {
                embed_s: probe.embed_s,
                head_s: probe.head_s,
                layers: probe.timings,
            },
        }
    }
}

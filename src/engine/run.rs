//! The engine around a model: batched forward passes over sequences with their own KV caches
//! (prefill and decode alike), which positions' logits come back, and the probe's record of
//! every pass.

use super::attention::{pass_masks, PassContext, SeqSpan};
use super::cache::KvCache;
use super::model::Model;
use super::probe::PassProbe;
use crate::backend::rows_finite;
use crate::error::{Error, Result};
use crate::records::{
    EngineRecord, KvCacheKind, LayerExperts, LayerRouting, PassRecord, PassTiming, Phase,
};
use candle_core::Tensor;
use std::collections::BTreeMap;
use std::time::Instant;

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

impl LogitsMode {
    /// Positions of a sequence of `len` tokens in the pass whose logits come back.
    fn rows(self, len: usize) -> usize {
        match self {
            LogitsMode::All => len,
            LogitsMode::Last => 1,
            LogitsMode::Tail(k) => k.clamp(1, len),
        }
    }
}

/// One sequence's state: its KV cache.
#[derive(Debug)]
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

    /// An independent sequence with the same tokens cached (a shared context scored with
    /// several continuations), with room for `extra` more tokens.
    pub fn fork(&self, extra: usize) -> Result<Sequence> {
        Ok(Sequence {
            cache: self.cache.fork(extra)?,
        })
    }
}

/// A model with its probe.
pub struct Engine {
    /// The model.
    pub model: Model,
    probe: bool,
    allow_nonfinite: bool,
    records: Vec<EngineRecord>,
    passes: u64,
    /// Passes run (recorded or not), numbering them in errors.
    passes_run: u64,
}

impl Engine {
    /// Wraps a model; `probe` switches the instrumentation on.
    pub fn new(model: Model, probe: bool) -> Self {
        Engine {
            model,
            probe,
            allow_nonfinite: false,
            records: Vec::new(),
            passes: 0,
            passes_run: 0,
        }
    }

    /// Lets passes whose logits hold NaN or ±∞ return them instead of failing with
    /// [`Error::NonFinite`] (for studying such models).
    pub fn set_allow_nonfinite(&mut self, on: bool) {
        self.allow_nonfinite = on;
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
        let start = Instant::now();
        self.passes_run += 1;
        let mut probe = PassProbe::start(self.probe, &m.device)?;
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
        let x = m.embed(&Tensor::from_vec(flat, n_tok, &m.device)?)?;
        let pass = PassContext {
            spans: &spans,
            rope: m.rope(),
            cos_sin: m.rope().tables(&positions, m.dtype, &m.device)?,
            masks: pass_masks(&spans, m.desc.sliding_window, m.dtype, &m.device)?,
            window: m.desc.sliding_window,
        };
        probe.embedded()?;
        let embedded = x.clone();
        let mut caches: Vec<&mut KvCache> = seqs.iter_mut().map(|s| &mut s.cache).collect();
        let x = m.layers(x, &pass, &mut caches, &mut probe)?;
        probe.head()?;
        let rows: Vec<u32> = spans
            .iter()
            .flat_map(|s| {
                let end = s.offset + s.len;
                (end - mode.rows(s.len)..end).map(|r| r as u32)
            })
            .collect();
        let sel = if rows.len() == n_tok {
            x
        } else {
            let r = Tensor::from_vec(rows.clone(), rows.len(), &m.device)?;
            x.index_select(&r, 0)?
        };
        let logits = m.head(&sel)?;
        let mut out = Vec::with_capacity(spans.len());
        let mut row = 0;
        for s in &spans {
            let n = mode.rows(s.len);
            out.push(logits.narrow(0, row, n)?);
            row += n;
        }
        let recorded = match probe.finish(&m.device)? {
            Some((timing, routing)) => {
                let latency_s = start.elapsed().as_secs_f64();
                self.passes += 1;
                let record = self.record(&spans, rows.len() as u64, latency_s, timing, routing);
                self.records.push(record);
                true
            }
            None => false,
        };
        // Checked after the pass is timed, so that the check costs the record nothing, and on
        // each sequence's last row only: a NaN or infinity anywhere in a sequence reaches its
        // last row through attention, and reading every row of a scoring pass's logits cost
        // eval 4 to 7 % of its time.
        let last_rows: Vec<usize> = {
            let mut end = 0;
            spans
                .iter()
                .map(|s| {
                    end += mode.rows(s.len);
                    end - 1
                })
                .collect()
        };
        if !self.allow_nonfinite && !rows_finite(&logits, &last_rows)? {
            if recorded {
                self.records.pop();
                self.passes -= 1;
            }
            // The caches hold this pass's keys and values uncommitted; the pass is run again
            // on copies of the committed part, checking each layer's output, to name where it
            // went wrong.
            let mut copies = caches
                .iter()
                .map(|c| c.fork(0))
                .collect::<Result<Vec<_>>>()?;
            let mut refs: Vec<&mut KvCache> = copies.iter_mut().collect();
            let first = self.model.first_nonfinite(embedded, &pass, &mut refs)?;
            return Err(Error::NonFinite {
                pass: self.passes_run,
                first,
            });
        }
        for c in caches.iter_mut() {
            c.commit();
        }
        Ok(out)
    }

    fn record(
        &self,
        spans: &[SeqSpan],
        logits_positions: u64,
        latency_s: f64,
        timing: PassTiming,
        routing: BTreeMap<usize, LayerRouting>,
    ) -> EngineRecord {
        let decode = spans.iter().all(|s| s.len == 1 && s.cached > 0);
        let mut experts = BTreeMap::new();
        for (l, r) in &routing {
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
                kv_cache: Some(KvCacheKind::default_for(&self.model.desc)),
            },
            topk: routing
                .into_iter()
                .map(|(l, r)| (l.to_string(), r))
                .collect(),
            timing,
        }
    }
}

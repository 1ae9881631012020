//! The KV cache of one sequence: per layer two tensors `[heads, capacity, d]` (keys and values;
//! for latent attention the compressed latent and the shared rotary key), grown by doubling,
//! appended in place.

use crate::backend::with_cpu_f32;
use crate::error::Result;
use candle_core::Tensor;

/// Keys and values of one layer.
#[derive(Debug, Clone)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
}

/// The cache of one sequence over all layers.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    len: usize,
    pending: usize,
}

impl KvCache {
    /// An empty cache for `layers` layers.
    pub fn new(layers: usize) -> Self {
        KvCache {
            layers: vec![None; layers],
            len: 0,
            pending: 0,
        }
    }

    /// Tokens stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `k` `[H_k, n, d_k]` and `v` `[H_v, n, d_v]` to layer `l` and returns the whole of
    /// both, `[H_k, len + n, d_k]` and `[H_v, len + n, d_v]`. Every layer appends the same `n`
    /// within a pass; [`KvCache::commit`] then advances the length.
    pub fn append(&mut self, l: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = k.dim(1)?;
        let need = self.len + n;
        let grow = |old: Option<&Tensor>, like: &Tensor| -> Result<Tensor> {
            let (heads, _, d) = like.dims3()?;
            let cap = need.next_power_of_two().max(64);
            let fresh = Tensor::zeros((heads, cap, d), like.dtype(), like.device())?;
            if let Some(o) = old {
                if self.len > 0 {
                    fresh.slice_set(&o.narrow(1, 0, self.len)?.contiguous()?, 1, 0)?;
                }
            }
            Ok(fresh)
        };
        let entry = match &self.layers[l] {
            Some(e) if e.k.dim(1)? >= need => e.clone(),
            other => {
                let (ok, ov) = match other {
                    Some(e) => (Some(&e.k), Some(&e.v)),
                    None => (None, None),
                };
                LayerKv {
                    k: grow(ok, k)?,
                    v: grow(ov, v)?,
                }
            }
        };
        entry.k.slice_set(&k.contiguous()?, 1, self.len)?;
        entry.v.slice_set(&v.contiguous()?, 1, self.len)?;
        let out = (entry.k.narrow(1, 0, need)?, entry.v.narrow(1, 0, need)?);
        self.layers[l] = Some(entry);
        self.pending = n;
        Ok(out)
    }

    /// Layer `l`'s whole buffers `[H_k, capacity, d_k]` and `[H_v, capacity, d_v]`, the first
    /// `len` rows of each head filled (and those appended in the pass being run).
    pub fn buffers(&self, l: usize) -> Option<(&Tensor, &Tensor)> {
        self.layers.get(l)?.as_ref().map(|e| (&e.k, &e.v))
    }

    /// An independent copy holding the same tokens, with room for exactly `extra` more before
    /// it grows (a clone would share the buffers that appends write into). On the host in f32 the
    /// filled rows are copied in one pass; elsewhere into a zeroed buffer.
    pub fn fork(&self, extra: usize) -> Result<Self> {
        let (len, cap) = (self.len, (self.len + extra).max(1));
        let copy = |t: &Tensor| -> Result<Tensor> {
            let (heads, old, d) = t.dims3()?;
            let host = with_cpu_f32(t, |v| {
                let mut out = Vec::with_capacity(heads * cap * d);
                for h in 0..heads {
                    out.extend_from_slice(&v[h * old * d..(h * old + len) * d]);
                    out.resize((h + 1) * cap * d, 0.0);
                }
                out
            })?;
            if let Some(v) = host {
                return Ok(Tensor::from_vec(v, (heads, cap, d), t.device())?);
            }
            let fresh = Tensor::zeros((heads, cap, d), t.dtype(), t.device())?;
            if len > 0 {
                fresh.slice_set(&t.narrow(1, 0, len)?.contiguous()?, 1, 0)?;
            }
            Ok(fresh)
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref()
                    .map(|e| {
                        Ok(LayerKv {
                            k: copy(&e.k)?,
                            v: copy(&e.v)?,
                        })
                    })
                    .transpose()
            })
            .collect::<Result<_>>()?;
        Ok(KvCache {
            layers,
            len,
            pending: 0,
        })
    }

    /// Makes the tokens appended in this pass part of the cache.
    pub fn commit(&mut self) {
        self.len += self.pending;
        self.pending = 0;
    }
}

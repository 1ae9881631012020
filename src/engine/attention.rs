//! Grouped-query attention with RoPE, optional q/k norms (per head or over the whole
//! projection), biases and a sliding window. Projections run over all tokens of a pass at once;
//! each sequence's queries then attend to its own cache only, so a sequence's result does not
//! depend on the others in the batch: on the host in f32 through one kernel call per layer for
//! the whole pass ([`host_attention`]), with the queries, keys and values split from the fused
//! projection, rotated and laid out for the caches in one pass where there are no q/k norms
//! ([`split_qkv_rope`]); elsewhere by candle products per sequence.

use super::cache::KvCache;
use super::layers::{Linear, RmsNorm};
use super::load::Loader;
use super::rope::Rope;
use crate::backend::{host_f32, with_cpu_f32_all};
use crate::error::{Error, Result};
use crate::model::descriptor::{Attention as AttnDesc, QkNorm};
use candle_core::{DType, Device, Tensor};
use moecap_kernels::{attend, masked_softmax, split_qkv_rope, Heads, QkvShape, SeqKv};
use std::ops::Range;

/// Where each sequence's tokens sit in the flattened pass.
#[derive(Debug, Clone, Copy)]
pub struct SeqSpan {
    /// First row in the flattened tokens.
    pub offset: usize,
    /// Tokens of the sequence in this pass.
    pub len: usize,
    /// Tokens cached before the pass.
    pub cached: usize,
}

/// What the attention of every layer shares within one pass.
pub struct PassContext<'a> {
    /// Where each sequence's tokens sit.
    pub spans: &'a [SeqSpan],
    /// The rotary embedding.
    pub rope: &'a Rope,
    /// Its cos and sin for the pass's positions.
    pub cos_sin: (Tensor, Tensor),
    /// Each sequence's mask ([`pass_masks`]); `None` where [`masks_in_softmax`].
    pub masks: Vec<Option<Tensor>>,
    /// The sliding window, if the model has one.
    pub window: Option<usize>,
}

/// Whether attention on `dev` in `dtype` masks inside its softmax ([`masked_softmax`]: the host
/// f32 path) rather than adding a mask tensor from [`pass_masks`], which then builds none.
pub fn masks_in_softmax(dev: &Device, dtype: DType) -> bool {
    host_f32(dev, dtype)
}

/// Attention probabilities of one sequence's queries: `softmax(scale · scores)` over the keys
/// each query may see. `scores` is `[..., rows, total]` with `rows` = groups × `span.len`, the
/// query fastest within a group (row `r` is query `r mod len`); `mask` is the sequence's mask from
/// [`pass_masks`] (`None`: every key visible, or masked inside the softmax). Shared by grouped-
/// query and latent attention.
pub fn attention_probs(
    scores: &Tensor,
    span: &SeqSpan,
    window: Option<usize>,
    scale: f64,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let shape = scores.dims().to_vec();
    let (n, total) = (span.len, span.cached + span.len);
    if masks_in_softmax(scores.device(), scores.dtype()) {
        let mut v = scores.flatten_all()?.to_vec1::<f32>()?;
        let keys = |i: usize| visible_keys(span.cached + i, window);
        masked_softmax(&mut v, total, scale as f32, &|r| r % n, &keys);
        return Ok(Tensor::from_vec(v, shape, scores.device())?);
    }
    let scores = (scores * scale)?;
    let scores = match mask {
        Some(m) => {
            let groups = scores.elem_count() / (n * total);
            scores
                .reshape((groups, n, total))?
                .broadcast_add(m)?
                .reshape(shape)?
        }
        None => scores,
    };
    Ok(candle_nn::ops::softmax_last_dim(&scores)?)
}

/// The keys a query at position `pos` attends to: the causal prefix, cut to the last `window`.
pub fn visible_keys(pos: usize, window: Option<usize>) -> Range<usize> {
    window.map_or(0, |w| (pos + 1).saturating_sub(w))..pos + 1
}

/// One layer's attention.
#[derive(Debug, Clone)]
pub struct Attention {
    qkv: Linear,
    o: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    norm_kind: QkNorm,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// Loads layer `i`'s attention.
    pub fn new(ld: &Loader, i: usize) -> Result<Self> {
        let AttnDesc::Gqa {
            heads,
            kv_heads,
            head_dim,
            qkv_bias,
            o_bias,
            qk_norm,
        } = ld.desc.layers[i].attention
        else {
            return Err(Error::Invalid(format!(
                "layer {i}: not a grouped-query attention layer"
            )));
        };
        let n = &ld.names;
        let b = |p: &str| qkv_bias.then(|| n.attn(i, &format!("{p}.bias")));
        let qkv = ld.fused(&[
            (n.attn(i, "q_proj.weight"), b("q_proj")),
            (n.attn(i, "k_proj.weight"), b("k_proj")),
            (n.attn(i, "v_proj.weight"), b("v_proj")),
        ])?;
        let o = ld.fused(&[(
            n.attn(i, "o_proj.weight"),
            o_bias.then(|| n.attn(i, "o_proj.bias")),
        )])?;
        let eps = ld.desc.norm_eps;
        let (q_norm, k_norm) = if qk_norm != QkNorm::None {
            (
                Some(ld.norm(&n.attn(i, "q_norm.weight"), eps)?),
                Some(ld.norm(&n.attn(i, "k_norm.weight"), eps)?),
            )
        } else {
            (None, None)
        };
        Ok(Attention {
            qkv,
            o,
            q_norm,
            k_norm,
            norm_kind: qk_norm,
            heads,
            kv_heads,
            head_dim,
        })
    }

    /// Attention over the flattened tokens `x` `[T, d]` of several sequences.
    pub fn forward(
        &self,
        x: &Tensor,
        pass: &PassContext,
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> Result<Tensor> {
        let (spans, rope, cos_sin) = (pass.spans, pass.rope, &pass.cos_sin);
        let t = x.dim(0)?;
        let (h, hkv, dh) = (self.heads, self.kv_heads, self.head_dim);
        let qkv = self.qkv.forward(x)?;
        let host = host_f32(x.device(), x.dtype());
        let scale = 1.0 / (dh as f64).sqrt();
        let shape = Heads {
            heads: h,
            kv_heads: hkv,
            dk: dh,
            dv: dh,
            scale: scale as f32,
            window: pass.window,
        };
        if host && self.norm_kind == QkNorm::None && rope.rotates_whole(dh) {
            if let Some((q, k, v)) = self.split_on_host(&qkv, pass)? {
                let mut at = 0;
                for (s, cache) in spans.iter().zip(caches.iter_mut()) {
                    let n = hkv * s.len * dh;
                    let ks = k.narrow(0, at, n)?.reshape((hkv, s.len, dh))?;
                    let vs = v.narrow(0, at, n)?.reshape((hkv, s.len, dh))?;
                    cache.append(layer, &ks, &vs)?;
                    at += n;
                }
                return self
                    .o
                    .forward(&attend_on_host(&q, spans, caches, layer, &shape)?);
            }
        }
        let mut q = qkv.narrow(1, 0, h * dh)?;
        let mut k = qkv.narrow(1, h * dh, hkv * dh)?;
        let v = qkv.narrow(1, (h + hkv) * dh, hkv * dh)?;
        if self.norm_kind == QkNorm::Full {
            if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
                q = qn.forward(&q)?;
                k = kn.forward(&k)?;
            }
        }
        let mut q = q.reshape((t, h, dh))?;
        let mut k = k.reshape((t, hkv, dh))?;
        let v = v.reshape((t, hkv, dh))?;
        if self.norm_kind == QkNorm::PerHead {
            if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
                q = qn.forward(&q)?;
                k = kn.forward(&k)?;
            }
        }
        let q = rope.apply(&q, &cos_sin.0, &cos_sin.1)?;
        let k = rope.apply(&k, &cos_sin.0, &cos_sin.1)?;
        let g = h / hkv;
        if host {
            for (s, cache) in spans.iter().zip(caches.iter_mut()) {
                let ks = k.narrow(0, s.offset, s.len)?.transpose(0, 1)?;
                let vs = v.narrow(0, s.offset, s.len)?.transpose(0, 1)?;
                cache.append(layer, &ks, &vs)?;
            }
            return self
                .o
                .forward(&attend_on_host(&q, spans, caches, layer, &shape)?);
        }
        let mut outs = Vec::with_capacity(spans.len());
        for ((s, cache), mask) in spans.iter().zip(caches.iter_mut()).zip(&pass.masks) {
            let n = s.len;
            let qs = q.narrow(0, s.offset, n)?;
            let ks = k.narrow(0, s.offset, n)?.transpose(0, 1)?;
            let vs = v.narrow(0, s.offset, n)?.transpose(0, 1)?;
            let (kc, vc) = cache.append(layer, &ks, &vs)?;
            // [n, Hkv, g, dh] -> [Hkv, g·n, dh]
            let qg = qs
                .reshape((n, hkv, g, dh))?
                .permute((1, 2, 0, 3))?
                .contiguous()?
                .reshape((hkv, g * n, dh))?;
            let scores = qg.matmul(&kc.t()?.contiguous()?)?;
            let p = attention_probs(&scores, s, pass.window, scale, mask.as_ref())?;
            let o = p.matmul(&vc.contiguous()?)?; // [Hkv, g·n, dh]
            let o = o
                .reshape((hkv, g, n, dh))?
                .permute((2, 0, 1, 3))?
                .contiguous()?
                .reshape((n, h * dh))?;
            outs.push(o);
        }
        self.o.forward(&Tensor::cat(&outs, 0)?)
    }

    /// The rotated queries `[T, heads, d]` and each sequence's rotated keys and values, head-major
    /// `[kv_heads, len, d]` one sequence after another (flattened), split from the fused
    /// projections `qkv` in one pass on the host ([`split_qkv_rope`]); `None` where `qkv` or the
    /// rotary tables are not host f32 ones or the sequences do not cover the pass's rows in order.
    fn split_on_host(
        &self,
        qkv: &Tensor,
        pass: &PassContext,
    ) -> Result<Option<(Tensor, Tensor, Tensor)>> {
        let rows = qkv.dim(0)?;
        let mut next = 0;
        let mut seqs = Vec::with_capacity(pass.spans.len());
        for s in pass.spans {
            if s.offset != next {
                return Ok(None);
            }
            seqs.push((s.offset, s.len));
            next += s.len;
        }
        if next != rows {
            return Ok(None);
        }
        let shape = QkvShape {
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
        };
        let (c, s) = (&pass.cos_sin.0, &pass.cos_sin.1);
        let split = with_cpu_f32_all(&[qkv, c, s], |b| {
            split_qkv_rope(b[0], shape, b[1], b[2], &seqs)
        })?;
        let Some((q, k, v)) = split else {
            return Ok(None);
        };
        let (dev, kv) = (qkv.device(), k.len());
        Ok(Some((
            Tensor::from_vec(q, (rows, self.heads, self.head_dim), dev)?,
            Tensor::from_vec(k, kv, dev)?,
            Tensor::from_vec(v, kv, dev)?,
        )))
    }
}

/// [`host_attention`], where the cache is known to be host f32.
fn attend_on_host(
    q: &Tensor,
    spans: &[SeqSpan],
    caches: &[&mut KvCache],
    layer: usize,
    shape: &Heads,
) -> Result<Tensor> {
    host_attention(q, spans, caches, layer, shape)?
        .ok_or_else(|| Error::Invalid(format!("layer {layer}: the KV cache is not host f32")))
}

/// The pass's attention output `[T, heads · dv]` on the host's f32 kernel ([`attend`]), reading
/// each sequence's keys and values in place from layer `layer` of its cache, to which this
/// pass's have been appended; `None` where the tensors are not host f32 ones.
pub fn host_attention(
    q: &Tensor,
    spans: &[SeqSpan],
    caches: &[&mut KvCache],
    layer: usize,
    shape: &Heads,
) -> Result<Option<Tensor>> {
    let q = q.contiguous()?;
    let mut held = vec![&q];
    let mut strides = Vec::with_capacity(caches.len());
    for c in caches {
        let (k, v) = c
            .buffers(layer)
            .ok_or_else(|| Error::Invalid(format!("layer {layer}: a sequence's cache is empty")))?;
        strides.push(k.dim(1)?);
        held.push(k);
        held.push(v);
    }
    let rows = spans.iter().map(|s| s.len).sum::<usize>();
    let out = with_cpu_f32_all(&held, |b| {
        let seqs: Vec<SeqKv> = spans
            .iter()
            .zip(&strides)
            .enumerate()
            .map(|(i, (s, &stride))| SeqKv {
                first_row: s.offset,
                len: s.len,
                cached: s.cached,
                k: b[1 + 2 * i],
                v: b[2 + 2 * i],
                stride,
            })
            .collect();
        attend(b[0], &seqs, shape)
    })?;
    Ok(match out {
        Some(o) => Some(Tensor::from_vec(
            o,
            (rows, shape.heads * shape.dv),
            q.device(),
        )?),
        None => None,
    })
}

/// Each sequence's additive attention mask for a pass, `[n, cached + n]` (0 where a query may
/// attend, −∞ elsewhere), or `None` where every key is visible. The same for every layer, so
/// built once per pass; all `None` where attention masks inside its softmax
/// ([`masks_in_softmax`]).
pub fn pass_masks(
    spans: &[SeqSpan],
    window: Option<usize>,
    dtype: DType,
    dev: &Device,
) -> Result<Vec<Option<Tensor>>> {
    spans
        .iter()
        .map(|s| {
            let (n, cached) = (s.len, s.cached);
            let total = cached + n;
            let windowed = window.is_some_and(|w| total > w);
            if (n == 1 && !windowed) || masks_in_softmax(dev, dtype) {
                return Ok(None);
            }
            let mut m = vec![0f32; n * total];
            for i in 0..n {
                let seen = visible_keys(cached + i, window);
                for (j, slot) in m[i * total..(i + 1) * total].iter_mut().enumerate() {
                    if !seen.contains(&j) {
                        *slot = f32::NEG_INFINITY;
                    }
                }
            }
            Ok(Some(Tensor::from_vec(m, (n, total), dev)?.to_dtype(dtype)?))
        })
        .collect()
}

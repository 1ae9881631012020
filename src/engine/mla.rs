//! DeepSeek multi-head latent attention (V2, V2-Lite, V3): queries through an optional
//! low-rank projection, keys and values compressed into a per-token latent plus one shared
//! rotary key, and a KV cache that stores only those (`kv_lora_rank + qk_rope_head_dim` values
//! per token and layer). The key up-projection is absorbed into the query and the value
//! up-projection applied after the weighted sum, so keys and values are never decompressed:
//! `q_nopeᵀ·(W_kb·c) = (W_kbᵀ·q_nope)ᵀ·c` and `Σ p·(W_vb·c) = W_vb·(Σ p·c)`.

use super::attention::{attention_probs, PassContext};
use super::cache::KvCache;
use super::layers::{Linear, RmsNorm};
use super::load::Loader;
use crate::error::{Error, Result};
use crate::model::descriptor::{Attention as AttnDesc, Rope as RopeDesc};
use candle_core::Tensor;

/// The RMSNorm epsilon of `q_a_layernorm` and `kv_a_layernorm`: the modelling code builds them
/// with the class default, not the config's `rms_norm_eps`.
const LORA_NORM_EPS: f64 = 1e-6;

/// One layer's latent attention.
#[derive(Debug, Clone)]
pub struct MlaAttention {
    /// `q_a_proj` (or `q_proj`) and `kv_a_proj_with_mqa`, fused: both read the layer input.
    a: Linear,
    /// Rows of `a` that belong to the query.
    q_rows: usize,
    /// `q_a_layernorm` and `q_b_proj`, with q-LoRA.
    q_lora: Option<(RmsNorm, Linear)>,
    kv_norm: RmsNorm,
    /// Key up-projection per head `[H, nope, r]`.
    w_kb: Tensor,
    /// Value up-projection per head, transposed: `[H, r, v]`.
    w_vb_t: Tensor,
    o: Linear,
    heads: usize,
    nope: usize,
    rope_dim: usize,
    rank: usize,
    v_dim: usize,
    interleave: bool,
    scale: f64,
}

/// The softmax scale: `1/√d_qk`, times `mscale(factor, mscale_all_dim)²` under a scaled rope
/// with `mscale_all_dim` set (YaRN's attention-temperature correction as DeepSeek applies it).
pub fn softmax_scale(qk_head_dim: usize, rope: &RopeDesc) -> f64 {
    let base = 1.0 / (qk_head_dim as f64).sqrt();
    let all_dim = rope.params.get("mscale_all_dim").copied().unwrap_or(0.0);
    match (rope.scaling.as_deref(), rope.factor) {
        (Some(_), Some(f)) if all_dim != 0.0 && f > 1.0 => {
            let m = 0.1 * all_dim * f.ln() + 1.0;
            base * m * m
        }
        _ => base,
    }
}

/// `[T, H, 2m]` with interleaved pairs → `[T, H, 2m]` with the pairs' first elements, then their
/// second elements (the "rotate half" layout). Applied to queries and keys alike, it leaves
/// every score unchanged.
fn deinterleave(x: &Tensor) -> Result<Tensor> {
    let (t, h, d) = x.dims3()?;
    Ok(x.reshape((t, h, d / 2, 2))?
        .transpose(2, 3)?
        .contiguous()?
        .reshape((t, h, d))?)
}

impl MlaAttention {
    /// Loads layer `i`'s latent attention.
    pub fn new(ld: &Loader, i: usize) -> Result<Self> {
        let desc = ld.desc;
        let AttnDesc::Mla {
            heads,
            q_lora_rank,
            kv_lora_rank: rank,
            qk_nope_head_dim: nope,
            qk_rope_head_dim: rope_dim,
            v_head_dim: v_dim,
            bias,
            rope_interleave,
        } = desc.layers[i].attention
        else {
            return Err(Error::Invalid(format!(
                "layer {i}: not a latent-attention layer"
            )));
        };
        if rope_dim % 2 != 0 {
            return Err(Error::field(
                &desc.source,
                "qk_rope_head_dim",
                format!("{rope_dim} is odd; rotary dimensions come in pairs"),
            ));
        }
        let n = &ld.names;
        let qk = nope + rope_dim;
        let b = |p: &str| bias.then(|| n.attn(i, &format!("{p}.bias")));
        let (q_part, q_rows, q_lora) = match q_lora_rank {
            None => ((n.attn(i, "q_proj.weight"), None), heads * qk, None),
            Some(qr) => (
                (n.attn(i, "q_a_proj.weight"), b("q_a_proj")),
                qr,
                Some((
                    ld.norm(&n.attn(i, "q_a_layernorm.weight"), LORA_NORM_EPS)?,
                    ld.linear(&n.attn(i, "q_b_proj.weight"))?,
                )),
            ),
        };
        let a = ld.fused(&[
            q_part,
            (
                n.attn(i, "kv_a_proj_with_mqa.weight"),
                b("kv_a_proj_with_mqa"),
            ),
        ])?;
        let kv_b = ld.tensor(&n.attn(i, "kv_b_proj.weight"))?;
        let kv_b = kv_b.reshape((heads, nope + v_dim, rank))?;
        let w_kb = kv_b.narrow(1, 0, nope)?.contiguous()?;
        let w_vb_t = kv_b.narrow(1, nope, v_dim)?.transpose(1, 2)?.contiguous()?;
        let o = ld.fused(&[(n.attn(i, "o_proj.weight"), b("o_proj"))])?;
        Ok(MlaAttention {
            a,
            q_rows,
            q_lora,
            kv_norm: ld.norm(&n.attn(i, "kv_a_layernorm.weight"), LORA_NORM_EPS)?,
            w_kb,
            w_vb_t,
            o,
            heads,
            nope,
            rope_dim,
            rank,
            v_dim,
            interleave: rope_interleave,
            scale: softmax_scale(qk, &desc.rope),
        })
    }

    /// Attention over the flattened tokens `x` `[T, d]` of several sequences; each sequence's
    /// cache holds its latents `[1, len, r]` and rotary keys `[1, len, d_rope]`.
    pub fn forward(
        &self,
        x: &Tensor,
        pass: &PassContext,
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> Result<Tensor> {
        let t = x.dim(0)?;
        let (h, nope, rd, r, vd) = (self.heads, self.nope, self.rope_dim, self.rank, self.v_dim);
        let a = self.a.forward(x)?;
        let q = a.narrow(1, 0, self.q_rows)?;
        let q = match &self.q_lora {
            Some((norm, b)) => b.forward(&norm.forward(&q)?)?,
            None => q,
        };
        let q = q.reshape((t, h, nope + rd))?;
        let ckv = a.narrow(1, self.q_rows, r + rd)?;
        let latent = self.kv_norm.forward(&ckv.narrow(1, 0, r)?)?; // [T, r]
        let mut q_rot = q.narrow(2, nope, rd)?;
        let mut k_rot = ckv.narrow(1, r, rd)?.reshape((t, 1, rd))?;
        if self.interleave {
            q_rot = deinterleave(&q_rot)?;
            k_rot = deinterleave(&k_rot)?;
        }
        let (cos, sin) = &pass.cos_sin;
        let q_rot = pass
            .rope
            .apply(&q_rot, cos, sin)?
            .transpose(0, 1)?
            .contiguous()?; // [H, T, rd]
        let k_rot = pass.rope.apply(&k_rot, cos, sin)?; // [T, 1, rd]
                                                        // absorbed query: [H, T, nope] · [H, nope, r] -> [H, T, r]
        let q_lat = q
            .narrow(2, 0, nope)?
            .transpose(0, 1)?
            .contiguous()?
            .matmul(&self.w_kb)?;
        let mut outs = Vec::with_capacity(pass.spans.len());
        for ((s, cache), mask) in pass.spans.iter().zip(caches.iter_mut()).zip(&pass.masks) {
            let n = s.len;
            let lat = latent.narrow(0, s.offset, n)?.unsqueeze(0)?;
            let rot = k_rot.narrow(0, s.offset, n)?.transpose(0, 1)?;
            let (lc, rc) = cache.append(layer, &lat, &rot)?;
            let lc = lc.squeeze(0)?.contiguous()?; // [total, r]
            let rc = rc.squeeze(0)?.contiguous()?; // [total, rd]
            let ql = q_lat
                .narrow(1, s.offset, n)?
                .contiguous()?
                .reshape((h * n, r))?;
            let qr = q_rot
                .narrow(1, s.offset, n)?
                .contiguous()?
                .reshape((h * n, rd))?;
            let scores =
                (ql.matmul(&lc.t()?.contiguous()?)? + qr.matmul(&rc.t()?.contiguous()?)?)?;
            let p = attention_probs(&scores, s, pass.window, self.scale, mask.as_ref())?;
            let o_lat = p.matmul(&lc)?.reshape((h, n, r))?;
            let o = o_lat.matmul(&self.w_vb_t)?; // [H, n, v]
            outs.push(o.transpose(0, 1)?.contiguous()?.reshape((n, h * vd))?);
        }
        self.o.forward(&Tensor::cat(&outs, 0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use std::collections::BTreeMap;

    #[test]
    fn yarn_softmax_scale_by_hand() {
        let mut params = BTreeMap::new();
        params.insert("mscale_all_dim".to_string(), 0.707);
        let rope = RopeDesc {
            theta: 10000.0,
            scaling: Some("yarn".into()),
            factor: Some(40.0),
            params,
        };
        // DeepSeek-V2-Lite: d_qk 192, factor 40, mscale_all_dim 0.707:
        // m = 0.1·0.707·ln 40 + 1 = 1.260806..., scale = m² / √192
        let m = 0.1 * 0.707 * 40f64.ln() + 1.0;
        assert!((softmax_scale(192, &rope) - m * m / 192f64.sqrt()).abs() < 1e-15);
        assert!((m - 1.2608).abs() < 1e-4);
        let plain = RopeDesc {
            theta: 10000.0,
            scaling: None,
            factor: None,
            params: BTreeMap::new(),
        };
        assert_eq!(softmax_scale(192, &plain), 1.0 / 192f64.sqrt());
    }

    #[test]
    fn deinterleave_puts_pair_halves_together() {
        let x = Tensor::arange(0f32, 8.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 8))
            .unwrap();
        let y = deinterleave(&x).unwrap().flatten_all().unwrap();
        assert_eq!(
            y.to_vec1::<f32>().unwrap(),
            vec![0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]
        );
    }
}

//! Rotary position embeddings in the Hugging Face "rotate half" layout, with the scaling types
//! of the supported configs. Cos/sin are computed per forward for exactly the positions in it.

use crate::backend::with_cpu_f32;
use crate::error::{Error, Result};
use crate::model::descriptor::Rope as RopeDesc;
use candle_core::{DType, Device, Tensor};
use moecap_kernels::rope_rotate;

/// Inverse frequencies of one head size and the factor applied to cos and sin.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
    attention_factor: f32,
    half: usize,
}

impl Rope {
    /// Rope for heads of `rot_dim` rotated dimensions; `max_pos` is the config's
    /// `max_position_embeddings` (yarn derives its factor from it when none is given).
    pub fn new(desc: &RopeDesc, rot_dim: usize, max_pos: Option<usize>) -> Result<Self> {
        let half = rot_dim / 2;
        let base = desc.theta;
        let dim = rot_dim as f64;
        let plain: Vec<f64> = (0..half)
            .map(|i| 1.0 / base.powf(2.0 * i as f64 / dim))
            .collect();
        let p = |k: &str| desc.params.get(k).copied();
        let need = |k: &str| {
            p(k).ok_or_else(|| {
                Error::Unsupported(format!(
                    "rope scaling `{}` needs `{k}` in the config",
                    desc.scaling.as_deref().unwrap_or("")
                ))
            })
        };
        let mut attention_factor = 1.0f64;
        let inv: Vec<f64> = match desc.scaling.as_deref() {
            None => plain,
            Some("linear") => {
                let f = desc.factor.unwrap_or(1.0);
                plain.iter().map(|x| x / f).collect()
            }
            Some("llama3") => {
                let f = desc.factor.ok_or_else(|| Error::Unsupported("rope scaling `llama3` needs `factor`".into()))?;
                let (lo, hi) = (need("low_freq_factor")?, need("high_freq_factor")?);
                let old = need("original_max_position_embeddings")?;
                let (lo_wl, hi_wl) = (old / lo, old / hi);
                plain
                    .iter()
                    .map(|&x| {
                        let wl = 2.0 * std::f64::consts::PI / x;
                        let scaled = if wl > lo_wl { x / f } else { x };
                        let medium = (hi_wl..=lo_wl).contains(&wl);
                        if medium {
                            let s = (old / wl - lo) / (hi - lo);
                            (1.0 - s) * scaled / f + s * scaled
                        } else {
                            scaled
                        }
                    })
                    .collect()
            }
            Some("yarn") => {
                let old = need("original_max_position_embeddings")?;
                let f = match desc.factor {
                    Some(f) => f,
                    None => {
                        let m = max_pos.ok_or_else(|| Error::Unsupported("rope scaling `yarn` needs `factor` or `max_position_embeddings`".into()))?;
                        m as f64 / old
                    }
                };
                let get_mscale = |scale: f64, m: f64| if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 };
                attention_factor = match (p("attention_factor"), p("mscale"), p("mscale_all_dim")) {
                    (Some(a), _, _) => a,
                    (None, Some(m), Some(ma)) if m != 0.0 && ma != 0.0 => get_mscale(f, m) / get_mscale(f, ma),
                    _ => get_mscale(f, 1.0),
                };
                let beta_fast = p("beta_fast").filter(|b| *b != 0.0).unwrap_or(32.0);
                let beta_slow = p("beta_slow").filter(|b| *b != 0.0).unwrap_or(1.0);
                let truncate = p("truncate").is_none_or(|t| t != 0.0);
                let corr = |rot: f64| (dim * (old / (rot * 2.0 * std::f64::consts::PI)).ln()) / (2.0 * base.ln());
                let (mut low, mut high) = (corr(beta_fast), corr(beta_slow));
                if truncate {
                    low = low.floor();
                    high = high.ceil();
                }
                let low = low.max(0.0);
                let mut high = high.min(dim - 1.0);
                if low == high {
                    high += 0.001;
                }
                plain
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                        let extrapolation = 1.0 - ramp;
                        (x / f) * (1.0 - extrapolation) + x * extrapolation
                    })
                    .collect()
            }
            Some(other) => {
                return Err(Error::Unsupported(format!(
                    "rope scaling `{other}` is not implemented in the engine (supported: default, linear, llama3, yarn)"
                )))
            }
        };
        Ok(Rope {
            inv_freq: inv.iter().map(|&x| x as f32).collect(),
            attention_factor: attention_factor as f32,
            half,
        })
    }

    /// Whether a head of `d` values is rotated whole (no part of it passes unrotated).
    pub fn rotates_whole(&self, d: usize) -> bool {
        d == 2 * self.half
    }

    /// `(cos, sin)` of shape `[T, 1, half]` for the given positions.
    pub fn tables(
        &self,
        positions: &[usize],
        dtype: DType,
        dev: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let mut c = Vec::with_capacity(positions.len() * self.half);
        let mut s = Vec::with_capacity(positions.len() * self.half);
        for &p in positions {
            for f in &self.inv_freq {
                // The references compute the angle in float32.
                let a = p as f32 * f;
                c.push(a.cos() * self.attention_factor);
                s.push(a.sin() * self.attention_factor);
            }
        }
        let shape = (positions.len(), 1, self.half);
        Ok((
            Tensor::from_vec(c, shape, dev)?.to_dtype(dtype)?,
            Tensor::from_vec(s, shape, dev)?.to_dtype(dtype)?,
        ))
    }

    /// Rotates `x` `[T, heads, 2·half]`.
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let (t, heads, d) = x.dims3()?;
        if d == 2 * self.half && cos.dtype() == DType::F32 && sin.dtype() == DType::F32 {
            let (c, s) = (cos.flatten_all()?, sin.flatten_all()?);
            let rotated = with_cpu_f32(x, |xv| -> Result<Vec<f32>> {
                Ok(rope_rotate(
                    xv,
                    heads,
                    self.half,
                    &c.to_vec1::<f32>()?,
                    &s.to_vec1::<f32>()?,
                ))
            })?;
            if let Some(y) = rotated {
                return Ok(Tensor::from_vec(y?, (t, heads, d), x.device())?);
            }
        }
        let x1 = x.narrow(2, 0, self.half)?;
        let x2 = x.narrow(2, self.half, self.half)?;
        let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
        let b = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
        Ok(Tensor::cat(&[a, b], 2)?)
    }
}

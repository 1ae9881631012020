//! Rotary position embeddings in the Hugging Face "rotate half" layout, with the scaling types
//! of the supported configs. Cos/sin are computed per forward for exactly the positions in it.

use crate::descriptor::Rope as RopeDesc;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// Inverse frequencies of one head size, and the position scale.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f64>,
    position_scale: f64,
    half: usize,
}

impl Rope {
    /// Rope for heads of `rot_dim` rotated dimensions.
    pub fn new(desc: &RopeDesc, rot_dim: usize) -> Result<Self> {
        let half = rot_dim / 2;
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| 1.0 / desc.theta.powf(2.0 * i as f64 / rot_dim as f64))
            .collect();
        let position_scale = match desc.scaling.as_deref() {
            None => 1.0,
            Some("linear") => 1.0 / desc.factor.unwrap_or(1.0),
            Some(other) => {
                return Err(Error::Unsupported(format!(
                    "rope scaling `{other}` is not implemented in the engine yet (supported: none, linear)"
                )))
            }
        };
        Ok(Rope {
            inv_freq,
            position_scale,
            half,
        })
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
            let p = p as f64 * self.position_scale;
            for f in &self.inv_freq {
                // HF computes the angle in float32.
                let a = (p as f32) * (*f as f32);
                c.push(a.cos());
                s.push(a.sin());
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
        let x1 = x.narrow(2, 0, self.half)?;
        let x2 = x.narrow(2, self.half, self.half)?;
        let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
        let b = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
        Ok(Tensor::cat(&[a, b], 2)?)
    }
}

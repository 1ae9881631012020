//! Building blocks shared by every family: RMS norm, linear layers stored pre-transposed (with
//! fused projections), and the gated SiLU MLP used by dense layers, routed and shared experts.

use super::weights::WeightStore;
use crate::error::Result;
use crate::naming::Proj;
use candle_core::{DType, Device, Tensor};

/// RMSNorm with a learned scale.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// Loads `name` of size `size`.
    pub fn new(
        w: &WeightStore,
        name: &str,
        size: usize,
        eps: f64,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        Ok(RmsNorm {
            weight: w.get(name, &[size], dtype, dev)?,
            eps: eps as f32,
        })
    }

    /// Normalises over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(
            &x.contiguous()?,
            &self.weight,
            self.eps,
        )?)
    }
}

/// `y = x · Wᵀ (+ b)` with `Wᵀ` stored contiguous `[in, out]`; several checkpoint projections
/// of the same input may be concatenated into one.
#[derive(Debug, Clone)]
pub struct Linear {
    wt: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads and concatenates projections `(weight name, bias name, rows)` that read the same
    /// input of size `inp`.
    pub fn fused(
        w: &WeightStore,
        parts: &[(String, Option<String>, usize)],
        inp: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        let mut ws = Vec::with_capacity(parts.len());
        let mut bs = Vec::new();
        for (name, bias, rows) in parts {
            ws.push(w.get(name, &[*rows, inp], dtype, dev)?);
            if let Some(b) = bias {
                bs.push(w.get(b, &[*rows], dtype, dev)?);
            }
        }
        let wt = Tensor::cat(&ws, 0)?.t()?.contiguous()?;
        let bias = if bs.is_empty() {
            None
        } else {
            Some(Tensor::cat(&bs, 0)?)
        };
        Ok(Linear { wt, bias })
    }

    /// One projection without bias.
    pub fn new(
        w: &WeightStore,
        name: &str,
        rows: usize,
        inp: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        Self::fused(w, &[(name.to_string(), None, rows)], inp, dtype, dev)
    }

    /// Applies the layer to `x` `[T, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.wt)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// A gated MLP `down(silu(gate(x)) · up(x))` with gate and up fused into one matmul.
#[derive(Debug, Clone)]
pub struct Mlp {
    gate_up: Linear,
    down: Linear,
    inter: usize,
}

impl Mlp {
    /// Loads an MLP whose projections are named by `name(proj)` (and `bias(proj)` if biased).
    pub fn new(
        w: &WeightStore,
        name: impl Fn(Proj) -> String,
        bias: Option<&dyn Fn(Proj) -> String>,
        hidden: usize,
        inter: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        let b = |p: Proj| bias.map(|f| f(p));
        let gate_up = Linear::fused(
            w,
            &[
                (name(Proj::Gate), b(Proj::Gate), inter),
                (name(Proj::Up), b(Proj::Up), inter),
            ],
            hidden,
            dtype,
            dev,
        )?;
        let down = Linear::fused(
            w,
            &[(name(Proj::Down), b(Proj::Down), hidden)],
            inter,
            dtype,
            dev,
        )?;
        Ok(Mlp {
            gate_up,
            down,
            inter,
        })
    }

    /// Applies the MLP to `x` `[T, d]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gu = self.gate_up.forward(x)?;
        let g = gu.narrow(1, 0, self.inter)?;
        let u = gu.narrow(1, self.inter, self.inter)?;
        let h = (g.silu()? * u)?;
        self.down.forward(&h)
    }
}

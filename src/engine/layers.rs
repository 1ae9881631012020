//! Building blocks shared by every family: RMS norm, linear layers stored pre-transposed (with
//! fused projections), and the gated SiLU MLP used by dense layers, routed and shared experts.

use super::kernels::{silu_mul, skinny_matmul, weight_major, MAX_ROWS};
use super::weights::WeightStore;
use crate::error::Result;
use crate::naming::Proj;
use candle_core::{DType, Device, Storage, Tensor};

/// Runs `f` on the elements of `t` when `t` is a contiguous f32 tensor on the CPU (`None`
/// otherwise), without copying them.
pub fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<Option<R>> {
    if !t.device().is_cpu() || t.dtype() != DType::F32 {
        return Ok(None);
    }
    let (st, l) = t.storage_and_layout();
    let (Storage::Cpu(c), Some((a, b))) = (&*st, l.contiguous_offsets()) else {
        return Ok(None);
    };
    Ok(Some(f(&c.as_slice::<f32>()?[a..b])))
}

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

/// `y = x · Wᵀ (+ b)` with `W` kept in the checkpoint layout `[out, in]`; several projections
/// of the same input may be concatenated into one. Products with few rows of `x` on the CPU in
/// f32 use [`skinny_matmul`]; the rest use candle's GEMM, on the CPU in f32 in the operand
/// order that [`weight_major`] picks for the shape.
#[derive(Debug, Clone)]
pub struct Linear {
    w: Tensor,
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
        let w = if ws.len() == 1 {
            ws.remove(0).contiguous()?
        } else {
            Tensor::cat(&ws, 0)?
        };
        let bias = if bs.is_empty() {
            None
        } else {
            Some(Tensor::cat(&bs, 0)?)
        };
        Ok(Linear { w, bias })
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

    /// A layer from a weight `[out, in]` already loaded (the tied LM head).
    pub fn from_weight(w: Tensor) -> Self {
        Linear { w, bias: None }
    }

    /// Applies the layer to `x` `[T, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match self.skinny(x)? {
            Some(y) => y,
            None => self.gemm(x)?,
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// `x · Wᵀ` through candle's GEMM.
    fn gemm(&self, x: &Tensor) -> Result<Tensor> {
        let (n, k) = self.w.dims2()?;
        let f32_host = self.w.device().is_cpu() && self.w.dtype() == DType::F32;
        if f32_host && weight_major(x.dim(0)?, k, n) {
            Ok(self.w.matmul(&x.t()?)?.t()?.contiguous()?)
        } else {
            Ok(x.matmul(&self.w.t()?)?)
        }
    }

    /// The product through [`skinny_matmul`] when it applies.
    fn skinny(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let m = x.dim(0)?;
        if m == 0
            || m > MAX_ROWS
            || !self.w.device().is_cpu()
            || self.w.dtype() != DType::F32
            || x.dtype() != DType::F32
        {
            return Ok(None);
        }
        let x = x.contiguous()?;
        let (n, k) = self.w.dims2()?;
        let y = {
            let (xs, xl) = x.storage_and_layout();
            let (ws, wl) = self.w.storage_and_layout();
            let (Storage::Cpu(xc), Storage::Cpu(wc)) = (&*xs, &*ws) else {
                return Ok(None);
            };
            let (Some((x0, x1)), Some((w0, w1))) =
                (xl.contiguous_offsets(), wl.contiguous_offsets())
            else {
                return Ok(None);
            };
            skinny_matmul(
                &xc.as_slice::<f32>()?[x0..x1],
                m,
                k,
                &wc.as_slice::<f32>()?[w0..w1],
                n,
            )
        };
        Ok(Some(Tensor::from_vec(y, (m, n), &Device::Cpu)?))
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
        let rows = gu.dim(0)?;
        if let Some(h) = with_cpu_f32(&gu, |v| silu_mul(v, rows, self.inter))? {
            return self
                .down
                .forward(&Tensor::from_vec(h, (rows, self.inter), &Device::Cpu)?);
        }
        let g = gu.narrow(1, 0, self.inter)?;
        let u = gu.narrow(1, self.inter, self.inter)?;
        let h = (g.silu()? * u)?;
        self.down.forward(&h)
    }
}

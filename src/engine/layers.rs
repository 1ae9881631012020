//! Building blocks shared by every family: RMS norm, linear layers (with fused projections,
//! packed for the CPU's f32 GEMM where it runs), and the gated SiLU MLP used by dense layers,
//! routed and shared experts.

use crate::backend::{host_f32, packs_weights, with_cpu_f32, with_cpu_f32_all};
use crate::error::Result;
use candle_core::{DType, Device, Storage, Tensor};
use moecap_kernels::packed::PackedMatrix;
use moecap_kernels::{add_rms_norm, rms_norm, silu_mul, skinny_matmul, weight_major, MAX_ROWS};

/// RMSNorm with a learned scale.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// A norm with scale `weight` `[size]`.
    pub fn new(weight: Tensor, eps: f64) -> Self {
        RmsNorm {
            weight,
            eps: eps as f32,
        }
    }

    /// Normalises over the last dimension (on the host in f32 by the kernels' [`rms_norm`]).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        let host = with_cpu_f32_all(&[&x, &self.weight], |v| rms_norm(v[0], v[1], self.eps))?;
        if let Some(y) = host {
            return Ok(Tensor::from_vec(y, x.shape(), x.device())?);
        }
        Ok(candle_nn::ops::rms_norm(&x, &self.weight, self.eps)?)
    }

    /// A residual connection and this norm after it: `(x + a, norm(x + a))` (in one pass on
    /// the host in f32, [`add_rms_norm`]).
    pub fn add_forward(&self, x: &Tensor, a: &Tensor) -> Result<(Tensor, Tensor)> {
        let (x, a) = (x.contiguous()?, a.contiguous()?);
        if x.shape() == a.shape() {
            let host = with_cpu_f32_all(&[&x, &a, &self.weight], |v| {
                add_rms_norm(v[0], v[1], v[2], self.eps)
            })?;
            if let Some((s, n)) = host {
                let dev = x.device();
                return Ok((
                    Tensor::from_vec(s, x.shape(), dev)?,
                    Tensor::from_vec(n, x.shape(), dev)?,
                ));
            }
        }
        let s = (x + a)?;
        let n = self.forward(&s)?;
        Ok((s, n))
    }
}

/// `y = x · Wᵀ (+ b)` for `W` `[out, in]`; several projections of the same input may be
/// concatenated into one. On the CPU in f32, where the CPU has AVX-512, `W` is packed once at
/// load ([`PackedMatrix`]) and every product goes through the packed GEMM. Otherwise `W` keeps
/// the checkpoint layout: on the CPU in f32 products with few rows of `x` use
/// [`skinny_matmul`] and the rest candle's GEMM in the operand order that [`weight_major`]
/// picks; on other devices and dtypes, candle's matmul.
#[derive(Debug, Clone)]
pub struct Linear {
    w: Weight,
    bias: Option<Tensor>,
}

/// How a [`Linear`] keeps its weight.
#[derive(Debug, Clone)]
enum Weight {
    /// Packed for the CPU's f32 GEMM.
    Packed(PackedMatrix),
    /// The checkpoint layout `[out, in]`.
    Plain(Tensor),
}

impl Weight {
    /// Packs `w` when the packed GEMM applies to it.
    fn new(w: Tensor) -> Result<Self> {
        if !packs_weights(w.device(), w.dtype()) {
            return Ok(Weight::Plain(w));
        }
        let (n, k) = w.dims2()?;
        let p = with_cpu_f32(&w, |v| PackedMatrix::new(v, n, k))?;
        Ok(match p {
            Some(p) => Weight::Packed(p),
            None => Weight::Plain(w),
        })
    }
}

impl Linear {
    /// Projections of the same input, concatenated into one: each `(weight [rows, in], bias)`.
    pub fn fused(parts: Vec<(Tensor, Option<Tensor>)>) -> Result<Self> {
        let (mut ws, bs): (Vec<Tensor>, Vec<Option<Tensor>>) = parts.into_iter().unzip();
        let bs: Vec<Tensor> = bs.into_iter().flatten().collect();
        let w = Weight::new(if ws.len() == 1 {
            ws.remove(0).contiguous()?
        } else {
            Tensor::cat(&ws, 0)?
        })?;
        let bias = if bs.is_empty() {
            None
        } else {
            Some(Tensor::cat(&bs, 0)?)
        };
        Ok(Linear { w, bias })
    }

    /// A layer from a weight `[out, in]` already loaded (the LM head; a tied one is packed as a
    /// copy, the embedding keeps its own layout).
    pub fn from_weight(w: Tensor) -> Result<Self> {
        Ok(Linear {
            w: Weight::new(w.contiguous()?)?,
            bias: None,
        })
    }

    /// Applies the layer to `x` `[T, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.w {
            Weight::Packed(p) => Self::packed(p, x)?,
            Weight::Plain(w) => match Self::skinny(w, x)? {
                Some(y) => y,
                None => Self::gemm(w, x)?,
            },
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// `x · Wᵀ` through the packed GEMM.
    fn packed(p: &PackedMatrix, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        let m = x.dim(0)?;
        let y = with_cpu_f32(&x, |v| p.matmul(v, m))?.ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "a packed CPU weight got an input on {:?}",
                x.device()
            ))
        })?;
        Ok(Tensor::from_vec(y, (m, p.rows()), &Device::Cpu)?)
    }

    /// `x · Wᵀ` through candle's GEMM.
    fn gemm(w: &Tensor, x: &Tensor) -> Result<Tensor> {
        let (n, k) = w.dims2()?;
        if host_f32(w.device(), w.dtype()) && weight_major(x.dim(0)?, k, n) {
            Ok(w.matmul(&x.t()?)?.t()?.contiguous()?)
        } else {
            Ok(x.matmul(&w.t()?)?)
        }
    }

    /// The product through [`skinny_matmul`] when it applies.
    fn skinny(w: &Tensor, x: &Tensor) -> Result<Option<Tensor>> {
        let m = x.dim(0)?;
        if m == 0 || m > MAX_ROWS || !host_f32(w.device(), w.dtype()) || x.dtype() != DType::F32 {
            return Ok(None);
        }
        let x = x.contiguous()?;
        let (n, k) = w.dims2()?;
        let y = {
            let (xs, xl) = x.storage_and_layout();
            let (ws, wl) = w.storage_and_layout();
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
    /// An MLP from its gate/up projection (the two fused, gate first, each `inter` wide) and its
    /// down projection.
    pub fn new(gate_up: Linear, down: Linear, inter: usize) -> Self {
        Mlp {
            gate_up,
            down,
            inter,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed GEMM (where this CPU runs it) and the checkpoint-layout paths (the skinny
    /// kernel up to `MAX_ROWS` rows, candle's GEMM in either operand order above) agree, with a
    /// bias, on the row counts each path takes.
    #[test]
    fn every_weight_layout_gives_the_same_product() -> Result<()> {
        let (n, k) = (130, 96);
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        let bias = Some(Tensor::randn(0f32, 1.0, n, &dev)?);
        let plain = Linear {
            w: Weight::Plain(w.clone()),
            bias: bias.clone(),
        };
        let chosen = Linear {
            w: Weight::new(w.clone())?,
            bias,
        };
        assert_eq!(
            matches!(chosen.w, Weight::Packed(_)),
            moecap_kernels::packed::supported(),
            "f32 CPU weights are packed exactly where the packed GEMM runs"
        );
        for m in [1, 5, MAX_ROWS, MAX_ROWS + 1, 200, 600] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            let reference = x
                .matmul(&w.t()?)?
                .broadcast_add(plain.bias.as_ref().expect("bias"))?;
            for (name, l) in [("plain", &plain), ("chosen", &chosen)] {
                let y = l.forward(&x)?;
                assert_eq!(y.dims(), &[m, n]);
                let err = (y - &reference)?
                    .abs()?
                    .flatten_all()?
                    .max(0)?
                    .to_scalar::<f32>()?;
                assert!(err < 1e-4, "{name} layout, {m} rows: max error {err}");
            }
        }
        Ok(())
    }
}

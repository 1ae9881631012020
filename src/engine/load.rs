//! Loading one model's blocks: a [`Loader`] holds what every block constructor needs (the
//! descriptor, its tensor names, the weights, the run's dtype and device) and builds the shared
//! building blocks from checkpoint tensors, checking each shape.

use super::layers::{Linear, Mlp, RmsNorm};
use super::weights::WeightStore;
use crate::error::Result;
use crate::model::descriptor::ModelDesc;
use crate::model::naming::{Names, Proj};
use candle_core::{DType, Device, Tensor};

/// A projection to load: weight name, bias name (if biased), output rows.
pub type Part = (String, Option<String>, usize);

/// The context every block of a model is loaded in.
pub struct Loader<'a> {
    /// The model.
    pub desc: &'a ModelDesc,
    /// Its tensor names.
    pub names: Names<'a>,
    /// Where the weights come from.
    pub weights: &'a WeightStore,
    /// The run's dtype.
    pub dtype: DType,
    /// The run's device.
    pub device: &'a Device,
}

impl<'a> Loader<'a> {
    /// A loader for `desc` from `weights`, converting to `dtype` on `device`.
    pub fn new(
        desc: &'a ModelDesc,
        weights: &'a WeightStore,
        dtype: DType,
        device: &'a Device,
    ) -> Self {
        Loader {
            desc,
            names: Names::new(desc),
            weights,
            dtype,
            device,
        }
    }

    /// A tensor of `shape` in the run's dtype on its device.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.weights.get(name, shape, self.dtype, self.device)
    }

    /// A tensor of `shape` as f32 values on the host (for the router's selection bias).
    pub fn host_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Ok(self
            .weights
            .get(name, shape, DType::F32, &Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    /// An RMS norm of `size` with epsilon `eps`.
    pub fn norm(&self, name: &str, size: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm::new(self.tensor(name, &[size])?, eps))
    }

    /// Projections reading the same input of size `inp`, fused into one.
    pub fn fused(&self, parts: &[Part], inp: usize) -> Result<Linear> {
        let loaded = parts
            .iter()
            .map(|(name, bias, rows)| {
                Ok((
                    self.tensor(name, &[*rows, inp])?,
                    bias.as_deref()
                        .map(|b| self.tensor(b, &[*rows]))
                        .transpose()?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Linear::fused(loaded)
    }

    /// One projection `[rows, inp]` without bias.
    pub fn linear(&self, name: &str, rows: usize, inp: usize) -> Result<Linear> {
        self.fused(&[(name.to_string(), None, rows)], inp)
    }

    /// A gated MLP `hidden → inter → hidden` whose projections are named by `name(proj)` (and
    /// `bias(proj)` if biased).
    pub fn mlp(
        &self,
        name: impl Fn(Proj) -> String,
        bias: Option<&dyn Fn(Proj) -> String>,
        hidden: usize,
        inter: usize,
    ) -> Result<Mlp> {
        let b = |p: Proj| bias.map(|f| f(p));
        let gate_up = self.fused(
            &[
                (name(Proj::Gate), b(Proj::Gate), inter),
                (name(Proj::Up), b(Proj::Up), inter),
            ],
            hidden,
        )?;
        let down = self.fused(&[(name(Proj::Down), b(Proj::Down), hidden)], inter)?;
        Ok(Mlp::new(gate_up, down, inter))
    }
}

//! Loading one model's blocks: a [`Loader`] holds what every block constructor needs (the
//! descriptor, its tensor names, the shape of every tensor from the model's tensor plan, the
//! weights, the run's dtype and device) and builds the shared building blocks from checkpoint
//! tensors, checking each against its planned shape.

use super::layers::{Linear, Mlp, RmsNorm};
use super::weights::WeightStore;
use crate::error::{Error, Result};
use crate::model::descriptor::ModelDesc;
use crate::model::naming::{Names, Proj};
use crate::model::plan::tensor_plan;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

/// A projection to load: weight name, bias name (if biased).
pub type Part = (String, Option<String>);

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
    /// Every tensor's planned shape.
    shapes: HashMap<String, Vec<usize>>,
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
            shapes: tensor_plan(desc)
                .into_iter()
                .map(|t| (t.name, t.shape))
                .collect(),
        }
    }

    /// The planned shape of a tensor.
    fn shape(&self, name: &str) -> Result<&[usize]> {
        self.shapes.get(name).map(Vec::as_slice).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: the engine asked for `{name}`, which is not in the model's tensor plan",
                self.desc.source
            ))
        })
    }

    /// A tensor in the run's dtype on its device.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        self.weights
            .get(name, self.shape(name)?, self.dtype, self.device)
    }

    /// A tensor as f32 values on the host (for the router's selection bias).
    pub fn host_f32(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self
            .weights
            .get(name, self.shape(name)?, DType::F32, &Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    /// An RMS norm with epsilon `eps`.
    pub fn norm(&self, name: &str, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm::new(self.tensor(name)?, eps))
    }

    /// Projections reading the same input, fused into one.
    pub fn fused(&self, parts: &[Part]) -> Result<Linear> {
        let loaded = parts
            .iter()
            .map(|(name, bias)| {
                Ok((
                    self.tensor(name)?,
                    bias.as_deref().map(|b| self.tensor(b)).transpose()?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Linear::fused(loaded)
    }

    /// One projection without bias.
    pub fn linear(&self, name: &str) -> Result<Linear> {
        self.fused(&[(name.to_string(), None)])
    }

    /// A gated MLP whose projections are named by `name(proj)` (and `bias(proj)` if biased).
    pub fn mlp(
        &self,
        name: impl Fn(Proj) -> String,
        bias: Option<&dyn Fn(Proj) -> String>,
    ) -> Result<Mlp> {
        let b = |p: Proj| bias.map(|f| f(p));
        let gate = name(Proj::Gate);
        let inter = self.shape(&gate)?[0];
        let gate_up = self.fused(&[(gate, b(Proj::Gate)), (name(Proj::Up), b(Proj::Up))])?;
        let down = self.fused(&[(name(Proj::Down), b(Proj::Down))])?;
        Ok(Mlp::new(gate_up, down, inter))
    }
}

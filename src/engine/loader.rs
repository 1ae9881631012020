//! Loading a resolved checkpoint into the engine: its safetensors files, or the seeded random
//! weights of a synthetic model.

use super::model::Model;
use super::synthetic::synthetic_weights;
use super::weights::WeightStore;
use crate::error::Result;
use crate::machine::memory::check_host_fits;
use crate::model::params::model_params;
use crate::model::source::{Checkpoint, Weights};
use candle_core::{DType, Device};

/// Loads a checkpoint's model on `device` in `dtype`; `seed` seeds synthetic weights.
///
/// On the CPU the weights are held in host memory in `dtype` (synthetic ones are first drawn
/// in f32), so a model that cannot fit is refused before anything is allocated.
pub fn load_model(ck: &Checkpoint, device: &Device, dtype: DType, seed: u64) -> Result<Model> {
    let weights = ck.weights()?;
    if device.is_cpu() {
        let params = model_params(&ck.desc).total() as f64;
        let per = dtype.size_in_bytes() as f64
            + if matches!(weights, Weights::Synthetic) {
                4.0
            } else {
                0.0
            };
        check_host_fits(
            &format!("loading {}", ck.desc.display_name()),
            params * per,
            &format!("{:.3} G parameters × {per} bytes", params / 1e9),
        )?;
    }
    let w = match weights {
        Weights::Synthetic => synthetic_weights(&ck.desc, seed)?,
        Weights::Files(dir) => WeightStore::open(&dir)?,
    };
    Model::load(ck.desc.clone(), &w, dtype, device)
}

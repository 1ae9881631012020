//! Loading a resolved checkpoint into the engine: its safetensors files, or the seeded random
//! weights of a synthetic model.

use super::model::Model;
use super::synthetic::synthetic_weights;
use super::weights::WeightStore;
use crate::error::Result;
use crate::model::source::{Checkpoint, Weights};
use candle_core::{DType, Device};

/// Loads a checkpoint's model on `device` in `dtype`; `seed` seeds synthetic weights.
pub fn load_model(ck: &Checkpoint, device: &Device, dtype: DType, seed: u64) -> Result<Model> {
    let w = match ck.weights()? {
        Weights::Synthetic => synthetic_weights(&ck.desc, seed)?,
        Weights::Files(dir) => WeightStore::open(&dir)?,
    };
    Model::load(ck.desc.clone(), &w, dtype, device)
}

//! Weights of the built-in synthetic models: seeded random values for every tensor of the
//! model's plan, built in memory, so that the engine, the tests and the benchmarks run without
//! downloading anything.

use super::weights::WeightStore;
use crate::error::Result;
use crate::machine::memory::check_host_fits;
use crate::model::descriptor::ModelDesc;
use crate::model::tensors::expected_tensors;
use crate::rng::SplitMix64;
use candle_core::{Device, Tensor};
use std::collections::HashMap;

/// Seeded random weights for every tensor of `desc`: norms near 1, matrices uniform with
/// variance `1/fan_in` (so activations keep their scale through the layers), router gates
/// sharper so that routing is far from uniform ties.
///
/// All of them are held in memory at once; a model that cannot fit is refused first.
pub fn random_tensors(desc: &ModelDesc, seed: u64) -> Result<HashMap<String, Tensor>> {
    let expected = expected_tensors(desc);
    let elements: f64 = expected
        .iter()
        .map(|(_, s)| s.iter().map(|&d| d as f64).product::<f64>())
        .sum();
    check_host_fits(
        &format!("drawing random weights for {}", desc.architecture),
        elements * 4.0,
        &format!("{:.3} G parameters × 4 bytes", elements / 1e9),
    )?;
    let mut out = HashMap::new();
    for (i, (name, shape)) in expected.into_iter().enumerate() {
        let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let n: usize = shape.iter().product();
        let norm = shape.len() == 1 && name.contains("norm");
        let (center, half) = if norm {
            (1.0f32, 0.1f32)
        } else {
            let fan_in = *shape.last().unwrap_or(&1) as f32;
            let mut a = (3.0 / fan_in).sqrt();
            if name.ends_with(".gate.weight") || name.ends_with("router.layer.weight") {
                a *= 4.0;
            }
            if name.contains("embed_tokens") {
                a = 1.0;
            }
            (0.0, a)
        };
        let data: Vec<f32> = (0..n)
            .map(|_| center + half * (2.0 * rng.next_f64() as f32 - 1.0))
            .collect();
        out.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
    }
    Ok(out)
}

/// A weight store of seeded random weights.
pub fn synthetic_weights(desc: &ModelDesc, seed: u64) -> Result<WeightStore> {
    Ok(WeightStore::from_tensors(
        random_tensors(desc, seed)?,
        &desc.source,
    ))
}

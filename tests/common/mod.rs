//! Helpers shared by the integration tests.

use candle_core::Tensor;

/// Largest absolute element-wise difference of two tensors of one shape.
pub fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("tensors of the same shape")
}

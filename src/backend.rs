//! Which path a computation takes on a device: f32 on the CPU runs moecap's own kernels (the
//! `moecap-kernels` crate) on the tensors' host memory; everything else runs through candle. The
//! one place that says so, for the engine and for the measured ceilings.

use candle_core::{DType, Device, Storage, Tensor};
use moecap_kernels::packed;

/// Whether work in `dtype` on `dev` runs on the host's own f32 kernels.
pub fn host_f32(dev: &Device, dtype: DType) -> bool {
    dev.is_cpu() && dtype == DType::F32
}

/// Whether f32 weights on `dev` are packed for the packed GEMM (a host f32 path on a CPU that
/// runs it at full speed).
pub fn packs_weights(dev: &Device, dtype: DType) -> bool {
    host_f32(dev, dtype) && packed::supported()
}

/// Runs `f` on the elements of `t` when `t` is a contiguous f32 tensor on the CPU (`None`
/// otherwise), without copying them.
pub fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<Option<R>> {
    if !host_f32(t.device(), t.dtype()) {
        return Ok(None);
    }
    let (st, l) = t.storage_and_layout();
    let (Storage::Cpu(c), Some((a, b))) = (&*st, l.contiguous_offsets()) else {
        return Ok(None);
    };
    Ok(Some(f(&c.as_slice::<f32>()?[a..b])))
}

/// Runs `f` on the elements of every tensor of `ts` at once when each is a contiguous f32
/// tensor on the CPU (`None` otherwise), without copying them.
pub fn with_cpu_f32_all<R>(
    ts: &[&Tensor],
    f: impl FnOnce(&[&[f32]]) -> R,
) -> candle_core::Result<Option<R>> {
    if ts.iter().any(|t| !host_f32(t.device(), t.dtype())) {
        return Ok(None);
    }
    let held: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(held.len());
    for (st, l) in &held {
        let (Storage::Cpu(c), Some((a, b))) = (&**st, l.contiguous_offsets()) else {
            return Ok(None);
        };
        slices.push(&c.as_slice::<f32>()?[a..b]);
    }
    Ok(Some(f(&slices)))
}

/// Whether every element of `t` is finite (no NaN, no ±∞). Host f32 tensors are read in place;
/// elsewhere `t · 0` is summed on the device, which is 0 exactly when every element is finite.
pub fn all_finite(t: &Tensor) -> candle_core::Result<bool> {
    if let Some(ok) = with_cpu_f32(t, moecap_kernels::all_finite)? {
        return Ok(ok);
    }
    let zeroed = t.affine(0.0, 0.0)?.to_dtype(DType::F32)?;
    Ok(zeroed.sum_all()?.to_scalar::<f32>()? == 0.0)
}

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

/// [`all_finite`] over the rows `rows` of a matrix `t` only.
pub fn rows_finite(t: &Tensor, rows: &[usize]) -> candle_core::Result<bool> {
    let width = t.dim(1)?;
    let host = with_cpu_f32(t, |v| {
        rows.iter()
            .all(|&r| moecap_kernels::all_finite(&v[r * width..(r + 1) * width]))
    })?;
    if let Some(ok) = host {
        return Ok(ok);
    }
    let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let picked = t.index_select(&Tensor::from_vec(ids, rows.len(), t.device())?, 0)?;
    all_finite(&picked)
}

#[cfg(test)]
mod finite_tests {
    use super::*;

    #[test]
    fn rows_are_checked_where_asked() {
        let mut v = vec![1f32; 12];
        v[5] = f32::NAN; // row 1 of a 3 × 4 matrix
        let t = Tensor::from_vec(v, (3, 4), &Device::Cpu).unwrap();
        assert!(rows_finite(&t, &[0, 2]).unwrap());
        assert!(!rows_finite(&t, &[1]).unwrap());
        assert!(!all_finite(&t).unwrap());
        // the device path (here a non-f32 tensor, which the host path does not take)
        let h = t.to_dtype(DType::F16).unwrap();
        assert!(rows_finite(&h, &[0, 2]).unwrap());
        assert!(!rows_finite(&h, &[1]).unwrap());
    }
}

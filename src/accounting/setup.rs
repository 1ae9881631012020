//! A device set-up for analysis: a hardware-table row, how many devices hold the weights, the
//! weight and KV-cache formats and the cache kind; its spec peaks and the per-pass accounting of
//! a model on it. `roofline` and `metrics` work against one.

use super::cost::{Accountant, Precision};
use crate::error::Result;
use crate::machine::hardware::{Hardware, Peaks};
use crate::model::descriptor::ModelDesc;
use crate::model::dtype::DType;
use crate::records::KvCacheKind;

/// Devices and formats of an analysis.
#[derive(Debug, Clone)]
pub struct DeviceSetup {
    /// The hardware-table row.
    pub hw: Hardware,
    /// Devices holding the weights.
    pub devices: u32,
    /// Weight format.
    pub dtype: DType,
    /// KV-cache format.
    pub kv_dtype: DType,
    /// What the KV cache stores.
    pub kv_cache: KvCacheKind,
}

impl DeviceSetup {
    /// The spec peaks of all devices together for the weight dtype.
    pub fn peaks(&self) -> Result<Peaks> {
        let n = self.devices as f64;
        Ok(Peaks {
            bandwidth_bytes_per_s: n * self.hw.bandwidth_bytes_per_s(),
            flops_per_s: n * self.hw.peak_flops(self.dtype)?,
        })
    }

    /// The per-pass accounting of `desc` with these weight and cache formats.
    pub fn accountant<'a>(&self, desc: &'a ModelDesc) -> Accountant<'a> {
        Accountant::new(
            desc,
            Precision {
                weight: self.dtype.bytes(),
                kv: self.kv_dtype.bytes(),
            },
            self.kv_cache,
        )
    }

    /// Memory of all devices, bytes (none when the row states none).
    pub fn memory_bytes(&self) -> Option<f64> {
        self.hw.memory_gb.map(|m| m * 1e9 * self.devices as f64)
    }
}

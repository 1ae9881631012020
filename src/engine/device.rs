//! The engine's device (`cpu`, `cuda`, `cuda:N`) and dtype (f32, f16, bf16) from their names.

use crate::error::{Error, Result};
use candle_core::{DType, Device};

/// Parses `--device`. A CUDA request in a build without the `cuda` feature, or with no usable
/// GPU, is an error that says so.
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim();
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match s {
        "cuda" => 0,
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => return Err(Error::Invalid(format!("`{s}` is not cpu, cuda or cuda:N"))),
        },
    };
    if !cfg!(feature = "cuda") {
        return Err(Error::Invalid(format!(
            "{s}: this moecap was built without CUDA; rebuild it with the `cuda` feature (`cargo build --release --features cuda`) or run on the cpu"
        )));
    }
    Device::new_cuda(ordinal)
        .map_err(|e| Error::Invalid(format!("{s}: no usable CUDA device: {e}")))
}

/// Parses the engine's `--dtype` (f32, f16, bf16); default f32 on CPU, bf16 on CUDA.
pub fn parse_engine_dtype(s: Option<&str>, device: &Device) -> Result<DType> {
    match s {
        None => Ok(if device.is_cpu() {
            DType::F32
        } else {
            DType::BF16
        }),
        Some("f32" | "fp32" | "float32") => Ok(DType::F32),
        Some("f16" | "fp16" | "float16") => Ok(DType::F16),
        Some("bf16" | "bfloat16") => Ok(DType::BF16),
        Some(other) => Err(Error::Invalid(format!(
            "the engine runs f32, f16 or bf16, not `{other}`"
        ))),
    }
}

//! Numeric formats of weights, caches and arithmetic: their names on the command line and in
//! configs, and their size in bytes.

use crate::error::{Error, Result};
use serde::Serialize;

/// A numeric format of weights, KV cache or arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE float32.
    F32,
    /// TensorFloat-32 (float32 storage, reduced-precision tensor-core arithmetic).
    Tf32,
    /// bfloat16.
    Bf16,
    /// float16.
    F16,
    /// 8-bit float (e4m3 or e5m2).
    Fp8,
    /// 8-bit integer.
    Int8,
    /// 4-bit integer (GPTQ/AWQ style packed weights).
    Int4,
}

impl DType {
    /// The format a checkpoint stores its weights in: fp8 or integer bits when its
    /// `quantization_config` says so, else `torch_dtype`, else bf16.
    pub fn of_checkpoint(desc: &crate::model::descriptor::ModelDesc) -> Self {
        if let Some(q) = &desc.quantization {
            match (q.method.as_str(), q.bits) {
                ("fp8", _) => return DType::Fp8,
                (_, Some(8)) => return DType::Int8,
                (_, Some(4)) => return DType::Int4,
                _ => {}
            }
        }
        desc.torch_dtype
            .as_deref()
            .and_then(DType::parse)
            .unwrap_or(DType::Bf16)
    }

    /// The table's format of an engine dtype (f32, f16, bf16).
    pub fn of_engine(dt: candle_core::DType) -> Self {
        match dt {
            candle_core::DType::BF16 => DType::Bf16,
            candle_core::DType::F16 => DType::F16,
            _ => DType::F32,
        }
    }

    /// All formats, in table order.
    pub const ALL: [DType; 7] = [
        DType::F32,
        DType::Tf32,
        DType::Bf16,
        DType::F16,
        DType::Fp8,
        DType::Int8,
        DType::Int4,
    ];

    /// Parses the spellings used by moecap's flags, Hugging Face configs (`torch_dtype`, `dtype`)
    /// and the MoE-CAP harness.
    pub fn parse(s: &str) -> Option<DType> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.strip_prefix("torch.").unwrap_or(&t);
        Some(match t {
            "f32" | "fp32" | "float32" | "float" => DType::F32,
            "tf32" => DType::Tf32,
            "bf16" | "bfloat16" => DType::Bf16,
            "f16" | "fp16" | "float16" | "half" => DType::F16,
            "fp8" | "f8" | "float8" | "fp8_e4m3" | "float8_e4m3fn" | "e4m3" | "fp8_e5m2"
            | "float8_e5m2" | "e5m2" => DType::Fp8,
            "int8" | "i8" | "w8a8" => DType::Int8,
            "int4" | "i4" | "awq" | "gptq" | "fp4" | "w4a16" => DType::Int4,
            _ => return None,
        })
    }

    /// Parses a flag value, with an error naming the flag.
    pub fn parse_flag(flag: &str, s: &str) -> Result<DType> {
        DType::parse(s).ok_or_else(|| {
            Error::Invalid(format!(
                "{flag}: unknown dtype `{s}`; expected one of f32, tf32, bf16, f16, fp8, int8, int4"
            ))
        })
    }

    /// Bytes per element when stored (TF32 is stored as float32).
    pub fn bytes(self) -> f64 {
        match self {
            DType::F32 | DType::Tf32 => 4.0,
            DType::Bf16 | DType::F16 => 2.0,
            DType::Fp8 | DType::Int8 => 1.0,
            DType::Int4 => 0.5,
        }
    }

    /// The canonical short name.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::Tf32 => "tf32",
            DType::Bf16 => "bf16",
            DType::F16 => "f16",
            DType::Fp8 => "fp8",
            DType::Int8 => "int8",
            DType::Int4 => "int4",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_config_and_flag_spellings() {
        assert_eq!(DType::parse("bfloat16"), Some(DType::Bf16));
        assert_eq!(DType::parse("torch.float16"), Some(DType::F16));
        assert_eq!(DType::parse("FP32"), Some(DType::F32));
        assert_eq!(DType::parse("float8_e4m3fn"), Some(DType::Fp8));
        assert_eq!(DType::parse("gptq"), Some(DType::Int4));
        assert_eq!(DType::parse("q9"), None);
        assert_eq!(DType::Int4.bytes(), 0.5);
        assert!(DType::parse_flag("--dtype", "nope")
            .unwrap_err()
            .to_string()
            .contains("--dtype"));
    }
}

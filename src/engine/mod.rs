//! The instrumented inference engine on candle: loading checkpoints (Hugging Face layout or
//! built-in synthetic models), the decoder shared by all families, batched prefill/decode with a
//! per-sequence KV cache, and the probe that records every pass.

pub mod attention;
pub mod cache;
pub mod device;
pub mod generate;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod loader;
pub mod mla;
pub mod model;
pub mod moe;
pub mod packed;
pub mod probe;
pub mod rope;
pub mod router;
pub mod sampling;
pub mod synthetic;
pub mod text;
pub mod weights;

pub use device::parse_device;
pub use model::{Engine, LogitsMode, Sequence};

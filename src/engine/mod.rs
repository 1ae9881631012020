//! The instrumented inference engine on candle: loading checkpoints (Hugging Face layout or
//! built-in synthetic models), the decoder shared by all families, batched prefill/decode with a
//! per-sequence KV cache, and the probe that records every pass.

pub mod attention;
pub mod cache;
pub mod device;
pub mod experts;
pub mod generate;
pub mod io;
pub mod layers;
pub mod load;
pub mod loader;
pub mod mla;
pub mod model;
pub mod moe;
pub mod probe;
pub mod rope;
pub mod router;
pub mod run;
pub mod sampling;
pub mod synthetic;
pub mod weights;

pub use device::parse_device;
pub use run::{Engine, LogitsMode, Sequence};

//! moecap: a benchmarker for Mixture-of-Experts language models.
//!
//! The data flows one way, through stages that import only the stages below them
//! (docs/ARCHITECTURE.md draws them; `tests/architecture.rs` checks the direction):
//!
//! 1. [`model`]: a checkpoint's `config.json` becomes a [`model::descriptor::ModelDesc`]; the
//!    tensor plan, parameter counts and the tensor check derive from it; `--model` resolves once
//!    into a [`model::source::Checkpoint`].
//! 2. [`records`]: the one per-pass record schema; [`machine`]: hardware table, detection,
//!    measured ceilings.
//! 3. [`engine`]: runs the checkpoint on candle and writes one record per forward pass;
//!    [`accounting`]: turns records into bytes, FLOPs and utilisation; [`data`]: evaluation data
//!    on disk; [`upcycle`]: real-weight MoEs from dense GGUF models; [`offload`]: routing
//!    analytics and the expert-cache policies replayed on traces.
//! 4. [`bench`] and [`eval`]: the two pipelines, from options to a report.
//! 5. [`export`]: one exporter per output format.
//! 6. [`report`]: finished run folders read back, compared, and the CAP report page.
//!
//! The CPU kernels live in the `moecap-kernels` crate (`kernels/`). `docs/metrics.md` says which
//! function computes which number.

pub mod accounting;
pub mod backend;
pub mod bench;
pub mod data;
pub mod engine;
pub mod error;
pub mod eval;
pub mod export;
pub mod files;
pub mod machine;
pub mod model;
pub mod offload;
pub mod records;
pub mod report;
pub mod rng;
pub mod upcycle;

pub use error::{Error, Result};

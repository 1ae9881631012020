//! moecap: a benchmarker for Mixture-of-Experts language models.
//!
//! The data flows one way: a checkpoint's `config.json` becomes a [`descriptor::ModelDesc`]
//! ([`config`], [`presets`]); [`params`] counts its parameters and [`tensors`] checks them against
//! real safetensors headers; the [`engine`] runs the checkpoint and its probe writes one record
//! per forward pass; [`accounting`] turns one pass into bytes and FLOPs;
//! [`records`] reads per-pass records; [`metrics`] (exact) and [`compat`] (the published
//! MoE-CAP code's arithmetic) turn records into utilisation against the [`hardware`] table;
//! [`roofline`] gives analytic bounds. `docs/metrics.md` says which function computes which number.

pub mod accounting;
pub mod bench;
pub mod ceilings;
pub mod compat;
pub mod config;
pub mod data;
pub mod descriptor;
pub mod detect;
pub mod dtype;
pub mod engine;
pub mod error;
pub mod eval;
pub mod export;
pub mod hardware;
pub mod metrics;
pub mod naming;
pub mod params;
pub mod presets;
pub mod records;
pub mod roofline;
pub mod stats;
pub mod table;
pub mod tensors;
pub mod upcycle;

pub use error::{Error, Result};

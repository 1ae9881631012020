//! From passes to numbers: the bytes and FLOPs of one pass ([`cost`], `docs/metrics.md` §2),
//! utilisation over records ([`metrics`]: S-MBU, S-MFU, MBU, MFU; [`compat`]: the published
//! MoE-CAP code's arithmetic), analytic bounds ([`roofline`]) on a device set-up ([`setup`]),
//! and the statistics every report uses ([`stats`]).

pub mod compat;
pub mod cost;
pub mod deployment;
pub mod metrics;
pub mod money;
pub mod offload;
pub mod offload_cost;
pub mod roofline;
pub mod setup;
pub mod stats;

pub use cost::{
    kv_elements_per_token, kv_elements_per_token_layer, uniform_expected_experts, Accountant,
    PassCost, Precision,
};

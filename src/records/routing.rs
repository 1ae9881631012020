//! The routing trace of a bench run, `routing/POINT.jsonl`: per pass, every token's expert ids in
//! every MoE layer (`docs/records.md`), for offloading studies.

use super::Phase;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One MoE layer's choices in a routing line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingLayer {
    /// Experts per token.
    pub k: usize,
    /// Expert ids, `k` per token, best first; tokens in pass order (sequence by sequence).
    pub ids: Vec<u32>,
}

/// One line of `routing/ID.jsonl`: one pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingLine {
    /// Timed repetition, from 0.
    pub repetition: usize,
    /// Pass within the repetition, from 0 (0 is the prefill).
    pub pass: usize,
    /// `prefill` or `decode`.
    pub phase: Phase,
    /// Per sequence: tokens already cached.
    pub cached_tokens: Vec<u64>,
    /// Per sequence: tokens of this pass.
    pub new_tokens: Vec<u64>,
    /// Per MoE layer (checkpoint index as key).
    pub layers: BTreeMap<String, RoutingLayer>,
}

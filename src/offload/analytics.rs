//! Routing analytics of a trace, per MoE layer and phase: how evenly the experts are loaded
//! (tokens per expert, coefficient of variation, max/mean, Gini, dead experts, how many carry 90 %
//! of the load, normalised entropy), distinct experts per pass against the uniform expectation,
//! co-activation (pairs chosen by one token) as lift over a marginal-preserving shuffle, how well
//! one layer's experts predict the next layer's, and temporal locality over decode steps (LRU
//! stack distances, working sets). Definitions: docs/OFFLOAD.md.

use super::relations::{coactivation, predictability};
use super::sim::Layout;
use super::trace::{Trace, TracePass};
use crate::model::descriptor::uniform_expected_experts;
use crate::records::Phase;
use serde::Serialize;
use std::collections::BTreeMap;

/// Which passes to analyse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseFilter {
    /// Prompt passes.
    Prefill,
    /// Decode steps.
    Decode,
    /// Both.
    All,
}

impl PhaseFilter {
    fn keeps(self, p: Phase) -> bool {
        match self {
            PhaseFilter::All => true,
            PhaseFilter::Prefill => p == Phase::Prefill,
            PhaseFilter::Decode => p == Phase::Decode,
        }
    }

    /// Parses `prefill`, `decode` or `all`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prefill" => Some(PhaseFilter::Prefill),
            "decode" => Some(PhaseFilter::Decode),
            "all" => Some(PhaseFilter::All),
            _ => None,
        }
    }
}

/// Load balance of one MoE layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerLoad {
    /// Checkpoint layer index.
    pub layer: usize,
    /// Routed experts.
    pub experts: usize,
    /// Token→expert assignments.
    pub assignments: u64,
    /// Assignments per expert (the load histogram).
    pub load: Vec<u64>,
    /// Each expert's load over the ideal (assignments / experts).
    pub load_over_ideal: Vec<f64>,
    /// Standard deviation of the loads over their mean.
    pub cv: f64,
    /// Largest load over the mean (the padding a grouped GEMM pays).
    pub max_over_mean: f64,
    /// Gini coefficient of the loads (0: even, → 1: one expert takes all).
    pub gini: f64,
    /// Experts no token chose.
    pub dead: usize,
    /// Fewest experts that carry 90 % of the assignments.
    pub experts_for_90pct: usize,
    /// Entropy of the load distribution over `ln E` (1: uniform).
    pub entropy: f64,
    /// Mean distinct experts per pass.
    pub distinct_per_pass: f64,
    /// The uniform-routing expectation for the same passes.
    pub uniform_per_pass: f64,
}

/// Distinct experts per pass for passes of one size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistinctBySize {
    /// Phase of the passes.
    pub phase: Phase,
    /// Tokens per pass.
    pub tokens: usize,
    /// Passes of that size.
    pub passes: usize,
    /// Mean distinct experts per MoE layer.
    pub distinct: f64,
    /// The uniform-routing expectation.
    pub uniform: f64,
}

/// One pair of co-activated experts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    /// Lower expert id.
    pub a: u32,
    /// Higher expert id.
    pub b: u32,
    /// Tokens that chose both.
    pub observed: u64,
    /// Mean of the same over marginal-preserving shuffles.
    pub expected: f64,
    /// Observed over expected.
    pub lift: f64,
}

/// Co-activation of one MoE layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coactivation {
    /// Checkpoint layer index.
    pub layer: usize,
    /// The pairs with the highest lift (observed at least 5 times), best first.
    pub top: Vec<Pair>,
    /// The full lift matrix `E × E` (0 where nothing is expected), for the heatmap.
    #[serde(skip)]
    pub lift: Vec<Vec<f64>>,
}

/// How well a layer's experts predict the next MoE layer's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Predictability {
    /// The earlier layer.
    pub from: usize,
    /// The next MoE layer.
    pub to: usize,
    /// Tokens scored (the second half of the passes).
    pub tokens: u64,
    /// Share of the later layer's experts among the `k` most frequent successors of the earlier
    /// layer's (fitted on the first half of the passes).
    pub hit_rate: f64,
    /// The same for the later layer's `k` most frequent experts overall (no conditioning).
    pub baseline: f64,
}

/// Temporal locality of one MoE layer over decode steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Locality {
    /// Checkpoint layer index.
    pub layer: usize,
    /// LRU stack distances of the accesses (distinct other experts accessed since the last
    /// access of the same expert), bucketed: 0, 1, 2–3, 4–7, 8–15, 16–31, 32+, and first
    /// accesses (cold).
    pub reuse: [u64; 8],
    /// Mean distinct experts within windows of 1, 4, 16 and 64 decode steps.
    pub working_set: [Option<f64>; 4],
}

/// The labels of [`Locality::reuse`].
pub const REUSE_BUCKETS: [&str; 8] = ["0", "1", "2-3", "4-7", "8-15", "16-31", "32+", "cold"];

/// The windows of [`Locality::working_set`].
pub const WINDOWS: [usize; 4] = [1, 4, 16, 64];

/// Every analysis of a trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analytics {
    /// Where the trace came from.
    pub trace: String,
    /// The passes analysed.
    pub phase: PhaseFilter,
    /// Passes analysed.
    pub passes: usize,
    /// Whether expert counts came from the model (false: the largest id seen, plus one).
    pub experts_from_model: bool,
    /// Per MoE layer.
    pub layers: Vec<LayerLoad>,
    /// Distinct experts per pass by pass size.
    pub distinct: Vec<DistinctBySize>,
    /// Per MoE layer.
    pub coactivation: Vec<Coactivation>,
    /// Per consecutive pair of MoE layers.
    pub predictability: Vec<Predictability>,
    /// Per MoE layer, over decode steps.
    pub locality: Vec<Locality>,
}

/// Analyses `trace` (its passes of `phase`) for the MoE layers of `layout` with `top_k[i]`
/// experts per token.
pub fn analyse(
    trace: &Trace,
    layout: &Layout,
    top_k: &[usize],
    phase: PhaseFilter,
    experts_from_model: bool,
) -> Analytics {
    let passes: Vec<&TracePass> = trace.passes().filter(|p| phase.keeps(p.phase)).collect();
    let layers = layout
        .layers
        .iter()
        .enumerate()
        .map(|(pos, &l)| load(&passes, l, layout.experts[pos], top_k[pos]))
        .collect();
    let coactivation = layout
        .layers
        .iter()
        .enumerate()
        .map(|(pos, &l)| coactivation(&passes, l, layout.experts[pos]))
        .collect();
    let predictability = (0..layout.layers.len().saturating_sub(1))
        .map(|pos| predictability(&passes, layout, top_k, pos))
        .collect();
    let locality = layout.layers.iter().map(|&l| locality(trace, l)).collect();
    Analytics {
        trace: trace.source.clone(),
        phase,
        passes: passes.len(),
        experts_from_model,
        layers,
        distinct: distinct_by_size(&passes, layout, top_k),
        coactivation,
        predictability,
        locality,
    }
}

fn load(passes: &[&TracePass], layer: usize, e: usize, k: usize) -> LayerLoad {
    let mut load = vec![0u64; e];
    let (mut distinct, mut uniform, mut n) = (0.0, 0.0, 0.0);
    for p in passes {
        let Some(toks) = p.layers.get(&layer) else {
            continue;
        };
        for &id in toks.iter().flatten() {
            if let Some(x) = load.get_mut(id as usize) {
                *x += 1;
            }
        }
        distinct += p.distinct(layer).len() as f64;
        uniform += uniform_expected_experts(e, k, toks.len() as u64);
        n += 1.0;
    }
    let total: u64 = load.iter().sum();
    let mean = total as f64 / e.max(1) as f64;
    let var = load.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / e.max(1) as f64;
    let mut sorted = load.clone();
    sorted.sort_unstable();
    let gini = if total == 0 {
        0.0
    } else {
        let nn = e as f64;
        sorted
            .iter()
            .enumerate()
            .map(|(i, &x)| (2.0 * (i as f64 + 1.0) - nn - 1.0) * x as f64)
            .sum::<f64>()
            / (nn * total as f64)
    };
    let mut cum = 0u64;
    let mut for_90 = 0;
    for &x in sorted.iter().rev() {
        if total == 0 || cum as f64 >= 0.9 * total as f64 {
            break;
        }
        cum += x;
        for_90 += 1;
    }
    let entropy = if total == 0 || e < 2 {
        0.0
    } else {
        -load
            .iter()
            .filter(|&&x| x > 0)
            .map(|&x| {
                let p = x as f64 / total as f64;
                p * p.ln()
            })
            .sum::<f64>()
            / (e as f64).ln()
    };
    LayerLoad {
        layer,
        experts: e,
        assignments: total,
        load_over_ideal: load
            .iter()
            .map(|&x| if mean > 0.0 { x as f64 / mean } else { 0.0 })
            .collect(),
        cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
        max_over_mean: if mean > 0.0 {
            sorted.last().copied().unwrap_or(0) as f64 / mean
        } else {
            0.0
        },
        gini,
        dead: load.iter().filter(|&&x| x == 0).count(),
        experts_for_90pct: for_90,
        entropy,
        distinct_per_pass: if n > 0.0 { distinct / n } else { 0.0 },
        uniform_per_pass: if n > 0.0 { uniform / n } else { 0.0 },
        load,
    }
}

fn distinct_by_size(
    passes: &[&TracePass],
    layout: &Layout,
    top_k: &[usize],
) -> Vec<DistinctBySize> {
    let mut by: BTreeMap<(u8, usize), (usize, f64, f64, f64)> = BTreeMap::new();
    for p in passes {
        let key = (u8::from(p.phase == Phase::Decode), p.tokens());
        let s = by.entry(key).or_default();
        s.0 += 1;
        for (pos, &l) in layout.layers.iter().enumerate() {
            if p.layers.contains_key(&l) {
                s.1 += p.distinct(l).len() as f64;
                s.2 += uniform_expected_experts(layout.experts[pos], top_k[pos], p.tokens() as u64);
                s.3 += 1.0;
            }
        }
    }
    by.into_iter()
        .map(|((ph, tokens), (passes, d, u, n))| DistinctBySize {
            phase: if ph == 1 {
                Phase::Decode
            } else {
                Phase::Prefill
            },
            tokens,
            passes,
            distinct: if n > 0.0 { d / n } else { 0.0 },
            uniform: if n > 0.0 { u / n } else { 0.0 },
        })
        .collect()
}

fn bucket(d: usize) -> usize {
    match d {
        0 => 0,
        1 => 1,
        2..=3 => 2,
        4..=7 => 3,
        8..=15 => 4,
        16..=31 => 5,
        _ => 6,
    }
}

fn locality(trace: &Trace, layer: usize) -> Locality {
    let mut reuse = [0u64; 8];
    let mut ws_sum = [0.0f64; 4];
    let mut ws_n = [0u64; 4];
    for r in &trace.replays {
        let steps: Vec<Vec<u32>> = r
            .passes
            .iter()
            .filter(|p| p.phase == Phase::Decode && p.layers.contains_key(&layer))
            .map(|p| p.distinct(layer))
            .collect();
        // LRU stack: most recent first
        let mut stack: Vec<u32> = Vec::new();
        for u in &steps {
            for &x in u {
                match stack.iter().position(|&y| y == x) {
                    Some(d) => {
                        reuse[bucket(d)] += 1;
                        stack.remove(d);
                    }
                    None => reuse[7] += 1,
                }
                stack.insert(0, x);
            }
        }
        for (w, &win) in WINDOWS.iter().enumerate() {
            for chunk in steps.chunks_exact(win) {
                let mut ids: Vec<u32> = chunk.iter().flatten().copied().collect();
                ids.sort_unstable();
                ids.dedup();
                ws_sum[w] += ids.len() as f64;
                ws_n[w] += 1;
            }
        }
    }
    let mut working_set = [None; 4];
    for w in 0..4 {
        if ws_n[w] > 0 {
            working_set[w] = Some(ws_sum[w] / ws_n[w] as f64);
        }
    }
    Locality {
        layer,
        reuse,
        working_set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(phase: Phase, ids: Vec<Vec<u32>>) -> TracePass {
        TracePass {
            phase,
            sequences: ids.len(),
            seqs: vec![(0, 1); ids.len()],
            layers: [(0usize, ids)].into_iter().collect(),
            latency_s: None,
            line: 0,
        }
    }

    #[test]
    fn load_statistics_by_hand() {
        // 4 experts, loads 3, 1, 0, 0 (k = 1, four tokens over two passes)
        let p1 = pass(Phase::Decode, vec![vec![0], vec![0]]);
        let p2 = pass(Phase::Decode, vec![vec![0], vec![1]]);
        let l = load(&[&p1, &p2], 0, 4, 1);
        assert_eq!(l.load, vec![3, 1, 0, 0]);
        assert_eq!(l.dead, 2);
        // mean 1: variance (4 + 0 + 1 + 1) / 4 = 1.5
        assert!((l.cv - 1.5f64.sqrt()).abs() < 1e-12);
        assert!((l.max_over_mean - 3.0).abs() < 1e-12);
        // sorted 0,0,1,3: Σ(2i − 5)·x = 1·1 + 3·3 = 10, over 4·4 = 0.625
        assert!((l.gini - 0.625).abs() < 1e-12);
        assert_eq!(l.experts_for_90pct, 2);
        let h = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln()) / 4f64.ln();
        assert!((l.entropy - h).abs() < 1e-12);
        assert!((l.distinct_per_pass - 1.5).abs() < 1e-12);
    }

    #[test]
    fn stack_distances_by_hand() {
        // decode steps of one layer: {0}, {1}, {0}, {0, 2}: 0 cold, 1 cold, 0 at distance 1,
        // 0 at distance 0, 2 cold
        let t = Trace {
            source: "t".into(),
            model: None,
            replays: vec![super::super::trace::Replay {
                label: "r".into(),
                point: None,
                file: "t".into(),
                passes: vec![
                    pass(Phase::Decode, vec![vec![0]]),
                    pass(Phase::Decode, vec![vec![1]]),
                    pass(Phase::Decode, vec![vec![0]]),
                    pass(Phase::Decode, vec![vec![0], vec![2]]),
                ],
            }],
            moe_layers: vec![0],
        };
        let l = locality(&t, 0);
        assert_eq!(l.reuse, [1, 1, 0, 0, 0, 0, 0, 3]);
        // windows of 1: 1, 1, 1, 2; of 4: {0, 1, 2}
        assert_eq!(l.working_set[0], Some(1.25));
        assert_eq!(l.working_set[1], Some(3.0));
        assert_eq!(l.working_set[2], None);
    }
}

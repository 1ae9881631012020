//! Trace replay: every policy × capacity replayed on a routing trace with the exact semantics of
//! docs/OFFLOAD.md. Each replay starts from an empty cache (or a warm one); within it passes go in
//! order, within a pass MoE layers ascend, within a layer the pass's distinct experts ascend, and
//! each is one access: a hit, or a miss that is inserted (evicting the policy's victim when the
//! pool is full) or streamed. Prefetch variants load, after each layer, the next MoE layer's `P`
//! most likely experts given this layer's (successor counts of a profile trace).

use super::policy::{ExpertCache, Outcome, Policy};
use super::trace::{Trace, TracePass};
use crate::records::Phase;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// The MoE layers a replay keys its experts by.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// MoE layers (checkpoint indices), ascending.
    pub layers: Vec<usize>,
    /// Routed experts of each.
    pub experts: Vec<usize>,
}

impl Layout {
    /// Keys of all experts.
    pub fn total(&self) -> usize {
        self.experts.iter().sum()
    }
}

/// A policy as replayed: the policy and whether it prefetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variant {
    /// The policy.
    pub policy: Policy,
    /// With prefetch.
    pub prefetch: bool,
}

impl Variant {
    /// `lru`, `lru+prefetch`, ...
    pub fn name(&self) -> String {
        if self.prefetch {
            format!("{}+prefetch", self.policy.name())
        } else {
            self.policy.name().to_string()
        }
    }

    /// Parses a name; prefetch only for the online policies.
    pub fn parse(s: &str) -> Option<Variant> {
        let (name, prefetch) = match s.strip_suffix("+prefetch") {
            Some(n) => (n, true),
            None => (s, false),
        };
        let policy = Policy::parse(name)?;
        if prefetch && matches!(policy, Policy::Static | Policy::Belady) {
            return None;
        }
        Some(Variant { policy, prefetch })
    }
}

/// How the replays run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// One pool per MoE layer (false) or one for all (true).
    pub global: bool,
    /// Experts a prefetch loads per layer step.
    pub prefetch: usize,
    /// Uploads a prefetch may start per layer step.
    pub max_uploads: usize,
    /// LFRU's half-life, passes.
    pub half_life: f64,
    /// Start every policy full with the static set.
    pub warm_static: bool,
}

/// Counts of one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Accesses: (pass, layer, distinct expert) triples.
    pub accesses: u64,
    /// Accesses that found the expert resident.
    pub hits: u64,
    /// Accesses that did not (inserted or streamed).
    pub misses: u64,
    /// Misses used once from the slow tier, not cached.
    pub streamed: u64,
    /// Hits on an expert a prefetch loaded (first use).
    pub prefetch_hits: u64,
    /// Experts a prefetch loaded.
    pub prefetches: u64,
    /// Prefetched experts evicted (or left at the end) before any use.
    pub wasted_prefetches: u64,
    /// Token→expert assignments.
    pub assignments: u64,
    /// Assignments served by resident experts.
    pub assignment_hits: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.accesses += o.accesses;
        self.hits += o.hits;
        self.misses += o.misses;
        self.streamed += o.streamed;
        self.prefetch_hits += o.prefetch_hits;
        self.prefetches += o.prefetches;
        self.wasted_prefetches += o.wasted_prefetches;
        self.assignments += o.assignments;
        self.assignment_hits += o.assignment_hits;
    }

    /// Hits over accesses.
    pub fn hit_rate(&self) -> f64 {
        ratio(self.hits, self.accesses)
    }

    /// Assignments served by resident experts over all assignments (Fiddler's hit rate).
    pub fn token_hit_rate(&self) -> f64 {
        ratio(self.assignment_hits, self.assignments)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// What one pass of a replay did, for the time model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassEvents {
    /// Misses of the pass (each a transfer, or a CPU computation).
    pub misses: u32,
    /// Of them, inserted into the cache.
    pub inserted: u32,
    /// Tokens routed to the missed experts, summed.
    pub miss_tokens: u32,
    /// Per MoE layer position, experts a prefetch loaded before it.
    pub prefetched: Vec<(usize, u32)>,
}

/// One policy × capacity over a whole trace.
#[derive(Debug, Clone, PartialEq)]
pub struct SimResult {
    /// The policy.
    pub variant: Variant,
    /// Experts per pool.
    pub capacity: usize,
    /// Counts per phase.
    pub prefill: Counts,
    /// Decode counts.
    pub decode: Counts,
    /// Counts per bench point (summed over its repetitions), when the trace has points.
    pub points: BTreeMap<String, [Counts; 2]>,
    /// Per replay, per pass: what happened.
    pub events: Vec<Vec<PassEvents>>,
}

impl SimResult {
    /// Prefill and decode together.
    pub fn all(&self) -> Counts {
        let mut c = self.prefill;
        c.add(&self.decode);
        c
    }
}

/// One access of a prepared replay.
#[derive(Debug, Clone, Copy)]
struct Access {
    key: u32,
    tokens: u32,
}

/// A replay in access order, with every access's next use.
struct Prepared {
    phases: Vec<Phase>,
    /// Per pass, the range of its accesses; per MoE layer position, the range within it.
    passes: Vec<Vec<(usize, usize)>>,
    accesses: Vec<Access>,
    next: Vec<u64>,
    point: Option<String>,
}

fn prepare_pass(
    p: &TracePass,
    layout: &Layout,
    offsets: &[u32],
    acc: &mut Vec<Access>,
) -> Vec<(usize, usize)> {
    let mut ranges = Vec::with_capacity(layout.layers.len());
    for (pos, l) in layout.layers.iter().enumerate() {
        let start = acc.len();
        if let Some(toks) = p.layers.get(l) {
            let mut count = vec![0u32; layout.experts[pos]];
            for &id in toks.iter().flatten() {
                if let Some(c) = count.get_mut(id as usize) {
                    *c += 1;
                }
            }
            for (e, &n) in count.iter().enumerate() {
                if n > 0 {
                    acc.push(Access {
                        key: offsets[pos] + e as u32,
                        tokens: n,
                    });
                }
            }
        }
        ranges.push((start, acc.len()));
    }
    ranges
}

fn prepare(trace: &Trace, layout: &Layout) -> Vec<Prepared> {
    let offsets = super::policy::key_offsets(&layout.experts);
    trace
        .replays
        .iter()
        .map(|r| {
            let mut accesses = Vec::new();
            let passes: Vec<_> = r
                .passes
                .iter()
                .map(|p| prepare_pass(p, layout, &offsets, &mut accesses))
                .collect();
            let mut next = vec![u64::MAX; accesses.len()];
            let mut seen = vec![u64::MAX; layout.total()];
            for (i, a) in accesses.iter().enumerate().rev() {
                next[i] = seen[a.key as usize];
                seen[a.key as usize] = i as u64;
            }
            Prepared {
                phases: r.passes.iter().map(|p| p.phase).collect(),
                passes,
                accesses,
                next,
                point: r.point.clone(),
            }
        })
        .collect()
}

/// Access counts and successor counts of a profile trace: what `static` keeps and what a
/// prefetch predicts from.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Accesses per key.
    pub counts: Vec<u64>,
    /// Per MoE layer position but the last: `succ[pos][e·E' + e']` tokens that chose `e` in it
    /// and `e'` in the next MoE layer.
    pub succ: Vec<Vec<u32>>,
}

impl Profile {
    /// The profile of a trace.
    pub fn of(trace: &Trace, layout: &Layout) -> Profile {
        let offsets = super::policy::key_offsets(&layout.experts);
        let mut counts = vec![0u64; layout.total()];
        let n = layout.layers.len();
        let mut succ: Vec<Vec<u32>> = (0..n.saturating_sub(1))
            .map(|i| vec![0u32; layout.experts[i] * layout.experts[i + 1]])
            .collect();
        for p in trace.passes() {
            for (pos, l) in layout.layers.iter().enumerate() {
                for e in p.distinct(*l) {
                    if (e as usize) < layout.experts[pos] {
                        counts[(offsets[pos] + e) as usize] += 1;
                    }
                }
                if pos + 1 >= n {
                    continue;
                }
                let (Some(a), Some(b)) = (p.layers.get(l), p.layers.get(&layout.layers[pos + 1]))
                else {
                    continue;
                };
                let e2 = layout.experts[pos + 1];
                for (ta, tb) in a.iter().zip(b) {
                    for &x in ta {
                        for &y in tb {
                            if (x as usize) < layout.experts[pos] && (y as usize) < e2 {
                                succ[pos][x as usize * e2 + y as usize] += 1;
                            }
                        }
                    }
                }
            }
        }
        Profile { counts, succ }
    }

    /// The `capacity` most-accessed keys of each pool (ties by lowest key), most-accessed first.
    pub fn static_set(&self, layout: &Layout, capacity: usize, global: bool) -> Vec<u32> {
        let offsets = super::policy::key_offsets(&layout.experts);
        let top = |range: std::ops::Range<u32>| {
            let mut keys: Vec<u32> = range.collect();
            keys.sort_by(|a, b| {
                self.counts[*b as usize]
                    .cmp(&self.counts[*a as usize])
                    .then(a.cmp(b))
            });
            keys.truncate(capacity);
            keys
        };
        if global {
            top(0..layout.total() as u32)
        } else {
            layout
                .experts
                .iter()
                .zip(&offsets)
                .flat_map(|(&e, &o)| top(o..o + e as u32))
                .collect()
        }
    }

    /// The `p` most likely experts of MoE layer position `pos + 1` given layer `pos`'s experts
    /// `given` (ids), best first, ties by lowest id; experts never seen after them are left out.
    pub fn predict(&self, layout: &Layout, pos: usize, given: &[u32], p: usize) -> Vec<u32> {
        let Some(s) = self.succ.get(pos) else {
            return Vec::new();
        };
        let e2 = layout.experts[pos + 1];
        let mut score = vec![0u64; e2];
        for &x in given {
            for (y, sc) in score.iter_mut().enumerate() {
                *sc += s[x as usize * e2 + y] as u64;
            }
        }
        let mut ids: Vec<u32> = (0..e2 as u32).filter(|&y| score[y as usize] > 0).collect();
        ids.sort_by(|a, b| score[*b as usize].cmp(&score[*a as usize]).then(a.cmp(b)));
        ids.truncate(p);
        ids
    }
}

/// Replays one variant at one capacity over prepared replays.
fn replay(
    variant: Variant,
    capacity: usize,
    preps: &[Prepared],
    layout: &Layout,
    profile: &Profile,
    opts: &SimOptions,
) -> SimResult {
    let mut res = SimResult {
        variant,
        capacity,
        prefill: Counts::default(),
        decode: Counts::default(),
        points: BTreeMap::new(),
        events: Vec::with_capacity(preps.len()),
    };
    let static_set = (variant.policy == Policy::Static || opts.warm_static)
        .then(|| profile.static_set(layout, capacity, opts.global));
    for prep in preps {
        let mut cache = ExpertCache::new(
            variant.policy,
            &layout.experts,
            capacity,
            opts.global,
            opts.half_life,
        );
        if let Some(s) = &static_set {
            cache.fill(s);
        }
        let mut counts = [Counts::default(), Counts::default()];
        let mut events = Vec::with_capacity(prep.passes.len());
        let mut now = 0u64;
        for (step, (ranges, phase)) in prep.passes.iter().zip(&prep.phases).enumerate() {
            let c = &mut counts[usize::from(*phase == Phase::Decode)];
            let mut ev = PassEvents::default();
            for (pos, &(a, b)) in ranges.iter().enumerate() {
                for i in a..b {
                    let acc = prep.accesses[i];
                    let at = if variant.policy == Policy::Belady {
                        i as u64
                    } else {
                        now
                    };
                    now += 1;
                    c.accesses += 1;
                    c.assignments += acc.tokens as u64;
                    match cache.access(acc.key, at, step as u64, prep.next[i]) {
                        Outcome::Hit { prefetched } => {
                            c.hits += 1;
                            c.assignment_hits += acc.tokens as u64;
                            c.prefetch_hits += u64::from(prefetched);
                        }
                        Outcome::Inserted { wasted, .. } => {
                            c.misses += 1;
                            c.wasted_prefetches += u64::from(wasted);
                            ev.misses += 1;
                            ev.inserted += 1;
                            ev.miss_tokens += acc.tokens;
                        }
                        Outcome::Streamed => {
                            c.misses += 1;
                            c.streamed += 1;
                            ev.misses += 1;
                            ev.miss_tokens += acc.tokens;
                        }
                    }
                }
                if variant.prefetch && pos + 1 < ranges.len() && opts.prefetch > 0 {
                    let given: Vec<u32> = prep.accesses[a..b]
                        .iter()
                        .map(|x| x.key - cache.key(pos, 0))
                        .collect();
                    let mut loaded = 0u32;
                    for id in profile.predict(layout, pos, &given, opts.prefetch) {
                        if loaded as usize >= opts.max_uploads {
                            break;
                        }
                        let (done, wasted) = cache.prefetch(cache.key(pos + 1, id), now);
                        now += 1;
                        if done {
                            loaded += 1;
                            c.prefetches += 1;
                            c.wasted_prefetches += u64::from(wasted);
                        }
                    }
                    if loaded > 0 {
                        ev.prefetched.push((pos + 1, loaded));
                    }
                }
            }
            events.push(ev);
        }
        // prefetches never used by the end of the replay are wasted too
        let left = cache.unused_prefetches() as u64;
        if let Some(last) = prep.phases.last() {
            counts[usize::from(*last == Phase::Decode)].wasted_prefetches += left;
        }
        res.prefill.add(&counts[0]);
        res.decode.add(&counts[1]);
        if let Some(p) = &prep.point {
            let e = res.points.entry(p.clone()).or_default();
            e[0].add(&counts[0]);
            e[1].add(&counts[1]);
        }
        res.events.push(events);
    }
    res
}

/// Replays every variant at every capacity over `trace` (static sets and prefetch predictions
/// from `profile`), in parallel; results in variant, then capacity order.
pub fn simulate(
    trace: &Trace,
    layout: &Layout,
    profile: &Profile,
    variants: &[Variant],
    capacities: &[usize],
    opts: &SimOptions,
) -> Vec<SimResult> {
    let preps = prepare(trace, layout);
    let jobs: Vec<(Variant, usize)> = variants
        .iter()
        .flat_map(|v| capacities.iter().map(move |c| (*v, *c)))
        .collect();
    jobs.par_iter()
        .map(|(v, c)| replay(*v, *c, &preps, layout, profile, opts))
        .collect()
}

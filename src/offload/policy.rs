//! The expert cache and its policies: which routed experts are resident in the fast tier, and
//! which one goes when a missed expert needs room. One implementation serves the trace-replay
//! simulator and the engine's tiered experts alike.
//!
//! Keys are dense: expert `e` of the `i`-th MoE layer is `offset[i] + e`, so that key order is
//! (layer, id) order. Time is an event counter that grows with every access or prefetch.
//!
//! - `lru`: the victim is the resident expert accessed least recently.
//! - `lfu`: the fewest accesses so far in this replay (resident or not), ties by least recent.
//! - `lfru`: least frequently *and* recently used: each expert's frequency decays by half every
//!   `half_life` passes (an exponentially decayed access count, the LRFU family of Lee et al.),
//!   the victim has the lowest decayed count, ties by least recent. Half-life → 0 is LRU, → ∞ LFU.
//! - `static`: a fixed resident set (the most-accessed experts of a profile), never evicts,
//!   streams every miss.
//! - `belady`: the resident expert whose next access comes latest (never: infinitely late), ties
//!   by lowest (layer, id); a missed expert whose own next access comes no sooner than that
//!   victim's is streamed instead (the offline optimum with bypass). Needs the future: each access
//!   says when the same expert is next accessed.

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeSet;

/// A cache policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Policy {
    /// Least recently used.
    Lru,
    /// Least frequently used.
    Lfu,
    /// Least frequently and recently used (decayed frequency).
    Lfru,
    /// A fixed set, never evicted.
    Static,
    /// The offline optimum with bypass.
    Belady,
}

impl Policy {
    /// Every policy, in report order.
    pub const ALL: [Policy; 5] = [
        Policy::Lru,
        Policy::Lfu,
        Policy::Lfru,
        Policy::Static,
        Policy::Belady,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::Lfu => "lfu",
            Policy::Lfru => "lfru",
            Policy::Static => "static",
            Policy::Belady => "belady",
        }
    }

    /// The policy of a name.
    pub fn parse(s: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// What an access found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The expert was resident; `prefetched` when a prefetch put it there and this is its first
    /// use.
    Hit {
        /// A prefetch's first use.
        prefetched: bool,
    },
    /// A miss that was inserted, evicting `evicted` (a key) if the pool was full; `wasted` when
    /// the evicted expert was prefetched and never used.
    Inserted {
        /// The key that made room.
        evicted: Option<u32>,
        /// Whether the evicted one was an unused prefetch.
        wasted: bool,
    },
    /// A miss used once from the slow tier, not cached.
    Streamed,
}

/// `f64` ordered by `total_cmp`, for ordered sets of scores.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The residents of one pool ordered by eviction preference (the victim first).
#[derive(Debug, Clone)]
enum Order {
    /// (last access, key).
    Recency(BTreeSet<(u64, u32)>),
    /// (accesses, last access, key).
    Frequency(BTreeSet<(u64, u64, u32)>),
    /// (time-invariant decayed score, last access, key).
    Decayed(BTreeSet<(Score, u64, u32)>),
    /// (Reverse(next access), key): the latest next access first, ties by lowest key.
    NextUse(BTreeSet<(Reverse<u64>, u32)>),
    /// No eviction.
    Fixed,
}

#[derive(Debug, Clone)]
struct Pool {
    capacity: usize,
    size: usize,
    order: Order,
}

/// Per-key state.
#[derive(Debug, Clone, Copy, Default)]
struct KeyState {
    resident: bool,
    prefetched: bool,
    count: u64,
    last: u64,
    /// `ln(decayed count) − step · ln λ` at the last access (LFRU).
    score: f64,
    /// The event time of its next access (Belady), `u64::MAX` for never.
    next: u64,
}

/// The expert cache of a model: one pool per MoE layer (`layer` scope) or one for all.
#[derive(Debug, Clone)]
pub struct ExpertCache {
    policy: Policy,
    pools: Vec<Pool>,
    /// Pool of each MoE layer position.
    pool_of: Vec<usize>,
    /// First key of each MoE layer position.
    offset: Vec<u32>,
    keys: Vec<KeyState>,
    /// `ln λ` per pass of LFRU's decay (negative).
    ln_decay: f64,
}

/// The key layout of a model's experts: the expert count of each MoE layer, in order.
pub fn key_offsets(experts: &[usize]) -> Vec<u32> {
    let mut off = Vec::with_capacity(experts.len());
    let mut at = 0u32;
    for &e in experts {
        off.push(at);
        at += e as u32;
    }
    off
}

impl ExpertCache {
    /// An empty cache for MoE layers with `experts[i]` experts: `capacity` experts per layer
    /// (`global` false) or in one pool (`global` true). `half_life` is LFRU's, in passes.
    pub fn new(
        policy: Policy,
        experts: &[usize],
        capacity: usize,
        global: bool,
        half_life: f64,
    ) -> Self {
        let offset = key_offsets(experts);
        let total: usize = experts.iter().sum();
        let order = || match policy {
            Policy::Lru => Order::Recency(BTreeSet::new()),
            Policy::Lfu => Order::Frequency(BTreeSet::new()),
            Policy::Lfru => Order::Decayed(BTreeSet::new()),
            Policy::Belady => Order::NextUse(BTreeSet::new()),
            Policy::Static => Order::Fixed,
        };
        let n_pools = if global { 1 } else { experts.len() };
        ExpertCache {
            policy,
            pools: (0..n_pools)
                .map(|_| Pool {
                    capacity,
                    size: 0,
                    order: order(),
                })
                .collect(),
            pool_of: (0..experts.len())
                .map(|i| if global { 0 } else { i })
                .collect(),
            offset,
            keys: vec![KeyState::default(); total],
            ln_decay: if half_life > 0.0 {
                -std::f64::consts::LN_2 / half_life
            } else {
                f64::NEG_INFINITY
            },
        }
    }

    /// The key of expert `e` of the `layer_pos`-th MoE layer.
    pub fn key(&self, layer_pos: usize, e: u32) -> u32 {
        self.offset[layer_pos] + e
    }

    /// The MoE layer position of a key.
    fn layer_of(&self, key: u32) -> usize {
        self.offset.partition_point(|&o| o <= key) - 1
    }

    /// Whether a key is resident.
    pub fn resident(&self, key: u32) -> bool {
        self.keys[key as usize].resident
    }

    /// Experts resident now.
    pub fn len(&self) -> usize {
        self.pools.iter().map(|p| p.size).sum()
    }

    /// Whether none is resident.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes `keys` resident before any access (a static set, or a warm start), up to each
    /// pool's capacity, in the order given.
    pub fn fill(&mut self, keys: &[u32]) {
        for (t, &k) in keys.iter().enumerate() {
            let pool = self.pool_of[self.layer_of(k)];
            if self.keys[k as usize].resident || self.pools[pool].size >= self.pools[pool].capacity
            {
                continue;
            }
            self.keys[k as usize].last = t as u64;
            self.insert(k, pool);
        }
    }

    fn entry_remove(&mut self, key: u32, pool: usize) {
        let s = self.keys[key as usize];
        let removed = match &mut self.pools[pool].order {
            Order::Recency(set) => set.remove(&(s.last, key)),
            Order::Frequency(set) => set.remove(&(s.count, s.last, key)),
            Order::Decayed(set) => set.remove(&(Score(s.score), s.last, key)),
            Order::NextUse(set) => set.remove(&(Reverse(s.next), key)),
            Order::Fixed => true,
        };
        debug_assert!(removed, "key {key} was resident but not ordered");
    }

    fn entry_insert(&mut self, key: u32, pool: usize) {
        let s = self.keys[key as usize];
        match &mut self.pools[pool].order {
            Order::Recency(set) => {
                set.insert((s.last, key));
            }
            Order::Frequency(set) => {
                set.insert((s.count, s.last, key));
            }
            Order::Decayed(set) => {
                set.insert((Score(s.score), s.last, key));
            }
            Order::NextUse(set) => {
                set.insert((Reverse(s.next), key));
            }
            Order::Fixed => {}
        }
    }

    fn insert(&mut self, key: u32, pool: usize) {
        self.keys[key as usize].resident = true;
        self.pools[pool].size += 1;
        self.entry_insert(key, pool);
    }

    /// The policy's victim in a pool (the first of its order).
    fn victim(&self, pool: usize) -> Option<u32> {
        match &self.pools[pool].order {
            Order::Recency(set) => set.first().map(|e| e.1),
            Order::Frequency(set) => set.first().map(|e| e.2),
            Order::Decayed(set) => set.first().map(|e| e.2),
            Order::NextUse(set) => set.first().map(|e| e.1),
            Order::Fixed => None,
        }
    }

    fn evict(&mut self, key: u32, pool: usize) -> bool {
        self.entry_remove(key, pool);
        let s = &mut self.keys[key as usize];
        s.resident = false;
        let wasted = s.prefetched;
        s.prefetched = false;
        self.pools[pool].size -= 1;
        wasted
    }

    /// Updates a key's use statistics for an access at event time `now` in pass `step`, its
    /// next access at `next` (Belady; `u64::MAX` for never).
    fn touch(&mut self, key: u32, now: u64, step: u64, next: u64) {
        let ln_decay = self.ln_decay;
        let s = &mut self.keys[key as usize];
        s.count += 1;
        // decayed count just before this access, plus this access, kept step-invariant
        let before = if s.count == 1 {
            0.0
        } else {
            (s.score + step as f64 * ln_decay).exp()
        };
        s.score = (before + 1.0).ln() - step as f64 * ln_decay;
        s.last = now;
        s.next = next;
    }

    /// One access of `key` at event time `now` in pass `step`; `next` is the event time of the
    /// same expert's next access (only Belady reads it).
    pub fn access(&mut self, key: u32, now: u64, step: u64, next: u64) -> Outcome {
        let pool = self.pool_of[self.layer_of(key)];
        if self.keys[key as usize].resident {
            self.entry_remove(key, pool);
            self.touch(key, now, step, next);
            self.entry_insert(key, pool);
            let s = &mut self.keys[key as usize];
            let prefetched = std::mem::take(&mut s.prefetched);
            return Outcome::Hit { prefetched };
        }
        self.touch(key, now, step, next);
        if self.policy == Policy::Static {
            return Outcome::Streamed;
        }
        let p = &self.pools[pool];
        if p.capacity == 0 {
            return Outcome::Streamed;
        }
        if p.size < p.capacity {
            self.insert(key, pool);
            return Outcome::Inserted {
                evicted: None,
                wasted: false,
            };
        }
        let Some(victim) = self.victim(pool) else {
            return Outcome::Streamed;
        };
        if self.policy == Policy::Belady && next >= self.keys[victim as usize].next {
            return Outcome::Streamed;
        }
        let wasted = self.evict(victim, pool);
        self.insert(key, pool);
        Outcome::Inserted {
            evicted: Some(victim),
            wasted,
        }
    }

    /// Loads `key` ahead of its use at event time `now` (a prefetch), evicting the policy's
    /// victim when its pool is full. Returns whether it was loaded (absent before, room made)
    /// and whether the expert it evicted was itself an unused prefetch.
    pub fn prefetch(&mut self, key: u32, now: u64) -> (bool, bool) {
        let pool = self.pool_of[self.layer_of(key)];
        if self.keys[key as usize].resident
            || self.policy == Policy::Static
            || self.pools[pool].capacity == 0
        {
            return (false, false);
        }
        let mut wasted = false;
        if self.pools[pool].size >= self.pools[pool].capacity {
            let Some(victim) = self.victim(pool) else {
                return (false, false);
            };
            wasted = self.evict(victim, pool);
        }
        let s = &mut self.keys[key as usize];
        s.last = now;
        s.prefetched = true;
        self.insert(key, pool);
        (true, wasted)
    }

    /// Unused prefetches still resident (wasted when the replay ends).
    pub fn unused_prefetches(&self) -> usize {
        self.keys
            .iter()
            .filter(|s| s.resident && s.prefetched)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays `seq` (keys of one layer with `e` experts) and returns hits, inserted, streamed.
    fn run(policy: Policy, e: usize, cap: usize, seq: &[u32]) -> (usize, usize, usize) {
        let mut next = vec![u64::MAX; seq.len()];
        for i in 0..seq.len() {
            next[i] = seq[i + 1..]
                .iter()
                .position(|&k| k == seq[i])
                .map_or(u64::MAX, |d| (i + 1 + d) as u64);
        }
        let mut c = ExpertCache::new(policy, &[e], cap, false, 4.0);
        let (mut h, mut ins, mut st) = (0, 0, 0);
        for (i, &k) in seq.iter().enumerate() {
            match c.access(k, i as u64, i as u64, next[i]) {
                Outcome::Hit { .. } => h += 1,
                Outcome::Inserted { .. } => ins += 1,
                Outcome::Streamed => st += 1,
            }
        }
        (h, ins, st)
    }

    #[test]
    fn belady_on_the_textbook_sequence() {
        // 7 0 1 2 0 3 0 4 2 3 0 3 2 1 2 0 1 7 0 1 with 3 frames: MIN has 9 faults; with bypass
        // the optimum is no worse
        let seq = [7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1];
        let (h, ins, st) = run(Policy::Belady, 8, 3, &seq);
        assert_eq!(h + ins + st, 20);
        assert!(ins + st <= 9, "{} faults", ins + st);
        // LRU on the same: 12 faults (the textbook figure)
        let (h, _, _) = run(Policy::Lru, 8, 3, &seq);
        assert_eq!(20 - h, 12);
    }

    #[test]
    fn static_never_evicts_and_streams() {
        let mut c = ExpertCache::new(Policy::Static, &[4], 2, false, 4.0);
        c.fill(&[3, 1, 0]);
        assert!(c.resident(3) && c.resident(1) && !c.resident(0));
        assert_eq!(c.access(0, 0, 0, u64::MAX), Outcome::Streamed);
        assert_eq!(
            c.access(3, 1, 0, u64::MAX),
            Outcome::Hit { prefetched: false }
        );
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn key_layout_follows_layers() {
        let c = ExpertCache::new(Policy::Lru, &[4, 8, 2], 1, true, 4.0);
        assert_eq!(c.key(1, 3), 7);
        assert_eq!(c.layer_of(7), 1);
        assert_eq!(c.layer_of(12), 2);
        assert_eq!(c.layer_of(0), 0);
    }
}

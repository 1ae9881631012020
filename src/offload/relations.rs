//! Relations between experts in a trace: co-activation (pairs one token chose together, as lift
//! over a marginal-preserving shuffle) and inter-layer predictability (one layer's experts
//! predicting the next MoE layer's).

use super::analytics::{Coactivation, Pair, Predictability};
use super::sim::Layout;
use super::trace::TracePass;
use crate::rng::SplitMix64;

/// Unordered pairs of distinct experts per token, counted into `m` (`E × E`, lower id first).
fn count_pairs(tokens: &[Vec<u32>], e: usize, m: &mut [u64]) {
    for t in tokens {
        for (i, &a) in t.iter().enumerate() {
            for &b in &t[i + 1..] {
                let (a, b) = (a.min(b) as usize, a.max(b) as usize);
                if a != b && b < e {
                    m[a * e + b] += 1;
                }
            }
        }
    }
}

/// Shuffles to average the expectation over.
const SHUFFLES: u64 = 4;

pub(super) fn coactivation(passes: &[&TracePass], layer: usize, e: usize) -> Coactivation {
    let tokens: Vec<Vec<u32>> = passes
        .iter()
        .filter_map(|p| p.layers.get(&layer))
        .flatten()
        .cloned()
        .collect();
    let mut observed = vec![0u64; e * e];
    count_pairs(&tokens, e, &mut observed);
    // marginal-preserving shuffle: each rank's column of ids permuted across tokens
    let k = tokens.iter().map(Vec::len).max().unwrap_or(0);
    let mut expected = vec![0u64; e * e];
    for s in 0..SHUFFLES {
        let mut rng = SplitMix64::new(0x5eed ^ (layer as u64) << 8 ^ s);
        let mut shuffled = tokens.clone();
        for r in 0..k {
            let rows: Vec<usize> = (0..shuffled.len())
                .filter(|&t| shuffled[t].len() > r)
                .collect();
            for i in (1..rows.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                let (a, b) = (rows[i], rows[j]);
                let tmp = shuffled[a][r];
                shuffled[a][r] = shuffled[b][r];
                shuffled[b][r] = tmp;
            }
        }
        count_pairs(&shuffled, e, &mut expected);
    }
    let mut lift = vec![vec![0.0; e]; e];
    let mut top = Vec::new();
    for a in 0..e {
        for b in a + 1..e {
            let o = observed[a * e + b];
            let x = expected[a * e + b] as f64 / SHUFFLES as f64;
            if x > 0.0 {
                let l = o as f64 / x;
                lift[a][b] = l;
                lift[b][a] = l;
                if o >= 5 {
                    top.push(Pair {
                        a: a as u32,
                        b: b as u32,
                        observed: o,
                        expected: x,
                        lift: l,
                    });
                }
            }
        }
    }
    top.sort_by(|x, y| {
        y.lift
            .total_cmp(&x.lift)
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    top.truncate(10);
    Coactivation { layer, top, lift }
}

/// Each token's expert ids in one layer.
type Tokens = Vec<Vec<u32>>;

pub(super) fn predictability<'a>(
    passes: &[&'a TracePass],
    layout: &Layout,
    top_k: &[usize],
    pos: usize,
) -> Predictability {
    let (l1, l2) = (layout.layers[pos], layout.layers[pos + 1]);
    let (e1, e2) = (layout.experts[pos], layout.experts[pos + 1]);
    let k2 = top_k[pos + 1];
    let half = passes.len() / 2;
    let mut succ = vec![0u64; e1 * e2];
    let mut freq = vec![0u64; e2];
    let pairs = |p: &'a TracePass| -> Option<(&'a Tokens, &'a Tokens)> {
        Some((p.layers.get(&l1)?, p.layers.get(&l2)?))
    };
    for p in &passes[..half] {
        let Some((a, b)) = pairs(p) else { continue };
        for (ta, tb) in a.iter().zip(b) {
            for &y in tb {
                if (y as usize) < e2 {
                    freq[y as usize] += 1;
                    for &x in ta {
                        if (x as usize) < e1 {
                            succ[x as usize * e2 + y as usize] += 1;
                        }
                    }
                }
            }
        }
    }
    let top = |score: &[u64]| -> Vec<u32> {
        let mut ids: Vec<u32> = (0..e2 as u32).collect();
        ids.sort_by(|a, b| score[*b as usize].cmp(&score[*a as usize]).then(a.cmp(b)));
        ids.truncate(k2);
        ids
    };
    let global = top(&freq);
    let (mut tokens, mut hit, mut base, mut want) = (0u64, 0u64, 0u64, 0u64);
    for p in &passes[half..] {
        let Some((a, b)) = pairs(p) else { continue };
        for (ta, tb) in a.iter().zip(b) {
            let mut score = vec![0u64; e2];
            for &x in ta {
                if (x as usize) < e1 {
                    for (y, s) in score.iter_mut().enumerate() {
                        *s += succ[x as usize * e2 + y];
                    }
                }
            }
            let predicted = top(&score);
            tokens += 1;
            want += tb.len() as u64;
            hit += tb.iter().filter(|y| predicted.contains(y)).count() as u64;
            base += tb.iter().filter(|y| global.contains(y)).count() as u64;
        }
    }
    let r = |x: u64| {
        if want == 0 {
            0.0
        } else {
            x as f64 / want as f64
        }
    };
    Predictability {
        from: l1,
        to: l2,
        tokens,
        hit_rate: r(hit),
        baseline: r(base),
    }
}

//! Choosing the next token: greedy argmax, or seeded temperature / top-p sampling with a small
//! deterministic generator (the same seed gives the same tokens on every machine).

use crate::rng::SplitMix64;

/// How tokens are chosen.
#[derive(Debug, Clone)]
pub enum Sampler {
    /// Always the most likely token (ties: the lowest id).
    Greedy,
    /// Sample from the softmax at `temperature`, restricted to the smallest set of tokens whose
    /// probability reaches `top_p`.
    Random {
        /// Softmax temperature (> 0).
        temperature: f64,
        /// Nucleus mass in (0, 1].
        top_p: f64,
        /// The generator.
        rng: SplitMix64,
    },
}

impl Sampler {
    /// Picks a token from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        match self {
            Sampler::Greedy => argmax(logits),
            Sampler::Random {
                temperature,
                top_p,
                rng,
            } => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let mut p: Vec<(u32, f64)> = logits
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| (i as u32, ((l as f64 - max) / *temperature).exp()))
                    .collect();
                let sum: f64 = p.iter().map(|x| x.1).sum();
                p.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                let mut kept = 0.0;
                let mut n = 0;
                for (_, w) in &p {
                    kept += w / sum;
                    n += 1;
                    if kept >= *top_p {
                        break;
                    }
                }
                let mass: f64 = p[..n].iter().map(|x| x.1).sum();
                let mut r = rng.next_f64() * mass;
                for (id, w) in &p[..n] {
                    if r < *w {
                        return *id;
                    }
                    r -= w;
                }
                p[n - 1].0
            }
        }
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_seeded_sampling() {
        assert_eq!(Sampler::Greedy.sample(&[0.1, 3.0, 3.0, -1.0]), 1);
        let mk = |seed| Sampler::Random {
            temperature: 1.0,
            top_p: 1.0,
            rng: SplitMix64::new(seed),
        };
        let logits = [0.0f32, 1.0, 2.0, 0.5];
        let a: Vec<u32> = (0..20)
            .map({
                let mut s = mk(7);
                move |_| s.sample(&logits)
            })
            .collect();
        let b: Vec<u32> = (0..20)
            .map({
                let mut s = mk(7);
                move |_| s.sample(&logits)
            })
            .collect();
        assert_eq!(a, b);
        // top_p small keeps only the best token
        let mut s = Sampler::Random {
            temperature: 1.0,
            top_p: 0.01,
            rng: SplitMix64::new(1),
        };
        assert!((0..50).all(|_| s.sample(&logits) == 2));
        // frequencies follow the softmax
        let mut s = mk(3);
        let n = 20000;
        let hits = (0..n).filter(|_| s.sample(&logits) == 2).count() as f64 / n as f64;
        let e: f64 = [0.0f64, 1.0, 2.0, 0.5].iter().map(|x| x.exp()).sum();
        assert!((hits - 2f64.exp() / e).abs() < 0.02, "{hits}");
    }
}

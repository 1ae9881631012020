//! Few-shot exemplars drawn as lm-evaluation-harness draws them: its default sampler calls
//! Python's `random.Random(seed).sample(pool, k)` once per evaluated document, in document order,
//! on one generator seeded once per task. [`PyRandom`] reproduces Python's Mersenne Twister, its
//! integer seeding and `sample`, so the same seed gives the same exemplars in the same order.

/// Python's `random.Random`: MT19937 seeded from an integer as CPython seeds it.
#[derive(Debug, Clone)]
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

const N: usize = 624;
const M: usize = 397;

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed.
    pub fn new(seed: u64) -> Self {
        // CPython splits |seed| into 32-bit words, least significant first (0 gives [0])
        let (lo, hi) = (seed as u32, (seed >> 32) as u32);
        let key: Vec<u32> = if hi == 0 { vec![lo] } else { vec![lo, hi] };
        let mut r = PyRandom {
            mt: [0; N],
            index: N,
        };
        r.init_by_array(&key);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let p = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(p ^ (p >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let p = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (p ^ (p >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let p = self.mt[i - 1];
            self.mt[i] =
                (self.mt[i] ^ (p ^ (p >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
    }

    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % N] & 0x7fff_ffff);
            let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
            self.mt[i] = self.mt[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// The next 32-bit output (`genrand_uint32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for `k ≤ 32`.
    fn getrandbits(&mut self, k: u32) -> u32 {
        if k == 0 {
            0
        } else {
            self.next_u32() >> (32 - k)
        }
    }

    /// `_randbelow(n)`: uniform in `0..n` by rejection on `n`'s bit length (`n ≥ 1`).
    pub fn below(&mut self, n: u32) -> usize {
        let k = 32 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r as usize;
            }
        }
    }

    /// `sample(range(n), k)`: `k` distinct indices of a pool of `n`, in draw order, by the same
    /// two strategies as CPython (a shrinking pool for small `n`, rejection from a set otherwise).
    /// `None` when `k > n` (or `n` ≥ 2³²).
    pub fn sample(&mut self, n: usize, k: usize) -> Option<Vec<usize>> {
        let n32 = u32::try_from(n).ok()?;
        if k > n {
            return None;
        }
        let mut setsize = 21usize;
        if k > 5 {
            // 4 ** ceil(log(3k, 4)); 3k is never a power of 4, so rounding cannot flip it
            let e = ((k * 3) as f64).log(4.0).ceil() as u32;
            setsize += 4usize.pow(e);
        }
        let mut out = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.below(n32 - i as u32);
                out.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut seen = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.below(n32);
                while seen.contains(&j) {
                    j = self.below(n32);
                }
                seen.insert(j);
                out.push(j);
            }
        }
        Some(out)
    }
}

/// lm-evaluation-harness's default few-shot sampler over a pool that is not the evaluated split:
/// the exemplar indices of each of the first `docs` documents, `k` per document.
pub fn sample_per_doc(seed: u64, pool: usize, k: usize, docs: usize) -> Option<Vec<Vec<usize>>> {
    let mut rng = PyRandom::new(seed);
    (0..docs).map(|_| rng.sample(pool, k)).collect()
}

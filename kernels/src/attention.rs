//! Causal attention of one forward pass on the host, in f32: each sequence's queries against
//! its own cached keys and values, read in place from the cache's buffers (no copy, no score
//! tensor), with an optional sliding window. The work is spread over the thread pool in units
//! of (sequence, block of query rows, key/value head), so that a pass of many short sequences
//! and a decode step over a long cache both keep every core busy.

use crate::cpu::has_avx2_fma;
use crate::elementwise::softmax_row;
use rayon::prelude::*;

/// The head layout of an attention layer.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` is a multiple of it).
    pub kv_heads: usize,
    /// Width of a query and key head.
    pub dk: usize,
    /// Width of a value head (and of each head's output).
    pub dv: usize,
    /// Factor of the scores before the softmax.
    pub scale: f32,
    /// Keys a query sees at most (its own position included); `None`: the whole prefix.
    pub window: Option<usize>,
}

/// One sequence of the pass.
#[derive(Debug, Clone, Copy)]
pub struct SeqKv<'a> {
    /// Its first query row in the pass.
    pub first_row: usize,
    /// Its query rows (the tokens it appends in this pass).
    pub len: usize,
    /// Tokens cached before the pass; query `i` sits at position `cached + i`.
    pub cached: usize,
    /// Keys `[kv_heads, stride, dk]`, the first `cached + len` rows of each head filled.
    pub k: &'a [f32],
    /// Values `[kv_heads, stride, dv]`, likewise.
    pub v: &'a [f32],
    /// Rows per head in `k` and `v` (the cache's capacity).
    pub stride: usize,
}

/// Query rows per unit of work.
const ROWS_PER_UNIT: usize = 8;
/// Multiply-adds from which the pass uses the thread pool.
const PARALLEL_FROM: usize = 1 << 16;
/// Query rows of a sequence from which its keys are transposed once for the pass; fewer rows
/// (decode steps) read the keys as they lie.
const TRANSPOSE_FROM: usize = 4;
/// Keys scored together against a transposed block: a block of scores stays in registers
/// while the query's values pass.
const KEY_BLOCK: usize = 32;
/// Query rows scored together against each block of keys.
const QUERIES: usize = 2;
/// Value columns summed together, likewise.
const VALUE_BLOCK: usize = 64;

/// The output pointer shared by units that write disjoint values.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each unit writes only its own rows' values of its own heads.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// One sequence's keys of one key/value head, transposed to `[dk, ld]`: column `j` is the key
/// at position `lo + j`, so that a block of scores is a run of multiply-adds over contiguous
/// keys (no sum across lanes per key).
struct Transposed {
    kt: Vec<f32>,
    lo: usize,
    ld: usize,
}

/// What every unit of a pass reads.
struct Pass<'a> {
    q: &'a [f32],
    seqs: &'a [SeqKv<'a>],
    shape: &'a Heads,
    /// Per (sequence, key/value head), for sequences of at least [`TRANSPOSE_FROM`] rows.
    keys: Vec<Option<Transposed>>,
    out: Out,
}

impl Pass<'_> {
    /// The first key position that a query at `pos` sees.
    fn first_key(&self, pos: usize) -> usize {
        self.shape.window.map_or(0, |w| (pos + 1).saturating_sub(w))
    }
}

/// The attention output `[rows, heads · dv]` of the pass's queries `q` `[rows, heads, dk]`
/// (row-major, after the rotary embedding): each query row of a sequence attends to the keys
/// at the positions it sees (its own and the earlier ones, within the window) in that
/// sequence's `k`/`v`, query head `h` to key/value head `h / (heads / kv_heads)`. Rows no
/// sequence covers are zero.
///
/// # Panics
/// If a sequence's rows fall outside `q`, its buffers are shorter than `stride` rows per head,
/// `stride` is less than `cached + len`, or `heads` is not a multiple of `kv_heads`.
pub fn attend(q: &[f32], seqs: &[SeqKv], shape: &Heads) -> Vec<f32> {
    let Heads {
        heads,
        kv_heads,
        dk,
        dv,
        ..
    } = *shape;
    assert!(
        kv_heads > 0 && heads % kv_heads == 0,
        "{heads} query heads over {kv_heads} key/value heads"
    );
    let rows = q.len() / (heads * dk).max(1);
    let mut out = vec![0f32; rows * heads * dv];
    let mut units = Vec::new();
    let mut work = 0usize;
    for (s, sq) in seqs.iter().enumerate() {
        assert!(
            sq.first_row + sq.len <= rows,
            "sequence {s} past the queries"
        );
        assert!(
            sq.cached + sq.len <= sq.stride,
            "sequence {s} past its cache"
        );
        assert!(
            sq.k.len() >= kv_heads * sq.stride * dk && sq.v.len() >= kv_heads * sq.stride * dv,
            "sequence {s}: cache buffers too short"
        );
        work += sq.len * (sq.cached + sq.len) * heads * (dk + dv);
        for r0 in (0..sq.len).step_by(ROWS_PER_UNIT) {
            for g in 0..kv_heads {
                units.push((s, r0, ROWS_PER_UNIT.min(sq.len - r0), g));
            }
        }
    }
    let parallel = work >= PARALLEL_FROM;
    let mut pass = Pass {
        q,
        seqs,
        shape,
        keys: Vec::new(),
        out: Out(out.as_mut_ptr()),
    };
    let transpose = |i: usize| {
        let (sq, g) = (&seqs[i / kv_heads], i % kv_heads);
        (sq.len >= TRANSPOSE_FROM).then(|| {
            let lo = pass.first_key(sq.cached);
            transposed(sq, g, dk, lo, sq.cached + sq.len)
        })
    };
    let pairs = seqs.len() * kv_heads;
    let keys = if parallel {
        (0..pairs).into_par_iter().map(transpose).collect()
    } else {
        (0..pairs).map(transpose).collect()
    };
    pass.keys = keys;
    let fast = has_avx2_fma();
    let run = |&(s, r0, n, g): &(usize, usize, usize, usize)| {
        // SAFETY: unit (s, r0, g) writes only rows first_row + r0 .. + n of sequence s, in the
        // columns of the query heads of key/value head g; no two units share both, and `out`
        // outlives the loop.
        unsafe { unit(&pass, s, r0, n, g, fast) }
    };
    if parallel {
        units.par_iter().for_each(run);
    } else {
        units.iter().for_each(run);
    }
    out
}

/// Keys `lo .. hi` of head `g` of `sq`, transposed.
fn transposed(sq: &SeqKv, g: usize, dk: usize, lo: usize, hi: usize) -> Transposed {
    let kh = &sq.k[g * sq.stride * dk..(g + 1) * sq.stride * dk];
    let ld = (hi - lo).div_ceil(KEY_BLOCK) * KEY_BLOCK;
    let mut kt = vec![0f32; dk * ld];
    for (j, key) in kh[lo * dk..hi * dk].chunks_exact(dk).enumerate() {
        for (d, &x) in key.iter().enumerate() {
            kt[d * ld + j] = x;
        }
    }
    Transposed { kt, lo, ld }
}

/// Rows `r0 .. r0 + n` of sequence `s`, query heads of key/value head `g`.
///
/// # Safety
/// These values of the pass's output must be written by no one else.
unsafe fn unit(pass: &Pass, s: usize, r0: usize, n: usize, g: usize, fast: bool) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        unit_avx2(pass, s, r0, n, g);
        return;
    }
    let _ = fast;
    unit_body::<false>(pass, s, r0, n, g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn unit_avx2(pass: &Pass, s: usize, r0: usize, n: usize, g: usize) {
    unit_body::<true>(pass, s, r0, n, g)
}

/// `a · b + c`, fused (one instruction where the caller enables FMA) when `FUSED`, else a
/// multiply and an add (a fused one would be a library call without FMA).
#[inline(always)]
fn fma<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
unsafe fn unit_body<const FUSED: bool>(pass: &Pass, s: usize, r0: usize, n: usize, g: usize) {
    let (sq, shape) = (&pass.seqs[s], pass.shape);
    let (heads, dk, dv) = (shape.heads, shape.dk, shape.dv);
    let group = heads / shape.kv_heads;
    let kh = &sq.k[g * sq.stride * dk..(g + 1) * sq.stride * dk];
    let vh = &sq.v[g * sq.stride * dv..(g + 1) * sq.stride * dv];
    let query = |r: usize, h: usize| {
        let row = sq.first_row + r;
        &pass.q[(row * heads + h) * dk..(row * heads + h + 1) * dk]
    };
    let output = |r: usize, h: usize| {
        // SAFETY: (row, h) is this unit's; the caller guarantees no one else writes it.
        std::slice::from_raw_parts_mut(pass.out.0.add(((sq.first_row + r) * heads + h) * dv), dv)
    };
    let Some(t) = &pass.keys[s * shape.kv_heads + g] else {
        // few rows: each score a dot product with the key as it lies
        let mut p = vec![0f32; sq.cached + r0 + n];
        for r in r0..r0 + n {
            let pos = sq.cached + r;
            let a = pass.first_key(pos);
            for h in g * group..(g + 1) * group {
                let qh = query(r, h);
                let ps = &mut p[..pos + 1];
                for (j, x) in ps.iter_mut().enumerate().skip(a) {
                    *x = dot::<FUSED>(qh, &kh[j * dk..(j + 1) * dk]);
                }
                softmax_row(ps, a, pos + 1, shape.scale);
                mix_values::<FUSED>(output(r, h), &ps[a..], &vh[a * dv..(pos + 1) * dv]);
            }
        }
        return;
    };
    let (kt, lo, ld) = (&t.kt, t.lo, t.ld);
    // QUERIES rows at a time share each load of `kt` (and keep eight sums in flight)
    let mut p = vec![0f32; QUERIES * ld];
    for h in g * group..(g + 1) * group {
        for r in (r0..r0 + n).step_by(QUERIES) {
            let m = QUERIES.min(r0 + n - r);
            // a short last group repeats its last row
            let rows: [usize; QUERIES] = std::array::from_fn(|i| r + i.min(m - 1));
            let ranges = rows.map(|r| {
                let pos = sq.cached + r;
                (pass.first_key(pos) - lo, pos + 1 - lo)
            });
            let qs = rows.map(|r| query(r, h));
            let end = ranges[QUERIES - 1].1;
            for jb in (ranges[0].0 / KEY_BLOCK * KEY_BLOCK..end).step_by(KEY_BLOCK) {
                let mut acc = [[0f32; KEY_BLOCK]; QUERIES];
                for d in 0..dk {
                    let col = &kt[d * ld + jb..d * ld + jb + KEY_BLOCK];
                    for (a, qi) in acc.iter_mut().zip(&qs) {
                        let x = qi[d];
                        for l in 0..KEY_BLOCK {
                            a[l] = fma::<FUSED>(x, col[l], a[l]);
                        }
                    }
                }
                for (i, a) in acc.iter().enumerate() {
                    p[i * ld + jb..i * ld + jb + KEY_BLOCK].copy_from_slice(a);
                }
            }
            for (i, &(a, b)) in ranges.iter().enumerate().take(m) {
                let pi = &mut p[i * ld..i * ld + b];
                softmax_row(pi, a, b, shape.scale);
                mix_values::<FUSED>(
                    output(rows[i], h),
                    &pi[a..b],
                    &vh[(lo + a) * dv..(lo + b) * dv],
                );
            }
        }
    }
}

/// `a · b` over 8 interleaved lanes, then across them by halving.
#[inline(always)]
fn dot<const FUSED: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut rest = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        rest = fma::<FUSED>(*x, *y, rest);
    }
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] = fma::<FUSED>(x[l], y[l], acc[l]);
        }
    }
    let mut w = 4;
    while w > 0 {
        for l in 0..w {
            acc[l] += acc[l + w];
        }
        w /= 2;
    }
    acc[0] + rest
}

/// `o = Σ_j w[j] · v[j]` over the rows `v[j]` of width `o.len()`, a block of columns held in
/// registers while the rows pass.
#[inline(always)]
fn mix_values<const FUSED: bool>(o: &mut [f32], w: &[f32], v: &[f32]) {
    let dv = o.len();
    for (c, oc) in o.chunks_mut(VALUE_BLOCK).enumerate() {
        let col = c * VALUE_BLOCK;
        if oc.len() == VALUE_BLOCK {
            let mut acc = [0f32; VALUE_BLOCK];
            for (j, &wj) in w.iter().enumerate() {
                let vj = &v[j * dv + col..j * dv + col + VALUE_BLOCK];
                for l in 0..VALUE_BLOCK {
                    acc[l] = fma::<FUSED>(wj, vj[l], acc[l]);
                }
            }
            oc.copy_from_slice(&acc);
        } else {
            for (j, &wj) in w.iter().enumerate() {
                let vj = &v[j * dv + col..j * dv + col + oc.len()];
                for (o, &x) in oc.iter_mut().zip(vj) {
                    *o = fma::<FUSED>(wj, x, *o);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104729) % 2003) as f32 / 1001.0 - 1.0)
            .collect()
    }

    /// The same attention in f64, one query at a time, from the definition.
    fn plain(q: &[f32], seqs: &[SeqKv], s: &Heads, rows: usize) -> Vec<f64> {
        let mut out = vec![0f64; rows * s.heads * s.dv];
        let group = s.heads / s.kv_heads;
        for sq in seqs {
            for i in 0..sq.len {
                let (row, pos) = (sq.first_row + i, sq.cached + i);
                let first = s.window.map_or(0, |w| (pos + 1).saturating_sub(w));
                for h in 0..s.heads {
                    let g = h / group;
                    let qh = &q[(row * s.heads + h) * s.dk..][..s.dk];
                    let scores: Vec<f64> = (first..=pos)
                        .map(|j| {
                            let k = &sq.k[(g * sq.stride + j) * s.dk..][..s.dk];
                            qh.iter()
                                .zip(k)
                                .map(|(&a, &b)| a as f64 * b as f64)
                                .sum::<f64>()
                                * s.scale as f64
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for (j, w) in (first..=pos).zip(&e) {
                        let v = &sq.v[(g * sq.stride + j) * s.dv..][..s.dv];
                        for d in 0..s.dv {
                            out[(row * s.heads + h) * s.dv + d] += w / z * v[d] as f64;
                        }
                    }
                }
            }
        }
        out
    }

    fn check(shape: Heads, lens: &[(usize, usize)], stride: usize) {
        let rows: usize = lens.iter().map(|l| l.0).sum();
        let q = values(rows * shape.heads * shape.dk, 1);
        let bufs: Vec<(Vec<f32>, Vec<f32>)> = (0..lens.len())
            .map(|i| {
                (
                    values(shape.kv_heads * stride * shape.dk, 2 + i),
                    values(shape.kv_heads * stride * shape.dv, 20 + i),
                )
            })
            .collect();
        let mut first_row = 0;
        let seqs: Vec<SeqKv> = lens
            .iter()
            .zip(&bufs)
            .map(|(&(len, cached), (k, v))| {
                let s = SeqKv {
                    first_row,
                    len,
                    cached,
                    k,
                    v,
                    stride,
                };
                first_row += len;
                s
            })
            .collect();
        let got = attend(&q, &seqs, &shape);
        let want = plain(&q, &seqs, &shape, rows);
        let err = got
            .iter()
            .zip(&want)
            .map(|(&a, &b)| (a as f64 - b).abs())
            .fold(0f64, f64::max);
        assert!(err < 1e-5, "{shape:?} {lens:?}: error {err}");
    }

    #[test]
    fn matches_the_definition() {
        let gqa = Heads {
            heads: 6,
            kv_heads: 2,
            dk: 20,
            dv: 20,
            scale: 0.25,
            window: None,
        };
        // a prefill, sequences continuing caches, a decode step
        check(gqa, &[(13, 0)], 16);
        check(gqa, &[(3, 5), (1, 40), (9, 0), (20, 2)], 64);
        check(
            Heads {
                window: Some(4),
                ..gqa
            },
            &[(10, 0), (2, 30)],
            32,
        );
        // latent attention's unequal key and value widths; large enough for the pool
        check(
            Heads {
                heads: 4,
                kv_heads: 4,
                dk: 48,
                dv: 32,
                scale: 0.1,
                window: None,
            },
            &[(70, 10), (33, 0)],
            128,
        );
    }
}

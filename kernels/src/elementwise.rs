//! Element-wise CPU kernels of the engine, spread over the thread pool when large: rotary
//! embedding ([`rope_rotate`]), the masked softmax of attention scores ([`masked_softmax`]), the
//! gated SiLU ([`silu_mul`]), RMS norms with or without the residual add before them
//! ([`rms_norm`], [`add_rms_norm`]), the weighted sum of expert outputs per token
//! ([`combine_experts`]) and the log-sum-exp of a row of logits ([`log_sum_exp`]), with a
//! vectorisable `eˣ` ([`exp_f32`]).

use crate::cpu::has_avx2_fma;
use rayon::prelude::*;

/// `eˣ` without a library call, so that loops over it vectorise: Cody–Waite reduction by
/// `ln 2` and Cephes' degree-6 polynomial for `expf` (within 2e-7 relative of `f32::exp`),
/// with `x` clamped to the range whose result is a normal float.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer
    let x = x.clamp(-87.3, 88.3);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    p = p * r * r + r + 1.0;
    // 2ⁿ from the integer in `t`'s low mantissa bits (an integer subtraction, which
    // vectorises where a float-to-integer cast would be done lane by lane)
    let k = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    p * f32::from_bits(((k + 127) as u32) << 23)
}

#[inline(always)]
fn silu_row(out: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + exp_f32(-g)) * u;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_row_avx2(out: &mut [f32], gate: &[f32], up: &[f32]) {
    silu_row(out, gate, up)
}

/// The gated SiLU of a fused gate/up product: `gu` holds `rows` rows of `[gate | up]`, each
/// `2·inter` wide; returns `silu(gate) · up`, `[rows, inter]`.
pub fn silu_mul(gu: &[f32], rows: usize, inter: usize) -> Vec<f32> {
    debug_assert_eq!(gu.len(), rows * 2 * inter);
    let mut h = vec![0f32; rows * inter];
    let fast = has_avx2_fma();
    for_rows(&mut h, inter, |i, out| {
        let (gate, up) = gu[i * 2 * inter..(i + 1) * 2 * inter].split_at(inter);
        #[cfg(target_arch = "x86_64")]
        if fast {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
            unsafe { silu_row_avx2(out, gate, up) };
            return;
        }
        let _ = fast;
        silu_row(out, gate, up);
    });
    h
}

/// Elements from which the element-wise kernels use the thread pool: below, handing the work
/// to other threads costs more than it saves (decode steps).
pub(crate) const PARALLEL_FROM: usize = 1 << 15;

/// Runs `f(i, row i)` over the rows of `out`, `width` elements each: on the thread pool in tasks
/// of at least ~4K elements when `out` is large, else on this thread.
pub(crate) fn for_rows(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if width == 0 {
        return;
    }
    if out.len() < PARALLEL_FROM {
        out.chunks_mut(width).enumerate().for_each(|(i, r)| f(i, r));
    } else {
        out.par_chunks_mut(width)
            .enumerate()
            .with_min_len((4096 / width).max(1))
            .for_each(|(i, r)| f(i, r));
    }
}

/// A reduction over 8 interleaved lanes (so that it vectorises), then across the lanes.
#[inline(always)]
fn lanes(x: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder().iter().fold(init, |a, &b| f(a, b));
    for c in chunks {
        for l in 0..8 {
            acc[l] = f(acc[l], c[l]);
        }
    }
    acc.iter().fold(rest, |a, &b| f(a, b))
}

/// Whether every value is finite (no NaN, no ±∞): the exponent bits of each value are or-ed
/// lane-wise against the all-ones pattern, a pass that vectorises.
pub fn all_finite(x: &[f32]) -> bool {
    const EXP: u32 = 0x7f80_0000;
    let chunks = x.chunks_exact(8);
    let mut bad = chunks.remainder().iter().any(|v| v.to_bits() & EXP == EXP);
    for c in chunks {
        let mut acc = 0u32;
        for v in c {
            acc |= u32::from(v.to_bits() & EXP == EXP);
        }
        bad |= acc != 0;
    }
    !bad
}

/// Softmax of `scale ·` attention scores in place: `scores` holds rows of `total` keys, row `r`
/// the scores of query `query(r)`, which sees only the keys `keys(query(r))`; the others get
/// probability 0. Rows are spread over the thread pool.
pub fn masked_softmax(
    scores: &mut [f32],
    total: usize,
    scale: f32,
    query: &(dyn Fn(usize) -> usize + Sync),
    keys: &(dyn Fn(usize) -> std::ops::Range<usize> + Sync),
) {
    if total == 0 {
        return;
    }
    let fast = has_avx2_fma();
    for_rows(scores, total, |r, row| {
        let seen = keys(query(r));
        let (a, b) = (seen.start.min(total), seen.end.min(total));
        #[cfg(target_arch = "x86_64")]
        if fast {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
            unsafe { softmax_row_avx2(row, a, b, scale) };
            return;
        }
        let _ = fast;
        softmax_row(row, a, b, scale);
    });
}

/// Softmax of `scale · row[a..b]` in place; the rest of the row gets 0.
#[inline(always)]
pub(crate) fn softmax_row(row: &mut [f32], a: usize, b: usize, scale: f32) {
    let (head, rest) = row.split_at_mut(a.min(b));
    head.fill(0.0);
    let (live, tail) = rest.split_at_mut(b.saturating_sub(a));
    tail.fill(0.0);
    if live.is_empty() {
        return;
    }
    for x in live.iter_mut() {
        *x *= scale;
    }
    let max = lanes(live, f32::NEG_INFINITY, f32::max);
    for x in live.iter_mut() {
        *x = exp_f32(*x - max);
    }
    let inv = 1.0 / lanes(live, 0.0, |x, y| x + y);
    for x in live.iter_mut() {
        *x *= inv;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_row_avx2(row: &mut [f32], a: usize, b: usize, scale: f32) {
    softmax_row(row, a, b, scale)
}

/// `ln Σ exp(row)` of a row of logits: the maximum taken out, the exponentials in f32 by
/// [`exp_f32`] over interleaved lanes (so that they vectorise), summed in f64 per block of 256
/// values, so that a row of tens of thousands of logits loses no precision. `-∞` for an empty
/// row.
pub fn log_sum_exp(row: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
        return unsafe { log_sum_exp_avx2(row) };
    }
    log_sum_exp_plain(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn log_sum_exp_avx2(row: &[f32]) -> f64 {
    log_sum_exp_plain(row)
}

#[inline(always)]
fn log_sum_exp_plain(row: &[f32]) -> f64 {
    if row.is_empty() {
        return f64::NEG_INFINITY;
    }
    let max = lanes(row, f32::NEG_INFINITY, f32::max);
    let sum: f64 = row
        .chunks(256)
        .map(|c| {
            let mut acc = [0f32; 8];
            let blocks = c.chunks_exact(8);
            let rest: f32 = blocks.remainder().iter().map(|&x| exp_f32(x - max)).sum();
            for b in blocks {
                for l in 0..8 {
                    acc[l] += exp_f32(b[l] - max);
                }
            }
            (acc.iter().sum::<f32>() + rest) as f64
        })
        .sum();
    max as f64 + sum.ln()
}

/// RMS norm of each row of `x` (`w.len()` values a row): `x / √(mean(x²) + eps) · w`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len();
    let mut out = vec![0f32; x.len()];
    for_rows(&mut out, d, |i, o| {
        norm_row(o, &x[i * d..(i + 1) * d], w, eps)
    });
    out
}

/// `x + a` and the RMS norm of that sum ([`rms_norm`]): a residual connection and the norm
/// that follows it, in one pass over the rows.
pub fn add_rms_norm(x: &[f32], a: &[f32], w: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = w.len();
    assert_eq!(x.len(), a.len(), "residual and update differ in size");
    let mut sum = vec![0f32; x.len()];
    let mut out = vec![0f32; x.len()];
    if d == 0 {
        return (sum, out);
    }
    let row = |i: usize, (s, o): (&mut [f32], &mut [f32])| {
        for ((s, &x), &a) in s.iter_mut().zip(&x[i * d..(i + 1) * d]).zip(&a[i * d..]) {
            *s = x + a;
        }
        norm_row(o, s, w, eps);
    };
    if x.len() < PARALLEL_FROM {
        sum.chunks_mut(d)
            .zip(out.chunks_mut(d))
            .enumerate()
            .for_each(|(i, p)| row(i, p));
    } else {
        sum.par_chunks_mut(d)
            .zip(out.par_chunks_mut(d))
            .enumerate()
            .with_min_len((4096 / d).max(1))
            .for_each(|(i, p)| row(i, p));
    }
    (sum, out)
}

#[inline(always)]
fn norm_row(o: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l] * c[l];
        }
    }
    let ss = acc.iter().sum::<f32>() + rest;
    let inv = 1.0 / (ss / x.len().max(1) as f32 + eps).sqrt();
    for ((o, &v), &g) in o.iter_mut().zip(x).zip(w) {
        *o = v * inv * g;
    }
}

/// Rotary embedding of `x` `[T, heads, 2·half]` (row-major) with `cos`/`sin` `[T, half]`: per
/// token and head, `(x₁, x₂) → (x₁·cos − x₂·sin, x₂·cos + x₁·sin)` on the two halves.
pub fn rope_rotate(x: &[f32], heads: usize, half: usize, cos: &[f32], sin: &[f32]) -> Vec<f32> {
    let row = heads * 2 * half;
    debug_assert_eq!(x.len() / row.max(1), cos.len() / half.max(1));
    let mut out = vec![0f32; x.len()];
    for_rows(&mut out, row, |t, o| {
        let xt = &x[t * row..(t + 1) * row];
        let (c, s) = (
            &cos[t * half..(t + 1) * half],
            &sin[t * half..(t + 1) * half],
        );
        for (oh, xh) in o.chunks_exact_mut(2 * half).zip(xt.chunks_exact(2 * half)) {
            rotate_head(oh, xh, c, s);
        }
    });
    out
}

/// Rotates one head's `x` (`2·half` values) into `out` by the angles whose cosines and sines
/// are `c` and `s` (the first half against the second, as [`rope_rotate`]).
#[inline(always)]
pub(crate) fn rotate_head(out: &mut [f32], x: &[f32], c: &[f32], s: &[f32]) {
    let half = c.len();
    let (x1, x2) = x.split_at(half);
    let (o1, o2) = out.split_at_mut(half);
    for i in 0..half {
        o1[i] = x1[i] * c[i] - x2[i] * s[i];
        o2[i] = x2[i] * c[i] + x1[i] * s[i];
    }
}

/// The routed experts' output `[tokens, d]`: for each token the sum, in expert order, of
/// `weight · ys[e][row]` over the experts `e` that received it. `parts[e]` lists the rows of
/// expert `e`'s output as `(token, weight)`; `ys[e]` is that output, row-major `[rows, d]`.
pub fn combine_experts(
    ys: &[Vec<f32>],
    parts: &[Vec<(u32, f32)>],
    tokens: usize,
    d: usize,
) -> Vec<f32> {
    // per token: (expert, row, weight), experts ascending
    let mut by_token: Vec<Vec<(usize, usize, f32)>> = vec![Vec::new(); tokens];
    for (e, rows) in parts.iter().enumerate() {
        for (r, &(tok, w)) in rows.iter().enumerate() {
            by_token[tok as usize].push((e, r, w));
        }
    }
    let mut out = vec![0f32; tokens * d];
    for_rows(&mut out, d, |tok, o| {
        for &(e, r, w) in &by_token[tok] {
            for (o, &y) in o.iter_mut().zip(&ys[e][r * d..(r + 1) * d]) {
                *o += w * y;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::all_finite;

    #[test]
    fn finiteness_is_seen_in_every_lane_and_the_tail() {
        let mut v = vec![1.0f32; 21];
        assert!(all_finite(&v));
        assert!(all_finite(&[]));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for i in [0, 5, 7, 8, 15, 16, 20] {
                let keep = v[i];
                v[i] = bad;
                assert!(!all_finite(&v), "{bad} at {i}");
                v[i] = keep;
            }
        }
        v[3] = f32::MAX;
        v[4] = f32::MIN_POSITIVE / 2.0;
        assert!(all_finite(&v));
    }

    use super::*;

    #[test]
    fn softmax_over_the_visible_keys() {
        // two queries over 4 keys: query 0 sees keys 0..2, query 1 keys 1..4 (a window)
        let mut s = vec![2.0, 4.0, 9.0, 9.0, 5.0, 0.0, 2.0, 4.0];
        let keys = |i: usize| if i == 0 { 0..2 } else { 1..4 };
        masked_softmax(&mut s, 4, 0.5, &|r| r, &keys);
        let e = |x: f64| x.exp();
        let want = [
            e(-1.0) / (1.0 + e(-1.0)),
            1.0 / (1.0 + e(-1.0)),
            0.0,
            0.0,
            0.0,
            e(-2.0) / (e(-2.0) + e(-1.0) + 1.0),
            e(-1.0) / (e(-2.0) + e(-1.0) + 1.0),
            1.0 / (e(-2.0) + e(-1.0) + 1.0),
        ];
        for (g, w) in s.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{s:?}");
        }
    }

    #[test]
    fn log_sum_exp_matches_f64() {
        let row: Vec<f32> = (0..49_157)
            .map(|i| ((i * 7919) % 2003) as f32 / 60.0 - 20.0)
            .collect();
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let want = max
            + row
                .iter()
                .map(|&x| (x as f64 - max).exp())
                .sum::<f64>()
                .ln();
        assert!(
            (log_sum_exp(&row) - want).abs() < 1e-5,
            "{} vs {want}",
            log_sum_exp(&row)
        );
        assert_eq!(log_sum_exp(&[2.5]), 2.5);
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
    }

    #[test]
    fn rms_norms_by_hand() {
        // rows (3, 4) and (0, 0): mean squares 12.5 and 0
        let w = [2.0, 0.5];
        let y = rms_norm(&[3.0, 4.0, 0.0, 0.0], &w, 0.0);
        let r = 12.5f32.sqrt();
        assert!((y[0] - 6.0 / r).abs() < 1e-6 && (y[1] - 2.0 / r).abs() < 1e-6);
        assert!(rms_norm(&[0.0, 0.0], &w, 1e-6).iter().all(|v| *v == 0.0));
        let (s, n) = add_rms_norm(&[1.0, 3.0], &[2.0, 1.0], &w, 0.0);
        assert_eq!(s, vec![3.0, 4.0]);
        assert!((n[0] - 6.0 / r).abs() < 1e-6 && (n[1] - 2.0 / r).abs() < 1e-6);
        // large enough for the thread pool: the same values as row by row
        let (rows, d) = (100, 576);
        let x: Vec<f32> = (0..rows * d)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let a: Vec<f32> = (0..rows * d).map(|i| ((i * 13) % 7) as f32 / 7.0).collect();
        let w: Vec<f32> = (0..d).map(|i| 1.0 + i as f32 / d as f32).collect();
        let (s, n) = add_rms_norm(&x, &a, &w, 1e-5);
        assert_eq!(n, rms_norm(&s, &w, 1e-5));
        for i in [0, d + 3, rows * d - 1] {
            assert_eq!(s[i], x[i] + a[i]);
        }
    }

    #[test]
    fn rope_by_hand() {
        // one token, two heads of 2·2: rotate (1, 2 | 3, 4) and (5, 6 | 7, 8)
        let (c, s) = ([0.5, 1.0], [2.0, 0.0]);
        let y = rope_rotate(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 2, 2, &c, &s);
        assert_eq!(y[..4], [0.5 - 6.0, 2.0, 1.5 + 2.0, 4.0]);
        assert_eq!(y[4..], [2.5 - 14.0, 6.0, 3.5 + 10.0, 8.0]);
    }

    #[test]
    fn exp_matches_the_library() {
        let mut worst = 0f32;
        for i in -87_000..88_000 {
            let x = i as f32 / 1000.0 + 0.000_37;
            let (a, b) = (exp_f32(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) > 0.0 && exp_f32(-1000.0) < 1e-37);
        assert!(exp_f32(1000.0).is_finite());
    }

    #[test]
    fn silu_mul_and_combine_by_hand() {
        // silu(0) = 0, silu(2) = 2 / (1 + e^-2)
        let h = silu_mul(&[0.0, 2.0, 5.0, 3.0, 1.0, -1.0, 0.5, 0.5], 2, 2);
        let s2 = 2.0 / (1.0 + (-2f32).exp());
        assert_eq!(h[0], 0.0);
        assert!((h[1] - s2 * 3.0).abs() < 1e-6);
        assert!((h[3] - (-1.0 / (1.0 + 1f32.exp())) * 0.5).abs() < 1e-6);
        // large enough for the thread pool: the same values as row by row
        let (rows, inter) = (40, 1024);
        let gu: Vec<f32> = (0..rows * 2 * inter)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 9.0)
            .collect();
        assert!(rows * inter >= PARALLEL_FROM);
        let h = silu_mul(&gu, rows, inter);
        for (i, y) in h.iter().enumerate() {
            let (r, c) = (i / inter, i % inter);
            let (g, u) = (gu[r * 2 * inter + c], gu[r * 2 * inter + inter + c]);
            assert!(
                (y - g / (1.0 + (-g).exp()) * u).abs() < 1e-5,
                "row {r} col {c}"
            );
        }
        // token 0 → expert 0 row 0 (w 0.25) and expert 1 row 1 (w 0.75); token 2 → expert 1 row 0
        let ys = vec![vec![4.0, 8.0], vec![1.0, 2.0, 10.0, 20.0]];
        let parts = vec![vec![(0, 0.25)], vec![(2, 1.0), (0, 0.75)]];
        let out = combine_experts(&ys, &parts, 3, 2);
        assert_eq!(out, vec![1.0 + 7.5, 2.0 + 15.0, 0.0, 0.0, 1.0, 2.0]);
    }
}

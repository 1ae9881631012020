//! Skinny CPU products `y = x · Wᵀ` for weights kept in the checkpoint layout `[n, k]` (f32 on
//! CPUs without AVX-512; with it, [`crate::packed`] serves them all): with few rows of `x`
//! (decode steps, experts that received few tokens) each weight row is read once for all rows of
//! `x`, output rows are split over the thread pool, and the inner product uses AVX2/FMA when the
//! CPU has it. Also the choice of operand order for the larger products that go to a general
//! GEMM ([`weight_major`]).

use crate::cpu::has_avx2_fma;
use rayon::prelude::*;

/// Rows of `x` up to which [`skinny_matmul`] is used.
pub const MAX_ROWS: usize = 8;

/// Output rows per task.
const CHUNK: usize = 64;

/// Whether the CPU GEMM should compute `x · Wᵀ` as `(W · xᵀ)ᵀ` for `x` `[m, k]` and `W`
/// `[n, k]`. The GEMM's microkernel runs along the output's contiguous dimension; with few rows
/// of `x` it is faster to give it the weight's rows there and transpose the small result than to
/// leave it a short dimension to tile. The crossover, measured on the engine's shapes with the
/// GEMM's AVX2 kernels (docs/PERFORMANCE.md): up to 32 rows, or 128 when the output is no wider
/// than the input. (CPUs with AVX-512 pack their f32 weights and never come here.)
pub fn weight_major(m: usize, k: usize, n: usize) -> bool {
    m <= 32 || (n <= k && m <= 128)
}

macro_rules! dot_rows {
    ($name:ident, $fma:expr) => {
        /// `out[i] = Σ_p w[p] · x[i·k + p]` for `M` rows of `x`, 16 lanes of accumulators.
        #[inline(always)]
        fn $name<const M: usize>(w: &[f32], x: &[f32], k: usize, out: &mut [f32]) {
            let mut acc = [[0f32; 16]; M];
            let full = k / 16 * 16;
            let mut p = 0;
            while p < full {
                let wv = &w[p..p + 16];
                for (i, a) in acc.iter_mut().enumerate() {
                    let xv = &x[i * k + p..i * k + p + 16];
                    for l in 0..16 {
                        a[l] = $fma(wv[l], xv[l], a[l]);
                    }
                }
                p += 16;
            }
            for (i, a) in acc.iter().enumerate() {
                let mut s: f32 = a.iter().sum();
                for q in full..k {
                    s += w[q] * x[i * k + q];
                }
                out[i] = s;
            }
        }
    };
}

dot_rows!(dot_plain, |a: f32, b: f32, c: f32| a * b + c);
dot_rows!(dot_fused, |a: f32, b: f32, c: f32| a.mul_add(b, c));

macro_rules! chunk_fn {
    ($name:ident, $dot:ident $(, #[$attr:meta])?) => {
        $(#[$attr])?
        unsafe fn $name<const M: usize>(w: &[f32], x: &[f32], k: usize, first: usize, out: &mut [f32]) {
            for (jj, o) in out.chunks_exact_mut(M).enumerate() {
                let j = first + jj;
                $dot::<M>(&w[j * k..(j + 1) * k], x, k, o);
            }
        }
    };
}

chunk_fn!(chunk_plain, dot_plain);
#[cfg(target_arch = "x86_64")]
chunk_fn!(chunk_avx2, dot_fused, #[target_feature(enable = "avx2,fma")]);

fn run<const M: usize>(x: &[f32], k: usize, w: &[f32], n: usize) -> Vec<f32> {
    // Computed output-row-major `[n, M]`, then transposed to `[M, n]`.
    let mut out_t = vec![0f32; n * M];
    let fast = has_avx2_fma();
    out_t
        .par_chunks_mut(CHUNK * M)
        .enumerate()
        .for_each(|(c, chunk)| {
            let first = c * CHUNK;
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                unsafe { chunk_avx2::<M>(w, x, k, first, chunk) };
                return;
            }
            let _ = fast;
            // SAFETY: plain Rust with no target features required.
            unsafe { chunk_plain::<M>(w, x, k, first, chunk) };
        });
    if M == 1 {
        return out_t;
    }
    let mut out = vec![0f32; n * M];
    for j in 0..n {
        for i in 0..M {
            out[i * n + j] = out_t[j * M + i];
        }
    }
    out
}

/// `y[i, j] = Σ_p x[i, p] · w[j, p]` for `x` `[m, k]` and `w` `[n, k]`, both row-major,
/// `1 ≤ m ≤ MAX_ROWS`. Returns `y` `[m, n]` row-major.
pub fn skinny_matmul(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    debug_assert_eq!(x.len(), m * k);
    debug_assert_eq!(w.len(), n * k);
    match m {
        1 => run::<1>(x, k, w, n),
        2 => run::<2>(x, k, w, n),
        3 => run::<3>(x, k, w, n),
        4 => run::<4>(x, k, w, n),
        5 => run::<5>(x, k, w, n),
        6 => run::<6>(x, k, w, n),
        7 => run::<7>(x, k, w, n),
        8 => run::<8>(x, k, w, n),
        _ => panic!("skinny_matmul takes 1 to {MAX_ROWS} rows, got {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_product() {
        for (m, k, n) in [(1, 37, 130), (3, 64, 65), (8, 100, 7), (5, 16, 200)] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 11 % 17) as f32 - 8.0) / 7.0)
                .collect();
            let y = skinny_matmul(&x, m, k, &w, n);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|p| x[i * k + p] * w[j * k + p]).sum();
                    assert!((y[i * n + j] - want).abs() < 1e-4, "{m}x{k}x{n} at {i},{j}");
                }
            }
        }
    }
}

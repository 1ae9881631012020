//! Weights packed once at load for the CPU's f32 products `y = x · Wᵀ`, and the GEMM that reads
//! them. `W` `[n, k]` is stored as panels of [`PANEL`] output columns, each `[k, PANEL]`, so the
//! kernel streams every weight exactly in the order it uses it and never re-packs it per call;
//! only `x` (the small operand) is re-laid per call, in slivers of [`SLIVER`] rows `[k, SLIVER]`.
//! The AVX-512 microkernel keeps a `SLIVER × PANEL` block of `y` in 24 registers and does 24
//! fused multiply-adds per step of `k` for 4 vector loads and 6 broadcasts; panels (and, where
//! they are too few for the threads, groups of rows) are spread over the thread pool. The same
//! layout serves decode steps (one sliver) and prefill.

use crate::cpu::has_avx512f;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Output columns per weight panel (four 16-lane vectors).
pub const PANEL: usize = 64;
/// Rows of `x` per sliver (the microkernel's rows).
pub const SLIVER: usize = 6;
/// Steps of `k` per pass over a panel's slice, so that the slice stays in cache while every
/// sliver of `x` passes over it.
const KC: usize = 128;
/// Inputs up to this size run each tile over the whole of `k`: the tile's outputs stay in
/// registers from the first step to the last and the panel (k × [`PANEL`] f32, up to 512 KiB)
/// streams from the core's L2; larger ones go in slices of [`KC`], each output block stored and
/// read back once per slice.
const WHOLE_K_UP_TO: usize = 2048;
/// Tasks per thread a product is cut into, where it has the rows for it (panels × groups of
/// slivers).
const TASKS_PER_THREAD: usize = 8;
/// Slivers per group of rows at least.
const MIN_GROUP: usize = 2;
/// Values of `x` per block of rows: each block is multiplied by every panel before the next, so
/// that it stays in the core's cache (1 MiB of f32) while the panels pass.
const BLOCK_VALUES: usize = 1 << 18;
/// Products smaller than this many multiply-adds run on the calling thread.
const PARALLEL_FROM: usize = 1 << 18;

/// A weight `[n, k]` packed into panels of [`PANEL`] columns (the last one zero-padded).
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    n: usize,
    k: usize,
    data: Vec<f32>,
}

/// Whether this CPU runs the packed kernel at full speed (AVX-512F); elsewhere the engine keeps
/// weights in the checkpoint layout and uses the other CPU paths.
pub fn supported() -> bool {
    has_avx512f()
}

/// The output pointer shared by tasks that write disjoint columns.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every task writes only the columns of its own panel.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer (a method, so that closures capture the whole `Out`).
    fn get(self) -> *mut f32 {
        self.0
    }
}

impl PackedMatrix {
    /// Packs `w` `[n, k]` (row-major).
    pub fn new(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(
            w.len(),
            n * k,
            "weight of {} values is not {n}×{k}",
            w.len()
        );
        let panels = n.div_ceil(PANEL);
        let mut data = vec![0f32; panels * k * PANEL];
        if k > 0 {
            data.par_chunks_mut(k * PANEL)
                .enumerate()
                .for_each(|(p, panel)| {
                    let first = p * PANEL;
                    for c in 0..PANEL.min(n - first) {
                        let row = &w[(first + c) * k..(first + c + 1) * k];
                        for (kk, &v) in row.iter().enumerate() {
                            panel[kk * PANEL + c] = v;
                        }
                    }
                });
        }
        PackedMatrix { n, k, data }
    }

    /// Output size `n`.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Input size `k`.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// `y = x · Wᵀ` for `x` `[m, k]` row-major; returns `y` `[m, n]` row-major.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        self.matmul_with(x, m, has_avx512f())
    }

    fn matmul_with(&self, x: &[f32], m: usize, simd: bool) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        assert_eq!(x.len(), m * k, "input of {} values is not {m}×{k}", x.len());
        if m == 0 || n == 0 || k == 0 {
            return vec![0f32; m * n];
        }
        let parallel = m * n * k >= PARALLEL_FROM;
        // Not zeroed: the first slice of `k` of every tile stores its values.
        let mut y: Vec<f32> = Vec::with_capacity(m * n);
        let xs = slivers(x, m, k, parallel);
        let panels = n.div_ceil(PANEL);
        let block = (BLOCK_VALUES / k / SLIVER).max(1) * SLIVER;
        for first in (0..m).step_by(block) {
            let rows = block.min(m - first);
            let xb = &xs[first * k..(first + rows.div_ceil(SLIVER) * SLIVER) * k];
            // SAFETY: `y` has room for m × n values, so row `first` is in bounds.
            let out = Out(unsafe { y.as_mut_ptr().add(first * n) });
            if !parallel {
                for p in 0..panels {
                    // SAFETY: as below, on one thread.
                    unsafe { self.panel(xb, rows, 0..rows.div_ceil(SLIVER), p, out.get(), simd) };
                }
                continue;
            }
            let (groups, per_group) = row_groups(panels, rows.div_ceil(SLIVER));
            (0..groups * panels).into_par_iter().for_each(|t| {
                let (g, p) = (t / panels, t % panels);
                let slivers = g * per_group..((g + 1) * per_group).min(rows.div_ceil(SLIVER));
                // SAFETY: `out` addresses `rows` rows of `y`; task (g, p) writes only the
                // columns of panel p in the rows of sliver group g, which no other task writes,
                // and `y` outlives the loop.
                unsafe { self.panel(xb, rows, slivers, p, out.get(), simd) }
            });
        }
        // SAFETY: every row of every panel has been stored (rows < m, columns < n).
        unsafe { y.set_len(m * n) };
        y
    }

    /// Computes the columns of panel `p` for the rows of `slivers` (of `m` rows in all).
    ///
    /// # Safety
    /// `y` must point to `m × n` writable values that no one else writes in these columns of
    /// these rows.
    unsafe fn panel(
        &self,
        xs: &[f32],
        m: usize,
        slivers: Range<usize>,
        p: usize,
        y: *mut f32,
        simd: bool,
    ) {
        let (n, k) = (self.n, self.k);
        let cols = PANEL.min(n - p * PANEL);
        let w = &self.data[p * k * PANEL..(p + 1) * k * PANEL];
        let step = if k <= WHOLE_K_UP_TO { k } else { KC };
        let mut k0 = 0;
        while k0 < k {
            let kc = step.min(k - k0);
            for s in slivers.clone() {
                let rows = SLIVER.min(m - s * SLIVER);
                let tile = Tile {
                    x: &xs[s * k * SLIVER + k0 * SLIVER..s * k * SLIVER + (k0 + kc) * SLIVER],
                    w: &w[k0 * PANEL..(k0 + kc) * PANEL],
                    y: y.add(s * SLIVER * n + p * PANEL),
                    ldy: n,
                    rows,
                    cols,
                    first: k0 == 0,
                };
                #[cfg(target_arch = "x86_64")]
                if simd {
                    match rows {
                        1 => avx512::tile::<1>(&tile),
                        2 => avx512::tile::<2>(&tile),
                        3 => avx512::tile::<3>(&tile),
                        4 => avx512::tile::<4>(&tile),
                        5 => avx512::tile::<5>(&tile),
                        _ => avx512::tile::<6>(&tile),
                    }
                    continue;
                }
                let _ = simd;
                portable_tile(&tile);
            }
            k0 += kc;
        }
    }
}

/// How a block of `slivers` slivers of rows is cut for `panels` panels: (groups, slivers per
/// group). Where the panels alone are too few to keep every thread busy to the end (a `[576, k]`
/// weight has 9 panels: 5 and 4 on two threads), the slivers are cut into groups of at least
/// [`MIN_GROUP`] so that there are up to [`TASKS_PER_THREAD`] tasks per thread; every group
/// streams the whole panel, so a few rows are not cut.
fn row_groups(panels: usize, slivers: usize) -> (usize, usize) {
    let want = TASKS_PER_THREAD * rayon::current_num_threads();
    let groups = want.div_ceil(panels).clamp(1, (slivers / MIN_GROUP).max(1));
    let per_group = slivers.div_ceil(groups).max(1);
    (slivers.div_ceil(per_group).max(1), per_group)
}

/// `x` `[m, k]` re-laid as slivers of [`SLIVER`] rows, each `[k, SLIVER]` (the last one
/// zero-padded); on the thread pool where `parallel`.
fn slivers(x: &[f32], m: usize, k: usize, parallel: bool) -> Vec<f32> {
    let len = m.div_ceil(SLIVER) * k * SLIVER;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let fill = |(s, sliver): (usize, &mut [MaybeUninit<f32>])| {
        let rows = SLIVER.min(m - s * SLIVER);
        let block = &x[s * SLIVER * k..(s * SLIVER + rows) * k];
        if rows == SLIVER {
            // written in order, read from six rows at once
            let r: [&[f32]; SLIVER] = std::array::from_fn(|i| &block[i * k..(i + 1) * k]);
            for (kk, dst) in sliver.chunks_exact_mut(SLIVER).enumerate() {
                for (o, row) in dst.iter_mut().zip(&r) {
                    o.write(row[kk]);
                }
            }
            return;
        }
        for (kk, dst) in sliver.chunks_exact_mut(SLIVER).enumerate() {
            for (i, o) in dst.iter_mut().enumerate() {
                o.write(if i < rows { block[i * k + kk] } else { 0.0 });
            }
        }
    };
    let spare = &mut out.spare_capacity_mut()[..len];
    if parallel {
        spare
            .par_chunks_exact_mut(k * SLIVER)
            .enumerate()
            .for_each(fill);
    } else {
        spare
            .chunks_exact_mut(k * SLIVER)
            .enumerate()
            .for_each(fill);
    }
    // SAFETY: every value of every sliver has been written above.
    unsafe { out.set_len(len) };
    out
}

/// One block of the product: a sliver of `x` against a panel, over one slice of `k`.
struct Tile<'a> {
    /// `[kc, SLIVER]`.
    x: &'a [f32],
    /// `[kc, PANEL]`.
    w: &'a [f32],
    /// Top-left output value; rows `ldy` apart.
    y: *mut f32,
    ldy: usize,
    /// Valid rows (≤ SLIVER) and columns (≤ PANEL).
    rows: usize,
    cols: usize,
    /// Whether to store (first slice of `k`; the output may be uninitialised) or add to what
    /// is there.
    first: bool,
}

/// The tile in plain Rust, for CPUs without AVX-512 (and as the reference in tests).
///
/// # Safety
/// `tile.y` must address `rows` rows of `cols` writable values, `ldy` apart.
unsafe fn portable_tile(tile: &Tile) {
    let mut acc = [[0f32; PANEL]; SLIVER];
    for (xk, wk) in tile.x.chunks_exact(SLIVER).zip(tile.w.chunks_exact(PANEL)) {
        for (a, &xv) in acc.iter_mut().zip(xk) {
            for (o, &wv) in a.iter_mut().zip(wk) {
                *o += xv * wv;
            }
        }
    }
    for (r, a) in acc.iter().enumerate().take(tile.rows) {
        for (c, &v) in a.iter().enumerate().take(tile.cols) {
            // Raw writes: on the first slice of `k` the output is not initialised yet.
            let o = tile.y.add(r * tile.ldy + c);
            *o = if tile.first { v } else { *o + v };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Tile, PANEL, SLIVER};
    use std::arch::x86_64::*;

    /// Lanes of vector `v` (0..4) that hold one of the first `cols` columns.
    fn mask(cols: usize, v: usize) -> __mmask16 {
        let lanes = cols.saturating_sub(16 * v).min(16);
        ((1u32 << lanes) - 1) as __mmask16
    }

    /// The tile for its first `R` rows.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `tile.y` must address `R` rows of `cols` writable values,
    /// `ldy` apart.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile<const R: usize>(tile: &Tile) {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let (x, w) = (tile.x.as_ptr(), tile.w.as_ptr());
        for p in 0..tile.x.len() / SLIVER {
            let wp = w.add(p * PANEL);
            let wv = [
                _mm512_loadu_ps(wp),
                _mm512_loadu_ps(wp.add(16)),
                _mm512_loadu_ps(wp.add(32)),
                _mm512_loadu_ps(wp.add(48)),
            ];
            for (r, a) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(*x.add(p * SLIVER + r));
                for (av, &v) in a.iter_mut().zip(&wv) {
                    *av = _mm512_fmadd_ps(b, v, *av);
                }
            }
        }
        let masks = [
            mask(tile.cols, 0),
            mask(tile.cols, 1),
            mask(tile.cols, 2),
            mask(tile.cols, 3),
        ];
        for (r, a) in acc.iter().enumerate() {
            let row = tile.y.add(r * tile.ldy);
            for (v, (&av, &mk)) in a.iter().zip(&masks).enumerate() {
                if mk == 0 {
                    continue;
                }
                let dst = row.add(16 * v);
                let sum = if tile.first {
                    av
                } else {
                    _mm512_add_ps(av, _mm512_maskz_loadu_ps(mk, dst))
                };
                _mm512_mask_storeu_ps(dst, mk, sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k).map(|p| x[i * k + p] * w[j * k + p]).sum();
            }
        }
        y
    }

    /// Largest error relative to `1 + |want|`.
    fn error(got: &[f32], want: &[f32]) -> f32 {
        assert_eq!(got.len(), want.len());
        got.iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
            .fold(0f32, f32::max)
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104729) % 2003) as f32 / 1001.0 - 1.0)
            .collect()
    }

    #[test]
    fn matches_the_plain_product_on_ragged_shapes() {
        // rows below, at and above a sliver and across blocks of rows; columns below, at and across
        // panels; k across slices
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 17, 64),
            (5, 300, 63),
            (6, 256, 65),
            (7, 513, 130),
            (13, 64, 200),
            (40, 1024, 96),
            (300, 2000, 70),
            (9, 2305, 65), // slices of `k` (above WHOLE_K_UP_TO)
        ] {
            let (x, w) = (values(m * k, 1), values(n * k, 2));
            let want = plain(&x, m, k, &w, n);
            let p = PackedMatrix::new(&w, n, k);
            assert_eq!((p.rows(), p.cols()), (n, k));
            for simd in [false, supported()] {
                let err = error(&p.matmul_with(&x, m, simd), &want);
                assert!(err < 1e-5, "{m}×{k}×{n} simd {simd}: error {err}");
            }
        }
    }

    #[test]
    fn large_products_use_the_pool_and_agree() {
        // few panels (rows cut into groups), whole `k` and slices of `k`
        for (m, k, n) in [(70, 700, 300), (40, 2200, 130), (500, 64, 64)] {
            assert!(m * n * k >= PARALLEL_FROM);
            let (x, w) = (values(m * k, 3), values(n * k, 4));
            let want = plain(&x, m, k, &w, n);
            let err = error(&PackedMatrix::new(&w, n, k).matmul(&x, m), &want);
            assert!(err < 1e-5, "{m}×{k}×{n}: error {err}");
        }
    }

    #[test]
    fn row_groups_cover_every_sliver_once() {
        for panels in [1, 2, 9, 15, 768] {
            for slivers in [1, 2, 3, 5, 74, 75] {
                let (groups, per) = row_groups(panels, slivers);
                assert!(groups >= 1 && per >= 1);
                assert!(groups == 1 || per >= MIN_GROUP, "{panels} {slivers}");
                // the groups end exactly at the last sliver, none empty
                assert!((groups - 1) * per < slivers && groups * per >= slivers);
            }
        }
        // with two threads or more, a weight of 9 panels over 74 slivers is cut by rows; one of
        // 768 panels never is
        if rayon::current_num_threads() > 1 {
            assert!(row_groups(9, 74).0 > 1);
        }
        assert_eq!(row_groups(768, 74).0, 1);
    }

    #[test]
    fn empty_inputs_give_empty_or_zero_outputs() {
        let p = PackedMatrix::new(&values(3 * 4, 5), 3, 4);
        assert!(p.matmul(&[], 0).is_empty());
        let z = PackedMatrix::new(&[], 3, 0);
        assert_eq!(z.matmul(&[], 2), vec![0f32; 6]);
    }
}

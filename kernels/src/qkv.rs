//! The split of a pass's fused query/key/value projections on the host: queries rotated,
//! keys rotated and values laid out per sequence in the layout its KV cache appends, in one
//! pass ([`split_qkv_rope`]).

use crate::elementwise::{for_rows, rotate_head, PARALLEL_FROM};
use rayon::prelude::*;

/// The shapes of a pass's fused query/key/value projections for [`split_qkv_rope`].
#[derive(Debug, Clone, Copy)]
pub struct QkvShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Values per head (every head rotated whole: `2·half`).
    pub head_dim: usize,
}

/// Splits the fused projections `qkv` `[T, (heads + 2·kv_heads)·d]` of a pass into the queries,
/// rotated, `[T, heads, d]`, and the keys, rotated, and the values, each laid out sequence after
/// sequence and, within a sequence, head-major `[kv_heads, len, d]` (the layout a sequence's
/// cache appends). `seqs` lists each sequence's `(first row, rows)` in the pass, in order and
/// covering every row; `cos` and `sin` are `[T, d/2]`. One pass over `qkv` in place of a copy
/// per part, a rotation per part and a transposition of keys and values per sequence.
pub fn split_qkv_rope(
    qkv: &[f32],
    shape: QkvShape,
    cos: &[f32],
    sin: &[f32],
    seqs: &[(usize, usize)],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let QkvShape {
        heads,
        kv_heads,
        head_dim: d,
    } = shape;
    let half = d / 2;
    let width = (heads + 2 * kv_heads) * d;
    let rows = qkv.len().checked_div(width).unwrap_or(0);
    debug_assert_eq!(2 * half, d);
    debug_assert_eq!(cos.len(), rows * half);
    debug_assert_eq!(seqs.iter().map(|s| s.1).sum::<usize>(), rows);
    let mut q = vec![0f32; rows * heads * d];
    for_rows(&mut q, heads * d, |t, out| {
        let x = &qkv[t * width..t * width + heads * d];
        let (c, s) = (
            &cos[t * half..(t + 1) * half],
            &sin[t * half..(t + 1) * half],
        );
        for (o, xh) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            rotate_head(o, xh, c, s);
        }
    });
    // one block [len, d] per (sequence, kv head), in output order
    let blocks: Vec<(usize, usize)> = seqs
        .iter()
        .flat_map(|&(first, _)| (0..kv_heads).map(move |h| (first, h)))
        .collect();
    let lens: Vec<usize> = seqs
        .iter()
        .flat_map(|&(_, len)| std::iter::repeat_n(len, kv_heads))
        .collect();
    let lay = |rotate: bool, part: usize| -> Vec<f32> {
        let mut out = vec![0f32; rows * kv_heads * d];
        let mut rest = out.as_mut_slice();
        let mut pieces = Vec::with_capacity(blocks.len());
        for &len in &lens {
            let (piece, tail) = std::mem::take(&mut rest).split_at_mut(len * d);
            pieces.push(piece);
            rest = tail;
        }
        let fill = |((first, h), piece): (&(usize, usize), &mut &mut [f32])| {
            let col = (heads + part * kv_heads + h) * d;
            for (i, o) in piece.chunks_exact_mut(d.max(1)).enumerate() {
                let t = first + i;
                let x = &qkv[t * width + col..t * width + col + d];
                if rotate {
                    let (c, s) = (
                        &cos[t * half..(t + 1) * half],
                        &sin[t * half..(t + 1) * half],
                    );
                    rotate_head(o, x, c, s);
                } else {
                    o.copy_from_slice(x);
                }
            }
        };
        if rows * kv_heads * d < PARALLEL_FROM {
            blocks.iter().zip(pieces.iter_mut()).for_each(fill);
        } else {
            blocks.par_iter().zip(pieces.par_iter_mut()).for_each(fill);
        }
        out
    };
    let k = lay(true, 0);
    let v = lay(false, 1);
    (q, k, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elementwise::rope_rotate;

    #[test]
    fn split_qkv_rope_matches_split_then_rotate_then_transpose() {
        // 3 query heads and 1 key/value head, then 4 and 2; head size 4; three sequences of
        // 2, 1 and 3 rows; sizes both under and over the threshold of the thread pool
        for (heads, kv_heads, seqs) in [
            (3, 1, vec![(0, 2), (2, 1), (3, 3)]),
            (4, 2, vec![(0, 700), (700, 1), (701, 900)]),
        ] {
            let d = 4;
            let rows: usize = seqs.iter().map(|s: &(usize, usize)| s.1).sum();
            let width = (heads + 2 * kv_heads) * d;
            let qkv: Vec<f32> = (0..rows * width).map(|i| (i % 97) as f32 - 48.0).collect();
            let cos: Vec<f32> = (0..rows * 2)
                .map(|i| ((i % 13) as f32 * 0.3).cos())
                .collect();
            let sin: Vec<f32> = (0..rows * 2)
                .map(|i| ((i % 13) as f32 * 0.3).sin())
                .collect();
            let shape = QkvShape {
                heads,
                kv_heads,
                head_dim: d,
            };
            let (q, k, v) = split_qkv_rope(&qkv, shape, &cos, &sin, &seqs);
            let part = |from: usize, n: usize| -> Vec<f32> {
                (0..rows)
                    .flat_map(|t| qkv[t * width + from * d..t * width + (from + n) * d].to_vec())
                    .collect()
            };
            assert_eq!(q, rope_rotate(&part(0, heads), heads, 2, &cos, &sin));
            let kr = rope_rotate(&part(heads, kv_heads), kv_heads, 2, &cos, &sin);
            let vr = part(heads + kv_heads, kv_heads);
            // [T, hkv, d] -> per sequence [hkv, len, d]
            let lay = |x: &[f32]| -> Vec<f32> {
                let mut out = Vec::new();
                for &(first, len) in &seqs {
                    for h in 0..kv_heads {
                        for t in first..first + len {
                            let at = (t * kv_heads + h) * d;
                            out.extend_from_slice(&x[at..at + d]);
                        }
                    }
                }
                out
            };
            assert_eq!(k, lay(&kr));
            assert_eq!(v, lay(&vr));
        }
    }
}

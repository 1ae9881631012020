//! moecap's kernels: the CPU products and element-wise steps of the MoE engine, on plain slices
//! (no tensor library), each with its tests and a plain reference. [`packed`]: weights packed
//! once into column panels and an AVX-512 GEMM over them (prefill and decode on CPUs that have
//! it); [`skinny`]: products with few rows against checkpoint-layout weights (other CPUs);
//! [`attention`]: causal attention of a pass against each sequence's cache;
//! [`qkv`]: the split of fused query/key/value projections with their rotation;
//! [`elementwise`]: rotary embedding, masked softmax, gated SiLU and the weighted combine of
//! expert outputs; [`cpu`]: what the CPU supports, detected once. The CUDA kernels of the engine
//! join this crate under `cuda/` (see the project's docs/ARCHITECTURE.md).

pub mod attention;
pub mod cpu;
pub mod elementwise;
pub mod packed;
pub mod qkv;
pub mod skinny;

pub use attention::{attend, Heads, SeqKv};
pub use elementwise::{
    add_rms_norm, all_finite, combine_experts, exp_f32, log_sum_exp, masked_softmax, rms_norm,
    rope_rotate, silu_mul,
};
pub use packed::PackedMatrix;
pub use qkv::{split_qkv_rope, QkvShape};
pub use skinny::{skinny_matmul, weight_major, MAX_ROWS};

//! `y = x · Wᵀ` in f32 on the CPU on the shapes of `mixtral-mid` (hidden 1024, experts of
//! 2048): the engine's packed GEMM against candle's matmul (in the operand order the engine
//! used with it, `(W · xᵀ)ᵀ` up to 128 rows), for a decode step (1 row), a batch-1 prefill expert (32 rows) and a batch-8 prefill
//! expert (256 rows). Without AVX-512 only candle's is measured.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use moecap_kernels::packed::{self, PackedMatrix};

fn gemm(c: &mut Criterion) {
    let dev = Device::Cpu;
    for (what, k, n) in [("gate_up", 1024, 4096), ("down", 2048, 1024)] {
        let mut g = c.benchmark_group(format!("gemm_{what}_{k}x{n}"));
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).expect("weight");
        let wv = w
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("weight values");
        let p = packed::supported().then(|| PackedMatrix::new(&wv, n, k));
        for m in [1usize, 32, 256] {
            g.throughput(Throughput::Elements((2 * m * n * k) as u64));
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev).expect("input");
            let xv = x
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("input values");
            g.bench_with_input(BenchmarkId::new("candle", m), &x, |b, x| {
                b.iter(|| {
                    if m <= 128 {
                        w.matmul(&x.t().expect("t"))
                            .and_then(|y| y.t()?.contiguous())
                            .expect("matmul")
                    } else {
                        x.matmul(&w.t().expect("t")).expect("matmul")
                    }
                })
            });
            if let Some(p) = &p {
                g.bench_with_input(BenchmarkId::new("packed", m), &xv, |b, xv| {
                    b.iter(|| p.matmul(xv, m))
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, gemm);
criterion_main!(benches);

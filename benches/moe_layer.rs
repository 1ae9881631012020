//! One MoE layer forward (router, routed experts, combine) of the Mixtral-shaped synthetic model
//! `mixtral-mid` (hidden 1024, 8 experts of 2048, top-2) at batch 1 and 32, f32 on CPU.

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use moecap::engine::load::Loader;
use moecap::engine::moe::FeedForward;
use moecap::engine::synthetic::synthetic_weights;
use moecap::model::synthetic::synthetic_desc;

fn moe_layer(c: &mut Criterion) {
    let mut desc = synthetic_desc("mixtral-mid").expect("synthetic model");
    desc.layers.truncate(1);
    let w = synthetic_weights(&desc, 0).expect("weights");
    let ld = Loader::new(&desc, &w, DType::F32, &Device::Cpu);
    let FeedForward::Moe(block) = FeedForward::new(&ld, 0).expect("layer") else {
        panic!("layer 0 of mixtral-mid is a MoE layer");
    };
    let mut g = c.benchmark_group("moe_layer_mixtral_mid");
    for batch in [1usize, 32] {
        let x = Tensor::randn(0f32, 1.0, (batch, desc.hidden_size), &Device::Cpu).expect("input");
        g.bench_with_input(BenchmarkId::from_parameter(batch), &x, |b, x| {
            b.iter(|| {
                let routing = block.route(x).expect("route");
                block.experts(x, &routing).expect("experts")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, moe_layer);
criterion_main!(benches);

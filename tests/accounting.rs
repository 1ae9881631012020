//! Bytes and FLOPs of one pass against hand calculations (docs/metrics.md §2), KV sizes for GQA
//! and both MLA caches, and the uniform-routing expectation.

use moecap::accounting::{uniform_expected_experts, Accountant, Precision};
use moecap::model::config::parse_config;
use moecap::model::dtype::DType;
use moecap::model::presets::{find_preset, preset_desc};
use moecap::records::{KvCacheKind, SeqSlice};

/// Two MoE layers, d=16, 2 heads of 8 (1 KV head), 4 experts of intermediate 4, top-2, vocab 10.
pub const TINY: &str = r#"{"architectures":["MixtralForCausalLM"],"hidden_size":16,"num_hidden_layers":2,
  "num_attention_heads":2,"num_key_value_heads":1,"vocab_size":10,"intermediate_size":4,
  "num_local_experts":4,"num_experts_per_tok":2}"#;

#[test]
fn decode_pass_by_hand() {
    let d = parse_config(TINY, "tiny").unwrap();
    let a = Accountant::new(&d, Precision::uniform(DType::F32), KvCacheKind::Gqa);
    // per layer: attention 16·16 + 2·16·8 + 16·16 = 768, router 4·16 = 64, norms 32,
    // one expert 3·16·4 = 192; KV per token 2 layers · 2·1·8 = 32 elements.
    assert_eq!(a.kv_elements_per_token, 32);
    let c = a.pass_cost(&[SeqSlice { cached: 3, new: 1 }], &[2.0, 2.0], 1);
    // weights: 2·(768+64+32) + 4·192 + head 160 + 1 embedding row 16 + final norm 16 = 2688 elems
    assert_eq!(c.weight_bytes, 2688.0 * 4.0);
    // KV: read 3 cached + write 1, 32 elements each, 4 bytes
    assert_eq!(c.kv_bytes, 4.0 * 32.0 * 4.0);
    // FLOPs: 2·(768+64)·2 layers + 2·2·192·2 layers + attention 2·2·(8+8)·4 keys·2 layers + logits 2·16·10
    assert_eq!(c.flops, 3328.0 + 1536.0 + 512.0 + 320.0);
    assert_eq!(c.attention_flops, 512.0);
    // dense view: all 4 experts read and computed
    assert_eq!(c.dense_weight_bytes, (1728.0 + 8.0 * 192.0 + 192.0) * 4.0);
    assert_eq!(c.dense_flops, 3328.0 + 3072.0 + 512.0 + 320.0);
}

#[test]
fn prefill_is_causal_not_quadratic() {
    let d = parse_config(TINY, "tiny").unwrap();
    let a = Accountant::new(&d, Precision::uniform(DType::F32), KvCacheKind::Gqa);
    let seqs = [
        SeqSlice { cached: 0, new: 3 },
        SeqSlice { cached: 0, new: 2 },
    ];
    assert_eq!(seqs[0].attended_keys(), 6); // 1+2+3, not 9
    let c = a.pass_cost(&seqs, &[4.0, 3.0], 2);
    assert_eq!(
        c.weight_bytes,
        (1728.0 + 7.0 * 192.0 + 160.0 + 5.0 * 16.0 + 16.0) * 4.0
    );
    assert_eq!(c.kv_bytes, 5.0 * 32.0 * 4.0);
    // 5 tokens · 4864 + attention (6+3 keys) · 64 · 2 layers + 2 logits positions · 320
    assert_eq!(c.flops, 5.0 * 4864.0 + 9.0 * 128.0 + 2.0 * 320.0);
    // with cached context: 2 new tokens after 10 cached attend 11 and 12 keys
    assert_eq!(SeqSlice { cached: 10, new: 2 }.attended_keys(), 23);
}

#[test]
fn separate_weight_and_kv_precision() {
    let d = parse_config(TINY, "tiny").unwrap();
    let a = Accountant::new(
        &d,
        Precision {
            weight: 1.0,
            kv: 2.0,
        },
        KvCacheKind::Gqa,
    );
    let c = a.pass_cost(&[SeqSlice { cached: 3, new: 1 }], &[2.0, 2.0], 1);
    assert_eq!(c.weight_bytes, 2688.0);
    assert_eq!(c.kv_bytes, 4.0 * 32.0 * 2.0);
}

#[test]
fn mixtral_decode_by_hand() {
    let d = preset_desc(find_preset("mixtral-8x7b").unwrap()).unwrap();
    let a = Accountant::new(&d, Precision::uniform(DType::Bf16), KvCacheKind::Gqa);
    let c = a.pass_cost(
        &[SeqSlice {
            cached: 511,
            new: 1,
        }],
        &[2.0; 32],
        1,
    );
    let layer_fixed = 41_943_040.0 + 32_768.0 + 8_192.0;
    let expert = 176_160_768.0;
    let w = 32.0 * layer_fixed + 64.0 * expert + 131_072_000.0 + 4096.0 + 4096.0;
    assert_eq!(c.weight_bytes, 2.0 * w);
    assert_eq!(c.kv_bytes, 512.0 * 65_536.0 * 2.0);
    let f = 32.0 * 2.0 * (41_943_040.0 + 32_768.0)
        + 32.0 * 2.0 * 2.0 * expert
        + 32.0 * 2.0 * 32.0 * 256.0 * 512.0
        + 2.0 * 4096.0 * 32_000.0;
    assert_eq!(c.flops, f);
}

#[test]
fn mla_cache_latent_and_decompressed() {
    let d = preset_desc(find_preset("deepseek-v2-lite").unwrap()).unwrap();
    let latent = Accountant::new(&d, Precision::uniform(DType::Bf16), KvCacheKind::MlaLatent);
    assert_eq!(latent.kv_elements_per_token, 27 * (512 + 64));
    let full = Accountant::new(
        &d,
        Precision::uniform(DType::Bf16),
        KvCacheKind::MlaDecompressed,
    );
    assert_eq!(full.kv_elements_per_token, 27 * 16 * (128 + 64 + 128));
    assert_eq!(KvCacheKind::default_for(&d), KvCacheKind::MlaLatent);
    assert!(KvCacheKind::parse_for(&d, "compressed").is_err());
    // MLA attention FLOPs use d_qk = 192 and d_v = 128 per head
    let c = latent.pass_cost(
        &[SeqSlice { cached: 0, new: 1 }],
        &latent.expected_activated(1),
        1,
    );
    assert_eq!(c.attention_flops, 27.0 * 2.0 * 16.0 * (192.0 + 128.0));
    let mixtral = preset_desc(find_preset("mixtral-8x7b").unwrap()).unwrap();
    assert!(KvCacheKind::parse_for(&mixtral, "latent").is_err());
}

#[test]
fn uniform_expectation() {
    assert_eq!(uniform_expected_experts(8, 2, 1), 2.0);
    assert_eq!(
        uniform_expected_experts(8, 2, 2),
        8.0 * (1.0 - 0.75f64 * 0.75)
    );
    assert!((uniform_expected_experts(8, 2, 1000) - 8.0).abs() < 1e-9);
    assert_eq!(uniform_expected_experts(0, 0, 5), 0.0);
    let d = preset_desc(find_preset("deepseek-v2-lite").unwrap()).unwrap();
    let a = Accountant::new(&d, Precision::uniform(DType::Bf16), KvCacheKind::MlaLatent);
    let e = a.expected_activated(1);
    assert_eq!(e[0], 0.0); // dense layer
    assert_eq!(e[1], 6.0);
}

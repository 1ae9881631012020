//! Utilisation from records: the exact time-weighted metrics against hand calculations, the
//! moecap-compat formula against the published worked example and hand calculations, and the
//! record-format error paths.

use moecap::accounting::compat::{
    compat_pass, compat_peaks, compat_phase, CompatModel, CompatPass,
};
use moecap::accounting::metrics::exact_metrics;
use moecap::accounting::{Accountant, Precision};
use moecap::machine::hardware::HardwareTable;
use moecap::machine::hardware::Peaks;
use moecap::model::config::parse_config;
use moecap::model::dtype::DType;
use moecap::model::presets::{find_preset, preset_desc};
use moecap::records::{parse_records, Records};
use moecap::records::{KvCacheKind, Phase};

const TINY: &str = r#"{"architectures":["MixtralForCausalLM"],"hidden_size":16,"num_hidden_layers":2,
  "num_attention_heads":2,"num_key_value_heads":1,"vocab_size":10,"intermediate_size":4,
  "num_local_experts":4,"num_experts_per_tok":2}"#;

fn native(text: &str) -> Vec<moecap::records::PassRecord> {
    match parse_records(text, "r.jsonl").unwrap() {
        Records::Native(v) => v,
        Records::Harness { .. } => panic!("expected native records"),
    }
}

#[test]
fn exact_metrics_are_time_weighted() {
    let d = parse_config(TINY, "tiny").unwrap();
    let a = Accountant::new(&d, Precision::uniform(DType::F32), KvCacheKind::Gqa);
    let recs = native(concat!(
        r#"{"phase":"decode","latency_s":0.001,"cached_tokens":[3],"new_tokens":[1],"experts":{"0":[1,3],"1":2}}"#,
        "\n\n",
        r#"{"phase":"decode","latency_s":0.003,"cached_tokens":[3],"new_tokens":[1],"experts":{"0":[0,0,2],"1":[3,1]}}"#,
        "\n",
        r#"{"phase":"prefill","latency_s":0.01,"cached_tokens":[0,0],"new_tokens":[3,2],"experts":{"0":4,"1":[0,1,2]}}"#,
    ));
    let peaks = Peaks {
        bandwidth_bytes_per_s: 1e7,
        flops_per_s: 1e7,
    };
    let (pre, dec) = exact_metrics(&a, &recs, peaks, "r.jsonl").unwrap();
    let dec = dec.unwrap();
    // Each decode pass: 11264 bytes, 5696 FLOPs (tests/accounting.rs); total time 4 ms.
    assert_eq!(dec.passes, 2);
    assert!((dec.s_mbu - 2.0 * 11264.0 / 0.004 / 1e7).abs() < 1e-12);
    assert!((dec.s_mfu - 2.0 * 5696.0 / 0.004 / 1e7).abs() < 1e-12);
    assert!((dec.mbu - 2.0 * (13824.0 + 512.0) / 0.004 / 1e7).abs() < 1e-12);
    assert!((dec.mfu - 2.0 * 7232.0 / 0.004 / 1e7).abs() < 1e-12);
    assert!((dec.tokens_per_s - 500.0).abs() < 1e-9);
    assert!((dec.mean_latency_s - 0.002).abs() < 1e-15);
    assert_eq!(dec.mean_activated_experts, Some(2.0));
    assert_eq!(dec.per_layer[0].min, 2.0);
    let pre = pre.unwrap();
    assert!((pre.s_mbu - (13312.0 + 640.0) / 0.01 / 1e7).abs() < 1e-12);
    assert!((pre.s_mfu - 26112.0 / 0.01 / 1e7).abs() < 1e-12);
    assert_eq!(pre.per_layer[1].max, 3.0);
    assert!((pre.per_layer[0].uniform - 4.0 * (1.0 - 0.5f64.powi(5))).abs() < 1e-12);
}

#[test]
fn record_errors_name_the_line() {
    let d = parse_config(TINY, "tiny").unwrap();
    let a = Accountant::new(&d, Precision::uniform(DType::F32), KvCacheKind::Gqa);
    let peaks = Peaks {
        bandwidth_bytes_per_s: 1.0,
        flops_per_s: 1.0,
    };
    let ok = r#"{"phase":"decode","latency_s":0.001,"cached_tokens":[3],"new_tokens":[1],"experts":{"0":[1,3],"1":2}}"#;
    for (bad, needle) in [
        (
            r#"{"phase":"decode","latency_s":0.001,"cached_tokens":[3],"new_tokens":[1],"experts":{"0":[1,9],"1":2}}"#,
            "expert 9",
        ),
        (
            r#"{"phase":"decode","latency_s":0.001,"cached_tokens":[3],"new_tokens":[1],"experts":{"0":[1,3]}}"#,
            "MoE layer 1 is missing",
        ),
        (
            r#"{"phase":"decode","latency_s":0.001,"cached_tokens":[3],"new_tokens":[1],"experts":{"0":[1,3],"1":2,"5":1}}"#,
            "layer 5 does not exist",
        ),
        (
            r#"{"phase":"decode","latency_s":0.001,"cached_tokens":[3],"new_tokens":[1],"experts":{"0":[0,1,2],"1":2}}"#,
            "at most 2",
        ),
        (
            r#"{"phase":"decode","latency_s":0.001,"cached_tokens":[3],"new_tokens":[1],"experts":{"x":1,"0":2,"1":2}}"#,
            "not a layer index",
        ),
        (
            r#"{"phase":"decode","latency_s":0.001,"cached_tokens":[3],"new_tokens":[1],"experts":{"0":[1],"1":2}}"#,
            "1 activated experts, but each token activates 2",
        ),
    ] {
        let recs = native(&format!("{ok}\n{bad}\n"));
        let e = exact_metrics(&a, &recs, peaks, "r.jsonl")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("r.jsonl:2:") && e.contains(needle), "{e}");
    }
    for (bad, needle) in [
        ("{", "invalid JSON"),
        (
            r#"{"phase":"decode","latency_s":0,"cached_tokens":[3],"new_tokens":[1]}"#,
            "latency_s",
        ),
        (
            r#"{"phase":"decode","latency_s":1,"cached_tokens":[3,4],"new_tokens":[1]}"#,
            "cached_tokens has 2",
        ),
        (
            r#"{"phase":"decode","latency_s":1,"cached_tokens":[3],"new_tokens":[2]}"#,
            "exactly one",
        ),
        (
            r#"{"phase":"warmup","latency_s":1,"cached_tokens":[3],"new_tokens":[1]}"#,
            "not a moecap pass record",
        ),
        (
            r#"{"phase":"prefill","latency_s":1,"cached_tokens":[],"new_tokens":[]}"#,
            "empty",
        ),
        (
            r#"{"forward_mode":"decode","expert_activation":2,"batch_size":1,"seq_lens_sum":5,"tpot":0.1}"#,
            "mixes record formats",
        ),
    ] {
        let e = parse_records(&format!("{ok}\n{bad}\n"), "r.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("r.jsonl:2:") && e.contains(needle),
            "{bad}: {e}"
        );
    }
    assert!(parse_records("\n\n", "r.jsonl")
        .unwrap_err()
        .to_string()
        .contains("no records"));
}

fn h100x2() -> Peaks {
    let t = HardwareTable::builtin().unwrap();
    compat_peaks(t.find("H100-SXM-80GB").unwrap(), DType::Bf16, 2).unwrap()
}

#[test]
fn compat_reproduces_the_published_worked_example() {
    let d = preset_desc(find_preset("mixtral-8x7b").unwrap()).unwrap();
    let text = r#"{"forward_mode":"decode","expert_activation":2,"batch_size":1,"seq_lens_sum":512,"tpot":0.02}"#;
    let Records::Harness { passes, skipped } = parse_records(text, "h.jsonl").unwrap() else {
        panic!("harness records expected")
    };
    assert_eq!(skipped, 0);
    let p: Vec<CompatPass> = passes.iter().map(CompatPass::from).collect();
    let m = compat_phase(&CompatModel::new(&d), &p, 2.0, h100x2()).unwrap();
    // metrics.md: S-MBU = 0.18881, S-MFU = 0.00035945 (to the digits given)
    assert!((m.s_mbu - 0.18881).abs() < 0.5e-5, "{}", m.s_mbu);
    assert!((m.s_mfu - 0.00035945).abs() < 0.5e-8, "{}", m.s_mfu);
    // and to 1e-6 relative against the formula evaluated by hand
    let x = 3.0 * 4096.0 * 14336.0;
    let att = 4096.0 * (4096.0 + 2.0 * 1024.0) + 4096.0 * 4096.0;
    let smbu = (32.0 * 2.0 * x + 32.0 * att + 512.0 * 65536.0) * 2.0 / 0.02 / (2.0 * 3350e9);
    let smfu = 2.0 * (32.0 * x + 32.0 * att + 512.0 * 32.0 * 32.0 * 2.0 * 128.0) * (1.0 / 0.02)
        / (2.0 * 1979e12 / 2.0);
    assert!(((m.s_mbu - smbu) / smbu).abs() < 1e-6);
    assert!(((m.s_mfu - smfu) / smfu).abs() < 1e-6);
    assert_eq!(m.tokens_per_s, 50.0);
}

#[test]
fn compat_prefill_mean_of_ratios_and_skips() {
    let d = preset_desc(find_preset("mixtral-8x7b").unwrap()).unwrap();
    let text = concat!(
        r#"{"forward_mode":"prefill","expert_activation":6,"batch_size":2,"seq_lens_sum":1000,"ttft":0.5}"#,
        "\n",
        r#"{"forward_mode":"prefill","expert_activation":null,"batch_size":2,"seq_lens_sum":1000,"ttft":0.5}"#,
        "\n",
        r#"{"forward_mode":"prefill","expert_activation":8,"batch_size":1,"seq_lens_sum":100,"latency":0.1}"#,
    );
    let Records::Harness { passes, skipped } = parse_records(text, "h.jsonl").unwrap() else {
        panic!()
    };
    assert_eq!(skipped, 1);
    let p: Vec<CompatPass> = passes.iter().map(CompatPass::from).collect();
    let m = compat_phase(&CompatModel::new(&d), &p, 2.0, h100x2()).unwrap();
    let x = 3.0 * 4096.0 * 14336.0;
    let att = 41_943_040.0;
    let kv = 65536.0;
    let sc = 32.0 * 32.0 * 2.0 * 128.0;
    let bw = 2.0 * 3350e9;
    let fl = 1979e12;
    let mbu1 = (32.0 * 6.0 * x + 32.0 * att + 1000.0 * kv) * 2.0 / 0.5 / bw;
    let mbu2 = (32.0 * 8.0 * x + 32.0 * att + 100.0 * kv) * 2.0 / 0.1 / bw;
    let mfu1 = 2.0 * (32.0 * x + 32.0 * att + 1000.0 * sc) * (1000.0 / 0.5) / fl;
    let mfu2 = 2.0 * (32.0 * x + 32.0 * att + 100.0 * sc) * (100.0 / 0.1) / fl;
    assert!(((m.s_mbu - (mbu1 + mbu2) / 2.0) / m.s_mbu).abs() < 1e-12);
    assert!(((m.s_mfu - (mfu1 + mfu2) / 2.0) / m.s_mfu).abs() < 1e-12);
    assert_eq!(m.tokens_per_s, (2000.0 + 1000.0) / 2.0);
}

#[test]
fn compat_model_sizes_follow_the_published_code() {
    let v3 = preset_desc(find_preset("deepseek-v3").unwrap()).unwrap();
    let m = CompatModel::new(&v3);
    // always two shared experts, whatever n_shared_experts says
    assert_eq!(m.shared, 2.0 * 3.0 * 7168.0 * 2048.0);
    assert_eq!(m.dense_ffn, 3.0 * 7168.0 * 18432.0);
    assert_eq!((m.moe_layers, m.dense_layers), (58.0, 3.0));
    assert_eq!(m.kv_per_token, 61.0 * (512.0 + 64.0));
    let q = 7168.0 * 1536.0 + 1536.0 * 128.0 * 192.0;
    let att = 7168.0 * 576.0 + 512.0 * 128.0 * 256.0 + 128.0 * 128.0 * 7168.0 + q;
    assert_eq!(m.attention, att);
    assert_eq!(
        m.score_per_token,
        61.0 * 128.0 * 192.0 + 61.0 * 128.0 * 128.0
    );
    let qwen = preset_desc(find_preset("qwen1.5-moe-a2.7b").unwrap()).unwrap();
    assert_eq!(CompatModel::new(&qwen).shared, 3.0 * 2048.0 * 5632.0);
}

#[test]
fn native_records_convert_to_compat_passes() {
    let d = parse_config(TINY, "tiny").unwrap();
    let recs = native(
        r#"{"phase":"decode","latency_s":0.5,"cached_tokens":[3,7],"new_tokens":[1,1],"experts":{"0":[1,3],"1":3}}"#,
    );
    let p = compat_pass(&recs[0], &d).unwrap();
    assert_eq!(p.phase, Phase::Decode);
    assert_eq!(p.batch_size, 2.0);
    assert_eq!(p.seq_lens_sum, 12.0);
    assert_eq!(p.activation, 2.5);
}

#[test]
fn compat_needs_the_published_table() {
    let t = HardwareTable::builtin().unwrap();
    let e = compat_peaks(t.find("L4-24GB").unwrap(), DType::Bf16, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("L4-24GB") && e.contains("moecap-compat"), "{e}");
    assert!(compat_peaks(t.find("RTX-A6000-48GB").unwrap(), DType::Fp8, 1).is_err());
    let p = compat_peaks(t.find("A100-SXM4-80GB").unwrap(), DType::Bf16, 1).unwrap();
    assert_eq!(p.flops_per_s, 312e12);
    assert_eq!(p.bandwidth_bytes_per_s, 2039e9);
}

//! Figures that cannot be: records no run produces (a latency under a nanosecond, contexts
//! beyond any model, fewer experts than top-k, harness records of another model), ceilings files
//! that cannot serve the run, and utilisation above a peak, which is explained, not hidden.

// shared with the other binaries' tests; not every helper is used here
#[allow(dead_code)]
mod cli_support;

use cli_support::{fails, moecap, scratch, tmp};

/// A native decode record of Mixtral-8x7B (32 MoE layers) with `ids` activated in each layer.
fn mixtral_record(latency_s: &str, cached: &str, ids: &str) -> String {
    let experts: Vec<String> = (0..32).map(|l| format!("\"{l}\":{ids}")).collect();
    format!(
        r#"{{"phase":"decode","latency_s":{latency_s},"cached_tokens":[{cached}],"new_tokens":[1],"experts":{{{}}}}}"#,
        experts.join(",")
    ) + "\n"
}

#[test]
fn impossible_records_are_errors_and_utilisation_above_peak_is_explained() {
    let metrics = |file: &str| {
        moecap(&[
            "metrics",
            "--records",
            file,
            "--model",
            "mixtral-8x7b",
            "--hardware",
            "H100-SXM-80GB",
            "--json",
        ])
    };
    let ok = tmp("rec-ok.jsonl", &mixtral_record("0.05", "511", "[0,5]"));
    let o = metrics(&ok);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // 20 ms: 93 GB of all experts would need 4.7 TB/s, the two activated ones do not
    let dense = tmp("rec-20ms.jsonl", &mixtral_record("0.02", "511", "[0,5]"));
    let o = metrics(&dense);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("decode MBU is 139.1 % of the peak because it counts every expert's weights")
            && !err.contains("S-MBU is"),
        "{err}"
    );
    for (name, rec, needle) in [
        (
            "rec-fast",
            mixtral_record("1e-300", "511", "[0,5]"),
            "under a nanosecond",
        ),
        (
            "rec-long",
            mixtral_record("0.02", "1000000000000", "[0,5]"),
            "beyond any model's context",
        ),
        (
            "rec-maxpos",
            mixtral_record("0.02", "40000", "[0,5]"),
            "max_position_embeddings (32768)",
        ),
        (
            "rec-topk",
            mixtral_record("0.02", "511", "[3]"),
            "1 activated experts, but each token activates 2",
        ),
    ] {
        let f = tmp(&format!("{name}.jsonl"), &rec);
        fails(
            &[
                "metrics",
                "--records",
                &f,
                "--model",
                "mixtral-8x7b",
                "--hardware",
                "H100-SXM-80GB",
            ],
            needle,
        );
    }
    // 10 µs per decode token on one H100 is more than its bandwidth can give
    let fast = tmp("rec-10us.jsonl", &mixtral_record("1e-5", "511", "[0,5]"));
    let o = metrics(&fast);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: decode S-MBU is")
            && err.contains("faster than that hardware allows"),
        "{err}"
    );
}

#[test]
fn ceilings_files_must_hold_positive_figures_for_the_runs_dtype() {
    let file = |name: &str, copy: &str, dtype: &str| {
        tmp(
            name,
            &format!(
                r#"{{"key":"t","copy_bytes_per_s":{copy},"triad_bytes_per_s":1e10,"buffer_bytes":1,"matmul_flops_per_s":{{"{dtype}":1e11}},"matmul_size":{{"{dtype}":64}},"threads":1,"measured_at":0,"method":3}}"#
            ),
        )
    };
    let bench = |ceil: &str, needle: &str| {
        let out = scratch(&format!("ceil-bench-{}", needle.len()));
        let _ = std::fs::remove_dir_all(&out);
        fails(
            &[
                "bench",
                "--model",
                "synthetic:tiny-mixtral",
                "--batch",
                "1",
                "--prompt-len",
                "4",
                "--gen-len",
                "2",
                "--ceilings",
                ceil,
                "--out",
                &out.display().to_string(),
            ],
            needle,
        )
    };
    bench(
        &file("ceil-bf16.json", "1e10", "bf16"),
        "no f32 matmul figure for this run's dtype (it has bf16); `moecap hw measure --dtype f32` measures it",
    );
    bench(
        &file("ceil-zero.json", "0", "f32"),
        "`copy_bytes_per_s` is 0; a ceiling is a positive rate",
    );
    bench(
        &file("ceil-neg.json", "1e10", "f32").replace("ceil-neg", "ceil-none"),
        "no such ceilings file",
    );
}

#[test]
fn bench_figures_above_a_ceiling_come_with_the_reasons() {
    // ceilings far below what the tiny model's cached weights are read at
    let ceil = tmp(
        "ceil-low.json",
        r#"{"key":"t","copy_bytes_per_s":1e6,"triad_bytes_per_s":1e6,"buffer_bytes":1,"matmul_flops_per_s":{"f32":1e6},"matmul_size":{"f32":64},"threads":1,"measured_at":0,"method":3}"#,
    );
    let out = scratch("above-peak");
    let _ = std::fs::remove_dir_all(&out);
    let o = moecap(&[
        "bench",
        "--model",
        "synthetic:tiny-mixtral",
        "--batch",
        "1",
        "--prompt-len",
        "4",
        "--gen-len",
        "2",
        "--warmup",
        "0",
        "--repetitions",
        "1",
        "--ceilings",
        &ceil,
        "--out",
        &out.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("above 100 % of their ceiling (first: prefill measured S-MBU")
            && err.contains("stay in the CPU's caches"),
        "{err}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn impossible_harness_records_are_refused() {
    let harness = |name: &str, fields: &str| {
        tmp(
            name,
            &format!(r#"{{"forward_mode":"decode","expert_activation":2,{fields}}}"#),
        )
    };
    let metrics = |f: &str, needle: &str| {
        fails(
            &[
                "metrics",
                "--records",
                f,
                "--model",
                "mixtral-8x7b",
                "--hardware",
                "H200",
                "--formula",
                "moecap-compat",
            ],
            needle,
        )
    };
    metrics(
        &harness(
            "hr-fast.jsonl",
            r#""batch_size":1,"seq_lens_sum":512,"tpot":1e-300"#,
        ),
        "`tpot` 1e-300 is under a nanosecond",
    );
    metrics(
        &harness(
            "hr-batch.jsonl",
            r#""batch_size":1e300,"seq_lens_sum":512,"tpot":0.02"#,
        ),
        "`batch_size` 1e300 is not a number of sequences",
    );
    metrics(
        &harness(
            "hr-lens.jsonl",
            r#""batch_size":1,"seq_lens_sum":1e15,"tpot":0.02"#,
        ),
        "`seq_lens_sum` 1000000000000000.0 is beyond any model's context",
    );
    let many = tmp(
        "hr-experts.jsonl",
        r#"{"forward_mode":"decode","expert_activation":1e9,"batch_size":1,"seq_lens_sum":512,"tpot":0.02}"#,
    );
    metrics(
        &many,
        "expert_activation 1000000000 exceeds the 8 experts per layer",
    );
}

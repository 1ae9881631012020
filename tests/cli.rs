//! The `moecap` binary end to end: JSON field names, text output, and one-line errors with a
//! non-zero exit for bad input.

mod cli_support;

use cli_support::{fails, json, moecap, scratch, tmp};

#[test]
fn models_lists_every_preset() {
    let v = json(&["models", "--json"]);
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 12);
    let m = rows.iter().find(|r| r["name"] == "mixtral-8x7b").unwrap();
    assert_eq!(m["total_params"], 46_702_792_704u64);
    assert_eq!(m["active_params_per_token"], 12_879_925_248u64);
    assert_eq!(m["experts"], 8);
    assert_eq!(m["top_k"], 2);
    let text = String::from_utf8(moecap(&["models"]).stdout).unwrap();
    assert!(text.contains("deepseek-v3") && text.contains("671.03G"));
}

#[test]
fn inspect_json_has_documented_fields() {
    let v = json(&["inspect", "--model", "qwen1.5-moe-a2.7b", "--json"]);
    assert_eq!(v["total_params"], 14_315_784_192u64);
    assert_eq!(v["routed_expert_params"], 24u64 * 60 * 3 * 2048 * 1408);
    assert!(v["active_params_per_token"].as_u64().unwrap() > 2_000_000_000);
    assert_eq!(v["per_layer"].as_array().unwrap().len(), 24);
    assert_eq!(v["kv_cache"]["kind"], "gqa");
    let v = json(&["inspect", "--model", "DeepSeek-V2-Lite", "--json"]);
    assert_eq!(v["kv_cache"]["kind"], "mla_latent");
    assert_eq!(v["kv_cache"]["elements_per_token"], 27 * 576);
    assert_eq!(v["tensor_check"], serde_json::Value::Null);
    // a preset's folder works as a model directory too
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/olmoe-1b-7b");
    let v = json(&["inspect", "--model", dir, "--json"]);
    assert_eq!(v["total_params"], 6_919_161_856u64);
}

#[test]
fn roofline_json() {
    let v = json(&[
        "roofline",
        "--model",
        "mixtral-8x7b",
        "--hardware",
        "H100-SXM",
        "--devices",
        "2",
        "--dtype",
        "bf16",
        "--batch",
        "1,8",
        "--context",
        "512",
        "--tpot-slo",
        "0.05",
        "--json",
    ]);
    let pts = v["points"].as_array().unwrap();
    assert_eq!(pts.len(), 2);
    let p = &pts[0];
    assert_eq!(p["decode_expected_experts"], 2.0);
    let bytes = p["decode_bytes"].as_f64().unwrap();
    let tpot = p["tpot_lower_bound_s"].as_f64().unwrap();
    assert!((tpot - bytes / (2.0 * 3350e9)).abs() < 1e-12);
    assert_eq!(p["decode_bound"], "memory");
    assert_eq!(p["fits"], true);
    assert!((p["bandwidth_for_slo_bytes_per_s"].as_f64().unwrap() - bytes / 0.05).abs() < 1.0);
    assert!(pts[1]["decode_expected_experts"].as_f64().unwrap() > 2.0);
    // a model that does not fit one small card
    let v = json(&[
        "roofline",
        "--model",
        "dbrx",
        "--hardware",
        "L4-24GB",
        "--json",
    ]);
    assert_eq!(v["points"][0]["fits"], false);
}

#[test]
fn metrics_both_formulas() {
    let h = tmp(
        "h.jsonl",
        r#"{"forward_mode":"decode","expert_activation":2,"batch_size":1,"seq_lens_sum":512,"tpot":0.02}"#,
    );
    let v = json(&[
        "metrics",
        "--records",
        &h,
        "--model",
        "mixtral-8x7b",
        "--hardware",
        "H100-SXM-80GB",
        "--devices",
        "2",
        "--dtype",
        "bf16",
        "--formula",
        "moecap-compat",
        "--json",
    ]);
    let s = v["decode"]["s_mbu"].as_f64().unwrap();
    assert!((s - 0.18881).abs() < 0.5e-5);
    let f = v["decode"]["s_mfu"].as_f64().unwrap();
    assert!((f - 0.00035945).abs() < 0.5e-8);
    assert_eq!(v["prefill"], serde_json::Value::Null);
    for k in ["mbu", "mfu", "tokens_per_s", "mean_latency_s"] {
        assert!(v["decode"][k].is_number(), "{k}");
    }
    fails(
        &[
            "metrics",
            "--records",
            &h,
            "--model",
            "mixtral-8x7b",
            "--hardware",
            "H100-SXM-80GB",
        ],
        "--formula moecap-compat",
    );
    let n = tmp(
        "n.jsonl",
        &format!(
            "{}\n",
            r#"{"phase":"decode","latency_s":0.02,"cached_tokens":[511],"new_tokens":[1],"experts":{}}"#
                .replace(
                    "{}}",
                    &format!(
                        "{{{}}}}}",
                        (0..32).map(|l| format!("\"{l}\":[0,5]")).collect::<Vec<_>>().join(",")
                    )
                )
        ),
    );
    let v = json(&[
        "metrics",
        "--records",
        &n,
        "--model",
        "mixtral-8x7b",
        "--hardware",
        "H100-SXM-80GB",
        "--devices",
        "2",
        "--dtype",
        "bf16",
        "--json",
    ]);
    assert_eq!(v["formula"], "exact");
    let d = &v["decode"];
    assert_eq!(d["mean_activated_experts"], 2.0);
    // exact S-MBU counts router, norms, embedding row and LM head on top of the compat terms
    let s = d["s_mbu"].as_f64().unwrap();
    assert!(s > 0.18881 && s < 0.2, "{s}");
    let c = json(&[
        "metrics",
        "--records",
        &n,
        "--model",
        "mixtral-8x7b",
        "--hardware",
        "H100-SXM-80GB",
        "--devices",
        "2",
        "--dtype",
        "bf16",
        "--formula",
        "moecap-compat",
        "--json",
    ]);
    assert!((c["decode"]["s_mbu"].as_f64().unwrap() - 0.188806).abs() < 1e-6);
}

#[test]
fn hardware_list_detect_and_override() {
    let v = json(&["hw", "list", "--json"]);
    assert!(v["rows"].as_array().unwrap().len() >= 25);
    let v = json(&["hw", "detect", "--json"]);
    assert!(v["host"]["logical_cpus"].as_u64().unwrap() >= 1);
    let custom = tmp(
        "hw.csv",
        &format!(
            "{}\nMyCard,gpu,10,100,1,,2,,,,50,100,PCIe4 x8,,,,,,,measured by me\n",
            moecap::machine::hardware::BUILTIN_TABLE
                .lines()
                .find(|l| l.starts_with("name,"))
                .unwrap()
        ),
    );
    let v = json(&["hw", "list", "--hardware-file", &custom, "--json"]);
    assert_eq!(v["rows"].as_array().unwrap().len(), 1);
    let v = json(&[
        "roofline",
        "--model",
        "olmoe-1b-7b",
        "--hardware",
        "mycard",
        "--hardware-file",
        &custom,
        "--batch",
        "1",
        "--context",
        "16",
        "--json",
    ]);
    assert_eq!(v["peaks"]["bandwidth_bytes_per_s"], 100e9);
}

#[test]
fn bad_input_is_one_line_and_nonzero() {
    fails(
        &["inspect", "--model", "no-such-model"],
        "presets: mixtral-8x7b",
    );
    fails(
        &["roofline", "--model", "mixtral-8x7b", "--hardware", "TPU"],
        "unknown hardware `TPU`",
    );
    fails(
        &[
            "roofline",
            "--model",
            "mixtral-8x7b",
            "--hardware",
            "H200",
            "--dtype",
            "q3",
        ],
        "--dtype",
    );
    fails(
        &[
            "roofline",
            "--model",
            "mixtral-8x7b",
            "--hardware",
            "A100-SXM4-80GB",
            "--dtype",
            "fp8",
        ],
        "no fp8 peak",
    );
    fails(
        &[
            "roofline",
            "--model",
            "mixtral-8x7b",
            "--hardware",
            "H200",
            "--batch",
            "0",
        ],
        "--batch",
    );
    fails(
        &[
            "roofline",
            "--model",
            "mixtral-8x7b",
            "--hardware",
            "H200",
            "--kv-cache",
            "latent",
        ],
        "--kv-cache",
    );
    fails(
        &[
            "roofline",
            "--model",
            "mixtral-8x7b",
            "--hardware",
            "H200",
            "--devices",
            "0",
        ],
        "--devices",
    );
    let cfg = tmp(
        "bad-config.json",
        r#"{"architectures":["GPTJForCausalLM"]}"#,
    );
    fails(&["inspect", "--model", &cfg], "GPTJForCausalLM");
    let empty = tmp("empty.jsonl", "");
    fails(
        &[
            "metrics",
            "--records",
            &empty,
            "--model",
            "mixtral-8x7b",
            "--hardware",
            "H200",
        ],
        "no records",
    );
    fails(
        &[
            "metrics",
            "--records",
            "/nonexistent/r.jsonl",
            "--model",
            "mixtral-8x7b",
            "--hardware",
            "H200",
        ],
        "/nonexistent/r.jsonl",
    );
    let h = tmp(
        "h2.jsonl",
        r#"{"forward_mode":"decode","expert_activation":2,"batch_size":1,"seq_lens_sum":512,"tpot":0.02}"#,
    );
    fails(
        &[
            "metrics",
            "--records",
            &h,
            "--model",
            "mixtral-8x7b",
            "--hardware",
            "L4",
            "--formula",
            "moecap-compat",
        ],
        "not in the published MoE-CAP table",
    );
    let bad_hw = tmp("bad-hw.csv", "name,kind\n");
    fails(&["hw", "list", "--hardware-file", &bad_hw], "header");
}

#[test]
fn inspect_cross_checks_a_checkpoint_and_fails_on_mismatch() {
    let dir = scratch("ckpt");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"architectures":["OlmoeForCausalLM"],"hidden_size":8,"num_hidden_layers":1,
          "num_attention_heads":2,"vocab_size":4,"intermediate_size":2,"num_experts":2,
          "num_experts_per_tok":1}"#,
    )
    .unwrap();
    // a header with only the embedding
    let header =
        br#"{"model.embed_tokens.weight":{"dtype":"F32","shape":[4,8],"data_offsets":[0,128]}}"#;
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header);
    f.extend(std::iter::repeat_n(0u8, 128));
    std::fs::write(dir.join("model.safetensors"), f).unwrap();
    let d = dir.display().to_string();
    let out = moecap(&["inspect", "--model", &d]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("missing: model.layers.0.self_attn.q_norm.weight [8]"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tensor check failed"), "{err}");
}

//! Bad input that used to be accepted, wrap around, panic or exhaust memory: sizes beyond the
//! config limits, impossible values, sweeps out of range, checkpoints written over other
//! folders, and passes whose logits are not finite. Each must end in one line naming the
//! culprit and a non-zero exit.

mod cli_support;

use cli_support::{fails, json, moecap, scratch, tmp};
use serde_json::Value;

/// Mixtral-8x7B's config with `edit` applied, written to a scratch file.
fn mixtral_with(name: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let base = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/mixtral-8x7b/config.json"
    );
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(base).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    tmp(name, &v.to_string())
}

#[test]
fn sizes_beyond_the_limits_are_errors_not_wrapped_counts() {
    for (field, value, needle) in [
        (
            "vocab_size",
            1u64 << 62,
            "`vocab_size`: 4611686018427387904 is above",
        ),
        (
            "hidden_size",
            1 << 40,
            "`hidden_size`: 1099511627776 is above",
        ),
        ("num_hidden_layers", 1 << 63, "`num_hidden_layers`"),
        ("num_hidden_layers", 1_000_000_000, "limit of 1024"),
        ("intermediate_size", 1 << 40, "`intermediate_size`"),
        ("num_local_experts", 1 << 20, "`num_local_experts`"),
    ] {
        let cfg = mixtral_with(&format!("big-{field}-{value}.json"), |m| {
            m.insert(field.into(), value.into());
        });
        fails(&["inspect", "--model", &cfg], needle);
    }
    // At every limit at once, the counts still fit in 64 bits (a debug build panics on
    // overflow): the model is described, not wrapped.
    let cfg = mixtral_with("at-limits.json", |m| {
        for (f, v) in [
            ("vocab_size", 1u64 << 24),
            ("hidden_size", 1 << 17),
            ("intermediate_size", 1 << 17),
            ("num_hidden_layers", 1 << 10),
            ("num_local_experts", 1 << 12),
            ("num_attention_heads", 1 << 12),
            ("num_key_value_heads", 1 << 12),
            ("head_dim", 1 << 12),
        ] {
            m.insert(f.into(), v.into());
        }
    });
    let v = json(&["inspect", "--model", &cfg, "--json"]);
    let total = v["total_params"].as_u64().unwrap();
    let experts = 1024u64 * 4096 * 3 * (1 << 17) * (1 << 17);
    assert!(total > experts, "{total}");
}

#[test]
fn impossible_config_values_are_named() {
    let cases: [(&str, Value, &str); 5] = [
        (
            "eos_token_id",
            32000.into(),
            "`eos_token_id`: 32000 is not a token id",
        ),
        (
            "max_position_embeddings",
            0.into(),
            "`max_position_embeddings`: must be greater than zero",
        ),
        ("rms_norm_eps", (-1.0).into(), "`rms_norm_eps`"),
        ("torch_dtype", "float33".into(), "unknown dtype `float33`"),
        (
            "num_experts_per_tok",
            9.into(),
            "9 experts per token but only 8",
        ),
    ];
    for (field, value, needle) in cases {
        let cfg = mixtral_with(&format!("bad-{field}.json"), |m| {
            m.insert(field.into(), value);
        });
        fails(&["inspect", "--model", &cfg], needle);
    }
}

#[test]
fn sweeps_are_bounded_and_points_unique() {
    let roof = |flag: &str, v: &str, needle: &str| {
        fails(
            &[
                "roofline",
                "--model",
                "mixtral-8x7b",
                "--hardware",
                "H200",
                flag,
                v,
            ],
            needle,
        )
    };
    roof(
        "--context",
        "18446744073709551615",
        "--context: 18446744073709551615 is out of range",
    );
    roof(
        "--batch",
        "18446744073709551615",
        "--batch: 18446744073709551615 is out of range",
    );
    roof("--batch", "1000000000", "between 1 and 65536");
    roof(
        "--devices",
        "1000000000",
        "--devices must be between 1 and 65536",
    );
    roof(
        "--tpot-slo",
        "1e-300",
        "--tpot-slo must be a number of seconds of at least",
    );
    roof("--batch", "1,8,1", "--batch: 1 is given twice");
    let bench = |flag: &str, v: &str, needle: &str| {
        fails(
            &["bench", "--model", "synthetic:tiny-mixtral", flag, v],
            needle,
        )
    };
    bench("--batch", "1,1", "--batch: 1 is given twice");
    bench(
        "--repetitions",
        "100000000000",
        "--repetitions must be between 1 and 10000",
    );
    bench("--warmup", "100000000000", "--warmup must be at most 10000");
    bench("--prompt-len", "0", "--prompt-len: 0 is out of range");
    fails(
        &[
            "generate",
            "--model",
            "synthetic:tiny-mixtral",
            "--input-ids",
            "1,,2",
        ],
        "sequence 1: id 2 is empty",
    );
    fails(
        &[
            "generate",
            "--model",
            "synthetic:tiny-mixtral",
            "--input-ids",
            "1,2",
            "--max-new-tokens",
            "0",
        ],
        "--max-new-tokens must be between 1 and 1073741824",
    );
}

#[test]
fn models_that_cannot_fit_are_refused_before_allocating() {
    let out = scratch("huge");
    let o = out.display().to_string();
    fails(
        &["synth", "--like", "deepseek-v3", "--out", &o],
        "needs 2684.1 GB of memory (671.026 G parameters × 4 bytes)",
    );
    assert!(!out.exists(), "nothing is left behind");
    fails(
        &[
            "bench",
            "--model",
            "synthetic:mixtral-mid",
            "--batch",
            "60000",
            "--prompt-len",
            "4000",
            "--out",
            &o,
        ],
        "the sweep's largest point (batch 60000, 4032 tokens per sequence) needs 20684.9 GB of memory (2.0 GB of weights + 3963.6 GB of KV cache + 16719.4 GB of prefill activations)",
    );
    assert!(!out.exists(), "nothing is left behind");
    fails(
        &[
            "synth",
            "--like",
            "tiny-mixtral",
            "--hidden",
            "100000000",
            "--out",
            &o,
        ],
        "`hidden_size`: 100000000 is above",
    );
}

#[test]
fn synth_never_mixes_a_new_checkpoint_with_an_old_folder() {
    let dir = scratch("synth-out");
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.display().to_string();
    let ok = |args: &[&str]| {
        let o = moecap(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(&["synth", "--like", "tiny-mixtral", "--out", &d]);
    // an old sharded checkpoint's index and shard beside it
    std::fs::write(dir.join("model.safetensors.index.json"), "{}").unwrap();
    std::fs::write(dir.join("model-00001-of-00002.safetensors"), "x").unwrap();
    let before = std::fs::read(dir.join("config.json")).unwrap();
    fails(
        &["synth", "--like", "tiny-qwen2-moe", "--out", &d],
        "exists and is not empty; choose another folder or pass --force",
    );
    assert_eq!(
        std::fs::read(dir.join("config.json")).unwrap(),
        before,
        "untouched"
    );
    ok(&[
        "synth",
        "--like",
        "synthetic:tiny-mixtral",
        "--layers",
        "1",
        "--out",
        &d,
        "--force",
    ]);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json"
        ]
    );
    let parent: Vec<String> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("synth-out") && n.starts_with('.'))
        .collect();
    assert!(parent.is_empty(), "staging folders left: {parent:?}");
    let o = moecap(&["inspect", "--model", &d, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Overwrites the first value of tensor `name` in a single-file checkpoint with `value`.
fn poke(dir: &std::path::Path, name: &str, value: f32) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("model.safetensors"))
        .unwrap();
    let mut n = [0u8; 8];
    f.read_exact(&mut n).unwrap();
    let n = u64::from_le_bytes(n);
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).unwrap();
    let h: Value = serde_json::from_slice(&header).unwrap();
    let off = h[name]["data_offsets"][0].as_u64().unwrap();
    f.seek(SeekFrom::Start(8 + n + off)).unwrap();
    f.write_all(&value.to_le_bytes()).unwrap();
}

#[test]
fn nonfinite_logits_stop_the_run_and_name_the_first_layer() {
    let dir = scratch("nonfinite");
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.display().to_string();
    let o = moecap(&["synth", "--like", "tiny-mixtral", "--out", &d]);
    assert!(o.status.success());
    let gen = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--model",
            &d,
            "--input-ids",
            "1,2,3",
            "--max-new-tokens",
            "2",
        ];
        args.extend_from_slice(extra);
        moecap(&args)
    };
    assert!(gen(&[]).status.success(), "a sound checkpoint runs");
    poke(
        &dir,
        "model.layers.1.self_attn.q_proj.weight",
        f32::INFINITY,
    );
    fails(
        &["generate", "--model", &d, "--input-ids", "1,2,3"],
        "pass 1: the logits are not finite (NaN or infinity), first in the output of layer 1",
    );
    let o = gen(&["--allow-nonfinite"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    poke(&dir, "model.embed_tokens.weight", f32::NAN);
    // token 0's embedding row holds the NaN
    fails(
        &["generate", "--model", &d, "--input-ids", "0,2,3"],
        "first in the embedding of the input tokens",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_are_one_line_even_with_backtraces_on_and_paths_are_not_hub_ids() {
    let gguf = tmp("garbage.gguf", "garbage");
    let out = scratch("garbage-upcycle").display().to_string();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_moecap"))
        .args(["upcycle", "--from", &gguf, "--out", &out])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("not a readable GGUF file: unknown magic"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "no backtrace: {err}");
    for p in ["/no/such/dir", "./no/such", "../x/y/z"] {
        fails(
            &["inspect", "--model", p],
            &format!("--model {p}: no such directory or file"),
        );
    }
    // an `org/name` is looked up in the hub cache
    fails(
        &["inspect", "--model", "no-such-org/no-such-model"],
        "not in the local Hugging Face cache",
    );
}

#[test]
fn integer_weights_are_not_taken_for_float_ones() {
    let dir = scratch("int-weight");
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.display().to_string();
    let o = moecap(&["synth", "--like", "tiny-mixtral", "--out", &d]);
    assert!(o.status.success());
    // relabel one f32 weight as i32 (same size, so the file stays consistent)
    let f = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&f).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    let name = "model.layers.0.self_attn.q_proj.weight";
    let at = header.find(name).unwrap();
    let dt = at + header[at..].find("\"F32\"").unwrap();
    bytes[8 + dt..8 + dt + 5].copy_from_slice(b"\"I32\"");
    std::fs::write(&f, bytes).unwrap();
    let o = moecap(&["inspect", "--model", &d]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "{name}: expected floating-point values, found I32"
        )),
        "{out}"
    );
    fails(
        &["generate", "--model", &d, "--input-ids", "1,2"],
        &format!("tensor `{name}` holds I32 values; weights are floating point"),
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `moecap generate`: seeded sampling, text prompts through the checkpoint's tokenizer, decoded
//! output and stop strings.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moecap-generate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn moecap(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moecap"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn sampling_is_seeded() {
    let run = |seed: &str| {
        let out = moecap(
            &[
                "generate",
                "--model",
                "synthetic:tiny-mixtral",
                "--input-ids",
                "1,2,3",
                "--max-new-tokens",
                "8",
                "--temperature",
                "1.0",
                "--top-p",
                "0.9",
                "--seed",
                seed,
                "--ignore-eos",
                "--no-probe",
                "--json",
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["generated_ids"].clone()
    };
    assert_eq!(run("11"), run("11"));
    assert_ne!(run("11"), run("12"));
    let out = moecap(
        &[
            "generate",
            "--model",
            "synthetic:tiny-mixtral",
            "--input-ids",
            "1",
            "--temperature",
            "0",
        ],
        &[],
    );
    assert!(!out.status.success());
}

/// A word-level tokenizer whose ids 0..512 are the words `w0` .. `w511` (`w0` is unknown).
fn word_tokenizer(dir: &Path) {
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..512).map(|i| (format!("w{i}"), i.into())).collect();
    let t = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    });
    std::fs::write(dir.join("tokenizer.json"), t.to_string()).unwrap();
}

#[test]
fn text_prompts_output_and_stop_strings() {
    let dir = tmpdir("text");
    let d = dir.join("ckpt");
    let ds = d.to_str().unwrap();
    assert!(
        moecap(&["synth", "--like", "tiny-mixtral", "--out", ds], &[])
            .status
            .success()
    );
    // synth writes a word-level tokenizer: t5 is id 5
    let out = moecap(
        &[
            "generate",
            "--model",
            ds,
            "--prompt",
            "t5 t6",
            "--max-new-tokens",
            "2",
            "--json",
        ],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sequences"][0]["prompt_tokens"], 2);
    assert!(v["sequences"][0]["text"].as_str().unwrap().starts_with('t'));
    // a tokenizer larger than the vocabulary is refused
    let big = dir.join("big.json");
    std::fs::write(
        &big,
        moecap::model::tokenizer::synthetic_tokenizer_json(600).to_string(),
    )
    .unwrap();
    let x = dir.join("x");
    let out = moecap(
        &[
            "synth",
            "--like",
            "tiny-mixtral",
            "--tokenizer",
            big.to_str().unwrap(),
            "--out",
            x.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("do not fit the model's vocabulary of 512")
    );
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    // without a tokenizer: a clear error
    let out = moecap(&["generate", "--model", ds, "--prompt", "w5 w6"], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--prompt needs a tokenizer.json"));
    word_tokenizer(&d);
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "generate",
            "--model",
            ds,
            "--prompt",
            "w5 w6 w7",
            "--prompt",
            "w9",
            "--max-new-tokens",
            "6",
            "--ignore-eos",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = moecap(&args, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = run(&[]);
    assert_eq!(v["sequences"][0]["prompt_tokens"], 3);
    assert_eq!(v["sequences"][1]["prompt_tokens"], 1);
    let ids: Vec<u64> = v["generated_ids"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    let text = v["sequences"][0]["text"].as_str().unwrap().to_string();
    let words: Vec<String> = ids.iter().map(|i| format!("w{i}")).collect();
    assert_eq!(text, words.join(" "));
    // the same prompt given as ids gives the same tokens
    let out = moecap(
        &[
            "generate",
            "--model",
            ds,
            "--input-ids",
            "5,6,7",
            "--max-new-tokens",
            "6",
            "--ignore-eos",
            "--json",
        ],
        &[],
    );
    let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w["generated_ids"][0], v["generated_ids"][0]);
    // stop at the fourth generated word: three tokens of text remain, finish = stop
    let stop = format!("{} ", words[3]);
    let v = run(&["--stop", &format!(" {stop}")]);
    let s = &v["sequences"][0];
    assert_eq!(s["finish"], "stop");
    assert_eq!(s["text"].as_str().unwrap(), words[..3].join(" "));
}

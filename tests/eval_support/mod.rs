//! Helpers of the eval integration tests: the committed data sample, fresh folders, a synthetic
//! checkpoint with a word-level tokenizer covering the sample, and the `moecap eval` command.

use moecap::data::read_rows;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data")
}

/// An empty folder of this test process under the system's temporary folder.
pub fn fresh_dir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moecap-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
/// A word-level tokenizer over every word of the sample data (so the text is covered), written
/// beside a synthetic checkpoint whose vocabulary fits it.
pub fn checkpoint_with_tokenizer(dir: &Path) {
    let mut words = std::collections::BTreeSet::new();
    let mut texts = String::new();
    for f in [
        "gsm8k/test.jsonl",
        "gsm8k/cot_exemplars.txt",
        "gsm8k/cot_exemplars_lm_eval.jsonl",
    ] {
        texts += &std::fs::read_to_string(data().join(f)).unwrap();
    }
    for f in [
        "mmlu/abstract_algebra/test.arrow",
        "mmlu/abstract_algebra/dev.arrow",
        "mmlu/high_school_geography/test.arrow",
        "mmlu/high_school_geography/dev.arrow",
        "hellaswag/validation.arrow",
        "arc_challenge/test.jsonl.gz",
        "arc_easy/test.jsonl.gz",
    ] {
        for r in read_rows(&data().join(f)).unwrap() {
            texts += &r.to_string().replace("\\n", " ");
        }
    }
    texts += " The following are multiple choice questions with answers about A B C D Question Answer : . ";
    for w in texts.split(|c: char| !c.is_alphanumeric()) {
        if !w.is_empty() {
            words.insert(w.to_string());
        }
    }
    for p in texts.split(|c: char| c.is_alphanumeric() || c.is_whitespace()) {
        if !p.is_empty() {
            words.insert(p.to_string());
        }
    }
    let mut vocab = serde_json::Map::new();
    vocab.insert("<unk>".into(), 0.into());
    for (i, w) in words.iter().enumerate() {
        vocab.insert(w.clone(), (i + 1).into());
    }
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    let tok_path = dir.with_extension("tokenizer.json");
    std::fs::write(&tok_path, tok.to_string()).unwrap();
    let vocab_size = (words.len() + 1).to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_moecap"))
        .args([
            "synth",
            "--like",
            "tiny-mixtral",
            "--vocab",
            &vocab_size,
            "--tokenizer",
        ])
        .arg(&tok_path)
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `moecap eval --model MODEL --data DATA`, further arguments to add.
pub fn eval_command(model: &Path, data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moecap"));
    c.arg("eval")
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(data);
    c
}

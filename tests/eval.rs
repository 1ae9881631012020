//! Evaluation data and tasks: the Arrow reader against pyarrow's reading of the same files
//! (tests/fixtures/data, cut by scripts/make_data_samples.py from the registry packages), the
//! prompts in lm-evaluation-harness's formats, the scoring against the engine's own logits, and
//! `moecap eval` end to end.

use moecap::data::read_rows;
use moecap::eval::fewshot::{sample_per_doc, PyRandom};
use moecap::eval::tasks::filters::gsm8k_exact_match;
use moecap::eval::tasks::{load, Items, Task};
use std::path::{Path, PathBuf};
use std::process::Command;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data")
}

/// An empty folder of this test process under the system's temporary folder.
fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("moecap-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn arrow_reader_agrees_with_pyarrow() {
    let exp = data().join("arrow_expected");
    let cases = [
        (
            "mmlu/abstract_algebra/dev.arrow",
            "mmlu_abstract_algebra_dev.json",
        ),
        (
            "mmlu/abstract_algebra/test.arrow",
            "mmlu_abstract_algebra_test.json",
        ),
        (
            "mmlu/high_school_geography/dev.arrow",
            "mmlu_high_school_geography_dev.json",
        ),
        (
            "mmlu/high_school_geography/test.arrow",
            "mmlu_high_school_geography_test.json",
        ),
        ("hellaswag/validation.arrow", "hellaswag.json"),
        (
            "arc_challenge/validation.arrow",
            "arc_challenge_validation.json",
        ),
    ];
    for (file, json) in cases {
        let rows = read_rows(&data().join(file)).unwrap();
        let want: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(exp.join(json)).unwrap()).unwrap();
        assert_eq!(serde_json::Value::Array(rows), want, "{file}");
    }
    // a truncated stream is an error naming the file, not a panic
    let bytes = std::fs::read(data().join("hellaswag/validation.arrow")).unwrap();
    let cut = std::env::temp_dir().join(format!("moecap-cut-{}.arrow", std::process::id()));
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_rows(&cut).unwrap_err().to_string();
    assert!(e.contains("moecap-cut") && e.contains("truncated"), "{e}");
    std::fs::remove_file(&cut).unwrap();
}

#[test]
fn prompts_follow_the_harness_formats() {
    let Items::Choice(m) = load(Task::Mmlu, &data(), None, 5, 1234).unwrap() else {
        panic!("mmlu is multiple choice")
    };
    assert_eq!(m.len(), 8, "4 test items of 2 subjects");
    let first = &m[0];
    assert!(first.context.starts_with(
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
    ));
    // five exemplars, each ending with its letter, then the question block
    assert_eq!(first.context.matches("\nAnswer:").count(), 6);
    assert!(first.context.ends_with("\nAnswer:"));
    assert_eq!(first.choices, vec![" A", " B", " C", " D"]);
    let dev = read_rows(&data().join("mmlu/abstract_algebra/dev.arrow")).unwrap();
    let letter = ["A", "B", "C", "D"][dev[0]["answer"].as_u64().unwrap() as usize];
    let q = dev[0]["question"].as_str().unwrap().trim();
    assert!(first.context.contains(&format!("{q}\nA. ")));
    assert!(first.context.contains(&format!("Answer: {letter}\n\n")));
    // limit and shots
    let Items::Choice(one) = load(Task::Mmlu, &data(), Some(1), 0, 1234).unwrap() else {
        panic!()
    };
    assert_eq!(one.len(), 2);
    assert_eq!(one[0].context.matches("Answer:").count(), 1);
    assert!(load(Task::Mmlu, &data(), None, 6, 1234)
        .unwrap_err()
        .to_string()
        .contains("--shots 6"));

    let Items::Choice(h) = load(Task::Hellaswag, &data(), None, 0, 1234).unwrap() else {
        panic!()
    };
    let raw = read_rows(&data().join("hellaswag/validation.arrow")).unwrap();
    assert_eq!(h.len(), raw.len());
    let label = raw[0]["activity_label"].as_str().unwrap();
    assert!(h[0].context.starts_with(&format!("{label}: ")));
    assert!(h
        .iter()
        .all(|i| i.choices.len() == 4 && !i.context.contains('[')));

    let Items::Choice(a) = load(Task::ArcChallenge, &data(), None, 0, 1234).unwrap() else {
        panic!()
    };
    assert_eq!(a.len(), 4, "one item per document, not per request");
    assert!(a[0].context.starts_with("Question: ") && a[0].context.ends_with("\nAnswer:"));

    let Items::Gen(g) = load(Task::Gsm8kCotOlmes, &data(), Some(2), 8, 1234).unwrap() else {
        panic!()
    };
    assert_eq!(g.len(), 2);
    assert_eq!(g[0].prompt.matches("Question: ").count(), 9);
    assert!(g[0].prompt.ends_with("\nAnswer:"));
    assert_eq!(g[0].answer, "18");
}

#[test]
fn full_sets_are_counted() {
    // the sample, without its SAMPLE marker, is a "truncated" full set
    let dir = fresh_dir("counts");
    std::fs::create_dir_all(dir.join("hellaswag")).unwrap();
    std::fs::copy(
        data().join("hellaswag/validation.arrow"),
        dir.join("hellaswag/validation.arrow"),
    )
    .unwrap();
    let e = load(Task::Hellaswag, &dir, None, 0, 1234)
        .unwrap_err()
        .to_string();
    assert!(e.contains("6 items, expected 10042"), "{e}");
    let e = load(Task::Gsm8kCot, &dir, None, 8, 1234)
        .unwrap_err()
        .to_string();
    assert!(e.contains("scripts/fetch-data.sh"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A word-level tokenizer over every word of the sample data (so the text is covered), written
/// beside a synthetic checkpoint whose vocabulary fits it.
fn checkpoint_with_tokenizer(dir: &Path) {
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
fn eval_command(model: &Path, data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moecap"));
    c.arg("eval")
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(data);
    c
}

#[test]
fn eval_end_to_end_on_the_sample() {
    let tmp = fresh_dir("eval");
    let model = tmp.join("model");
    checkpoint_with_tokenizer(&model);
    let ceil = tmp.join("ceilings.json");
    std::fs::write(&ceil, r#"{"key":"t","copy_bytes_per_s":1e10,"triad_bytes_per_s":1e10,"buffer_bytes":1,"matmul_flops_per_s":{"f32":1e11},"matmul_size":{"f32":64},"threads":1,"measured_at":0}"#).unwrap();
    let out = tmp.join("out");
    let o = eval_command(&model, &data())
        .args([
            "--tasks",
            "mmlu,arc_easy,hellaswag,gsm8k_cot",
            "--batch",
            "3",
            "--max-gen-tokens",
            "6",
            "--ceilings",
        ])
        .arg(&ceil)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["sample_data"], true);
    assert_eq!(s["synthetic"], true);
    let tasks = s["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 4);
    // the summary's accuracy is the mean of the per-item results
    for t in tasks {
        let name = t["task"].as_str().unwrap();
        let items: Vec<serde_json::Value> =
            std::fs::read_to_string(out.join(format!("{name}.jsonl")))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        let key = if name == "gsm8k_cot" {
            "correct_flexible"
        } else {
            "correct"
        };
        let metric = if name == "gsm8k_cot" {
            "exact_match_flexible"
        } else {
            "acc"
        };
        let right = items.iter().filter(|i| i[key] == true).count() as f64;
        let acc = t["metrics"][metric]["value"].as_f64().unwrap();
        assert!((acc - right / items.len() as f64).abs() < 1e-12, "{name}");
        assert_eq!(
            t["metrics"][metric]["n"].as_u64().unwrap() as usize,
            items.len()
        );
        if name != "gsm8k_cot" {
            // every prediction is the arg-max of its log-likelihoods
            for i in &items {
                let ll: Vec<f64> = i["loglikelihoods"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                assert!(ll.iter().all(|x| *x < 0.0));
                let best = (0..ll.len()).fold(0, |b, k| if ll[k] > ll[b] { k } else { b });
                assert_eq!(i["pred"].as_u64().unwrap() as usize, best);
            }
        }
    }
    assert_eq!(
        tasks[0]["groups"].as_object().unwrap().len(),
        2,
        "MMLU per subject"
    );
    // the performance leg comes from the same passes, written as records
    let recs = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    let passes = recs.lines().count();
    assert!(passes > 0);
    assert_eq!(
        s["performance"]["passes"].as_u64().unwrap() as usize,
        passes
    );
    assert!(
        s["performance"]["prefill_measured"]["s_mbu"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn loglikelihood_matches_the_engine_logits() {
    // one ARC item scored by `eval` against the log-softmax of `moecap logits` on the same ids
    use candle_core::{DType, Device};
    use moecap::engine::loader::load_model;
    use moecap::engine::{Engine, LogitsMode};
    use moecap::model::source::Checkpoint;
    use moecap::model::tokenizer::TextCodec;
    let tmp = fresh_dir("ll");
    let model = tmp.join("model");
    checkpoint_with_tokenizer(&model);
    let codec = TextCodec::from_dir(&model).unwrap().unwrap();
    let m = load_model(
        &Checkpoint::resolve(model.to_str().unwrap()).unwrap(),
        &Device::Cpu,
        DType::F32,
        0,
    )
    .unwrap();
    let mut e = Engine::new(m, false);
    // ARC: multi-token continuations, each on a copy of its item's context; MMLU (1 shot): ` A`..`
    // D` read from the context's last position, the subject's exemplar prefilled once per step;
    // batch 2 and 3 put several items (and subjects) in a step
    for (task, shots, batch) in [
        (Task::ArcEasy, 0, 2),
        (Task::Mmlu, 1, 3),
        (Task::Mmlu, 2, 2),
    ] {
        let Items::Choice(items) = load(task, &data(), Some(3), shots, 1234).unwrap() else {
            panic!()
        };
        let r =
            moecap::eval::score::score_choices(&mut e, &codec, &items, batch, &mut |_, _| Ok(()))
                .unwrap();
        for (item, res) in items.iter().zip(&r) {
            for (c, ch) in item.choices.iter().enumerate() {
                let ctx = codec.encode(&item.context).unwrap();
                let whole = codec.encode(&format!("{}{ch}", item.context)).unwrap();
                let mut s = e.new_sequence();
                let logits = e
                    .forward(&mut [&mut s], std::slice::from_ref(&whole), LogitsMode::All)
                    .unwrap()
                    .remove(0);
                let rows = logits.to_vec2::<f32>().unwrap();
                let mut want = 0.0f64;
                for pos in ctx.len()..whole.len() {
                    let row = &rows[pos - 1];
                    let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
                    want += row[whole[pos] as usize] as f64 - z.ln();
                }
                let got = res.loglikelihoods[c];
                assert!(
                    (got - want).abs() < 1e-4,
                    "{task:?} item {} choice {c}: {got} vs {want}",
                    item.id
                );
            }
        }
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn chat_mode_renders_the_template_zero_shot() {
    let tmp = fresh_dir("chat");
    let model = tmp.join("model");
    checkpoint_with_tokenizer(&model);
    let run = |extra: &[&str]| {
        eval_command(&model, &data())
            .args([
                "--tasks",
                "arc_easy",
                "--limit",
                "1",
                "--no-probe",
                "--chat",
            ])
            .args(extra)
            .arg("--out")
            .arg(tmp.join("out"))
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no chat_template"));
    std::fs::write(
        model.join("tokenizer_config.json"),
        r#"{"bos_token": "<s>", "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"}"#,
    )
    .unwrap();
    let o = run(&["--shots", "2"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("zero-shot"));
    let o = run(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let item: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(tmp.join("out/arc_easy.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let p = item["prompt"].as_str().unwrap();
    assert!(
        p.starts_with("<s>[user] Question: ") && p.ends_with("\nAnswer:\n[assistant]"),
        "{p}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

fn pyrandom_fixture() -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pyrandom.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The draws CPython made (scripts/make_pyrandom_fixture.py) for `(seed, pool, k)`.
fn python_draws(seed: u64, pool: usize, k: usize) -> Vec<Vec<usize>> {
    let fx = pyrandom_fixture();
    let case = fx["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["seed"] == seed && c["pool"] == pool && c["k"] == k)
        .expect("case in tests/fixtures/pyrandom.json");
    serde_json::from_value(case["draws"].clone()).unwrap()
}

#[test]
fn python_random_is_reproduced() {
    let fx = pyrandom_fixture();
    for c in fx["u32"].as_array().unwrap() {
        let mut r = PyRandom::new(c["seed"].as_u64().unwrap());
        let got: Vec<u64> = (0..8).map(|_| r.next_u32() as u64).collect();
        let want: Vec<u64> = serde_json::from_value(c["values"].clone()).unwrap();
        assert_eq!(got, want, "seed {}", c["seed"]);
    }
    // both of CPython's sampling strategies, several draws on one generator
    let cases = fx["samples"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for c in cases {
        let (seed, pool, k) = (
            c["seed"].as_u64().unwrap(),
            c["pool"].as_u64().unwrap() as usize,
            c["k"].as_u64().unwrap() as usize,
        );
        let want = python_draws(seed, pool, k);
        assert_eq!(
            sample_per_doc(seed, pool, k, want.len()).unwrap(),
            want,
            "seed {seed}, pool {pool}, k {k}"
        );
    }
    assert!(PyRandom::new(1).sample(4, 5).is_none());
}

/// A copy of the sample's GSM8K with a stand-in train split: the eight chain-of-thought
/// exemplars as `{question, answer}` rows (no real train split ships in a registry package).
fn gsm8k_with_train(dir: &Path) -> Vec<(String, String)> {
    std::fs::create_dir_all(dir.join("gsm8k")).unwrap();
    std::fs::write(dir.join("SAMPLE"), "").unwrap();
    std::fs::copy(
        data().join("gsm8k/test.jsonl"),
        dir.join("gsm8k/test.jsonl"),
    )
    .unwrap();
    let cot = std::fs::read_to_string(data().join("gsm8k/cot_exemplars.txt")).unwrap();
    let mut pool = Vec::new();
    let mut lines = String::new();
    for block in cot.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (q, a) = block.trim().split_once("\nAnswer: ").unwrap();
        let q = q.strip_prefix("Question: ").unwrap().to_string();
        let n = a.rsplit(' ').next().unwrap().trim_end_matches('.');
        let a = format!("{a}\n#### {n}");
        lines += &format!("{}\n", serde_json::json!({"question": q, "answer": a}));
        pool.push((q, a));
    }
    std::fs::write(dir.join("gsm8k/train.jsonl"), lines).unwrap();
    pool
}

#[test]
fn gsm8k_draws_its_exemplars_as_the_harness_does() {
    let dir = fresh_dir("gsm8k");
    let pool = gsm8k_with_train(&dir);
    assert_eq!(pool.len(), 8);
    let test = read_rows(&dir.join("gsm8k/test.jsonl")).unwrap();
    let Items::Gen(items) = load(Task::Gsm8k, &dir, None, 5, 1234).unwrap() else {
        panic!("gsm8k generates")
    };
    assert_eq!(items.len(), test.len());
    // lm-evaluation-harness: `Question: …\nAnswer: <full answer>\n\n` per exemplar, drawn by
    // Random(1234).sample(train, 5) once per document in order, then the question
    for ((item, row), picks) in items.iter().zip(&test).zip(python_draws(1234, 8, 5)) {
        let mut want = String::new();
        for p in picks {
            want += &format!("Question: {}\nAnswer: {}\n\n", pool[p].0, pool[p].1);
        }
        want += &format!("Question: {}\nAnswer:", row["question"].as_str().unwrap());
        assert_eq!(item.prompt, want);
    }
    // the reference is the whole solution, as the harness's doc_to_target; exact_match drops
    // everything up to `#### `
    assert!(items[0].answer.ends_with("\n#### 18"));
    assert!(gsm8k_exact_match("18", &items[0].answer));
    // another seed draws other exemplars; --limit keeps the first documents' draws
    let Items::Gen(other) = load(Task::Gsm8k, &dir, None, 5, 7).unwrap() else {
        panic!()
    };
    assert_ne!(other[0].prompt, items[0].prompt);
    let Items::Gen(two) = load(Task::Gsm8k, &dir, Some(2), 5, 1234).unwrap() else {
        panic!()
    };
    assert_eq!(two[..], items[..2]);
    let e = load(Task::Gsm8k, &dir, None, 9, 1234)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--shots 9") && e.contains("train.jsonl"), "{e}");
    // end to end: the CLI writes these prompts, and the seed it used
    let model = dir.join("model");
    checkpoint_with_tokenizer(&model);
    let out = dir.join("out");
    let o = eval_command(&model, &dir)
        .args(["--tasks", "gsm8k", "--max-gen-tokens", "4", "--no-probe"])
        .args(["--limit", "2", "--seed", "1234", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(out.join("gsm8k.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for (r, it) in rows.iter().zip(&items) {
        assert_eq!(r["prompt"].as_str().unwrap(), it.prompt);
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["seed"], 1234);
    assert_eq!(s["tasks"][0]["shots"], 5);

    // without a train split: an error that says what is missing and why
    std::fs::remove_file(dir.join("gsm8k/train.jsonl")).unwrap();
    let e = load(Task::Gsm8k, &dir, None, 5, 1234)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train.jsonl is missing") && e.contains("gsm8k_cot"),
        "{e}"
    );
    // zero-shot (chat mode) draws no exemplars and needs no train split
    let Items::Gen(zero) = load(Task::Gsm8k, &dir, None, 0, 1234).unwrap() else {
        panic!()
    };
    assert_eq!(zero[0].prompt.matches("Question:").count(), 1);
    assert!(zero[0].prompt.starts_with("Question: "));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// lm-evaluation-harness's own `gsm8k_cot` contexts, stop strings, references, and what its
/// filters and `exact_match` make of a set of responses (tests/fixtures/lm_eval_gsm8k.json,
/// written by scripts/make_lm_eval_gsm8k_fixture.py from lm-eval 0.4.13 on the committed sample).
#[test]
fn gsm8k_cot_is_lm_evaluation_harness_task() {
    let fx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm_eval_gsm8k.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let cot = &fx["gsm8k_cot"];
    let Items::Gen(items) = load(Task::Gsm8kCot, &data(), None, 8, 1234).unwrap() else {
        panic!("gsm8k_cot generates")
    };
    let contexts = cot["contexts"].as_array().unwrap();
    assert_eq!(items.len(), contexts.len());
    for (it, want) in items.iter().zip(contexts) {
        assert_eq!(it.prompt, want.as_str().unwrap(), "document {}", it.id);
    }
    for (it, want) in items.iter().zip(cot["references"].as_array().unwrap()) {
        assert_eq!(it.answer, want.as_str().unwrap());
    }
    let until: Vec<&str> = cot["until"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(Task::Gsm8kCot.stops(), &until[..]);
    for (task, name) in [(Task::Gsm8kCot, "gsm8k_cot"), (Task::Gsm8k, "gsm8k")] {
        let ex = task.extractors().unwrap();
        let reference = fx[name]["references"][0].as_str().unwrap();
        for row in fx[name]["filtered"].as_array().unwrap() {
            let r = row["response"].as_str().unwrap();
            let (strict, flexible) = (ex.strict(r), ex.flexible(r));
            assert_eq!(
                strict,
                row["strict"].as_str().unwrap(),
                "{name} strict of {r:?}"
            );
            assert_eq!(
                flexible,
                row["flexible"].as_str().unwrap(),
                "{name} flexible of {r:?}"
            );
            assert_eq!(
                gsm8k_exact_match(&strict, reference),
                row["strict_matches_doc0"].as_bool().unwrap(),
                "{name} exact_match of {strict:?}"
            );
            assert_eq!(
                gsm8k_exact_match(&flexible, reference),
                row["flexible_matches_doc0"].as_bool().unwrap(),
                "{name} exact_match of {flexible:?}"
            );
        }
    }
    // fewer shots keep the first exemplars; more than 8 is an error naming the file
    let Items::Gen(two) = load(Task::Gsm8kCot, &data(), Some(1), 2, 1234).unwrap() else {
        panic!()
    };
    assert_eq!(two[0].prompt.matches("\nA: ").count(), 2);
    assert!(two[0].prompt.starts_with("Q: There are 15 trees"));
    let e = load(Task::Gsm8kCot, &data(), None, 9, 1234)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cot_exemplars_lm_eval.jsonl holds 8"), "{e}");
}

fn rows_of(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn resumed_runs_equal_uninterrupted_ones_and_folders_are_not_overwritten() {
    let tmp = fresh_dir("resume");
    let model = tmp.join("model");
    checkpoint_with_tokenizer(&model);
    let cache = tmp.join("cache");
    let tasks = ["arc_easy", "hellaswag", "mmlu", "gsm8k_cot"];
    let run = |out: &Path, extra: &[&str]| {
        eval_command(&model, &data())
            .args(["--tasks", &tasks.join(","), "--batch", "1"])
            .args(["--max-gen-tokens", "5", "--out"])
            .arg(out)
            .args(extra)
            .env("MOECAP_CACHE_DIR", &cache)
            .output()
            .unwrap()
    };
    let whole = tmp.join("whole");
    let o = run(&whole, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    // progress as plain lines when stderr is not a terminal, and the folder said first
    assert!(
        err.starts_with(&format!("results go to {}", whole.display())),
        "{err}"
    );
    assert!(err.contains("hellaswag: 6/6 items"), "{err}");
    // the ceilings cache is only read: an empty cache stays empty and the run says so
    assert!(err.contains("no measured ceilings"), "{err}");
    assert!(
        !cache.join("ceilings").exists()
            && std::fs::read_dir(&cache).map_or(true, |mut d| d.next().is_none())
    );
    // HellaSwag rows carry the dataset's `ind`
    assert!(rows_of(&whole.join("hellaswag.jsonl"))
        .iter()
        .all(|r| r["ind"].is_i64()));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("summary.json")).unwrap())
            .unwrap();
    assert!(s["tasks"][0]["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(s["tasks"][0]["items_timed"], 4);

    // the same folder again: refused, named; --force replaces it
    let o = run(&whole, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("already holds an evaluation")
            && err.contains("--resume"),
        "{err}"
    );

    // an interrupted run: one task finished, one cut inside a line, the rest never started
    let cut = tmp.join("cut");
    assert!(run(&cut, &[]).status.success());
    let hs = std::fs::read_to_string(cut.join("hellaswag.jsonl")).unwrap();
    let lines: Vec<&str> = hs.lines().collect();
    let torn = format!(
        "{}\n{}\n{}",
        lines[0],
        lines[1],
        &lines[2][..lines[2].len() / 2]
    );
    std::fs::write(cut.join("hellaswag.jsonl"), torn).unwrap();
    for f in [
        "mmlu.jsonl",
        "gsm8k_cot.jsonl",
        "summary.json",
        "summary.md",
    ] {
        std::fs::remove_file(cut.join(f)).unwrap();
    }
    // other settings are refused by name
    let o = run(&cut, &["--resume", "--limit", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("limit"), "{err}");
    let o = run(&cut, &["--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for t in tasks {
        let f = format!("{t}.jsonl");
        assert_eq!(rows_of(&cut.join(&f)), rows_of(&whole.join(&f)), "{t}");
    }
    let s2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cut.join("summary.json")).unwrap()).unwrap();
    for (a, b) in s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .zip(s2["tasks"].as_array().unwrap())
    {
        assert_eq!(a["metrics"], b["metrics"]);
    }
    assert_eq!(
        s2["tasks"][1]["items_timed"], 4,
        "hellaswag: 2 kept, 4 scored"
    );

    // a real kill at a random moment, then --resume: the same files
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let killed = tmp.join("killed");
    let mut child = eval_command(&model, &data())
        .args(["--tasks", &tasks.join(","), "--batch", "1"])
        .args(["--max-gen-tokens", "5", "--out"])
        .arg(&killed)
        .env("MOECAP_CACHE_DIR", &cache)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20 + (nanos % 200) as u64));
    let _ = child.kill();
    let _ = child.wait();
    let again: &[&str] = if killed.join("eval.json").exists() {
        &["--resume"]
    } else {
        &[]
    };
    let o = run(&killed, again);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for t in tasks {
        let f = format!("{t}.jsonl");
        assert_eq!(
            rows_of(&killed.join(&f)),
            rows_of(&whole.join(&f)),
            "{t} after a kill"
        );
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn subjects_choose_mmlu_subjects() {
    let tmp = fresh_dir("subjects");
    let model = tmp.join("model");
    checkpoint_with_tokenizer(&model);
    let run = |out: &str, subjects: &str| {
        eval_command(&model, &data())
            .args([
                "--tasks",
                "mmlu",
                "--no-probe",
                "--subjects",
                subjects,
                "--out",
            ])
            .arg(tmp.join(out))
            .output()
            .unwrap()
    };
    let o = run("geo", "high_school_geography");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = rows_of(&tmp.join("geo/mmlu.jsonl"));
    assert!(!rows.is_empty() && rows.iter().all(|r| r["group"] == "high_school_geography"));
    let s = std::fs::read_to_string(tmp.join("geo/summary.json")).unwrap();
    assert!(s.contains("\"subjects\": \"high_school_geography\""), "{s}");
    assert!(run("first", "first:1").status.success());
    let rows = rows_of(&tmp.join("first/mmlu.jsonl"));
    assert!(rows.iter().all(|r| r["group"] == "abstract_algebra"));
    let o = run("bad", "high_school_geografy");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("no MMLU subject `high_school_geografy`")
            && err.contains("closest: high_school_geography"),
        "{err}"
    );
    let o = run("zero", "first:0");
    assert!(!o.status.success());
    let o = eval_command(&model, &data())
        .args(["--tasks", "arc_easy", "--subjects", "first:1", "--out"])
        .arg(tmp.join("arc"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not name mmlu"));
    std::fs::remove_dir_all(&tmp).unwrap();
}

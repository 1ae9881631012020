//! Evaluation data and tasks: the Arrow reader against pyarrow's reading of the same files
//! (tests/fixtures/data, cut by scripts/make_data_samples.py from the registry packages), the
//! prompts in lm-evaluation-harness's formats, the scoring against the engine's own logits, and
//! `moecap eval` end to end.

mod eval_support;
use eval_support::{checkpoint_with_tokenizer, data, eval_command, fresh_dir};
use moecap::data::read_rows;
use moecap::eval::fewshot::{sample_per_doc, PyRandom};
use moecap::eval::tasks::filters::gsm8k_exact_match;
use moecap::eval::tasks::{load, Items, Task};
use std::path::{Path, PathBuf};

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
    let cut = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moecap-cut-{}.arrow", std::process::id()));
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

//! `moecap eval` against lm-evaluation-harness's own gsm8k_cot (a fixture it wrote), and the
//! eval runs a user leans on: resumed after an interruption or a kill, folders not overwritten,
//! MMLU subjects chosen.

mod eval_support;
use eval_support::{checkpoint_with_tokenizer, data, eval_command, fresh_dir};
use moecap::eval::tasks::filters::gsm8k_exact_match;
use moecap::eval::tasks::{load, Items, Task};
use std::path::Path;
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

    // the same folder again: refused, named; --force replaces it and leaves no earlier task
    let o = eval_command(&model, &data())
        .args(["--tasks", "arc_easy", "--no-probe", "--force", "--out"])
        .arg(tmp.join("forced"))
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::copy(whole.join("mmlu.jsonl"), tmp.join("forced/mmlu.jsonl")).unwrap();
    let o = eval_command(&model, &data())
        .args(["--tasks", "arc_easy", "--no-probe", "--out"])
        .arg(tmp.join("forced"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let o = eval_command(&model, &data())
        .args(["--tasks", "arc_easy", "--no-probe", "--force", "--out"])
        .arg(tmp.join("forced"))
        .output()
        .unwrap();
    assert!(o.status.success() && !tmp.join("forced/mmlu.jsonl").exists());
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

//! Fault injection: sweeps interrupted (Ctrl-C) and killed (SIGKILL) at chosen moments, and a
//! disk that fills up while reports are written. Every file left behind must be whole, the
//! finished points kept, and a resumed run must equal one that was never interrupted.

// shared with the other binary's tests; not every helper is used here
#[allow(dead_code)]
mod cli_support;

use cli_support::{moecap, scratch, tmp};
use serde_json::Value;

/// A ceilings file with round figures (so that no test measures the machine).
fn ceilings(name: &str) -> String {
    tmp(
        name,
        r#"{"key":"t","copy_bytes_per_s":1e10,"triad_bytes_per_s":1e10,"buffer_bytes":1,"matmul_flops_per_s":{"f32":1e11},"matmul_size":{"f32":64},"threads":1,"measured_at":0,"method":3}"#,
    )
}

/// The bench arguments of a small sweep of the tiny model writing to `out`.
fn small_sweep(ceil: &str, out: &str) -> Vec<String> {
    [
        "bench",
        "--model",
        "synthetic:tiny-mixtral",
        "--batch",
        "1,2,3,4,5,6",
        "--prompt-len",
        "8,16,24",
        "--gen-len",
        "8",
        "--warmup",
        "0",
        "--repetitions",
        "1",
        "--ceilings",
        ceil,
        "--out",
        out,
    ]
    .map(String::from)
    .to_vec()
}

/// Records per point of a bench folder.
fn records_per_point(dir: &std::path::Path) -> std::collections::BTreeMap<String, usize> {
    let mut n = std::collections::BTreeMap::new();
    for l in std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap()
        .lines()
    {
        let v: Value = serde_json::from_str(l).unwrap();
        *n.entry(v["point"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    n
}

#[test]
fn an_interrupted_sweep_says_how_to_resume_and_resumes_to_the_full_run() {
    use std::io::{BufRead, BufReader, Read};
    let ceil = ceilings("ceil-interrupt.json");
    let (cut, whole) = (scratch("interrupted"), scratch("uninterrupted"));
    for d in [&cut, &whole] {
        let _ = std::fs::remove_dir_all(d);
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_moecap"))
        .args(small_sweep(&ceil, &cut.display().to_string()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "no point finished: {seen}"
        );
        seen += &line;
        if line.starts_with("done:") {
            break;
        }
    }
    assert!(
        seen.contains(&format!("report folder: {}", cut.display())),
        "{seen}"
    );
    // Ctrl-C after the first point
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    err.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    let resume = seen
        .lines()
        .find_map(|l| l.split_once("continue with: ").map(|(_, c)| c.to_string()))
        .unwrap_or_else(|| panic!("no resume command: {seen}"));
    assert!(
        seen.contains(&format!("are kept in {}", cut.display())),
        "{seen}"
    );
    let words: Vec<&str> = resume.split_whitespace().collect();
    assert_eq!(words[0], "moecap");
    assert_eq!(words.last(), Some(&"--resume"));
    let o = moecap(&words[1..]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = moecap(
        &small_sweep(&ceil, &whole.display().to_string())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(o.status.success());
    // the resumed run holds every point once, with the records of an uninterrupted run
    assert_eq!(records_per_point(&cut), records_per_point(&whole));
    let points = |d: &std::path::Path| -> usize {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap())
                .unwrap();
        v["points"].as_array().unwrap().len()
    };
    assert_eq!((points(&cut), points(&whole)), (18, 18));
    for d in [&cut, &whole] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Checks that every file of a (possibly killed) bench folder is whole: JSON files parse,
/// every line of a JSON-lines file parses, reports are not empty. Hidden temporaries are
/// not the run's files.
fn every_file_is_whole(dir: &std::path::Path) -> usize {
    let mut checked = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            checked += every_file_is_whole(&p);
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        match p.extension().and_then(|x| x.to_str()) {
            Some("json") => {
                serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            Some("jsonl") => {
                for l in text.lines() {
                    serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{name}: {e}"));
                }
            }
            _ => assert!(!text.is_empty(), "{name} is empty"),
        }
        checked += 1;
    }
    checked
}

#[test]
fn runs_killed_at_any_moment_leave_only_whole_files() {
    use std::io::{BufRead, BufReader};
    let ceil = ceilings("ceil-kill.json");
    // killed after 0, 1, 3 and 6 finished points, each after a further pause of a few ms
    for (after, pause_ms) in [(0usize, 5u64), (1, 0), (3, 17), (6, 41)] {
        let dir = scratch(&format!("killed-{after}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_moecap"))
            .args(small_sweep(&ceil, &dir.display().to_string()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut done = 0;
        while done < after {
            let mut line = String::new();
            if err.read_line(&mut line).unwrap() == 0 {
                break;
            }
            done += usize::from(line.starts_with("done:"));
        }
        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        if dir.exists() {
            every_file_is_whole(&dir);
            if dir.join("run.json").exists() {
                // and the run resumes from there to the full sweep
                let mut args = small_sweep(&ceil, &dir.display().to_string());
                let at = args.iter().position(|a| a == "--ceilings").unwrap();
                args.drain(at..at + 2);
                args.push("--resume".into());
                let o = moecap(&args.iter().map(String::as_str).collect::<Vec<_>>());
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                assert!(every_file_is_whole(&dir) >= 18 + 18 + 4);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_keeps_the_finished_points() {
    let ceil = ceilings("ceil-full.json");
    let dir = scratch("full-disk");
    let _ = std::fs::remove_dir_all(&dir);
    // files may grow to 100 blocks of 512 bytes (the size limit of a full disk, for this
    // process only); writing past it fails with EFBIG instead of killing the process
    let script = format!(
        "trap '' XFSZ; ulimit -f 100; exec '{}' {}",
        env!("CARGO_BIN_EXE_moecap"),
        small_sweep(&ceil, &dir.display().to_string()).join(" ")
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("File too large"),
        "{err}"
    );
    assert_eq!(
        last.matches("File too large").count(),
        1,
        "said once: {last}"
    );
    assert!(!last.contains(".tmp"), "names the file meant: {last}");
    let finished = err.lines().filter(|l| l.starts_with("done:")).count();
    assert!(finished > 0, "{err}");
    let points = std::fs::read_dir(dir.join("points")).unwrap().count();
    assert_eq!(points, finished, "every finished point is on disk");
    every_file_is_whole(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

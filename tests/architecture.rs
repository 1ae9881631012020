//! The house rules of the source tree, checked on the files themselves: data flows one way, so a
//! stage of the library may use only the stages below it (docs/ARCHITECTURE.md); the kernels
//! crate knows neither the engine nor candle; and no source file grows past ~600 lines unless
//! its `//!` doc says why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The library's stages, lowest first: a module may use its own stage and lower ranks only.
const STAGES: &[(&str, u32)] = &[
    ("error", 0),
    ("rng", 1),
    ("backend", 1),
    ("files", 1),
    ("model", 2),
    ("records", 3),
    ("machine", 3),
    ("offload", 4),
    ("engine", 5),
    ("accounting", 5),
    ("data", 5),
    ("upcycle", 5),
    ("bench", 6),
    ("eval", 6),
    ("export", 7),
    ("report", 8),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("source folder") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The stage a library file belongs to: its first path component under `src/`.
fn stage_of(file: &Path, src: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    Some(first.trim_end_matches(".rs").to_string())
}

/// Every `crate::NAME` a file mentions, outside comments.
fn crate_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let name: String = rest[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
            rest = &rest[at + 7..];
        }
    }
    out
}

#[test]
fn stages_import_only_downward() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let rank: BTreeMap<&str, u32> = STAGES.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    let mut seen = 0;
    for f in &files {
        let Some(stage) = stage_of(f, &src) else {
            continue;
        };
        // the crate root, the binary and its command line sit above every stage
        if matches!(stage.as_str(), "lib" | "main" | "cli") {
            continue;
        }
        let own = *rank
            .get(stage.as_str())
            .unwrap_or_else(|| panic!("{}: stage `{stage}` has no rank here", f.display()));
        let text = std::fs::read_to_string(f).expect("source file");
        for name in crate_refs(&text) {
            seen += 1;
            match rank.get(name.as_str()) {
                Some(&r) if name == stage || r < own => {}
                Some(&r) => bad.push(format!(
                    "{}: `{stage}` (rank {own}) uses `{name}` (rank {r})",
                    f.strip_prefix(root).unwrap_or(f).display()
                )),
                // `crate::Error`, `crate::Result` and the like: the crate root's re-exports
                None if name.chars().next().is_some_and(char::is_uppercase) => {}
                None => bad.push(format!("{}: unknown stage `{name}`", f.display())),
            }
        }
    }
    assert!(seen > 100, "the scan found only {seen} references");
    assert!(
        bad.is_empty(),
        "imports against the flow:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_kernels_crate_knows_no_engine_and_no_candle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(!files.is_empty());
    for f in &files {
        let text = std::fs::read_to_string(f).expect("source file");
        for needle in ["moecap::", "candle", "crate::engine"] {
            assert!(
                !text.contains(needle),
                "{} mentions `{needle}`",
                f.display()
            );
        }
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("manifest");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|d| d.split("\n[").next())
        .expect("a [dependencies] table");
    assert!(
        !deps.contains("candle"),
        "kernels depends on candle:\n{deps}"
    );
}

#[test]
fn no_source_file_is_long_without_a_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "kernels/src", "benches", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut long = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("source file");
        let lines = text.lines().count();
        let says_why = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .any(|l| l.contains("long because"));
        if lines > 600 && !says_why {
            long.push(format!("{}: {lines} lines", f.display()));
        }
    }
    assert!(
        long.is_empty(),
        "files over 600 lines:\n{}",
        long.join("\n")
    );
}

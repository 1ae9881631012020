//! Running the `moecap` binary from a test: its output, its JSON, and the check that bad input
//! gets one line of error and a non-zero exit.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the binary with `args`.
pub fn moecap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moecap"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs the binary, which must succeed, and parses its standard output as JSON.
pub fn json(args: &[&str]) -> serde_json::Value {
    let out = moecap(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// Runs the binary, which must fail with one line of error containing `needle` and no panic.
pub fn fails(args: &[&str], needle: &str) {
    let out = moecap(args);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

/// A path of this test process under the build's temporary folder.
pub fn scratch(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moecap-cli-{}-{name}", std::process::id()))
}

/// Writes `text` to a scratch file and returns its path.
pub fn tmp(name: &str, text: &str) -> String {
    let p = scratch(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

//! Helpers shared by the CLI test files: run `nnlens` with no log and no download cache.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;

use assert_cmd::Command;

/// The `nnlens` binary of this build, with no log override and a cache that does not exist.
pub fn nnlens() -> Command {
    let mut cmd = Command::cargo_bin("nnlens").unwrap();
    cmd.env_remove("NNLENS_LOG").env("NNLENS_CACHE_DIR", "/nonexistent-nnlens-cache");
    cmd
}

/// Runs a quiet command that must succeed; its standard output.
pub fn stdout(args: &[&str]) -> String {
    let out = nnlens().arg("-q").args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a quiet command with `--format json` that must succeed; its parsed output.
pub fn json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&stdout(&all)).unwrap()
}

/// Runs a command that must fail with exit code 1 and a one-line error, never a panic; the
/// error.
pub fn fails(args: &[&str]) -> String {
    let out = nnlens().arg("-q").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: not one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

/// Whether `path` is a PNG file.
pub fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.starts_with(b"\x89PNG"))
}

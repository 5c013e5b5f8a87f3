//! ethik's MNIST example from the command line (needs ../shared): the golden predictions given
//! with --predictions, the exact influence and accuracy to 1e-6, ethik's own solver to 0.01.
#![cfg(feature = "shared")]

use std::path::PathBuf;

use assert_cmd::Command;
use ndarray::{Array3, Array4};

fn shared() -> PathBuf {
    std::env::var_os("NNLENS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

fn run(metric: &str, solver: &str) -> Vec<f64> {
    let shared = shared();
    let out = Command::cargo_bin("nnlens")
        .unwrap()
        .env("NNLENS_CACHE_DIR", "/nonexistent-nnlens-cache")
        .args([
            "-q",
            "--format",
            "json",
            "run",
            metric,
            "--dataset",
            "mnist",
            "--pixel-scale",
            "raw",
        ])
        .args(["--data-dir", shared.join("data/mnist").to_str().unwrap()])
        .args(["--predictions", shared.join("golden/ethik/y_pred.npy").to_str().unwrap()])
        .args(["--solver", solver])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["result"]["explanation"]["values"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect()
}

#[test]
fn the_golden_influence_and_accuracy_are_reproduced_from_the_cli() {
    let golden = shared().join("golden/ethik");
    let read4 = |name: &str| -> Array4<f64> { ndarray_npy::read_npy(golden.join(name)).unwrap() };
    let exact = read4("exact_influence_by_tau.npy"); // [tau, class, row, col]
    let ethik = read4("ethik_influence_by_tau.npy");
    let accuracy: Array3<f64> =
        ndarray_npy::read_npy(golden.join("exact_accuracy_by_tau.npy")).unwrap();
    let ours = run("influence", "exact"); // [tau, feature, class]
    let compat = run("influence", "ethik");
    let (mut worst, mut worst_compat) = (0.0f64, 0.0f64);
    for t in 0..3 {
        for c in 0..10 {
            for f in 0..784 {
                let i = (t * 784 + f) * 10 + c;
                worst = worst.max((ours[i] - exact[[t, c, f / 28, f % 28]]).abs());
                worst_compat = worst_compat.max((compat[i] - ethik[[t, c, f / 28, f % 28]]).abs());
            }
        }
    }
    assert!(worst < 1e-6, "exact influence: max abs error {worst}");
    assert!(worst_compat < 0.01, "ethik-compatible influence: max abs error {worst_compat}");
    let acc = run("performance", "exact"); // [tau, feature]
    let mut worst_acc = 0.0f64;
    for t in 0..3 {
        for f in 0..784 {
            worst_acc = worst_acc.max((acc[t * 784 + f] - accuracy[[t, f / 28, f % 28]]).abs());
        }
    }
    assert!(worst_acc < 1e-6, "exact accuracy: max abs error {worst_acc}");
}

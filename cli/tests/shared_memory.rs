//! Memory of the seed's per-class linearity run, bounded whatever the run (needs ../shared):
//! three identical tract runs on 2,000 Fashion-MNIST test images, each its own process, whose
//! peak resident memory (each run writes its own VmHWM of `/proc/self/status` at exit, which
//! `nnlens bench --workload` reads) stays under a stated bound and within 20% of each other. Memory is a count of pages, not a time: the bound holds on any machine.
#![cfg(feature = "shared")]

use std::path::PathBuf;

use assert_cmd::Command;

fn shared() -> PathBuf {
    std::env::var_os("NNLENS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// What the run holds: the binary and tract's plan (~60 MB), the 10,000 decoded test images
/// (31 MB of f32), two workers' blocks of 252 inputs with their samples and every
/// intermediate tensor of tract's 8-input chunks (a few MB each). 300 MB leaves room for the
/// allocator's own bookkeeping, and is far below the 1.3-4 GB that retained free memory grew
/// to before.
const BOUND_MB: f64 = 300.0;

#[test]
fn per_class_linearity_memory_is_bounded_and_the_same_from_run_to_run() {
    let shared = shared();
    let output = Command::cargo_bin("nnlens")
        .unwrap()
        .args(["--format", "json", "bench", "--workload", "linearity", "--backend", "tract"])
        .args(["--samples", "2000", "--rounds", "3", "--dataset", "fashion-mnist"])
        .arg("--model")
        .arg(shared.join("models/fashion_cnn.onnx"))
        .arg("--data-dir")
        .arg(shared.join("data/fashion-mnist"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let row = &doc["workloads"][0];
    assert_eq!(row["forwards"], 2000 * 21);
    let [median, min, max] = [0, 1, 2].map(|i| row["peak_rss_mb"][i].as_f64().unwrap());
    eprintln!("peak RSS of 3 runs: median {median:.0} MB, {min:.0}-{max:.0} MB");
    assert!(max < BOUND_MB, "peak RSS {max:.0} MB, bound {BOUND_MB} MB");
    assert!(max <= 1.2 * min, "peak RSS {min:.0}-{max:.0} MB: more than 20% apart");
}

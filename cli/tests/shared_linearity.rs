//! alibi's linearity fixture from the command line: its 10 instances (`--indices`) and its grid
//! draws (`--offsets`), every layer of fashion_cnn_layers.onnx in one run (needs ../shared).
#![cfg(feature = "shared")]

use std::path::PathBuf;

use assert_cmd::Command;
use ndarray::{Array1, Array3};
use ndarray_npy::{NpzReader, WriteNpyExt};

fn shared() -> PathBuf {
    std::env::var_os("NNLENS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

#[test]
fn the_fixture_is_reproduced_from_the_cli() {
    let shared = shared();
    let file =
        std::fs::File::open(shared.join("golden/linearity/fashion_cnn_fixture.npz")).unwrap();
    let mut npz = NpzReader::new(file).unwrap();
    let indices: Array1<i64> = npz.by_name("x_indices").unwrap();
    let offsets: Array3<i8> = npz.by_name("offsets").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let offsets_path = dir.path().join("offsets.npy");
    offsets.write_npy(std::fs::File::create(&offsets_path).unwrap()).unwrap();
    let indices: Vec<String> = indices.iter().map(|i| i.to_string()).collect();
    let model = shared.join("models/fashion_cnn_layers.onnx");
    let data = shared.join("data/fashion-mnist");
    let out = Command::cargo_bin("nnlens")
        .unwrap()
        .env("NNLENS_CACHE_DIR", "/nonexistent-nnlens-cache")
        .args(["-q", "--format", "json", "run", "linearity", "--dataset", "fashion-mnist"])
        .args(["--data-dir", data.to_str().unwrap(), "--model", model.to_str().unwrap()])
        .args(["--indices", &indices.join(","), "--offsets", offsets_path.to_str().unwrap()])
        .args(["--layers", "all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let state = &doc["result"]["state"];
    let layers = state["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 14);
    let mut compared = 0;
    for (l, layer) in layers.iter().enumerate() {
        let name = layer["name"].as_str().unwrap();
        let expected_type = if name == "softmax" { "classifier" } else { "regressor" };
        assert_eq!(layer["model_type"], expected_type, "{name}");
        let want: Array1<f64> = npz.by_name(&format!("expected_global_{name}")).unwrap();
        for (i, &w) in want.iter().enumerate() {
            let got = state["values"][l][i].as_f64().unwrap();
            let ok = if name == "conv_1" {
                (got - w).abs() <= 1e-5
            } else {
                (got - w).abs() <= 1e-4 * w
            };
            assert!(ok, "{name} instance {i}: {got} vs {w}");
            compared += 1;
        }
    }
    assert_eq!(compared, 140);
}

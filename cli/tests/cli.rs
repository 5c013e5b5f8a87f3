//! The `nnlens` binary, end to end, on the embedded model and sample and on files made here.
//! Nothing outside the repository is needed.

mod common;
use common::{fails, json, stdout};

use std::path::Path;

use nnlens_datasets::idx::{IdxArray, IdxData, gzip};

/// `nnlens evaluate` on the Fashion-MNIST files of `dir`, which must fail; its error.
fn evaluate_fashion_dir_fails(dir: &Path) -> String {
    fails(&["evaluate", "--dataset", "fashion-mnist", "--data-dir", dir.to_str().unwrap()])
}

/// Writes a tiny Fashion-MNIST-named test split (n images of 28x28) into `dir`.
fn write_split(dir: &Path, n: usize) -> (Vec<u8>, Vec<u8>) {
    write_split_of_size(dir, n, 28)
}

/// Writes a test split of n images of `size` x `size` into `dir`; returns the raw IDX bytes.
fn write_split_of_size(dir: &Path, n: usize, size: usize) -> (Vec<u8>, Vec<u8>) {
    let images = IdxArray {
        dims: vec![n, size, size],
        data: IdxData::U8((0..n * size * size).map(|i| ((i * 13) % 256) as u8).collect()),
    };
    let labels =
        IdxArray { dims: vec![n], data: IdxData::U8((0..n).map(|i| (i % 10) as u8).collect()) };
    let (img, lab) = (gzip(&images.to_bytes()), gzip(&labels.to_bytes()));
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), &img).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), &lab).unwrap();
    (images.to_bytes(), labels.to_bytes())
}

#[test]
fn layers_of_the_embedded_model() {
    let text = stdout(&["layers"]);
    for name in [
        "conv_1",
        "relu_1",
        "maxp_1",
        "conv_2",
        "relu_2",
        "maxp_2",
        "flat",
        "dense_1",
        "relu_3",
        "dense_2",
        "softmax (output)",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let doc = json(&["layers"]);
    let layers = doc["structure"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 11);
    let conv = &layers[0];
    assert_eq!(conv["name"], "conv_1");
    assert_eq!(conv["shape"], serde_json::json!([64, 28, 28]));
    assert_eq!(conv["channel_axis"], 0);
    assert_eq!(layers[5]["channel_axis"], 2, "maxp_2 is transposed to channels-last");
}

#[test]
fn evaluate_is_the_same_whatever_the_batch_size() {
    let a = json(&["evaluate", "--samples", "50", "--batch-size", "7"]);
    let b = json(&["evaluate", "--samples", "50", "--batch-size", "50"]);
    assert_eq!(a["result"]["samples"], 50);
    assert_eq!(a["result"]["state"]["correct"], b["result"]["state"]["correct"]);
    let (la, lb) = (a["result"]["loss"].as_f64().unwrap(), b["result"]["loss"].as_f64().unwrap());
    assert!((la - lb).abs() < 1e-5, "{la} vs {lb}");
    let acc = a["result"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.7, "the embedded model classifies its sample: {acc}");
    let m = &a["manifest"];
    assert_eq!(m["command"], "evaluate");
    // The default backend is auto's choice here: ort where its library is found, else tract.
    assert_eq!(m["backend"], json(&["backends"])["auto"]["backend"]);
    assert_eq!(m["model"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(m["dataset"]["samples"], 50);
}

#[test]
fn evaluate_writes_a_result_file_and_reads_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), 12);
    let out = dir.path().join("out");
    let d = dir.path().to_str().unwrap();
    stdout(&[
        "--seed",
        "3",
        "evaluate",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        d,
        "--out",
        out.to_str().unwrap(),
    ]);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(doc["result"]["samples"], 12);
    assert_eq!(doc["manifest"]["seed"], 3);
    assert_eq!(doc["manifest"]["dataset"]["files"].as_array().unwrap().len(), 2);
}

#[test]
fn predict_writes_npy_per_layer() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("acts");
    let doc = json(&[
        "predict",
        "--layers",
        "maxp_2,softmax",
        "--samples",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(doc["result"][0]["shape"], serde_json::json!([3, 7, 7, 64]));
    let probs: ndarray::ArrayD<f32> = ndarray_npy_read(&out.join("softmax.npy"));
    assert_eq!(probs.shape(), &[3, 10]);
    for row in probs.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-4);
    }
    assert!(out.join("maxp_2.npy").is_file() && out.join("result.json").is_file());
}

fn ndarray_npy_read(path: &Path) -> ndarray::ArrayD<f32> {
    nnlens_datasets::npy::read_npy_f32(path).unwrap()
}

#[test]
fn registries_are_listed() {
    let listing = stdout(&["backends"]);
    assert!(listing.contains("tract") && listing.contains("--backend auto"), "{listing}");
    // -v lists the operators of a backend with its own list.
    let verbose = stdout(&["-v", "backends"]);
    assert!(verbose.contains("candle operators: Abs, Add") && verbose.contains("HardSwish"));
    let doc = json(&["backends"]);
    assert!(["ort", "tract"].contains(&doc["auto"]["backend"].as_str().unwrap()), "{doc}");
    let backends = &doc["backends"];
    assert_eq!(backends[0]["usable"], "yes");
    // Gradient backends register as such: candle gives gradients, tract does not.
    let gradients = |name: &str| {
        backends.as_array().unwrap().iter().find(|b| b["name"] == name).unwrap()["gradients"]
            .clone()
    };
    assert_eq!((gradients("candle"), gradients("tract")), (true.into(), false.into()));
    let metrics = json(&["metrics"]);
    let names: Vec<&str> =
        metrics.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, nnlens_plugins::EXPECTED_METRICS);
    assert_eq!(metrics[0]["family"], "invariance");
    assert!(stdout(&["metrics"]).contains("nvi"));
}

#[test]
fn sample_writes_idx_that_loads_again() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    stdout(&["--seed", "5", "sample", "--count", "20", "--out", out.to_str().unwrap()]);
    let doc =
        json(&["evaluate", "--dataset", "fashion-mnist", "--data-dir", out.to_str().unwrap()]);
    assert_eq!(doc["result"]["samples"], 20);
    let a = std::fs::read_to_string(out.join("sample.json")).unwrap();
    stdout(&["--seed", "5", "sample", "--count", "20", "--out", out.to_str().unwrap()]);
    assert_eq!(
        a,
        std::fs::read_to_string(out.join("sample.json")).unwrap(),
        "same seed, same sample"
    );
}

#[test]
fn truncated_idx_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = write_split(dir.path(), 4);
    std::fs::write(
        dir.path().join("t10k-images-idx3-ubyte.gz"),
        gzip(&images[..images.len() - 100]),
    )
    .unwrap();
    let e = evaluate_fashion_dir_fails(dir.path());
    assert!(e.contains("truncated") && e.contains("t10k-images-idx3-ubyte.gz"), "{e}");
}

#[test]
fn missing_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(&["evaluate", "--dataset", "mnist", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(e.contains("t10k-images-idx3-ubyte.gz") && e.contains("does not exist"), "{e}");
    let e = fails(&["layers", "/nonexistent/model.onnx"]);
    assert!(e.contains("/nonexistent/model.onnx"), "{e}");
    let e = fails(&["evaluate", "--dataset", "mnist", "--data-dir", "/nonexistent/data"]);
    assert!(e.contains("/nonexistent/data"), "{e}");
}

#[test]
fn corrupt_onnx_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.onnx");
    std::fs::write(&path, b"\x08\x07garbage that is not an ONNX model \xff\xfe").unwrap();
    let e = fails(&["layers", path.to_str().unwrap()]);
    assert!(e.contains("broken.onnx"), "{e}");
    let e = fails(&["evaluate", "--model", path.to_str().unwrap()]);
    assert!(e.contains("broken.onnx"), "{e}");
}

#[test]
fn unknown_names_are_one_line_errors() {
    let e = fails(&["predict", "--layers", "conv_9"]);
    assert!(e.contains("unknown layer 'conv_9'") && e.contains("conv_1"), "{e}");
    let e = fails(&["evaluate", "--dataset", "cifar"]);
    assert!(e.contains("cifar"), "{e}");
    let e = fails(&["evaluate", "--backend", "nope"]);
    assert!(e.contains("unknown backend 'nope'") && e.contains("tract"), "{e}");
    let e = fails(&["evaluate", "--samples", "5000"]);
    assert!(e.contains("5000"), "{e}");
    let e = fails(&["evaluate", "--split", "validation"]);
    assert!(e.contains("validation"), "{e}");
}

#[test]
fn images_of_another_size_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_split_of_size(dir.path(), 2, 4);
    let e = evaluate_fashion_dir_fails(dir.path());
    assert!(e.contains("784") && e.contains("16"), "{e}");
}

#[test]
fn zero_sizes_are_errors() {
    let e = fails(&["evaluate", "--samples", "0"]);
    assert!(e.contains("--samples 0"), "{e}");
    let e = fails(&["evaluate", "--batch-size", "0"]);
    assert!(e.contains("--batch-size"), "{e}");
}

#[test]
fn transformation_sets_are_listed_and_bad_specs_rejected() {
    let doc = json(&["transformations", "rotation:n=4*hflip+translation:dx=-1..1"]);
    assert_eq!(doc["transformations"].as_array().unwrap().len(), 4 + 3);
    let text = stdout(&["transformations", "--group", "1", "--n", "3"]);
    assert!(text.contains("rotation(240)"), "{text}");
    let e = fails(&["transformations", "spin:n=2"]);
    assert!(e.contains("unknown transformation 'spin'"), "{e}");
    let e = fails(&["transformations", "--group", "9"]);
    assert!(e.contains("group 9"), "{e}");
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::io::Read;
    use std::process::{Command as Std, Stdio};
    let mut child = Std::new(assert_cmd::cargo::cargo_bin("nnlens"))
        .args(["transformations", "rotation:n=5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then drop: the pipe closes
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
}

#[test]
fn bench_reports_every_configuration_against_tract_on_one_thread() {
    let rows = json(&[
        "bench",
        "--backend",
        "tract",
        "--threads",
        "2",
        "--batch",
        "20",
        "--images",
        "60",
        "--rounds",
        "3",
    ]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["backend"].as_str(), rows[0]["threads"].as_u64()),
        (Some("tract"), Some(1))
    );
    assert_eq!(
        (rows[1]["backend"].as_str(), rows[1]["threads"].as_u64()),
        (Some("tract"), Some(2))
    );
    assert_eq!(rows[0]["vs_tract_1_thread"].as_f64(), Some(1.0));
    for row in rows {
        // 60 inputs in 3 rounds of whole batches of 20: one batch per round.
        assert_eq!((row["images"].as_u64(), row["rounds"].as_u64()), (Some(20), Some(3)));
        let (lo, mid, hi) = (
            row["min_images_per_s"].as_f64().unwrap(),
            row["images_per_s"].as_f64().unwrap(),
            row["max_images_per_s"].as_f64().unwrap(),
        );
        assert!(0.0 < lo && lo <= mid && mid <= hi, "{row}");
    }
    let ratio = rows[1]["vs_tract_1_thread"].as_f64().unwrap();
    let expected =
        rows[1]["images_per_s"].as_f64().unwrap() / rows[0]["images_per_s"].as_f64().unwrap();
    assert!((ratio - expected).abs() < 1e-9);
}

#[test]
fn bench_refuses_bad_settings_and_a_missing_python() {
    assert!(fails(&["bench", "--rounds", "0"]).contains("--rounds"));
    let e =
        fails(&["bench", "--backend", "tract", "--images", "8", "--python", "/nonexistent/python"]);
    assert!(e.contains("/nonexistent/python"), "{e}");
}

/// `evaluate --samples 20` in JSON with `ORT_DYLIB_PATH` set to `ort` (or left as it is).
fn evaluate_with_ort_library(ort: Option<&str>) -> serde_json::Value {
    let mut cmd = common::nnlens();
    if let Some(path) = ort {
        cmd.env("ORT_DYLIB_PATH", path);
    }
    let out = cmd.args(["-q", "--format", "json", "evaluate", "--samples", "20"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn backend_auto_runs_tract_when_onnx_runtime_is_missing_and_says_why() {
    let doc = evaluate_with_ort_library(Some("/nonexistent/libonnxruntime.so.1"));
    let manifest = &doc["manifest"];
    assert_eq!(manifest["backend"], "tract");
    let why = manifest["backend_choice"].as_str().unwrap();
    assert!(why.contains("cannot run here") && why.contains("pip install onnxruntime"), "{why}");
    // A backend named on the command line is not a choice.
    let named = json(&["evaluate", "--samples", "20", "--backend", "tract"]);
    assert!(named["manifest"].get("backend_choice").is_none());
    assert_eq!(named["result"], doc["result"]);
}

#[test]
fn backend_auto_runs_onnx_runtime_when_its_library_is_found() {
    // CI's ONNX Runtime step sets ORT_DYLIB_PATH and NNLENS_REQUIRE_ORT; elsewhere the library
    // may not be there, and the test has nothing to check.
    if std::env::var_os("NNLENS_REQUIRE_ORT").is_none() {
        eprintln!("skipped: NNLENS_REQUIRE_ORT is not set");
        return;
    }
    let doc = evaluate_with_ort_library(None);
    assert_eq!(doc["manifest"]["backend"], "ort", "{}", doc["manifest"]);
    let why = doc["manifest"]["backend_choice"].as_str().unwrap();
    assert!(why.contains("ONNX Runtime, whose library was found"), "{why}");
    let tract = json(&["evaluate", "--samples", "20", "--backend", "tract"]);
    assert_eq!(doc["result"]["accuracy"], tract["result"]["accuracy"]);
    let (a, b) =
        (doc["result"]["loss"].as_f64().unwrap(), tract["result"]["loss"].as_f64().unwrap());
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}

#[test]
fn bench_keeps_a_row_for_a_backend_that_cannot_run_the_model() {
    // Erf (tract runs it; candle does not implement it): candle's row says why, tract's has
    // numbers.
    use nnlens_onnx::proto::{GraphProto, ModelProto, NodeProto, ValueInfoProto, elem};
    use prost::Message;
    let graph = GraphProto {
        name: "erf".into(),
        node: vec![NodeProto::new("Erf", "/erf/Erf", &["x"], &["y"], vec![])],
        input: vec![ValueInfoProto::tensor("x", elem::FLOAT, &[None, Some(4)])],
        output: vec![ValueInfoProto::tensor("y", elem::FLOAT, &[None, Some(4)])],
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("erf.onnx");
    std::fs::write(&model, ModelProto::new(graph, 13).encode_to_vec()).unwrap();
    let doc = json(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "candle,tract",
        "--batch",
        "8",
        "--images",
        "16",
        "--rounds",
        "2",
    ]);
    let rows = doc.as_array().unwrap();
    let row = |name: &str| rows.iter().rfind(|r| r["backend"] == name).unwrap();
    let why = row("candle")["failed"].as_str().unwrap();
    assert!(why.contains("Erf") && why.contains("not supported"), "{why}");
    assert!(row("candle")["images_per_s"].is_null());
    assert!(
        row("tract")["failed"].is_null() && row("tract")["images_per_s"].as_f64().unwrap() > 0.0
    );
}

#[test]
fn bench_workloads_run_each_seed_workload_as_a_process_and_report_its_limits() {
    let doc = json(&[
        "bench",
        "--workload",
        "linearity,nvi",
        "--backend",
        "tract",
        "--dataset",
        "embedded",
        "--samples",
        "16",
        "--rounds",
        "1",
    ]);
    let machine = &doc["machine"];
    assert!(machine["fma_per_s"].as_f64().unwrap() > 0.0);
    assert!(machine["read_bytes_per_s"].as_f64().unwrap() > 0.0);
    // The Fashion-MNIST CNN: 2 convolutions and 2 dense layers, 4,217,344 multiply-adds
    // (28*28*64*4 + 14*14*64*64*4 + 3136*256 + 256*10).
    assert_eq!(doc["fma_per_forward"].as_f64(), Some(4_217_344.0));
    let rows = doc["workloads"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["forwards"], 16 * 21);
    assert_eq!(rows[1]["forwards"], 16 * 9);
    for row in rows {
        let [wall, loop_s, peak] =
            ["wall_s", "measure_s", "peak_rss_mb"].map(|k| row[k][0].as_f64().unwrap());
        assert!(wall >= loop_s && loop_s > 0.0, "{row}");
        assert!(peak > 1.0, "{row}");
        assert!(row["times_fma_limit"].as_f64().unwrap() >= 1.0, "{row}");
    }
    // Every layer's activations of every forward: 144,788 per forward on this CNN.
    let updates = rows[1]["activation_updates_per_s"].as_f64().unwrap();
    let forwards_per_s = rows[1]["forwards_per_s"].as_f64().unwrap();
    assert!((updates / forwards_per_s - 144_788.0).abs() < 1e-6 * 144_788.0);
}

#[test]
fn bench_profile_times_every_operator_of_tract_with_its_arithmetic() {
    let rows = json(&["bench", "--profile", "--images", "16", "--rounds", "1"]);
    let rows = rows.as_array().unwrap();
    let fma: f64 = rows.iter().map(|r| r["fma_per_input"].as_f64().unwrap()).sum();
    assert_eq!(fma, 4_217_344.0);
    let share: f64 = rows.iter().map(|r| r["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-9);
    // The embedded CNN's pools and first convolution run on nnlens's own kernels.
    for op in ["nnlens.MaxPool2x2", "nnlens.SmallConv", "OptMatMul"] {
        assert!(rows.iter().any(|r| r["op"] == op), "no {op} in {rows:?}");
    }
}

//! `nnlens run linearity` end to end on the embedded model and sample: result files, plots,
//! reproducibility with --seed, replayed offsets, per-class runs and bad input.

mod common;
use common::{fails, is_png, json, nnlens};

use ndarray::Array3;
use ndarray_npy::WriteNpyExt;

/// How far apart two evaluations of the same input can put a layer's L. tract's kernels sum
/// the f32 products of a dot product in an order that depends on the processor (AVX-512,
/// AVX2, portable code) and on the input's place in its chunk of 8, so an output of a K-term
/// dot product carries a rounding error of about sqrt(K) eps |output| (eps = 1.2e-7; K = 9 for
/// conv_1, up to 3136 for dense_1: at most 7e-6 relative). L is a norm over the layer: for the
/// output, log-probabilities of at most 23 in magnitude over 10 classes give about
/// 7e-6 x 23 x sqrt(10) = 5e-4 at worst; for conv_1, 3.6e-7 x |a| over 50,176 activations of
/// about 1 give 8e-5 (measured: 1.7e-7 on AVX2, 8e-6 on AVX-512 for the output). Nonlinear
/// layers are orders of magnitude above it (relu_1 > 1e-3, the output 1e-2 and more).
const ROUNDING_L: f64 = 5e-4;

fn values(doc: &serde_json::Value, layer: usize) -> Vec<f64> {
    doc["result"]["state"]["values"][layer]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn every_layer_in_one_run_with_files_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lin");
    let out_s = out.to_str().unwrap();
    let args = [
        "run",
        "linearity",
        "--instances",
        "6",
        "--layers",
        "all",
        "--nb-samples",
        "4",
        "--batch-size",
        "7",
        "--seed",
        "3",
        "--out",
        out_s,
    ];
    let doc = json(&args);
    let summary = &doc["result"]["summary"];
    assert_eq!(summary["instances"], 6);
    let layers = summary["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 11, "every layer of the embedded CNN");
    let by_name = |n: &str| layers.iter().find(|l| l["name"] == n).unwrap();
    assert_eq!(by_name("softmax")["model_type"], "classifier");
    assert_eq!(by_name("dense_2")["model_type"], "regressor");
    // conv_1 is linear (float rounding only); relu_1 is not.
    assert!(by_name("conv_1")["summary"]["max"].as_f64().unwrap() < ROUNDING_L);
    assert!(by_name("relu_1")["summary"]["min"].as_f64().unwrap() > 1e-3);
    for f in [
        "result.json",
        "instances.csv",
        "layers.csv",
        "classes.csv",
        "layers.svg",
        "histograms.svg",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert!(is_png(&out.join("layers.png")) && is_png(&out.join("histograms.png")));
    let csv = std::fs::read_to_string(out.join("instances.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7);
    assert!(csv.starts_with("index,label,class_name,conv_1,"));
    // The same seed gives the same instances and values, whatever the batch size.
    let again = json(&[
        "run",
        "linearity",
        "--instances",
        "6",
        "--layers",
        "all",
        "--nb-samples",
        "4",
        "--batch-size",
        "256",
        "--seed",
        "3",
    ]);
    // Other batches put an instance's samples at other places of tract's chunks: each L moves
    // by at most its rounding part twice over (triangle inequality), plus relative f64 noise.
    assert_eq!(doc["result"]["state"]["indices"], again["result"]["state"]["indices"]);
    for layer in 0..11 {
        for (a, b) in values(&doc, layer).iter().zip(values(&again, layer)) {
            assert!(
                (a - b).abs() <= 2.0 * ROUNDING_L + 1e-9 * a.abs(),
                "layer {layer}: {a} vs {b}"
            );
        }
    }
    // Plots are redrawn from the saved result.
    std::fs::remove_file(out.join("layers.png")).unwrap();
    nnlens().args(["-q", "plot", out_s]).assert().success();
    assert!(is_png(&out.join("layers.png")));
}

#[test]
fn replayed_offsets_of_zero_give_linearity_zero_and_per_class_runs_group_labels() {
    let dir = tempfile::tempdir().unwrap();
    // All-zero offsets: every sample is the instance itself, so M(mean v) = mean M(v).
    let offsets = Array3::<i8>::zeros((3, 5, 784));
    let path = dir.path().join("offsets.npy");
    offsets.write_npy(std::fs::File::create(&path).unwrap()).unwrap();
    let doc = json(&[
        "run",
        "linearity",
        "--indices",
        "4,8,15",
        "--offsets",
        path.to_str().unwrap(),
        "--layers",
        "relu_1,softmax",
    ]);
    assert_eq!(doc["manifest"]["parameters"]["linearity"]["nb_samples"], 5);
    // Every sample is the instance, and so is their superposition once cast to f32 (the f64
    // sum of five 0.2 x is x within 1e-16, far inside half an f32 ulp of x). What is left is
    // the rounding of the same input evaluated at other places of a batch: ROUNDING_L.
    for layer in 0..2 {
        assert!(values(&doc, layer).iter().all(|&l| l < ROUNDING_L), "{:?}", values(&doc, layer));
    }
    assert_eq!(doc["result"]["state"]["indices"], serde_json::json!([4, 8, 15]));
    let doc =
        json(&["run", "linearity", "--per-class", "--per-class-max", "2", "--nb-samples", "3"]);
    let classes = doc["result"]["summary"]["layers"][0]["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 10);
    assert!(classes.iter().all(|c| c["summary"]["count"] == 2));
    // Pairwise aggregation and an explicit model type.
    let doc = json(&[
        "run",
        "linearity",
        "--instances",
        "2",
        "--agg",
        "pairwise",
        "--nb-samples",
        "3",
        "--model-type",
        "regressor",
    ]);
    assert_eq!(doc["result"]["summary"]["layers"][0]["model_type"], "regressor");
    assert_eq!(doc["manifest"]["parameters"]["linearity"]["agg"], "pairwise");
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(&["run", "linearity", "--layers", "nope", "--instances", "2"]);
    assert!(e.contains("nope"), "{e}");
    let e = fails(&["run", "linearity", "--indices", "5,99999"]);
    assert!(e.contains("99999"), "{e}");
    let e = fails(&["run", "linearity", "--instances", "2", "--agg", "sideways"]);
    assert!(e.contains("sideways"), "{e}");
    let e = fails(&["run", "linearity", "--instances", "2", "--nb-samples", "0"]);
    assert!(e.contains("nb_samples"), "{e}");
    let e = fails(&["run", "linearity", "--instances", "2", "--model-type", "dense_2=classifier"]);
    assert!(e.contains("dense_2"), "{e}");
    let e = fails(&[
        "run",
        "linearity",
        "--instances",
        "2",
        "--layers",
        "dense_2",
        "--model-type",
        "dense_2=classifier",
    ]);
    assert!(e.contains("dense_2") && e.contains("regressor"), "{e}");
    let offsets = Array3::<i8>::zeros((2, 5, 10));
    let path = dir.path().join("offsets.npy");
    offsets.write_npy(std::fs::File::create(&path).unwrap()).unwrap();
    let e = fails(&["run", "linearity", "--indices", "1,2", "--offsets", path.to_str().unwrap()]);
    assert!(e.contains("10 features"), "{e}");
    let missing = dir.path().join("missing.npy");
    let e = fails(&[
        "run",
        "linearity",
        "--instances",
        "2",
        "--feature-range",
        missing.to_str().unwrap(),
    ]);
    assert!(e.contains("missing.npy"), "{e}");
    let e = fails(&["run", "linearity", "--method", "knn", "--instances", "2"]);
    assert!(e.contains("train"), "{e}");
}

//! The cross-backend conformance suite: every compiled-in backend against tract, the reference,
//! on the five shared models: the same structure, every layer's activations within 1e-4, at
//! batch sizes 1, 7 and 256 (needs `../shared`; `--features ort` adds ONNX Runtime).
#![cfg(feature = "shared")]

use ndarray::{ArrayD, Axis};
use nnlens_datasets::{PixelScale, Split};
use nnlens_tests::*;

/// Every compiled-in ONNX backend that can run here. ONNX Runtime is compiled in by default but its
/// library may be missing: then it is left out, unless `NNLENS_REQUIRE_ORT` is set (CI's ONNX
/// Runtime step), where a backend that cannot run fails the suite.
fn backends() -> Vec<&'static str> {
    nnlens_plugins::link();
    let required = std::env::var_os("NNLENS_REQUIRE_ORT").is_some();
    nnlens_core::backends()
        .iter()
        // The ONNX backends: tch runs TorchScript files (its suite is
        // tests/fixtures/torchscript/check_tch.py, on the same models exported both ways).
        .filter(|b| b.name != "tch")
        .filter(|b| match (b.available)() {
            Ok(()) => true,
            Err(reason) if required || b.name != "ort" => {
                panic!("backend {} is compiled in but cannot run: {reason}", b.name)
            }
            Err(reason) => {
                eprintln!("ort left out: {reason}");
                false
            }
        })
        .map(|b| b.name)
        .collect()
}

/// Activations of every layer for `x`, run in batches of `batch`.
fn all_layers(model: &dyn nnlens_core::Model, x: &ArrayD<f32>, batch: usize) -> Vec<ArrayD<f32>> {
    nnlens_core::predict_in_batches(model, x.view(), None, batch).unwrap()
}

#[test]
fn every_backend_matches_tract_on_every_layer_and_batch_size() {
    let backends = backends();
    let mut report = Vec::new();
    for &(name, dataset, scale) in SHARED_MODELS {
        let reference = load("tract", &shared_model(name));
        let data = shared_split(dataset, Split::Test, scale);
        let x = inputs(reference.as_ref(), &data, 256);
        let expected = all_layers(reference.as_ref(), &x, 256);
        for &backend in &backends {
            let model = load(backend, &shared_model(name));
            // Structure discovery: the same layers, shapes and channel axes.
            assert_eq!(model.structure(), reference.structure(), "{backend} {name}: structure");
            for batch in [1, 7, 256] {
                // Batch 1 over 256 images is slow on some engines: 32 images are enough there.
                let n = if batch == 1 { 32 } else { 256 };
                let xs = x.slice_axis(Axis(0), (0..n).into()).to_owned();
                let got = all_layers(model.as_ref(), &xs, batch);
                let mut worst = 0.0f32;
                for (l, layer) in reference.structure().layers.iter().enumerate() {
                    let want = expected[l].slice_axis(Axis(0), (0..n).into()).to_owned();
                    let diff = max_abs_diff(&got[l], &want);
                    assert!(
                        diff < 1e-4,
                        "{backend} {name} batch {batch} layer {}: max abs diff {diff}",
                        layer.name
                    );
                    worst = worst.max(diff);
                }
                report.push(format!("{backend} {name} batch {batch}: max abs diff {worst:e}"));
            }
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn every_backend_evaluates_the_documented_accuracy_and_takes_f64_models() {
    let cases = [
        ("fashion_cnn.onnx", "fashion-mnist", PixelScale::Unit, 0.8982),
        ("mnist_cnn.onnx", "mnist", PixelScale::Unit, 0.9490),
        ("mnist_mlp.onnx", "mnist", PixelScale::Raw, 0.9445),
    ];
    for backend in backends() {
        for (name, dataset, scale, accuracy) in cases {
            let model = load(backend, &shared_model(name));
            if name == "mnist_cnn.onnx" {
                assert_eq!(model.structure().input.dtype, "f64", "{backend}");
            }
            let data = shared_split(dataset, Split::Test, scale);
            let mut total = nnlens_core::Evaluation::default();
            for start in (0..data.len()).step_by(256) {
                let end = (start + 256).min(data.len());
                let x = inputs_range(model.as_ref(), &data, start..end);
                total.merge(&model.evaluate(x.view(), &data.labels()[start..end]).unwrap());
            }
            let acc = total.accuracy();
            assert!((acc - accuracy).abs() <= 0.0005, "{backend} {name}: {acc} vs {accuracy}");
        }
    }
}

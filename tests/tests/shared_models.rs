//! The suite that needs `../shared`: every compiled-in backend on the real models and data.
//! Run with `cargo test -p nnlens-tests --features shared` (as `.ci/run` does).
#![cfg(feature = "shared")]

use nnlens_core::{Evaluation, Model, conform_input};
use nnlens_datasets::{PixelScale, Split};
use nnlens_tests::*;

/// The shared models and their number of layers (Keras layers, or the scikit-learn graph's steps).
const MODELS: &[(&str, usize)] = &[
    ("fashion_cnn.onnx", 11),
    ("fashion_cnn_layers.onnx", 14),
    ("mnist_cnn.onnx", 8),
    ("mnist_cnn_layers.onnx", 11),
    ("mnist_mlp.onnx", 9),
];

fn backends() -> Vec<&'static str> {
    nnlens_plugins::link();
    // The ONNX backends (tch runs TorchScript files).
    nnlens_core::backends()
        .iter()
        .filter(|b| b.name != "tch" && (b.available)().is_ok())
        .map(|b| b.name)
        .collect()
}

#[test]
fn the_shared_data_has_the_documented_sizes() {
    let sizes = [
        ("fashion-mnist", Split::Train, 60000),
        ("fashion-mnist", Split::Test, 10000),
        ("mnist", Split::Train, 8000),
        ("mnist", Split::Test, 2000),
    ];
    for (name, split, n) in sizes {
        let d = shared_split(name, split, PixelScale::Unit);
        assert_eq!(d.len(), n, "{name} {split:?}");
    }
    let test = shared_split("fashion-mnist", Split::Test, PixelScale::Unit);
    for class in 0..10 {
        assert_eq!(test.labels().iter().filter(|&&l| l == class).count(), 1000);
    }
}

#[test]
fn every_model_loads_and_predicts_every_layer() {
    for backend in backends() {
        for &(name, layers) in MODELS {
            let model = load(backend, &shared_model(name));
            let s = model.structure();
            assert_eq!(s.number_layers(), layers, "{backend} {name}: {:?}", s.names());
            let scale = if name.contains("mlp") { PixelScale::Raw } else { PixelScale::Unit };
            let data = shared_split("mnist", Split::Test, scale);
            let x = inputs(model.as_ref(), &data, 7);
            let acts = model.predict(x.view(), None).unwrap();
            assert_eq!(acts.len(), s.number_layers());
            for (layer, (_, a)) in s.layers.iter().zip(acts.iter()) {
                let mut expected = vec![7];
                expected.extend_from_slice(&layer.shape);
                assert_eq!(a.shape(), expected.as_slice(), "{backend} {name} {}", layer.name);
                assert!(a.iter().all(|v| v.is_finite()), "{backend} {name} {}", layer.name);
            }
        }
    }
}

#[test]
fn fashion_cnn_structure() {
    for backend in backends() {
        let model = load(backend, &shared_model("fashion_cnn.onnx"));
        let s = model.structure();
        assert_eq!(
            s.names(),
            [
                "conv_1", "relu_1", "maxp_1", "conv_2", "relu_2", "maxp_2", "flat", "dense_1",
                "relu_3", "dense_2", "softmax"
            ]
        );
        assert_eq!(s.output_layer().name, "softmax");
        for l in &s.layers[..6] {
            assert!(l.is_feature_layer(), "{}", l.name);
            assert_eq!(l.number_features(), 64, "{}", l.name);
        }
        for l in &s.layers[6..] {
            assert!(!l.is_feature_layer(), "{}", l.name);
        }
        assert_eq!(s.layer("maxp_1").unwrap().shape_feature(), [14, 14]);
        assert_eq!(s.input.channel_axis, Some(2));
        let mnist = load(backend, &shared_model("mnist_cnn.onnx"));
        assert_eq!(mnist.structure().input.dtype, "f64");
        assert_eq!(mnist.structure().layer("conv_2").unwrap().number_features(), 32);
    }
}

/// Every layer of the single-output model equals the same layer of the `_layers` export (whose
/// outputs are channels-last), once the channel axes are aligned.
fn all_layers_match(backend: &str, model: &str, layers_model: &str, dataset: &str) {
    let full = load(backend, &shared_model(model));
    let reference = load(backend, &shared_model(layers_model));
    let data = shared_split(dataset, Split::Test, PixelScale::Unit);
    let x = inputs(full.as_ref(), &data, 256);
    let ours = full.predict(x.view(), None).unwrap();
    let theirs = reference.predict(x.view(), None).unwrap();
    let mut compared = 0;
    for layer in &full.structure().layers {
        let Some(expected) = theirs.get(&layer.name) else { continue };
        let mut got = ours.get(&layer.name).unwrap().clone();
        let theirs_layer = reference.structure().layer(&layer.name).unwrap();
        if let (Some(c), Some(c_ref)) = (layer.channel_axis, theirs_layer.channel_axis)
            && layer.is_feature_layer()
        {
            assert_eq!(
                c_ref + 1,
                theirs_layer.shape.len(),
                "the _layers outputs are channels-last"
            );
            got = channel_last(&got, c + 1);
        }
        let diff = max_abs_diff(&got, expected);
        assert!(diff < 1e-5, "{backend} {model} {}: max abs diff {diff}", layer.name);
        compared += 1;
    }
    assert_eq!(compared, full.structure().number_layers(), "every layer has a reference");
}

#[test]
fn fashion_cnn_layers_equal_the_layers_export() {
    for backend in backends() {
        all_layers_match(backend, "fashion_cnn.onnx", "fashion_cnn_layers.onnx", "fashion-mnist");
    }
}

#[test]
fn mnist_cnn_layers_equal_the_layers_export() {
    for backend in backends() {
        all_layers_match(backend, "mnist_cnn.onnx", "mnist_cnn_layers.onnx", "mnist");
    }
}

fn accuracy(model: &dyn Model, dataset: &str, scale: PixelScale, batch: usize) -> f64 {
    let data = shared_split(dataset, Split::Test, scale);
    let mut total = Evaluation::default();
    for start in (0..data.len()).step_by(batch) {
        let end = (start + batch).min(data.len());
        let x = conform_input(data.batch(start..end).unwrap(), &model.structure().input).unwrap();
        total.merge(&model.evaluate(x.view(), &data.labels()[start..end]).unwrap());
    }
    total.accuracy()
}

#[test]
fn accuracies_are_those_of_the_models_readme() {
    let cases = [
        ("fashion_cnn.onnx", "fashion-mnist", PixelScale::Unit, 0.8982),
        ("mnist_cnn.onnx", "mnist", PixelScale::Unit, 0.9490),
        ("mnist_mlp.onnx", "mnist", PixelScale::Raw, 0.9445),
    ];
    for backend in backends() {
        for (name, dataset, scale, expected) in cases {
            let model = load(backend, &shared_model(name));
            let acc = accuracy(model.as_ref(), dataset, scale, 256);
            assert!((acc - expected).abs() <= 0.0005, "{backend} {name}: {acc} vs {expected}");
        }
    }
}

#[test]
fn batch_sizes_do_not_change_results() {
    for backend in backends() {
        let model = load(backend, &shared_model("mnist_cnn.onnx"));
        let data = shared_split("mnist", Split::Test, PixelScale::Unit);
        let x = inputs(model.as_ref(), &data, 15);
        let whole = model.predict_output(x.view()).unwrap();
        let output = model.structure().output_layer().name.clone();
        for batch in [1, 7] {
            let joined = nnlens_core::predict_in_batches(
                model.as_ref(),
                x.view(),
                Some(&[output.as_str()]),
                batch,
            )
            .unwrap();
            assert!(max_abs_diff(&joined[0], &whole) < 1e-5, "{backend} batch {batch}");
        }
    }
}

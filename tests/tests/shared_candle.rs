//! The candle backend on the five shared models against tract, the reference: the same layers
//! (names, tensors, operators, shapes, channel axes, output), every layer's activations within
//! 1e-4, and the trainable parameters of the MNIST CNN those of its Keras manifest.
#![cfg(feature = "shared")]

use nnlens_candle::{CandleModel, CandleOptions, Precision};
use nnlens_core::{GradModel, Model};
use nnlens_datasets::Split;
use nnlens_tests::*;

#[test]
fn candle_equals_tract_on_every_layer_of_every_shared_model() {
    let mut report = Vec::new();
    for &(name, dataset, scale) in SHARED_MODELS {
        let tract = load("tract", &shared_model(name));
        let candle = load("candle", &shared_model(name));
        assert_eq!(candle.structure(), tract.structure(), "{name}: structure");
        let data = shared_split(dataset, Split::Test, scale);
        let x = inputs(tract.as_ref(), &data, 100);
        let want = tract.predict(x.view(), None).unwrap();
        let got = candle.predict(x.view(), None).unwrap();
        let mut worst = 0.0f32;
        for ((layer, a), (_, b)) in want.iter().zip(got.iter()) {
            let diff = max_abs_diff(a, b);
            assert!(diff < 1e-4, "{name} {layer}: max abs diff {diff}");
            worst = worst.max(diff);
        }
        // The f64 interpretation of the same weights stays as close.
        let f64_model = CandleModel::load_with(
            &shared_model(name),
            &CandleOptions { precision: Precision::F64, ..CandleOptions::default() },
        )
        .unwrap();
        let got64 = f64_model.predict(x.view(), None).unwrap();
        let mut worst64 = 0.0f32;
        for ((_, a), (_, b)) in want.iter().zip(got64.iter()) {
            worst64 = worst64.max(max_abs_diff(a, b));
        }
        assert!(worst64 < 1e-4, "{name} f64: {worst64}");
        report.push(format!(
            "{name}: {} layers, max abs diff vs tract {worst:.2e} (f32), {worst64:.2e} (f64)",
            want.len()
        ));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn the_mnist_cnn_parameters_are_the_keras_trainable_weights() {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared_dir().join("models/mnist_cnn_weights_manifest.json"))
            .unwrap(),
    )
    .unwrap();
    let model = CandleModel::load(&shared_model("mnist_cnn.onnx")).unwrap();
    assert_eq!(model.parameter_count() as u64, manifest["total_trainable"].as_u64().unwrap());
    // Same tensors in the same (first use = Keras layer) order; ONNX lays kernels out
    // differently (Conv OIHW vs Keras HWIO), so compare the sizes.
    let sizes: Vec<u64> = manifest["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["size"].as_u64().unwrap())
        .collect();
    let ours: Vec<u64> = model.parameters().iter().map(|p| p.len() as u64).collect();
    assert_eq!(ours, sizes);
    let names: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
    assert!(names[0].contains("conv_1") && names[7].contains("logits"), "{names:?}");
    assert_eq!(model.logits_tensor(), Some("model_2/logits/BiasAdd:0"));
    assert_eq!(Model::structure(&model).input.dtype, "f64");
}

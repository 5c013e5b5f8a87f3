//! The candle backend as an inference backend, on models built here: structure (the same rules
//! as tract), activations against a forward pass written out by hand, and clear errors.

mod common;

use common::*;
use ndarray::{ArrayD, IxDyn};
use nnlens_candle::{CandleError, CandleModel, CandleOptions};
use nnlens_core::{CoreError, GradModel, Model};
use nnlens_onnx::fixture::{by_hand, fixture_bytes, fixture_images};
use nnlens_onnx::proto::AttributeProto;

fn load() -> CandleModel {
    CandleModel::from_bytes(&fixture_bytes(), "fixture.onnx", &CandleOptions::default()).unwrap()
}

#[test]
fn structure_follows_the_shared_layer_rules() {
    let m = load();
    let s = Model::structure(&m);
    // The same names, order and channel axes as the tract backend's fixture test.
    assert_eq!(s.names(), ["xf", "conv", "relu", "relu_alias", "pool", "flat", "dense", "probs"]);
    assert_eq!(s.output_layer().name, "probs");
    assert_eq!(s.input.dtype, "f64");
    assert_eq!(s.input.shape, [1, 4, 4]);
    let conv = s.layer("conv").unwrap();
    assert_eq!(
        (conv.shape.clone(), conv.channel_axis, conv.number_features()),
        (vec![2, 4, 4], Some(0), 2)
    );
    assert_eq!(conv.tensor, "net/conv/Conv:0");
    assert_eq!(conv.op, "Conv");
    assert_eq!(s.layer("pool").unwrap().shape_feature(), [2, 2]);
    assert_eq!(s.layer("xf").unwrap().number_features(), 1);
    assert!(!s.layer("flat").unwrap().is_feature_layer());
    assert_eq!(s.layers_features().len(), 5);
    let params: Vec<&str> = m.parameters().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(params, ["conv_w", "conv_b", "dense_w", "dense_b"]);
    assert_eq!(m.parameter_count(), 18 + 2 + 24 + 3);
    assert_eq!(Model::backend(&m), "candle");
}

#[test]
fn activations_match_the_forward_pass_by_hand() {
    let m = load();
    let x = fixture_images(5);
    let acts = m.predict(x.view(), None).unwrap();
    assert_eq!(acts.len(), 8);
    for b in 0..5 {
        let img: [f64; 16] = std::array::from_fn(|i| x[[b, 0, i / 4, i % 4]] as f64);
        let (conv, relu, logits, probs) = by_hand(&img);
        let check = |layer: &str, expected: &[f64]| {
            let got = acts.get(layer).unwrap();
            let row: Vec<f32> = got.index_axis(ndarray::Axis(0), b).iter().copied().collect();
            assert_eq!(row.len(), expected.len(), "{layer}");
            for (g, e) in row.iter().zip(expected) {
                assert!((*g as f64 - e).abs() < 1e-5, "{layer}: {g} vs {e}");
            }
        };
        check("conv", &conv);
        check("relu", &relu);
        check("relu_alias", &relu);
        check("dense", &logits);
        check("probs", &probs);
    }
}

#[test]
fn large_batches_chunks_and_tensor_names_agree() {
    let m = load();
    let x = fixture_images(70);
    let all = m.predict(x.view(), None).unwrap();
    let some = m.predict(x.view(), Some(&["pool", "net/dense/Gemm:0", "pool"])).unwrap();
    assert_eq!(some.names(), ["pool", "net/dense/Gemm:0", "pool"]);
    assert_eq!(some.get("pool"), all.get("pool"));
    assert_eq!(some.values()[1], *all.get("dense").unwrap());
    for b in [0, 33, 69] {
        let one = x.slice(ndarray::s![b..b + 1, .., .., ..]).to_owned().into_dyn();
        let single = m.predict_output(one.view()).unwrap();
        let row = all.get("probs").unwrap().index_axis(ndarray::Axis(0), b).to_owned();
        for (a, c) in single.iter().zip(row.iter()) {
            assert!((a - c).abs() < 1e-6);
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let m = load();
    let e = m.predict(fixture_images(2).view(), Some(&["conv_9"])).unwrap_err();
    assert!(matches!(e, CoreError::UnknownLayer { .. }), "{e}");
    let wrong = ArrayD::<f32>::zeros(IxDyn(&[2, 4, 4, 1]));
    assert!(matches!(m.predict(wrong.view(), None), Err(CoreError::Shape { .. })));
    let empty = ArrayD::<f32>::zeros(IxDyn(&[0, 1, 4, 4]));
    assert!(m.predict(empty.view(), None).is_err());
    let mut nan = fixture_images(1);
    nan[[0, 0, 1, 1]] = f32::INFINITY;
    assert!(matches!(m.predict(nan.view(), None), Err(CoreError::NonFinite { .. })));
    let e =
        CandleModel::from_bytes(b"definitely not protobuf", "junk.onnx", &CandleOptions::default())
            .unwrap_err();
    assert!(e.to_string().contains("junk.onnx"), "{e}");
    let mut bytes = fixture_bytes();
    bytes.truncate(bytes.len() / 2);
    assert!(CandleModel::from_bytes(&bytes, "half.onnx", &CandleOptions::default()).is_err());
    let e = CandleModel::load(std::path::Path::new("/nonexistent/m.onnx")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/m.onnx"), "{e}");
}

#[test]
fn unsupported_operators_name_the_operator_and_the_node() {
    let e = CandleModel::from_bytes(
        &one_node("Celu", "", vec![]),
        "celu.onnx",
        &CandleOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, CandleError::Unsupported { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("Celu") && msg.contains("'the_node'") && msg.contains("celu.onnx"),
        "{msg}"
    );
    let e = CandleModel::from_bytes(
        &one_node("TreeEnsembleClassifier", "ai.onnx.ml", vec![]),
        "t",
        &CandleOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("ai.onnx.ml.TreeEnsembleClassifier") && e.contains("the_node"), "{e}");
    // A form of a supported operator that is not implemented says what.
    let conv = one_node("Conv", "", vec![AttributeProto::ints("strides", &[1, 2, 2])]);
    let e = CandleModel::from_bytes(&conv, "c", &CandleOptions::default()).unwrap_err().to_string();
    assert!(e.contains("Conv") && e.contains("the_node") && e.contains("only 2-D"), "{e}");
    let pool = one_node("MaxPool", "", vec![AttributeProto::ints("kernel_shape", &[2])]);
    let e = CandleModel::from_bytes(&pool, "p", &CandleOptions::default()).unwrap_err().to_string();
    assert!(e.contains("MaxPool") && e.contains("the_node") && e.contains("only 2-D"), "{e}");
    for (op, attrs, detail) in [
        ("Pad", vec![AttributeProto::string("mode", "reflect")], "mode 'reflect'"),
        ("BatchNormalization", vec![AttributeProto::int("training_mode", 1)], "training mode"),
        (
            "AveragePool",
            vec![
                AttributeProto::ints("kernel_shape", &[2, 2]),
                AttributeProto::int("ceil_mode", 1),
            ],
            "ceil_mode",
        ),
    ] {
        let e = CandleModel::from_bytes(&one_node(op, "", attrs), "m", &CandleOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(op) && e.contains("the_node") && e.contains(detail), "{e}");
    }
    // Errors convert to the core error with the backend's name.
    let core: CoreError =
        CandleModel::from_bytes(&one_node("Celu", "", vec![]), "c", &CandleOptions::default())
            .unwrap_err()
            .into();
    assert!(core.to_string().starts_with("candle: "), "{core}");
}

#[test]
fn the_registry_loads_it_by_name() {
    let entry = nnlens_core::backend("candle").unwrap();
    assert!((entry.available)().is_ok());
    let m = (entry.load_bytes)(&fixture_bytes(), "fixture.onnx", &Default::default()).unwrap();
    assert_eq!(m.backend(), "candle");
    assert_eq!(m.structure().number_layers(), 8);
}

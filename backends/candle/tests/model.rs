//! The candle backend as an inference backend, on models built here: structure (the same rules
//! as tract), activations against a forward pass written out by hand, and clear errors.

mod common;

use common::*;
use ndarray::{Array4, ArrayD, IxDyn};
use nnlens_candle::{CandleError, CandleModel, CandleOptions};
use nnlens_core::{CoreError, GradModel, Model};
use nnlens_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, TensorProto, ValueInfoProto, elem,
};
use prost::Message;

fn weights(n: usize, k: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 7 + k) % 11) as f32 - 5.0) / 10.0).collect()
}

/// The tract backend's fixture: f64 input `x` [N, 1, 4, 4] > Cast(f32) > Conv(2 filters 3x3,
/// pads 1) > Relu > MaxPool 2x2 > Flatten > Gemm(8 -> 3) > Softmax, tf2onnx-style names, and an
/// `Identity` alias of the relu appended at the end.
fn fixture_bytes() -> Vec<u8> {
    let graph = GraphProto {
        name: "fixture".into(),
        node: vec![
            node("Cast", &["x"], "xf", vec![AttributeProto::int("to", 1)]),
            node(
                "Conv",
                &["xf", "conv_w", "conv_b"],
                "net/conv/Conv:0",
                vec![
                    AttributeProto::ints("pads", &[1, 1, 1, 1]),
                    AttributeProto::ints("kernel_shape", &[3, 3]),
                ],
            ),
            node("Relu", &["net/conv/Conv:0"], "net/relu/Relu:0", vec![]),
            node(
                "MaxPool",
                &["net/relu/Relu:0"],
                "net/pool/MaxPool:0",
                vec![
                    AttributeProto::ints("kernel_shape", &[2, 2]),
                    AttributeProto::ints("strides", &[2, 2]),
                ],
            ),
            node(
                "Flatten",
                &["net/pool/MaxPool:0"],
                "net/flat/Flatten:0",
                vec![AttributeProto::int("axis", 1)],
            ),
            node("Gemm", &["net/flat/Flatten:0", "dense_w", "dense_b"], "net/dense/Gemm:0", vec![]),
            node("Softmax", &["net/dense/Gemm:0"], "probs", vec![AttributeProto::int("axis", 1)]),
            node("Identity", &["net/relu/Relu:0"], "relu_alias", vec![]),
        ],
        initializer: vec![
            TensorProto::from_f32("conv_w", &[2, 1, 3, 3], weights(18, 1)),
            TensorProto::from_f32("conv_b", &[2], vec![0.1, -0.2]),
            TensorProto::from_f32("dense_w", &[8, 3], weights(24, 3)),
            TensorProto::from_f32("dense_b", &[3], vec![0.05, 0.0, -0.05]),
        ],
        input: vec![ValueInfoProto::tensor("x", elem::DOUBLE, &[None, Some(1), Some(4), Some(4)])],
        output: vec![
            ValueInfoProto::tensor("probs", elem::FLOAT, &[None, Some(3)]),
            ValueInfoProto::tensor("relu_alias", elem::FLOAT, &[None, Some(2), Some(4), Some(4)]),
        ],
        ..Default::default()
    };
    ModelProto::new(graph, 13).encode_to_vec()
}

fn load() -> CandleModel {
    CandleModel::from_bytes(&fixture_bytes(), "fixture.onnx", &CandleOptions::default()).unwrap()
}

/// The forward pass by hand, in f64: (conv, relu, logits, probs) for one image.
fn by_hand(img: &[f64; 16]) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let w: Vec<f64> = weights(18, 1).iter().map(|&v| v as f64).collect();
    let b = [0.1f32 as f64, -0.2f32 as f64];
    let mut conv = vec![0.0; 32];
    for f in 0..2 {
        for y in 0..4i64 {
            for x in 0..4i64 {
                let mut s = b[f];
                for ky in 0..3i64 {
                    for kx in 0..3i64 {
                        let (iy, ix) = (y + ky - 1, x + kx - 1);
                        if (0..4).contains(&iy) && (0..4).contains(&ix) {
                            s += w[f * 9 + (ky * 3 + kx) as usize] * img[(iy * 4 + ix) as usize];
                        }
                    }
                }
                conv[f * 16 + (y * 4 + x) as usize] = s;
            }
        }
    }
    let relu: Vec<f64> = conv.iter().map(|&v| v.max(0.0)).collect();
    let mut pool = [0.0; 8];
    for f in 0..2 {
        for y in 0..2 {
            for x in 0..2 {
                let at = |dy: usize, dx: usize| relu[f * 16 + (2 * y + dy) * 4 + 2 * x + dx];
                pool[f * 4 + y * 2 + x] = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
            }
        }
    }
    let dw: Vec<f64> = weights(24, 3).iter().map(|&v| v as f64).collect();
    let db = [0.05f32 as f64, 0.0, -0.05f32 as f64];
    let logits: Vec<f64> =
        (0..3).map(|j| db[j] + (0..8).map(|i| pool[i] * dw[i * 3 + j]).sum::<f64>()).collect();
    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
    let probs = logits.iter().map(|l| (l - m).exp() / z).collect();
    (conv, relu, logits, probs)
}

fn fixture_images(n: usize) -> ArrayD<f32> {
    Array4::from_shape_fn((n, 1, 4, 4), |(b, _, y, x)| {
        (((b * 16 + y * 4 + x) * 37 % 23) as f32) / 23.0 - 0.3
    })
    .into_dyn()
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
